/* context.cu — device discovery, the context (stream, cuBLAS, cuDNN, workspace), device memory,
 * error reporting, the row-major GEMMs (fp32, and mixed types for bf16 maps) and the small shared
 * kernels. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.cuh"
#include "reduce.cuh"

/* ---- errors ------------------------------------------------------------------------------ */

void kao_cuda_fail(const char *file, int line, const char *op, const char *call, const char *message,
                   const char *shape_fmt, ...) {
    char shape[512];
    va_list args;
    va_start(args, shape_fmt);
    vsnprintf(shape, sizeof shape, shape_fmt, args);
    va_end(args);
    kao_abort(file, line, "CUDA backend: %s: %s: %s [%s]", op, call, message, shape);
    abort(); /* kao_abort does not return */
}

const char *kao_cublas_status_string(cublasStatus_t s) {
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "success";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "cuBLAS not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED: return "cuBLAS allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE: return "cuBLAS invalid value";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "cuBLAS architecture mismatch";
    case CUBLAS_STATUS_MAPPING_ERROR: return "cuBLAS mapping error";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "cuBLAS execution failed";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "cuBLAS internal error";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "cuBLAS not supported";
    case CUBLAS_STATUS_LICENSE_ERROR: return "cuBLAS license error";
    }
    return "unknown cuBLAS status";
}

/* ---- device and context ------------------------------------------------------------------ */

int kao_cuda_available(char *why, size_t n) {
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    const char *reason = NULL;
    if (e != cudaSuccess) reason = cudaGetErrorString(e);
    else if (count < 1) reason = "no CUDA-capable device";
    if (reason) {
        if (why && n > 0) snprintf(why, n, "%s", reason);
        cudaGetLastError(); /* clear the error so later calls do not see it */
        return 0;
    }
    if (why && n > 0) snprintf(why, n, "%d device%s", count, count == 1 ? "" : "s");
    return 1;
}

int kao_cuda_device_count(void) {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return count;
}

/* The default math mode keeps fp32 GEMMs in fp32 (TF32 only on request; said explicitly). GEMMs with a
 * bf16 output (kao_gemm_rm_ex) reduce split-K partials in fp32, not in bf16 (no effect on fp32 ones). */
static cublasMath_t cublas_math(bool tf32) {
    return (cublasMath_t)((tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH) |
                          CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION);
}

kao_cuda_ctx *kao_cuda_create(int device) {
    const char *op = "kao_cuda_create";
    kao_cuda_ctx *ctx = (kao_cuda_ctx *)kao_calloc(1, sizeof *ctx, "CUDA context");
    ctx->device = device;
    KAO_CUDA_CHECK(cudaSetDevice(device), op, "device %d", device);
    KAO_CUDA_CHECK(cudaStreamCreateWithFlags(&ctx->stream, cudaStreamNonBlocking), op, "device %d", device);
    KAO_CUBLAS_CHECK(cublasCreate(&ctx->cublas), op, "device %d", device);
    KAO_CUBLAS_CHECK(cublasSetStream(ctx->cublas, ctx->stream), op, "device %d", device);
    KAO_CUBLAS_CHECK(cublasSetMathMode(ctx->cublas, cublas_math(false)), op, "device %d", device);
    KAO_CUDNN_CHECK(cudnnCreate(&ctx->cudnn), op, "device %d", device);
    KAO_CUDNN_CHECK(cudnnSetStream(ctx->cudnn, ctx->stream), op, "device %d", device);
    (void)cudaGetLastError(); /* whatever the libraries' set-up left behind (their statuses were checked) */
    const char *sync = getenv("KAO_CUDA_SYNC");
    ctx->sync_each_op = sync && strcmp(sync, "1") == 0;
    const char *verbose = getenv("KAO_CUDA_VERBOSE");
    ctx->verbose = verbose && strcmp(verbose, "1") == 0;
    const char *autotune = getenv("KAO_CUDA_AUTOTUNE");
    ctx->autotune = autotune && strcmp(autotune, "1") == 0;
    return ctx;
}

void kao_cuda_destroy(kao_cuda_ctx *ctx) {
    if (!ctx) return;
    const char *op = "kao_cuda_destroy";
    KAO_CUDA_CHECK(cudaStreamSynchronize(ctx->stream), op, "device %d", ctx->device);
    kao_conv_plans_free(ctx);
    if (ctx->workspace) KAO_CUDA_CHECK(cudaFree(ctx->workspace), op, "workspace %zu bytes", ctx->workspace_bytes);
    KAO_CUDNN_CHECK(cudnnDestroy(ctx->cudnn), op, "device %d", ctx->device);
    KAO_CUBLAS_CHECK(cublasDestroy(ctx->cublas), op, "device %d", ctx->device);
    KAO_CUDA_CHECK(cudaStreamDestroy(ctx->stream), op, "device %d", ctx->device);
    free(ctx);
}

void kao_cuda_set_tf32(kao_cuda_ctx *ctx, bool tf32) {
    ctx->tf32 = tf32;
    KAO_CUBLAS_CHECK(cublasSetMathMode(ctx->cublas, cublas_math(tf32)),
                     "kao_cuda_set_tf32", "tf32 %d", (int)tf32);
}

void kao_cuda_sync(kao_cuda_ctx *ctx) {
    KAO_CUDA_CHECK(cudaStreamSynchronize(ctx->stream), "kao_cuda_sync", "device %d", ctx->device);
}

void kao_cuda_describe(kao_cuda_ctx *ctx, char *out, size_t n) {
    cudaDeviceProp p;
    KAO_CUDA_CHECK(cudaGetDeviceProperties(&p, ctx->device), "kao_cuda_describe", "device %d", ctx->device);
    snprintf(out, n, "%s, compute %d.%d, %d SMs, cuDNN %zu, cuBLAS %d%s", p.name, p.major, p.minor,
             p.multiProcessorCount, cudnnGetVersion(), CUBLAS_VERSION,
             ctx->autotune ? ", convolutions autotuned" : "");
}

void *kao_cuda_workspace(kao_cuda_ctx *ctx, size_t bytes) {
    if (bytes <= ctx->workspace_bytes) return ctx->workspace;
    const char *op = "kao_cuda_workspace";
    size_t grow = (bytes + ((size_t)1 << 20) - 1) & ~(((size_t)1 << 20) - 1); /* whole MiB */
    /* No queued kernel may still use the old block (said explicitly: the stream is non-blocking). */
    KAO_CUDA_CHECK(cudaStreamSynchronize(ctx->stream), op, "growing to %zu bytes", grow);
    if (ctx->workspace) KAO_CUDA_CHECK(cudaFree(ctx->workspace), op, "%zu bytes", ctx->workspace_bytes);
    ctx->workspace = NULL;
    ctx->workspace_bytes = 0;
    KAO_CUDA_CHECK(cudaMalloc(&ctx->workspace, grow), op, "growing to %zu bytes", grow);
    ctx->workspace_bytes = grow;
    return ctx->workspace;
}

/* ---- memory ------------------------------------------------------------------------------ */

void *kao_cuda_malloc(size_t bytes, const char *what) {
    void *p = NULL;
    KAO_CUDA_CHECK(cudaMalloc(&p, bytes ? bytes : 1), "kao_cuda_malloc", "%zu bytes for %s", bytes, what);
    return p;
}

void kao_cuda_free(void *dev) {
    if (dev) KAO_CUDA_CHECK(cudaFree(dev), "kao_cuda_free", "%p", dev);
}

void kao_cuda_to_device(kao_cuda_ctx *ctx, void *dev, const void *host, size_t bytes) {
    const char *op = "kao_cuda_to_device";
    KAO_CUDA_CHECK(cudaMemcpyAsync(dev, host, bytes, cudaMemcpyHostToDevice, ctx->stream), op, "%zu bytes", bytes);
    /* Host memory may be pinned by the caller, in which case the copy is still running: wait. */
    KAO_CUDA_CHECK(cudaStreamSynchronize(ctx->stream), op, "%zu bytes", bytes);
}

void kao_cuda_to_host(kao_cuda_ctx *ctx, void *host, const void *dev, size_t bytes) {
    const char *op = "kao_cuda_to_host";
    KAO_CUDA_CHECK(cudaMemcpyAsync(host, dev, bytes, cudaMemcpyDeviceToHost, ctx->stream), op, "%zu bytes", bytes);
    KAO_CUDA_CHECK(cudaStreamSynchronize(ctx->stream), op, "%zu bytes", bytes);
}

void kao_cuda_copy(kao_cuda_ctx *ctx, void *dst_dev, const void *src_dev, size_t bytes) {
    KAO_CUDA_CHECK(cudaMemcpyAsync(dst_dev, src_dev, bytes, cudaMemcpyDeviceToDevice, ctx->stream),
                   "kao_cuda_copy", "%zu bytes", bytes);
}

void kao_cuda_zero(kao_cuda_ctx *ctx, void *dev, size_t bytes) {
    KAO_CUDA_CHECK(cudaMemsetAsync(dev, 0, bytes, ctx->stream), "kao_cuda_zero", "%zu bytes", bytes);
}

/* ---- GEMM -------------------------------------------------------------------------------- */

void kao_gemm_rm(kao_cuda_ctx *ctx, const char *op, bool trans_a, bool trans_b, int M, int N, int K,
                 float alpha, const float *A, int lda, const float *B, int ldb, float beta, float *C,
                 int ldc) {
    if (M == 0 || N == 0) return;
    KAO_CUBLAS_CHECK(cublasSgemm(ctx->cublas, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                 trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha, B, ldb, A, lda,
                                 &beta, C, ldc),
                     op, "row-major gemm %c%c M %d N %d K %d, lda %d ldb %d ldc %d", trans_a ? 'T' : 'N',
                     trans_b ? 'T' : 'N', M, N, K, lda, ldb, ldc);
    KAO_LIBRARY_DONE(ctx, op, "gemm M %d N %d K %d", M, N, K);
}

void kao_gemm_rm_ex(kao_cuda_ctx *ctx, const char *op, bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                    const void *A, cudaDataType_t a_type, int lda, const void *B, cudaDataType_t b_type, int ldb,
                    float beta, void *C, cudaDataType_t c_type, int ldc) {
    if (M == 0 || N == 0) return;
    KAO_CUBLAS_CHECK(cublasGemmEx(ctx->cublas, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                                  N, M, K, &alpha, B, b_type, ldb, A, a_type, lda, &beta, C, c_type, ldc,
                                  CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                     op, "row-major gemm %c%c M %d N %d K %d, lda %d ldb %d ldc %d, types A %d B %d C %d",
                     trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, lda, ldb, ldc, (int)a_type, (int)b_type,
                     (int)c_type);
    KAO_LIBRARY_DONE(ctx, op, "gemm M %d N %d K %d", M, N, K);
}

/* ---- shared small kernels ---------------------------------------------------------------- */

__global__ void kao_colsum_final_kernel(double *totals, const double *part, int chunks, int nv, int C) {
    size_t n = (size_t)nv * C;
    KAO_GRID_STRIDE(i, n) {
        size_t k = i / (size_t)C, c = i % (size_t)C;
        double s = 0.0;
        for (int r = 0; r < chunks; r++) s += part[((size_t)r * nv + k) * C + c];
        totals[i] = s;
    }
}

static __global__ void colsum_rows_add_kernel(float *out, const float *x, int rows, int C) {
    KAO_GRID_STRIDE(c, (size_t)C) {
        float acc = out[c];
        for (int r = 0; r < rows; r++) acc += x[(size_t)r * C + c];
        out[c] = acc;
    }
}

void kao_colsum_rows_add(float *out, const float *x, int rows, int C, kao_cuda_ctx *ctx, const char *op) {
    colsum_rows_add_kernel<<<kao_blocks((size_t)C), KAO_THREADS, 0, ctx->stream>>>(out, x, rows, C);
    KAO_LAUNCH_CHECK(ctx, op, "column sums of (%d, %d)", rows, C);
}

static __global__ void broadcast_rows_kernel(float *out, const float *bias, int rows, int C) {
    KAO_GRID_STRIDE(i, (size_t)rows * C) out[i] = bias ? bias[i % (size_t)C] : 0.0f;
}

void kao_broadcast_rows(float *out, const float *bias, int rows, int C, kao_cuda_ctx *ctx, const char *op) {
    broadcast_rows_kernel<<<kao_blocks((size_t)rows * C), KAO_THREADS, 0, ctx->stream>>>(out, bias, rows, C);
    KAO_LAUNCH_CHECK(ctx, op, "broadcast (%d) to (%d, %d)", C, rows, C);
}
