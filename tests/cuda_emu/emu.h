/* emu.h — CUDA C++'s device language for a host compiler: force-included (g++ -include) into
 * the backend's sources (the .cu and .cuh files of cuda/), with each launch `kernel<<<grid, block,
 * shared, stream>>>(args)` rewritten by rewrite_launches.cmake into kao_emu::launch(...)(args).
 *
 * A launch checks its pointer arguments and queues its grid (emu_runtime.h); when the queue runs,
 * every block runs in turn, in an order of the launch's own, and its threads are fibers on one
 * host thread: each runs until it reaches __syncthreads() or ends, and a barrier releases when
 * every thread of the block has reached it. __shared__ variables become
 * function statics, which all threads of the (one running) block share; as a block's shared memory
 * starts undefined on a GPU, they hold NaN bytes at the start of each block that runs as fibers
 * (runtime.cpp), so a read before any write shows. */
#ifndef KAO_CUDA_EMU_H
#define KAO_CUDA_EMU_H

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <math.h>

#include <functional>
#include <type_traits>

namespace kao_emu {

/* The built-in variables of the CUDA thread now running. */
struct thread_state {
    uint3 thread_idx, block_idx;
    dim3 block_dim, grid_dim;
};
extern const thread_state *current; /* set only by the host thread running queued work */

/* Checks the launch configuration (cudaGetLastError reports a bad one, and nothing is queued) and
 * the stream (not the default one), and queues the grid. sync_seen: per launch site (site, line:
 * the launching function, for messages); cleared after a run in which no thread reached a barrier,
 * after which the site's threads run as plain calls (no fibers). */
void launch_grid(dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream,
                 std::function<void()> thread_body, bool *sync_seen, const char *site, int line);

/* __syncthreads(): the running thread waits for the rest of its block. */
void sync_threads();

/* Fails unless p is null, device memory or page-locked host memory: what a kernel may be given. */
void check_kernel_pointer(const void *p, int index, const char *site, int line);

template <class A> void check_argument(const A &a, int index, const char *site, int line) {
    if constexpr (std::is_pointer<A>::value) check_kernel_pointer((const void *)a, index, site, line);
}

template <class Kernel> struct launcher {
    Kernel kernel;
    dim3 grid, block;
    size_t shared_bytes;
    cudaStream_t stream;
    const char *site; /* the launching function and line, for messages */
    int line;
    /* The arguments are checked and copied now, as a launch copies them, and every thread calls
     * the kernel with the copies. */
    template <class... Args> void operator()(Args... args) {
        int index = 0;
        (check_argument(args, index++, site, line), ...);
        static bool sync_seen = true;
        Kernel k = kernel;
        launch_grid(grid, block, shared_bytes, stream, [k, args...]() { k(args...); }, &sync_seen, site, line);
    }
};

template <class Kernel>
launcher<Kernel> launch(Kernel kernel, dim3 grid, dim3 block, size_t shared_bytes = 0, cudaStream_t stream = 0,
                        const char *site = __builtin_FUNCTION(), int line = __builtin_LINE()) {
    return launcher<Kernel>{kernel, grid, block, shared_bytes, stream, site, line};
}

} // namespace kao_emu

#undef __global__
#define __global__
#undef __shared__
/* In a section of their own, which the runtime fills with 0xff bytes before each block runs. */
#define __shared__ static __attribute__((section("kao_emu_shared")))
#define threadIdx (kao_emu::current->thread_idx)
#define blockIdx (kao_emu::current->block_idx)
#define blockDim (kao_emu::current->block_dim)
#define gridDim (kao_emu::current->grid_dim)
#define __syncthreads() kao_emu::sync_threads()

/* Device intrinsics: IEEE single-precision operations, rounded to nearest and never fused into an
 * FMA (nvcc promises that for the _rn intrinsics while it contracts other a·b + c, as the emulator
 * does where the CPU has FMA: CMakeLists.txt). The empty asm hides a value from GCC's contraction:
 * a product's result, so no add takes it into an FMA, and a sum's operands, so it takes no product. */
static inline float kao_emu_opaque(float x) {
    __asm__("" : "+x"(x));
    return x;
}
static inline float __fadd_rn(float a, float b) { return kao_emu_opaque(a) + kao_emu_opaque(b); }
static inline float __fsub_rn(float a, float b) { return kao_emu_opaque(a) - kao_emu_opaque(b); }
static inline float __fmul_rn(float a, float b) { return kao_emu_opaque(a * b); }
static inline float __fdiv_rn(float a, float b) { return kao_emu_opaque(a / b); }
static inline float __fsqrt_rn(float a) { return sqrtf(a); }
/* Threads of a block run one at a time, so a plain read-modify-write is atomic here. */
template <class T> static inline T atomicAdd(T *address, T value) {
    T old = *address;
    *address = old + value;
    return old;
}

#endif
