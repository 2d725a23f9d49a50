/* cuda_internal.cuh — what the backend's .cu files share: the context, the status checks, launch
 * arithmetic, the workspace, the row-major GEMMs, op names and the sigmoid/SiLU device functions.
 * Private to the backend; include/kao/cuda.h is the public API. */
#ifndef KAO_CUDA_INTERNAL_CUH
#define KAO_CUDA_INTERNAL_CUH

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <stddef.h>
#include <stdint.h>

#include <type_traits>

/* kao's C headers, with C linkage (cuda.h guards its own declarations). */
extern "C" {
#include "kao/arcface.h"
#include "kao/ops.h"
#include "kao/optim.h"
#include "kao/util.h"
}
#include "kao/cuda.h"

struct kao_cuda_ctx {
    int device;
    cudaStream_t stream;
    cublasHandle_t cublas;
    cudnnHandle_t cudnn;
    void *workspace;        /* device scratch, grown on demand; valid until the next request */
    size_t workspace_bytes;
    bool sync_each_op;      /* KAO_CUDA_SYNC=1: every op waits for its kernels (error locality) */
    bool verbose;           /* KAO_CUDA_VERBOSE=1: each convolution plan's choice on stderr */
    bool autotune;          /* KAO_CUDA_AUTOTUNE=1: plans time cuDNN's algorithms instead of ranking */
    bool tf32;              /* TF32 tensor-core math in cuDNN and cuBLAS (kao_cuda_set_tf32) */
    struct kao_conv_plan *conv_plans; /* (num_conv_plans) cuDNN set-ups by shape (conv.cu) */
    int num_conv_plans, conv_plans_capacity;
};

/* conv.cu: frees the context's cuDNN convolution plans (kao_cuda_destroy). */
void kao_conv_plans_free(kao_cuda_ctx *ctx);

/* Failure reporting: formats the op's shape text and aborts through kao_abort. The shape format
 * and its arguments are evaluated only when a call failed. */
[[noreturn]] void kao_cuda_fail(const char *file, int line, const char *op, const char *call,
                                const char *message, const char *shape_fmt, ...)
    __attribute__((format(printf, 6, 7)));
const char *kao_cublas_status_string(cublasStatus_t s);

/* An op's name in messages for its map type T (ops_t.cuh): the _gpu name for float, marked for bf16. */
#define KAO_OP(T, name) (std::is_same<T, float>::value ? name : name " (bf16)")

/* KAO_CUDA_CHECK(call, op, shape_fmt, args...) and the cuBLAS/cuDNN twins. */
#define KAO_CUDA_CHECK(call, op, ...)                                                              \
    do {                                                                                           \
        cudaError_t kao_e_ = (call);                                                               \
        if (kao_e_ != cudaSuccess)                                                                 \
            kao_cuda_fail(__FILE__, __LINE__, (op), #call, cudaGetErrorString(kao_e_), __VA_ARGS__); \
    } while (0)
#define KAO_CUBLAS_CHECK(call, op, ...)                                                            \
    do {                                                                                           \
        cublasStatus_t kao_s_ = (call);                                                            \
        if (kao_s_ != CUBLAS_STATUS_SUCCESS)                                                       \
            kao_cuda_fail(__FILE__, __LINE__, (op), #call, kao_cublas_status_string(kao_s_),       \
                          __VA_ARGS__);                                                            \
    } while (0)
#define KAO_CUDNN_CHECK(call, op, ...)                                                             \
    do {                                                                                           \
        cudnnStatus_t kao_s_ = (call);                                                             \
        if (kao_s_ != CUDNN_STATUS_SUCCESS)                                                        \
            kao_cuda_fail(__FILE__, __LINE__, (op), #call, cudnnGetErrorString(kao_s_), __VA_ARGS__); \
    } while (0)
/* After a kernel launch: a bad launch configuration now, or (KAO_CUDA_SYNC=1) a fault inside it. */
#define KAO_LAUNCH_CHECK(ctx, op, ...)                                                             \
    do {                                                                                           \
        KAO_CUDA_CHECK(cudaGetLastError(), (op), __VA_ARGS__);                                     \
        if ((ctx)->sync_each_op) KAO_CUDA_CHECK(cudaStreamSynchronize((ctx)->stream), (op), __VA_ARGS__); \
    } while (0)
/* After a cuBLAS or cuDNN call (whose own status was checked): clears a non-sticky error the library
 * may have left behind from an internal probe, so that it is not blamed on the next kernel launch,
 * and (KAO_CUDA_SYNC=1) waits, so that a fault inside the library's kernels is reported here. */
#define KAO_LIBRARY_DONE(ctx, op, ...)                                                             \
    do {                                                                                           \
        (void)cudaGetLastError();                                                                  \
        if ((ctx)->sync_each_op) KAO_CUDA_CHECK(cudaStreamSynchronize((ctx)->stream), (op), __VA_ARGS__); \
    } while (0)
/* Internal invariants of the backend (shapes the caller computed): kao_abort, never compiled out. */
#define KAO_CUDA_ASSERT(cond, op, ...)                                                             \
    do {                                                                                           \
        if (!(cond)) kao_cuda_fail(__FILE__, __LINE__, (op), "assertion `" #cond "`", "failed", __VA_ARGS__); \
    } while (0)

/* ---- launch arithmetic ------------------------------------------------------------------- */

enum { KAO_THREADS = 256 };

/* Blocks for a grid-stride loop over n elements: enough to fill the GPU, a fixed function of n. */
static inline unsigned kao_blocks(size_t n) {
    size_t b = (n + KAO_THREADS - 1) / KAO_THREADS;
    if (b < 1) b = 1;
    if (b > 65535u * 16u) b = 65535u * 16u;
    return (unsigned)b;
}

#define KAO_GRID_STRIDE(i, n)                                                                      \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                       \
         i += (size_t)gridDim.x * blockDim.x)

/* ---- workspace --------------------------------------------------------------------------- */

/* ctx's scratch of at least bytes; the previous contents and pointers are invalid after a call
 * that grows it. An op asks once, for everything it needs, and carves it. */
void *kao_cuda_workspace(kao_cuda_ctx *ctx, size_t bytes);

/* Carving one workspace request into aligned pieces: first count with a NULL base, then carve. */
typedef struct {
    char *base;
    size_t used;
} kao_carver;
static inline size_t kao_align256(size_t n) { return (n + 255) & ~(size_t)255; }
template <class T> static inline T *kao_carve(kao_carver *c, size_t count) {
    T *p = c->base ? (T *)(c->base + c->used) : (T *)nullptr;
    c->used += kao_align256(count * sizeof(T));
    return p;
}

/* ---- row-major GEMM (as cblas_sgemm with CblasRowMajor) ---------------------------------- */
/* C (M, N) = alpha · op(A) · op(B) + beta · C, all row-major with leading dimensions lda, ldb,
 * ldc. cuBLAS is column-major: row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ,
 * so the call swaps the operands. */
void kao_gemm_rm(kao_cuda_ctx *ctx, const char *op, bool trans_a, bool trans_b, int M, int N, int K,
                 float alpha, const float *A, int lda, const float *B, int ldb, float beta, float *C,
                 int ldc);
/* The same with each matrix's element type (cublasGemmEx, e.g. bf16 A and B with a bf16 or fp32 C),
 * accumulating in fp32 (CUBLAS_COMPUTE_32F; alpha and beta are floats). */
void kao_gemm_rm_ex(kao_cuda_ctx *ctx, const char *op, bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                    const void *A, cudaDataType_t a_type, int lda, const void *B, cudaDataType_t b_type, int ldb,
                    float beta, void *C, cudaDataType_t c_type, int ldc);

/* ---- device math ------------------------------------------------------------------------- */

/* sigmoid(x) and 1 − sigmoid(x), both from e = exp(−|x|) (nothing overflows, both to full
 * relative precision), as the CPU's kao_sigmoid_pair8 computes them. */
static __device__ __forceinline__ void kao_sigmoid_pair(float x, float *s, float *one_minus_s) {
    float e = expf(-fabsf(x));
    float big = 1.0f / (1.0f + e), small = e * big;
    *s = x >= 0.0f ? big : small;
    *one_minus_s = x >= 0.0f ? small : big;
}
static __device__ __forceinline__ float kao_sigmoid(float x) {
    float s, t;
    kao_sigmoid_pair(x, &s, &t);
    return s;
}
static __device__ __forceinline__ float kao_silu(float x) { return x * kao_sigmoid(x); }
/* silu'(x) = s·(1 + x·(1 − s)) */
static __device__ __forceinline__ float kao_silu_grad(float x) {
    float s, t;
    kao_sigmoid_pair(x, &s, &t);
    return s * (1.0f + x * t);
}

/* Column sums of a small (rows, C) matrix added to out (C), one thread per column summing its
 * rows in order in float — the order the CPU ops use (bias gradients over a batch). */
void kao_colsum_rows_add(float *out, const float *x, int rows, int C, kao_cuda_ctx *ctx, const char *op);
/* out (rows, C) = bias (C) broadcast to every row, or zeros when bias is NULL. */
void kao_broadcast_rows(float *out, const float *bias, int rows, int C, kao_cuda_ctx *ctx, const char *op);

#endif
