/* batchnorm.cu — BatchNorm over M = B·H·W rows of C channels (NHWC) with an optional fused SiLU:
 * the CUDA twin of src/ops_batchnorm.c, with the same formulas.
 *  - train: per-channel sums of d = x − (first row) and d² (the shift keeps E[d²] − E[d]² free of
 *    cancellation) by the deterministic column reduction of reduce.cuh (float runs, double
 *    totals); then, per channel in double exactly as the CPU op: mean, biased variance (clamped
 *    at 0), rstd, the saved statistics, the running statistics (momentum, unbiased variance
 *    M/(M−1)), scale = γ·rstd and shift = β − mean·γ·rstd; then out = act(x·scale + shift).
 *  - eval: scale = γ/√(var + eps) (double, rounded), shift = β − mean·scale (float), as the CPU's
 *    kao_batchnorm_fold; the same affine.
 *  - backward: g = dout·act'(y) with y recomputed from inp; Σg and Σg·xhat by the same reduction;
 *    dβ += Σg, dγ += Σg·xhat; dx = scale·g − k1 − (x − mean)·k2 with k1 = scale·Σg/M and
 *    k2 = scale·rstd·Σg·xhat/M (batch statistics), or dx = g·scale (frozen statistics, rstd from
 *    the running variance in double). dinp may alias dout: each element is read, then written
 *    by the same thread.
 * The maps (inp, out, dout, dinp) are float or bf16 (ops_t.cuh), loaded as float; the statistics,
 * the affine parameters and their gradients are float. */
#include "ops_t.cuh"
#include "reduce.cuh"

#define SHAPE_FMT "M %zu, C %d, act %d"

/* ---- elementwise ------------------------------------------------------------------------- */

/* out = act(inp·scale + shift) per channel, W elements (one pack) per step; out may equal inp. */
template <class T, int W>
static __global__ void affine_act_kernel(T *out, const T *inp, const float *scale, const float *shift, int silu,
                                         size_t M, int C) {
    KAO_GRID_STRIDE(p, M * C / W) {
        size_t i = p * W, c = i % (size_t)C;
        float x[W];
        kao_ld_pack<W>(x, inp + i);
#pragma unroll
        for (int k = 0; k < W; k++) {
            float y = x[k] * scale[c + k] + shift[c + k];
            x[k] = silu ? kao_silu(y) : y;
        }
        kao_st_pack<W>(out + i, x);
    }
}

template <class T>
static void affine_act(T *out, const T *inp, const float *scale, const float *shift, kao_act act, size_t M,
                       int C, kao_cuda_ctx *ctx, const char *op) {
    int silu = act == KAO_ACT_SILU;
    constexpr int W = kao_pack_width<T>;
    if (kao_packable<T>(C, out, inp))
        affine_act_kernel<T, W><<<kao_blocks(M * C / W), KAO_THREADS, 0, ctx->stream>>>(out, inp, scale, shift, silu,
                                                                                        M, C);
    else
        affine_act_kernel<T, 1><<<kao_blocks(M * C), KAO_THREADS, 0, ctx->stream>>>(out, inp, scale, shift, silu, M,
                                                                                    C);
    KAO_LAUNCH_CHECK(ctx, op, "affine; " SHAPE_FMT, M, C, (int)act);
}

/* ---- eval -------------------------------------------------------------------------------- */

static __global__ void fold_eval_kernel(float *scale, float *shift, const float *gamma, const float *beta,
                                        const float *running_mean, const float *running_var, float eps, int C) {
    KAO_GRID_STRIDE(c, (size_t)C) {
        scale[c] = (float)(gamma[c] / sqrt((double)running_var[c] + eps));
        shift[c] = beta[c] - running_mean[c] * scale[c];
    }
}

template <class T>
void kao_t::batchnorm_forward_eval(T *out, const T *inp, const float *gamma, const float *beta,
                                   const float *running_mean, const float *running_var, float eps, kao_act act,
                                   size_t M, int C, kao_cuda_ctx *ctx) {
    const char *op = KAO_OP(T, "batchnorm_forward_eval_gpu");
    kao_carver cv = {NULL, 0};
    kao_carve<float>(&cv, 2 * (size_t)C);
    cv.base = (char *)kao_cuda_workspace(ctx, cv.used), cv.used = 0;
    float *scale = kao_carve<float>(&cv, 2 * (size_t)C), *shift = scale + C;
    fold_eval_kernel<<<kao_blocks((size_t)C), KAO_THREADS, 0, ctx->stream>>>(scale, shift, gamma, beta, running_mean,
                                                                             running_var, eps, C);
    KAO_LAUNCH_CHECK(ctx, op, SHAPE_FMT, M, C, (int)act);
    affine_act(out, inp, scale, shift, act, M, C, ctx, op);
}

/* ---- train ------------------------------------------------------------------------------- */

/* d = x − x[first row] and d² */
template <class T> struct shifted_moments {
    const T *inp;
    int C;
    __device__ void operator()(size_t m, int c, float *v) const {
        float d = kao_ld(inp[m * C + c]) - kao_ld(inp[c]);
        v[0] = d;
        v[1] = d * d;
    }
};

/* totals (2, C): Σd, Σd². Per channel, in double as the CPU op. */
template <class T>
static __global__ void train_stats_kernel(float *save_mean, float *save_rstd, float *scale, float *shift,
                                          float *running_mean, float *running_var, const double *totals,
                                          const T *inp, const float *gamma, const float *beta, float eps,
                                          float momentum, size_t M, int C) {
    KAO_GRID_STRIDE(c, (size_t)C) {
        double dmean = totals[c] / (double)M, var = totals[C + c] / (double)M - dmean * dmean;
        if (var < 0.0) var = 0.0;
        double mean = kao_ld(inp[c]) + dmean, rstd = 1.0 / sqrt(var + eps);
        save_mean[c] = (float)mean;
        save_rstd[c] = (float)rstd;
        scale[c] = (float)(gamma[c] * rstd);
        shift[c] = (float)(beta[c] - mean * gamma[c] * rstd);
        if (running_mean) {
            running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + momentum * mean);
            running_var[c] = (float)((1.0 - momentum) * running_var[c] + momentum * var * (double)M / (double)(M - 1));
        }
    }
}

template <class T>
void kao_t::batchnorm_forward_train(T *out, float *save_mean, float *save_rstd, const T *inp, const float *gamma,
                                    const float *beta, float *running_mean, float *running_var, float eps,
                                    float momentum, kao_act act, size_t M, int C, kao_cuda_ctx *ctx) {
    const char *op = KAO_OP(T, "batchnorm_forward_train_gpu");
    KAO_CUDA_ASSERT(M > 1, op, "training needs more than one value per channel; " SHAPE_FMT, M, C, (int)act);
    KAO_CUDA_ASSERT(out != inp, op, "out must not alias inp; " SHAPE_FMT, M, C, (int)act);
    KAO_CUDA_ASSERT((running_mean == NULL) == (running_var == NULL), op, "running mean and var both or neither; " SHAPE_FMT,
                    M, C, (int)act);
    kao_colsum_plan plan = kao_colsum_make_plan(M, 2);
    size_t part_n = kao_colsum_part_doubles(&plan, 2, C);
    kao_carver cv = {NULL, 0};
    kao_carve<double>(&cv, part_n);
    kao_carve<double>(&cv, 2 * (size_t)C);
    kao_carve<float>(&cv, 2 * (size_t)C);
    cv.base = (char *)kao_cuda_workspace(ctx, cv.used), cv.used = 0;
    double *part = kao_carve<double>(&cv, part_n), *totals = kao_carve<double>(&cv, 2 * (size_t)C);
    float *scale = kao_carve<float>(&cv, 2 * (size_t)C), *shift = scale + C;
    kao_colsum<2>(totals, part, &plan, shifted_moments<T>{inp, C}, M, C, ctx, op);
    train_stats_kernel<<<kao_blocks((size_t)C), KAO_THREADS, 0, ctx->stream>>>(
        save_mean, save_rstd, scale, shift, running_mean, running_var, totals, inp, gamma, beta, eps, momentum, M, C);
    KAO_LAUNCH_CHECK(ctx, op, "statistics; " SHAPE_FMT, M, C, (int)act);
    affine_act(out, inp, scale, shift, act, M, C, ctx, op);
}

/* ---- backward ---------------------------------------------------------------------------- */

/* Per channel: rstd (frozen: from the running variance), scale = γ·rstd, shift = β − mean·scale. */
static __global__ void backward_prepare_kernel(float *rstd_out, float *scale, float *shift, const float *mean,
                                               const float *save_rstd, const float *running_var, const float *gamma,
                                               const float *beta, float eps, int C) {
    KAO_GRID_STRIDE(c, (size_t)C) {
        float rstd = save_rstd ? save_rstd[c] : (float)(1.0 / sqrt((double)running_var[c] + eps));
        rstd_out[c] = rstd;
        scale[c] = gamma[c] * rstd;
        shift[c] = beta[c] - mean[c] * scale[c];
    }
}

/* g = dout·act'(x·scale + shift) */
static __device__ __forceinline__ float bn_grad_at(float dout, float x, float scale, float shift, int silu) {
    return silu ? dout * kao_silu_grad(x * scale + shift) : dout;
}

/* g and g·xhat, xhat = (x − mean)·rstd */
template <class T> struct grad_moments {
    const T *dout, *inp;
    const float *mean, *rstd, *scale, *shift;
    int C, silu;
    __device__ void operator()(size_t m, int c, float *v) const {
        size_t i = m * C + c;
        float x = kao_ld(inp[i]), g = bn_grad_at(kao_ld(dout[i]), x, scale[c], shift[c], silu);
        v[0] = g;
        v[1] = g * ((x - mean[c]) * rstd[c]);
    }
};

/* dβ += Σg, dγ += Σg·xhat; k1 = scale·Σg/M, k2 = scale·rstd·Σg·xhat/M (batch statistics). */
static __global__ void param_grads_kernel(float *dgamma, float *dbeta, float *k1, float *k2, const double *totals,
                                          const float *scale, const float *rstd, size_t M, int C) {
    KAO_GRID_STRIDE(c, (size_t)C) {
        dbeta[c] += (float)totals[c];
        dgamma[c] += (float)totals[C + c];
        if (k1) {
            k1[c] = (float)((double)scale[c] * totals[c] / (double)M);
            k2[c] = (float)((double)scale[c] * rstd[c] * totals[C + c] / (double)M);
        }
    }
}

/* dinp = scale·g − k1 − (x − mean)·k2 (batch statistics; mean NULL: frozen statistics, dinp = g·scale),
 * W elements (one pack) per step; dinp may equal dout. */
template <class T, int W>
static __global__ void dinp_kernel(T *dinp, const T *dout, const T *inp, const float *mean, const float *scale,
                                   const float *shift, const float *k1, const float *k2, int silu, size_t M, int C) {
    KAO_GRID_STRIDE(p, M * C / W) {
        size_t i = p * W, c0 = i % (size_t)C;
        float x[W], d[W];
        kao_ld_pack<W>(x, inp + i);
        kao_ld_pack<W>(d, dout + i);
#pragma unroll
        for (int k = 0; k < W; k++) {
            size_t c = c0 + k;
            float g = bn_grad_at(d[k], x[k], scale[c], shift[c], silu);
            d[k] = mean ? scale[c] * g - k1[c] - (x[k] - mean[c]) * k2[c] : g * scale[c];
        }
        kao_st_pack<W>(dinp + i, d);
    }
}

/* Both backwards: batch statistics when save_rstd is given, else the running ones (frozen). */
template <class T>
static void backward(T *dinp, float *dgamma, float *dbeta, const T *dout, const T *inp,
                     const float *mean, const float *save_rstd, const float *running_var, const float *gamma,
                     const float *beta, float eps, kao_act act, size_t M, int C, kao_cuda_ctx *ctx, const char *op) {
    bool frozen = save_rstd == NULL;
    int silu = act == KAO_ACT_SILU;
    kao_colsum_plan plan = kao_colsum_make_plan(M, 2);
    size_t part_n = kao_colsum_part_doubles(&plan, 2, C);
    kao_carver cv = {NULL, 0};
    kao_carve<double>(&cv, part_n);
    kao_carve<double>(&cv, 2 * (size_t)C);
    kao_carve<float>(&cv, 5 * (size_t)C);
    cv.base = (char *)kao_cuda_workspace(ctx, cv.used), cv.used = 0;
    double *part = kao_carve<double>(&cv, part_n), *totals = kao_carve<double>(&cv, 2 * (size_t)C);
    float *rstd = kao_carve<float>(&cv, 5 * (size_t)C), *scale = rstd + C, *shift = scale + C, *k1 = shift + C,
          *k2 = k1 + C;
    backward_prepare_kernel<<<kao_blocks((size_t)C), KAO_THREADS, 0, ctx->stream>>>(
        rstd, scale, shift, mean, save_rstd, running_var, gamma, beta, eps, C);
    KAO_LAUNCH_CHECK(ctx, op, "prepare; " SHAPE_FMT, M, C, (int)act);
    kao_colsum<2>(totals, part, &plan, grad_moments<T>{dout, inp, mean, rstd, scale, shift, C, silu}, M, C, ctx, op);
    bool need_k = dinp && !frozen;
    param_grads_kernel<<<kao_blocks((size_t)C), KAO_THREADS, 0, ctx->stream>>>(
        dgamma, dbeta, need_k ? k1 : NULL, need_k ? k2 : NULL, totals, scale, rstd, M, C);
    KAO_LAUNCH_CHECK(ctx, op, "parameter gradients; " SHAPE_FMT, M, C, (int)act);
    if (!dinp) return;
    const float *batch_mean = frozen ? NULL : mean;
    constexpr int W = kao_pack_width<T>;
    if (kao_packable<T>(C, dinp, dout, inp))
        dinp_kernel<T, W><<<kao_blocks(M * C / W), KAO_THREADS, 0, ctx->stream>>>(dinp, dout, inp, batch_mean, scale,
                                                                                  shift, k1, k2, silu, M, C);
    else
        dinp_kernel<T, 1><<<kao_blocks(M * C), KAO_THREADS, 0, ctx->stream>>>(dinp, dout, inp, batch_mean, scale,
                                                                              shift, k1, k2, silu, M, C);
    KAO_LAUNCH_CHECK(ctx, op, "dinp; " SHAPE_FMT, M, C, (int)act);
}

template <class T>
void kao_t::batchnorm_backward(T *dinp, float *dgamma, float *dbeta, const T *dout, const T *inp,
                               const float *save_mean, const float *save_rstd, const float *gamma, const float *beta,
                               kao_act act, size_t M, int C, kao_cuda_ctx *ctx) {
    const char *op = KAO_OP(T, "batchnorm_backward_gpu");
    KAO_CUDA_ASSERT(save_rstd != NULL, op, SHAPE_FMT, M, C, (int)act);
    backward(dinp, dgamma, dbeta, dout, inp, save_mean, save_rstd, NULL, gamma, beta, 0.0f, act, M, C, ctx, op);
}

template <class T>
void kao_t::batchnorm_backward_frozen(T *dinp, float *dgamma, float *dbeta, const T *dout, const T *inp,
                                      const float *running_mean, const float *running_var, const float *gamma,
                                      const float *beta, float eps, kao_act act, size_t M, int C, kao_cuda_ctx *ctx) {
    backward(dinp, dgamma, dbeta, dout, inp, running_mean, NULL, running_var, gamma, beta, eps, act, M, C, ctx,
             KAO_OP(T, "batchnorm_backward_frozen_gpu"));
}

void kao_batchnorm_forward_eval_gpu(float *out, const float *inp, const float *gamma, const float *beta,
                                    const float *running_mean, const float *running_var, float eps, kao_act act,
                                    size_t M, int C, kao_cuda_ctx *ctx) {
    kao_t::batchnorm_forward_eval<float>(out, inp, gamma, beta, running_mean, running_var, eps, act, M, C, ctx);
}

void kao_batchnorm_forward_train_gpu(float *out, float *save_mean, float *save_rstd, const float *inp,
                                     const float *gamma, const float *beta, float *running_mean, float *running_var,
                                     float eps, float momentum, kao_act act, size_t M, int C, kao_cuda_ctx *ctx) {
    kao_t::batchnorm_forward_train<float>(out, save_mean, save_rstd, inp, gamma, beta, running_mean, running_var, eps,
                                          momentum, act, M, C, ctx);
}

void kao_batchnorm_backward_gpu(float *dinp, float *dgamma, float *dbeta, const float *dout, const float *inp,
                                const float *save_mean, const float *save_rstd, const float *gamma, const float *beta,
                                kao_act act, size_t M, int C, kao_cuda_ctx *ctx) {
    kao_t::batchnorm_backward<float>(dinp, dgamma, dbeta, dout, inp, save_mean, save_rstd, gamma, beta, act, M, C,
                                     ctx);
}

void kao_batchnorm_backward_frozen_gpu(float *dinp, float *dgamma, float *dbeta, const float *dout, const float *inp,
                                       const float *running_mean, const float *running_var, const float *gamma,
                                       const float *beta, float eps, kao_act act, size_t M, int C, kao_cuda_ctx *ctx) {
    kao_t::batchnorm_backward_frozen<float>(dinp, dgamma, dbeta, dout, inp, running_mean, running_var, gamma, beta,
                                            eps, act, M, C, ctx);
}

#define INSTANTIATE(T)                                                                             \
    template void kao_t::batchnorm_forward_eval<T>(T *, const T *, const float *, const float *, const float *,  \
                                                   const float *, float, kao_act, size_t, int, kao_cuda_ctx *);  \
    template void kao_t::batchnorm_forward_train<T>(T *, float *, float *, const T *, const float *,              \
                                                    const float *, float *, float *, float, float, kao_act,       \
                                                    size_t, int, kao_cuda_ctx *);                                \
    template void kao_t::batchnorm_backward<T>(T *, float *, float *, const T *, const T *, const float *,       \
                                               const float *, const float *, const float *, kao_act, size_t, int, \
                                               kao_cuda_ctx *);                                                  \
    template void kao_t::batchnorm_backward_frozen<T>(T *, float *, float *, const T *, const T *, const float *, \
                                                      const float *, const float *, const float *, float, kao_act, \
                                                      size_t, int, kao_cuda_ctx *);
INSTANTIATE(float)
INSTANTIATE(kao_bf16)
