/* misc.cu — SiLU, global average pooling, Linear (cuBLAS), residual add, drop-path row scaling and
 * the float ↔ bf16 conversion: the CUDA twins of src/ops_misc.c. Pooling, the residual add and the
 * row scaling take float or bf16 maps (ops_t.cuh); SiLU and Linear are fp32. Elementwise kernels use
 * grid-stride loops. */
#include "ops_t.cuh"

/* ---- SiLU --------------------------------------------------------------------------------- */

static __global__ void silu_forward_kernel(float *out, const float *inp, size_t n) {
    KAO_GRID_STRIDE(i, n) out[i] = kao_silu(inp[i]);
}

static __global__ void silu_backward_kernel(float *dinp, const float *dout, const float *inp, size_t n) {
    KAO_GRID_STRIDE(i, n) dinp[i] = dout[i] * kao_silu_grad(inp[i]);
}

void kao_silu_forward_gpu(float *out, const float *inp, size_t n, kao_cuda_ctx *ctx) {
    if (n == 0) return;
    silu_forward_kernel<<<kao_blocks(n), KAO_THREADS, 0, ctx->stream>>>(out, inp, n);
    KAO_LAUNCH_CHECK(ctx, "silu_forward_gpu", "n %zu", n);
}

void kao_silu_backward_gpu(float *dinp, const float *dout, const float *inp, size_t n, kao_cuda_ctx *ctx) {
    if (n == 0) return;
    silu_backward_kernel<<<kao_blocks(n), KAO_THREADS, 0, ctx->stream>>>(dinp, dout, inp, n);
    KAO_LAUNCH_CHECK(ctx, "silu_backward_gpu", "n %zu", n);
}

/* ---- global average pooling ---------------------------------------------------------------- */

/* One thread per (b, c), summing the HW pixels in order in float, then / HW: the CPU's order. */
template <class T> static __global__ void avgpool_forward_kernel(float *out, const T *inp, int B, int HW, int C) {
    KAO_GRID_STRIDE(i, (size_t)B * C) {
        size_t b = i / (size_t)C, c = i % (size_t)C;
        const T *x = inp + b * (size_t)HW * C + c;
        float acc = 0.0f;
        for (int p = 0; p < HW; p++) acc += kao_ld(x[(size_t)p * C]);
        out[i] = acc / (float)HW;
    }
}

template <class T> static __global__ void avgpool_backward_kernel(T *dinp, const float *dout, int B, int HW, int C) {
    KAO_GRID_STRIDE(i, (size_t)B * HW * C) {
        size_t c = i % (size_t)C, b = i / ((size_t)HW * C);
        kao_st(&dinp[i], dout[b * C + c] / (float)HW);
    }
}

template <class T> void kao_t::avgpool_forward(float *out, const T *inp, int B, int HW, int C, kao_cuda_ctx *ctx) {
    avgpool_forward_kernel<<<kao_blocks((size_t)B * C), KAO_THREADS, 0, ctx->stream>>>(out, inp, B, HW, C);
    KAO_LAUNCH_CHECK(ctx, KAO_OP(T, "avgpool_forward_gpu"), "B %d, HW %d, C %d", B, HW, C);
}

template <class T> void kao_t::avgpool_backward(T *dinp, const float *dout, int B, int HW, int C, kao_cuda_ctx *ctx) {
    avgpool_backward_kernel<<<kao_blocks((size_t)B * HW * C), KAO_THREADS, 0, ctx->stream>>>(dinp, dout, B, HW, C);
    KAO_LAUNCH_CHECK(ctx, KAO_OP(T, "avgpool_backward_gpu"), "B %d, HW %d, C %d", B, HW, C);
}

void kao_avgpool_forward_gpu(float *out, const float *inp, int B, int HW, int C, kao_cuda_ctx *ctx) {
    kao_t::avgpool_forward<float>(out, inp, B, HW, C, ctx);
}

void kao_avgpool_backward_gpu(float *dinp, const float *dout, int B, int HW, int C, kao_cuda_ctx *ctx) {
    kao_t::avgpool_backward<float>(dinp, dout, B, HW, C, ctx);
}

/* ---- Linear ------------------------------------------------------------------------------- */

void kao_linear_forward_gpu(float *out, const float *inp, const float *weight, const float *bias, int B,
                            int I, int O, kao_cuda_ctx *ctx) {
    const char *op = "linear_forward_gpu";
    /* out = bias rows, then out += inp · weightᵀ (beta 1), as the CPU op. */
    kao_broadcast_rows(out, bias, B, O, ctx, op);
    kao_gemm_rm(ctx, op, false, true, B, O, I, 1.0f, inp, I, weight, I, 1.0f, out, O);
}

void kao_linear_backward_gpu(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                             const float *weight, int B, int I, int O, kao_cuda_ctx *ctx) {
    const char *op = "linear_backward_gpu";
    if (dbias) kao_colsum_rows_add(dbias, dout, B, O, ctx, op);
    /* dweight (O, I) += doutᵀ (O, B) · inp (B, I) */
    kao_gemm_rm(ctx, op, true, false, O, I, B, 1.0f, dout, O, inp, I, 1.0f, dweight, I);
    /* dinp (B, I) = dout (B, O) · weight (O, I) */
    if (dinp) kao_gemm_rm(ctx, op, false, false, B, I, O, 1.0f, dout, O, weight, I, 0.0f, dinp, I);
}

/* ---- residual and drop-path --------------------------------------------------------------- */

/* W elements (one pack, ops_t.cuh) per step. */
template <class T, int W> static __global__ void add_inplace_kernel(T *out, const T *x, size_t n) {
    KAO_GRID_STRIDE(p, n / W) {
        float a[W], b[W];
        kao_ld_pack<W>(a, out + p * W);
        kao_ld_pack<W>(b, x + p * W);
#pragma unroll
        for (int k = 0; k < W; k++) a[k] += b[k];
        kao_st_pack<W>(out + p * W, a);
    }
}

/* x (B, n) row b times mask[b]; a pack never straddles two rows (n % W == 0). */
template <class T, int W> static __global__ void scale_rows_kernel(T *x, const float *mask, size_t n, size_t total) {
    KAO_GRID_STRIDE(p, total / W) {
        float a[W], m = mask[p * W / n];
        kao_ld_pack<W>(a, x + p * W);
#pragma unroll
        for (int k = 0; k < W; k++) a[k] *= m;
        kao_st_pack<W>(x + p * W, a);
    }
}

template <class T> void kao_t::add_inplace(T *out, const T *x, size_t n, kao_cuda_ctx *ctx) {
    if (n == 0) return;
    constexpr int W = kao_pack_width<T>;
    if (kao_packable<T>(n, out, x))
        add_inplace_kernel<T, W><<<kao_blocks(n / W), KAO_THREADS, 0, ctx->stream>>>(out, x, n);
    else
        add_inplace_kernel<T, 1><<<kao_blocks(n), KAO_THREADS, 0, ctx->stream>>>(out, x, n);
    KAO_LAUNCH_CHECK(ctx, KAO_OP(T, "add_inplace_gpu"), "n %zu", n);
}

template <class T> void kao_t::scale_rows(T *x, const float *mask, int B, size_t n, kao_cuda_ctx *ctx) {
    size_t total = (size_t)B * n;
    if (total == 0) return;
    constexpr int W = kao_pack_width<T>;
    if (kao_packable<T>(n, x, NULL))
        scale_rows_kernel<T, W><<<kao_blocks(total / W), KAO_THREADS, 0, ctx->stream>>>(x, mask, n, total);
    else
        scale_rows_kernel<T, 1><<<kao_blocks(total), KAO_THREADS, 0, ctx->stream>>>(x, mask, n, total);
    KAO_LAUNCH_CHECK(ctx, KAO_OP(T, "scale_rows_gpu"), "B %d, n %zu", B, n);
}

void kao_add_inplace_gpu(float *out, const float *x, size_t n, kao_cuda_ctx *ctx) {
    kao_t::add_inplace<float>(out, x, n, ctx);
}

void kao_scale_rows_gpu(float *x, const float *mask, int B, size_t n, kao_cuda_ctx *ctx) {
    kao_t::scale_rows<float>(x, mask, B, n, ctx);
}

/* ---- float ↔ bf16 ------------------------------------------------------------------------- */

template <class D, class S> static __global__ void convert_kernel(D *dst, const S *src, size_t n) {
    KAO_GRID_STRIDE(i, n) kao_st(&dst[i], kao_ld(src[i]));
}

template <class D, class S> void kao_t::convert(D *dst, const S *src, size_t n, kao_cuda_ctx *ctx, const char *op) {
    if (n == 0) return;
    convert_kernel<<<kao_blocks(n), KAO_THREADS, 0, ctx->stream>>>(dst, src, n);
    KAO_LAUNCH_CHECK(ctx, op, "convert %s to %s, n %zu", kao_type<S>::name, kao_type<D>::name, n);
}

#define INSTANTIATE(T)                                                                             \
    template void kao_t::avgpool_forward<T>(float *, const T *, int, int, int, kao_cuda_ctx *);      \
    template void kao_t::avgpool_backward<T>(T *, const float *, int, int, int, kao_cuda_ctx *);     \
    template void kao_t::add_inplace<T>(T *, const T *, size_t, kao_cuda_ctx *);                     \
    template void kao_t::scale_rows<T>(T *, const float *, int, size_t, kao_cuda_ctx *);
INSTANTIATE(float)
INSTANTIATE(kao_bf16)
template void kao_t::convert<float, kao_bf16>(float *, const kao_bf16 *, size_t, kao_cuda_ctx *, const char *);
template void kao_t::convert<kao_bf16, float>(kao_bf16 *, const float *, size_t, kao_cuda_ctx *, const char *);
