/* test_backend_ops.c — every op of the backend table that takes maps (backend.h: conv_bn in its
 * three BN modes, convolution and BatchNorm backward, squeeze-excite, pooling, residual add, drop
 * path, the input's conversions), op by op, with bf16 maps, against a reference backend given the
 * same inputs:
 *  1. on any machine, the detached CPU backend's bf16 emulation (src/backend_bf16.c) against the CPU
 *     in fp32. Each op's outputs must be within bf16's rounding of fp32's: its input maps and
 *     convolution weights rounded to 2⁻⁹ relative, its output maps once more, the sums in fp32.
 *     Bound: |got − want| <= tol·(max|want| + |want|) with tol 1e-2; measured, every tensor is
 *     within 4e-3, and 1e-3 fails (a single rounding to bf16 is up to 2⁻⁹ ≈ 2e-3).
 *  2. with --gpu (ctest's test_backend_ops_gpu), the CUDA backend in bf16 against that emulation:
 *     the same rounding points, other summation orders (cuDNN, cuBLAS, the column reductions), so
 *     an element may differ by one bf16 step (2⁻⁸ of its size) where a sum fell on the other side
 *     of a rounding boundary, and little more: the same 1e-2. And each GPU op runs twice for
 *     bit-identical results. Without a GPU this part exits 77 (skipped, never passed).
 * Every tensor an op touches is compared after it: outputs, accumulated gradients, in-place maps,
 * running statistics. The whole network's checks are backend_parity.h's. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "kao/backend.h"
#include "kao/bf16.h"
#ifdef KAO_HAVE_CUDA
#include "kao/cuda.h"
#endif

enum { MAX_ARGS = 16 };

/* The tensors of one op run on one backend, in the order the op's runner made them: each is filled
 * from a stream seeded by its position, so both backends get the same values. */
typedef struct {
    kao_backend *be;
    void *dev[MAX_ARGS];
    size_t n[MAX_ARGS];
    bool map[MAX_ARGS];
    const char *name[MAX_ARGS];
    int count;
} op_args;

static float *host_values(int index, size_t n, float lo, float hi) {
    float *x = kao_malloc(n * sizeof(float) + 1, "values");
    kao_rng r;
    kao_rng_seed(&r, 4242, (uint64_t)index);
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * kao_rng_uniform(&r);
    return x;
}

/* A tensor of n elements on the backend, uniform in [lo, hi] (lo = hi: that constant). */
static void *arg(op_args *a, const char *name, bool map, size_t n, float lo, float hi) {
    KAO_ASSERT(a->count < MAX_ARGS, "too many arguments");
    kao_backend *be = a->be;
    float *host = host_values(a->count, n, lo, hi);
    float *floats = be->alloc(be, n * sizeof(float) + 1, "floats");
    be->to_backend(be, floats, host, n * sizeof(float));
    void *dev = floats;
    if (map) {
        dev = be->alloc(be, n * be->map_bytes + 1, "map");
        be->map_from_floats(be, dev, floats, n);
        be->sync(be);
        be->release(be, floats);
    }
    free(host);
    int k = a->count++;
    a->dev[k] = dev, a->n[k] = n, a->map[k] = map, a->name[k] = name;
    return dev;
}

/* Every tensor on the host as floats (out[k], malloc'd), and the backend's memory released. */
static void fetch_all(op_args *a, float **out) {
    kao_backend *be = a->be;
    for (int k = 0; k < a->count; k++) {
        out[k] = kao_malloc(a->n[k] * sizeof(float) + 1, "fetched");
        if (a->map[k]) kao_map_to_host(be, out[k], a->dev[k], a->n[k]);
        else be->to_host(be, out[k], a->dev[k], a->n[k] * sizeof(float));
        be->release(be, a->dev[k]);
    }
}

typedef struct {
    const char *name;
    kao_conv_shape s;
    kao_bn_mode mode;
    kao_act act;
} op_case;

typedef void (*op_runner)(op_args *a, const op_case *c);

static size_t in_n(const kao_conv_shape *s) { return (size_t)s->batch * s->in_h * s->in_w * s->in_c; }
static size_t out_n(const kao_conv_shape *s) { return (size_t)s->batch * s->out_h * s->out_w * s->out_c; }
static size_t rows(const kao_conv_shape *s) { return (size_t)s->batch * s->out_h * s->out_w; }
static size_t weight_n(const kao_conv_shape *s) {
    return (size_t)s->out_c * (s->depthwise ? 1 : s->in_c) * s->kernel * s->kernel;
}

/* BN tensors with γ around 1, β small, running statistics of a plausible layer. */
static kao_bn_tensors bn_args(op_args *a, int C) {
    kao_bn_tensors bn = {.eps = 1e-3f, .momentum = 0.1f};
    bn.gamma = arg(a, "gamma", false, (size_t)C, 0.5f, 1.5f);
    bn.beta = arg(a, "beta", false, (size_t)C, -0.2f, 0.2f);
    bn.running_mean = arg(a, "running_mean", false, (size_t)C, -0.3f, 0.3f);
    bn.running_var = arg(a, "running_var", false, (size_t)C, 0.5f, 2.0f);
    return bn;
}

static void run_conv_bn(op_args *a, const op_case *c) {
    const kao_conv_shape *s = &c->s;
    kao_map *inp = arg(a, "inp", true, in_n(s), -1, 1);
    float *w = arg(a, "weight", false, weight_n(s), -0.3f, 0.3f);
    kao_bn_tensors bn = bn_args(a, s->out_c);
    kao_map *out = arg(a, "out", true, out_n(s), 0, 0);
    kao_map *conv_out = arg(a, "conv_out", true, out_n(s), 0, 0);
    float *mean = arg(a, "save_mean", false, (size_t)s->out_c, 0, 0);
    float *rstd = arg(a, "save_rstd", false, (size_t)s->out_c, 0, 0);
    a->be->conv_bn(a->be, out, conv_out, mean, rstd, inp, w, s, &bn, c->mode, c->act);
}

static void run_conv_backward(op_args *a, const op_case *c) {
    const kao_conv_shape *s = &c->s;
    kao_map *inp = arg(a, "inp", true, in_n(s), -1, 1);
    kao_map *dout = arg(a, "dout", true, out_n(s), -1, 1);
    float *w = arg(a, "weight", false, weight_n(s), -0.3f, 0.3f);
    float *dw = arg(a, "dweight +=", false, weight_n(s), -0.1f, 0.1f);
    kao_map *dinp = arg(a, "dinp", true, in_n(s), 0, 0);
    a->be->conv_backward(a->be, dinp, dw, dout, inp, w, s);
}

/* The saved statistics need not be the input's own: both backends compute the same function of
 * them, and arbitrary ones keep the backward's projections from cancelling exactly. */
static void run_bn_backward(op_args *a, const op_case *c) {
    const kao_conv_shape *s = &c->s;
    int C = s->out_c;
    kao_map *inp = arg(a, "inp", true, out_n(s), -2, 2);
    kao_bn_tensors bn = bn_args(a, C);
    float *mean = arg(a, "save_mean", false, (size_t)C, -0.3f, 0.3f);
    float *rstd = arg(a, "save_rstd", false, (size_t)C, 0.5f, 2.0f);
    kao_map *d = arg(a, "d (in place)", true, out_n(s), -1, 1);
    float *dgamma = arg(a, "dgamma +=", false, (size_t)C, -0.1f, 0.1f);
    float *dbeta = arg(a, "dbeta +=", false, (size_t)C, -0.1f, 0.1f);
    a->be->bn_backward(a->be, d, dgamma, dbeta, inp, mean, rstd, &bn, c->mode, c->act, rows(s), C);
}

/* Squeeze-excite over the output of c->s (B, HW, C) with R = C/4 hidden units. */
static void run_se(op_args *a, const op_case *c) {
    const kao_conv_shape *s = &c->s;
    int B = s->batch, HW = s->out_h * s->out_w, C = s->out_c, R = C / 4;
    kao_map *inp = arg(a, "inp", true, out_n(s), -2, 2);
    float *wr = arg(a, "w_reduce", false, (size_t)R * C, -0.3f, 0.3f);
    float *br = arg(a, "b_reduce", false, (size_t)R, -0.1f, 0.1f);
    float *we = arg(a, "w_expand", false, (size_t)C * R, -0.3f, 0.3f);
    float *bex = arg(a, "b_expand", false, (size_t)C, -0.1f, 0.1f);
    kao_map *out = arg(a, "out", true, out_n(s), 0, 0);
    float *pooled = arg(a, "pooled", false, (size_t)B * C, 0, 0);
    float *hidden = arg(a, "hidden", false, (size_t)B * R, 0, 0);
    float *gate = arg(a, "gate", false, (size_t)B * C, 0, 0);
    kao_map *dout = arg(a, "dout", true, out_n(s), -1, 1);
    kao_map *dinp = arg(a, "dinp", true, out_n(s), 0, 0);
    float *dwr = arg(a, "dw_reduce +=", false, (size_t)R * C, 0, 0);
    float *dbr = arg(a, "db_reduce +=", false, (size_t)R, 0, 0);
    float *dwe = arg(a, "dw_expand +=", false, (size_t)C * R, 0, 0);
    float *dbe = arg(a, "db_expand +=", false, (size_t)C, 0, 0);
    kao_backend *be = a->be;
    be->se_forward(be, out, pooled, hidden, gate, inp, wr, br, we, bex, B, HW, C, R);
    be->se_backward(be, dinp, dwr, dbr, dwe, dbe, dout, inp, pooled, hidden, gate, wr, we, B, HW, C, R);
}

/* Pooling forward and backward, residual add, drop-path rows, the input's conversions. */
static void run_misc(op_args *a, const op_case *c) {
    const kao_conv_shape *s = &c->s;
    int B = s->batch, HW = s->out_h * s->out_w, C = s->out_c;
    size_t n = out_n(s);
    kao_backend *be = a->be;
    kao_map *x = arg(a, "avgpool inp", true, n, -2, 2);
    float *pooled = arg(a, "avgpool out", false, (size_t)B * C, 0, 0);
    float *dpooled = arg(a, "avgpool dout", false, (size_t)B * C, -1, 1);
    kao_map *dx = arg(a, "avgpool dinp", true, n, 0, 0);
    kao_map *sum = arg(a, "add_inplace out", true, n, -1, 1);
    kao_map *y = arg(a, "add_inplace x", true, n, -1, 1);
    kao_map *rows_x = arg(a, "scale_rows x", true, n, -1, 1);
    float *mask = arg(a, "scale_rows mask", false, (size_t)B, 0, 0);
    float *floats = arg(a, "map_to_floats out", false, n, 0, 0);
    be->avgpool_forward(be, pooled, x, B, HW, C);
    be->avgpool_backward(be, dx, dpooled, B, HW, C);
    be->add_inplace(be, sum, y, n);
    float keep[2] = {0.0f, 1.0f / 0.8f}; /* one dropped sample, one kept */
    be->to_backend(be, mask, keep, sizeof keep);
    be->scale_rows(be, rows_x, mask, B, n / (size_t)B);
    be->map_to_floats(be, floats, y, n);
    be->sync(be); /* keep[] is on the stack */
}

/* The runner on both backends (and twice on the tested one where bit-identity is asked), then
 * every tensor compared: |test − ref| <= tol·max|ref| + tol·|ref|. */
static void check_op(const char *what, op_runner run, const op_case *c, kao_backend *test, kao_backend *ref,
                     double tol, bool twice) {
    op_args at = {.be = test}, ar = {.be = ref}, a2 = {.be = test};
    float *got[MAX_ARGS], *want[MAX_ARGS], *again[MAX_ARGS];
    run(&at, c);
    fetch_all(&at, got);
    run(&ar, c);
    fetch_all(&ar, want);
    if (twice) {
        run(&a2, c);
        fetch_all(&a2, again);
    }
    for (int k = 0; k < at.count; k++) {
        char name[200];
        snprintf(name, sizeof name, "%s %s: %s", what, c->name, at.name[k]);
        double max = 0;
        for (size_t i = 0; i < at.n[k]; i++) max = fmax(max, fabs(want[k][i]));
        CHECK_CLOSE(name, got[k], want[k], at.n[k], tol * max + 1e-30, tol);
        if (twice) CHECK(memcmp(got[k], again[k], at.n[k] * sizeof(float)) == 0, "%s: two runs differ", name);
        free(got[k]), free(want[k]);
        if (twice) free(again[k]);
    }
}

/* Every op on shapes that reach every path: a k×k stride-2 convolution with asymmetric TF padding
 * (cuDNN with a padded copy), a 1×1 stride-1 one (a GEMM), a 1×1 stride-2 one (cuDNN), depthwise
 * 3×3 stride 2 and 5×5 stride 1; each BN mode with and without SiLU. */
static void check_all(const char *what, kao_backend *test, kao_backend *ref, double tol, bool twice) {
    struct {
        const char *name;
        int H, W, Ci, Co, k, stride;
        bool dw;
    } shapes[] = {{"3x3/2 conv", 17, 14, 8, 16, 3, 2, false}, {"1x1 conv", 9, 7, 16, 24, 1, 1, false},
                  {"1x1/2 conv", 9, 7, 16, 8, 1, 2, false},   {"3x3/2 depthwise", 12, 11, 16, 16, 3, 2, true},
                  {"5x5 depthwise", 8, 9, 24, 24, 5, 1, true}};
    const kao_bn_mode modes[3] = {KAO_BN_TRAIN, KAO_BN_EVAL, KAO_BN_FROZEN};
    const char *mode_names[3] = {"train", "eval", "frozen"};
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        op_case c = {.act = KAO_ACT_SILU};
        kao_conv_shape_init(&c.s, 3, shapes[i].H, shapes[i].W, shapes[i].Ci, shapes[i].Co, shapes[i].k,
                            shapes[i].stride, shapes[i].dw);
        char name[96];
        for (int m = 0; m < 3; m++) {
            c.mode = modes[m];
            c.act = m == 1 ? KAO_ACT_NONE : KAO_ACT_SILU;
            snprintf(name, sizeof name, "%s, conv_bn %s", shapes[i].name, mode_names[m]);
            c.name = name;
            check_op(what, run_conv_bn, &c, test, ref, tol, twice);
        }
        snprintf(name, sizeof name, "%s, backward", shapes[i].name);
        c.name = name;
        check_op(what, run_conv_backward, &c, test, ref, tol, twice);
    }
    op_case c = {.name = "13x11x32 maps", .act = KAO_ACT_SILU};
    kao_conv_shape_init(&c.s, 2, 13, 11, 32, 32, 1, 1, false);
    for (int m = 0; m < 3; m += 2) {
        c.mode = modes[m];
        c.act = m ? KAO_ACT_NONE : KAO_ACT_SILU;
        check_op(what, run_bn_backward, &c, test, ref, tol, twice);
    }
    check_op(what, run_se, &c, test, ref, tol, twice);
    check_op(what, run_misc, &c, test, ref, tol, twice);
}

/* No argument: the emulation against fp32. --gpu: the GPU's bf16 against the emulation; exits 77
 * (ctest's skip) without CUDA or without a usable GPU, saying why. */
int main(int argc, char **argv) {
    bool on_gpu = argc > 1 && !strcmp(argv[1], "--gpu");
    kao_backend *test = NULL;
    if (on_gpu) {
#ifdef KAO_HAVE_CUDA
        char why[256];
        if (!kao_cuda_available(why, sizeof why)) {
            printf("SKIPPED: no GPU (%s)\n", why);
            return 77;
        }
        test = kao_backend_cuda(0);
        KAO_ASSERT(test->set_precision(test, KAO_PRECISION_BF16) == KAO_OK, "%s", kao_last_error());
#else
        puts("SKIPPED: built without CUDA (configure with -DKAO_CUDA=ON)");
        return 77;
#endif
    }
    kao_backend *emulation = kao_backend_cpu_detached();
    KAO_ASSERT(emulation->set_precision(emulation, KAO_PRECISION_BF16) == KAO_OK, "%s", kao_last_error());
    if (test) {
        printf("%s in bf16 against the emulation\n", test->description);
        check_all("GPU bf16 vs emulation", test, emulation, 1e-2, true);
        kao_backend_free(test);
    } else {
        kao_backend *cpu = kao_backend_cpu();
        printf("bf16 emulation against the CPU in fp32\n");
        check_all("emulation vs fp32", emulation, cpu, 1e-2, false);
        kao_backend_free(cpu);
    }
    kao_backend_free(emulation);
    return check_summary("test_backend_ops");
}
