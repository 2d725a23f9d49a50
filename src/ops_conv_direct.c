/* ops_conv_direct.c — direct NHWC convolution kernels (groups = 1), used by ops_conv.c.
 *
 * No im2col and no GEMM packing: a register tile of up to 6 pixels × 16 output channels (12 AVX2
 * accumulators) is an outer product of input scalars (broadcast straight from the NHWC tensor)
 * with 16-channel weight vectors, one FMA per element. Each step of the inner loop loads 6
 * scalars and 2 vectors for 12 FMAs, so it runs at the FMA ports' rate with every operand in L1/L2.
 * Padding never branches: a tap whose source pixel lies outside the image reads a row of zeros.
 *
 *  - forward and dinp share one kernel: out (P pixels, 16 ch) = Σ_taps Σ_c src_tap,p[c] · w_tap[c][16];
 *    forward sums over the window of each output pixel; dinp over the taps that reach an input
 *    pixel, which for stride s depend only on its row and on its column mod s, so a tile takes 6
 *    pixels of one row and one column class (ix = q, q+s, ...).
 *  - dweight: dW[tap][ci][co] += Σ_pixels inp[ci] · dout[co]; a tile of 6 input channels × 16
 *    output channels accumulates in registers along a row of output pixels.
 * Weights are packed (kao_direct_pack_*) into 16-lane blocks padded with zeros. */
#include <stdlib.h>
#include <string.h>

#include "kao/ops.h"
#include "kao/util.h"
#include "ops_internal.h"

enum { TP = 6, LANES = 16 };

static int imax(int a, int b) { return a > b ? a : b; }
static int imin(int a, int b) { return a < b ? a : b; }
static int blocks16(int n) { return (n + LANES - 1) / LANES; }

typedef struct {
    const float *w;      /* this tap's weights, (n_in, 16), for output block 0 */
    const float *x[TP];  /* the tile's source pixels (n_in contiguous floats) or the zero row */
    const float *row;    /* dinp: the dout row this tap reads */
    int kx;              /* dinp: the tap's column */
} tap_ptrs;

/* res (P, 16) = Σ_t Σ_c x_t,j[c] · w_t[c] (the block at wofs). P is a constant after inlining. */
static inline __attribute__((always_inline)) void tile_kernel(const int P, float *res, const tap_ptrs *taps,
                                                              int ntaps, size_t wofs, int n_in) {
    kao_v8f acc[TP][2];
    for (int j = 0; j < P; j++) acc[j][0] = acc[j][1] = kao_splat8(0.0f);
    for (int t = 0; t < ntaps; t++) {
        const float *w = taps[t].w + wofs;
        const float *x0 = taps[t].x[0], *x1 = taps[t].x[1], *x2 = taps[t].x[2];
        const float *x3 = taps[t].x[3], *x4 = taps[t].x[4], *x5 = taps[t].x[5];
        for (int c = 0; c < n_in; c++, w += LANES) {
            kao_v8f w0 = kao_load8(w), w1 = kao_load8(w + 8), xv;
#define STEP(j, xj)                                                                                \
    if (P > j) {                                                                                   \
        xv = kao_splat8(xj[c]);                                                                    \
        acc[j][0] = kao_fma8(xv, w0, acc[j][0]);                                                   \
        acc[j][1] = kao_fma8(xv, w1, acc[j][1]);                                                   \
    }
            STEP(0, x0) STEP(1, x1) STEP(2, x2) STEP(3, x3) STEP(4, x4) STEP(5, x5)
#undef STEP
        }
    }
    for (int j = 0; j < P; j++) {
        kao_store8(res + j * LANES, acc[j][0]);
        kao_store8(res + j * LANES + 8, acc[j][1]);
    }
}

#define TILE_FN(P)                                                                                 \
    static void tile_##P(float *res, const tap_ptrs *taps, int ntaps, size_t wofs, int n_in) {    \
        tile_kernel(P, res, taps, ntaps, wofs, n_in);                                              \
    }
TILE_FN(1) TILE_FN(2) TILE_FN(3) TILE_FN(4) TILE_FN(5) TILE_FN(6)
#undef TILE_FN

typedef void (*tile_fn)(float *, const tap_ptrs *, int, size_t, int);
static const tile_fn tile_fns[TP + 1] = {NULL, tile_1, tile_2, tile_3, tile_4, tile_5, tile_6};

/* For each output block: res → the P pixels' channels [cb·16, cb·16 + 16) ∩ [0, n_out), through
 * the epilogue when there is one. */
static void tile_all_blocks(float *const *outp, int P, const tap_ptrs *taps, int ntaps, int n_in, int n_out,
                            size_t block_stride, kao_epi *e) {
    float res[TP * LANES];
    for (int cb = 0; cb < blocks16(n_out); cb++) {
        int c0 = cb * LANES, cnt = imin(LANES, n_out - c0);
        tile_fns[P](res, taps, ntaps, (size_t)cb * block_stride, n_in);
        if (e) {
            kao_epi_tile(e, outp, res, P, c0, cnt);
            continue;
        }
        for (int j = 0; j < P; j++) memcpy(outp[j] + c0, res + j * LANES, (size_t)cnt * sizeof(float));
    }
}

/* ---- weight packing ---------------------------------------------------------------------------- */

size_t kao_direct_packed_floats(const kao_conv_shape *s) {
    int kk = s->kernel * s->kernel;
    size_t a = (size_t)blocks16(s->out_c) * kk * s->in_c, b = (size_t)blocks16(s->in_c) * kk * s->out_c;
    return (a > b ? a : b) * LANES;
}

/* wd [co block][tap][ci][16] ← W [co][ci][tap] (zeros past Co) */
void kao_direct_pack_forward(float *wd, const float *weight, const kao_conv_shape *s) {
    int kk = s->kernel * s->kernel, Ci = s->in_c, Co = s->out_c;
    memset(wd, 0, (size_t)blocks16(Co) * kk * Ci * LANES * sizeof(float));
    for (int co = 0; co < Co; co++)
        for (int ci = 0; ci < Ci; ci++)
            for (int t = 0; t < kk; t++)
                wd[(((size_t)(co / LANES) * kk + t) * Ci + ci) * LANES + co % LANES] = weight[((size_t)co * Ci + ci) * kk + t];
}

/* wt [ci block][tap][co][16] ← W [co][ci][tap] (zeros past Ci): dinp's weights */
void kao_direct_pack_backward(float *wt, const float *weight, const kao_conv_shape *s) {
    int kk = s->kernel * s->kernel, Ci = s->in_c, Co = s->out_c;
    memset(wt, 0, (size_t)blocks16(Ci) * kk * Co * LANES * sizeof(float));
    for (int co = 0; co < Co; co++)
        for (int ci = 0; ci < Ci; ci++)
            for (int t = 0; t < kk; t++)
                wt[(((size_t)(ci / LANES) * kk + t) * Co + co) * LANES + ci % LANES] = weight[((size_t)co * Ci + ci) * kk + t];
}

/* ---- forward ------------------------------------------------------------------------------------- */

/* Taps of output pixel (oy, ox0 + j), j < P, of image b; the others read zeros. */
static void forward_taps(tap_ptrs *taps, const float *inp, const float *zero, const kao_conv_shape *s, int b, int oy,
                         int ox0, int P) {
    int k = s->kernel, H = s->in_h, W = s->in_w, Ci = s->in_c;
    for (int ky = 0; ky < k; ky++) {
        int iy = oy * s->stride - s->pad_top + ky;
        const float *row = iy >= 0 && iy < H ? inp + ((size_t)b * H + iy) * W * Ci : NULL;
        for (int kx = 0; kx < k; kx++)
            for (int j = 0; j < TP; j++) {
                int ix = (ox0 + j) * s->stride - s->pad_left + kx;
                taps[ky * k + kx].x[j] = row && j < P && ix >= 0 && ix < W ? row + (size_t)ix * Ci : zero;
            }
    }
}

void kao_direct_forward(float *out, const float *inp, const float *wd, kao_epi *e, const kao_conv_shape *s) {
    int kk = s->kernel * s->kernel, Ci = s->in_c, Co = s->out_c, Ho = s->out_h, Wo = s->out_w;
    size_t M = (size_t)s->batch * Ho * Wo, wstride = (size_t)kk * Ci * LANES;
    bool pointwise = kk == 1 && s->stride == 1; /* pixels in a row of the GEMM sense: tiles cross rows */
    long nwork = pointwise ? (long)((M + TP - 1) / TP) : (long)s->batch * Ho;
    float *zero = kao_calloc((size_t)Ci, sizeof(float), "conv zero row");
    tap_ptrs *all_taps = kao_malloc((size_t)kao_max_threads() * kk * sizeof(tap_ptrs), "conv taps");
#pragma omp parallel
    {
        tap_ptrs *taps = all_taps + (size_t)kao_thread_num() * kk;
        float *outp[TP];
        for (int t = 0; t < kk; t++) taps[t].w = wd + (size_t)t * Ci * LANES;
#pragma omp for schedule(static, 4) /* static: per-thread BN sums in the epilogue stay reproducible */
        for (long w = 0; w < nwork; w++) {
            if (pointwise) { /* work item: one tile of 6 pixels */
                size_t m0 = (size_t)w * TP;
                int P = (int)(M - m0 < TP ? M - m0 : TP);
                for (int j = 0; j < TP; j++) {
                    taps[0].x[j] = j < P ? inp + (m0 + j) * Ci : zero;
                    outp[j] = out + (m0 + j) * Co;
                }
                tile_all_blocks(outp, P, taps, 1, Ci, Co, wstride, e);
                if (e) kao_epi_flush(e, P);
                continue;
            }
            int b = (int)(w / Ho), oy = (int)(w % Ho); /* work item: one output row */
            for (int ox0 = 0; ox0 < Wo; ox0 += TP) {
                int P = imin(TP, Wo - ox0);
                forward_taps(taps, inp, zero, s, b, oy, ox0, P);
                for (int j = 0; j < P; j++) outp[j] = out + ((size_t)w * Wo + ox0 + j) * Co;
                tile_all_blocks(outp, P, taps, kk, Ci, Co, wstride, e);
            }
            if (e) kao_epi_flush(e, Wo);
        }
    }
    free(all_taps);
    free(zero);
}

/* ---- dinp ---------------------------------------------------------------------------------------- */

static int mod(int a, int m) { return ((a % m) + m) % m; }

void kao_direct_backward_input(float *dinp, const float *dout, const float *wt, const kao_conv_shape *s) {
    int k = s->kernel, kk = k * k, H = s->in_h, W = s->in_w, Ci = s->in_c, Co = s->out_c;
    int Ho = s->out_h, Wo = s->out_w, st = s->stride;
    long nrows = (long)s->batch * H;
    float *zero = kao_calloc((size_t)Co, sizeof(float), "conv zero row");
    tap_ptrs *all_taps = kao_malloc((size_t)kao_max_threads() * kk * sizeof(tap_ptrs), "conv taps");
#pragma omp parallel
    {
        tap_ptrs *taps = all_taps + (size_t)kao_thread_num() * kk;
        float *outp[TP];
#pragma omp for schedule(dynamic, 4)
        for (long row = 0; row < nrows; row++) {
            int b = (int)(row / H), iy = (int)(row % H);
            for (int q = 0; q < imin(st, W); q++) { /* columns ix = q + st·j share their taps */
                int ntaps = 0;
                for (int ky = 0; ky < k; ky++) {
                    int ty = iy + s->pad_top - ky; /* = oy·st */
                    if (ty < 0 || ty % st || ty / st >= Ho) continue;
                    for (int kx = 0; kx < k; kx++) {
                        if (mod(q + s->pad_left - kx, st)) continue;
                        taps[ntaps].w = wt + (size_t)(ky * k + kx) * Co * LANES;
                        taps[ntaps].row = dout + ((size_t)b * Ho + ty / st) * Wo * Co;
                        taps[ntaps++].kx = kx;
                    }
                }
                int ncols = (W - q + st - 1) / st;
                for (int j0 = 0; j0 < ncols; j0 += TP) {
                    int P = imin(TP, ncols - j0);
                    for (int j = 0; j < P; j++)
                        outp[j] = dinp + (((size_t)b * H + iy) * W + q + st * (j0 + j)) * Ci;
                    if (ntaps == 0) {
                        for (int j = 0; j < P; j++) memset(outp[j], 0, (size_t)Ci * sizeof(float));
                        continue;
                    }
                    for (int t = 0; t < ntaps; t++)
                        for (int j = 0; j < TP; j++) {
                            int tx = q + st * (j0 + j) + s->pad_left - taps[t].kx; /* = ox·st */
                            taps[t].x[j] = j < P && tx >= 0 && tx / st < Wo ? taps[t].row + (size_t)(tx / st) * Co : zero;
                        }
                    tile_all_blocks(outp, P, taps, ntaps, Co, Ci, (size_t)kk * Co * LANES, NULL);
                }
            }
        }
    }
    free(all_taps);
    free(zero);
}

/* ---- dweight ------------------------------------------------------------------------------------- */

/* dw (P rows of ld floats; 16 used) += Σ_i x[i·xs + j] · d[i·ds + 0..15] over n pixels. */
static inline __attribute__((always_inline)) void wgrad_kernel(const int P, float *dw, size_t ld, const float *x,
                                                               size_t xs, const float *d, size_t ds, int n) {
    kao_v8f acc[TP][2];
    for (int j = 0; j < P; j++) acc[j][0] = kao_load8(dw + j * ld), acc[j][1] = kao_load8(dw + j * ld + 8);
    for (int i = 0; i < n; i++, x += xs, d += ds) {
        kao_v8f d0 = kao_load8(d), d1 = kao_load8(d + 8), xv;
#define STEP(j)                                                                                    \
    if (P > j) {                                                                                   \
        xv = kao_splat8(x[j]);                                                                     \
        acc[j][0] = kao_fma8(xv, d0, acc[j][0]);                                                   \
        acc[j][1] = kao_fma8(xv, d1, acc[j][1]);                                                   \
    }
        STEP(0) STEP(1) STEP(2) STEP(3) STEP(4) STEP(5)
#undef STEP
    }
    for (int j = 0; j < P; j++) kao_store8(dw + j * ld, acc[j][0]), kao_store8(dw + j * ld + 8, acc[j][1]);
}

#define WGRAD_FN(P)                                                                                \
    static void wgrad_##P(float *dw, size_t ld, const float *x, size_t xs, const float *d, size_t ds, int n) { \
        wgrad_kernel(P, dw, ld, x, xs, d, ds, n);                                                  \
    }
WGRAD_FN(1) WGRAD_FN(2) WGRAD_FN(3) WGRAD_FN(4) WGRAD_FN(5) WGRAD_FN(6)
#undef WGRAD_FN

typedef void (*wgrad_fn)(float *, size_t, const float *, size_t, const float *, size_t, int);
static const wgrad_fn wgrad_fns[TP + 1] = {NULL, wgrad_1, wgrad_2, wgrad_3, wgrad_4, wgrad_5, wgrad_6};

/* The last output block when Co is not a multiple of 16: only cnt lanes of d exist. */
static void wgrad_tail(int P, int cnt, float *dw, size_t ld, const float *x, size_t xs, const float *d, size_t ds, int n) {
    for (int i = 0; i < n; i++, x += xs, d += ds)
        for (int j = 0; j < P; j++)
            for (int l = 0; l < cnt; l++) dw[j * ld + l] += x[j] * d[l];
}

static int floor_div(int a, int b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

size_t kao_direct_wgrad_floats(const kao_conv_shape *s) {
    return (size_t)s->kernel * s->kernel * s->in_c * blocks16(s->out_c) * LANES;
}

void kao_direct_backward_weight(float *dweight, const float *dout, const float *inp, const kao_conv_shape *s,
                                float *scratch) {
    int k = s->kernel, kk = k * k, H = s->in_h, W = s->in_w, Ci = s->in_c, Co = s->out_c;
    int Ho = s->out_h, Wo = s->out_w, st = s->stride, ldw = blocks16(Co) * LANES;
    size_t per = kao_direct_wgrad_floats(s);
    long nrows = (long)s->batch * Ho;
#pragma omp parallel
    {
        int nthreads = kao_num_threads();
        float *acc = scratch + (size_t)kao_thread_num() * per; /* (kk, Ci, ldw) */
        memset(acc, 0, per * sizeof(float));
#pragma omp for schedule(static)
        for (long row = 0; row < nrows; row++) {
            int b = (int)(row / Ho), oy = (int)(row % Ho);
            for (int ky = 0; ky < k; ky++) {
                int iy = oy * st - s->pad_top + ky;
                if (iy < 0 || iy >= H) continue;
                for (int kx = 0; kx < k; kx++) {
                    /* output columns whose input column ox·st - pad_left + kx is inside */
                    int lo = imax(0, floor_div(s->pad_left - kx + st - 1, st));
                    int hi = imin(Wo, floor_div(W - 1 + s->pad_left - kx, st) + 1), n = hi - lo;
                    if (n <= 0) continue;
                    const float *x = inp + (((size_t)b * H + iy) * W + (size_t)(lo * st - s->pad_left + kx)) * Ci;
                    const float *d = dout + ((size_t)row * Wo + lo) * Co;
                    for (int ci0 = 0; ci0 < Ci; ci0 += TP) {
                        int P = imin(TP, Ci - ci0);
                        for (int cb = 0; cb < blocks16(Co); cb++) {
                            float *a = acc + ((size_t)(ky * k + kx) * Ci + ci0) * ldw + cb * LANES;
                            int cnt = imin(LANES, Co - cb * LANES);
                            if (cnt == LANES)
                                wgrad_fns[P](a, ldw, x + ci0, (size_t)st * Ci, d + cb * LANES, Co, n);
                            else
                                wgrad_tail(P, cnt, a, ldw, x + ci0, (size_t)st * Ci, d + cb * LANES, Co, n);
                        }
                    }
                }
            }
        }
        /* implicit barrier; dW [co][ci][tap] += Σ_threads acc [tap][ci][co] */
#pragma omp for schedule(static)
        for (int co = 0; co < Co; co++)
            for (int ci = 0; ci < Ci; ci++)
                for (int t = 0; t < kk; t++) {
                    float sum = 0.0f;
                    for (int u = 0; u < nthreads; u++) sum += scratch[u * per + ((size_t)t * Ci + ci) * ldw + co];
                    dweight[((size_t)co * Ci + ci) * kk + t] += sum;
                }
    }
}
