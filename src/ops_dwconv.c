/* ops_dwconv.c — depthwise convolution (groups = channels), TF "same" padding, NHWC, weight
 * (C, 1, k, k), no bias.
 *
 * Fast path: NHWC puts a pixel's channels side by side, so every tap is a multiply-add of two
 * contiguous channel vectors. The weight is repacked to [tap][c]; each output pixel lists its valid
 * taps (padding = taps left out) and runs them over channel blocks of 32 and 8 held in registers.
 * OpenMP splits the rows of the image being written (output rows forward, input rows for dinp),
 * so no two threads write the same element. dweight uses per-thread sums (float within a row,
 * double across rows). */
#include <stdlib.h>
#include <string.h>

#include "kao/ops.h"
#include "kao/util.h"
#include "ops_internal.h"

static int imax(int a, int b) { return a > b ? a : b; }
static int imin(int a, int b) { return a < b ? a : b; }

/* ---- reference ---------------------------------------------------------------------------- */

void kao_dwconv2d_forward_ref(float *out, const float *inp, const float *weight, const kao_conv_shape *s) {
    KAO_ASSERT(s->depthwise && s->in_c == s->out_c);
    int k = s->kernel, H = s->in_h, W = s->in_w, C = s->in_c;
    for (int b = 0; b < s->batch; b++)
        for (int oy = 0; oy < s->out_h; oy++)
            for (int ox = 0; ox < s->out_w; ox++)
                for (int c = 0; c < C; c++) {
                    double acc = 0.0;
                    for (int ky = 0; ky < k; ky++)
                        for (int kx = 0; kx < k; kx++) {
                            int iy = oy * s->stride - s->pad_top + ky;
                            int ix = ox * s->stride - s->pad_left + kx;
                            if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                            acc += (double)inp[(((size_t)b * H + iy) * W + ix) * C + c] *
                                   weight[((size_t)c * k + ky) * k + kx];
                        }
                    out[(((size_t)b * s->out_h + oy) * s->out_w + ox) * C + c] = (float)acc;
                }
}

void kao_dwconv2d_backward_ref(float *dinp, float *dweight, const float *dout, const float *inp,
                               const float *weight, const kao_conv_shape *s) {
    KAO_ASSERT(s->depthwise && s->in_c == s->out_c);
    int k = s->kernel, H = s->in_h, W = s->in_w, C = s->in_c;
    size_t n_inp = (size_t)s->batch * H * W * C, n_w = (size_t)C * k * k;
    double *di = kao_calloc(n_inp, sizeof(double), "dwconv_ref dinp");
    double *dw = kao_calloc(n_w, sizeof(double), "dwconv_ref dweight");
    for (int b = 0; b < s->batch; b++)
        for (int oy = 0; oy < s->out_h; oy++)
            for (int ox = 0; ox < s->out_w; ox++)
                for (int c = 0; c < C; c++) {
                    double g = dout[(((size_t)b * s->out_h + oy) * s->out_w + ox) * C + c];
                    for (int ky = 0; ky < k; ky++)
                        for (int kx = 0; kx < k; kx++) {
                            int iy = oy * s->stride - s->pad_top + ky;
                            int ix = ox * s->stride - s->pad_left + kx;
                            if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                            size_t i = (((size_t)b * H + iy) * W + ix) * C + c;
                            size_t w = ((size_t)c * k + ky) * k + kx;
                            di[i] += g * weight[w];
                            dw[w] += g * inp[i];
                        }
                }
    if (dinp)
        for (size_t i = 0; i < n_inp; i++) dinp[i] = (float)di[i];
    for (size_t i = 0; i < n_w; i++) dweight[i] += (float)dw[i];
    free(di);
    free(dw);
}

/* ---- fast --------------------------------------------------------------------------------- */

/* wt [tap][c] ← weight [c][tap] */
static float *repack_taps(const float *weight, int C, int kk) {
    float *wt = kao_malloc((size_t)kk * C * sizeof(float), "dwconv repacked weight");
    for (int c = 0; c < C; c++)
        for (int t = 0; t < kk; t++) wt[(size_t)t * C + c] = weight[(size_t)c * kk + t];
    return wt;
}

/* o[c] = Σ_t a[aoff[t] + c] · w[woff[t] + c] for c < C: the n taps of one pixel. */
static void dot_taps(float *restrict o, const float *a, const size_t *aoff, const float *w,
                     const size_t *woff, int n, int C) {
    int c = 0;
    for (; c + 32 <= C; c += 32) {
        kao_v8f s0 = kao_splat8(0.0f), s1 = s0, s2 = s0, s3 = s0;
        for (int t = 0; t < n; t++) {
            const float *ap = a + aoff[t] + c, *wp = w + woff[t] + c;
            s0 = kao_fma8(kao_load8(ap), kao_load8(wp), s0);
            s1 = kao_fma8(kao_load8(ap + 8), kao_load8(wp + 8), s1);
            s2 = kao_fma8(kao_load8(ap + 16), kao_load8(wp + 16), s2);
            s3 = kao_fma8(kao_load8(ap + 24), kao_load8(wp + 24), s3);
        }
        kao_store8(o + c, s0);
        kao_store8(o + c + 8, s1);
        kao_store8(o + c + 16, s2);
        kao_store8(o + c + 24, s3);
    }
    for (; c + 8 <= C; c += 8) {
        kao_v8f s0 = kao_splat8(0.0f);
        for (int t = 0; t < n; t++) s0 = kao_fma8(kao_load8(a + aoff[t] + c), kao_load8(w + woff[t] + c), s0);
        kao_store8(o + c, s0);
    }
    for (; c < C; c++) {
        float s0 = 0.0f;
        for (int t = 0; t < n; t++) s0 += a[aoff[t] + c] * w[woff[t] + c];
        o[c] = s0;
    }
}

void kao_dwconv2d_forward(float *out, const float *inp, const float *weight, const kao_conv_shape *s) {
    KAO_ASSERT(s->depthwise && s->in_c == s->out_c);
    int k = s->kernel, kk = k * k, H = s->in_h, W = s->in_w, C = s->in_c, Ho = s->out_h, Wo = s->out_w;
    float *wt = repack_taps(weight, C, kk);
    size_t *offs = kao_malloc((size_t)kao_max_threads() * 2 * kk * sizeof(size_t), "dwconv taps");
    long nrows = (long)s->batch * Ho;
#pragma omp parallel
    {
        size_t *ioff = offs + (size_t)kao_thread_num() * 2 * kk, *woff = ioff + kk;
#pragma omp for schedule(static)
        for (long row = 0; row < nrows; row++) {
            int b = (int)(row / Ho), oy = (int)(row % Ho);
            int iy0 = oy * s->stride - s->pad_top;
            int ky_lo = imax(0, -iy0), ky_hi = imin(k, H - iy0);
            const float *image = inp + (size_t)b * H * W * C;
            for (int ox = 0; ox < Wo; ox++) {
                int ix0 = ox * s->stride - s->pad_left;
                int kx_lo = imax(0, -ix0), kx_hi = imin(k, W - ix0), n = 0;
                for (int ky = ky_lo; ky < ky_hi; ky++)
                    for (int kx = kx_lo; kx < kx_hi; kx++, n++) {
                        ioff[n] = ((size_t)(iy0 + ky) * W + (size_t)(ix0 + kx)) * C;
                        woff[n] = (size_t)(ky * k + kx) * C;
                    }
                dot_taps(out + ((size_t)row * Wo + ox) * C, image, ioff, wt, woff, n, C);
            }
        }
    }
    free(offs);
    free(wt);
}

/* dinp: gather form — input pixel (iy, ix) collects dout (oy, ox)·w[tap] over the taps with
 * oy·stride - pad_top + ky = iy (and the same across), so each thread writes only its own rows. */
static void dw_backward_input(float *dinp, const float *dout, const float *wt, const kao_conv_shape *s) {
    int k = s->kernel, kk = k * k, H = s->in_h, W = s->in_w, C = s->in_c, Ho = s->out_h, Wo = s->out_w;
    int st = s->stride;
    size_t *offs = kao_malloc((size_t)kao_max_threads() * 2 * kk * sizeof(size_t), "dwconv taps");
    long nrows = (long)s->batch * H;
#pragma omp parallel
    {
        size_t *doff = offs + (size_t)kao_thread_num() * 2 * kk, *woff = doff + kk;
#pragma omp for schedule(static)
        for (long row = 0; row < nrows; row++) {
            int b = (int)(row / H), iy = (int)(row % H);
            const float *dimage = dout + (size_t)b * Ho * Wo * C;
            for (int ix = 0; ix < W; ix++) {
                int n = 0;
                for (int ky = 0; ky < k; ky++) {
                    int ty = iy + s->pad_top - ky; /* = oy·stride */
                    if (ty < 0 || ty % st || ty / st >= Ho) continue;
                    for (int kx = 0; kx < k; kx++) {
                        int tx = ix + s->pad_left - kx;
                        if (tx < 0 || tx % st || tx / st >= Wo) continue;
                        doff[n] = ((size_t)(ty / st) * Wo + (size_t)(tx / st)) * C;
                        woff[n++] = (size_t)(ky * k + kx) * C;
                    }
                }
                dot_taps(dinp + ((size_t)row * W + ix) * C, dimage, doff, wt, woff, n, C);
            }
        }
    }
    free(offs);
}

static void dw_backward_weight(float *dweight, const float *dout, const float *inp, const kao_conv_shape *s) {
    int k = s->kernel, kk = k * k, H = s->in_h, W = s->in_w, C = s->in_c, Ho = s->out_h, Wo = s->out_w;
    int nt = kao_max_threads();
    size_t n_w = (size_t)kk * C;
    float *row_acc = kao_malloc((size_t)nt * n_w * sizeof(float), "dwconv dweight row sums");
    double *acc = kao_calloc((size_t)nt * n_w, sizeof(double), "dwconv dweight sums");
    long nrows = (long)s->batch * Ho;
#pragma omp parallel
    {
        float *racc = row_acc + (size_t)kao_thread_num() * n_w; /* (kk, C) */
        double *tacc = acc + (size_t)kao_thread_num() * n_w;    /* (kk, C) */
#pragma omp for schedule(static)
        for (long row = 0; row < nrows; row++) {
            int b = (int)(row / Ho), oy = (int)(row % Ho);
            int iy0 = oy * s->stride - s->pad_top;
            int ky_lo = imax(0, -iy0), ky_hi = imin(k, H - iy0);
            const float *image = inp + (size_t)b * H * W * C;
            memset(racc, 0, n_w * sizeof(float));
            for (int ox = 0; ox < Wo; ox++) {
                const float *restrict d = dout + ((size_t)row * Wo + ox) * C;
                int ix0 = ox * s->stride - s->pad_left;
                int kx_lo = imax(0, -ix0), kx_hi = imin(k, W - ix0);
                for (int ky = ky_lo; ky < ky_hi; ky++)
                    for (int kx = kx_lo; kx < kx_hi; kx++) {
                        const float *restrict x = image + ((size_t)(iy0 + ky) * W + (size_t)(ix0 + kx)) * C;
                        float *restrict a = racc + (size_t)(ky * k + kx) * C;
                        for (int c = 0; c < C; c++) a[c] += d[c] * x[c];
                    }
            }
            for (size_t i = 0; i < n_w; i++) tacc[i] += racc[i];
        }
    }
    for (int c = 0; c < C; c++)
        for (int t = 0; t < kk; t++) {
            double sum = 0.0;
            for (int u = 0; u < nt; u++) sum += acc[(size_t)u * n_w + (size_t)t * C + c];
            dweight[(size_t)c * kk + t] += (float)sum;
        }
    free(acc);
    free(row_acc);
}

void kao_dwconv2d_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                           const float *weight, const kao_conv_shape *s) {
    KAO_ASSERT(s->depthwise && s->in_c == s->out_c);
    dw_backward_weight(dweight, dout, inp, s);
    if (dinp) {
        float *wt = repack_taps(weight, s->in_c, s->kernel * s->kernel);
        dw_backward_input(dinp, dout, wt, s);
        free(wt);
    }
}
