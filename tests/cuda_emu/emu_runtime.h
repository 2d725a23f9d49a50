/* emu_runtime.h — what the CUDA emulator's parts share (runtime.cpp, device_memory.cpp, cublas.cpp,
 * cudnn.cpp).
 *
 * The emulator runs the CUDA backend (the sources in cuda/: kernels, cuBLAS and cuDNN calls) on the
 * CPU, so that its host logic, launch shapes, indexing and stream ordering are exercised — under
 * ASan/UBSan — on machines without a GPU. Device memory is host memory that only queued work may
 * touch (device_memory.h). All streams share one queue (so work on the legacy default stream,
 * which a GPU would not order with kao's non-blocking stream, is refused rather than silently
 * serialised): a kernel, an async copy or a library call is queued and runs when the host
 * synchronises (cudaStreamSynchronize, cudaDeviceSynchronize, cudaFree, a synchronous copy), as
 * the real device would run it some time later: a page-locked buffer read before the wait holds
 * stale data, as it could on a GPU. Shared memory holds NaN bytes at the start of each block that
 * has a barrier (emu.h); the kernels' a·b + c are contracted into FMAs as nvcc's are by default,
 * where the CPU has FMA (CMakeLists.txt), though not always at the same places; cuBLAS and cuDNN
 * are plain reference loops that round fp32 operands to TF32 where the math mode allows it. It is
 * not a GPU: no real concurrency (blocks and threads run one at a time, in a shuffled order) and
 * no warp-level behaviour. */
#ifndef KAO_CUDA_EMU_RUNTIME_H
#define KAO_CUDA_EMU_RUNTIME_H

#include <cuda_runtime_api.h>

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <functional>

namespace kao_emu {

/* Queues stream-ordered work; it runs at the next synchronisation, in queue order. */
void enqueue(std::function<void()> work);
/* Runs everything queued. */
void drain();
/* Whether [p, p + bytes) lies inside one live cudaMalloc block. */
bool is_device(const void *p, size_t bytes);
/* "cuda emulator: <message>" on stderr, then abort(): a use of the API that a GPU would reject or
 * that would fault there (a host pointer passed as device memory, a workspace too small). */
[[noreturn]] void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* x as a TF32 tensor-core operand: its mantissa rounded to 10 bits (to nearest, ties to even),
 * what cuBLAS and cuDNN give fp32 data where their math mode allows TF32. */
static inline float round_tf32(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7f800000u) != 0x7f800000u) u += 0xfffu + ((u >> 13) & 1u); /* Inf and NaN stay */
    u &= 0xffffe000u;
    memcpy(&x, &u, sizeof x);
    return x;
}

} // namespace kao_emu

#endif
