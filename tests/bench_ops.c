/* bench_ops.c — times the fast ops against their _ref twins on tf_efficientnetv2_b0's layer shapes
 * at 224×224, batch 32 (docs/architecture.md, 'Blocks'), and every op of one whole b0 pass (inference and
 * training) in the model's order. Built with the tests but not run by ctest:
 *     OMP_NUM_THREADS=2 build/tests/bench_ops [batch [model | model-layers]]
 * Convolutions report GFLOP/s (2 FLOPs per multiply-add; backward = dweight + dinp, twice the
 * forward's FLOPs); elementwise ops report GB/s of memory traffic (each tensor read or written
 * once). The _ref ops are timed on one image and scaled by the batch (they are plain loops,
 * linear in the batch); the fast ones on the whole batch, best of 3. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kao/arch.h"
#include "kao/ops.h"
#include "kao/rng.h"
#include "kao/util.h"

static kao_rng rng;

static float *uniform(size_t n, float lo, float hi) {
    float *x = kao_aligned_alloc(n * sizeof(float), "bench buffer");
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * kao_rng_uniform(&rng);
    return x;
}

enum { REPS = 3 };

typedef struct {
    const char *name;
    int H, Ci, Co, k, stride;
    bool depthwise;
} conv_layer;

/* var = seconds of the fastest of reps runs of stmt */
#define BEST_OF(var, reps, stmt)                                                                   \
    do {                                                                                           \
        var = 1e30;                                                                                \
        for (int r_ = 0; r_ < (reps); r_++) {                                                      \
            double t_ = kao_now_seconds();                                                         \
            stmt;                                                                                  \
            t_ = kao_now_seconds() - t_;                                                           \
            if (t_ < var) var = t_;                                                                \
        }                                                                                          \
    } while (0)

static void bench_conv(const conv_layer *L, int B, kao_workspace *ws) {
    kao_conv_shape s, s1;
    kao_conv_shape_init(&s, B, L->H, L->H, L->Ci, L->Co, L->k, L->stride, L->depthwise);
    kao_conv_shape_init(&s1, 1, L->H, L->H, L->Ci, L->Co, L->k, L->stride, L->depthwise);
    size_t n_in = (size_t)B * L->H * L->H * L->Ci, n_out = (size_t)B * s.out_h * s.out_w * L->Co;
    size_t n_w = (size_t)L->Co * (L->depthwise ? 1 : L->Ci) * L->k * L->k;
    double flops = 2.0 * n_out * (L->depthwise ? 1 : L->Ci) * L->k * L->k;
    float *inp = uniform(n_in, -1, 1), *w = uniform(n_w, -0.1f, 0.1f), *out = uniform(n_out, -1, 1);
    float *dout = uniform(n_out, -1, 1), *dinp = uniform(n_in, -1, 1), *dw = uniform(n_w, 0, 0);
    double fwd, bwd, fwd_ref, bwd_ref; /* the _ref on one image */
    if (L->depthwise) {
        BEST_OF(fwd, REPS, kao_dwconv2d_forward(out, inp, w, &s));
        BEST_OF(bwd, REPS, kao_dwconv2d_backward(dinp, dw, dout, inp, w, &s));
        BEST_OF(fwd_ref, 1, kao_dwconv2d_forward_ref(out, inp, w, &s1));
        BEST_OF(bwd_ref, 1, kao_dwconv2d_backward_ref(dinp, dw, dout, inp, w, &s1));
    } else {
        BEST_OF(fwd, REPS, kao_conv2d_forward(out, inp, w, NULL, &s, ws));
        BEST_OF(bwd, REPS, kao_conv2d_backward(dinp, dw, NULL, dout, inp, w, &s, ws));
        BEST_OF(fwd_ref, 1, kao_conv2d_forward_ref(out, inp, w, NULL, &s1));
        BEST_OF(bwd_ref, 1, kao_conv2d_backward_ref(dinp, dw, NULL, dout, inp, w, &s1));
    }
    fwd_ref *= B, bwd_ref *= B;
    printf("%-24s %3dx%-3d %4d->%-4d k%d s%d | fwd %8.2f ms %6.1f GF/s (ref %8.0f ms, x%5.0f) | "
           "bwd %8.2f ms %6.1f GF/s (ref %8.0f ms, x%5.0f)\n",
           L->name, L->H, L->H, L->Ci, L->Co, L->k, L->stride, fwd * 1e3, flops / fwd * 1e-9, fwd_ref * 1e3,
           fwd_ref / fwd, bwd * 1e3, 2 * flops / bwd * 1e-9, bwd_ref * 1e3, bwd_ref / bwd);
    if (!L->depthwise && L->Ci == 3) { /* the stem needs no dinp */
        double t;
        BEST_OF(t, REPS, kao_conv2d_backward(NULL, dw, NULL, dout, inp, w, &s, ws));
        printf("%-24s backward without dinp: %8.2f ms %6.1f GF/s\n", L->name, t * 1e3, flops / t * 1e-9);
    }
    free(inp), free(w), free(out), free(dout), free(dinp), free(dw);
}

static void bench_batchnorm(const char *name, size_t M, int C) {
    size_t n = M * C;
    float *inp = uniform(n, -1, 1), *out = uniform(n, -1, 1), *dout = uniform(n, -1, 1);
    float *g = uniform(C, 0.5f, 1.5f), *b = uniform(C, -1, 1), *rm = uniform(C, -1, 1), *rv = uniform(C, 0.5f, 2);
    float *mean = uniform(C, 0, 1), *rstd = uniform(C, 0, 1), *dg = uniform(C, 0, 0), *db = uniform(C, 0, 0);
    double mb = n * 4.0 / 1e6;
    struct { const char *what; double t, tref, bytes; } r[4];
    r[0].what = "eval+silu", r[0].bytes = 2 * mb;
    BEST_OF(r[0].t, REPS, kao_batchnorm_forward_eval(out, inp, g, b, rm, rv, 1e-3f, KAO_ACT_SILU, M, C));
    BEST_OF(r[0].tref, 1, kao_batchnorm_forward_eval_ref(out, inp, g, b, rm, rv, 1e-3f, KAO_ACT_SILU, M, C));
    r[1].what = "train+silu", r[1].bytes = 3 * mb;
    BEST_OF(r[1].t, REPS, kao_batchnorm_forward_train(out, mean, rstd, inp, g, b, rm, rv, 1e-3f, 0.1f, KAO_ACT_SILU, M, C));
    BEST_OF(r[1].tref, 1, kao_batchnorm_forward_train_ref(out, mean, rstd, inp, g, b, rm, rv, 1e-3f, 0.1f, KAO_ACT_SILU, M, C));
    r[2].what = "backward+silu", r[2].bytes = 6 * mb; /* pass 1: dout, inp → g; pass 2: g, inp → dinp */
    BEST_OF(r[2].t, REPS, kao_batchnorm_backward(out, dg, db, dout, inp, mean, rstd, g, b, KAO_ACT_SILU, M, C));
    BEST_OF(r[2].tref, 1, kao_batchnorm_backward_ref(out, dg, db, dout, inp, mean, rstd, g, b, KAO_ACT_SILU, M, C));
    r[3].what = "frozen bwd+silu", r[3].bytes = 3 * mb;
    BEST_OF(r[3].t, REPS, kao_batchnorm_backward_frozen(out, dg, db, dout, inp, rm, rv, g, b, 1e-3f, KAO_ACT_SILU, M, C));
    BEST_OF(r[3].tref, 1, kao_batchnorm_backward_frozen_ref(out, dg, db, dout, inp, rm, rv, g, b, 1e-3f, KAO_ACT_SILU, M, C));
    for (int i = 0; i < 4; i++)
        printf("%-24s %8zu x %-4d %-15s | %8.2f ms %6.1f GB/s (ref %8.0f ms, x%5.1f)\n", name, M, C, r[i].what,
               r[i].t * 1e3, r[i].bytes / r[i].t * 1e-3, r[i].tref * 1e3, r[i].tref / r[i].t);
    free(inp), free(out), free(dout), free(g), free(b), free(rm), free(rv), free(mean), free(rstd), free(dg), free(db);
}

static void bench_se(const char *name, int B, int HW, int C, int R) {
    size_t n = (size_t)B * HW * C;
    float *inp = uniform(n, -1, 1), *out = uniform(n, -1, 1), *dout = uniform(n, -1, 1), *dinp = uniform(n, -1, 1);
    float *wr = uniform((size_t)R * C, -0.1f, 0.1f), *br = uniform(R, -1, 1), *we = uniform((size_t)C * R, -0.1f, 0.1f);
    float *be = uniform(C, -1, 1), *pooled = uniform((size_t)B * C, 0, 1), *hidden = uniform((size_t)B * R, 0, 1);
    float *gate = uniform((size_t)B * C, 0, 1), *dwr = uniform((size_t)R * C, 0, 0), *dbr = uniform(R, 0, 0);
    float *dwe = uniform((size_t)C * R, 0, 0), *dbe = uniform(C, 0, 0);
    double f, fr, b, br_;
    BEST_OF(f, REPS, kao_se_forward(out, pooled, hidden, gate, inp, wr, br, we, be, B, HW, C, R));
    BEST_OF(fr, 1, kao_se_forward_ref(out, pooled, hidden, gate, inp, wr, br, we, be, B, HW, C, R));
    BEST_OF(b, REPS, kao_se_backward(dinp, dwr, dbr, dwe, dbe, dout, inp, pooled, hidden, gate, wr, we, B, HW, C, R));
    BEST_OF(br_, 1, kao_se_backward_ref(dinp, dwr, dbr, dwe, dbe, dout, inp, pooled, hidden, gate, wr, we, B, HW, C, R));
    double mb = n * 4.0 / 1e6;
    printf("%-24s B%d HW%d C%d R%d | fwd %6.2f ms %6.1f GB/s (ref %6.0f ms) | bwd %6.2f ms %6.1f GB/s (ref %6.0f ms)\n",
           name, B, HW, C, R, f * 1e3, 3 * mb / f * 1e-3, fr * 1e3, b * 1e3, 4 * mb / b * 1e-3, br_ * 1e3);
    free(inp), free(out), free(dout), free(dinp), free(wr), free(br), free(we), free(be), free(pooled), free(hidden);
    free(gate), free(dwr), free(dbr), free(dwe), free(dbe);
}

static void bench_silu(const char *name, size_t n) {
    float *x = uniform(n, -6, 6), *y = uniform(n, -1, 1), *d = uniform(n, -1, 1);
    double f, fr, b, br;
    BEST_OF(f, REPS, kao_silu_forward(y, x, n));
    BEST_OF(fr, 1, kao_silu_forward_ref(y, x, n));
    BEST_OF(b, REPS, kao_silu_backward(y, d, x, n));
    BEST_OF(br, 1, kao_silu_backward_ref(y, d, x, n));
    double mb = n * 4.0 / 1e6;
    printf("%-24s n %zu | fwd %6.2f ms %6.1f GB/s (ref %6.0f ms) | bwd %6.2f ms %6.1f GB/s (ref %6.0f ms)\n", name, n,
           f * 1e3, 2 * mb / f * 1e-3, fr * 1e3, b * 1e3, 3 * mb / b * 1e-3, br * 1e3);
    free(x), free(y), free(d);
}

/* ---- a whole tf_efficientnetv2_b0 pass, op by op, on scratch buffers ------------------------- */

enum { T_CONV, T_DW, T_BN, T_SE, T_OTHER, T_KINDS };
static const char *const kind_names[T_KINDS] = {"conv", "dwconv", "bn(+silu)", "se", "other"};

typedef struct {
    int B;
    bool train, verbose, fused; /* fused: BN folded into (inference) or its statistics gathered by the conv */
    kao_act act;                /* the activation of the BN after the current conv */
    double *sums;
    float *x, *y, *dx, *dy, *w, *dw, *g, *b, *rm, *rv, *mean, *rstd, *pooled, *hidden, *gate;
    kao_workspace ws;
    double fwd[T_KINDS], bwd[T_KINDS];
} model_run;

static void timed(double *acc, double t0) { *acc += kao_now_seconds() - t0; }

static void run_conv(model_run *r, int H, int Ci, int Co, int k, int stride, bool dw, bool need_dinp, int *Ho) {
    kao_conv_shape s;
    kao_conv_shape_init(&s, r->B, H, H, Ci, Co, k, stride, dw);
    double t = kao_now_seconds();
    kao_conv_epilogue ep = {0};
    if (r->fused && r->train) ep.sums = r->sums;
    if (r->fused && !r->train) ep.scale = r->g, ep.shift = r->b, ep.act = r->act;
    if (dw) kao_dwconv2d_forward_fused(r->y, r->x, r->w, &ep, &s);
    else kao_conv2d_forward_fused(r->y, r->x, r->w, &ep, &s, &r->ws);
    timed(&r->fwd[dw ? T_DW : T_CONV], t);
    if (r->train) {
        t = kao_now_seconds();
        if (dw) kao_dwconv2d_backward(r->dx, r->dw, r->dy, r->x, r->w, &s);
        else kao_conv2d_backward(need_dinp ? r->dx : NULL, r->dw, NULL, r->dy, r->x, r->w, &s, &r->ws);
        timed(&r->bwd[dw ? T_DW : T_CONV], t);
    }
    if (r->verbose) {
        double t1 = kao_now_seconds() - t, flops = 2.0 * r->B * s.out_h * s.out_w * Co * (dw ? 1 : Ci) * k * k;
        printf("  %s %3d %4d->%-4d k%d s%d: %s %7.2f ms %6.1f GF/s\n", dw ? "dw  " : "conv", H, Ci, Co, k, stride,
               r->train ? "bwd" : "fwd", t1 * 1e3, flops * (r->train ? (need_dinp ? 2 : 1) : 1) / t1 * 1e-9);
    }
    *Ho = s.out_h;
}

static void run_bn(model_run *r, size_t M, int C, kao_act act) {
    if (r->fused && !r->train) return; /* folded into the conv */
    double t = kao_now_seconds();
    if (r->train && r->fused)
        kao_batchnorm_forward_train_sums(r->y, r->mean, r->rstd, r->x, r->sums, r->g, r->b, r->rm, r->rv, 1e-3f, 0.1f,
                                         act, M, C);
    else if (r->train) kao_batchnorm_forward_train(r->y, r->mean, r->rstd, r->x, r->g, r->b, r->rm, r->rv, 1e-3f, 0.1f, act, M, C);
    else kao_batchnorm_forward_eval(r->y, r->x, r->g, r->b, r->rm, r->rv, 1e-3f, act, M, C);
    timed(&r->fwd[T_BN], t);
    if (r->train) {
        t = kao_now_seconds();
        kao_batchnorm_backward(r->dx, r->dw, r->dw + C, r->dy, r->x, r->mean, r->rstd, r->g, r->b, act, M, C);
        timed(&r->bwd[T_BN], t);
    }
}

static void run_se(model_run *r, int HW, int C, int R) {
    double t = kao_now_seconds();
    kao_se_forward(r->y, r->pooled, r->hidden, r->gate, r->x, r->w, r->b, r->w, r->g, r->B, HW, C, R);
    timed(&r->fwd[T_SE], t);
    if (r->train) {
        t = kao_now_seconds();
        kao_se_backward(r->dx, r->dw, r->dw, r->dw, r->dw, r->dy, r->x, r->pooled, r->hidden, r->gate, r->w, r->w,
                        r->B, HW, C, R);
        timed(&r->bwd[T_SE], t);
    }
}

static void run_add(model_run *r, size_t n) {
    double t = kao_now_seconds();
    kao_add_inplace(r->y, r->x, n);
    timed(&r->fwd[T_OTHER], t);
}

/* Every op of one forward (and, training, backward) pass in the model's order. */
static void model_pass(model_run *r, const kao_arch *a, int res) {
    size_t B = (size_t)r->B;
    int H = res, Ho;
    r->act = KAO_ACT_SILU;
    run_conv(r, H, 3, a->stem_ch, 3, 2, false, false, &Ho);
    H = Ho;
    run_bn(r, B * H * H, a->stem_ch, KAO_ACT_SILU);
    for (int i = 0; i < a->num_blocks; i++) {
        const kao_block_arch *k = &a->blocks[i];
        int Hi = H;
        if (k->type == KAO_BLOCK_CN) {
            r->act = KAO_ACT_SILU;
            run_conv(r, H, k->in_ch, k->out_ch, k->kernel, k->stride, false, true, &H);
            run_bn(r, B * H * H, k->out_ch, KAO_ACT_SILU);
        } else if (k->type == KAO_BLOCK_ER) {
            r->act = KAO_ACT_SILU;
            run_conv(r, H, k->in_ch, k->mid_ch, k->kernel, k->stride, false, true, &H);
            run_bn(r, B * H * H, k->mid_ch, KAO_ACT_SILU);
            r->act = KAO_ACT_NONE;
            run_conv(r, H, k->mid_ch, k->out_ch, 1, 1, false, true, &H);
            run_bn(r, B * H * H, k->out_ch, KAO_ACT_NONE);
        } else {
            r->act = KAO_ACT_SILU;
            run_conv(r, H, k->in_ch, k->mid_ch, 1, 1, false, true, &H);
            run_bn(r, B * H * H, k->mid_ch, KAO_ACT_SILU);
            run_conv(r, H, k->mid_ch, k->mid_ch, k->kernel, k->stride, true, true, &H);
            run_bn(r, B * H * H, k->mid_ch, KAO_ACT_SILU);
            if (k->se_ch) run_se(r, H * H, k->mid_ch, k->se_ch);
            r->act = KAO_ACT_NONE;
            run_conv(r, H, k->mid_ch, k->out_ch, 1, 1, false, true, &H);
            run_bn(r, B * H * H, k->out_ch, KAO_ACT_NONE);
        }
        if (k->has_skip) run_add(r, B * Hi * Hi * k->out_ch);
    }
    r->act = KAO_ACT_SILU;
    run_conv(r, H, a->blocks[a->num_blocks - 1].out_ch, a->num_features, 1, 1, false, true, &H);
    run_bn(r, B * H * H, a->num_features, KAO_ACT_SILU);
}

static void bench_model(const char *variant, int B, int res, bool verbose) {
    kao_arch a;
    if (kao_arch_build(&a, variant, 0, 0, 512, 0.0f) != 0) {
        fprintf(stderr, "bench_ops: %s\n", kao_last_error());
        return;
    }
    size_t act = (size_t)B * (res / 2) * (res / 2) * 64, par = 4u << 20; /* generous upper bounds */
    model_run r = {.B = B};
    float **bufs[] = {&r.x, &r.y, &r.dx, &r.dy};
    for (int i = 0; i < 4; i++) *bufs[i] = uniform(act, -1, 1);
    r.w = uniform(par, -0.05f, 0.05f), r.dw = uniform(par, 0, 0);
    float **small[] = {&r.g, &r.b, &r.rm, &r.rv, &r.mean, &r.rstd, &r.pooled, &r.hidden, &r.gate};
    for (int i = 0; i < 9; i++) *small[i] = uniform((size_t)B * 2048, 0.5f, 1.0f);
    r.sums = kao_malloc(2 * 2048 * sizeof(double), "bench sums");
    for (int run = 0; run < 4; run++) {
        r.train = run / 2, r.fused = run % 2;
        model_pass(&r, &a, res); /* warm-up: workspace, page faults */
        double t = 1e30, fwd[T_KINDS], bwd[T_KINDS];
        for (int rep = 0; rep < REPS; rep++) { /* the fastest of REPS passes (the machine is shared) */
            memset(r.fwd, 0, sizeof r.fwd), memset(r.bwd, 0, sizeof r.bwd);
            double t1 = kao_now_seconds();
            model_pass(&r, &a, res);
            t1 = kao_now_seconds() - t1;
            if (t1 < t) t = t1, memcpy(fwd, r.fwd, sizeof fwd), memcpy(bwd, r.bwd, sizeof bwd);
        }
        memcpy(r.fwd, fwd, sizeof fwd), memcpy(r.bwd, bwd, sizeof bwd);

        printf("%s %dx%d batch %d %s%s: %.0f ms = %.1f img/s |", variant, res, res, B,
               r.train ? "train (BN batch stats, forward + backward)" : "inference (BN eval)",
               r.fused ? (r.train ? ", BN stats from the conv" : ", BN folded into the conv") : "", t * 1e3, B / t);
        for (int k = 0; k < T_KINDS; k++)
            printf(" %s %.0f%s", kind_names[k], r.fwd[k] * 1e3, r.train ? "" : " ms");
        if (r.train) {
            printf(" ms fwd;");
            for (int k = 0; k < T_KINDS; k++) printf(" %s %.0f", kind_names[k], r.bwd[k] * 1e3);
            printf(" ms bwd");
        }
        printf("\n");
        if (verbose) { /* per layer: one more pass, printing */
            r.verbose = true;
            model_pass(&r, &a, res);
            r.verbose = false;
        }
    }
    kao_workspace_free(&r.ws);
    for (int i = 0; i < 4; i++) free(*bufs[i]);
    for (int i = 0; i < 9; i++) free(*small[i]);
    free(r.w), free(r.dw), free(r.sums);
}

int main(int argc, char **argv) {
    int B = argc > 1 ? atoi(argv[1]) : 32;
    if (B < 1) {
        fprintf(stderr, "usage: bench_ops [batch]\n");
        return 1;
    }
    kao_rng_seed(&rng, 7, 0);
    bool model_only = argc > 2 && strncmp(argv[2], "model", 5) == 0;
    bench_model("tf_efficientnetv2_b0", B, 224, model_only && strcmp(argv[2], "model-layers") == 0);
    if (model_only) return 0;
    printf("bench_ops: tf_efficientnetv2_b0 layers at 224x224, batch %d\n", B);
    static const conv_layer convs[] = {
        {"conv_stem", 224, 3, 32, 3, 2, false},
        {"blocks.0.0.conv", 112, 32, 16, 3, 1, false},
        {"blocks.1.0.conv_exp", 112, 16, 64, 3, 2, false},
        {"blocks.1.1.conv_exp", 56, 32, 128, 3, 1, false},
        {"blocks.1.1.conv_pwl", 56, 128, 32, 1, 1, false},
        {"blocks.2.1.conv_exp", 28, 48, 192, 3, 1, false},
        {"blocks.4.1.conv_pw", 14, 112, 672, 1, 1, false},
        {"blocks.4.1.conv_pwl", 14, 672, 112, 1, 1, false},
        {"blocks.5.1.conv_pw", 7, 192, 1152, 1, 1, false},
        {"conv_head", 7, 192, 1280, 1, 1, false},
        {"blocks.3.0.conv_dw", 28, 192, 192, 3, 2, true},
        {"blocks.4.1.conv_dw", 14, 672, 672, 3, 1, true},
        {"blocks.5.1.conv_dw", 7, 1152, 1152, 3, 1, true},
    };
    kao_workspace ws = {0};
    for (size_t i = 0; i < sizeof convs / sizeof convs[0]; i++) bench_conv(&convs[i], B, &ws);
    kao_workspace_free(&ws);
    bench_batchnorm("bn1 (stem)", (size_t)B * 112 * 112, 32);
    bench_batchnorm("blocks.4.1.bn1", (size_t)B * 14 * 14, 672);
    bench_se("blocks.4.1.se", B, 14 * 14, 672, 28);
    bench_silu("silu (stem size)", (size_t)B * 112 * 112 * 32);
    return 0;
}
