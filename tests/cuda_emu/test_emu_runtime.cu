/* test_emu_runtime.cu — self-test of the CUDA emulator's runtime (runtime.cpp, device_memory.cpp,
 * emu.h): each promise its README paragraph and emu_runtime.h make, shown on kernels of its own.
 * Compiled as the backend's sources are (launches rewritten, emu.h force-included), so it runs
 * only in the emulator build; reading shared memory before writing it, as one kernel here does on
 * purpose, is undefined on a GPU. Exits non-zero on any failure. */
#include <cuda_runtime.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <vector>

#include "emu_check.h"

enum { BLOCKS = 64, THREADS = 64 };

static cudaStream_t stream; /* a non-blocking stream, as kao's context has: everything runs on it */

/* ---- kernels ----------------------------------------------------------------------------- */

/* log[k] = the block (by_block) or thread that ran k-th */
static __global__ void order_kernel(int *log, int *next, bool by_block) {
    if (by_block && threadIdx.x != 0) return;
    log[atomicAdd(next, 1)] = by_block ? (int)blockIdx.x : (int)threadIdx.x;
}

/* first_read[block] = the bits of shared memory as the block found it */
static __global__ void shared_kernel(uint32_t *first_read) {
    __shared__ float sh[THREADS];
    if (threadIdx.x == 0) memcpy(&first_read[blockIdx.x], &sh[0], sizeof(uint32_t));
    __syncthreads();
    sh[threadIdx.x] = (float)blockIdx.x;
    __syncthreads();
}

/* out = a·b + c as the compiler contracts it, or (rounded) with the rounding intrinsics, which are
 * never fused. Two kernels: one product used by both sums would not be contracted. */
static __global__ void fma_kernel(float *out, const float *in, bool rounded) {
    float a = in[0], b = in[1], c = in[2];
    *out = rounded ? __fadd_rn(__fmul_rn(a, b), c) : a * b + c;
}

static __global__ void partial_barrier_kernel(void) {
    if (threadIdx.x % 2) return;
    __syncthreads();
}

static __global__ void fill_kernel(float *p, float value) { p[threadIdx.x] = value; }

/* ---- launches (one per line, as the rewrite wants them) and copies ------------------------ */

/* A copy that returns once done (the emulator has the asynchronous calls the backend makes). */
static void copy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind) {
    cudaMemcpyAsync(dst, src, bytes, kind, stream);
    cudaStreamSynchronize(stream);
}

static std::vector<int> run_order(int blocks, int threads, bool by_block) {
    int n = by_block ? blocks : threads, *log = nullptr, *next = nullptr;
    cudaMalloc(&log, n * sizeof(int));
    cudaMalloc(&next, sizeof(int));
    cudaMemsetAsync(next, 0, sizeof(int), stream);
    order_kernel<<<blocks, threads, 0, stream>>>(log, next, by_block);
    std::vector<int> out((size_t)n);
    copy(out.data(), log, n * sizeof(int), cudaMemcpyDeviceToHost);
    cudaFree(log);
    cudaFree(next);
    return out;
}

static void launch_partial_barrier(void) {
    partial_barrier_kernel<<<1, 32, 0, stream>>>();
    cudaStreamSynchronize(stream);
}

static void launch_fill(float *p, unsigned threads, cudaStream_t on) {
    fill_kernel<<<1, threads, 0, on>>>(p, 1.0f);
}

/* ---- the checks -------------------------------------------------------------------------- */

static bool is_permutation(const std::vector<int> &v) {
    std::vector<char> seen(v.size(), 0);
    for (int x : v) {
        if (x < 0 || (size_t)x >= v.size() || seen[(size_t)x]) return false;
        seen[(size_t)x] = 1;
    }
    return true;
}

static bool is_identity(const std::vector<int> &v) {
    for (size_t i = 0; i < v.size(); i++)
        if (v[i] != (int)i) return false;
    return true;
}

/* Blocks, and a block's threads, run in an order of each launch's own. */
static void test_order(void) {
    for (bool by_block : {true, false}) {
        const char *what = by_block ? "blocks" : "threads";
        int blocks = by_block ? BLOCKS : 1;
        std::vector<int> first = run_order(blocks, THREADS, by_block), second = run_order(blocks, THREADS, by_block);
        CHECK(is_permutation(first) && is_permutation(second), "%s: each ran once", what);
        CHECK(!is_identity(first) && !is_identity(second), "%s ran in index order", what);
        CHECK(first != second, "%s ran in the same order in two launches", what);
    }
}

static void test_shared_poisoned(void) {
    uint32_t *d = nullptr;
    cudaMalloc(&d, BLOCKS * sizeof(uint32_t));
    shared_kernel<<<BLOCKS, THREADS, 0, stream>>>(d);
    std::vector<uint32_t> bits(BLOCKS);
    copy(bits.data(), d, BLOCKS * sizeof(uint32_t), cudaMemcpyDeviceToHost);
    cudaFree(d);
    for (int b = 0; b < BLOCKS; b++)
        CHECK(bits[(size_t)b] == 0xffffffffu, "block %d found shared memory holding %08x", b, (unsigned)bits[(size_t)b]);
}

/* a = b = 1 + 2⁻¹², c = −(1 + 2⁻¹¹): a·b = 1 + 2⁻¹¹ + 2⁻²⁴ rounds to −c, so the separately rounded
 * sum is 0 and the fused one 2⁻²⁴. */
static void test_contraction(void) {
    float in[3] = {1.0f + ldexpf(1.0f, -12), 1.0f + ldexpf(1.0f, -12), -(1.0f + ldexpf(1.0f, -11))}, out[2];
    float *d_in = nullptr, *d_out = nullptr;
    cudaMalloc(&d_in, sizeof in);
    cudaMalloc(&d_out, sizeof out);
    copy(d_in, in, sizeof in, cudaMemcpyHostToDevice);
    fma_kernel<<<1, 1, 0, stream>>>(d_out, d_in, false);
    fma_kernel<<<1, 1, 0, stream>>>(d_out + 1, d_in, true);
    copy(out, d_out, sizeof out, cudaMemcpyDeviceToHost);
    cudaFree(d_in);
    cudaFree(d_out);
    CHECK(out[1] == 0.0f, "__fadd_rn(__fmul_rn(a, b), c) = %g: fused", out[1]);
#if KAO_EMU_FMA
    CHECK(out[0] == ldexpf(1.0f, -24), "a·b + c = %g, not contracted into an FMA", out[0]);
#else
    CHECK(out[0] == 0.0f, "a·b + c = %g (no FMA on this CPU: expected unfused)", out[0]);
#endif
}

/* Work runs at the next synchronisation: page-locked memory read before it holds what it held. */
static void test_queue(void) {
    float *pinned = nullptr, *d = nullptr;
    cudaMallocHost((void **)&pinned, 4 * sizeof(float));
    cudaMalloc(&d, 4 * sizeof(float));
    memset(pinned, 0, 4 * sizeof(float));
    launch_fill(d, 4, stream);
    cudaMemcpyAsync(pinned, d, 4 * sizeof(float), cudaMemcpyDeviceToHost, stream);
    CHECK(pinned[0] == 0.0f, "an asynchronous copy ran before the wait");
    cudaStreamSynchronize(stream);
    CHECK(pinned[0] == 1.0f && pinned[3] == 1.0f, "the copy after the wait: %g %g", pinned[0], pinned[3]);

    /* a bad configuration queues nothing and is reported by cudaGetLastError */
    launch_fill(d, 2048, stream);
    CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration, "2048 threads per block accepted");
    CHECK(cudaGetLastError() == cudaSuccess, "cudaGetLastError did not clear");

    /* new device memory holds NaNs */
    float *fresh = nullptr, got = 0.0f;
    cudaMalloc(&fresh, sizeof(float));
    copy(&got, fresh, sizeof got, cudaMemcpyDeviceToHost);
    CHECK(isnan(got), "new device memory holds %g", got);
    cudaFree(fresh);
    cudaFree(d);
    cudaFreeHost(pinned);
}

static void test_failures(void) {
    expect_fail("a __syncthreads() reached by 16 of the 32 threads", launch_partial_barrier);
    expect_fail("host memory that is neither page-locked nor device memory", [] {
        static float pageable[4];
        launch_fill(pageable, 4, stream);
    });
    expect_fail("a kernel launched in launch_fill (line", [] {
        float *d = nullptr;
        cudaMalloc(&d, 4 * sizeof(float));
        launch_fill(d, 4, 0);
    });
    expect_fail("cudaMemsetAsync on the default stream", [] {
        float *d = nullptr;
        cudaMalloc(&d, sizeof(float));
        cudaMemsetAsync(d, 0, sizeof(float), 0);
    });
    expect_fail("host code reading device memory", [] {
        float *d = nullptr;
        cudaMalloc(&d, sizeof(float));
        volatile float x = d[0];
        (void)x;
    }, false);
}

int main(void) {
    cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
    test_order();
    test_shared_poisoned();
    test_contraction();
    test_queue();
    test_failures();
    cudaStreamDestroy(stream);
    printf("test_emu_runtime: %s (%d failure%s)\n", failures ? "FAILED" : "passed", failures, failures == 1 ? "" : "s");
    return failures ? 1 : 0;
}
