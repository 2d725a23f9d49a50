/* runtime.cpp — the CUDA emulator's runtime: the stream queue, page-locked host memory, kernel
 * grids run as fibers (device memory: device_memory.cpp), and the CUDA runtime API calls the
 * backend makes (emu_runtime.h says what the emulator is and is not). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <deque>
#include <map>
#include <mutex>
#include <numeric>
#include <vector>

#include "emu.h"
#include "device_memory.h"
#include "emu_runtime.h"
#include "fiber.h"

namespace kao_emu {

void fail(const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    fputs("cuda emulator: ", stderr);
    vfprintf(stderr, fmt, args);
    fputc('\n', stderr);
    va_end(args);
    abort();
}

/* ---- the queue --------------------------------------------------------------------------- */

static std::mutex queue_mutex;            /* guards queue */
static std::recursive_mutex device_mutex; /* one host thread runs queued work at a time */
static std::deque<std::function<void()>> queue;

void enqueue(std::function<void()> work) {
    std::lock_guard<std::mutex> lock(queue_mutex);
    queue.push_back(std::move(work));
}

void drain() {
    std::lock_guard<std::recursive_mutex> device(device_mutex);
    for (;;) {
        std::function<void()> work;
        {
            std::lock_guard<std::mutex> lock(queue_mutex);
            if (queue.empty()) break;
            work = std::move(queue.front());
            queue.pop_front();
        }
        device_access(true);
        work();
    }
    device_access(false);
}

/* ---- page-locked host memory -------------------------------------------------------------- */

static std::mutex pinned_mutex;                  /* guards pinned_blocks */
static std::map<uintptr_t, size_t> pinned_blocks; /* start → bytes */

static bool is_pinned(const void *p, size_t bytes) {
    std::lock_guard<std::mutex> lock(pinned_mutex);
    uintptr_t a = (uintptr_t)p;
    auto it = pinned_blocks.upper_bound(a);
    if (it == pinned_blocks.begin()) return false;
    --it;
    return a + bytes <= it->first + it->second;
}

/* ---- kernel grids ------------------------------------------------------------------------ */

const thread_state *current;

/* cudaGetLastError's: per host thread, set by a bad launch or any call that fails. */
static thread_local cudaError_t last_error = cudaSuccess;

static cudaError_t record(cudaError_t e) {
    if (e != cudaSuccess) last_error = e;
    return e;
}

/* ---- the order threads and blocks run in -------------------------------------------------
 * A GPU promises none, so each launch runs its blocks, and each round of a block's threads, in
 * an order of its own: i → (a·i + b) mod n with a coprime to n, drawn from the launch's number
 * and KAO_EMU_SEED. A kernel whose result depends on the order (a race between threads or
 * blocks) then gives different results from one launch to the next, which the tests' run-twice
 * checks see. */
struct order {
    size_t a, b, n;
    size_t operator[](size_t i) const { return (a * (i % n) + b) % n; }
};

static uint64_t mix(uint64_t x) { /* splitmix64's finaliser */
    x ^= x >> 30, x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27, x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t order_state;

static order next_order(size_t n) {
    static const uint64_t seed = getenv("KAO_EMU_SEED") ? strtoull(getenv("KAO_EMU_SEED"), nullptr, 10) : 1;
    order o = {1, 0, n ? n : 1};
    uint64_t r = mix(seed + 0x9e3779b97f4a7c15ull * ++order_state); /* splitmix64: never mix(0) = 0 */
    o.b = r % o.n;
    for (size_t a = (mix(r) % o.n) | 1; a < o.n; a += 2)
        if (std::gcd(a, o.n) == 1) {
            o.a = a;
            break;
        }
    return o;
}

/* The CUDA threads of the block now running as fibers, and whether each waits at a barrier. Only
 * the host thread holding device_mutex touches these. */
static std::vector<fiber> fibers;
static std::vector<char> waiting;
static const std::function<void()> *running_body;
static int running_fiber = -1; /* -1: threads run as plain calls */

static void run_thread_body() { (*running_body)(); }

void sync_threads() {
    if (running_fiber < 0) /* the site's threads run as plain calls since a launch reached no barrier */
        fail("__syncthreads() in a kernel launched from a site whose previous launch reached none");
    waiting[running_fiber] = 1;
    fiber_yield(&fibers[running_fiber]);
}

/* The __shared__ variables of every kernel (emu.h puts them in this section; the linker names its
 * bounds). Filled with 0xff bytes (NaN as float, double and bf16; −1 as an integer) before each
 * block that runs as fibers: a block's shared memory starts undefined on a GPU, and this way a read
 * before any write shows. Kernels without a barrier run as plain calls and keep what the previous
 * block left, which a GPU may do too. */
extern "C" char __start_kao_emu_shared[] __attribute__((weak));
extern "C" char __stop_kao_emu_shared[] __attribute__((weak));

static void poison_shared() {
    if (__start_kao_emu_shared) memset(__start_kao_emu_shared, 0xff, (size_t)(__stop_kao_emu_shared - __start_kao_emu_shared));
}

/* One block's threads as fibers: rounds in which each thread runs to its next barrier or its end;
 * a barrier releases once every thread of the block waits at it. Returns whether any did. */
static bool run_block_fibers(std::vector<thread_state> &threads, const std::function<void()> &body) {
    size_t n = threads.size();
    if (fibers.size() < n) fibers.resize(n), waiting.resize(n);
    for (size_t i = 0; i < n; i++) fiber_prepare(&fibers[i], run_thread_body);
    poison_shared();
    running_body = &body;
    bool synced = false;
    for (;;) {
        size_t at_barrier = 0, finished = 0;
        order turn = next_order(n);
        for (size_t k = 0; k < n; k++) {
            size_t i = turn[k];
            if (fibers[i].finished) {
                finished++;
                continue;
            }
            waiting[i] = 0;
            running_fiber = (int)i;
            current = &threads[i];
            fiber_resume(&fibers[i]);
            if (waiting[i]) at_barrier++;
            else finished++;
        }
        running_fiber = -1;
        if (at_barrier == 0) return synced;
        synced = true;
        if (finished > 0) /* undefined behaviour in CUDA: a barrier not every thread of the block reaches */
            fail("a __syncthreads() reached by %zu of the %zu threads of block (%u, %u, %u); the others had returned",
                 at_barrier, n, threads[0].block_idx.x, threads[0].block_idx.y, threads[0].block_idx.z);
    }
}

static void run_grid(dim3 grid, dim3 block, const std::function<void()> &body, bool *sync_seen) {
    size_t per_block = (size_t)block.x * block.y * block.z;
    std::vector<thread_state> threads(per_block);
    bool any_sync = false;
    size_t blocks = (size_t)grid.x * grid.y * grid.z;
    order block_order = next_order(blocks);
    for (size_t k = 0; k < blocks; k++) {
        size_t b = block_order[k];
        uint3 block_idx = {(unsigned)(b % grid.x), (unsigned)(b / grid.x % grid.y), (unsigned)(b / grid.x / grid.y)};
        size_t t = 0;
        for (unsigned z = 0; z < block.z; z++)
            for (unsigned y = 0; y < block.y; y++)
                for (unsigned x = 0; x < block.x; x++, t++) threads[t] = thread_state{{x, y, z}, block_idx, block, grid};
        if (*sync_seen) {
            any_sync |= run_block_fibers(threads, body);
        } else {
            order turn = next_order(per_block);
            for (size_t i = 0; i < per_block; i++) {
                current = &threads[turn[i]];
                body();
            }
        }
    }
    current = nullptr;
    *sync_seen = any_sync;
}

/* kao's device work goes on its context's stream, a non-blocking one. On a GPU, work on the legacy
 * default stream (0) is unordered with it, a race the emulator's one queue would hide: refused. */
static void require_stream(cudaStream_t stream, const char *what, const char *site = nullptr, int line = 0) {
    if (stream) return;
    if (site)
        fail("%s in %s (line %d) on the default stream, which does not order with kao's non-blocking stream", what,
             site, line);
    fail("%s on the default stream, which does not order with kao's non-blocking stream", what);
}

void launch_grid(dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream, std::function<void()> thread_body,
                 bool *sync_seen, const char *site, int line) {
    require_stream(stream, "a kernel launched", site, line); /* then, one queue for every stream */
    bool ok = grid.x >= 1 && grid.y >= 1 && grid.z >= 1 && grid.x <= 2147483647u && grid.y <= 65535 &&
              grid.z <= 65535 && block.x >= 1 && block.y >= 1 && block.z >= 1 && block.x <= 1024 &&
              block.y <= 1024 && block.z <= 64 && (size_t)block.x * block.y * block.z <= 1024 &&
              shared_bytes <= 48 * 1024;
    if (!ok) {
        record(cudaErrorInvalidConfiguration);
        return;
    }
    enqueue([grid, block, body = std::move(thread_body), sync_seen]() { run_grid(grid, block, body, sync_seen); });
}

void check_kernel_pointer(const void *p, int index, const char *site, int line) {
    if (p && !is_device(p, 0) && !is_pinned(p, 0))
        fail("a kernel launched in %s (line %d) takes argument %d = %p, host memory that is neither page-locked nor "
             "device memory: a GPU faults on it", site, line, index, p);
}

} // namespace kao_emu

/* ---- the runtime API --------------------------------------------------------------------- */

using namespace kao_emu;

extern "C" {

cudaError_t cudaGetDeviceCount(int *count) {
    *count = 1;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) { return record(device == 0 ? cudaSuccess : cudaErrorInvalidDevice); }

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int device) {
    if (device != 0) return record(cudaErrorInvalidDevice);
    memset(prop, 0, sizeof *prop);
    snprintf(prop->name, sizeof prop->name, "kao CUDA emulator (CPU)");
    prop->major = 9;
    prop->minor = 0;
    prop->multiProcessorCount = 1;
    size_t used;
    device_usage(&used, &prop->totalGlobalMem);
    prop->maxThreadsPerBlock = 1024;
    prop->warpSize = 32;
    return cudaSuccess;
}

cudaError_t cudaGetLastError(void) {
    cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
}

cudaError_t cudaPeekAtLastError(void) { return last_error; }

const char *cudaGetErrorString(cudaError_t error) {
    switch (error) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    default: return "unknown error (emulator)";
    }
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned int flags) {
    (void)flags;
    static char streams; /* every stream is the one queue; the handle only has to be non-null */
    *stream = (cudaStream_t)&streams;
    return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
    (void)stream;
    drain();
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
    (void)stream;
    drain();
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) {
    drain();
    return cudaSuccess;
}

cudaError_t cudaMalloc(void **ptr, size_t size) {
    void *p = device_alloc(size);
    if (!p) return record(cudaErrorMemoryAllocation);
    *ptr = p;
    return cudaSuccess;
}

cudaError_t cudaFree(void *ptr) {
    if (!ptr) return cudaSuccess;
    std::lock_guard<std::recursive_mutex> device(device_mutex); /* no work starts between the two */
    drain(); /* cudaFree waits for the device */
    return record(device_free(ptr) ? cudaSuccess : cudaErrorInvalidDevicePointer);
}

cudaError_t cudaMallocHost(void **ptr, size_t size) {
    void *p = malloc(size ? size : 1);
    if (!p) return record(cudaErrorMemoryAllocation);
    std::lock_guard<std::mutex> lock(pinned_mutex);
    pinned_blocks[(uintptr_t)p] = size;
    *ptr = p;
    return cudaSuccess;
}

cudaError_t cudaFreeHost(void *ptr) {
    if (!ptr) return cudaSuccess;
    std::lock_guard<std::recursive_mutex> device(device_mutex); /* no work starts between the two */
    drain();
    std::lock_guard<std::mutex> lock(pinned_mutex);
    if (pinned_blocks.erase((uintptr_t)ptr) == 0) return record(cudaErrorInvalidValue);
    free(ptr);
    return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes) {
    size_t used;
    device_usage(&used, total_bytes);
    *free_bytes = *total_bytes - used;
    return cudaSuccess;
}

/* Copies as the device orders them: between device blocks and pinned host memory, queued;
 * from pageable memory, staged at the call (the caller may reuse its buffer at once); into
 * pageable memory, after everything queued before it (the call returns when the copy is done). */
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t count, cudaMemcpyKind kind, cudaStream_t stream) {
    require_stream(stream, "cudaMemcpyAsync");
    if (count == 0) return cudaSuccess;
    bool dst_dev = is_device(dst, count), src_dev = is_device(src, count);
    if (kind == cudaMemcpyDefault) kind = dst_dev ? (src_dev ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
                                                  : (src_dev ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost);
    bool want_dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    bool want_src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if (want_dst_dev != dst_dev || want_src_dev != src_dev)
        fail("cudaMemcpyAsync of %zu bytes, kind %d: destination %p is %sdevice memory, source %p is %sdevice memory",
             count, (int)kind, dst, dst_dev ? "" : "not ", src, src_dev ? "" : "not ");
    if (kind == cudaMemcpyHostToDevice && !is_pinned(src, count)) {
        std::vector<char> staged((const char *)src, (const char *)src + count);
        enqueue([dst, staged = std::move(staged)]() { memcpy(dst, staged.data(), staged.size()); });
    } else if (kind == cudaMemcpyDeviceToHost && !is_pinned(dst, count)) {
        enqueue([dst, src, count]() { memcpy(dst, src, count); });
        drain();
    } else {
        enqueue([dst, src, count]() { memcpy(dst, src, count); });
    }
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *dst, int value, size_t count, cudaStream_t stream) {
    require_stream(stream, "cudaMemsetAsync");
    if (count == 0) return cudaSuccess;
    if (!is_device(dst, count)) fail("cudaMemsetAsync of %zu bytes at %p: not device memory", count, dst);
    enqueue([dst, value, count]() { memset(dst, value, count); });
    return cudaSuccess;
}

} /* extern "C" */
