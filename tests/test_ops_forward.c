/* test_ops_forward.c — the op layer's forward passes (include/kao/ops.h).
 *
 *  1. Against PyTorch/timm (tests/data/ops_reference.h5, from tools/gen_ops_reference.py): both
 *     the _ref and the fast op reproduce timm's Conv2dSame at stride 2 on odd and even sizes,
 *     static "same" padding, 1×1, depthwise 3×3/s2 and 5×5/s1, BatchNormAct2d in train mode
 *     (output and the updated running mean/var: momentum, unbiased variance) and eval mode with
 *     SiLU, SqueezeExcite and Linear. Tolerance atol = rtol = 1e-5: the reference is float64
 *     rounded to float32; kao sums at most a few hundred float32 products of O(1) values
 *     (rounding ~1e-6), while an index or padding mistake moves outputs by O(0.1).
 *  2. Every fast op against its _ref (double accumulation, the oracle) on random shapes: odd and
 *     even sizes, stride 1 and 2, k = 1, 3, 5, batch > 1, channel counts that are not multiples
 *     of 8 (vector tails), and shapes large enough to split into several blocks. Tolerance
 *     atol = rtol = 1e-5, the same reasoning.
 *     The fused convolutions (epilogue: folded BN scale/shift + SiLU, BN statistics) against the
 *     _ref convolution followed by the same arithmetic in double; kao_batchnorm_forward_train_sums
 *     against kao_batchnorm_forward_train_ref. Sums within 1e-5 of Σ|y| (resp. Σy²).
 *  3. kao_conv_shape_init against the worked values of docs/architecture.md, 'Padding'.
 *  4. BatchNorm statistics at M = 409600 rows (b0's stem at batch 32 has 401408) with a mean
 *     five times the spread: fast mean/rstd/running_var within 1e-6 relative of double.
 *  5. The vector sigmoid: SiLU and its gradient within 1e-6 relative of double over [-87, 87]. */
#include <string.h>

#include "check.h"
#include "kao/ops.h"
#include "kao/rng.h"
#include "kao/util.h"

static kao_rng rng;


/* ---- 1. PyTorch references ------------------------------------------------------------------ */

static int attr(const kao_h5_file *f, const char *group, const char *name) { return (int)ref_attr(f, group, name); }

static void torch_conv(const kao_h5_file *f, const char *group) {
    int B = attr(f, group, "B"), H = attr(f, group, "H"), W = attr(f, group, "W");
    int Ci = attr(f, group, "Ci"), Co = attr(f, group, "Co"), k = attr(f, group, "k");
    int stride = attr(f, group, "stride"), dw = attr(f, group, "depthwise");
    kao_conv_shape s;
    kao_conv_shape_init(&s, B, H, W, Ci, Co, k, stride, dw);
    size_t n_in = (size_t)B * H * W * Ci, n_out = (size_t)B * s.out_h * s.out_w * Co;
    float *inp = ref_f32(f, group, "inp", n_in);
    float *w = ref_f32(f, group, "weight", (size_t)Co * (dw ? 1 : Ci) * k * k);
    float *bias = attr(f, group, "bias") ? ref_f32(f, group, "bias", (size_t)Co) : NULL;
    float *want = ref_f32(f, group, "out", n_out), *got = check_zeros(n_out);
    char what[128];
    kao_workspace ws = {0};
    for (int fast = 0; fast < 2; fast++) {
        memset(got, 0, n_out * sizeof(float));
        if (dw) (fast ? kao_dwconv2d_forward : kao_dwconv2d_forward_ref)(got, inp, w, &s);
        else if (fast) kao_conv2d_forward(got, inp, w, bias, &s, &ws);
        else kao_conv2d_forward_ref(got, inp, w, bias, &s);
        snprintf(what, sizeof what, "torch %s %s", group, fast ? "fast" : "ref");
        CHECK_CLOSE(what, got, want, n_out, 1e-5, 1e-5);
    }
    kao_workspace_free(&ws);
    free(inp), free(w), free(bias), free(want), free(got);
}

static void torch_batchnorm(const kao_h5_file *f, const char *group) {
    int B = attr(f, group, "B"), H = attr(f, group, "H"), W = attr(f, group, "W"), C = attr(f, group, "C");
    int train = attr(f, group, "train");
    kao_act act = attr(f, group, "silu") ? KAO_ACT_SILU : KAO_ACT_NONE;
    float eps = (float)ref_attr(f, group, "eps"), momentum = (float)ref_attr(f, group, "momentum");
    size_t M = (size_t)B * H * W, n = M * C;
    float *inp = ref_f32(f, group, "inp", n), *want = ref_f32(f, group, "out", n);
    float *gamma = ref_f32(f, group, "weight", C), *beta = ref_f32(f, group, "bias", C);
    float *rm0 = ref_f32(f, group, "running_mean0", C), *rv0 = ref_f32(f, group, "running_var0", C);
    float *rm_want = ref_f32(f, group, "running_mean", C), *rv_want = ref_f32(f, group, "running_var", C);
    float *got = check_zeros(n), *mean = check_zeros(C), *rstd = check_zeros(C), *rm = check_zeros(C), *rv = check_zeros(C);
    char what[128];
    for (int fast = 0; fast < 2; fast++) {
        memcpy(rm, rm0, C * sizeof(float));
        memcpy(rv, rv0, C * sizeof(float));
        if (train)
            (fast ? kao_batchnorm_forward_train : kao_batchnorm_forward_train_ref)(
                got, mean, rstd, inp, gamma, beta, rm, rv, eps, momentum, act, M, C);
        else
            (fast ? kao_batchnorm_forward_eval : kao_batchnorm_forward_eval_ref)(got, inp, gamma, beta, rm,
                                                                                rv, eps, act, M, C);
        snprintf(what, sizeof what, "torch %s %s out", group, fast ? "fast" : "ref");
        CHECK_CLOSE(what, got, want, n, 1e-5, 1e-5);
        snprintf(what, sizeof what, "torch %s %s running_mean", group, fast ? "fast" : "ref");
        CHECK_CLOSE(what, rm, rm_want, (size_t)C, 1e-6, 1e-6);
        snprintf(what, sizeof what, "torch %s %s running_var", group, fast ? "fast" : "ref");
        CHECK_CLOSE(what, rv, rv_want, (size_t)C, 1e-6, 1e-6);
    }
    free(inp), free(want), free(gamma), free(beta), free(rm0), free(rv0), free(rm_want), free(rv_want);
    free(got), free(mean), free(rstd), free(rm), free(rv);
}

static void torch_se(const kao_h5_file *f) {
    const char *g = "se";
    int B = attr(f, g, "B"), HW = attr(f, g, "H") * attr(f, g, "W"), C = attr(f, g, "C"), R = attr(f, g, "R");
    size_t n = (size_t)B * HW * C;
    float *inp = ref_f32(f, g, "inp", n), *want = ref_f32(f, g, "out", n);
    float *wr = ref_f32(f, g, "conv_reduce.weight", (size_t)R * C), *br = ref_f32(f, g, "conv_reduce.bias", R);
    float *we = ref_f32(f, g, "conv_expand.weight", (size_t)C * R), *be = ref_f32(f, g, "conv_expand.bias", C);
    float *got = check_zeros(n), *pooled = check_zeros((size_t)B * C), *hidden = check_zeros((size_t)B * R), *gate = check_zeros((size_t)B * C);
    kao_se_forward_ref(got, pooled, hidden, gate, inp, wr, br, we, be, B, HW, C, R);
    CHECK_CLOSE("torch se ref", got, want, n, 1e-5, 1e-5);
    kao_se_forward(got, pooled, hidden, gate, inp, wr, br, we, be, B, HW, C, R);
    CHECK_CLOSE("torch se fast", got, want, n, 1e-5, 1e-5);
    free(inp), free(want), free(wr), free(br), free(we), free(be), free(got), free(pooled), free(hidden), free(gate);
}

static void torch_linear(const kao_h5_file *f) {
    const char *g = "linear";
    int B = attr(f, g, "B"), I = attr(f, g, "I"), O = attr(f, g, "O");
    float *inp = ref_f32(f, g, "inp", (size_t)B * I), *want = ref_f32(f, g, "out", (size_t)B * O);
    float *w = ref_f32(f, g, "weight", (size_t)O * I), *b = ref_f32(f, g, "bias", O), *got = check_zeros((size_t)B * O);
    kao_linear_forward_ref(got, inp, w, b, B, I, O);
    CHECK_CLOSE("torch linear ref", got, want, (size_t)B * O, 1e-5, 1e-5);
    kao_linear_forward(got, inp, w, b, B, I, O);
    CHECK_CLOSE("torch linear fast", got, want, (size_t)B * O, 1e-5, 1e-5);
    free(inp), free(want), free(w), free(b), free(got);
}

static void test_torch_reference(void) {
    kao_h5_file file, *f = &file;
    ref_open(f, "ops_reference.h5");
    const char *convs[] = {"conv_s2_odd", "conv_s2_even", "conv_s1_bias", "conv_pw", "dw_s2_even", "dw_s1_k5"};
    for (size_t i = 0; i < sizeof convs / sizeof convs[0]; i++) torch_conv(f, convs[i]);
    torch_batchnorm(f, "bn_train");
    torch_batchnorm(f, "bn_train_silu");
    torch_batchnorm(f, "bn_eval_silu");
    torch_se(f);
    torch_linear(f);
    kao_h5_close(f);
}

/* ---- 2. fast against _ref --------------------------------------------------------------------- */

static void fast_conv(int B, int H, int W, int Ci, int Co, int k, int stride, bool with_bias, kao_workspace *ws) {
    kao_conv_shape s;
    kao_conv_shape_init(&s, B, H, W, Ci, Co, k, stride, false);
    size_t n_in = (size_t)B * H * W * Ci, n_out = (size_t)B * s.out_h * s.out_w * Co;
    float scale = 1.0f / sqrtf((float)(Ci * k * k)); /* keeps outputs O(1) */
    float *inp = check_uniform(&rng, n_in, -1, 1), *w = check_uniform(&rng, (size_t)Co * Ci * k * k, -scale, scale);
    float *bias = with_bias ? check_uniform(&rng, Co, -1, 1) : NULL, *want = check_zeros(n_out), *got = check_zeros(n_out);
    kao_conv2d_forward_ref(want, inp, w, bias, &s);
    kao_conv2d_forward(got, inp, w, bias, &s, ws);
    char what[128];
    snprintf(what, sizeof what, "conv B%d %dx%d Ci%d Co%d k%d s%d bias%d", B, H, W, Ci, Co, k, stride, with_bias);
    CHECK_CLOSE(what, got, want, n_out, 1e-5, 1e-5);
    free(inp), free(w), free(bias), free(want), free(got);
}

/* The fused epilogue on conv (dw false) or depthwise conv: out = silu(y·scale + shift) and Σy, Σy². */
static void fused_conv(int B, int H, int W, int Ci, int Co, int k, int stride, bool dw, kao_workspace *ws) {
    kao_conv_shape s;
    kao_conv_shape_init(&s, B, H, W, Ci, Co, k, stride, dw);
    size_t n_in = (size_t)B * H * W * Ci, M = (size_t)B * s.out_h * s.out_w, n_out = M * Co;
    float scale_w = 1.0f / sqrtf((float)((dw ? 1 : Ci) * k * k));
    float *inp = check_uniform(&rng, n_in, -1, 1), *w = check_uniform(&rng, (size_t)Co * (dw ? 1 : Ci) * k * k, -scale_w, scale_w);
    float *scale = check_uniform(&rng, Co, -2, 2), *shift = check_uniform(&rng, Co, -1, 1), *y = check_zeros(n_out), *want = check_zeros(n_out);
    float *got = check_zeros(n_out);
    if (dw) kao_dwconv2d_forward_ref(y, inp, w, &s);
    else kao_conv2d_forward_ref(y, inp, w, NULL, &s);
    double want_sums[2][512] = {{0}}, abs_sum[512] = {0}, *sums = kao_malloc(2 * (size_t)Co * sizeof(double), "sums");
    KAO_ASSERT(Co <= 512);
    for (size_t m = 0; m < M; m++)
        for (int c = 0; c < Co; c++) {
            double v = y[m * Co + c];
            want_sums[0][c] += v, want_sums[1][c] += v * v, abs_sum[c] += fabs(v);
            want[m * Co + c] = (float)(v * scale[c] + shift[c]);
        }
    kao_silu_forward_ref(want, want, n_out);
    char what[128];
    snprintf(what, sizeof what, "fused %s B%d %dx%d Ci%d Co%d k%d s%d", dw ? "dwconv" : "conv", B, H, W, Ci, Co, k, stride);
    kao_conv_epilogue ep = {.scale = scale, .shift = shift, .act = KAO_ACT_SILU, .sums = sums};
    if (dw) kao_dwconv2d_forward_fused(got, inp, w, &ep, &s);
    else kao_conv2d_forward_fused(got, inp, w, &ep, &s, ws);
    CHECK_CLOSE(what, got, want, n_out, 1e-5, 1e-5);
    int bad = -1;
    for (int c = 0; c < Co; c++)
        if (!(fabs(sums[c] - want_sums[0][c]) <= 1e-5 * abs_sum[c] + 1e-9) ||
            !(fabs(sums[Co + c] - want_sums[1][c]) <= 1e-5 * want_sums[1][c] + 1e-9))
            bad = c;
    CHECK(bad < 0, "%s: sums of channel %d: %.9g %.9g, expected %.9g %.9g", what, bad, sums[bad < 0 ? 0 : bad],
          sums[Co + (bad < 0 ? 0 : bad)], want_sums[0][bad < 0 ? 0 : bad], want_sums[1][bad < 0 ? 0 : bad]);
    /* statistics only (training): the output is the plain convolution */
    kao_conv_epilogue stats = {.sums = sums};
    if (dw) kao_dwconv2d_forward_fused(got, inp, w, &stats, &s);
    else kao_conv2d_forward_fused(got, inp, w, &stats, &s, ws);
    CHECK_CLOSE(what, got, y, n_out, 1e-5, 1e-5);
    CHECK(fabs(sums[Co - 1] - want_sums[0][Co - 1]) <= 1e-5 * abs_sum[Co - 1] + 1e-9, "%s: stats-only sums", what);
    free(inp), free(w), free(scale), free(shift), free(y), free(want), free(got), free(sums);
}

static void fast_dwconv(int B, int H, int W, int C, int k, int stride) {
    kao_conv_shape s;
    kao_conv_shape_init(&s, B, H, W, C, C, k, stride, true);
    size_t n_in = (size_t)B * H * W * C, n_out = (size_t)B * s.out_h * s.out_w * C;
    float *inp = check_uniform(&rng, n_in, -1, 1), *w = check_uniform(&rng, (size_t)C * k * k, -0.5f, 0.5f);
    float *want = check_zeros(n_out), *got = check_zeros(n_out);
    kao_dwconv2d_forward_ref(want, inp, w, &s);
    kao_dwconv2d_forward(got, inp, w, &s);
    char what[128];
    snprintf(what, sizeof what, "dwconv B%d %dx%d C%d k%d s%d", B, H, W, C, k, stride);
    CHECK_CLOSE(what, got, want, n_out, 1e-5, 1e-5);
    free(inp), free(w), free(want), free(got);
}

/* Per-channel offsets in [-2, 2] and spreads in [0.5, 3]: statistics that differ by channel. */
static float *bn_input(size_t M, int C) {
    float *x = check_uniform(&rng, M * C, -1, 1), *off = check_uniform(&rng, C, -2, 2), *sc = check_uniform(&rng, C, 0.5f, 3);
    for (size_t m = 0; m < M; m++)
        for (int c = 0; c < C; c++) x[m * C + c] = x[m * C + c] * sc[c] + off[c];
    free(off), free(sc);
    return x;
}

static void fast_batchnorm(size_t M, int C, kao_act act) {
    size_t n = M * C;
    float *inp = bn_input(M, C), *gamma = check_uniform(&rng, C, -1.5f, 1.5f), *beta = check_uniform(&rng, C, -1, 1);
    float *rm = check_uniform(&rng, C, -0.5f, 0.5f), *rv = check_uniform(&rng, C, 0.5f, 2);
    float *rm2 = kao_malloc(C * sizeof(float), "rm"), *rv2 = kao_malloc(C * sizeof(float), "rv");
    float *rm0 = kao_malloc(C * sizeof(float), "rm"), *rv0 = kao_malloc(C * sizeof(float), "rv");
    memcpy(rm2, rm, C * sizeof(float)), memcpy(rm0, rm, C * sizeof(float));
    memcpy(rv2, rv, C * sizeof(float)), memcpy(rv0, rv, C * sizeof(float));
    float *want = check_zeros(n), *got = check_zeros(n), *mean = check_zeros(C), *rstd = check_zeros(C), *mean2 = check_zeros(C), *rstd2 = check_zeros(C);
    char what[128];
    snprintf(what, sizeof what, "batchnorm eval M%zu C%d act%d", M, C, (int)act);
    kao_batchnorm_forward_eval_ref(want, inp, gamma, beta, rm, rv, 1e-3f, act, M, C);
    kao_batchnorm_forward_eval(got, inp, gamma, beta, rm, rv, 1e-3f, act, M, C);
    CHECK_CLOSE(what, got, want, n, 1e-5, 1e-5);
    memcpy(got, inp, n * sizeof(float)); /* in place */
    kao_batchnorm_forward_eval(got, got, gamma, beta, rm, rv, 1e-3f, act, M, C);
    CHECK_CLOSE(what, got, want, n, 1e-5, 1e-5);

    snprintf(what, sizeof what, "batchnorm train M%zu C%d act%d", M, C, (int)act);
    kao_batchnorm_forward_train_ref(want, mean, rstd, inp, gamma, beta, rm, rv, 1e-3f, 0.1f, act, M, C);
    kao_batchnorm_forward_train(got, mean2, rstd2, inp, gamma, beta, rm2, rv2, 1e-3f, 0.1f, act, M, C);
    CHECK_CLOSE(what, got, want, n, 1e-5, 1e-5);
    CHECK_CLOSE(what, mean2, mean, (size_t)C, 1e-6, 1e-6);
    CHECK_CLOSE(what, rstd2, rstd, (size_t)C, 1e-6, 1e-6);
    CHECK_CLOSE(what, rm2, rm, (size_t)C, 1e-6, 1e-6);
    CHECK_CLOSE(what, rv2, rv, (size_t)C, 1e-6, 1e-6);
    /* from sums, as a fused convolution gathers them */
    double *sums = kao_calloc(2 * (size_t)C, sizeof(double), "sums");
    for (size_t m = 0; m < M; m++)
        for (int c = 0; c < C; c++) sums[c] += inp[m * C + c], sums[C + c] += (double)inp[m * C + c] * inp[m * C + c];
    memcpy(rm2, rm0, C * sizeof(float)), memcpy(rv2, rv0, C * sizeof(float));
    kao_batchnorm_forward_train_sums(got, mean2, rstd2, inp, sums, gamma, beta, rm2, rv2, 1e-3f, 0.1f, act, M, C);
    CHECK_CLOSE(what, got, want, n, 1e-5, 1e-5);
    CHECK_CLOSE(what, mean2, mean, (size_t)C, 1e-6, 1e-6);
    CHECK_CLOSE(what, rstd2, rstd, (size_t)C, 1e-6, 1e-6);
    CHECK_CLOSE(what, rm2, rm, (size_t)C, 1e-6, 1e-6);
    CHECK_CLOSE(what, rv2, rv, (size_t)C, 1e-6, 1e-6);
    free(sums);
    /* frozen statistics: running buffers NULL are left alone */
    kao_batchnorm_forward_train(got, mean2, rstd2, inp, gamma, beta, NULL, NULL, 1e-3f, 0.1f, act, M, C);
    CHECK_CLOSE(what, got, want, n, 1e-5, 1e-5);
    free(inp), free(gamma), free(beta), free(rm), free(rv), free(rm2), free(rv2), free(rm0), free(rv0);
    free(want), free(got), free(mean), free(rstd), free(mean2), free(rstd2);
}

static void fast_se(int B, int HW, int C, int R) {
    size_t n = (size_t)B * HW * C;
    float *inp = check_uniform(&rng, n, -1, 1), *wr = check_uniform(&rng, (size_t)R * C, -0.5f, 0.5f), *br = check_uniform(&rng, R, -0.5f, 0.5f);
    float *we = check_uniform(&rng, (size_t)C * R, -0.5f, 0.5f), *be = check_uniform(&rng, C, -0.5f, 0.5f);
    float *want = check_zeros(n), *got = check_zeros(n);
    float *p1 = check_zeros((size_t)B * C), *h1 = check_zeros((size_t)B * R), *g1 = check_zeros((size_t)B * C);
    float *p2 = check_zeros((size_t)B * C), *h2 = check_zeros((size_t)B * R), *g2 = check_zeros((size_t)B * C);
    kao_se_forward_ref(want, p1, h1, g1, inp, wr, br, we, be, B, HW, C, R);
    kao_se_forward(got, p2, h2, g2, inp, wr, br, we, be, B, HW, C, R);
    char what[128];
    snprintf(what, sizeof what, "se B%d HW%d C%d R%d", B, HW, C, R);
    CHECK_CLOSE(what, got, want, n, 1e-5, 1e-5);
    CHECK_CLOSE(what, p2, p1, (size_t)B * C, 1e-5, 1e-5);
    CHECK_CLOSE(what, h2, h1, (size_t)B * R, 1e-5, 1e-5);
    CHECK_CLOSE(what, g2, g1, (size_t)B * C, 1e-5, 1e-5);
    memcpy(got, inp, n * sizeof(float)); /* in place */
    kao_se_forward(got, p2, h2, g2, got, wr, br, we, be, B, HW, C, R);
    CHECK_CLOSE(what, got, want, n, 1e-5, 1e-5);
    free(inp), free(wr), free(br), free(we), free(be), free(want), free(got);
    free(p1), free(h1), free(g1), free(p2), free(h2), free(g2);
}

static void fast_linear(int B, int I, int O, bool with_bias) {
    float *inp = check_uniform(&rng, (size_t)B * I, -1, 1), *w = check_uniform(&rng, (size_t)O * I, -0.3f, 0.3f);
    float *bias = with_bias ? check_uniform(&rng, O, -1, 1) : NULL, *want = check_zeros((size_t)B * O), *got = check_zeros((size_t)B * O);
    kao_linear_forward_ref(want, inp, w, bias, B, I, O);
    kao_linear_forward(got, inp, w, bias, B, I, O);
    CHECK_CLOSE("linear", got, want, (size_t)B * O, 1e-5, 1e-5);
    free(inp), free(w), free(bias), free(want), free(got);
}

static void test_small_ops(void) {
    int B = 3, HW = 13, C = 11;
    size_t n = (size_t)B * HW * C;
    float *x = check_uniform(&rng, n, -1, 1), *y = check_uniform(&rng, n, -1, 1), *pooled = check_zeros((size_t)B * C);
    float *want = check_zeros(n), *mask = check_uniform(&rng, B, 0, 2);
    kao_avgpool_forward(pooled, x, B, HW, C);
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            double sum = 0.0;
            for (int p = 0; p < HW; p++) sum += x[((size_t)b * HW + p) * C + c];
            want[(size_t)b * C + c] = (float)(sum / HW);
        }
    CHECK_CLOSE("avgpool", pooled, want, (size_t)B * C, 1e-6, 1e-6);
    for (size_t i = 0; i < n; i++) want[i] = x[i] + y[i];
    kao_add_inplace(x, y, n);
    CHECK_CLOSE("add_inplace", x, want, n, 1e-30, 0);
    for (size_t i = 0; i < n; i++) want[i] = x[i] * mask[i / (HW * C)];
    kao_scale_rows(x, mask, B, (size_t)HW * C);
    CHECK_CLOSE("scale_rows", x, want, n, 1e-30, 0);
    free(x), free(y), free(pooled), free(want), free(mask);
}

static void test_fast_vs_ref(void) {
    static const struct { int B, H, W, Ci, Co, k, stride, bias; } convs[] = {
        {2, 7, 9, 5, 6, 1, 1, 0},    {2, 25, 25, 5, 3, 1, 1, 1}, /* 1×1 direct */
        {2, 5, 7, 9, 200, 1, 1, 1},                              /* 1×1, > 192 out: GEMM path */
        {1, 5, 7, 200, 24, 1, 1, 1},                             /* 1×1, > 192 in, few pixels: GEMM */
        {2, 7, 6, 5, 6, 1, 2, 0},                                /* 1×1 stride 2: im2col path */
        {3, 8, 8, 3, 13, 3, 2, 0},   {2, 9, 11, 3, 5, 3, 2, 1},  /* stem-like, even and odd */
        {2, 6, 5, 13, 7, 3, 1, 0},   {2, 20, 20, 13, 9, 3, 1, 0}, /* several im2col blocks */
        {1, 1, 3, 4, 6, 3, 1, 0},    {2, 7, 5, 6, 4, 5, 2, 0},   /* one row; k = 5 */
    };
    kao_workspace ws = {0};
    for (size_t i = 0; i < sizeof convs / sizeof convs[0]; i++)
        fast_conv(convs[i].B, convs[i].H, convs[i].W, convs[i].Ci, convs[i].Co, convs[i].k, convs[i].stride,
                  convs[i].bias, &ws);
    fused_conv(2, 7, 9, 5, 6, 1, 1, false, &ws);     /* direct 1×1, channel tail */
    fused_conv(2, 5, 7, 9, 200, 1, 1, false, &ws);   /* GEMM path, columns split in two */
    fused_conv(1, 5, 7, 200, 24, 1, 1, false, &ws);  /* GEMM path for a large reduction */
    fused_conv(2, 9, 11, 3, 21, 3, 2, false, &ws);   /* k×k stride 2, odd sizes */
    fused_conv(1, 12, 10, 7, 40, 3, 1, false, &ws);
    fused_conv(2, 9, 8, 13, 13, 3, 2, true, &ws);    /* depthwise */
    fused_conv(2, 6, 6, 40, 40, 3, 1, true, &ws);
    kao_workspace_free(&ws);
    static const struct { int B, H, W, C, k, stride; } dws[] = {
        {2, 7, 9, 5, 3, 1}, {2, 8, 8, 13, 3, 2}, {2, 9, 7, 40, 3, 2}, {1, 6, 6, 67, 3, 1},
        {2, 7, 6, 9, 5, 1}, {2, 5, 5, 37, 5, 2}, {1, 1, 1, 16, 3, 1}, {2, 14, 14, 96, 3, 2},
    };
    for (size_t i = 0; i < sizeof dws / sizeof dws[0]; i++)
        fast_dwconv(dws[i].B, dws[i].H, dws[i].W, dws[i].C, dws[i].k, dws[i].stride);
    fast_batchnorm(37, 5, KAO_ACT_NONE);
    fast_batchnorm(37, 5, KAO_ACT_SILU);
    fast_batchnorm(300, 13, KAO_ACT_SILU);
    fast_batchnorm(9000, 3, KAO_ACT_SILU);  /* several row blocks */
    fast_batchnorm(20, 4100, KAO_ACT_NONE); /* rows wider than a block */
    fast_se(3, 7, 20, 5);
    fast_se(2, 1, 9, 3);
    fast_se(4, 49, 40, 10);
    fast_linear(5, 37, 11, true);
    fast_linear(1, 8, 3, false);
    test_small_ops();
}

/* ---- 3. padding ----------------------------------------------------------------------------- */

static void test_shape_init(void) {
    kao_conv_shape s;
    kao_conv_shape_init(&s, 1, 224, 224, 3, 32, 3, 2, false); /* 224 → 112, pad 0 before */
    CHECK(s.out_h == 112 && s.out_w == 112 && s.pad_top == 0 && s.pad_left == 0, "224/s2: %d %d", s.out_h, s.pad_top);
    kao_conv_shape_init(&s, 1, 15, 15, 8, 8, 3, 2, true); /* odd 15 pads 1 and 1 */
    CHECK(s.out_h == 8 && s.pad_top == 1 && s.depthwise, "15/s2: %d %d", s.out_h, s.pad_top);
    kao_conv_shape_init(&s, 1, 14, 7, 8, 8, 3, 1, false); /* stride 1, k3: symmetric 1 */
    CHECK(s.out_h == 14 && s.out_w == 7 && s.pad_top == 1 && s.pad_left == 1, "s1: %d", s.pad_top);
    kao_conv_shape_init(&s, 1, 7, 7, 8, 8, 1, 1, false);
    CHECK(s.out_h == 7 && s.pad_top == 0, "1x1: %d", s.pad_top);
    kao_conv_shape_init(&s, 1, 14, 14, 8, 8, 3, 2, false); /* b0 blocks.5.0.conv_dw: 14 → 7 */
    CHECK(s.out_h == 7 && s.pad_top == 0, "14/s2: %d %d", s.out_h, s.pad_top);
}

/* ---- 4. BatchNorm statistics precision -------------------------------------------------------- */

static void test_bn_precision(void) {
    size_t M = 409600;
    int C = 3;
    float *inp = check_uniform(&rng, M * C, -1, 1), gamma[3] = {1, 1, 1}, beta[3] = {0, 0, 0};
    for (size_t i = 0; i < M * C; i++) inp[i] = 5.0f + 0.5f * inp[i]; /* mean 5, spread ±0.5 */
    float *out = check_zeros(M * C), mean[2][3], rstd[2][3], rm[2][3] = {{0}}, rv[2][3] = {{1, 1, 1}, {1, 1, 1}};
    kao_batchnorm_forward_train_ref(out, mean[0], rstd[0], inp, gamma, beta, rm[0], rv[0], 1e-5f, 0.1f,
                                    KAO_ACT_NONE, M, C);
    kao_batchnorm_forward_train(out, mean[1], rstd[1], inp, gamma, beta, rm[1], rv[1], 1e-5f, 0.1f,
                                KAO_ACT_NONE, M, C);
    CHECK_CLOSE("bn precision mean", mean[1], mean[0], 3, 0, 1e-6);
    CHECK_CLOSE("bn precision rstd", rstd[1], rstd[0], 3, 0, 1e-6);
    CHECK_CLOSE("bn precision running_var", rv[1], rv[0], 3, 0, 1e-6);
    free(inp), free(out);
}

/* ---- 5. sigmoid accuracy -------------------------------------------------------------------- */

static void test_silu_accuracy(void) {
    size_t n = 1 << 18;
    float *x = check_zeros(n), *want = check_zeros(n), *got = check_zeros(n), *dout = check_uniform(&rng, n, 0.5f, 1.5f);
    for (size_t i = 0; i < n; i++) x[i] = -87.0f + 174.0f * (float)i / (float)(n - 1);
    x[n / 2] = 0.0f, x[n / 2 + 1] = 1e-30f, x[n / 2 + 2] = -1e-30f;
    kao_silu_forward_ref(want, x, n);
    kao_silu_forward(got, x, n);
    CHECK_CLOSE("silu [-87, 87]", got, want, n, 1e-38, 1e-6);
    /* silu' crosses zero near x = -1.28: there 1e-7 absolute (float rounding of 1 + x(1-s)) */
    kao_silu_backward_ref(want, dout, x, n);
    kao_silu_backward(got, dout, x, n);
    CHECK_CLOSE("silu' [-87, 87]", got, want, n, 1e-7, 1e-6);
    /* beyond ±87: silu(x) is x to 1e-6 above, a signed zero (|silu| < 1e-35 in truth) below */
    float far[4] = {-1000.0f, -100.0f, 100.0f, 1000.0f}, far_out[4];
    kao_silu_forward(far_out, far, 4);
    CHECK(far_out[0] == 0.0f && far_out[1] == 0.0f && fabsf(far_out[2] - 100.0f) <= 1e-4f &&
              fabsf(far_out[3] - 1000.0f) <= 1e-3f,
          "silu far: %g %g %g %g", far_out[0], far_out[1], far_out[2], far_out[3]);
    free(x), free(want), free(got), free(dout);
}

int main(void) {
    kao_rng_seed(&rng, 1234, 0);
    test_torch_reference();
    test_shape_init();
    test_fast_vs_ref();
    test_bn_precision();
    test_silu_accuracy();
    return check_summary("test_ops_forward");
}
