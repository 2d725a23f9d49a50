/* ops_batchnorm.c — BatchNorm over M = B·H·W rows of C channels (NHWC), PyTorch semantics
 * (REFERENCE.md §1.6), with an optional fused SiLU after the affine.
 *
 * Statistics: one pass of per-channel sums of (x - first row) and its square in double, per
 * thread; the shift keeps E[d²] - E[d]² free of cancellation and double keeps M ≈ 400k rows exact
 * to fp32. The fast path runs over blocks of rows (OpenMP), in the form PyTorch's CPU kernel uses:
 * y = x·scale + shift with scale = γ·rstd, shift = β - mean·scale; SiLU then runs over the block.
 * Backward recomputes the pre-activation y from inp and the saved statistics. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kao/ops.h"
#include "kao/util.h"
#include "ops_internal.h"

/* ---- reference ---------------------------------------------------------------------------- */

static double silu_d(double y) { return y / (1.0 + exp(-y)); }
static double silu_grad_d(double y) {
    double s = 1.0 / (1.0 + exp(-y));
    return s * (1.0 + y * (1.0 - s));
}

void kao_batchnorm_forward_eval_ref(float *out, const float *inp, const float *gamma, const float *beta,
                                    const float *running_mean, const float *running_var, float eps,
                                    kao_act act, size_t M, int C) {
    for (size_t m = 0; m < M; m++)
        for (int c = 0; c < C; c++) {
            double xhat = (inp[m * C + c] - (double)running_mean[c]) / sqrt((double)running_var[c] + eps);
            double y = xhat * gamma[c] + beta[c];
            out[m * C + c] = (float)(act == KAO_ACT_SILU ? silu_d(y) : y);
        }
}

void kao_batchnorm_forward_train_ref(float *out, float *save_mean, float *save_rstd, const float *inp,
                                     const float *gamma, const float *beta, float *running_mean,
                                     float *running_var, float eps, float momentum, kao_act act,
                                     size_t M, int C) {
    KAO_ASSERT(M > 1, "BatchNorm training needs more than one value per channel");
    for (int c = 0; c < C; c++) {
        double mean = 0.0, var = 0.0;
        for (size_t m = 0; m < M; m++) mean += inp[m * C + c];
        mean /= (double)M;
        for (size_t m = 0; m < M; m++) var += (inp[m * C + c] - mean) * (inp[m * C + c] - mean);
        var /= (double)M; /* biased: normalises */
        double rstd = 1.0 / sqrt(var + eps);
        for (size_t m = 0; m < M; m++) {
            double y = (inp[m * C + c] - mean) * rstd * gamma[c] + beta[c];
            out[m * C + c] = (float)(act == KAO_ACT_SILU ? silu_d(y) : y);
        }
        save_mean[c] = (float)mean;
        save_rstd[c] = (float)rstd;
        if (running_mean) {
            running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + momentum * mean);
            running_var[c] = (float)((1.0 - momentum) * running_var[c] +
                                     momentum * var * (double)M / (double)(M - 1)); /* unbiased */
        }
    }
}

/* With g = dL/dy (through the activation) and xhat = (x - mean)·rstd:
 * dβ = Σg, dγ = Σ g·xhat, dx = γ·rstd·(g - mean(g) - xhat·mean(g·xhat)). */
void kao_batchnorm_backward_ref(float *dinp, float *dgamma, float *dbeta, const float *dout,
                                const float *inp, const float *save_mean, const float *save_rstd,
                                const float *gamma, const float *beta, kao_act act, size_t M, int C) {
    double *g = kao_malloc(M * sizeof(double), "batchnorm_ref g");
    for (int c = 0; c < C; c++) {
        double sg = 0.0, sgx = 0.0;
        for (size_t m = 0; m < M; m++) {
            double xhat = (inp[m * C + c] - (double)save_mean[c]) * save_rstd[c];
            g[m] = dout[m * C + c];
            if (act == KAO_ACT_SILU) g[m] *= silu_grad_d(xhat * gamma[c] + beta[c]);
            sg += g[m];
            sgx += g[m] * xhat;
        }
        dbeta[c] += (float)sg;
        dgamma[c] += (float)sgx;
        if (!dinp) continue;
        for (size_t m = 0; m < M; m++) {
            double xhat = (inp[m * C + c] - (double)save_mean[c]) * save_rstd[c];
            dinp[m * C + c] = (float)((double)gamma[c] * save_rstd[c] *
                                      (g[m] - sg / (double)M - xhat * sgx / (double)M));
        }
    }
    free(g);
}

void kao_batchnorm_backward_frozen_ref(float *dinp, float *dgamma, float *dbeta, const float *dout,
                                       const float *inp, const float *running_mean,
                                       const float *running_var, const float *gamma, const float *beta,
                                       float eps, kao_act act, size_t M, int C) {
    for (int c = 0; c < C; c++) {
        double rstd = 1.0 / sqrt((double)running_var[c] + eps), sg = 0.0, sgx = 0.0;
        for (size_t m = 0; m < M; m++) {
            double xhat = (inp[m * C + c] - (double)running_mean[c]) * rstd;
            double g = dout[m * C + c];
            if (act == KAO_ACT_SILU) g *= silu_grad_d(xhat * gamma[c] + beta[c]);
            sg += g;
            sgx += g * xhat;
            if (dinp) dinp[m * C + c] = (float)(g * gamma[c] * rstd);
        }
        dbeta[c] += (float)sg;
        dgamma[c] += (float)sgx;
    }
}

/* ---- fast --------------------------------------------------------------------------------- */

enum { BLOCK_FLOATS = 4096 }; /* rows per block: this many floats, at least one row */

static size_t block_rows(int C) { return C >= BLOCK_FLOATS ? 1 : (size_t)(BLOCK_FLOATS / C); }

/* out = act(inp·scale + shift), per channel; out may equal inp. */
static void affine_act(float *out, const float *inp, const float *scale, const float *shift,
                       kao_act act, size_t M, int C) {
    size_t rows = block_rows(C);
    long nblocks = (long)((M + rows - 1) / rows);
#pragma omp parallel for schedule(static)
    for (long blk = 0; blk < nblocks; blk++) {
        size_t m0 = (size_t)blk * rows, m1 = m0 + rows < M ? m0 + rows : M;
        for (size_t m = m0; m < m1; m++) {
            const float *restrict x = inp + m * C;
            float *restrict y = out + m * C;
            for (int c = 0; c < C; c++) y[c] = x[c] * scale[c] + shift[c];
        }
        if (act == KAO_ACT_SILU) kao_silu_array(out + m0 * C, out + m0 * C, (m1 - m0) * C);
    }
}

void kao_batchnorm_forward_eval(float *out, const float *inp, const float *gamma, const float *beta,
                                const float *running_mean, const float *running_var, float eps,
                                kao_act act, size_t M, int C) {
    float *scale = kao_malloc(2 * (size_t)C * sizeof(float), "batchnorm scale"), *shift = scale + C;
    for (int c = 0; c < C; c++) {
        scale[c] = gamma[c] / sqrtf(running_var[c] + eps);
        shift[c] = beta[c] - running_mean[c] * scale[c];
    }
    affine_act(out, inp, scale, shift, act, M, C);
    free(scale);
}

void kao_batchnorm_forward_train(float *out, float *save_mean, float *save_rstd, const float *inp,
                                 const float *gamma, const float *beta, float *running_mean,
                                 float *running_var, float eps, float momentum, kao_act act,
                                 size_t M, int C) {
    KAO_ASSERT(M > 1, "BatchNorm training needs more than one value per channel");
    KAO_ASSERT(out != inp, "batchnorm_forward_train: out must not alias inp");
    int nt = kao_max_threads();
    double *sums = kao_calloc((size_t)nt * 2 * C, sizeof(double), "batchnorm sums");
    float *ref = kao_malloc(3 * (size_t)C * sizeof(float), "batchnorm scale"); /* shift point */
    float *scale = ref + C, *shift = scale + C;
    memcpy(ref, inp, (size_t)C * sizeof(float));
    size_t rows = block_rows(C);
    long nblocks = (long)((M + rows - 1) / rows);
#pragma omp parallel
    {
        double *restrict s1 = sums + (size_t)kao_thread_num() * 2 * C, *restrict s2 = s1 + C;
#pragma omp for schedule(static)
        for (long blk = 0; blk < nblocks; blk++) {
            size_t m0 = (size_t)blk * rows, m1 = m0 + rows < M ? m0 + rows : M;
            for (size_t m = m0; m < m1; m++) {
                const float *restrict x = inp + m * C;
                for (int c = 0; c < C; c++) {
                    double d = (double)(x[c] - ref[c]);
                    s1[c] += d;
                    s2[c] += d * d;
                }
            }
        }
    }
    for (int c = 0; c < C; c++) {
        double d1 = 0.0, d2 = 0.0;
        for (int t = 0; t < nt; t++) {
            d1 += sums[(size_t)t * 2 * C + c];
            d2 += sums[(size_t)t * 2 * C + C + c];
        }
        double dmean = d1 / (double)M, var = d2 / (double)M - dmean * dmean;
        if (var < 0.0) var = 0.0;
        double mean = ref[c] + dmean, rstd = 1.0 / sqrt(var + eps);
        save_mean[c] = (float)mean;
        save_rstd[c] = (float)rstd;
        scale[c] = (float)(gamma[c] * rstd);
        shift[c] = (float)(beta[c] - mean * gamma[c] * rstd);
        if (running_mean) {
            running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + momentum * mean);
            running_var[c] = (float)((1.0 - momentum) * running_var[c] +
                                     momentum * var * (double)M / (double)(M - 1));
        }
    }
    affine_act(out, inp, scale, shift, act, M, C);
    free(ref);
    free(sums);
}

/* Pass 1 of both backwards over one block of rows: g = dout·act'(y) (into gbuf when act is SiLU,
 * else g is dout itself), and per-channel Σg, Σg·xhat into s1, s2. Returns g. */
static const float *block_grad_sums(float *gbuf, float *ybuf, double *restrict s1, double *restrict s2,
                                    const float *dout, const float *inp, const float *mean,
                                    const float *rstd, const float *scale, const float *shift,
                                    kao_act act, size_t m0, size_t m1, int C) {
    size_t n = (m1 - m0) * C;
    const float *g = dout + m0 * C;
    if (act == KAO_ACT_SILU) {
        for (size_t m = m0; m < m1; m++) {
            const float *restrict x = inp + m * C;
            float *restrict y = ybuf + (m - m0) * C;
            for (int c = 0; c < C; c++) y[c] = x[c] * scale[c] + shift[c];
        }
        kao_silu_grad_array(gbuf, dout + m0 * C, ybuf, n);
        g = gbuf;
    }
    for (size_t m = m0; m < m1; m++) {
        const float *restrict x = inp + m * C, *restrict gr = g + (m - m0) * C;
        for (int c = 0; c < C; c++) {
            float xhat = (x[c] - mean[c]) * rstd[c];
            s1[c] += gr[c];
            s2[c] += (double)(gr[c] * xhat);
        }
    }
    return g;
}

/* total (2, C) = Σ over threads of the per-thread sums (nt, 2, C): Σg then Σg·xhat. */
static void reduce_param_grads(double *total, const double *sums, int nt, int C) {
    memset(total, 0, 2 * (size_t)C * sizeof(double));
    for (int t = 0; t < nt; t++)
        for (int i = 0; i < 2 * C; i++) total[i] += sums[(size_t)t * 2 * C + i];
}

void kao_batchnorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                            const float *inp, const float *save_mean, const float *save_rstd,
                            const float *gamma, const float *beta, kao_act act, size_t M, int C) {
    int nt = kao_max_threads();
    size_t rows = block_rows(C), bsize = rows * C;
    long nblocks = (long)((M + rows - 1) / rows);
    double *sums = kao_calloc((size_t)(nt + 1) * 2 * C, sizeof(double), "batchnorm grad sums");
    double *total = sums + (size_t)nt * 2 * C;
    float *buf = kao_malloc(((size_t)nt * 2 * bsize + 4 * (size_t)C) * sizeof(float), "batchnorm blocks");
    float *scale = buf + (size_t)nt * 2 * bsize, *shift = scale + C, *k1 = shift + C, *k2 = k1 + C;
    for (int c = 0; c < C; c++) {
        scale[c] = gamma[c] * save_rstd[c];
        shift[c] = beta[c] - save_mean[c] * scale[c];
    }
    /* Pass 1: with SiLU, g goes to dinp (or a scratch block without dinp) for pass 2. */
#pragma omp parallel
    {
        int t = kao_thread_num();
        double *s1 = sums + (size_t)t * 2 * C, *s2 = s1 + C;
        float *ybuf = buf + (size_t)t * 2 * bsize, *scratch = ybuf + bsize;
#pragma omp for schedule(static)
        for (long blk = 0; blk < nblocks; blk++) {
            size_t m0 = (size_t)blk * rows, m1 = m0 + rows < M ? m0 + rows : M;
            float *gbuf = dinp ? dinp + m0 * C : scratch;
            block_grad_sums(gbuf, ybuf, s1, s2, dout, inp, save_mean, save_rstd, scale, shift, act, m0, m1, C);
        }
    }
    reduce_param_grads(total, sums, nt, C);
    for (int c = 0; c < C; c++) {
        dbeta[c] += (float)total[c];
        dgamma[c] += (float)total[C + c];
    }
    if (dinp) {
        /* Pass 2: dx = γ·rstd·(g - mean(g) - xhat·mean(g·xhat)) = scale·g - k1 - (x - mean)·k2 */
        for (int c = 0; c < C; c++) {
            k1[c] = (float)((double)scale[c] * total[c] / (double)M);
            k2[c] = (float)((double)scale[c] * save_rstd[c] * total[C + c] / (double)M);
        }
        const float *g = act == KAO_ACT_SILU ? dinp : dout;
#pragma omp parallel for schedule(static)
        for (long blk = 0; blk < nblocks; blk++) {
            size_t m0 = (size_t)blk * rows, m1 = m0 + rows < M ? m0 + rows : M;
            for (size_t m = m0; m < m1; m++) {
                const float *x = inp + m * C, *gr = g + m * C;
                float *d = dinp + m * C; /* may alias gr: each element is read, then written */
                for (int c = 0; c < C; c++) d[c] = scale[c] * gr[c] - k1[c] - (x[c] - save_mean[c]) * k2[c];
            }
        }
    }
    free(buf);
    free(sums);
}

void kao_batchnorm_backward_frozen(float *dinp, float *dgamma, float *dbeta, const float *dout,
                                   const float *inp, const float *running_mean,
                                   const float *running_var, const float *gamma, const float *beta,
                                   float eps, kao_act act, size_t M, int C) {
    int nt = kao_max_threads();
    size_t rows = block_rows(C), bsize = rows * C;
    long nblocks = (long)((M + rows - 1) / rows);
    double *sums = kao_calloc((size_t)(nt + 1) * 2 * C, sizeof(double), "batchnorm grad sums");
    double *total = sums + (size_t)nt * 2 * C;
    float *buf = kao_malloc(((size_t)nt * 2 * bsize + 3 * (size_t)C) * sizeof(float), "batchnorm blocks");
    float *rstd = buf + (size_t)nt * 2 * bsize, *scale = rstd + C, *shift = scale + C;
    for (int c = 0; c < C; c++) {
        rstd[c] = (float)(1.0 / sqrt((double)running_var[c] + eps));
        scale[c] = gamma[c] * rstd[c];
        shift[c] = beta[c] - running_mean[c] * scale[c];
    }
#pragma omp parallel
    {
        int t = kao_thread_num();
        double *s1 = sums + (size_t)t * 2 * C, *s2 = s1 + C;
        float *ybuf = buf + (size_t)t * 2 * bsize, *gbuf = ybuf + bsize;
#pragma omp for schedule(static)
        for (long blk = 0; blk < nblocks; blk++) {
            size_t m0 = (size_t)blk * rows, m1 = m0 + rows < M ? m0 + rows : M;
            const float *g = block_grad_sums(gbuf, ybuf, s1, s2, dout, inp, running_mean, rstd, scale,
                                             shift, act, m0, m1, C);
            if (!dinp) continue;
            for (size_t m = m0; m < m1; m++) { /* dinp may alias dout = g: element read, then written */
                const float *gr = g + (m - m0) * C;
                float *d = dinp + m * C;
                for (int c = 0; c < C; c++) d[c] = gr[c] * scale[c];
            }
        }
    }
    reduce_param_grads(total, sums, nt, C);
    for (int c = 0; c < C; c++) {
        dbeta[c] += (float)total[c];
        dgamma[c] += (float)total[C + c];
    }
    free(buf);
    free(sums);
}
