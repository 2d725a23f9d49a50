/* test_ops_backward.c — the op layer's backward passes (include/kao/ops.h).
 *
 *  1. Finite differences: for L = Σ out·R (R fixed, random), every _ref backward's gradient of
 *     every input and parameter against the central difference (L(x+h) - L(x-h)) / (2h) of the
 *     _ref forward, on up to 50 random elements per tensor.
 *     Why the tolerance |fd - analytic| <= 1e-3 + 1e-2·|analytic| with h = 1e-2 holds: the
 *     forwards compute in double and round each output once to float (relative 6e-8); outputs
 *     the perturbation does not reach round identically on both sides and cancel, so the noise
 *     of L is about sqrt(n_reached)·6e-8·|out| ≲ 1e-6 for these sizes, ≲ 1e-4 after dividing by
 *     2h. Central differences are exact for the ops linear in x (conv, linear, pooling) and err
 *     by h²/6·|L'''| ≲ 1e-4 for BN, SiLU and SE on O(1) values. A wrong or missing term moves a
 *     gradient by O(0.1), well outside.
 *  2. Fast backward against _ref backward: atol 1e-5 + rtol 1e-4 (float sums over at most a few
 *     hundred rows of O(1) terms: ~1e-6 relative; the _ref sums in double). Covered: dinp NULL,
 *     dinp prefilled with garbage (it must be overwritten), parameter gradients that already hold
 *     values (+=), two calls doubling them, and dinp aliasing dout where the header allows it.
 *  3. Against PyTorch autograd (tests/data/ops_reference.h5, tools/gen_ops_reference.py): the
 *     gradients of sum(out·R) for timm's Conv2dSame/Conv2d/depthwise, BatchNormAct2d in train mode
 *     (with and without SiLU) and in eval mode (= the frozen backward), SqueezeExcite and Linear,
 *     for both _ref and fast; atol = rtol = 2e-5 (float64 references, float32 kao). */
#include <string.h>

#include "check.h"
#include "kao/ops.h"
#include "kao/rng.h"
#include "kao/util.h"

static kao_rng rng;

static float *filled(size_t n, float v) {
    float *x = kao_malloc(n * sizeof(float), "test buffer");
    for (size_t i = 0; i < n; i++) x[i] = v;
    return x;
}
static float *copy(const float *x, size_t n) {
    float *y = kao_malloc(n * sizeof(float), "test buffer");
    memcpy(y, x, n * sizeof(float));
    return y;
}
static double dot(const float *a, const float *b, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}
/* y = a + k·b (what += should give) */
static float *axpy(const float *a, float k, const float *b, size_t n) {
    float *y = kao_malloc(n * sizeof(float), "test buffer");
    for (size_t i = 0; i < n; i++) y[i] = a[i] + k * b[i];
    return y;
}

/* ---- finite differences ------------------------------------------------------------------------ */

typedef double (*loss_fn)(void *ctx);

static void fd_check(const char *what, float *x, size_t n, const float *analytic, loss_fn loss, void *ctx) {
    const float h = 1e-2f;
    const double atol = 1e-3, rtol = 1e-2;
    double worst = 0.0, worst_fd = 0.0, worst_an = 0.0;
    size_t worst_i = 0, count = n < 50 ? n : 50;
    for (size_t j = 0; j < count; j++) {
        size_t i = n <= 50 ? j : kao_rng_below(&rng, (uint32_t)n);
        float x0 = x[i];
        x[i] = x0 + h;
        double xp = x[i], lp = loss(ctx);
        x[i] = x0 - h;
        double xm = x[i], lm = loss(ctx);
        x[i] = x0;
        double fd = (lp - lm) / (xp - xm), v = fabs(fd - analytic[i]) / (atol + rtol * fabs(analytic[i]));
        if (!(v <= worst)) worst = isnan(v) ? INFINITY : v, worst_i = i, worst_fd = fd, worst_an = analytic[i];
    }
    CHECK(worst <= 1.0, "%s: element %zu: analytic %.7g, finite difference %.7g", what, worst_i, worst_an, worst_fd);
}

/* ---- convolution ------------------------------------------------------------------------------- */

typedef struct {
    kao_conv_shape s;
    float *inp, *w, *bias, *R, *out;
    size_t n_out;
} conv_ctx;

static double conv_loss(void *p) {
    conv_ctx *c = p;
    if (c->s.depthwise) kao_dwconv2d_forward_ref(c->out, c->inp, c->w, &c->s);
    else kao_conv2d_forward_ref(c->out, c->inp, c->w, c->bias, &c->s);
    return dot(c->out, c->R, c->n_out);
}

static void conv_backward(bool fast, float *dinp, float *dw, float *db, const conv_ctx *c, kao_workspace *ws) {
    if (c->s.depthwise) (fast ? kao_dwconv2d_backward : kao_dwconv2d_backward_ref)(dinp, dw, c->R, c->inp, c->w, &c->s);
    else if (fast) kao_conv2d_backward(dinp, dw, db, c->R, c->inp, c->w, &c->s, ws);
    else kao_conv2d_backward_ref(dinp, dw, db, c->R, c->inp, c->w, &c->s);
}

static void check_conv(int B, int H, int W, int Ci, int Co, int k, int stride, bool with_bias, bool dw,
                       kao_workspace *ws) {
    conv_ctx c;
    kao_conv_shape_init(&c.s, B, H, W, Ci, Co, k, stride, dw);
    size_t n_in = (size_t)B * H * W * Ci, n_w = (size_t)Co * (dw ? 1 : Ci) * k * k;
    c.n_out = (size_t)B * c.s.out_h * c.s.out_w * Co;
    float scale = 1.0f / sqrtf((float)((dw ? 1 : Ci) * k * k));
    c.inp = check_uniform(&rng, n_in, -1, 1), c.w = check_uniform(&rng, n_w, -scale, scale);
    c.bias = with_bias ? check_uniform(&rng, Co, -1, 1) : NULL;
    c.R = check_uniform(&rng, c.n_out, -1, 1), c.out = check_zeros(c.n_out);
    char what[160];
    snprintf(what, sizeof what, "%s B%d %dx%d Ci%d Co%d k%d s%d bias%d", dw ? "dwconv" : "conv", B, H, W, Ci, Co,
             k, stride, with_bias);
    char name[200];

    /* _ref against finite differences */
    float *dinp = filled(n_in, 1e30f), *dwt = check_zeros(n_w), *db = with_bias ? check_zeros(Co) : NULL;
    conv_backward(false, dinp, dwt, db, &c, NULL);
    snprintf(name, sizeof name, "%s: FD dinp", what);
    fd_check(name, c.inp, n_in, dinp, conv_loss, &c);
    snprintf(name, sizeof name, "%s: FD dweight", what);
    fd_check(name, c.w, n_w, dwt, conv_loss, &c);
    if (with_bias) {
        snprintf(name, sizeof name, "%s: FD dbias", what);
        fd_check(name, c.bias, Co, db, conv_loss, &c);
    }

    /* fast against _ref: dinp overwritten, parameter gradients added to what is there */
    float *dw0 = check_uniform(&rng, n_w, -1, 1), *db0 = check_uniform(&rng, Co, -1, 1);
    float *fdinp = filled(n_in, 1e30f), *fdw = copy(dw0, n_w), *fdb = copy(db0, Co);
    float *want_dw = axpy(dw0, 1.0f, dwt, n_w), *want_db = with_bias ? axpy(db0, 1.0f, db, Co) : NULL;
    conv_backward(true, fdinp, fdw, with_bias ? fdb : NULL, &c, ws);
    snprintf(name, sizeof name, "%s: fast dinp", what);
    CHECK_CLOSE(name, fdinp, dinp, n_in, 1e-5, 1e-4);
    snprintf(name, sizeof name, "%s: fast dweight +=", what);
    CHECK_CLOSE(name, fdw, want_dw, n_w, 1e-5, 1e-4);
    if (with_bias) {
        snprintf(name, sizeof name, "%s: fast dbias +=", what);
        CHECK_CLOSE(name, fdb, want_db, (size_t)Co, 1e-5, 1e-4);
    }
    /* the _ref accumulates too */
    memcpy(fdw, dw0, n_w * sizeof(float));
    conv_backward(false, NULL, fdw, NULL, &c, NULL);
    snprintf(name, sizeof name, "%s: ref dweight += (dinp NULL)", what);
    CHECK_CLOSE(name, fdw, want_dw, n_w, 1e-5, 1e-4);
    /* dinp NULL, called twice from zero: twice the gradient */
    float *twice = axpy(dwt, 1.0f, dwt, n_w);
    memset(fdw, 0, n_w * sizeof(float));
    conv_backward(true, NULL, fdw, NULL, &c, ws);
    conv_backward(true, NULL, fdw, NULL, &c, ws);
    snprintf(name, sizeof name, "%s: fast dweight twice (dinp NULL)", what);
    CHECK_CLOSE(name, fdw, twice, n_w, 1e-5, 1e-4);

    free(c.inp), free(c.w), free(c.bias), free(c.R), free(c.out);
    free(dinp), free(dwt), free(db), free(dw0), free(db0), free(fdinp), free(fdw), free(fdb);
    free(want_dw), free(want_db), free(twice);
}

/* ---- BatchNorm --------------------------------------------------------------------------------- */

typedef struct {
    size_t M;
    int C;
    kao_act act;
    bool frozen;
    float *inp, *gamma, *beta, *rm, *rv, *R, *out, *mean, *rstd;
} bn_ctx;

static const float BN_EPS = 1e-3f;

static double bn_loss(void *p) {
    bn_ctx *b = p;
    if (b->frozen)
        kao_batchnorm_forward_eval_ref(b->out, b->inp, b->gamma, b->beta, b->rm, b->rv, BN_EPS, b->act, b->M, b->C);
    else
        kao_batchnorm_forward_train_ref(b->out, b->mean, b->rstd, b->inp, b->gamma, b->beta, NULL, NULL, BN_EPS,
                                        0.1f, b->act, b->M, b->C);
    return dot(b->out, b->R, b->M * b->C);
}

static void bn_backward(bool fast, float *dinp, float *dg, float *dbeta, const float *dout, const bn_ctx *b) {
    if (b->frozen)
        (fast ? kao_batchnorm_backward_frozen : kao_batchnorm_backward_frozen_ref)(
            dinp, dg, dbeta, dout, b->inp, b->rm, b->rv, b->gamma, b->beta, BN_EPS, b->act, b->M, b->C);
    else
        (fast ? kao_batchnorm_backward : kao_batchnorm_backward_ref)(dinp, dg, dbeta, dout, b->inp, b->mean, b->rstd,
                                                                    b->gamma, b->beta, b->act, b->M, b->C);
}

static void check_batchnorm(size_t M, int C, kao_act act, bool frozen) {
    bn_ctx b = {.M = M, .C = C, .act = act, .frozen = frozen};
    size_t n = M * C;
    b.inp = check_uniform(&rng, n, -1, 1);
    float *off = check_uniform(&rng, C, -1, 1), *sc = check_uniform(&rng, C, 0.5f, 2);
    for (size_t i = 0; i < n; i++) b.inp[i] = b.inp[i] * sc[i % C] + off[i % C];
    b.gamma = check_uniform(&rng, C, -1.5f, 1.5f), b.beta = check_uniform(&rng, C, -1, 1), b.rm = check_uniform(&rng, C, -0.5f, 0.5f);
    b.rv = check_uniform(&rng, C, 0.5f, 2), b.R = check_uniform(&rng, n, -1, 1), b.out = check_zeros(n), b.mean = check_zeros(C), b.rstd = check_zeros(C);
    bn_loss(&b); /* saves mean/rstd of the unperturbed input for the backward */
    char what[128], name[180];
    snprintf(what, sizeof what, "batchnorm %s M%zu C%d act%d", frozen ? "frozen" : "train", M, C, (int)act);

    float *dinp = filled(n, 1e30f), *dg = check_zeros(C), *dbeta = check_zeros(C);
    bn_backward(false, dinp, dg, dbeta, b.R, &b);
    float *mean = copy(b.mean, C), *rstd = copy(b.rstd, C); /* the FD forwards overwrite them */
    snprintf(name, sizeof name, "%s: FD dinp", what);
    fd_check(name, b.inp, n, dinp, bn_loss, &b);
    snprintf(name, sizeof name, "%s: FD dgamma", what);
    fd_check(name, b.gamma, C, dg, bn_loss, &b);
    snprintf(name, sizeof name, "%s: FD dbeta", what);
    fd_check(name, b.beta, C, dbeta, bn_loss, &b);
    memcpy(b.mean, mean, C * sizeof(float));
    memcpy(b.rstd, rstd, C * sizeof(float));

    float *g0 = check_uniform(&rng, C, -1, 1), *b0 = check_uniform(&rng, C, -1, 1);
    float *fdinp = filled(n, 1e30f), *fdg = copy(g0, C), *fdb = copy(b0, C);
    float *want_g = axpy(g0, 1.0f, dg, C), *want_b = axpy(b0, 1.0f, dbeta, C);
    bn_backward(true, fdinp, fdg, fdb, b.R, &b);
    snprintf(name, sizeof name, "%s: fast dinp", what);
    CHECK_CLOSE(name, fdinp, dinp, n, 1e-5, 1e-4);
    snprintf(name, sizeof name, "%s: fast dgamma +=", what);
    CHECK_CLOSE(name, fdg, want_g, (size_t)C, 1e-5, 1e-4);
    snprintf(name, sizeof name, "%s: fast dbeta +=", what);
    CHECK_CLOSE(name, fdb, want_b, (size_t)C, 1e-5, 1e-4);
    /* dinp aliasing dout, and the gradients accumulating a second time */
    float *alias = copy(b.R, n), *want_g2 = axpy(want_g, 1.0f, dg, C), *want_b2 = axpy(want_b, 1.0f, dbeta, C);
    bn_backward(true, alias, fdg, fdb, alias, &b);
    snprintf(name, sizeof name, "%s: fast dinp in place", what);
    CHECK_CLOSE(name, alias, dinp, n, 1e-5, 1e-4);
    snprintf(name, sizeof name, "%s: fast dgamma twice", what);
    CHECK_CLOSE(name, fdg, want_g2, (size_t)C, 1e-5, 1e-4);
    snprintf(name, sizeof name, "%s: fast dbeta twice", what);
    CHECK_CLOSE(name, fdb, want_b2, (size_t)C, 1e-5, 1e-4);
    /* dinp NULL: parameter gradients only */
    memset(fdg, 0, C * sizeof(float)), memset(fdb, 0, C * sizeof(float));
    bn_backward(true, NULL, fdg, fdb, b.R, &b);
    snprintf(name, sizeof name, "%s: fast dgamma (dinp NULL)", what);
    CHECK_CLOSE(name, fdg, dg, (size_t)C, 1e-5, 1e-4);

    free(b.inp), free(off), free(sc), free(b.gamma), free(b.beta), free(b.rm), free(b.rv), free(b.R), free(b.out);
    free(b.mean), free(b.rstd), free(dinp), free(dg), free(dbeta), free(mean), free(rstd), free(g0), free(b0);
    free(fdinp), free(fdg), free(fdb), free(want_g), free(want_b), free(alias), free(want_g2), free(want_b2);
}

/* ---- squeeze-excite ----------------------------------------------------------------------------- */

typedef struct {
    int B, HW, C, R;
    float *inp, *wr, *br, *we, *be, *Rg, *out, *pooled, *hidden, *gate;
} se_ctx;

static double se_loss(void *p) {
    se_ctx *s = p;
    kao_se_forward_ref(s->out, s->pooled, s->hidden, s->gate, s->inp, s->wr, s->br, s->we, s->be, s->B, s->HW, s->C, s->R);
    return dot(s->out, s->Rg, (size_t)s->B * s->HW * s->C);
}

static void check_se(int B, int HW, int C, int R) {
    se_ctx s = {.B = B, .HW = HW, .C = C, .R = R};
    size_t n = (size_t)B * HW * C, nr = (size_t)R * C;
    s.inp = check_uniform(&rng, n, -1, 1), s.wr = check_uniform(&rng, nr, -1, 1), s.br = check_uniform(&rng, R, -1, 1);
    s.we = check_uniform(&rng, nr, -1, 1), s.be = check_uniform(&rng, C, -1, 1), s.Rg = check_uniform(&rng, n, -1, 1), s.out = check_zeros(n);
    s.pooled = check_zeros((size_t)B * C), s.hidden = check_zeros((size_t)B * R), s.gate = check_zeros((size_t)B * C);
    se_loss(&s);
    float *pooled = copy(s.pooled, (size_t)B * C), *hidden = copy(s.hidden, (size_t)B * R), *gate = copy(s.gate, (size_t)B * C);
    char what[64], name[128];
    snprintf(what, sizeof what, "se B%d HW%d C%d R%d", B, HW, C, R);

    float *dinp = filled(n, 1e30f), *dwr = check_zeros(nr), *dbr = check_zeros(R), *dwe = check_zeros(nr), *dbe = check_zeros(C);
    kao_se_backward_ref(dinp, dwr, dbr, dwe, dbe, s.Rg, s.inp, pooled, hidden, gate, s.wr, s.we, B, HW, C, R);
    struct { const char *name; float *x, *g; size_t n; } t[] = {
        {"dinp", s.inp, dinp, n}, {"dw_reduce", s.wr, dwr, nr}, {"db_reduce", s.br, dbr, (size_t)R},
        {"dw_expand", s.we, dwe, nr}, {"db_expand", s.be, dbe, (size_t)C},
    };
    for (size_t i = 0; i < 5; i++) {
        snprintf(name, sizeof name, "%s: FD %s", what, t[i].name);
        fd_check(name, t[i].x, t[i].n, t[i].g, se_loss, &s);
    }

    /* fast: parameter gradients start at random values and must be added to; then dinp = dout */
    float *p0[4] = {check_uniform(&rng, nr, -1, 1), check_uniform(&rng, R, -1, 1), check_uniform(&rng, nr, -1, 1), check_uniform(&rng, C, -1, 1)};
    float *fast[4] = {copy(p0[0], nr), copy(p0[1], R), copy(p0[2], nr), copy(p0[3], C)};
    float *fdinp = copy(s.Rg, n);
    kao_se_backward(fdinp, fast[0], fast[1], fast[2], fast[3], fdinp, s.inp, pooled, hidden, gate, s.wr, s.we, B, HW, C, R);
    snprintf(name, sizeof name, "%s: fast dinp (in place)", what);
    CHECK_CLOSE(name, fdinp, dinp, n, 1e-5, 1e-4);
    for (int i = 0; i < 4; i++) {
        float *want = axpy(p0[i], 1.0f, t[i + 1].g, t[i + 1].n);
        snprintf(name, sizeof name, "%s: fast %s +=", what, t[i + 1].name);
        CHECK_CLOSE(name, fast[i], want, t[i + 1].n, 1e-5, 1e-4);
        free(want);
        memset(fast[i], 0, t[i + 1].n * sizeof(float));
    }
    /* dinp NULL, twice */
    for (int rep = 0; rep < 2; rep++)
        kao_se_backward(NULL, fast[0], fast[1], fast[2], fast[3], s.Rg, s.inp, pooled, hidden, gate, s.wr, s.we, B, HW, C, R);
    for (int i = 0; i < 4; i++) {
        float *want = axpy(t[i + 1].g, 1.0f, t[i + 1].g, t[i + 1].n);
        snprintf(name, sizeof name, "%s: fast %s twice (dinp NULL)", what, t[i + 1].name);
        CHECK_CLOSE(name, fast[i], want, t[i + 1].n, 1e-5, 1e-4);
        free(want);
        free(p0[i]), free(fast[i]);
    }
    free(s.inp), free(s.wr), free(s.br), free(s.we), free(s.be), free(s.Rg), free(s.out), free(s.pooled);
    free(s.hidden), free(s.gate), free(pooled), free(hidden), free(gate), free(dinp), free(dwr), free(dbr);
    free(dwe), free(dbe), free(fdinp);
}

/* ---- Linear, SiLU, average pooling -------------------------------------------------------------- */

typedef struct {
    int B, I, O;
    float *inp, *w, *bias, *R, *out;
} linear_ctx;

static double linear_loss(void *p) {
    linear_ctx *l = p;
    kao_linear_forward_ref(l->out, l->inp, l->w, l->bias, l->B, l->I, l->O);
    return dot(l->out, l->R, (size_t)l->B * l->O);
}

static void check_linear(int B, int I, int O) {
    linear_ctx l = {.B = B, .I = I, .O = O};
    size_t ni = (size_t)B * I, nw = (size_t)O * I, no = (size_t)B * O;
    l.inp = check_uniform(&rng, ni, -1, 1), l.w = check_uniform(&rng, nw, -1, 1), l.bias = check_uniform(&rng, O, -1, 1), l.R = check_uniform(&rng, no, -1, 1);
    l.out = check_zeros(no);
    float *dinp = filled(ni, 1e30f), *dw = check_zeros(nw), *db = check_zeros(O);
    kao_linear_backward_ref(dinp, dw, db, l.R, l.inp, l.w, B, I, O);
    fd_check("linear: FD dinp", l.inp, ni, dinp, linear_loss, &l);
    fd_check("linear: FD dweight", l.w, nw, dw, linear_loss, &l);
    fd_check("linear: FD dbias", l.bias, O, db, linear_loss, &l);
    float *w0 = check_uniform(&rng, nw, -1, 1), *b0 = check_uniform(&rng, O, -1, 1), *fdinp = filled(ni, 1e30f);
    float *fdw = copy(w0, nw), *fdb = copy(b0, O), *want_w = axpy(w0, 1.0f, dw, nw), *want_b = axpy(b0, 1.0f, db, O);
    kao_linear_backward(fdinp, fdw, fdb, l.R, l.inp, l.w, B, I, O);
    CHECK_CLOSE("linear: fast dinp", fdinp, dinp, ni, 1e-5, 1e-4);
    CHECK_CLOSE("linear: fast dweight +=", fdw, want_w, nw, 1e-5, 1e-4);
    CHECK_CLOSE("linear: fast dbias +=", fdb, want_b, (size_t)O, 1e-5, 1e-4);
    float *want_w2 = axpy(want_w, 1.0f, dw, nw);
    kao_linear_backward(NULL, fdw, NULL, l.R, l.inp, l.w, B, I, O);
    CHECK_CLOSE("linear: fast dweight twice (dinp, dbias NULL)", fdw, want_w2, nw, 1e-5, 1e-4);
    CHECK_CLOSE("linear: dbias NULL leaves dbias", fdb, want_b, (size_t)O, 1e-5, 1e-4);
    free(l.inp), free(l.w), free(l.bias), free(l.R), free(l.out), free(dinp), free(dw), free(db), free(w0), free(b0);
    free(fdinp), free(fdw), free(fdb), free(want_w), free(want_b), free(want_w2);
}

typedef struct {
    int B, HW, C;
    size_t n;
    float *inp, *R, *out;
} elem_ctx;

static double silu_loss(void *p) {
    elem_ctx *e = p;
    kao_silu_forward_ref(e->out, e->inp, e->n);
    return dot(e->out, e->R, e->n);
}

static double avgpool_loss(void *p) {
    elem_ctx *e = p;
    kao_avgpool_forward(e->out, e->inp, e->B, e->HW, e->C);
    return dot(e->out, e->R, (size_t)e->B * e->C);
}

static void check_elementwise(void) {
    elem_ctx e = {.n = 203};
    e.inp = check_uniform(&rng, e.n, -6, 6), e.R = check_uniform(&rng, e.n, -1, 1), e.out = check_zeros(e.n);
    float *dinp = filled(e.n, 1e30f), *fdinp = copy(e.R, e.n);
    kao_silu_backward_ref(dinp, e.R, e.inp, e.n);
    fd_check("silu: FD dinp", e.inp, e.n, dinp, silu_loss, &e);
    kao_silu_backward(fdinp, fdinp, e.inp, e.n); /* in place */
    CHECK_CLOSE("silu: fast dinp", fdinp, dinp, e.n, 1e-6, 1e-6);
    free(e.inp), free(e.R), free(e.out), free(dinp), free(fdinp);

    elem_ctx a = {.B = 3, .HW = 7, .C = 5};
    a.n = (size_t)a.B * a.HW * a.C;
    a.inp = check_uniform(&rng, a.n, -1, 1), a.R = check_uniform(&rng, (size_t)a.B * a.C, -1, 1), a.out = check_zeros((size_t)a.B * a.C);
    dinp = filled(a.n, 1e30f);
    kao_avgpool_backward(dinp, a.R, a.B, a.HW, a.C);
    fd_check("avgpool: FD dinp", a.inp, a.n, dinp, avgpool_loss, &a);
    free(a.inp), free(a.R), free(a.out), free(dinp);
}

/* ---- PyTorch autograd references --------------------------------------------------------------- */

static int attr(const kao_h5_file *f, const char *group, const char *name) { return (int)ref_attr(f, group, name); }

static void check_close_named(const char *group, bool fast, const char *tensor, const float *got, const float *want, size_t n) {
    char what[160];
    snprintf(what, sizeof what, "torch %s %s %s", group, fast ? "fast" : "ref", tensor);
    CHECK_CLOSE(what, got, want, n, 2e-5, 2e-5);
}

static void torch_conv(const kao_h5_file *f, const char *group, kao_workspace *ws) {
    int B = attr(f, group, "B"), H = attr(f, group, "H"), W = attr(f, group, "W"), Ci = attr(f, group, "Ci");
    int Co = attr(f, group, "Co"), k = attr(f, group, "k"), dw = attr(f, group, "depthwise"), bias = attr(f, group, "bias");
    conv_ctx c;
    kao_conv_shape_init(&c.s, B, H, W, Ci, Co, k, attr(f, group, "stride"), dw);
    size_t n_in = (size_t)B * H * W * Ci, n_w = (size_t)Co * (dw ? 1 : Ci) * k * k;
    c.n_out = (size_t)B * c.s.out_h * c.s.out_w * Co;
    c.inp = ref_f32(f, group, "inp", n_in), c.w = ref_f32(f, group, "weight", n_w);
    c.bias = bias ? ref_f32(f, group, "bias", Co) : NULL, c.R = ref_f32(f, group, "R", c.n_out), c.out = NULL;
    float *want_di = ref_f32(f, group, "d_inp", n_in), *want_dw = ref_f32(f, group, "d_weight", n_w);
    float *want_db = bias ? ref_f32(f, group, "d_bias", Co) : NULL;
    for (int fast = 0; fast < 2; fast++) {
        float *di = check_zeros(n_in), *dwt = check_zeros(n_w), *db = check_zeros(Co);
        conv_backward(fast, di, dwt, bias ? db : NULL, &c, ws);
        check_close_named(group, fast, "d_inp", di, want_di, n_in);
        check_close_named(group, fast, "d_weight", dwt, want_dw, n_w);
        if (bias) check_close_named(group, fast, "d_bias", db, want_db, Co);
        free(di), free(dwt), free(db);
    }
    free(c.inp), free(c.w), free(c.bias), free(c.R), free(want_di), free(want_dw), free(want_db);
}

static void torch_batchnorm(const kao_h5_file *f, const char *group) {
    size_t M = (size_t)attr(f, group, "B") * attr(f, group, "H") * attr(f, group, "W");
    int C = attr(f, group, "C");
    size_t n = M * C;
    bn_ctx b = {.M = M, .C = C, .act = attr(f, group, "silu") ? KAO_ACT_SILU : KAO_ACT_NONE, .frozen = !attr(f, group, "train")};
    KAO_ASSERT(fabs(ref_attr(f, group, "eps") - BN_EPS) < 1e-9);
    b.inp = ref_f32(f, group, "inp", n), b.gamma = ref_f32(f, group, "weight", C), b.beta = ref_f32(f, group, "bias", C);
    b.rm = ref_f32(f, group, "running_mean0", C), b.rv = ref_f32(f, group, "running_var0", C);
    b.R = ref_f32(f, group, "R", n), b.out = check_zeros(n), b.mean = check_zeros(C), b.rstd = check_zeros(C);
    bn_loss(&b);
    float *want_di = ref_f32(f, group, "d_inp", n), *want_dg = ref_f32(f, group, "d_weight", C);
    float *want_db = ref_f32(f, group, "d_bias", C);
    for (int fast = 0; fast < 2; fast++) {
        float *di = check_zeros(n), *dg = check_zeros(C), *db = check_zeros(C);
        bn_backward(fast, di, dg, db, b.R, &b);
        check_close_named(group, fast, "d_inp", di, want_di, n);
        check_close_named(group, fast, "d_weight", dg, want_dg, C);
        check_close_named(group, fast, "d_bias", db, want_db, C);
        free(di), free(dg), free(db);
    }
    free(b.inp), free(b.gamma), free(b.beta), free(b.rm), free(b.rv), free(b.R), free(b.out), free(b.mean);
    free(b.rstd), free(want_di), free(want_dg), free(want_db);
}

static void torch_se(const kao_h5_file *f) {
    const char *g = "se";
    int B = attr(f, g, "B"), HW = attr(f, g, "H") * attr(f, g, "W"), C = attr(f, g, "C"), R = attr(f, g, "R");
    size_t n = (size_t)B * HW * C, nr = (size_t)R * C;
    se_ctx s = {.B = B, .HW = HW, .C = C, .R = R};
    s.inp = ref_f32(f, g, "inp", n), s.Rg = ref_f32(f, g, "R", n);
    s.wr = ref_f32(f, g, "conv_reduce.weight", nr), s.br = ref_f32(f, g, "conv_reduce.bias", R);
    s.we = ref_f32(f, g, "conv_expand.weight", nr), s.be = ref_f32(f, g, "conv_expand.bias", C);
    s.out = check_zeros(n), s.pooled = check_zeros((size_t)B * C), s.hidden = check_zeros((size_t)B * R), s.gate = check_zeros((size_t)B * C);
    se_loss(&s);
    const char *names[5] = {"d_inp", "d_conv_reduce.weight", "d_conv_reduce.bias", "d_conv_expand.weight", "d_conv_expand.bias"};
    size_t sizes[5] = {n, nr, (size_t)R, nr, (size_t)C};
    for (int fast = 0; fast < 2; fast++) {
        float *got[5];
        for (int i = 0; i < 5; i++) got[i] = check_zeros(sizes[i]);
        (fast ? kao_se_backward : kao_se_backward_ref)(got[0], got[1], got[2], got[3], got[4], s.Rg, s.inp, s.pooled,
                                                       s.hidden, s.gate, s.wr, s.we, B, HW, C, R);
        for (int i = 0; i < 5; i++) {
            float *want = ref_f32(f, g, names[i], sizes[i]);
            check_close_named(g, fast, names[i], got[i], want, sizes[i]);
            free(want), free(got[i]);
        }
    }
    free(s.inp), free(s.Rg), free(s.wr), free(s.br), free(s.we), free(s.be), free(s.out), free(s.pooled);
    free(s.hidden), free(s.gate);
}

static void torch_linear(const kao_h5_file *f) {
    const char *g = "linear";
    int B = attr(f, g, "B"), I = attr(f, g, "I"), O = attr(f, g, "O");
    float *inp = ref_f32(f, g, "inp", (size_t)B * I), *w = ref_f32(f, g, "weight", (size_t)O * I);
    float *R = ref_f32(f, g, "R", (size_t)B * O), *want_di = ref_f32(f, g, "d_inp", (size_t)B * I);
    float *want_dw = ref_f32(f, g, "d_weight", (size_t)O * I), *want_db = ref_f32(f, g, "d_bias", O);
    for (int fast = 0; fast < 2; fast++) {
        float *di = check_zeros((size_t)B * I), *dw = check_zeros((size_t)O * I), *db = check_zeros(O);
        (fast ? kao_linear_backward : kao_linear_backward_ref)(di, dw, db, R, inp, w, B, I, O);
        check_close_named(g, fast, "d_inp", di, want_di, (size_t)B * I);
        check_close_named(g, fast, "d_weight", dw, want_dw, (size_t)O * I);
        check_close_named(g, fast, "d_bias", db, want_db, O);
        free(di), free(dw), free(db);
    }
    free(inp), free(w), free(R), free(want_di), free(want_dw), free(want_db);
}

static void test_torch_reference(kao_workspace *ws) {
    kao_h5_file file, *f = &file;
    ref_open(f, "ops_reference.h5");
    const char *convs[] = {"conv_s2_odd", "conv_s2_even", "conv_s1_bias", "conv_pw", "dw_s2_even", "dw_s1_k5"};
    for (size_t i = 0; i < sizeof convs / sizeof convs[0]; i++) torch_conv(f, convs[i], ws);
    torch_batchnorm(f, "bn_train");
    torch_batchnorm(f, "bn_train_silu");
    torch_batchnorm(f, "bn_eval_silu");
    torch_se(f);
    torch_linear(f);
    kao_h5_close(f);
}

int main(void) {
    kao_rng_seed(&rng, 4321, 0);
    kao_workspace ws = {0};
    static const struct { int B, H, W, Ci, Co, k, stride, bias; } convs[] = {
        {2, 5, 7, 3, 4, 3, 2, 1}, {2, 6, 6, 5, 3, 3, 1, 0}, {2, 4, 5, 6, 5, 1, 1, 1},
        {1, 5, 5, 3, 2, 1, 2, 0}, {2, 7, 6, 2, 3, 5, 2, 0}, {3, 20, 20, 3, 4, 3, 1, 0},
        {2, 3, 5, 7, 200, 1, 1, 1}, {2, 9, 8, 13, 19, 3, 2, 0}, /* wide 1×1; channel tails of 6 and 16 */
    };
    for (size_t i = 0; i < sizeof convs / sizeof convs[0]; i++)
        check_conv(convs[i].B, convs[i].H, convs[i].W, convs[i].Ci, convs[i].Co, convs[i].k, convs[i].stride,
                   convs[i].bias, false, &ws);
    static const struct { int B, H, W, C, k, stride; } dws[] = {
        {2, 6, 7, 5, 3, 1}, {2, 7, 7, 11, 3, 2}, {1, 8, 6, 9, 3, 2}, {2, 5, 6, 4, 5, 1}, {2, 6, 6, 40, 3, 2},
        {2, 1, 3, 8, 3, 2}, {1, 2, 1, 5, 3, 2}, {1, 1, 1, 9, 3, 1}, /* windows wider than the image */
    };
    for (size_t i = 0; i < sizeof dws / sizeof dws[0]; i++)
        check_conv(dws[i].B, dws[i].H, dws[i].W, dws[i].C, dws[i].C, dws[i].k, dws[i].stride, false, true, &ws);
    check_batchnorm(60, 5, KAO_ACT_NONE, false);
    check_batchnorm(60, 5, KAO_ACT_SILU, false);
    check_batchnorm(60, 5, KAO_ACT_NONE, true);
    check_batchnorm(60, 5, KAO_ACT_SILU, true);
    check_batchnorm(3000, 9, KAO_ACT_SILU, false); /* several row blocks per thread */
    check_se(2, 6, 7, 3);
    check_se(3, 1, 12, 2);
    check_linear(3, 7, 4);
    check_elementwise();
    test_torch_reference(&ws);
    kao_workspace_free(&ws);
    return check_summary("test_ops_backward");
}
