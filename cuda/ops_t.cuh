/* ops_t.cuh — the ops over activation maps as templates on the map's element type T: float, or
 * kao_bf16 (bfloat16) under the bf16 precision (backend.h). The _gpu functions of cuda.h are the
 * float instances; the CUDA backend calls the bf16 ones when its precision is bf16.
 *
 * Only the activation maps (B, H, W, C) and their gradients take T. Weights and their gradients,
 * BatchNorm statistics and affine parameters, the SE's pooled/hidden/gate vectors, drop-path
 * masks and the pooled features stay float. Every kernel loads T, computes in float (sums in
 * float runs and double totals, as the float ops) and rounds once when it stores a T (round to
 * nearest even). Matrix work on bf16 maps (cuDNN convolutions, cuBLAS GEMMs of the 1×1
 * convolutions) takes bf16 operands — the float weight is rounded into the workspace on each call —
 * and accumulates in fp32; a k×k convolution's weight gradient comes out of cuDNN in bf16 (its
 * output type follows the data type) and is added into the float gradient, a 1×1's is accumulated
 * by cuBLAS straight into the float gradient.
 *
 * Private to the backend, like cuda_internal.cuh. */
#ifndef KAO_OPS_T_CUH
#define KAO_OPS_T_CUH

#include <cuda_bf16.h>

#include "cuda_internal.cuh"

typedef __nv_bfloat16 kao_bf16;

/* ---- element access ---------------------------------------------------------------------- */

static __device__ __forceinline__ float kao_ld(float x) { return x; }
static __device__ __forceinline__ float kao_ld(kao_bf16 x) { return __bfloat162float(x); }
static __device__ __forceinline__ void kao_st(float *p, float x) { *p = x; }
static __device__ __forceinline__ void kao_st(kao_bf16 *p, float x) { *p = __float2bfloat16_rn(x); }

/* ---- 16-byte packs: the elementwise kernels move 4 floats or 8 bf16 per load and store -------
 * W elements from p (16-byte aligned when W > 1) as floats, and back rounded; W = 1 is the plain
 * element access. A kernel over rows of C channels uses packs of kao_pack_width<T> where
 * kao_packable says every row splits into whole, aligned packs, else W = 1; each element's
 * arithmetic is the same either way, so the results are too. */
template <class T> constexpr int kao_pack_width = 16 / (int)sizeof(T);

template <int W, class T> static __device__ __forceinline__ void kao_ld_pack(float *x, const T *p) {
    if constexpr (W == 1) {
        x[0] = kao_ld(p[0]);
    } else {
        static_assert(W * sizeof(T) == 16, "a pack is 16 bytes");
        uint4 raw = *reinterpret_cast<const uint4 *>(p);
        const T *e = reinterpret_cast<const T *>(&raw);
#pragma unroll
        for (int k = 0; k < W; k++) x[k] = kao_ld(e[k]);
    }
}

template <int W, class T> static __device__ __forceinline__ void kao_st_pack(T *p, const float *x) {
    if constexpr (W == 1) {
        kao_st(p, x[0]);
    } else {
        static_assert(W * sizeof(T) == 16, "a pack is 16 bytes");
        uint4 raw;
        T *e = reinterpret_cast<T *>(&raw);
#pragma unroll
        for (int k = 0; k < W; k++) kao_st(&e[k], x[k]);
        *reinterpret_cast<uint4 *>(p) = raw;
    }
}

/* Whether rows of C elements of T split into whole packs at the given pointers (NULL: unused). */
template <class T> static inline bool kao_packable(size_t C, const void *a, const void *b, const void *c = NULL) {
    const void *ptrs[3] = {a, b, c};
    for (int k = 0; k < 3; k++)
        if (ptrs[k] && (uintptr_t)ptrs[k] % 16) return false;
    return C % kao_pack_width<T> == 0;
}

/* The element type's names for the libraries. */
template <class T> struct kao_type;
template <> struct kao_type<float> {
    static constexpr cudnnDataType_t cudnn = CUDNN_DATA_FLOAT;
    static constexpr cudaDataType_t cuda = CUDA_R_32F;
    static constexpr const char *name = "fp32";
};
template <> struct kao_type<kao_bf16> {
    static constexpr cudnnDataType_t cudnn = CUDNN_DATA_BFLOAT16;
    static constexpr cudaDataType_t cuda = CUDA_R_16BF;
    static constexpr const char *name = "bf16";
};

namespace kao_t {

/* dst = src, converted element by element (float ↔ T). */
template <class D, class S> void convert(D *dst, const S *src, size_t n, kao_cuda_ctx *ctx, const char *op);

/* ---- convolution, groups = 1 (conv.cu); bias (Co) or NULL ------------------------------- */
template <class T>
void conv2d_forward(T *out, const T *inp, const float *weight, const float *bias, const kao_conv_shape *s,
                    kao_cuda_ctx *ctx);
template <class T>
void conv2d_backward(T *dinp, float *dweight, float *dbias, const T *dout, const T *inp, const float *weight,
                     const kao_conv_shape *s, kao_cuda_ctx *ctx);

/* ---- depthwise convolution (dwconv.cu) -------------------------------------------------- */
template <class T>
void dwconv2d_forward(T *out, const T *inp, const float *weight, const kao_conv_shape *s, kao_cuda_ctx *ctx);
template <class T>
void dwconv2d_backward(T *dinp, float *dweight, const T *dout, const T *inp, const float *weight,
                       const kao_conv_shape *s, kao_cuda_ctx *ctx);

/* ---- BatchNorm (batchnorm.cu) ----------------------------------------------------------- */
template <class T>
void batchnorm_forward_eval(T *out, const T *inp, const float *gamma, const float *beta, const float *running_mean,
                            const float *running_var, float eps, kao_act act, size_t M, int C, kao_cuda_ctx *ctx);
template <class T>
void batchnorm_forward_train(T *out, float *save_mean, float *save_rstd, const T *inp, const float *gamma,
                             const float *beta, float *running_mean, float *running_var, float eps, float momentum,
                             kao_act act, size_t M, int C, kao_cuda_ctx *ctx);
template <class T>
void batchnorm_backward(T *dinp, float *dgamma, float *dbeta, const T *dout, const T *inp, const float *save_mean,
                        const float *save_rstd, const float *gamma, const float *beta, kao_act act, size_t M, int C,
                        kao_cuda_ctx *ctx);
template <class T>
void batchnorm_backward_frozen(T *dinp, float *dgamma, float *dbeta, const T *dout, const T *inp,
                               const float *running_mean, const float *running_var, const float *gamma,
                               const float *beta, float eps, kao_act act, size_t M, int C, kao_cuda_ctx *ctx);

/* ---- squeeze-excite (se.cu) ------------------------------------------------------------- */
template <class T>
void se_forward(T *out, float *save_pooled, float *save_hidden, float *save_gate, const T *inp,
                const float *w_reduce, const float *b_reduce, const float *w_expand, const float *b_expand, int B,
                int HW, int C, int R, kao_cuda_ctx *ctx);
template <class T>
void se_backward(T *dinp, float *dw_reduce, float *db_reduce, float *dw_expand, float *db_expand, const T *dout,
                 const T *inp, const float *save_pooled, const float *save_hidden, const float *save_gate,
                 const float *w_reduce, const float *w_expand, int B, int HW, int C, int R, kao_cuda_ctx *ctx);

/* ---- pooling, residual, drop path (misc.cu) --------------------------------------------- */
template <class T> void avgpool_forward(float *out, const T *inp, int B, int HW, int C, kao_cuda_ctx *ctx);
template <class T> void avgpool_backward(T *dinp, const float *dout, int B, int HW, int C, kao_cuda_ctx *ctx);
template <class T> void add_inplace(T *out, const T *x, size_t n, kao_cuda_ctx *ctx);
template <class T> void scale_rows(T *x, const float *mask, int B, size_t n, kao_cuda_ctx *ctx);

} // namespace kao_t

#endif
