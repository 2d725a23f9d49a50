/* test_cuda_ops.c — every _gpu op (include/kao/cuda.h) against its CPU twin, on random inputs.
 *
 * Skips (exit 77, which tests/CMakeLists.txt registers as ctest's skip code, never a pass) when
 * kao is built without CUDA or when no GPU can be used: it prints "SKIPPED: ..." and the reason.
 *
 * For each op: random inputs; the CPU result (the double-accumulating _ref oracle where one
 * exists, else the CPU op itself); the GPU op run twice from the same state. Checks:
 *  1. run 1 against the CPU within the tolerance below;
 *  2. run 1 and run 2 bit-identical (the backend promises determinism: a race or an atomic
 *     floating-point sum shows as results that move between runs);
 *  3. the API rules: outputs that must be overwritten start as NaN (an element the op forgets
 *     stays NaN and fails), accumulating gradients start with random values (+=), NULL dinp.
 * Tolerance, |gpu − cpu| <= atol + rtol·|cpu| with atol = 1e-5·max|cpu| (the tensor's scale):
 * fp32 sums of n terms in another order than the CPU's differ by about sqrt(n)·6e-8 of the sum of
 * |terms|, ≲ 1e-6 relative for the n ≤ ~1000 terms here; cuDNN's transforms (Winograd, FFT)
 * round more, so its convolutions get atol = 1e-4·max|cpu|; rtol = 1e-5 for forwards, 1e-4 for
 * backwards (longer sums, cancellation).
 * An index, padding or layout mistake moves values by O(max|cpu|): far outside. ArcFace: logits
 * are cosines × 64, so cosine rounding (~1e-7) is amplified 64× in the probabilities and
 * gradients: rtol 1e-4 with the same scale-relative atol. Exact (bit-equal) where the GPU does
 * the same float operations in the same order: residual add, row scaling, average pooling,
 * AdamW and SGD (optim.cu explains), which makes those checks sharp. */
#include <stdio.h>

#ifndef KAO_HAVE_CUDA
int main(void) {
    puts("SKIPPED: built without CUDA (configure with -DKAO_CUDA=ON)");
    return 77;
}
#else

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "kao/arcface.h"
#include "kao/cuda.h"
#include "kao/ops.h"
#include "kao/optim.h"
#include "kao/rng.h"
#include "kao/util.h"

#define SKIP_CODE 77

static kao_rng rng;
static kao_cuda_ctx *ctx;

/* ---- host and device buffers --------------------------------------------------------------- */

static float *uniform(size_t n, float lo, float hi) {
    float *x = kao_malloc(n * sizeof(float), "test buffer");
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * kao_rng_uniform(&rng);
    return x;
}

static float *copy_of(const float *x, size_t n) {
    float *y = kao_malloc(n * sizeof(float), "test buffer");
    memcpy(y, x, n * sizeof(float));
    return y;
}

static float *nan_filled(size_t n) {
    float *x = kao_malloc(n * sizeof(float), "test buffer");
    for (size_t i = 0; i < n; i++) x[i] = NAN;
    return x;
}

/* A device tensor with the host values it is reset to before each GPU run. */
typedef struct {
    float *dev;
    float *init; /* (n) host */
    size_t n;
} dbuf;

static dbuf dbuf_make(const float *init, size_t n) {
    dbuf b = {kao_cuda_malloc(n * sizeof(float), "test device buffer"), copy_of(init, n), n};
    kao_cuda_to_device(ctx, b.dev, b.init, n * sizeof(float));
    return b;
}
/* Outputs that the op must overwrite start as NaN. */
static dbuf dbuf_poison(size_t n) {
    float *nans = nan_filled(n);
    dbuf b = dbuf_make(nans, n);
    free(nans);
    return b;
}
static void dbuf_reset(dbuf *b) { kao_cuda_to_device(ctx, b->dev, b->init, b->n * sizeof(float)); }
static float *dbuf_fetch(const dbuf *b) {
    float *h = kao_malloc(b->n * sizeof(float), "test result");
    kao_cuda_to_host(ctx, h, b->dev, b->n * sizeof(float));
    return h;
}
static void dbuf_free(dbuf *b) {
    kao_cuda_free(b->dev);
    free(b->init);
    memset(b, 0, sizeof *b);
}

/* ---- checks ------------------------------------------------------------------------------- */

static double max_abs(const float *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fabs(x[i]) > m ? fabs(x[i]) : m;
    return m;
}

/* run1 against want (atol = atol_rel·max|want|, rtol), run1 == run2 bit for bit. */
static void check_gpu_scaled(const char *what, const float *run1, const float *run2, const float *want, size_t n,
                             double atol_rel, double rtol) {
    double atol = atol_rel * max_abs(want, n);
    if (atol == 0) atol = 1e-30;
    CHECK_CLOSE(what, run1, want, n, atol, rtol);
    CHECK(memcmp(run1, run2, n * sizeof(float)) == 0, "%s: two GPU runs differ (a race or an unordered sum)", what);
}

static void check_gpu(const char *what, const float *run1, const float *run2, const float *want, size_t n,
                      double rtol) {
    check_gpu_scaled(what, run1, run2, want, n, 1e-5, rtol);
}

/* Bit-equal to the CPU, and between runs. */
static void check_exact(const char *what, const float *run1, const float *run2, const float *want, size_t n) {
    size_t diff = 0;
    while (diff < n && memcmp(&run1[diff], &want[diff], sizeof(float)) == 0) diff++;
    CHECK(diff == n, "%s: element %zu is %.9g, CPU %.9g (expected bit-equal)", what, diff,
          diff < n ? (double)run1[diff] : 0.0, diff < n ? (double)want[diff] : 0.0);
    CHECK(memcmp(run1, run2, n * sizeof(float)) == 0, "%s: two GPU runs differ", what);
}

/* Fetches each buffer after a run into got[run][k]. */
#define MAX_OUT 8
typedef struct {
    float *got[2][MAX_OUT];
    int count;
} results;

static void results_take(results *r, int run, dbuf *const *outs, int count) {
    r->count = count;
    for (int k = 0; k < count; k++) r->got[run][k] = dbuf_fetch(outs[k]);
}
static void results_free(results *r) {
    for (int run = 0; run < 2; run++)
        for (int k = 0; k < r->count; k++) free(r->got[run][k]);
}

/* ---- convolution ---------------------------------------------------------------------------- */

static void test_conv(int B, int H, int W, int Ci, int Co, int k, int stride, bool with_bias, bool with_dinp) {
    kao_conv_shape s;
    kao_conv_shape_init(&s, B, H, W, Ci, Co, k, stride, false);
    size_t n_in = (size_t)B * H * W * Ci, n_out = (size_t)B * s.out_h * s.out_w * Co, n_w = (size_t)Co * Ci * k * k;
    float *inp = uniform(n_in, -1, 1), *w = uniform(n_w, -0.5f, 0.5f), *bias = uniform((size_t)Co, -1, 1);
    float *dout = uniform(n_out, -1, 1), *dw0 = uniform(n_w, -1, 1), *db0 = uniform((size_t)Co, -1, 1);
    char what[200];
    snprintf(what, sizeof what, "conv %dx%dx%dx%d -> %d, k %d, s %d%s", B, H, W, Ci, Co, k, stride,
             with_bias ? ", bias" : "");

    /* CPU: the double-accumulating oracle */
    float *want_out = nan_filled(n_out), *want_dinp = nan_filled(n_in);
    float *want_dw = copy_of(dw0, n_w), *want_db = copy_of(db0, (size_t)Co);
    kao_conv2d_forward_ref(want_out, inp, w, with_bias ? bias : NULL, &s);
    kao_conv2d_backward_ref(with_dinp ? want_dinp : NULL, want_dw, with_bias ? want_db : NULL, dout, inp, w, &s);

    dbuf d_inp = dbuf_make(inp, n_in), d_w = dbuf_make(w, n_w), d_bias = dbuf_make(bias, (size_t)Co);
    dbuf d_dout = dbuf_make(dout, n_out), d_out = dbuf_poison(n_out), d_dinp = dbuf_poison(n_in);
    dbuf d_dw = dbuf_make(dw0, n_w), d_db = dbuf_make(db0, (size_t)Co);
    dbuf *outs[] = {&d_out, &d_dinp, &d_dw, &d_db};
    results r;
    for (int run = 0; run < 2; run++) {
        for (int i = 0; i < 4; i++) dbuf_reset(outs[i]);
        kao_conv2d_forward_gpu(d_out.dev, d_inp.dev, d_w.dev, with_bias ? d_bias.dev : NULL, &s, ctx);
        kao_conv2d_backward_gpu(with_dinp ? d_dinp.dev : NULL, d_dw.dev, with_bias ? d_db.dev : NULL, d_dout.dev,
                                d_inp.dev, d_w.dev, &s, ctx);
        results_take(&r, run, outs, 4);
    }
    char name[260];
    /* cuDNN (everything but the 1×1 stride-1 GEMM) may pick Winograd or FFT algorithms, whose
     * transforms round more than a direct sum: scale-relative atol 1e-4 there. */
    double atol_rel = k == 1 && stride == 1 ? 1e-5 : 1e-4;
    snprintf(name, sizeof name, "%s: out", what);
    check_gpu_scaled(name, r.got[0][0], r.got[1][0], want_out, n_out, atol_rel, 1e-5);
    if (with_dinp) {
        snprintf(name, sizeof name, "%s: dinp", what);
        check_gpu_scaled(name, r.got[0][1], r.got[1][1], want_dinp, n_in, atol_rel, 1e-4);
    } else {
        CHECK(isnan(r.got[0][1][0]), "%s: dinp NULL, but the buffer was written", what);
    }
    snprintf(name, sizeof name, "%s: dweight +=", what);
    check_gpu_scaled(name, r.got[0][2], r.got[1][2], want_dw, n_w, atol_rel, 1e-4);
    snprintf(name, sizeof name, "%s: dbias", what);
    check_gpu(name, r.got[0][3], r.got[1][3], with_bias ? want_db : db0, (size_t)Co, 1e-4);

    results_free(&r);
    dbuf *all[] = {&d_inp, &d_w, &d_bias, &d_dout, &d_out, &d_dinp, &d_dw, &d_db};
    for (int i = 0; i < 8; i++) dbuf_free(all[i]);
    free(inp), free(w), free(bias), free(dout), free(dw0), free(db0);
    free(want_out), free(want_dinp), free(want_dw), free(want_db);
}

/* ---- depthwise convolution ------------------------------------------------------------------ */

static void test_dwconv(int B, int H, int W, int C, int k, int stride, bool with_dinp) {
    kao_conv_shape s;
    kao_conv_shape_init(&s, B, H, W, C, C, k, stride, true);
    size_t n_in = (size_t)B * H * W * C, n_out = (size_t)B * s.out_h * s.out_w * C, n_w = (size_t)C * k * k;
    float *inp = uniform(n_in, -1, 1), *w = uniform(n_w, -1, 1), *dout = uniform(n_out, -1, 1);
    float *dw0 = uniform(n_w, -1, 1);
    char what[160];
    snprintf(what, sizeof what, "dwconv %dx%dx%dx%d, k %d, s %d", B, H, W, C, k, stride);

    float *want_out = nan_filled(n_out), *want_dinp = nan_filled(n_in), *want_dw = copy_of(dw0, n_w);
    kao_dwconv2d_forward_ref(want_out, inp, w, &s);
    kao_dwconv2d_backward_ref(with_dinp ? want_dinp : NULL, want_dw, dout, inp, w, &s);

    dbuf d_inp = dbuf_make(inp, n_in), d_w = dbuf_make(w, n_w), d_dout = dbuf_make(dout, n_out);
    dbuf d_out = dbuf_poison(n_out), d_dinp = dbuf_poison(n_in), d_dw = dbuf_make(dw0, n_w);
    dbuf *outs[] = {&d_out, &d_dinp, &d_dw};
    results r;
    for (int run = 0; run < 2; run++) {
        for (int i = 0; i < 3; i++) dbuf_reset(outs[i]);
        kao_dwconv2d_forward_gpu(d_out.dev, d_inp.dev, d_w.dev, &s, ctx);
        kao_dwconv2d_backward_gpu(with_dinp ? d_dinp.dev : NULL, d_dw.dev, d_dout.dev, d_inp.dev, d_w.dev, &s, ctx);
        results_take(&r, run, outs, 3);
    }
    char name[220];
    snprintf(name, sizeof name, "%s: out", what);
    check_gpu(name, r.got[0][0], r.got[1][0], want_out, n_out, 1e-5);
    if (with_dinp) {
        snprintf(name, sizeof name, "%s: dinp", what);
        check_gpu(name, r.got[0][1], r.got[1][1], want_dinp, n_in, 1e-4);
    } else {
        CHECK(isnan(r.got[0][1][0]), "%s: dinp NULL, but the buffer was written", what);
    }
    snprintf(name, sizeof name, "%s: dweight +=", what);
    check_gpu(name, r.got[0][2], r.got[1][2], want_dw, n_w, 1e-4);

    results_free(&r);
    dbuf *all[] = {&d_inp, &d_w, &d_dout, &d_out, &d_dinp, &d_dw};
    for (int i = 0; i < 6; i++) dbuf_free(all[i]);
    free(inp), free(w), free(dout), free(dw0), free(want_out), free(want_dinp), free(want_dw);
}

/* ---- BatchNorm ------------------------------------------------------------------------------ */

/* Forward train (running statistics updated or NULL), eval, backward and frozen backward; the
 * backward with dinp aliasing dout (allowed) on the second pass. mean_offset tests the shift. */
static void test_batchnorm(size_t M, int C, kao_act act, bool running, float mean_offset) {
    size_t n = M * (size_t)C;
    const float eps = 1e-3f, momentum = 0.1f;
    float *inp = uniform(n, mean_offset - 1, mean_offset + 1), *dout = uniform(n, -1, 1);
    float *gamma = uniform((size_t)C, 0.5f, 1.5f), *beta = uniform((size_t)C, -0.5f, 0.5f);
    float *rm0 = uniform((size_t)C, -0.2f, 0.2f), *rv0 = uniform((size_t)C, 0.5f, 2.0f);
    float *dg0 = uniform((size_t)C, -1, 1), *db0 = uniform((size_t)C, -1, 1);
    char what[160];
    snprintf(what, sizeof what, "batchnorm M %zu, C %d, %s, %s running stats, mean %g", M, C,
             act == KAO_ACT_SILU ? "SiLU" : "no act", running ? "with" : "no", (double)mean_offset);

    /* CPU oracle (double) */
    float *w_out = nan_filled(n), *w_mean = nan_filled((size_t)C), *w_rstd = nan_filled((size_t)C);
    float *w_rm = copy_of(rm0, (size_t)C), *w_rv = copy_of(rv0, (size_t)C), *w_eval = nan_filled(n);
    float *w_dinp = nan_filled(n), *w_dg = copy_of(dg0, (size_t)C), *w_db = copy_of(db0, (size_t)C);
    float *w_fdinp = nan_filled(n), *w_fdg = copy_of(dg0, (size_t)C), *w_fdb = copy_of(db0, (size_t)C);
    kao_batchnorm_forward_train_ref(w_out, w_mean, w_rstd, inp, gamma, beta, running ? w_rm : NULL,
                                    running ? w_rv : NULL, eps, momentum, act, M, C);
    kao_batchnorm_forward_eval_ref(w_eval, inp, gamma, beta, rm0, rv0, eps, act, M, C);
    kao_batchnorm_backward_ref(w_dinp, w_dg, w_db, dout, inp, w_mean, w_rstd, gamma, beta, act, M, C);
    kao_batchnorm_backward_frozen_ref(w_fdinp, w_fdg, w_fdb, dout, inp, rm0, rv0, gamma, beta, eps, act, M, C);

    dbuf d_inp = dbuf_make(inp, n), d_dout = dbuf_make(dout, n), d_gamma = dbuf_make(gamma, (size_t)C);
    dbuf d_beta = dbuf_make(beta, (size_t)C), d_rm0 = dbuf_make(rm0, (size_t)C), d_rv0 = dbuf_make(rv0, (size_t)C);
    dbuf d_out = dbuf_poison(n), d_mean = dbuf_poison((size_t)C), d_rstd = dbuf_poison((size_t)C);
    dbuf d_rm = dbuf_make(rm0, (size_t)C), d_rv = dbuf_make(rv0, (size_t)C), d_eval = dbuf_poison(n);
    dbuf d_dinp = dbuf_make(dout, n), d_dg = dbuf_make(dg0, (size_t)C), d_db = dbuf_make(db0, (size_t)C);
    dbuf d_fdinp = dbuf_poison(n), d_fdg = dbuf_make(dg0, (size_t)C), d_fdb = dbuf_make(db0, (size_t)C);
    dbuf *outs[] = {&d_out, &d_mean, &d_rstd, &d_rm, &d_rv, &d_eval, &d_dinp, &d_dg};
    dbuf *outs2[] = {&d_db, &d_fdinp, &d_fdg, &d_fdb};
    results r, r2;
    for (int run = 0; run < 2; run++) {
        for (int i = 0; i < 8; i++) dbuf_reset(outs[i]);
        for (int i = 0; i < 4; i++) dbuf_reset(outs2[i]);
        kao_batchnorm_forward_train_gpu(d_out.dev, d_mean.dev, d_rstd.dev, d_inp.dev, d_gamma.dev, d_beta.dev,
                                        running ? d_rm.dev : NULL, running ? d_rv.dev : NULL, eps, momentum, act, M,
                                        C, ctx);
        kao_batchnorm_forward_eval_gpu(d_eval.dev, d_inp.dev, d_gamma.dev, d_beta.dev, d_rm0.dev, d_rv0.dev, eps, act,
                                       M, C, ctx);
        /* d_dinp starts as dout: the in-place form dinp == dout */
        kao_batchnorm_backward_gpu(d_dinp.dev, d_dg.dev, d_db.dev, d_dinp.dev, d_inp.dev, d_mean.dev, d_rstd.dev,
                                   d_gamma.dev, d_beta.dev, act, M, C, ctx);
        kao_batchnorm_backward_frozen_gpu(d_fdinp.dev, d_fdg.dev, d_fdb.dev, d_dout.dev, d_inp.dev, d_rm0.dev,
                                          d_rv0.dev, d_gamma.dev, d_beta.dev, eps, act, M, C, ctx);
        results_take(&r, run, outs, 8);
        results_take(&r2, run, outs2, 4);
    }
    const char *names[] = {"out", "save_mean", "save_rstd", "running_mean", "running_var", "eval out", "dinp (in place)",
                           "dgamma +="};
    const float *wants[] = {w_out, w_mean, w_rstd, running ? w_rm : rm0, running ? w_rv : rv0, w_eval, w_dinp, w_dg};
    size_t sizes[] = {n, (size_t)C, (size_t)C, (size_t)C, (size_t)C, n, n, (size_t)C};
    char name[220];
    for (int i = 0; i < 8; i++) {
        snprintf(name, sizeof name, "%s: %s", what, names[i]);
        check_gpu(name, r.got[0][i], r.got[1][i], wants[i], sizes[i], i < 6 ? 1e-5 : 1e-4);
    }
    const char *names2[] = {"dbeta +=", "frozen dinp", "frozen dgamma +=", "frozen dbeta +="};
    const float *wants2[] = {w_db, w_fdinp, w_fdg, w_fdb};
    size_t sizes2[] = {(size_t)C, n, (size_t)C, (size_t)C};
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "%s: %s", what, names2[i]);
        check_gpu(name, r2.got[0][i], r2.got[1][i], wants2[i], sizes2[i], 1e-4);
    }

    results_free(&r), results_free(&r2);
    dbuf *all[] = {&d_inp, &d_dout, &d_gamma, &d_beta, &d_rm0, &d_rv0, &d_out, &d_mean, &d_rstd,
                   &d_rm,  &d_rv,   &d_eval,  &d_dinp, &d_dg,  &d_db,  &d_fdinp, &d_fdg, &d_fdb};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) dbuf_free(all[i]);
    float *host[] = {inp,  dout, gamma, beta, rm0,    rv0,   dg0,  db0,     w_out, w_mean, w_rstd,
                     w_rm, w_rv, w_eval, w_dinp, w_dg, w_db, w_fdinp, w_fdg, w_fdb};
    for (size_t i = 0; i < sizeof host / sizeof host[0]; i++) free(host[i]);
}

/* BN backward without dinp: only the parameter gradients. */
static void test_batchnorm_no_dinp(void) {
    size_t M = 50, n = M * 7;
    int C = 7;
    float *inp = uniform(n, -1, 1), *dout = uniform(n, -1, 1), *gamma = uniform(7, 0.5f, 1.5f);
    float *beta = uniform(7, -0.5f, 0.5f), *mean = uniform(7, -0.1f, 0.1f), *rstd = uniform(7, 0.8f, 1.2f);
    float *dg0 = uniform(7, -1, 1), *db0 = uniform(7, -1, 1);
    float *w_dg = copy_of(dg0, 7), *w_db = copy_of(db0, 7);
    kao_batchnorm_backward_ref(NULL, w_dg, w_db, dout, inp, mean, rstd, gamma, beta, KAO_ACT_SILU, M, C);
    dbuf d_inp = dbuf_make(inp, n), d_dout = dbuf_make(dout, n), d_gamma = dbuf_make(gamma, 7);
    dbuf d_beta = dbuf_make(beta, 7), d_mean = dbuf_make(mean, 7), d_rstd = dbuf_make(rstd, 7);
    dbuf d_dg = dbuf_make(dg0, 7), d_db = dbuf_make(db0, 7);
    dbuf *outs[] = {&d_dg, &d_db};
    results r;
    for (int run = 0; run < 2; run++) {
        dbuf_reset(&d_dg), dbuf_reset(&d_db);
        kao_batchnorm_backward_gpu(NULL, d_dg.dev, d_db.dev, d_dout.dev, d_inp.dev, d_mean.dev, d_rstd.dev,
                                   d_gamma.dev, d_beta.dev, KAO_ACT_SILU, M, C, ctx);
        results_take(&r, run, outs, 2);
    }
    check_gpu("batchnorm backward, dinp NULL: dgamma", r.got[0][0], r.got[1][0], w_dg, 7, 1e-4);
    check_gpu("batchnorm backward, dinp NULL: dbeta", r.got[0][1], r.got[1][1], w_db, 7, 1e-4);
    results_free(&r);
    dbuf *all[] = {&d_inp, &d_dout, &d_gamma, &d_beta, &d_mean, &d_rstd, &d_dg, &d_db};
    for (int i = 0; i < 8; i++) dbuf_free(all[i]);
    float *host[] = {inp, dout, gamma, beta, mean, rstd, dg0, db0, w_dg, w_db};
    for (int i = 0; i < 10; i++) free(host[i]);
}

/* ---- SiLU, pooling, residual, row scaling ---------------------------------------------------- */

static void test_elementwise(void) {
    const size_t n = 4099;
    float *x = uniform(n, -20, 20), *dout = uniform(n, -1, 1);
    x[0] = -80.0f, x[1] = 80.0f, x[2] = 0.0f, x[3] = -1e-30f; /* tails (exp(-80) still normal) and zero */
    float *w_silu = nan_filled(n), *w_dsilu = nan_filled(n);
    kao_silu_forward_ref(w_silu, x, n);
    kao_silu_backward_ref(w_dsilu, dout, x, n);
    dbuf d_x = dbuf_make(x, n), d_dout = dbuf_make(dout, n), d_y = dbuf_poison(n), d_dx = dbuf_poison(n);
    dbuf *outs[] = {&d_y, &d_dx};
    results r;
    for (int run = 0; run < 2; run++) {
        dbuf_reset(&d_y), dbuf_reset(&d_dx);
        kao_silu_forward_gpu(d_y.dev, d_x.dev, n, ctx);
        kao_silu_backward_gpu(d_dx.dev, d_dout.dev, d_x.dev, n, ctx);
        results_take(&r, run, outs, 2);
    }
    /* expf is within 2 ulp: a few 1e-7 relative after the sigmoid, as the CPU's vector sigmoid;
     * silu' has a root near x = -1.28 where only an absolute bound holds (as test_ops_backward) */
    CHECK_CLOSE("silu forward", r.got[0][0], w_silu, n, 1e-30, 2e-6);
    CHECK_CLOSE("silu backward", r.got[0][1], w_dsilu, n, 1e-6, 2e-6);
    CHECK(memcmp(r.got[0][0], r.got[1][0], n * sizeof(float)) == 0, "silu forward: runs differ");
    CHECK(memcmp(r.got[0][1], r.got[1][1], n * sizeof(float)) == 0, "silu backward: runs differ");
    results_free(&r);

    /* add_inplace and scale_rows: one float operation per element, bit-equal to the CPU */
    const int B = 3;
    const size_t per = 1001, total = B * per;
    float *a = uniform(total, -1, 1), *b = uniform(total, -1, 1), mask[3] = {0.0f, 1.0f / 0.8f, 1.0f / 0.8f};
    float *want = copy_of(a, total);
    kao_add_inplace(want, b, total);
    kao_scale_rows(want, mask, B, per);
    dbuf d_a = dbuf_make(a, total), d_b = dbuf_make(b, total), d_mask = dbuf_make(mask, 3);
    dbuf *outs2[] = {&d_a};
    for (int run = 0; run < 2; run++) {
        dbuf_reset(&d_a);
        kao_add_inplace_gpu(d_a.dev, d_b.dev, total, ctx);
        kao_scale_rows_gpu(d_a.dev, d_mask.dev, B, per, ctx);
        results_take(&r, run, outs2, 1);
    }
    check_exact("add_inplace + scale_rows", r.got[0][0], r.got[1][0], want, total);
    results_free(&r);

    /* average pooling: the CPU op sums pixels in order in float, as the GPU kernel */
    const int HW = 49, C = 37;
    size_t n_in = (size_t)B * HW * C;
    float *pin = uniform(n_in, -1, 1), *pd = uniform((size_t)B * C, -1, 1);
    float *w_pool = nan_filled((size_t)B * C), *w_dpool = nan_filled(n_in);
    kao_avgpool_forward(w_pool, pin, B, HW, C);
    kao_avgpool_backward(w_dpool, pd, B, HW, C);
    dbuf d_pin = dbuf_make(pin, n_in), d_pd = dbuf_make(pd, (size_t)B * C);
    dbuf d_pool = dbuf_poison((size_t)B * C), d_dpool = dbuf_poison(n_in);
    dbuf *outs3[] = {&d_pool, &d_dpool};
    for (int run = 0; run < 2; run++) {
        dbuf_reset(&d_pool), dbuf_reset(&d_dpool);
        kao_avgpool_forward_gpu(d_pool.dev, d_pin.dev, B, HW, C, ctx);
        kao_avgpool_backward_gpu(d_dpool.dev, d_pd.dev, B, HW, C, ctx);
        results_take(&r, run, outs3, 2);
    }
    check_exact("avgpool forward", r.got[0][0], r.got[1][0], w_pool, (size_t)B * C);
    check_exact("avgpool backward", r.got[0][1], r.got[1][1], w_dpool, n_in);
    results_free(&r);

    dbuf *all[] = {&d_x, &d_dout, &d_y, &d_dx, &d_a, &d_b, &d_mask, &d_pin, &d_pd, &d_pool, &d_dpool};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) dbuf_free(all[i]);
    float *host[] = {x, dout, w_silu, w_dsilu, a, b, want, pin, pd, w_pool, w_dpool};
    for (size_t i = 0; i < sizeof host / sizeof host[0]; i++) free(host[i]);
}

/* ---- squeeze-excite ------------------------------------------------------------------------ */

static void test_se(int B, int HW, int C, int R, bool with_dinp) {
    size_t n = (size_t)B * HW * C;
    float *inp = uniform(n, -2, 2), *dout = uniform(n, -1, 1);
    float *wr = uniform((size_t)R * C, -0.5f, 0.5f), *br = uniform((size_t)R, -0.5f, 0.5f);
    float *we = uniform((size_t)C * R, -0.5f, 0.5f), *be = uniform((size_t)C, -0.5f, 0.5f);
    float *dwr0 = uniform((size_t)R * C, -1, 1), *dbr0 = uniform((size_t)R, -1, 1);
    float *dwe0 = uniform((size_t)C * R, -1, 1), *dbe0 = uniform((size_t)C, -1, 1);
    char what[120];
    snprintf(what, sizeof what, "se B %d, HW %d, C %d, R %d", B, HW, C, R);

    float *w_out = nan_filled(n), *w_pool = nan_filled((size_t)B * C), *w_hid = nan_filled((size_t)B * R);
    float *w_gate = nan_filled((size_t)B * C), *w_dinp = nan_filled(n);
    float *w_dwr = copy_of(dwr0, (size_t)R * C), *w_dbr = copy_of(dbr0, (size_t)R);
    float *w_dwe = copy_of(dwe0, (size_t)C * R), *w_dbe = copy_of(dbe0, (size_t)C);
    kao_se_forward_ref(w_out, w_pool, w_hid, w_gate, inp, wr, br, we, be, B, HW, C, R);
    kao_se_backward_ref(with_dinp ? w_dinp : NULL, w_dwr, w_dbr, w_dwe, w_dbe, dout, inp, w_pool, w_hid, w_gate, wr,
                        we, B, HW, C, R);

    dbuf d_inp = dbuf_make(inp, n), d_dout = dbuf_make(dout, n), d_wr = dbuf_make(wr, (size_t)R * C);
    dbuf d_br = dbuf_make(br, (size_t)R), d_we = dbuf_make(we, (size_t)C * R), d_be = dbuf_make(be, (size_t)C);
    dbuf d_out = dbuf_poison(n), d_pool = dbuf_poison((size_t)B * C), d_hid = dbuf_poison((size_t)B * R);
    dbuf d_gate = dbuf_poison((size_t)B * C), d_dinp = dbuf_poison(n);
    dbuf d_dwr = dbuf_make(dwr0, (size_t)R * C), d_dbr = dbuf_make(dbr0, (size_t)R);
    dbuf d_dwe = dbuf_make(dwe0, (size_t)C * R), d_dbe = dbuf_make(dbe0, (size_t)C);
    dbuf *outs[] = {&d_out, &d_pool, &d_hid, &d_gate, &d_dinp, &d_dwr, &d_dbr, &d_dwe};
    dbuf *outs2[] = {&d_dbe};
    results r, r2;
    for (int run = 0; run < 2; run++) {
        for (int i = 0; i < 8; i++) dbuf_reset(outs[i]);
        dbuf_reset(&d_dbe);
        kao_se_forward_gpu(d_out.dev, d_pool.dev, d_hid.dev, d_gate.dev, d_inp.dev, d_wr.dev, d_br.dev, d_we.dev,
                           d_be.dev, B, HW, C, R, ctx);
        kao_se_backward_gpu(with_dinp ? d_dinp.dev : NULL, d_dwr.dev, d_dbr.dev, d_dwe.dev, d_dbe.dev, d_dout.dev,
                            d_inp.dev, d_pool.dev, d_hid.dev, d_gate.dev, d_wr.dev, d_we.dev, B, HW, C, R, ctx);
        results_take(&r, run, outs, 8);
        results_take(&r2, run, outs2, 1);
    }
    const char *names[] = {"out", "pooled", "hidden", "gate", "dinp", "dw_reduce +=", "db_reduce +=", "dw_expand +="};
    const float *wants[] = {w_out, w_pool, w_hid, w_gate, w_dinp, w_dwr, w_dbr, w_dwe};
    size_t sizes[] = {n, (size_t)B * C, (size_t)B * R, (size_t)B * C, n, (size_t)R * C, (size_t)R, (size_t)C * R};
    char name[200];
    for (int i = 0; i < 8; i++) {
        if (i == 4 && !with_dinp) {
            CHECK(isnan(r.got[0][4][0]), "%s: dinp NULL, but the buffer was written", what);
            continue;
        }
        snprintf(name, sizeof name, "%s: %s", what, names[i]);
        check_gpu(name, r.got[0][i], r.got[1][i], wants[i], sizes[i], i < 4 ? 1e-5 : 1e-4);
    }
    snprintf(name, sizeof name, "%s: db_expand +=", what);
    check_gpu(name, r2.got[0][0], r2.got[1][0], w_dbe, (size_t)C, 1e-4);

    results_free(&r), results_free(&r2);
    dbuf *all[] = {&d_inp, &d_dout, &d_wr,   &d_br,  &d_we,  &d_be,  &d_out, &d_pool,
                   &d_hid, &d_gate, &d_dinp, &d_dwr, &d_dbr, &d_dwe, &d_dbe};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) dbuf_free(all[i]);
    float *host[] = {inp,   dout,  wr,     br,     we,     be,    dwr0,  dbr0,  dwe0, dbe0,
                     w_out, w_pool, w_hid, w_gate, w_dinp, w_dwr, w_dbr, w_dwe, w_dbe};
    for (size_t i = 0; i < sizeof host / sizeof host[0]; i++) free(host[i]);
}

/* ---- Linear ------------------------------------------------------------------------------- */

static void test_linear(int B, int I, int O, bool with_bias) {
    size_t ni = (size_t)B * I, no = (size_t)B * O, nw = (size_t)O * I;
    float *inp = uniform(ni, -1, 1), *w = uniform(nw, -0.5f, 0.5f), *bias = uniform((size_t)O, -1, 1);
    float *dout = uniform(no, -1, 1), *dw0 = uniform(nw, -1, 1), *db0 = uniform((size_t)O, -1, 1);
    char what[100];
    snprintf(what, sizeof what, "linear B %d, I %d, O %d%s", B, I, O, with_bias ? ", bias" : "");
    float *w_out = nan_filled(no), *w_dinp = nan_filled(ni), *w_dw = copy_of(dw0, nw), *w_db = copy_of(db0, (size_t)O);
    kao_linear_forward_ref(w_out, inp, w, with_bias ? bias : NULL, B, I, O);
    kao_linear_backward_ref(w_dinp, w_dw, with_bias ? w_db : NULL, dout, inp, w, B, I, O);
    dbuf d_inp = dbuf_make(inp, ni), d_w = dbuf_make(w, nw), d_bias = dbuf_make(bias, (size_t)O);
    dbuf d_dout = dbuf_make(dout, no), d_out = dbuf_poison(no), d_dinp = dbuf_poison(ni);
    dbuf d_dw = dbuf_make(dw0, nw), d_db = dbuf_make(db0, (size_t)O);
    dbuf *outs[] = {&d_out, &d_dinp, &d_dw, &d_db};
    results r;
    for (int run = 0; run < 2; run++) {
        for (int i = 0; i < 4; i++) dbuf_reset(outs[i]);
        kao_linear_forward_gpu(d_out.dev, d_inp.dev, d_w.dev, with_bias ? d_bias.dev : NULL, B, I, O, ctx);
        kao_linear_backward_gpu(d_dinp.dev, d_dw.dev, with_bias ? d_db.dev : NULL, d_dout.dev, d_inp.dev, d_w.dev, B,
                                I, O, ctx);
        results_take(&r, run, outs, 4);
    }
    const char *names[] = {"out", "dinp", "dweight +=", "dbias"};
    const float *wants[] = {w_out, w_dinp, w_dw, with_bias ? w_db : db0};
    size_t sizes[] = {no, ni, nw, (size_t)O};
    char name[160];
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "%s: %s", what, names[i]);
        check_gpu(name, r.got[0][i], r.got[1][i], wants[i], sizes[i], i == 0 ? 1e-5 : 1e-4);
    }
    results_free(&r);
    dbuf *all[] = {&d_inp, &d_w, &d_bias, &d_dout, &d_out, &d_dinp, &d_dw, &d_db};
    for (int i = 0; i < 8; i++) dbuf_free(all[i]);
    float *host[] = {inp, w, bias, dout, dw0, db0, w_out, w_dinp, w_dw, w_db};
    for (int i = 0; i < 10; i++) free(host[i]);
}

/* ---- ArcFace ------------------------------------------------------------------------------ */

/* Random embeddings plus the edges that stay away from rounding-sensitive thresholds: a row
 * pointing away from its class (θ ≈ π: the θ > π − m branch) and an all-zero last row (the
 * clamped norm: its gradient is ~1e12, so it is compared on its own). A cosine of exactly 1 is left to tests/test_arcface.c: whether a float dot product of a
 * unit vector with itself rounds to 1 or just below decides between dt = 0 and dt ≈ 1e3, and the
 * CPU and GPU sums may round differently. */
static void test_arcface(void) {
    const int B = 7, E = 24, C = 11;
    const kao_arcface_cfg cfg = kao_arcface_default_cfg();
    float *emb = uniform((size_t)B * E, -1, 1), *W = uniform((size_t)E * C, -1, 1);
    float *dW0 = uniform((size_t)E * C, -1, 1);
    int labels[7];
    for (int b = 0; b < B; b++) labels[b] = (int)kao_rng_below(&rng, (uint32_t)C);
    for (int e = 0; e < E; e++) emb[1 * E + e] = -2.0f * W[(size_t)e * C + labels[1]]; /* θ ≈ π */
    for (int e = 0; e < E; e++) emb[(B - 1) * E + e] = 0.0f;                             /* zero row */

    kao_arcface_acts acts;
    kao_arcface_acts_create(&acts, B, E, C);
    float want_loss = kao_arcface_forward(&acts, emb, W, labels, B, E, C, &cfg);
    float *want_demb = nan_filled((size_t)B * E), *want_dW = copy_of(dW0, (size_t)E * C);
    kao_arcface_backward(want_demb, want_dW, &acts, labels, B, E, C, &cfg);

    kao_arcface_acts_gpu ga;
    kao_arcface_acts_create_gpu(&ga, B, E, C);
    int *d_labels = kao_cuda_malloc(sizeof labels, "test labels");
    kao_cuda_to_device(ctx, d_labels, labels, sizeof labels);
    dbuf d_emb = dbuf_make(emb, (size_t)B * E), d_W = dbuf_make(W, (size_t)E * C);
    dbuf d_demb = dbuf_poison((size_t)B * E), d_dW = dbuf_make(dW0, (size_t)E * C), d_loss = dbuf_poison(1);
    dbuf cos_view = {ga.cosine, NULL, (size_t)B * C}, probs_view = {ga.probs, NULL, (size_t)B * C};
    dbuf *outs[] = {&d_loss, &d_demb, &d_dW, &cos_view, &probs_view};
    results r;
    for (int run = 0; run < 2; run++) {
        dbuf_reset(&d_loss), dbuf_reset(&d_demb), dbuf_reset(&d_dW);
        kao_arcface_forward_gpu(d_loss.dev, &ga, d_emb.dev, d_W.dev, d_labels, B, E, C, &cfg, ctx);
        kao_arcface_backward_gpu(d_demb.dev, d_dW.dev, &ga, d_labels, B, E, C, &cfg, ctx);
        results_take(&r, run, outs, 5);
    }
    check_gpu("arcface: loss", r.got[0][0], r.got[1][0], &want_loss, 1, 1e-5);
    check_gpu("arcface: cosine", r.got[0][3], r.got[1][3], acts.cosine, (size_t)B * C, 1e-5);
    check_gpu("arcface: probs", r.got[0][4], r.got[1][4], acts.probs, (size_t)B * C, 1e-4);
    check_gpu("arcface: d_emb", r.got[0][1], r.got[1][1], want_demb, (size_t)(B - 1) * E, 1e-4);
    size_t last = (size_t)(B - 1) * E;
    check_gpu("arcface: d_emb of the zero row", r.got[0][1] + last, r.got[1][1] + last, want_demb + last, (size_t)E,
              1e-4);
    check_gpu("arcface: dW +=", r.got[0][2], r.got[1][2], want_dW, (size_t)E * C, 1e-4);
    results_free(&r);

    /* A label outside [0, C): NaN loss, no out-of-bounds read. */
    int bad[7];
    memcpy(bad, labels, sizeof bad);
    bad[3] = C;
    kao_cuda_to_device(ctx, d_labels, bad, sizeof bad);
    kao_arcface_forward_gpu(d_loss.dev, &ga, d_emb.dev, d_W.dev, d_labels, B, E, C, &cfg, ctx);
    float bad_loss = 0;
    kao_cuda_to_host(ctx, &bad_loss, d_loss.dev, sizeof bad_loss);
    CHECK(isnan(bad_loss), "arcface: a label outside [0, C) gives loss %g, expected NaN", (double)bad_loss);

    kao_cuda_free(d_labels);
    dbuf_free(&d_emb), dbuf_free(&d_W), dbuf_free(&d_demb), dbuf_free(&d_dW), dbuf_free(&d_loss);
    kao_arcface_acts_free_gpu(&ga);
    kao_arcface_acts_free(&acts);
    free(emb), free(W), free(dW0), free(want_demb), free(want_dW);
}

/* ---- optimizers and clipping ------------------------------------------------------------- */

#define NT 5
static void make_table(kao_tensor *t, size_t *numel) {
    const size_t sizes[NT] = {1000, 37, 5, 300, 64};
    const bool no_decay[NT] = {false, true, false, true, false};
    size_t off = 0;
    for (int i = 0; i < NT; i++) {
        memset(&t[i], 0, sizeof t[i]);
        snprintf(t[i].name, sizeof t[i].name, "t%d", i);
        t[i].ndim = 1;
        t[i].shape[0] = (int)sizes[i];
        t[i].numel = sizes[i];
        t[i].offset = off;
        t[i].role = KAO_ROLE_PARAM;
        t[i].no_decay = no_decay[i];
        off += sizes[i];
    }
    *numel = off;
}

static void test_optim(kao_optim_type type) {
    kao_tensor t[NT];
    size_t numel;
    make_table(t, &numel);
    int group[NT] = {0, 0, -1, 1, 1}; /* tensor 2 frozen */
    kao_optim_cfg cfg = kao_optim_default_cfg(type, 1e-2);
    cfg.num_groups = 2;
    cfg.groups[0].weight_decay = 0.05;
    cfg.groups[0].exclude_no_decay = true;
    cfg.groups[1].lr = 3e-3;
    cfg.groups[1].weight_decay = type == KAO_OPTIM_ADAMW ? 0.01 : 1e-4;
    if (type == KAO_OPTIM_SGD) cfg.momentum = 0.9, cfg.nesterov = true;
    kao_optim cpu, gpu;
    CHECK(kao_optim_create(&cpu, &cfg, t, NT, numel, group) == KAO_OK, "optim create: %s", kao_last_error());
    CHECK(kao_optim_create(&gpu, &cfg, t, NT, numel, group) == KAO_OK, "optim create: %s", kao_last_error());
    float *params = uniform(numel, -1, 1), *grads = uniform(3 * numel, -1, 1);
    float *p_cpu = copy_of(params, numel);
    kao_optim_state_gpu st;
    kao_optim_state_create_gpu(&st, &gpu, ctx);
    dbuf d_p = dbuf_make(params, numel), d_g = dbuf_make(grads, 3 * numel);
    const double factors[3] = {1.0, 0.5, 0.25};
    for (int step = 0; step < 3; step++) {
        kao_optim_step(&cpu, p_cpu, grads + (size_t)step * numel, factors[step]);
        kao_optim_step_gpu(&gpu, &st, d_p.dev, d_g.dev + (size_t)step * numel, factors[step], ctx);
    }
    const char *name = kao_optim_type_name(type);
    char what[80];
    float *got = dbuf_fetch(&d_p);
    snprintf(what, sizeof what, "%s: params after 3 steps", name);
    check_exact(what, got, got, p_cpu, numel);
    for (int k = 0; k < kao_optim_num_states(&cpu); k++) {
        float *dev = k == 0 ? st.exp_avg : st.exp_avg_sq, *h = kao_malloc(numel * sizeof(float), "state");
        kao_cuda_to_host(ctx, h, dev, numel * sizeof(float));
        snprintf(what, sizeof what, "%s: %s", name, kao_optim_state_name(&cpu, k));
        check_exact(what, h, h, kao_optim_state(&cpu, k), numel);
        free(h);
    }
    CHECK(memcmp(cpu.steps, gpu.steps, NT * sizeof *cpu.steps) == 0, "%s: step counts differ", name);
    /* the frozen tensor is untouched */
    CHECK(memcmp(got + t[2].offset, params + t[2].offset, t[2].numel * sizeof(float)) == 0, "%s: frozen tensor moved",
          name);
    free(got);
    dbuf_free(&d_p), dbuf_free(&d_g);
    kao_optim_state_free_gpu(&st);
    kao_optim_free(&cpu), kao_optim_free(&gpu);
    free(params), free(grads), free(p_cpu);
}

static void test_clip(float max_norm) {
    const size_t n1 = 3000, n2 = 77;
    float *g1 = uniform(n1, -1, 1), *g2 = uniform(n2, -1, 1);
    float *c1 = copy_of(g1, n1), *c2 = copy_of(g2, n2);
    kao_span cs[2] = {{c1, n1}, {c2, n2}};
    float want = kao_clip_grad_norm(cs, 2, max_norm);
    dbuf d1 = dbuf_make(g1, n1), d2 = dbuf_make(g2, n2);
    float norms[2];
    float *got1[2], *got2[2];
    for (int run = 0; run < 2; run++) {
        dbuf_reset(&d1), dbuf_reset(&d2);
        kao_span gs[2] = {{d1.dev, n1}, {d2.dev, n2}};
        float plain = kao_norm_gpu(gs, 2, ctx);
        norms[run] = kao_clip_grad_norm_gpu(gs, 2, max_norm, ctx);
        CHECK(plain == norms[run], "norm_gpu %g differs from clip_grad_norm_gpu's %g", (double)plain,
              (double)norms[run]);
        got1[run] = dbuf_fetch(&d1), got2[run] = dbuf_fetch(&d2);
    }
    char what[80];
    snprintf(what, sizeof what, "clip_grad_norm max %g: norm", (double)max_norm);
    /* Σx² in double on both sides, in different orders: the float norm agrees to an ulp or two */
    CHECK_CLOSE(what, &norms[0], &want, 1, 0.0, 1e-6);
    CHECK(norms[0] == norms[1], "%s: runs differ", what);
    snprintf(what, sizeof what, "clip_grad_norm max %g: grads", (double)max_norm);
    check_gpu(what, got1[0], got1[1], c1, n1, 1e-6);
    check_gpu(what, got2[0], got2[1], c2, n2, 1e-6);
    for (int run = 0; run < 2; run++) free(got1[run]), free(got2[run]);
    dbuf_free(&d1), dbuf_free(&d2);
    free(g1), free(g2), free(c1), free(c2);
}

/* ---- main --------------------------------------------------------------------------------- */

int main(void) {
    char why[256];
    if (!kao_cuda_available(why, sizeof why)) {
        printf("SKIPPED: no GPU (%s)\n", why);
        return SKIP_CODE;
    }
    ctx = kao_cuda_create(0);
    char device[256];
    kao_cuda_describe(ctx, device, sizeof device);
    printf("test_cuda_ops: %s\n", device);
    kao_rng_seed(&rng, 20240611, 0);

    /* convolution: stride 1 and 2, even sizes (asymmetric TF padding) and odd, 1×1 (GEMM) and
     * 1×1 stride 2 (cuDNN), k = 3 and 5, with and without bias and dinp */
    test_conv(2, 9, 7, 5, 6, 3, 1, true, true);
    test_conv(2, 8, 10, 4, 7, 3, 2, false, true);  /* even: pad 0 before, 1 after */
    test_conv(3, 9, 7, 3, 8, 3, 2, true, true);    /* odd: symmetric */
    test_conv(2, 8, 9, 3, 5, 3, 2, false, true);   /* even height, odd width */
    test_conv(2, 6, 5, 12, 20, 1, 1, true, true);  /* GEMM */
    test_conv(2, 7, 6, 5, 9, 1, 2, false, true);   /* 1×1 stride 2 */
    test_conv(1, 10, 9, 3, 4, 5, 2, true, false);  /* k 5, dinp NULL */
    test_conv(2, 16, 16, 16, 24, 3, 1, false, false);
    test_conv(4, 28, 28, 8, 32, 1, 1, false, true); /* GEMM, M = 3136 */

    /* depthwise: k 3 and 5, stride 1 and 2, even and odd sizes, C not a multiple of 32 */
    test_dwconv(2, 9, 7, 13, 3, 1, true);
    test_dwconv(2, 8, 10, 13, 3, 2, true);
    test_dwconv(2, 9, 9, 40, 5, 2, true);
    test_dwconv(1, 12, 11, 7, 5, 1, false);
    test_dwconv(3, 20, 20, 33, 3, 2, true); /* several reduction chunks */

    /* BatchNorm: small, several chunks, and M = 140000 rows (float runs flushed into double
     * totals) with a mean 5× the spread */
    test_batchnorm(70, 19, KAO_ACT_SILU, true, 0.0f);
    test_batchnorm(70, 19, KAO_ACT_NONE, false, 0.5f);
    test_batchnorm(3000, 40, KAO_ACT_SILU, true, 1.0f);
    test_batchnorm(140000, 3, KAO_ACT_NONE, true, 5.0f);
    test_batchnorm_no_dinp();

    test_elementwise();
    test_se(2, 15, 24, 6, true);
    test_se(3, 49, 40, 10, false);
    test_linear(5, 33, 17, true);
    test_linear(8, 64, 32, false);
    test_arcface();
    test_optim(KAO_OPTIM_ADAMW);
    test_optim(KAO_OPTIM_SGD);
    test_clip(1.0f);   /* clips */
    test_clip(1e6f);   /* leaves the gradients */

    kao_cuda_destroy(ctx);
    return check_summary("test_cuda_ops");
}

#endif
