/* test_emu_libs.cpp — self-test of the CUDA emulator's cuBLAS and cuDNN (cublas.cpp, cudnn.cpp) on
 * its runtime, against direct loops written here: queued work runs at kao_emu::drain() (a stream
 * synchronisation), so the tests can destroy descriptors before the work runs. A ctest test of the
 * emulator build (-DKAO_CUDA_EMULATOR=ON); exits non-zero on any failure. */
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cudnn.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <functional>
#include <vector>

#include "device_memory.h"
#include "emu_check.h"
#include "emu_runtime.h"

/* ---- device memory: the emulator's, which this test fills and reads straight from the host (it
 * checks the libraries, not the host/device boundary), so it keeps the host's access open ---- */

static void run_queued() {
    kao_emu::drain();
    kao_emu::device_access(true);
}

static std::vector<void *> blocks;
template <class T> static T *dev(size_t n) {
    void *p = nullptr;
    if (cudaMalloc(&p, n * sizeof(T)) != cudaSuccess) abort();
    blocks.push_back(p);
    return (T *)p;
}
static void free_all() {
    for (void *p : blocks) cudaFree(p);
}

static uint32_t seed = 12345;
static float uniform() { /* in [-1, 1) */
    seed = seed * 1664525u + 1013904223u;
    return (float)(seed >> 8) / (float)(1u << 23) - 1.0f;
}

/* |got - want| within one fp32 rounding of want (plus summation-order noise). */
static bool close_f32(double got, double want) { return fabs(got - want) <= ldexp(fabs(want), -23) + 1e-12; }

/* ---- cuBLAS ---- */

static void test_gemm() {
    cublasHandle_t h;
    cudaStream_t stream;
    CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) == cudaSuccess, "stream");
    CHECK(cublasCreate(&h) == CUBLAS_STATUS_SUCCESS && cublasSetStream(h, stream) == CUBLAS_STATUS_SUCCESS, "create");
    cublasMath_t math = (cublasMath_t)(CUBLAS_DEFAULT_MATH | CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION);
    CHECK(cublasSetMathMode(h, math) == CUBLAS_STATUS_SUCCESS, "math mode");
    const int m = 5, n = 4, k = 3, ldc = m + 3;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            int a_rows = ta ? k : m, a_cols = ta ? m : k, lda = a_rows + 2;
            int b_rows = tb ? n : k, b_cols = tb ? k : n, ldb = b_rows + 1;
            float *A = dev<float>((size_t)lda * a_cols), *B = dev<float>((size_t)ldb * b_cols);
            float *C = dev<float>((size_t)ldc * n);
            for (int i = 0; i < lda * a_cols; i++) A[i] = uniform();
            for (int i = 0; i < ldb * b_cols; i++) B[i] = uniform();
            for (int i = 0; i < ldc * n; i++) C[i] = i % ldc < m ? uniform() : 777.0f;
            std::vector<float> C0(C, C + ldc * n);
            for (float beta : {-0.5f, 0.0f}) {
                if (beta == 0.0f)
                    for (int i = 0; i < ldc * n; i++) C[i] = i % ldc < m ? NAN : 777.0f; /* must not be read */
                const float alpha = 1.5f;
                CHECK(cublasSgemm(h, ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb ? CUBLAS_OP_T : CUBLAS_OP_N, m, n, k, &alpha,
                                  A, lda, B, ldb, &beta, C, ldc) == CUBLAS_STATUS_SUCCESS, "sgemm");
                run_queued();
                for (int j = 0; j < n; j++)
                    for (int i = 0; i < ldc; i++) {
                        if (i >= m) {
                            CHECK(C[i + j * ldc] == 777.0f, "padding of C written at %d,%d", i, j);
                            continue;
                        }
                        double want = 0.0;
                        for (int l = 0; l < k; l++)
                            want += (double)(ta ? A[l + i * lda] : A[i + l * lda]) *
                                    (tb ? B[j + l * ldb] : B[l + j * ldb]);
                        want = alpha * want + (beta != 0.0f ? (double)beta * C0[i + j * ldc] : 0.0);
                        CHECK(close_f32(C[i + j * ldc], want), "sgemm %d%d beta %g (%d,%d): %g vs %g", ta, tb, beta,
                              i, j, C[i + j * ldc], want);
                    }
            }
        }
    /* TF32 math: fp32 A and B rounded to TF32, then the exact sum rounded once. */
    {
        float *A = dev<float>(m * k), *B = dev<float>(k * n), *C = dev<float>(m * n);
        for (int i = 0; i < m * k; i++) A[i] = uniform();
        for (int i = 0; i < k * n; i++) B[i] = uniform();
        const float one = 1.0f, zero = 0.0f;
        CHECK(cublasSetMathMode(h, CUBLAS_TF32_TENSOR_OP_MATH) == CUBLAS_STATUS_SUCCESS, "tf32 mode");
        CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, A, m, B, k, &zero, C, m) ==
                  CUBLAS_STATUS_SUCCESS, "sgemm tf32");
        run_queued();
        int moved = 0; /* elements the operands' rounding moved past one fp32 rounding of the exact sum */
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                double want = 0.0, exact = 0.0;
                for (int l = 0; l < k; l++) {
                    float a = A[i + l * m], b = B[l + j * k];
                    want += (double)kao_emu::round_tf32(a) * kao_emu::round_tf32(b);
                    exact += (double)a * b;
                }
                CHECK(close_f32(C[i + j * m], want), "sgemm tf32 (%d,%d): %g vs %g", i, j, C[i + j * m], want);
                moved += !close_f32(C[i + j * m], exact);
            }
        CHECK(moved > 0, "TF32 math gave the fp32 product");
        CHECK(cublasSetMathMode(h, math) == CUBLAS_STATUS_SUCCESS, "math mode back");
    }
    /* bf16 A and B (exact products), C in bf16 and in fp32: one rounding of the exact sum. */
    __nv_bfloat16 *A = dev<__nv_bfloat16>(m * k), *B = dev<__nv_bfloat16>(k * n), *Cb = dev<__nv_bfloat16>(m * n);
    float *Cf = dev<float>(m * n);
    for (int i = 0; i < m * k; i++) A[i] = __float2bfloat16_rn(uniform());
    for (int i = 0; i < k * n; i++) B[i] = __float2bfloat16_rn(uniform());
    const float one = 1.0f, zero = 0.0f;
    CHECK(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, A, CUDA_R_16BF, m, B, CUDA_R_16BF, k, &zero, Cb,
                       CUDA_R_16BF, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS,
          "gemmex bf16");
    CHECK(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, A, CUDA_R_16BF, m, B, CUDA_R_16BF, k, &zero, Cf,
                       CUDA_R_32F, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS, "gemmex fp32");
    run_queued();
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double want = 0.0;
            for (int l = 0; l < k; l++)
                want += (double)__bfloat162float(A[i + l * m]) * __bfloat162float(B[l + j * k]);
            CHECK(__bfloat162float(Cb[i + j * m]) == __bfloat162float(__double2bfloat16(want)), "bf16 C (%d,%d)", i, j);
            CHECK(Cf[i + j * m] == (float)want, "fp32 C (%d,%d)", i, j);
        }
    /* Arguments cuBLAS rejects. */
    float *F = dev<float>(m * k);
    CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, F, m - 1, F, k, &zero, Cf, m) ==
              CUBLAS_STATUS_INVALID_VALUE, "lda < m");
    CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_T, m, n, k, &one, F, m, F, n - 1, &zero, Cf, m) ==
              CUBLAS_STATUS_INVALID_VALUE, "ldb < n with B transposed");
    CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, F, m, F, k, &zero, Cf, m - 1) ==
              CUBLAS_STATUS_INVALID_VALUE, "ldc < m");
    CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, -1, n, k, &one, F, m, F, k, &zero, Cf, m) ==
              CUBLAS_STATUS_INVALID_VALUE, "m < 0");
    CHECK(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, F, CUDA_R_32F, m, F, CUDA_R_32F, k, &zero, Cb,
                       CUDA_R_16BF, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_NOT_SUPPORTED,
          "fp32 A, B with bf16 C");
    CHECK(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, F, CUDA_R_32F, m, F, CUDA_R_32F, k, &zero, Cf,
                       CUDA_R_32F, m, CUBLAS_COMPUTE_64F, CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_NOT_SUPPORTED,
          "compute 64F");
    float host[64] = {0};
    expect_fail("cublasSgemm: A", [&] {
        cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, host, m, F, k, &zero, Cf, m);
    });
    CHECK(cublasDestroy(h) == CUBLAS_STATUS_SUCCESS, "destroy");
}

/* ---- cuDNN ---- */

/* N×C×H×W input, K 3×3 filters, stride 2, pad 1; layout NCHW (filter KCRS) or NHWC (KRSC). */
struct conv_case {
    bool nhwc;
    int dil;
    cudnnDataType_t dtype;
};
enum { N = 2, C = 3, H = 7, W = 6, K = 4, R = 3, STRIDE = 2, PAD = 1 };

static size_t at(bool nhwc, int c, int h, int w, int a, int b, int y, int x) {
    return nhwc ? (((size_t)a * h + y) * w + x) * c + b : (((size_t)a * c + b) * h + y) * w + x;
}

/* The three directions written out: y = xcorr(x, w), dx = its transpose on dy, dw = Σ x·dy. */
struct reference {
    std::vector<double> y, dx, dw;
};
static reference direct(const conv_case &cc, int P, int Q, const std::vector<double> &x, const std::vector<double> &w,
                        const std::vector<double> &dy) {
    reference r{std::vector<double>(N * K * P * Q), std::vector<double>(N * C * H * W),
                std::vector<double>(K * C * R * R)};
    bool f = cc.nhwc;
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++)
            for (int p = 0; p < P; p++)
                for (int q = 0; q < Q; q++)
                    for (int c = 0; c < C; c++)
                        for (int i = 0; i < R; i++)
                            for (int j = 0; j < R; j++) {
                                int yy = p * STRIDE - PAD + i * cc.dil, xx = q * STRIDE - PAD + j * cc.dil;
                                if (yy < 0 || yy >= H || xx < 0 || xx >= W) continue;
                                size_t xi = at(f, C, H, W, n, c, yy, xx), wi = at(f, C, R, R, k, c, i, j);
                                size_t yi = at(f, K, P, Q, n, k, p, q);
                                r.y[yi] += x[xi] * w[wi];
                                r.dx[xi] += dy[yi] * w[wi];
                                r.dw[wi] += x[xi] * dy[yi];
                            }
    return r;
}

static double dot(const std::vector<double> &a, const std::vector<double> &b) {
    double s = 0.0;
    for (size_t i = 0; i < a.size(); i++) s += a[i] * b[i];
    return s;
}

template <class Perf> static void check_list(const char *what, const Perf *perf, int n, cudnnMathType_t math) {
    CHECK(n == 4, "%s: %d algorithms", what, n);
    if (n != 4) return;
    CHECK(perf[0].status == CUDNN_STATUS_SUCCESS && perf[0].determinism == CUDNN_NON_DETERMINISTIC, "%s [0]", what);
    CHECK(perf[1].status == CUDNN_STATUS_NOT_SUPPORTED, "%s [1]", what);
    CHECK(perf[2].status == CUDNN_STATUS_SUCCESS && perf[2].determinism == CUDNN_DETERMINISTIC &&
              perf[2].memory == 64 * K, "%s [2]", what);
    CHECK(perf[3].status == CUDNN_STATUS_SUCCESS && perf[3].determinism == CUDNN_DETERMINISTIC &&
              perf[3].memory == 0, "%s [3]", what);
    for (int i = 0; i < n; i++) CHECK(perf[i].mathType == math, "%s [%d] math %d", what, i, (int)perf[i].mathType);
}

/* Device data in T from values, which are replaced by what T holds of them. */
template <class T> static T *upload(std::vector<double> &v) {
    T *d = dev<T>(v.size());
    for (size_t i = 0; i < v.size(); i++) {
        if constexpr (sizeof(T) == 4) d[i] = (float)v[i], v[i] = d[i];
        else d[i] = __double2bfloat16(v[i]), v[i] = __bfloat162float(d[i]);
    }
    return d;
}
template <class T> static double value(const T *d, size_t i) {
    if constexpr (sizeof(T) == 4) return d[i];
    else return __bfloat162float(d[i]);
}
/* The value T holds of want, rounded once. */
template <class T> static double rounded(double want) {
    if constexpr (sizeof(T) == 4) return (float)want;
    else return __bfloat162float(__double2bfloat16(want));
}
/* An output element against the exact sum want: fp32 within one rounding of it (the summation
 * orders differ); bf16 data make exact products and sums here, so exactly its one rounding. */
template <class T> static bool matches(double got, double want) {
    return got == rounded<T>(want) || (sizeof(T) == 4 && close_f32(got, want));
}

template <class T> static void test_conv(cudnnHandle_t h, const conv_case &cc, bool integers) {
    cudnnTensorFormat_t fmt = cc.nhwc ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
    int P = (H + 2 * PAD - cc.dil * (R - 1) - 1) / STRIDE + 1, Q = (W + 2 * PAD - cc.dil * (R - 1) - 1) / STRIDE + 1;
    cudnnTensorDescriptor_t xd, yd;
    cudnnFilterDescriptor_t wd;
    cudnnConvolutionDescriptor_t cd;
    cudnnCreateTensorDescriptor(&xd), cudnnCreateTensorDescriptor(&yd), cudnnCreateFilterDescriptor(&wd);
    cudnnCreateConvolutionDescriptor(&cd);
    CHECK(cudnnSetTensor4dDescriptor(xd, fmt, cc.dtype, N, C, H, W) == CUDNN_STATUS_SUCCESS, "x");
    CHECK(cudnnSetFilter4dDescriptor(wd, cc.dtype, fmt, K, C, R, R) == CUDNN_STATUS_SUCCESS, "w");
    CHECK(cudnnSetConvolution2dDescriptor(cd, PAD, PAD, STRIDE, STRIDE, cc.dil, cc.dil, CUDNN_CROSS_CORRELATION,
                                          CUDNN_DATA_FLOAT) == CUDNN_STATUS_SUCCESS, "conv");
    CHECK(cudnnSetConvolutionMathType(cd, CUDNN_FMA_MATH) == CUDNN_STATUS_SUCCESS, "math");
    int dims[4];
    CHECK(cudnnGetConvolution2dForwardOutputDim(cd, xd, wd, &dims[0], &dims[1], &dims[2], &dims[3]) ==
              CUDNN_STATUS_SUCCESS && dims[0] == N && dims[1] == K && dims[2] == P && dims[3] == Q,
          "output %dx%dx%dx%d, want %dx%dx%dx%d", dims[0], dims[1], dims[2], dims[3], N, K, P, Q);
    CHECK(cudnnSetTensor4dDescriptor(yd, fmt, cc.dtype, N, K, P + 1, Q) == CUDNN_STATUS_SUCCESS, "y");
    cudnnConvolutionFwdAlgoPerf_t fwd[8];
    cudnnConvolutionBwdDataAlgoPerf_t bwd_data[8];
    cudnnConvolutionBwdFilterAlgoPerf_t bwd_filter[8];
    int n = 0;
    CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, xd, wd, cd, yd, 8, &n, fwd) == CUDNN_STATUS_BAD_PARAM, "y tall");
    cudnnSetTensor4dDescriptor(yd, fmt, cc.dtype, N, K, P, Q);
    /* A filter in the other layout, then in the other type. */
    cudnnSetFilter4dDescriptor(wd, cc.dtype, cc.nhwc ? CUDNN_TENSOR_NCHW : CUDNN_TENSOR_NHWC, K, C, R, R);
    CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, xd, wd, cd, yd, 8, &n, fwd) == CUDNN_STATUS_NOT_SUPPORTED, "lay");
    cudnnDataType_t other = cc.dtype == CUDNN_DATA_FLOAT ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
    cudnnSetFilter4dDescriptor(wd, other, fmt, K, C, R, R);
    CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, xd, wd, cd, yd, 8, &n, fwd) == CUDNN_STATUS_BAD_PARAM, "type");
    cudnnSetFilter4dDescriptor(wd, cc.dtype, fmt, K, C, R, R);

    /* The algorithm lists, and with KAO_EMU_CUDNN_NHWC_NONDETERMINISTIC=1 what is left in NHWC. */
    CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, xd, wd, cd, yd, 8, &n, fwd) == CUDNN_STATUS_SUCCESS, "fwd");
    check_list("forward", fwd, n, CUDNN_FMA_MATH);
    CHECK(cudnnFindConvolutionBackwardDataAlgorithm(h, wd, yd, cd, xd, 8, &n, bwd_data) == CUDNN_STATUS_SUCCESS, "bd");
    check_list("backward data", bwd_data, n, CUDNN_FMA_MATH);
    CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, xd, yd, cd, wd, 8, &n, bwd_filter) == CUDNN_STATUS_SUCCESS,
          "bf");
    check_list("backward filter", bwd_filter, n, CUDNN_FMA_MATH);
    setenv("KAO_EMU_CUDNN_NHWC_NONDETERMINISTIC", "1", 1);
    cudnnConvolutionFwdAlgoPerf_t left[8];
    CHECK(cudnnFindConvolutionForwardAlgorithm(h, xd, wd, cd, yd, 8, &n, left) == CUDNN_STATUS_SUCCESS, "fwd env");
    CHECK(n == (cc.nhwc ? 2 : 4), "%d algorithms left with the variable set", n);
    for (int i = 0; i < n && cc.nhwc; i++)
        CHECK(left[i].status != CUDNN_STATUS_SUCCESS || left[i].determinism == CUDNN_NON_DETERMINISTIC, "[%d]", i);
    unsetenv("KAO_EMU_CUDNN_NHWC_NONDETERMINISTIC");
    size_t ws_size = 1;
    CHECK(cudnnGetConvolutionForwardWorkspaceSize(h, xd, wd, cd, yd, fwd[1].algo, &ws_size) ==
              CUDNN_STATUS_NOT_SUPPORTED, "workspace of an unsupported algorithm");
    CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(h, xd, yd, cd, wd, bwd_filter[2].algo, &ws_size) ==
              CUDNN_STATUS_SUCCESS && ws_size == 64 * K, "workspace %zu", ws_size);

    /* Data: uniform floats, or small integers (every sum exact) for the adjoint identity. */
    std::vector<double> x(N * C * H * W), w(K * C * R * R), dy(N * K * P * Q), y0(dy.size());
    for (auto *v : {&x, &w, &dy, &y0})
        for (double &e : *v) e = integers ? floor(4.0 * uniform()) : uniform();
    T *xm = upload<T>(x), *wm = upload<T>(w), *dym = upload<T>(dy), *ym = upload<T>(y0);
    T *dxm = dev<T>(x.size()), *dwm = dev<T>(w.size());
    size_t ws_bytes = 64 * K;
    char *ws = dev<char>(ws_bytes);
    reference ref = direct(cc, P, Q, x, w, dy);

    const float one = 1.0f, zero = 0.0f, two = 2.0f, one_half = 0.5f;
    CHECK(cudnnConvolutionForward(h, &one, xd, xm, wd, wm, cd, fwd[2].algo, ws, ws_bytes - 1, &zero, yd, ym) ==
              CUDNN_STATUS_BAD_PARAM, "workspace one byte short");
    CHECK(cudnnConvolutionForward(h, &one, xd, xm, wd, wm, cd, fwd[1].algo, ws, ws_bytes, &zero, yd, ym) ==
              CUDNN_STATUS_NOT_SUPPORTED, "unsupported algorithm");
    CHECK(cudnnConvolutionForward(h, &two, xd, xm, wd, wm, cd, fwd[2].algo, ws, ws_bytes, &one_half, yd, ym) ==
              CUDNN_STATUS_SUCCESS, "forward");
    run_queued();
    CHECK((unsigned char)ws[0] == 0xff && (unsigned char)ws[ws_bytes - 1] == 0xff, "scratch not clobbered");
    for (size_t i = 0; i < y0.size(); i++)
        CHECK(matches<T>(value(ym, i), 2.0 * ref.y[i] + 0.5 * y0[i]), "y[%zu] alpha 2 beta 0.5", i);
    if (cc.nhwc && !integers) expect_fail("cudnnConvolutionForward: x (NHWC", [&] {
        std::vector<T> host(x.size());
        cudnnConvolutionForward(h, &one, xd, host.data(), wd, wm, cd, fwd[3].algo, nullptr, 0, &zero, yd, ym);
    });
    if (sizeof(T) == 4 && !integers) { /* default math on fp32 data: TF32 operands */
        std::vector<double> x32(x), w32(w);
        for (auto *v : {&x32, &w32})
            for (double &e : *v) e = kao_emu::round_tf32((float)e);
        reference tf32 = direct(cc, P, Q, x32, w32, dy);
        CHECK(cudnnSetConvolutionMathType(cd, CUDNN_DEFAULT_MATH) == CUDNN_STATUS_SUCCESS, "default math");
        CHECK(cudnnConvolutionForward(h, &one, xd, xm, wd, wm, cd, fwd[3].algo, nullptr, 0, &zero, yd, ym) ==
                  CUDNN_STATUS_SUCCESS, "forward, default math");
        run_queued();
        int moved = 0;
        for (size_t i = 0; i < y0.size(); i++) {
            CHECK(matches<T>(value(ym, i), tf32.y[i]), "y[%zu] default math: %g vs %g", i, value(ym, i), tf32.y[i]);
            moved += !matches<T>(value(ym, i), ref.y[i]);
        }
        CHECK(moved > 0, "default math on fp32 gave the fp32 product");
        cudnnSetConvolutionMathType(cd, CUDNN_FMA_MATH);
    }
    /* beta = 0 on outputs full of NaN; the descriptors are gone before the work runs. */
    for (size_t i = 0; i < y0.size(); i++) ym[i] = rounded<T>(NAN);
    for (size_t i = 0; i < x.size(); i++) dxm[i] = rounded<T>(NAN);
    for (size_t i = 0; i < w.size(); i++) dwm[i] = rounded<T>(NAN);
    CHECK(cudnnConvolutionForward(h, &one, xd, xm, wd, wm, cd, fwd[3].algo, nullptr, 0, &zero, yd, ym) ==
              CUDNN_STATUS_SUCCESS, "forward");
    CHECK(cudnnConvolutionBackwardData(h, &one, wd, wm, yd, dym, cd, bwd_data[2].algo, ws, ws_bytes, &zero, xd, dxm) ==
              CUDNN_STATUS_SUCCESS, "backward data");
    CHECK(cudnnConvolutionBackwardFilter(h, &one, xd, xm, yd, dym, cd, bwd_filter[0].algo, ws, ws_bytes, &zero, wd,
                                         dwm) == CUDNN_STATUS_SUCCESS, "backward filter");
    cudnnDestroyTensorDescriptor(xd), cudnnDestroyTensorDescriptor(yd), cudnnDestroyFilterDescriptor(wd);
    cudnnDestroyConvolutionDescriptor(cd);
    run_queued();
    /* got: the output as doubles, each checked against the direct loop's want. */
    auto compare = [&](const char *name, const T *mem, const std::vector<double> &want, std::vector<double> &got) {
        got.resize(want.size());
        for (size_t i = 0; i < want.size(); i++) {
            got[i] = value(mem, i);
            CHECK(matches<T>(got[i], want[i]), "%s[%zu] %g vs %g", name, i, got[i], want[i]);
        }
    };
    std::vector<double> y, dx, dw;
    compare("y", ym, ref.y, y);
    compare("dx", dxm, ref.dx, dx);
    compare("dw", dwm, ref.dw, dw);
    if (integers) { /* <conv(x, w), dy> = <x, convT(dy, w)> = <w, dW(x, dy)> */
        double a = dot(y, dy), b = dot(x, dx), c = dot(w, dw);
        CHECK(fabs(a - b) <= 1e-9 * fabs(a) && fabs(a - c) <= 1e-9 * fabs(a) && a != 0.0, "adjoint %g %g %g", a, b, c);
    }
}

int main() {
    kao_emu::device_access(true);
    test_gemm();
    cudnnHandle_t h;
    cudaStream_t stream;
    CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) == cudaSuccess, "stream");
    CHECK(cudnnCreate(&h) == CUDNN_STATUS_SUCCESS && cudnnSetStream(h, stream) == CUDNN_STATUS_SUCCESS, "handle");
    CHECK(strcmp(cudnnGetErrorString(CUDNN_STATUS_NOT_SUPPORTED), "CUDNN_STATUS_NOT_SUPPORTED") == 0, "names");
    for (bool integers : {false, true})
        for (conv_case cc : {conv_case{false, 1, CUDNN_DATA_FLOAT}, conv_case{true, 1, CUDNN_DATA_FLOAT},
                             conv_case{true, 2, CUDNN_DATA_FLOAT}})
            test_conv<float>(h, cc, integers);
    test_conv<__nv_bfloat16>(h, conv_case{true, 1, CUDNN_DATA_BFLOAT16}, false);
    test_conv<__nv_bfloat16>(h, conv_case{false, 2, CUDNN_DATA_BFLOAT16}, true);
    cudnnDestroy(h);
    free_all();
    printf("test_emu_libs: %s (%d failure%s)\n", failures ? "FAILED" : "passed", failures, failures == 1 ? "" : "s");
    return failures ? 1 : 0;
}
