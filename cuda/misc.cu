/* misc.cu — SiLU, global average pooling, Linear (cuBLAS), residual add and drop-path row
 * scaling: the CUDA twins of src/ops_misc.c. Elementwise kernels use grid-stride loops. */
#include "cuda_internal.cuh"

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
static __global__ void avgpool_forward_kernel(float *out, const float *inp, int B, int HW, int C) {
    KAO_GRID_STRIDE(i, (size_t)B * C) {
        size_t b = i / (size_t)C, c = i % (size_t)C;
        const float *x = inp + b * (size_t)HW * C + c;
        float acc = 0.0f;
        for (int p = 0; p < HW; p++) acc += x[(size_t)p * C];
        out[i] = acc / (float)HW;
    }
}

static __global__ void avgpool_backward_kernel(float *dinp, const float *dout, int B, int HW, int C) {
    KAO_GRID_STRIDE(i, (size_t)B * HW * C) {
        size_t c = i % (size_t)C, b = i / ((size_t)HW * C);
        dinp[i] = dout[b * C + c] / (float)HW;
    }
}

void kao_avgpool_forward_gpu(float *out, const float *inp, int B, int HW, int C, kao_cuda_ctx *ctx) {
    avgpool_forward_kernel<<<kao_blocks((size_t)B * C), KAO_THREADS, 0, ctx->stream>>>(out, inp, B, HW, C);
    KAO_LAUNCH_CHECK(ctx, "avgpool_forward_gpu", "B %d, HW %d, C %d", B, HW, C);
}

void kao_avgpool_backward_gpu(float *dinp, const float *dout, int B, int HW, int C, kao_cuda_ctx *ctx) {
    avgpool_backward_kernel<<<kao_blocks((size_t)B * HW * C), KAO_THREADS, 0, ctx->stream>>>(dinp, dout, B, HW, C);
    KAO_LAUNCH_CHECK(ctx, "avgpool_backward_gpu", "B %d, HW %d, C %d", B, HW, C);
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

static __global__ void add_inplace_kernel(float *out, const float *x, size_t n) {
    KAO_GRID_STRIDE(i, n) out[i] += x[i];
}

static __global__ void scale_rows_kernel(float *x, const float *mask, size_t n, size_t total) {
    KAO_GRID_STRIDE(i, total) x[i] *= mask[i / n];
}

void kao_add_inplace_gpu(float *out, const float *x, size_t n, kao_cuda_ctx *ctx) {
    if (n == 0) return;
    add_inplace_kernel<<<kao_blocks(n), KAO_THREADS, 0, ctx->stream>>>(out, x, n);
    KAO_LAUNCH_CHECK(ctx, "add_inplace_gpu", "n %zu", n);
}

void kao_scale_rows_gpu(float *x, const float *mask, int B, size_t n, kao_cuda_ctx *ctx) {
    size_t total = (size_t)B * n;
    if (total == 0) return;
    scale_rows_kernel<<<kao_blocks(total), KAO_THREADS, 0, ctx->stream>>>(x, mask, n, total);
    KAO_LAUNCH_CHECK(ctx, "scale_rows_gpu", "B %d, n %zu", B, n);
}
