/* ops_dwconv.c — depthwise convolution (groups = channels), TF "same" padding, NHWC, weight
 * (C, 1, k, k), no bias.
 *
 * Fast path: NHWC puts a pixel's channels side by side, so every tap is a multiply-add of two
 * contiguous channel vectors. The weight is repacked to [tap][c]; a tile of 6 pixels × 8 channels
 * sits in registers and each weight vector feeds 6 FMAs; taps in the padding read a row of zeros.
 * OpenMP splits the rows of the image being written (output rows forward, input rows for dinp),
 * so no two threads write the same element. dweight keeps per-thread sums (float over 8 rows,
 * double across), for k = 3 with the 9 taps' sums in registers along each row. */
#include <stdlib.h>
#include <string.h>

#include "kao/ops.h"
#include "kao/util.h"
#include "ops_internal.h"


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

enum { TP = 6 }; /* pixels per tile: each weight vector load feeds 6 FMAs */

/* wt [tap][c] ← weight [c][tap] */
static float *repack_taps(const float *weight, int C, int kk) {
    float *wt = kao_malloc((size_t)kk * C * sizeof(float), "dwconv repacked weight");
    for (int c = 0; c < C; c++)
        for (int t = 0; t < kk; t++) wt[(size_t)t * C + c] = weight[(size_t)c * kk + t];
    return wt;
}

/* out_j[c] = Σ_t x[t·TP + j][c] · w[t][c] for the P pixels of a tile and all C channels; x
 * points at source pixels or at a row of zeros (padding). P is a constant after inlining. */
static inline __attribute__((always_inline)) void tile_kernel(const int P, float *const *out, const float *const *x,
                                                              const float *const *w, int ntaps, int C) {
    int c = 0;
    for (; c + 8 <= C; c += 8) {
        kao_v8f acc[TP];
        for (int j = 0; j < P; j++) acc[j] = kao_splat8(0.0f);
        for (int t = 0; t < ntaps; t++) {
            kao_v8f wv = kao_load8(w[t] + c);
            for (int j = 0; j < P; j++) acc[j] = kao_fma8(kao_load8(x[t * TP + j] + c), wv, acc[j]);
        }
        for (int j = 0; j < P; j++) kao_store8(out[j] + c, acc[j]);
    }
    for (; c < C; c++)
        for (int j = 0; j < P; j++) {
            float acc = 0.0f;
            for (int t = 0; t < ntaps; t++) acc += x[t * TP + j][c] * w[t][c];
            out[j][c] = acc;
        }
}

#define TILE_FN(P)                                                                                 \
    static void tile_##P(float *const *out, const float *const *x, const float *const *w, int ntaps, int C) { \
        tile_kernel(P, out, x, w, ntaps, C);                                                       \
    }
TILE_FN(1) TILE_FN(2) TILE_FN(3) TILE_FN(4) TILE_FN(5) TILE_FN(6)
#undef TILE_FN

typedef void (*tile_fn)(float *const *, const float *const *, const float *const *, int, int);
static const tile_fn tile_fns[TP + 1] = {NULL, tile_1, tile_2, tile_3, tile_4, tile_5, tile_6};

/* Per-thread pointer tables of the tiles: x (kk, TP) and w (kk). */
typedef struct {
    const float **x, **w;
} tap_table;

static tap_table *tables_alloc(int kk) {
    int nt = kao_max_threads();
    tap_table *t = kao_malloc((size_t)nt * sizeof *t, "dwconv taps");
    for (int i = 0; i < nt; i++) {
        t[i].x = kao_malloc((size_t)kk * (TP + 1) * sizeof(float *), "dwconv taps");
        t[i].w = t[i].x + (size_t)kk * TP;
    }
    return t;
}

static void tables_free(tap_table *t) {
    for (int i = 0; i < kao_max_threads(); i++) free(t[i].x);
    free(t);
}

void kao_dwconv2d_forward_fused(float *out, const float *inp, const float *weight, const kao_conv_epilogue *ep,
                                const kao_conv_shape *s) {
    KAO_ASSERT(s->depthwise && s->in_c == s->out_c);
    kao_epi *e = kao_epi_begin(ep, s->out_c);
    int k = s->kernel, kk = k * k, H = s->in_h, W = s->in_w, C = s->in_c, Ho = s->out_h, Wo = s->out_w;
    float *wt = repack_taps(weight, C, kk), *zero = kao_calloc((size_t)C, sizeof(float), "dwconv zero row");
    tap_table *tables = tables_alloc(kk);
    long nrows = (long)s->batch * Ho;
#pragma omp parallel
    {
        tap_table tt = tables[kao_thread_num()];
        float *outp[TP];
        for (int t = 0; t < kk; t++) tt.w[t] = wt + (size_t)t * C;
#pragma omp for schedule(static)
        for (long row = 0; row < nrows; row++) {
            int b = (int)(row / Ho), oy = (int)(row % Ho);
            for (int ox0 = 0; ox0 < Wo; ox0 += TP) {
                int P = Wo - ox0 < TP ? Wo - ox0 : TP;
                for (int ky = 0; ky < k; ky++) {
                    int iy = oy * s->stride - s->pad_top + ky;
                    const float *r = iy >= 0 && iy < H ? inp + ((size_t)b * H + iy) * W * C : NULL;
                    for (int kx = 0; kx < k; kx++)
                        for (int j = 0; j < TP; j++) {
                            int ix = (ox0 + j) * s->stride - s->pad_left + kx;
                            tt.x[(ky * k + kx) * TP + j] = r && ix >= 0 && ix < W ? r + (size_t)ix * C : zero;
                        }
                }
                for (int j = 0; j < P; j++) outp[j] = out + ((size_t)row * Wo + ox0 + j) * C;
                tile_fns[P](outp, tt.x, tt.w, kk, C);
            }
            if (e) kao_epi_rows(e, out + (size_t)row * Wo * C, (size_t)Wo, 0, C); /* the row is in L1 */
        }
    }
    kao_epi_end(e);
    tables_free(tables);
    free(zero);
    free(wt);
}

void kao_dwconv2d_forward(float *out, const float *inp, const float *weight, const kao_conv_shape *s) {
    kao_dwconv2d_forward_fused(out, inp, weight, NULL, s);
}

/* dinp: gather form — input pixel (iy, ix) collects dout (oy, ox)·w[tap] over the taps with
 * oy·stride - pad_top + ky = iy (and the same across); these depend only on iy and on ix mod
 * stride, so a tile takes 6 pixels ix = q, q + stride, ... of one row. Threads own input rows. */
static void dw_backward_input(float *dinp, const float *dout, const float *wt, const kao_conv_shape *s) {
    int k = s->kernel, kk = k * k, H = s->in_h, W = s->in_w, C = s->in_c, Ho = s->out_h, Wo = s->out_w;
    int st = s->stride;
    float *zero = kao_calloc((size_t)C, sizeof(float), "dwconv zero row");
    tap_table *tables = tables_alloc(kk);
    int *tap_kx = kao_malloc((size_t)kao_max_threads() * kk * sizeof(int), "dwconv taps");
    const float **tap_row = kao_malloc((size_t)kao_max_threads() * kk * sizeof(float *), "dwconv taps");
    long nrows = (long)s->batch * H;
#pragma omp parallel
    {
        int tid = kao_thread_num();
        tap_table tt = tables[tid];
        int *kxs = tap_kx + (size_t)tid * kk;
        const float **drow = tap_row + (size_t)tid * kk;
        float *outp[TP];
#pragma omp for schedule(static)
        for (long row = 0; row < nrows; row++) {
            int b = (int)(row / H), iy = (int)(row % H);
            for (int q = 0; q < (st < W ? st : W); q++) {
                int n = 0;
                for (int ky = 0; ky < k; ky++) {
                    int ty = iy + s->pad_top - ky; /* = oy·stride */
                    if (ty < 0 || ty % st || ty / st >= Ho) continue;
                    for (int kx = 0; kx < k; kx++) {
                        if ((((q + s->pad_left - kx) % st) + st) % st) continue;
                        tt.w[n] = wt + (size_t)(ky * k + kx) * C;
                        drow[n] = dout + ((size_t)b * Ho + ty / st) * Wo * C;
                        kxs[n++] = kx;
                    }
                }
                int ncols = (W - q + st - 1) / st;
                for (int j0 = 0; j0 < ncols; j0 += TP) {
                    int P = ncols - j0 < TP ? ncols - j0 : TP;
                    for (int j = 0; j < P; j++) outp[j] = dinp + ((size_t)row * W + q + st * (j0 + j)) * C;
                    for (int t = 0; t < n; t++)
                        for (int j = 0; j < TP; j++) {
                            int tx = q + st * (j0 + j) + s->pad_left - kxs[t]; /* = ox·stride */
                            tt.x[t * TP + j] = j < P && tx >= 0 && tx / st < Wo ? drow[t] + (size_t)(tx / st) * C : zero;
                        }
                    tile_fns[P](outp, tt.x, tt.w, n, C);
                }
            }
        }
    }
    free(tap_row);
    free(tap_kx);
    tables_free(tables);
    free(zero);
}

/* k = 3: the 9 taps' sums of 8 channels stay in registers along an output row: per pixel one
 * dout load and 9 input loads feed 9 independent FMA chains. Tap t reads output columns
 * lo[t] .. hi[t]-1, x[t] being its source for column lo[t]. */
static void dw_weight_row_k3(float *racc, const float *const *x, const int *lo, const int *hi, const float *d,
                             int Wo, int C, int xstep) {
    int c = 0;
    for (; c + 8 <= C; c += 8) {
        kao_v8f acc[9];
        for (int t = 0; t < 9; t++) acc[t] = kao_splat8(0.0f);
        for (int ox = 0; ox < Wo; ox++) {
            kao_v8f dv = kao_load8(d + (size_t)ox * C + c);
            for (int t = 0; t < 9; t++)
                if (ox >= lo[t] && ox < hi[t])
                    acc[t] = kao_fma8(kao_load8(x[t] + (size_t)(ox - lo[t]) * xstep + c), dv, acc[t]);
        }
        for (int t = 0; t < 9; t++) kao_store8(racc + (size_t)t * C + c, kao_load8(racc + (size_t)t * C + c) + acc[t]);
    }
    for (; c < C; c++)
        for (int t = 0; t < 9; t++)
            for (int ox = lo[t]; ox < hi[t]; ox++)
                racc[(size_t)t * C + c] += x[t][(size_t)(ox - lo[t]) * xstep + c] * d[(size_t)ox * C + c];
}

static int floor_div(int a, int b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

static void dw_backward_weight(float *dweight, const float *dout, const float *inp, const kao_conv_shape *s) {
    int k = s->kernel, kk = k * k, H = s->in_h, W = s->in_w, C = s->in_c, Ho = s->out_h, Wo = s->out_w;
    int nt = kao_max_threads(), st = s->stride;
    size_t n_w = (size_t)kk * C;
    float *row_acc = kao_malloc((size_t)nt * n_w * sizeof(float), "dwconv dweight row sums");
    double *acc = kao_calloc((size_t)nt * n_w, sizeof(double), "dwconv dweight sums");
    long nrows = (long)s->batch * Ho;
#pragma omp parallel
    {
        float *racc = row_acc + (size_t)kao_thread_num() * n_w; /* (kk, C): float sums of a few rows */
        double *tacc = acc + (size_t)kao_thread_num() * n_w;    /* (kk, C) */
        int rows_in = 0;
        memset(racc, 0, n_w * sizeof(float));
#pragma omp for schedule(static)
        for (long row = 0; row < nrows; row++) {
            int b = (int)(row / Ho), oy = (int)(row % Ho);
            int iy0 = oy * st - s->pad_top;
            const float *image = inp + (size_t)b * H * W * C, *d = dout + (size_t)row * Wo * C;
            if (k == 3) {
                const float *x[9];
                int lo[9], hi[9];
                for (int ky = 0; ky < 3; ky++)
                    for (int kx = 0; kx < 3; kx++) {
                        int t = ky * 3 + kx, iy = iy0 + ky;
                        /* columns ox with 0 <= ox·st - pad_left + kx < W */
                        lo[t] = floor_div(s->pad_left - kx + st - 1, st), hi[t] = floor_div(W - 1 + s->pad_left - kx, st) + 1;
                        if (lo[t] < 0) lo[t] = 0;
                        if (hi[t] > Wo) hi[t] = Wo;
                        if (iy < 0 || iy >= H || hi[t] < lo[t]) lo[t] = hi[t] = 0;
                        x[t] = lo[t] < hi[t] ? image + ((size_t)iy * W + (size_t)(lo[t] * st - s->pad_left + kx)) * C : image;
                    }
                dw_weight_row_k3(racc, x, lo, hi, d, Wo, C, st * C);
            } else {
                int ky_lo = iy0 < 0 ? -iy0 : 0, ky_hi = H - iy0 < k ? H - iy0 : k;
                for (int ox = 0; ox < Wo; ox++) {
                    const float *restrict dv = d + (size_t)ox * C;
                    int ix0 = ox * st - s->pad_left;
                    int kx_lo = ix0 < 0 ? -ix0 : 0, kx_hi = W - ix0 < k ? W - ix0 : k;
                    for (int ky = ky_lo; ky < ky_hi; ky++)
                        for (int kx = kx_lo; kx < kx_hi; kx++) {
                            const float *restrict xv = image + ((size_t)(iy0 + ky) * W + (size_t)(ix0 + kx)) * C;
                            float *restrict a = racc + (size_t)(ky * k + kx) * C;
                            for (int c = 0; c < C; c++) a[c] += dv[c] * xv[c];
                        }
                }
            }
            if (++rows_in == 8) { /* float sums over at most 8 rows, then double */
                for (size_t i = 0; i < n_w; i++) tacc[i] += racc[i], racc[i] = 0.0f;
                rows_in = 0;
            }
        }
        for (size_t i = 0; i < n_w; i++) tacc[i] += racc[i];
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
