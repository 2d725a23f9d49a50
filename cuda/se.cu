/* se.cu — squeeze-excite (ops_se.c has the definition): the CUDA twin of src/ops_se.c.
 * Forward: pooled = mean_hw(inp) (one thread per (b, c), pixels in order); hidden = b_r + pooled ·
 * W_rᵀ and gate = sigmoid(b_e + silu(hidden) · W_eᵀ) as cuBLAS GEMMs onto the broadcast biases (as
 * the CPU op); out = inp · gate.
 * Backward: dgl = (Σ_hw dout·inp)·gate·(1 − gate) per (b, c); dW_e += dglᵀ·a; db_e += Σ_b dgl;
 * dh = (dgl·W_e)·silu'(hidden); dW_r += dhᵀ·pooled; db_r += Σ_b dh; dinp = dout·gate + (dh·W_r)/HW.
 * The batch sums are per-column loops in order (kao_colsum_rows_add), so nothing races.
 * inp, out, dout and dinp are float or bf16 maps (ops_t.cuh), loaded as float; the pooled, hidden and
 * gate vectors and the small GEMMs over them stay fp32. */
#include "ops_t.cuh"

#define SHAPE_FMT "B %d, HW %d, C %d, R %d"

static __global__ void silu_copy_kernel(float *act, const float *hidden, size_t n) {
    KAO_GRID_STRIDE(i, n) act[i] = kao_silu(hidden[i]);
}

static __global__ void sigmoid_inplace_kernel(float *x, size_t n) {
    KAO_GRID_STRIDE(i, n) x[i] = kao_sigmoid(x[i]);
}

/* out (B, HW, C) = inp · gate[b], W elements (one pack, ops_t.cuh) per step; out may equal inp. */
template <class T, int W>
static __global__ void gate_kernel(T *out, const T *inp, const float *gate, int HW, int C, size_t n) {
    KAO_GRID_STRIDE(p, n / W) {
        size_t i = p * W, c = i % (size_t)C, b = i / ((size_t)HW * C);
        float x[W];
        kao_ld_pack<W>(x, inp + i);
#pragma unroll
        for (int k = 0; k < W; k++) x[k] *= gate[b * C + c + k];
        kao_st_pack<W>(out + i, x);
    }
}

/* dgl (B, C) = (Σ_hw dout·inp) · gate·(1 − gate), the pixels in order. */
template <class T>
static __global__ void gate_grad_kernel(float *dgl, const T *dout, const T *inp, const float *gate, int B, int HW,
                                        int C) {
    KAO_GRID_STRIDE(i, (size_t)B * C) {
        size_t b = i / (size_t)C, c = i % (size_t)C;
        const T *d = dout + b * (size_t)HW * C + c, *x = inp + b * (size_t)HW * C + c;
        float acc = 0.0f;
        for (int p = 0; p < HW; p++) acc += kao_ld(d[(size_t)p * C]) * kao_ld(x[(size_t)p * C]);
        float g = gate[i];
        dgl[i] = acc * (g * (1.0f - g));
    }
}

/* dh (B, R) *= silu'(hidden) */
static __global__ void silu_grad_inplace_kernel(float *dh, const float *hidden, size_t n) {
    KAO_GRID_STRIDE(i, n) dh[i] = dh[i] * kao_silu_grad(hidden[i]);
}

/* dinp = dout · gate + dpooled (per (b, c)), W elements per step; dinp may equal dout. */
template <class T, int W>
static __global__ void dinp_kernel(T *dinp, const T *dout, const float *gate, const float *dpooled, int HW, int C,
                                   size_t n) {
    KAO_GRID_STRIDE(p, n / W) {
        size_t i = p * W, c = i % (size_t)C, b = i / ((size_t)HW * C);
        float d[W];
        kao_ld_pack<W>(d, dout + i);
#pragma unroll
        for (int k = 0; k < W; k++) d[k] = d[k] * gate[b * C + c + k] + dpooled[b * C + c + k];
        kao_st_pack<W>(dinp + i, d);
    }
}

template <class T>
void kao_t::se_forward(T *out, float *save_pooled, float *save_hidden, float *save_gate, const T *inp,
                       const float *w_reduce, const float *b_reduce, const float *w_expand, const float *b_expand,
                       int B, int HW, int C, int R, kao_cuda_ctx *ctx) {
    const char *op = KAO_OP(T, "se_forward_gpu");
    kao_carver cv = {NULL, 0};
    kao_carve<float>(&cv, (size_t)B * R);
    cv.base = (char *)kao_cuda_workspace(ctx, cv.used), cv.used = 0;
    float *act = kao_carve<float>(&cv, (size_t)B * R); /* (B, R) silu(hidden) */
    kao_t::avgpool_forward(save_pooled, inp, B, HW, C, ctx);
    kao_broadcast_rows(save_hidden, b_reduce, B, R, ctx, op);
    kao_gemm_rm(ctx, op, false, true, B, R, C, 1.0f, save_pooled, C, w_reduce, C, 1.0f, save_hidden, R);
    silu_copy_kernel<<<kao_blocks((size_t)B * R), KAO_THREADS, 0, ctx->stream>>>(act, save_hidden, (size_t)B * R);
    KAO_LAUNCH_CHECK(ctx, op, "silu; " SHAPE_FMT, B, HW, C, R);
    kao_broadcast_rows(save_gate, b_expand, B, C, ctx, op);
    kao_gemm_rm(ctx, op, false, true, B, C, R, 1.0f, act, R, w_expand, R, 1.0f, save_gate, C);
    sigmoid_inplace_kernel<<<kao_blocks((size_t)B * C), KAO_THREADS, 0, ctx->stream>>>(save_gate, (size_t)B * C);
    KAO_LAUNCH_CHECK(ctx, op, "sigmoid; " SHAPE_FMT, B, HW, C, R);
    size_t n = (size_t)B * HW * C;
    constexpr int W = kao_pack_width<T>;
    if (kao_packable<T>((size_t)C, out, inp))
        gate_kernel<T, W><<<kao_blocks(n / W), KAO_THREADS, 0, ctx->stream>>>(out, inp, save_gate, HW, C, n);
    else
        gate_kernel<T, 1><<<kao_blocks(n), KAO_THREADS, 0, ctx->stream>>>(out, inp, save_gate, HW, C, n);
    KAO_LAUNCH_CHECK(ctx, op, "gate; " SHAPE_FMT, B, HW, C, R);
}

template <class T>
void kao_t::se_backward(T *dinp, float *dw_reduce, float *db_reduce, float *dw_expand, float *db_expand, const T *dout,
                        const T *inp, const float *save_pooled, const float *save_hidden, const float *save_gate,
                        const float *w_reduce, const float *w_expand, int B, int HW, int C, int R, kao_cuda_ctx *ctx) {
    const char *op = KAO_OP(T, "se_backward_gpu");
    kao_carver cv = {NULL, 0};
    kao_carve<float>(&cv, (size_t)B * C);
    kao_carve<float>(&cv, (size_t)B * C);
    kao_carve<float>(&cv, (size_t)B * R);
    kao_carve<float>(&cv, (size_t)B * R);
    cv.base = (char *)kao_cuda_workspace(ctx, cv.used), cv.used = 0;
    float *dgl = kao_carve<float>(&cv, (size_t)B * C), *dpooled = kao_carve<float>(&cv, (size_t)B * C);
    float *act = kao_carve<float>(&cv, (size_t)B * R), *dh = kao_carve<float>(&cv, (size_t)B * R);

    gate_grad_kernel<<<kao_blocks((size_t)B * C), KAO_THREADS, 0, ctx->stream>>>(dgl, dout, inp, save_gate, B, HW, C);
    KAO_LAUNCH_CHECK(ctx, op, "gate gradient; " SHAPE_FMT, B, HW, C, R);
    silu_copy_kernel<<<kao_blocks((size_t)B * R), KAO_THREADS, 0, ctx->stream>>>(act, save_hidden, (size_t)B * R);
    KAO_LAUNCH_CHECK(ctx, op, "silu; " SHAPE_FMT, B, HW, C, R);
    kao_colsum_rows_add(db_expand, dgl, B, C, ctx, op);
    /* dW_e (C, R) += dglᵀ (C, B) · act (B, R) */
    kao_gemm_rm(ctx, op, true, false, C, R, B, 1.0f, dgl, C, act, R, 1.0f, dw_expand, R);
    /* dh (B, R) = dgl (B, C) · W_e (C, R), then · silu'(hidden) */
    kao_gemm_rm(ctx, op, false, false, B, R, C, 1.0f, dgl, C, w_expand, R, 0.0f, dh, R);
    silu_grad_inplace_kernel<<<kao_blocks((size_t)B * R), KAO_THREADS, 0, ctx->stream>>>(dh, save_hidden,
                                                                                         (size_t)B * R);
    KAO_LAUNCH_CHECK(ctx, op, "silu gradient; " SHAPE_FMT, B, HW, C, R);
    kao_colsum_rows_add(db_reduce, dh, B, R, ctx, op);
    /* dW_r (R, C) += dhᵀ (R, B) · pooled (B, C) */
    kao_gemm_rm(ctx, op, true, false, R, C, B, 1.0f, dh, R, save_pooled, C, 1.0f, dw_reduce, C);
    if (!dinp) return;
    /* dpooled (B, C) = dh (B, R) · W_r (R, C) / HW */
    kao_gemm_rm(ctx, op, false, false, B, C, R, 1.0f / HW, dh, R, w_reduce, C, 0.0f, dpooled, C);
    size_t n = (size_t)B * HW * C;
    constexpr int W = kao_pack_width<T>;
    if (kao_packable<T>((size_t)C, dinp, dout))
        dinp_kernel<T, W><<<kao_blocks(n / W), KAO_THREADS, 0, ctx->stream>>>(dinp, dout, save_gate, dpooled, HW, C, n);
    else
        dinp_kernel<T, 1><<<kao_blocks(n), KAO_THREADS, 0, ctx->stream>>>(dinp, dout, save_gate, dpooled, HW, C, n);
    KAO_LAUNCH_CHECK(ctx, op, "dinp; " SHAPE_FMT, B, HW, C, R);
}

void kao_se_forward_gpu(float *out, float *save_pooled, float *save_hidden, float *save_gate, const float *inp,
                        const float *w_reduce, const float *b_reduce, const float *w_expand, const float *b_expand,
                        int B, int HW, int C, int R, kao_cuda_ctx *ctx) {
    kao_t::se_forward<float>(out, save_pooled, save_hidden, save_gate, inp, w_reduce, b_reduce, w_expand, b_expand, B,
                             HW, C, R, ctx);
}

void kao_se_backward_gpu(float *dinp, float *dw_reduce, float *db_reduce, float *dw_expand, float *db_expand,
                         const float *dout, const float *inp, const float *save_pooled, const float *save_hidden,
                         const float *save_gate, const float *w_reduce, const float *w_expand, int B, int HW, int C,
                         int R, kao_cuda_ctx *ctx) {
    kao_t::se_backward<float>(dinp, dw_reduce, db_reduce, dw_expand, db_expand, dout, inp, save_pooled, save_hidden,
                              save_gate, w_reduce, w_expand, B, HW, C, R, ctx);
}

#define INSTANTIATE(T)                                                                             \
    template void kao_t::se_forward<T>(T *, float *, float *, float *, const T *, const float *, const float *,  \
                                       const float *, const float *, int, int, int, int, kao_cuda_ctx *);      \
    template void kao_t::se_backward<T>(T *, float *, float *, float *, float *, const T *, const T *,          \
                                        const float *, const float *, const float *, const float *,            \
                                        const float *, int, int, int, int, kao_cuda_ctx *);
INSTANTIATE(float)
INSTANTIATE(kao_bf16)
