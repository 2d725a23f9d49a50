/* cublas.cpp — the CUDA emulator's cuBLAS: the handle calls and the two GEMMs kao uses
 * (cublasSgemm, cublasGemmEx), as reference loops on host memory (emu_runtime.h).
 *
 * Column-major C = alpha·op(A)·op(B) + beta·C, arguments validated as cuBLAS does. Each dot
 * product is accumulated in double and rounded once to C's type (fp32, or bf16 to nearest even).
 * Under CUBLAS_TF32_TENSOR_OP_MATH fp32 A and B are first rounded to TF32, as tensor cores take
 * them; in the other modes the fp32 math is exact up to the final rounding. Alpha and beta are host
 * pointers (pointer mode host) read at call time; the product runs in stream order, queued. */
#include <cublas_v2.h>
#include <cuda_bf16.h>

#include <algorithm>
#include <vector>

#include "emu_runtime.h"

struct cublasContext {
    cudaStream_t stream;
    cublasMath_t math; /* TF32 mode: fp32 operands rounded to TF32 */
};

namespace {

size_t type_size(cudaDataType_t t) { return t == CUDA_R_32F ? sizeof(float) : sizeof(__nv_bfloat16); }

/* cuBLAS's combinations for compute type 32F among fp32 and bf16: A and B of one type; C fp32,
 * or bf16 with bf16 A and B. */
bool supported_types(cudaDataType_t a, cudaDataType_t b, cudaDataType_t c) {
    if (a != b) return false;
    if (a == CUDA_R_32F) return c == CUDA_R_32F;
    return a == CUDA_R_16BF && (c == CUDA_R_16BF || c == CUDA_R_32F);
}

double load(const void *p, cudaDataType_t t, size_t i) {
    if (t == CUDA_R_32F) return static_cast<const float *>(p)[i];
    return __bfloat162float(static_cast<const __nv_bfloat16 *>(p)[i]);
}

/* Rounds once: double → float, or double → bf16 directly (not through float, which could round twice). */
void store(void *p, cudaDataType_t t, size_t i, double v) {
    if (t == CUDA_R_32F) static_cast<float *>(p)[i] = static_cast<float>(v);
    else static_cast<__nv_bfloat16 *>(p)[i] = __double2bfloat16(v);
}

const char *op_name(cublasOperation_t op) { return op == CUBLAS_OP_N ? "N" : "T"; }

/* A rows × cols column-major operand with leading dimension ld must be device memory up to its
 * last element. */
void check_operand(const char *fn, const char *name, const void *p, cudaDataType_t t, int rows, int cols, int ld,
                   cublasOperation_t op) {
    size_t bytes = ((size_t)(cols - 1) * (size_t)ld + (size_t)rows) * type_size(t);
    if (!kao_emu::is_device(p, bytes))
        kao_emu::fail("%s: %s (%d x %d stored, op %s, ld %d) at %p is not device memory covering %zu bytes", fn, name,
                      rows, cols, op_name(op), ld, p, bytes);
}

/* kao's calls must run on its stream: without one, a GPU runs them on the legacy default stream,
 * unordered with kao's non-blocking one. */
void require_stream(cublasHandle_t handle, const char *fn) {
    if (!handle->stream) kao_emu::fail("%s: the handle has no stream (cublasSetStream)", fn);
}

/* Both GEMMs, past the handle and scalar checks: validation as cuBLAS, then the product queued. */
cublasStatus_t gemm(cublasHandle_t handle, const char *fn, cublasOperation_t transa, cublasOperation_t transb, int m,
                    int n, int k, float alpha, const void *A, cudaDataType_t at, int lda, const void *B,
                    cudaDataType_t bt, int ldb, float beta, void *C, cudaDataType_t ct, int ldc) {
    bool ops_ok = (transa == CUBLAS_OP_N || transa == CUBLAS_OP_T || transa == CUBLAS_OP_C) &&
                  (transb == CUBLAS_OP_N || transb == CUBLAS_OP_T || transb == CUBLAS_OP_C);
    if (!ops_ok || m < 0 || n < 0 || k < 0) return CUBLAS_STATUS_INVALID_VALUE;
    /* Real data: conjugate transpose is the transpose. */
    bool ta = transa != CUBLAS_OP_N, tb = transb != CUBLAS_OP_N;
    int a_rows = ta ? k : m, a_cols = ta ? m : k, b_rows = tb ? n : k, b_cols = tb ? k : n;
    if (lda < std::max(1, a_rows) || ldb < std::max(1, b_rows) || ldc < std::max(1, m))
        return CUBLAS_STATUS_INVALID_VALUE;
    if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS; /* nothing to compute, nothing read */
    /* A and B are read only when they contribute (BLAS: not referenced for k = 0 or alpha = 0). */
    bool product = k > 0 && alpha != 0.0f;
    if (product) {
        check_operand(fn, "A", A, at, a_rows, a_cols, lda, transa);
        check_operand(fn, "B", B, bt, b_rows, b_cols, ldb, transb);
    }
    check_operand(fn, "C", C, ct, m, n, ldc, CUBLAS_OP_N);
    int base = (int)handle->math & ~(int)CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION;
    bool tf32 = base == CUBLAS_TF32_TENSOR_OP_MATH && at == CUDA_R_32F;
    /* an operand element as the product takes it */
    auto operand = [tf32](const void *p, cudaDataType_t t, size_t i) {
        return tf32 ? (double)kao_emu::round_tf32((float)load(p, t, i)) : load(p, t, i);
    };
    kao_emu::enqueue([=]() {
        /* op(A)'s rows and op(B)'s columns as doubles, each contiguous along the k of the sums. */
        int kk = product ? k : 0;
        std::vector<double> a_rows_d((size_t)m * kk), b_cols_d((size_t)n * kk);
        for (int l = 0; l < kk; l++) {
            for (int i = 0; i < m; i++)
                a_rows_d[(size_t)i * kk + l] = operand(A, at, ta ? l + (size_t)i * lda : i + (size_t)l * lda);
            for (int j = 0; j < n; j++)
                b_cols_d[(size_t)j * kk + l] = operand(B, bt, tb ? j + (size_t)l * ldb : l + (size_t)j * ldb);
        }
        for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++) {
                const double *ar = a_rows_d.data() + (size_t)i * kk, *bc = b_cols_d.data() + (size_t)j * kk;
                double acc = 0.0;
                for (int l = 0; l < kk; l++) acc += ar[l] * bc[l];
                size_t ci = i + (size_t)j * ldc;
                /* beta = 0: C is not read (it may hold NaN or Inf). */
                double old = beta != 0.0f ? (double)beta * load(C, ct, ci) : 0.0;
                store(C, ct, ci, (double)alpha * acc + old);
            }
    });
    return CUBLAS_STATUS_SUCCESS;
}

} // namespace

extern "C" {

cublasStatus_t cublasCreate_v2(cublasHandle_t *handle) {
    if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
    *handle = new cublasContext{nullptr, CUBLAS_DEFAULT_MATH};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy_v2(cublasHandle_t handle) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t streamId) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    handle->stream = streamId;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    /* One base mode, optionally with the flag that keeps reductions in the compute type. */
    int base = (int)mode & ~(int)CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION;
    if (base != CUBLAS_DEFAULT_MATH && base != CUBLAS_TENSOR_OP_MATH && base != CUBLAS_PEDANTIC_MATH &&
        base != CUBLAS_TF32_TENSOR_OP_MATH)
        return CUBLAS_STATUS_INVALID_VALUE;
    handle->math = mode;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSgemm_v2(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                              int k, const float *alpha, const float *A, int lda, const float *B, int ldb,
                              const float *beta, float *C, int ldc) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!alpha || !beta) return CUBLAS_STATUS_INVALID_VALUE;
    require_stream(handle, "cublasSgemm");
    return gemm(handle, "cublasSgemm", transa, transb, m, n, k, *alpha, A, CUDA_R_32F, lda, B, CUDA_R_32F, ldb, *beta, C,
                CUDA_R_32F, ldc);
}

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                            int k, const void *alpha, const void *A, cudaDataType Atype, int lda, const void *B,
                            cudaDataType Btype, int ldb, const void *beta, void *C, cudaDataType Ctype, int ldc,
                            cublasComputeType_t computeType, cublasGemmAlgo_t algo) {
    (void)algo; /* every algorithm computes the same product here */
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (computeType != CUBLAS_COMPUTE_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
    require_stream(handle, "cublasGemmEx");
    if (!supported_types(Atype, Btype, Ctype)) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (!alpha || !beta) return CUBLAS_STATUS_INVALID_VALUE;
    /* Compute type 32F: the scalars are floats. */
    return gemm(handle, "cublasGemmEx", transa, transb, m, n, k, *static_cast<const float *>(alpha), A, Atype, lda, B,
                Btype, ldb, *static_cast<const float *>(beta), C, Ctype, ldc);
}

} // extern "C"
