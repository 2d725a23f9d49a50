/* ops_batchnorm.c — BatchNorm over M = B·H·W rows of C channels (NHWC), PyTorch semantics
 * (docs/numerics.md, 'Batch norm'), with an optional fused SiLU after the affine.
 *
 * Statistics: one pass of per-channel sums of d = x - (first row) and d², per thread, in float
 * over blocks of up to 32 rows and in double across blocks; the shift keeps E[d²] - E[d]²
 * free of cancellation and the double totals keep M ≈ 400k rows exact to fp32 (tested). A fused
 * convolution can gather Σy, Σy² instead (kao_conv_epilogue): kao_batchnorm_forward_train_sums.
 * The fast path runs over blocks of rows (OpenMP), in the form PyTorch's CPU kernel uses:
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

/* Rows per block: at most 4096 floats and at most 32 rows (a float partial sum over 32 rows,
 * then double: float rounding over longer runs showed in dgamma at 1e-5 of Σ|g·xhat|). */
enum { BLOCK_FLOATS = 4096, BLOCK_MAX_ROWS = 32 };

static size_t block_rows(int C) {
    size_t r = C >= BLOCK_FLOATS ? 1 : (size_t)(BLOCK_FLOATS / C);
    return r < BLOCK_MAX_ROWS ? r : BLOCK_MAX_ROWS;
}

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

void kao_batchnorm_fold(float *scale, float *shift, const float *gamma, const float *beta,
                        const float *running_mean, const float *running_var, float eps, int C) {
    for (int c = 0; c < C; c++) {
        scale[c] = (float)(gamma[c] / sqrt((double)running_var[c] + eps));
        shift[c] = beta[c] - running_mean[c] * scale[c];
    }
}

void kao_batchnorm_forward_eval(float *out, const float *inp, const float *gamma, const float *beta,
                                const float *running_mean, const float *running_var, float eps,
                                kao_act act, size_t M, int C) {
    float *scale = kao_malloc(2 * (size_t)C * sizeof(float), "batchnorm scale"), *shift = scale + C;
    kao_batchnorm_fold(scale, shift, gamma, beta, running_mean, running_var, eps, C);
    affine_act(out, inp, scale, shift, act, M, C);
    free(scale);
}

/* From Σd and Σd² (d = x - ref) over M rows: the saved statistics, the running ones (momentum,
 * unbiased variance), then out = act(xhat·γ + β). */
static void train_from_sums(float *out, float *save_mean, float *save_rstd, const float *inp, const double *sums,
                            const float *ref, const float *gamma, const float *beta, float *running_mean,
                            float *running_var, float eps, float momentum, kao_act act, size_t M, int C) {
    KAO_ASSERT(M > 1, "BatchNorm training needs more than one value per channel");
    float *scale = kao_malloc(2 * (size_t)C * sizeof(float), "batchnorm scale"), *shift = scale + C;
    for (int c = 0; c < C; c++) {
        double dmean = sums[c] / (double)M, var = sums[C + c] / (double)M - dmean * dmean;
        if (var < 0.0) var = 0.0;
        double mean = (ref ? ref[c] : 0.0) + dmean, rstd = 1.0 / sqrt(var + eps);
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
    free(scale);
}

void kao_batchnorm_forward_train_sums(float *out, float *save_mean, float *save_rstd, const float *inp,
                                      const double *sums, const float *gamma, const float *beta,
                                      float *running_mean, float *running_var, float eps, float momentum,
                                      kao_act act, size_t M, int C) {
    train_from_sums(out, save_mean, save_rstd, inp, sums, NULL, gamma, beta, running_mean, running_var, eps,
                    momentum, act, M, C);
}

/* Per-thread partial sums: a float block sum (at most 32 rows) is added to double totals per
 * block: the inner loop stays in float, the totals keep M ≈ 400k rows exact to fp32. */
typedef struct {
    double *total; /* (nt, 2, C) */
    float *block;  /* (nt, 2, C) */
} partials;

static partials partials_alloc(int C) {
    int nt = kao_max_threads();
    partials p = {kao_calloc((size_t)nt * 2 * C, sizeof(double), "batchnorm sums"),
                  kao_malloc((size_t)nt * 2 * C * sizeof(float), "batchnorm block sums")};
    return p;
}

static void partials_flush(double *total, float *block, int C) {
    for (int i = 0; i < 2 * C; i++) total[i] += block[i], block[i] = 0.0f;
}

/* sums (2, C) = Σ over threads; frees p. */
static void partials_reduce(double *sums, partials *p, int C) {
    memset(sums, 0, 2 * (size_t)C * sizeof(double));
    for (int t = 0; t < kao_max_threads(); t++)
        for (int i = 0; i < 2 * C; i++) sums[i] += p->total[(size_t)t * 2 * C + i];
    free(p->total);
    free(p->block);
}

void kao_batchnorm_forward_train(float *out, float *save_mean, float *save_rstd, const float *inp,
                                 const float *gamma, const float *beta, float *running_mean,
                                 float *running_var, float eps, float momentum, kao_act act,
                                 size_t M, int C) {
    KAO_ASSERT(out != inp, "batchnorm_forward_train: out must not alias inp");
    partials p = partials_alloc(C);
    double *sums = kao_malloc(2 * (size_t)C * sizeof(double), "batchnorm sums");
    const float *ref = inp; /* the first row: d = x - ref keeps Σd² - (Σd)²/M free of cancellation */
    size_t rows = block_rows(C);
    long nblocks = (long)((M + rows - 1) / rows);
#pragma omp parallel
    {
        int t = kao_thread_num();
        float *restrict s1 = p.block + (size_t)t * 2 * C, *restrict s2 = s1 + C;
        memset(s1, 0, 2 * (size_t)C * sizeof(float));
#pragma omp for schedule(static)
        for (long blk = 0; blk < nblocks; blk++) {
            size_t m0 = (size_t)blk * rows, m1 = m0 + rows < M ? m0 + rows : M;
            for (size_t m = m0; m < m1; m++) {
                const float *restrict x = inp + m * C;
                for (int c = 0; c < C; c++) {
                    float d = x[c] - ref[c];
                    s1[c] += d;
                    s2[c] += d * d;
                }
            }
            partials_flush(p.total + (size_t)t * 2 * C, s1, C);
        }
    }
    partials_reduce(sums, &p, C);
    train_from_sums(out, save_mean, save_rstd, inp, sums, ref, gamma, beta, running_mean, running_var, eps,
                    momentum, act, M, C);
    free(sums);
}

/* Pass 1 of both backwards over one block of rows: g = dout·act'(y) (into gbuf when act is SiLU,
 * else g is dout itself), and per-channel Σg, Σg·xhat into s1, s2. Returns g. */
static const float *block_grad_sums(float *gbuf, float *ybuf, float *restrict s1, float *restrict s2,
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
            s1[c] += gr[c];
            s2[c] += gr[c] * ((x[c] - mean[c]) * rstd[c]);
        }
    }
    return g;
}

/* Σg and Σg·xhat (2, C) over all rows; with SiLU g is written to dinp (or scratch without dinp),
 * and with frozen statistics (dscale non-NULL) dinp = g·dscale in the same pass. */
static void grad_sums(double *sums, float *dinp, const float *dscale, const float *dout, const float *inp,
                      const float *mean, const float *rstd, const float *scale, const float *shift, kao_act act,
                      size_t M, int C) {
    partials p = partials_alloc(C);
    size_t rows = block_rows(C), bsize = rows * C;
    long nblocks = (long)((M + rows - 1) / rows);
    float *buf = kao_malloc((size_t)kao_max_threads() * 2 * bsize * sizeof(float), "batchnorm blocks");
#pragma omp parallel
    {
        int t = kao_thread_num();
        float *s1 = p.block + (size_t)t * 2 * C, *s2 = s1 + C;
        float *ybuf = buf + (size_t)t * 2 * bsize, *scratch = ybuf + bsize;
        memset(s1, 0, 2 * (size_t)C * sizeof(float));
#pragma omp for schedule(static)
        for (long blk = 0; blk < nblocks; blk++) {
            size_t m0 = (size_t)blk * rows, m1 = m0 + rows < M ? m0 + rows : M;
            float *gbuf = dinp && !dscale ? dinp + m0 * C : scratch;
            const float *g = block_grad_sums(gbuf, ybuf, s1, s2, dout, inp, mean, rstd, scale, shift, act, m0, m1, C);
            partials_flush(p.total + (size_t)t * 2 * C, s1, C);
            if (!dinp || !dscale) continue;
            for (size_t m = m0; m < m1; m++) { /* dinp may alias dout = g: element read, then written */
                const float *gr = g + (m - m0) * C;
                float *d = dinp + m * C;
                for (int c = 0; c < C; c++) d[c] = gr[c] * dscale[c];
            }
        }
    }
    partials_reduce(sums, &p, C);
    free(buf);
}

void kao_batchnorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                            const float *inp, const float *save_mean, const float *save_rstd,
                            const float *gamma, const float *beta, kao_act act, size_t M, int C) {
    size_t rows = block_rows(C);
    long nblocks = (long)((M + rows - 1) / rows);
    double *sums = kao_malloc(2 * (size_t)C * sizeof(double), "batchnorm grad sums");
    float *scale = kao_malloc(4 * (size_t)C * sizeof(float), "batchnorm scale");
    float *shift = scale + C, *k1 = shift + C, *k2 = k1 + C;
    for (int c = 0; c < C; c++) {
        scale[c] = gamma[c] * save_rstd[c];
        shift[c] = beta[c] - save_mean[c] * scale[c];
    }
    /* Pass 1: with SiLU, g goes to dinp for pass 2. */
    grad_sums(sums, dinp, NULL, dout, inp, save_mean, save_rstd, scale, shift, act, M, C);
    for (int c = 0; c < C; c++) {
        dbeta[c] += (float)sums[c];
        dgamma[c] += (float)sums[C + c];
    }
    if (dinp) {
        /* Pass 2: dx = γ·rstd·(g - mean(g) - xhat·mean(g·xhat)) = scale·g - k1 - (x - mean)·k2 */
        for (int c = 0; c < C; c++) {
            k1[c] = (float)((double)scale[c] * sums[c] / (double)M);
            k2[c] = (float)((double)scale[c] * save_rstd[c] * sums[C + c] / (double)M);
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
    free(scale);
    free(sums);
}

void kao_batchnorm_backward_frozen(float *dinp, float *dgamma, float *dbeta, const float *dout,
                                   const float *inp, const float *running_mean,
                                   const float *running_var, const float *gamma, const float *beta,
                                   float eps, kao_act act, size_t M, int C) {
    double *sums = kao_malloc(2 * (size_t)C * sizeof(double), "batchnorm grad sums");
    float *rstd = kao_malloc(3 * (size_t)C * sizeof(float), "batchnorm scale"), *scale = rstd + C, *shift = scale + C;
    for (int c = 0; c < C; c++) {
        rstd[c] = (float)(1.0 / sqrt((double)running_var[c] + eps));
        scale[c] = gamma[c] * rstd[c];
        shift[c] = beta[c] - running_mean[c] * scale[c];
    }
    grad_sums(sums, dinp, scale, dout, inp, running_mean, rstd, scale, shift, act, M, C);
    for (int c = 0; c < C; c++) {
        dbeta[c] += (float)sums[c];
        dgamma[c] += (float)sums[C + c];
    }
    free(rstd);
    free(sums);
}
