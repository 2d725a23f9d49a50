/* ops_conv.c — convolution with groups = 1, TF "same" padding, NHWC activations, OIHW weights.
 *
 * The reference is the textbook loop nest, accumulating in double. The fast path:
 *  - 1×1, stride 1, few pixels and many channels: GEMM, out [M, Co] = inp [M, Ci] · W [Co, Ci]ᵀ
 *    over the M = B·H·W pixel rows with no copy, one OpenBLAS call (single-threaded, see
 *    ops_internal.h) per tile of rows and columns and OpenMP thread;
 *  - everything else: the direct kernels of ops_conv_direct.c (no im2col buffer, which would be
 *    B·Ho·Wo·k²·Ci floats: 460 MB for blocks.0.0 of b0 at 224, batch 32). */
#include <stdlib.h>
#include <string.h>

#include "kao/ops.h"
#include "kao/util.h"
#include "ops_internal.h"

static int imax(int a, int b) { return a > b ? a : b; }

void kao_conv_shape_init(kao_conv_shape *s, int batch, int in_h, int in_w, int in_c, int out_c,
                         int kernel, int stride, bool depthwise) {
    KAO_ASSERT(batch > 0 && in_h > 0 && in_w > 0 && in_c > 0 && out_c > 0, "conv sizes");
    KAO_ASSERT(kernel > 0 && stride > 0, "kernel %d stride %d", kernel, stride);
    KAO_ASSERT(!depthwise || in_c == out_c, "depthwise conv with %d in, %d out channels", in_c, out_c);
    s->batch = batch;
    s->in_h = in_h, s->in_w = in_w, s->in_c = in_c;
    s->out_h = (in_h + stride - 1) / stride;
    s->out_w = (in_w + stride - 1) / stride;
    s->out_c = out_c;
    s->kernel = kernel, s->stride = stride;
    s->pad_top = imax((s->out_h - 1) * stride + kernel - in_h, 0) / 2;
    s->pad_left = imax((s->out_w - 1) * stride + kernel - in_w, 0) / 2;
    s->depthwise = depthwise;
}

float *kao_workspace_get(kao_workspace *ws, size_t floats) {
    if (floats > ws->capacity) {
        free(ws->data);
        ws->data = kao_aligned_alloc(floats * sizeof(float), "conv workspace");
        ws->capacity = floats;
    }
    return ws->data;
}

void kao_workspace_free(kao_workspace *ws) {
    free(ws->data);
    ws->data = NULL;
    ws->capacity = 0;
}

/* ---- reference ---------------------------------------------------------------------------- */

void kao_conv2d_forward_ref(float *out, const float *inp, const float *weight, const float *bias,
                            const kao_conv_shape *s) {
    KAO_ASSERT(!s->depthwise);
    int k = s->kernel, H = s->in_h, W = s->in_w, Ci = s->in_c, Co = s->out_c;
    for (int b = 0; b < s->batch; b++)
        for (int oy = 0; oy < s->out_h; oy++)
            for (int ox = 0; ox < s->out_w; ox++)
                for (int co = 0; co < Co; co++) {
                    double acc = bias ? bias[co] : 0.0;
                    for (int ky = 0; ky < k; ky++)
                        for (int kx = 0; kx < k; kx++) {
                            int iy = oy * s->stride - s->pad_top + ky;
                            int ix = ox * s->stride - s->pad_left + kx;
                            if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue; /* zero padding */
                            for (int ci = 0; ci < Ci; ci++)
                                acc += (double)inp[(((size_t)b * H + iy) * W + ix) * Ci + ci] *
                                       weight[(((size_t)co * Ci + ci) * k + ky) * k + kx];
                        }
                    out[(((size_t)b * s->out_h + oy) * s->out_w + ox) * Co + co] = (float)acc;
                }
}

/* The forward loop nest again, scattering each output's gradient into double accumulators. */
void kao_conv2d_backward_ref(float *dinp, float *dweight, float *dbias, const float *dout,
                             const float *inp, const float *weight, const kao_conv_shape *s) {
    KAO_ASSERT(!s->depthwise);
    int k = s->kernel, H = s->in_h, W = s->in_w, Ci = s->in_c, Co = s->out_c;
    size_t n_inp = (size_t)s->batch * H * W * Ci, n_w = (size_t)Co * Ci * k * k;
    double *di = kao_calloc(n_inp, sizeof(double), "conv_ref dinp");
    double *dw = kao_calloc(n_w, sizeof(double), "conv_ref dweight");
    double *db = kao_calloc((size_t)Co, sizeof(double), "conv_ref dbias");
    for (int b = 0; b < s->batch; b++)
        for (int oy = 0; oy < s->out_h; oy++)
            for (int ox = 0; ox < s->out_w; ox++)
                for (int co = 0; co < Co; co++) {
                    double g = dout[(((size_t)b * s->out_h + oy) * s->out_w + ox) * Co + co];
                    db[co] += g;
                    for (int ky = 0; ky < k; ky++)
                        for (int kx = 0; kx < k; kx++) {
                            int iy = oy * s->stride - s->pad_top + ky;
                            int ix = ox * s->stride - s->pad_left + kx;
                            if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                            for (int ci = 0; ci < Ci; ci++) {
                                size_t i = (((size_t)b * H + iy) * W + ix) * Ci + ci;
                                size_t w = (((size_t)co * Ci + ci) * k + ky) * k + kx;
                                di[i] += g * weight[w];
                                dw[w] += g * inp[i];
                            }
                        }
                }
    if (dinp)
        for (size_t i = 0; i < n_inp; i++) dinp[i] = (float)di[i];
    for (size_t i = 0; i < n_w; i++) dweight[i] += (float)dw[i];
    if (dbias)
        for (int co = 0; co < Co; co++) dbias[co] += (float)db[co];
    free(di);
    free(dw);
    free(db);
}

/* ---- fast --------------------------------------------------------------------------------- */

/* Which path, as measured by tests/bench_ops.c on the target (2-core Zen 3): the direct kernels
 * win wherever a GEMM operand would be thin (k×k windows, few output channels) and save im2col,
 * and for 1×1 convolutions over many pixels (batch 32: 192→1152 at 7×7 5.2 vs 7.4 ms via OpenBLAS,
 * 112→672 at 14×14 8.7 vs 9.8); OpenBLAS wins for every 1×1 backward (dweight is one GEMM with a
 * reduction over all pixels). */
static bool pointwise(const kao_conv_shape *s) { return s->kernel == 1 && s->stride == 1; }
static bool forward_gemm(const kao_conv_shape *s) {
    size_t M = (size_t)s->batch * s->out_h * s->out_w;
    /* The direct kernel streams the whole weight for every 6-pixel tile; with few pixels (batch 1
     * at 14×14 and 7×7) and many channels, OpenBLAS's blocking wins (batch 1: 1152→192 at 7×7
     * 0.21 vs 0.53 ms, 672→112 at 14×14 0.23 vs 0.33). */
    return pointwise(s) && M <= 1024 && (s->out_c > 192 || s->in_c > 192);
}

/* Rounds a float count up to a whole number of 64-byte lines (keeps carved buffers aligned). */
static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

/* ---- fused epilogue ------------------------------------------------------------------------- */

kao_epi *kao_epi_begin(const kao_conv_epilogue *ep, int C) {
    if (!ep || (!ep->scale && !ep->shift && ep->act == KAO_ACT_NONE && !ep->sums)) return NULL;
    kao_epi *e = kao_calloc(1, sizeof *e, "conv epilogue");
    int nt = kao_max_threads();
    e->C = C, e->padded = (C + 15) & ~15, e->act = ep->act, e->sums = ep->sums;
    e->scale = kao_malloc(2 * (size_t)e->padded * sizeof(float), "conv epilogue scale");
    e->shift = e->scale + e->padded;
    for (int c = 0; c < e->padded; c++) {
        e->scale[c] = ep->scale && c < C ? ep->scale[c] : 1.0f;
        e->shift[c] = ep->shift && c < C ? ep->shift[c] : 0.0f;
    }
    if (e->sums) {
        e->fsum = kao_calloc((size_t)nt * 2 * e->padded, sizeof(float), "conv epilogue sums");
        e->dsum = kao_calloc((size_t)nt * 2 * e->padded, sizeof(double), "conv epilogue sums");
        e->pending = kao_calloc((size_t)nt, sizeof(int), "conv epilogue sums");
    }
    return e;
}

void kao_epi_rows(kao_epi *e, float *y, size_t rows, int c0, int cols) {
    int C = e->C;
    if (e->sums) {
        float *restrict s1 = e->fsum + (size_t)kao_thread_num() * 2 * e->padded + c0, *restrict s2 = s1 + e->padded;
        for (size_t m = 0; m < rows; m++) {
            const float *restrict v = y + m * C;
            for (int c = 0; c < cols; c++) s1[c] += v[c], s2[c] += v[c] * v[c];
        }
        kao_epi_flush(e, (int)rows);
    }
    const float *restrict sc = e->scale + c0, *restrict sh = e->shift + c0;
    for (size_t m = 0; m < rows; m++) {
        float *restrict v = y + m * C;
        for (int c = 0; c < cols; c++) v[c] = v[c] * sc[c] + sh[c];
        if (e->act == KAO_ACT_SILU) kao_silu_array(v, v, (size_t)cols);
    }
}

static void flush_thread(kao_epi *e, int t) {
    size_t off = (size_t)t * 2 * e->padded;
    float *f = e->fsum + off;
    double *d = e->dsum + off;
    for (int i = 0; i < 2 * e->padded; i++) d[i] += f[i], f[i] = 0.0f;
    e->pending[t] = 0;
}

void kao_epi_flush(kao_epi *e, int npix) {
    int t = kao_thread_num();
    if (e->sums && (e->pending[t] += npix) >= 256) flush_thread(e, t);
}

void kao_epi_end(kao_epi *e) {
    if (!e) return;
    if (e->sums) {
        memset(e->sums, 0, 2 * (size_t)e->C * sizeof(double));
        for (int t = 0; t < kao_max_threads(); t++) {
            flush_thread(e, t);
            for (int c = 0; c < e->C; c++) {
                e->sums[c] += e->dsum[(size_t)t * 2 * e->padded + c];
                e->sums[e->C + c] += e->dsum[(size_t)t * 2 * e->padded + e->padded + c];
            }
        }
        free(e->fsum);
        free(e->dsum);
        free(e->pending);
    }
    free(e->scale);
    free(e);
}

/* ---- forward ------------------------------------------------------------------------------ */

void kao_conv2d_forward_fused(float *out, const float *inp, const float *weight, const kao_conv_epilogue *ep,
                              const kao_conv_shape *s, kao_workspace *ws) {
    KAO_ASSERT(!s->depthwise);
    kao_epi *e = kao_epi_begin(ep, s->out_c);
    if (!forward_gemm(s)) {
        float *wd = kao_workspace_get(ws, kao_direct_packed_floats(s));
        kao_direct_pack_forward(wd, weight, s);
        kao_direct_forward(out, inp, wd, e, s);
        kao_epi_end(e);
        return;
    }
    /* out [M, Co] = inp [M, Ci] · W [Co, Ci]ᵀ in tiles of about 128 rows, one GEMM per tile and
     * thread; the epilogue runs on each tile while it is in cache. Where the row blocks are few
     * (batch 1: 49 rows at 7×7) or would not divide among the threads, the columns are split too,
     * so that every thread gets an equal share. */
    kao_blas_single_threaded();
    int Ci = s->in_c, Co = s->out_c, nt = kao_max_threads();
    size_t M = (size_t)s->batch * s->out_h * s->out_w;
    int nrb = (int)((M + 127) / 128), ncb = 1;
    while ((nrb * ncb) % nt && nrb * ncb < 8 * nt && Co / (ncb + 1) >= 64) ncb++;
    size_t rows = (M + (size_t)nrb - 1) / (size_t)nrb;
    int cols = ((Co + ncb - 1) / ncb + 15) & ~15; /* whole 16-lane blocks of the epilogue */
    ncb = (Co + cols - 1) / cols;
    long ntiles = (long)nrb * ncb;
#pragma omp parallel for schedule(static, 1) /* static: the epilogue's per-thread BN sums must not depend on timing */
    for (long tile = 0; tile < ntiles; tile++) {
        size_t m0 = (size_t)(tile / ncb) * rows;
        int c0 = (int)(tile % ncb) * cols, nc = Co - c0 < cols ? Co - c0 : cols;
        int mm = (int)(M - m0 < rows ? M - m0 : rows);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, mm, nc, Ci, 1.0f, inp + m0 * Ci, Ci,
                    weight + (size_t)c0 * Ci, Ci, 0.0f, out + m0 * Co + c0, Co);
        if (e) kao_epi_rows(e, out + m0 * Co + c0, (size_t)mm, c0, nc);
    }
    kao_epi_end(e);
}

void kao_conv2d_forward(float *out, const float *inp, const float *weight, const float *bias,
                        const kao_conv_shape *s, kao_workspace *ws) {
    kao_conv_epilogue ep = {.shift = bias};
    kao_conv2d_forward_fused(out, inp, weight, &ep, s, ws);
}

/* dbias (C) += column sums of dout (M, C); per-thread partial sums in double. */
static void bias_grad(float *dbias, const float *dout, size_t M, int C) {
    int nt = kao_max_threads();
    double *part = kao_calloc((size_t)nt * C, sizeof(double), "conv dbias partial sums");
#pragma omp parallel
    {
        double *acc = part + (size_t)kao_thread_num() * C;
#pragma omp for schedule(static)
        for (size_t m = 0; m < M; m++)
            for (int c = 0; c < C; c++) acc[c] += dout[m * C + c];
    }
    for (int t = 0; t < nt; t++)
        for (int c = 0; c < C; c++) dbias[c] += (float)part[(size_t)t * C + c];
    free(part);
}

/* GEMM path: each thread takes a contiguous share of the M rows: dinp rows = dout rows · W, and
 * its own partial dW = dout_shareᵀ · inp_share (one GEMM with a long reduction), summed after. */
static void pointwise_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                               const float *weight, size_t M, int Ci, int Co, kao_workspace *ws) {
    kao_blas_single_threaded();
    size_t part_size = round16((size_t)Co * Ci);
    float *parts = kao_workspace_get(ws, (size_t)kao_max_threads() * part_size);
#pragma omp parallel
    {
        int t = kao_thread_num(), nt = kao_num_threads();
        size_t r0 = M * t / nt, r1 = M * (t + 1) / nt;
        float *part = parts + (size_t)t * part_size;
        if (r1 > r0) {
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Co, Ci, (int)(r1 - r0), 1.0f,
                        dout + r0 * Co, Co, inp + r0 * Ci, Ci, 0.0f, part, Ci);
            if (dinp)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(r1 - r0), Ci, Co, 1.0f,
                            dout + r0 * Co, Co, weight, Ci, 0.0f, dinp + r0 * Ci, Ci);
        } else {
            memset(part, 0, (size_t)Co * Ci * sizeof(float));
        }
#pragma omp barrier
#pragma omp for schedule(static)
        for (size_t i = 0; i < (size_t)Co * Ci; i++) {
            float sum = 0.0f;
            for (int u = 0; u < nt; u++) sum += parts[(size_t)u * part_size + i];
            dweight[i] += sum;
        }
    }
}

void kao_conv2d_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                         const float *inp, const float *weight, const kao_conv_shape *s,
                         kao_workspace *ws) {
    KAO_ASSERT(!s->depthwise);
    size_t M = (size_t)s->batch * s->out_h * s->out_w;
    if (dbias) bias_grad(dbias, dout, M, s->out_c);
    if (pointwise(s)) {
        pointwise_backward(dinp, dweight, dout, inp, weight, M, s->in_c, s->out_c, ws);
        return;
    }
    size_t packed = round16(kao_direct_packed_floats(s));
    float *wt = kao_workspace_get(ws, packed + (size_t)kao_max_threads() * kao_direct_wgrad_floats(s));
    kao_direct_backward_weight(dweight, dout, inp, s, wt + packed);
    if (dinp) {
        kao_direct_pack_backward(wt, weight, s);
        kao_direct_backward_input(dinp, dout, wt, s);
    }
}
