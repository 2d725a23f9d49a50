/* backend_parity.h — the checks test_cuda_network.c (the CUDA backend) and test_backend_copies.c
 * (the CPU backend with memory of its own) run: the whole network, the training step,
 * checkpoints, embeddings and ArcFace's edges on the backend under test (`gpu`) against the CPU
 * backend (`cpu`, the reference: test_network.c checks it against timm and PyTorch), with every
 * computation of the backend under test done twice, by two trainers from the same state, and
 * required to be bit-identical (a race or an unordered sum shows as results that move).
 *
 * Models: tiny b0 (FusedMBConv with and without skip, MBConv with SE) and tiny s (ConvBnAct,
 * EdgeResidual), with drop path, at odd sizes (asymmetric TF padding), and full-size
 * tf_efficientnetv2_b0 at 224×224. Weights are kao's initialisation with BatchNorm's affine and
 * running statistics randomised, so that no BN is the identity.
 *
 * Tolerances, |got − cpu| <= tol·max|cpu| + tol·|cpu| per tensor:
 *  - forward activations and embeddings, tol 1e-4: both are fp32; a GPU sums in other orders
 *    (cuDNN's algorithms, cuBLAS, the column reductions), ~1e-6 relative per layer, growing
 *    through ~20 layers and their BatchNorms. A wrong index, padding or layout moves values by
 *    O(max), far outside. With TF32 math (test_forward's tol argument) the products' operands
 *    are rounded to 2⁻¹¹ relative, ~500× fp32's rounding: 2e-2.
 *  - gradients, tol 2e-3: the batch-statistics BN backward subtracts nearly equal terms, which
 *    amplifies the forward's rounding; the same bound test_network.c states against PyTorch. The
 *    scale is the largest gradient of the tensor's module (a BN's weight and bias together): the
 *    shift of a BN whose output reaches a batch-statistics BN only through linear convolutions
 *    (a block's last BN where no skip follows) has a gradient that is 0 in exact arithmetic, so
 *    its own scale is rounding noise (1.5e-6 against its weight's 16 on tiny b0), which another
 *    summation order replaces entirely.
 *  - parameters and W after optimizer steps: within 5e-2 of the largest distance the steps
 *    moved their module's parameters (a wrong element, sign or step is off by about that
 *    distance); measured up to 5.4e-3 of it on the CPU emulator (tests/cuda_emu). AdamW's first
 *    steps are ≈ lr·sign(g) where |g| ≫ eps, so the trainers here take eps = 1e-3 (trainer_cfg):
 *    the gradients above that are rounding noise (~1e-6) then move their parameters by ~1e-3·lr
 *    instead of ±lr of random sign; elements with |g| near eps take steps that follow g's value,
 *    so the gradients' differences reach the parameters, a small part of the distance moved.
 *  - BN statistics: after one forward, 1e-4·max|s| + 1e-6; after steps, which they follow through
 *    the moved parameters, 5e-2 of the largest distance they moved + 1e-6 (measured: 4.4e-4).
 *    The optimizers' moments, 4e-3 of their own scale: twice the gradients' 2e-3, as the second
 *    moment is g².
 *  - what only moves data (a checkpoint written by one backend and read by the other): exact.
 * bf16 mixed precision (run_bf16_checks) against the CPU in fp32, measured on the CPU's emulation
 * (backend_bf16.c), which rounds where a GPU's bf16 kernels do:
 *  - forward maps and embeddings, 3e-2: each stored map is rounded to 2⁻⁹ relative, ~20 maps in a
 *    row; measured up to 1.3e-2 on the tiny models.
 *  - gradients with frozen BN, 5e-2 tensor by tensor (measured 2.3e-2); with batch statistics the
 *    whole gradient's direction instead, cosine >= 0.95 (check_direction says why).
 *  - the loss, 2e-2 relative (measured 4e-3); rows correct, ±2.
 *  - parameters and BN statistics after 3 steps, 0.2 of the tensor's largest value + 6e-2: AdamW's
 *    first steps move a parameter by ~lr wherever |g| ≫ eps, so bf16's gradient differences
 *    (check_direction) flip the steps of small elements, by up to 2·lr per step (the head's lr
 *    is 1e-2), and the BN statistics follow the moved parameters. The moments (gradient-sized noise) are not compared; two runs
 *    must still be bit-identical. */
#ifndef KAO_TEST_BACKEND_PARITY_H
#define KAO_TEST_BACKEND_PARITY_H

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "kao/checkpoint.h"
#include "kao/embedder.h"
#include "kao/embeddings.h"
#include "kao/train_step.h"
#include "kao/util.h"

static kao_backend *cpu, *gpu; /* the reference and the backend under test */

/* One precision's tolerances (the header comment says why): forward maps and embeddings,
 * gradients, parameters and BN statistics after steps (relative to each tensor's largest value,
 * plus an absolute part), parameters after steps relative to how far the steps moved their
 * module (0: by the previous instead), the optimizers' moments (0: not compared), the loss (relative), how many
 * rows' nearest class may differ, and the least cosine between the whole gradients with
 * batch-statistics BN (0: every tensor compared instead). */
typedef struct {
    double forward, grad, state, state_abs, movement, moments, loss;
    int correct;
    double grad_cosine;
} tolerances;
static const tolerances fp32_tol = {1e-4, 2e-3, 1e-4, 1e-6, 5e-2, 4e-3, 1e-4, 1, 0};
static const tolerances bf16_tol = {3e-2, 5e-2, 0.2, 6e-2, 0, 0, 2e-2, 2, 0.95};
static tolerances limits = fp32_tol; /* the current precision's */
/* The backend under test runs the CPU's own ops (test_backend_copies.c): every result must then
 * be bit-equal to the CPU's, whatever tolerance a check states. */
static bool expect_exact;
static kao_rng rng;

/* ---- models ------------------------------------------------------------------------------ */

typedef struct {
    const char *name, *variant;
    double width, depth;
    int emb;
    float drop_path;
} model_spec;

static const model_spec tiny_b0 = {"tiny b0", "tf_efficientnetv2_b0", 0.25, 0.5, 16, 0.2f};
static const model_spec tiny_s = {"tiny s", "tf_efficientnetv2_s", 0.25, 0.5, 16, 0.2f};
static const model_spec full_b0 = {"b0", "tf_efficientnetv2_b0", 0, 0, 512, 0.2f};

static bool ends_with(const char *s, const char *tail) {
    size_t n = strlen(s), k = strlen(tail);
    return n >= k && !strcmp(s + n - k, tail);
}

/* kao's initialisation (seed 1), then BN γ ~ U(0.5, 1.5), β ~ U(−0.2, 0.2), running mean
 * ~ U(−0.5, 0.5), running var ~ U(0.5, 2), from a fixed stream: the same model every call. */
static void make_model(kao_model *m, const model_spec *spec) {
    kao_arch arch;
    KAO_ASSERT(kao_arch_build(&arch, spec->variant, spec->width, spec->depth, spec->emb, spec->drop_path) == KAO_OK,
               "%s", kao_last_error());
    kao_model_create(m, &arch);
    kao_model_init(m, 1);
    kao_rng r;
    kao_rng_seed(&r, 77, 1);
    for (int i = 0; i < m->num_tensors; i++) {
        const kao_tensor *t = &m->tensors[i];
        float *x = kao_tensor_data(m, i);
        float lo = 0, hi = 0;
        if (ends_with(t->name, "running_mean")) lo = -0.5f, hi = 0.5f;
        else if (ends_with(t->name, "running_var")) lo = 0.5f, hi = 2.0f;
        else if (strstr(t->name, "bn") && ends_with(t->name, ".weight")) lo = 0.5f, hi = 1.5f;
        else if (strstr(t->name, "bn") && ends_with(t->name, ".bias")) lo = -0.2f, hi = 0.2f;
        else continue;
        for (size_t k = 0; k < t->numel; k++) x[k] = lo + (hi - lo) * kao_rng_uniform(&r);
    }
}

static float *random_input(int B, int H, int W) {
    size_t n = (size_t)B * H * W * 3;
    float *x = kao_malloc(n * sizeof(float), "input");
    for (size_t i = 0; i < n; i++) x[i] = kao_rng_normal(&rng);
    return x;
}

/* ---- comparisons --------------------------------------------------------------------------- */

static double max_abs(const float *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fabs(x[i]) > m ? fabs(x[i]) : m;
    return m;
}

static void check_same(const char *what, const void *a, const void *b, size_t bytes) {
    CHECK(memcmp(a, b, bytes) == 0, "%s: not bit-identical", what);
}

static void check_near(const char *what, const float *got, const float *want, size_t n, double tol) {
    double atol = tol * max_abs(want, n);
    if (expect_exact) check_same(what, got, want, n * sizeof(float));
    else CHECK_CLOSE(what, got, want, n, atol > 0 ? atol : 1e-30, tol);
}

/* got within rtol·max|want| + atol of want; bit-equal where that bound is 0. */
static void check_values(const char *what, const float *got, const float *want, size_t n, double rtol, double atol) {
    double bound = rtol * max_abs(want, n) + atol;
    if (bound == 0 || expect_exact) check_same(what, got, want, n * sizeof(float));
    else CHECK_CLOSE(what, got, want, n, bound, 0.0);
}

/* A tensor of the backend under test, on the host (malloc'd). */
static float *fetch(const float *dev, size_t n) {
    float *h = kao_malloc(n * sizeof(float), "fetched tensor");
    gpu->to_host(gpu, h, dev, n * sizeof(float));
    return h;
}

/* The largest |a − b| over n values. */
static double max_distance(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

/* The largest |a − b| (b NULL: |a|) over the parameters of tensor i's module (the names up to the
 * last '.'); a and b are laid out as the model's parameters (a gradient, parameters at two times). */
static double module_max(const kao_model *m, int i, const float *a, const float *b) {
    const char *name = m->tensors[i].name, *dot = strrchr(name, '.');
    size_t prefix = dot ? (size_t)(dot - name) + 1 : strlen(name);
    double scale = 0;
    for (int k = 0; k < m->num_tensors; k++) {
        const kao_tensor *t = &m->tensors[k];
        if (t->role != KAO_ROLE_PARAM || strncmp(t->name, name, prefix) != 0 || strchr(t->name + prefix, '.')) continue;
        double v = b ? max_distance(a + t->offset, b + t->offset, t->numel) : max_abs(a + t->offset, t->numel);
        scale = v > scale ? v : scale;
    }
    return scale;
}

/* A gradient of the backend under test within tol·scale + tol·|cpu| of the CPU's. */
static void check_gradient(const char *what, const float *dev, const float *want, size_t n, double scale, double tol) {
    float *got = fetch(dev, n);
    if (expect_exact) check_same(what, got, want, n * sizeof(float));
    else CHECK_CLOSE(what, got, want, n, scale * tol > 0 ? scale * tol : 1e-30, tol);
    free(got);
}

static void check_tensor(const char *what, const float *dev, const float *want, size_t n, double tol) {
    float *got = fetch(dev, n);
    check_near(what, got, want, n, tol);
    free(got);
}

/* A map of the backend under test against the same map of the CPU's. */
static void check_map(const char *what, const kao_map *dev, const kao_map *want_map, size_t n, double tol) {
    float *got = kao_malloc(n * sizeof(float), "map"), *want = kao_malloc(n * sizeof(float), "map");
    kao_map_to_host(gpu, got, dev, n);
    kao_map_to_host(cpu, want, want_map, n);
    check_near(what, got, want, n, tol);
    free(got), free(want);
}

/* ---- forward --------------------------------------------------------------------------------- */

/* Every block's output and the embedding of the eval forward (training plan, so that every
 * intermediate is kept), then the embeddings of the eval plan through kao_embedder, twice. */
static void test_forward(const model_spec *spec, int B, int H, int W, double tol) {
    kao_model m;
    make_model(&m, spec);
    float *x = random_input(B, H, W);
    kao_net_weights wc, wg;
    kao_net_weights_create(&wc, &m, cpu);
    kao_net_weights_create(&wg, &m, gpu);
    kao_acts ac, ag;
    kao_acts_create(&ac, &m, B, H, W, true, cpu);
    kao_acts_create(&ag, &m, B, H, W, true, gpu);
    float *xg = gpu->alloc(gpu, (size_t)B * H * W * 3 * sizeof(float), "input");
    gpu->to_backend(gpu, xg, x, (size_t)B * H * W * 3 * sizeof(float));
    kao_forward_eval(&m, &wc, &ac, x);
    kao_forward_eval(&m, &wg, &ag, xg);
    char what[160];
    const kao_arch *arch = &m.arch;
    printf("%s forward, %s, batch %d at %dx%d\n", gpu->name, spec->name, B, H, W);
    snprintf(what, sizeof what, "%s forward: stem", spec->name);
    check_map(what, ag.stem_out, ac.stem_out, (size_t)B * ac.stem_conv.out_h * ac.stem_conv.out_w * arch->stem_ch,
                 tol);
    for (int i = 0; i < arch->num_blocks; i++) {
        const kao_block_acts *b = &ac.blocks[i];
        snprintf(what, sizeof what, "%s forward: block %d", spec->name, i);
        check_map(what, ag.blocks[i].out, b->out, (size_t)B * b->out_h * b->out_w * arch->blocks[i].out_ch, tol);
    }
    size_t E = (size_t)arch->embedding_dim;
    snprintf(what, sizeof what, "%s forward: embedding", spec->name);
    check_tensor(what, ag.embedding, ac.embedding, (size_t)B * E, tol);

    float *emb[2];
    for (int run = 0; run < 2; run++) {
        emb[run] = kao_malloc((size_t)B * E * sizeof(float), "embeddings");
        kao_embedder e;
        kao_embedder_init(&e, &m, &wg, H, W);
        kao_embedder_run(&e, emb[run], x, B);
        kao_embedder_free(&e);
    }
    snprintf(what, sizeof what, "%s embedder (eval plan)", spec->name);
    check_near(what, emb[0], ac.embedding, (size_t)B * E, tol);
    check_same(what, emb[0], emb[1], (size_t)B * E * sizeof(float));

    free(emb[0]), free(emb[1]);
    gpu->release(gpu, xg);
    kao_acts_free(&ac), kao_acts_free(&ag);
    kao_net_weights_free(&wc), kao_net_weights_free(&wg);
    kao_model_free(&m);
    free(x);
}

/* ---- training -------------------------------------------------------------------------------- */

/* AdamW on the backbone, a second group for the head, SGD with momentum on W, a cosine schedule
 * with warm-up and gradient clipping: every part of the step. */
static kao_trainer_cfg trainer_cfg(kao_train_options options) {
    kao_trainer_cfg c;
    memset(&c, 0, sizeof c);
    c.model_optim = kao_optim_default_cfg(KAO_OPTIM_ADAMW, 1e-3);
    c.model_optim.eps = 1e-3; /* noise-sized gradients take no full steps (the header says why) */
    c.model_optim.num_groups = 2;
    c.model_optim.groups[0].exclude_no_decay = true;
    c.model_optim.groups[1] = c.model_optim.groups[0];
    c.model_optim.groups[1].lr = 1e-2;
    c.arcface_optim = kao_optim_default_cfg(KAO_OPTIM_SGD, 1e-2);
    c.arcface_optim.momentum = 0.9;
    c.arcface = kao_arcface_default_cfg();
    c.schedule = (kao_schedule){.type = KAO_SCHEDULE_COSINE, .warmup_steps = 1, .warmup_start_factor = 0.5,
                                .total_steps = 10, .min_factor = 0};
    c.grad_clip = 5.0;
    c.options = options;
    c.seed = 11;
    return c;
}

/* One backend's trainer with its own copy of the model. */
typedef struct {
    kao_model m;
    kao_trainer t;
} rig;

/* A trainer's parameters, BN statistics and W at some moment, to compare how far later steps moved
 * them. */
typedef struct {
    float *params, *buffers, *W;
} rig_start;

static rig_start rig_start_take(const rig *r) {
    rig_start s;
    s.params = kao_malloc(r->m.num_params * sizeof(float), "starting parameters");
    s.buffers = kao_malloc(r->m.num_buffers * sizeof(float), "starting BN statistics");
    s.W = kao_malloc(r->t.arcface_optim.numel * sizeof(float), "starting W");
    memcpy(s.params, r->m.params, r->m.num_params * sizeof(float));
    memcpy(s.buffers, r->m.buffers, r->m.num_buffers * sizeof(float));
    memcpy(s.W, r->t.arcface_W, r->t.arcface_optim.numel * sizeof(float));
    return s;
}

static void rig_start_free(rig_start *s) { free(s->params), free(s->buffers), free(s->W); }


static void rig_create(rig *r, const model_spec *spec, kao_backend *be, int classes, const kao_trainer_cfg *cfg, int B,
                       int H, int W) {
    make_model(&r->m, spec);
    KAO_ASSERT(kao_trainer_create(&r->t, &r->m, be, classes, cfg, B, H, W) == KAO_OK, "%s", kao_last_error());
}

static void rig_free(rig *r) {
    kao_trainer_free(&r->t);
    kao_model_free(&r->m);
}

/* The state a checkpoint holds (parameters, BN statistics, W, the optimizers' moments, the step
 * counts), on the host: g is brought there with kao_trainer_to_host. */
static void check_state(const char *what, rig *g, rig *c, const rig_start *from, double rtol, double atol) {
    kao_trainer_to_host(&g->t);
    char name[512];
    for (int i = 0; i < c->m.num_tensors; i++) {
        const kao_tensor *t = &c->m.tensors[i];
        snprintf(name, sizeof name, "%s: %s", what, t->name);
        const float *got = kao_tensor_data(&g->m, i), *want = kao_tensor_data(&c->m, i);
        if (from && t->role == KAO_ROLE_PARAM) {
            double moved = module_max(&c->m, i, c->m.params, from->params);
            check_values(name, got, want, t->numel, 0.0, limits.movement * moved + 1e-7);
        } else if (from) { /* BN statistics, which follow the moved parameters through the forward */
            double moved = max_distance(want, from->buffers + t->offset, t->numel);
            check_values(name, got, want, t->numel, 0.0, limits.movement * moved + atol);
        } else {
            check_values(name, got, want, t->numel, rtol, atol);
        }
    }
    snprintf(name, sizeof name, "%s: ArcFace W", what);
    size_t nW = c->t.arcface_optim.numel;
    if (from) {
        double moved = max_distance(c->t.arcface_W, from->W, nW);
        check_values(name, g->t.arcface_W, c->t.arcface_W, nW, 0.0, limits.movement * moved + 1e-7);
    } else {
        check_values(name, g->t.arcface_W, c->t.arcface_W, nW, rtol, atol);
    }
    const kao_optim *og[2] = {&g->t.optim, &g->t.arcface_optim}, *oc[2] = {&c->t.optim, &c->t.arcface_optim};
    for (int k = 0; k < 2; k++)
        for (int s = 0; s < kao_optim_num_states(oc[k]); s++) {
            snprintf(name, sizeof name, "%s: optimizer %d %s", what, k, kao_optim_state_name(oc[k], s));
            if ((rtol == 0 && atol == 0) || limits.moments > 0)
                check_values(name, kao_optim_state(og[k], s), kao_optim_state(oc[k], s), oc[k]->numel,
                             rtol ? limits.moments : 0, 0);
        }
    CHECK(g->t.step == c->t.step, "%s: step %lld vs %lld", what, (long long)g->t.step, (long long)c->t.step);
    snprintf(name, sizeof name, "%s: optimizer step counts", what);
    check_same(name, g->t.optim.steps, c->t.optim.steps, (size_t)c->t.optim.num_tensors * sizeof(int64_t));
    snprintf(name, sizeof name, "%s: num_batches_tracked", what);
    check_same(name, g->m.bn_batches_tracked, c->m.bn_batches_tracked, (size_t)c->m.num_bn * sizeof(int64_t));
}

/* Two trainers on the backend under test, from the same state, must agree bit for bit. */
static void check_identical(const char *what, rig *a, rig *b) {
    kao_trainer_to_host(&a->t);
    kao_trainer_to_host(&b->t);
    char name[512];
    snprintf(name, sizeof name, "%s: parameters of two runs", what);
    check_same(name, a->m.params, b->m.params, a->m.num_params * sizeof(float));
    snprintf(name, sizeof name, "%s: BN statistics of two runs", what);
    check_same(name, a->m.buffers, b->m.buffers, a->m.num_buffers * sizeof(float));
    snprintf(name, sizeof name, "%s: W of two runs", what);
    check_same(name, a->t.arcface_W, b->t.arcface_W, a->t.arcface_optim.numel * sizeof(float));
    for (int k = 0; k < kao_optim_num_states(&a->t.optim); k++) {
        snprintf(name, sizeof name, "%s: optimizer %s of two runs", what, kao_optim_state_name(&a->t.optim, k));
        check_same(name, kao_optim_state(&a->t.optim, k), kao_optim_state(&b->t.optim, k),
                   a->t.optim.numel * sizeof(float));
    }
}

/* bf16 with batch-statistics BN: the cosine between the whole parameter gradients. Each BN backward
 * keeps only what its batch mean and x̂ projection leave of its incoming gradient, so bf16's
 * rounding of the maps (2⁻⁹) is amplified in the small remainders, as fp32's is in the 2e-3 above:
 * tensor by tensor the two precisions' gradients then differ by up to ~20% of the largest
 * gradient (measured on the CPU emulation), while the direction stays (cosine 0.98–0.99 on the
 * tiny models; a wrong index or layout gives ~0). W's gradient follows the embeddings, whose ~1%
 * differences become logit differences of ~0.6 at ArcFace's scale of 64. */
static void check_direction(const char *what, const float *dev, const float *want, size_t n) {
    float *got = fetch(dev, n);
    double dot = 0, gg = 0, ww = 0;
    for (size_t i = 0; i < n; i++) {
        dot += (double)got[i] * want[i];
        gg += (double)got[i] * got[i];
        ww += (double)want[i] * want[i];
    }
    double cosine = dot / sqrt(gg * ww);
    printf("%s: cosine %.6f\n", what, cosine);
    CHECK(cosine >= limits.grad_cosine, "%s: cosine %.6f < %.2f", what, cosine, limits.grad_cosine);
    free(got);
}

/* One step's gradients (every tensor, W, the input), then 3 full steps, on the CPU and twice on
 * the backend under test. */
static void test_training(const model_spec *spec, const char *variant, kao_train_options options, int B, int H,
                          int W, int classes) {
    char what[160];
    snprintf(what, sizeof what, "%s training (%s)", spec->name, variant);
    printf("%s %s, batch %d at %dx%d, %d classes\n", gpu->name, what, B, H, W, classes);
    kao_trainer_cfg cfg = trainer_cfg(options);
    rig c, g1, g2;
    rig_create(&c, spec, cpu, classes, &cfg, B, H, W);
    rig_create(&g1, spec, gpu, classes, &cfg, B, H, W);
    rig_create(&g2, spec, gpu, classes, &cfg, B, H, W);
    float *x = random_input(B, H, W);
    int *labels = kao_malloc((size_t)B * sizeof(int), "labels");
    for (int b = 0; b < B; b++) labels[b] = (int)kao_rng_below(&rng, (uint32_t)(classes - 1)); /* one class unseen */
    size_t nx = (size_t)B * H * W * 3;
    bool want_dx = options.frozen_units == 0;
    float *dx_c = want_dx ? kao_malloc(nx * sizeof(float), "dx") : NULL;
    float *dx_g = want_dx ? kao_malloc(nx * sizeof(float), "dx") : NULL;
    kao_step_stats sc, sg;
    float loss_c = kao_trainer_gradients(&c.t, dx_c, x, labels, B, &sc);
    float loss_g = kao_trainer_gradients(&g1.t, dx_g, x, labels, B, &sg);
    CHECK(fabsf(loss_g - loss_c) <= (expect_exact ? 0 : limits.loss * fabsf(loss_c) + 1e-5), "%s: loss %.7g vs CPU %.7g",
          what, loss_g, loss_c);
    /* A row whose two best cosines are within rounding of each other may pick the other class. */
    CHECK(abs(sg.correct - sc.correct) <= (expect_exact ? 0 : limits.correct), "%s: %d rows correct vs CPU %d", what, sg.correct,
          sc.correct);
    char name[512];
    bool by_direction = limits.grad_cosine > 0 && !options.freeze_bn;
    if (by_direction) {
        snprintf(name, sizeof name, "%s: parameter gradients", what);
        check_direction(name, g1.t.grads, c.t.grads, c.m.num_params);
        snprintf(name, sizeof name, "%s: gradient of W", what);
        check_direction(name, g1.t.dW, c.t.dW, c.t.arcface_optim.numel);
    } else {
        for (int i = 0; i < c.m.num_tensors; i++) {
            const kao_tensor *t = &c.m.tensors[i];
            if (t->role != KAO_ROLE_PARAM) continue;
            snprintf(name, sizeof name, "%s: gradient of %s", what, t->name);
            check_gradient(name, g1.t.grads + t->offset, c.t.grads + t->offset, t->numel,
                           module_max(&c.m, i, c.t.grads, NULL), limits.grad);
        }
        snprintf(name, sizeof name, "%s: gradient of W", what);
        check_tensor(name, g1.t.dW, c.t.dW, c.t.arcface_optim.numel, limits.grad);
    }
    if (want_dx && !by_direction) {
        snprintf(name, sizeof name, "%s: gradient of the input", what);
        check_near(name, dx_g, dx_c, nx, limits.grad);
    }
    char when[200];
    snprintf(when, sizeof when, "%s, after the gradients", what);
    check_state(when, &g1, &c, NULL, limits.state, limits.state_abs); /* the BN statistics one forward moved */

    kao_trainer_gradients(&g2.t, NULL, x, labels, B, NULL);
    rig_start from = rig_start_take(&c);
    for (int s = 0; s < 3; s++) {
        for (int b = 0; b < B; b++) labels[b] = (int)kao_rng_below(&rng, (uint32_t)classes);
        kao_trainer_step(&c.t, NULL, x, labels, B);
        kao_trainer_step(&g1.t, NULL, x, labels, B);
        kao_trainer_step(&g2.t, NULL, x, labels, B);
    }
    snprintf(when, sizeof when, "%s, after 3 steps", what);
    check_state(when, &g1, &c, limits.movement > 0 ? &from : NULL, limits.state, limits.state_abs);
    check_identical(when, &g1, &g2);
    rig_start_free(&from);
    rig_free(&c), rig_free(&g1), rig_free(&g2);
    free(x), free(labels), free(dx_c), free(dx_g);
}

/* ---- checkpoints across backends ------------------------------------------------------------- */

/* CPU → checkpoint → backend under test: the restored state is the CPU's exactly; both go on for
 * 2 steps and agree; backend → checkpoint → CPU: again exact. */
static void test_checkpoint_interchange(void) {
    const int B = 6, H = 35, W = 33, classes = 9;
    kao_train_options none = {0};
    kao_trainer_cfg cfg = trainer_cfg(none);
    rig c, g, c2;
    rig_create(&c, &tiny_b0, cpu, classes, &cfg, B, H, W);
    rig_create(&g, &tiny_b0, gpu, classes, &cfg, B, H, W);
    rig_create(&c2, &tiny_b0, cpu, classes, &cfg, B, H, W);
    float *x = random_input(B, H, W);
    int labels[6] = {0, 3, 3, 8, 1, 5};
    kao_trainer_step(&c.t, NULL, x, labels, B);

    char dir[] = "/tmp/kao_test_backend_XXXXXX", path[256];
    KAO_ASSERT(mkdtemp(dir), "mkdtemp");
    snprintf(path, sizeof path, "%s/ckpt.h5", dir);
    char *names[9] = {"s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9"};
    kao_checkpoint_info info = {.step = c.t.step, .config_text = (char *)"", .classes = names, .num_classes = 9};
    printf("%s checkpoints: CPU → %s → CPU\n", gpu->name, gpu->name);
    CHECK(kao_checkpoint_save(path, &c.t, &info) == KAO_OK, "CPU checkpoint: %s", kao_last_error());
    CHECK(kao_checkpoint_restore(&g.t, path) == KAO_OK, "restore: %s", kao_last_error());
    check_state("checkpoint CPU → backend", &g, &c, NULL, 0.0, 0.0);
    rig_start from = rig_start_take(&c);
    for (int s = 0; s < 2; s++) {
        kao_trainer_step(&c.t, NULL, x, labels, B);
        kao_trainer_step(&g.t, NULL, x, labels, B);
    }
    check_state("CPU and backend, 2 steps after the checkpoint", &g, &c, limits.movement > 0 ? &from : NULL,
                limits.state, limits.state_abs);
    rig_start_free(&from);
    info.step = g.t.step;
    CHECK(kao_checkpoint_save(path, &g.t, &info) == KAO_OK, "checkpoint: %s", kao_last_error());
    CHECK(kao_checkpoint_restore(&c2.t, path) == KAO_OK, "CPU restore: %s", kao_last_error());
    check_state("checkpoint backend → CPU", &g, &c2, NULL, 0.0, 0.0);
    unlink(path);
    rmdir(dir);
    rig_free(&c), rig_free(&g), rig_free(&c2);
    free(x);
}

/* ---- kao embed's path: PNG files (ORL faces, 92×112, resized), a full batch and a short one ---- */

static void test_embed_images(void) {
    const char *root = getenv("KAO_SOURCE_DIR");
    char folder[1024];
    snprintf(folder, sizeof folder, "%s/data/orl/s1", root ? root : ".");
    char *inputs[1] = {folder};
    char **paths;
    int count;
    if (kao_collect_images(&paths, &count, inputs, 1, false)) {
        CHECK(0, "test images: %s", kao_last_error());
        return;
    }
    kao_model m;
    make_model(&m, &tiny_b0);
    int E = m.arch.embedding_dim;
    float *want = kao_malloc((size_t)count * E * sizeof(float), "embeddings");
    float *got = kao_malloc((size_t)count * E * sizeof(float), "embeddings");
    int batch = count > 2 ? count - 1 : 1; /* a full batch, then a short one */
    const kao_input_norm norm = kao_imagenet_norm();
    const kao_image_options *image = &KAO_IMAGE_OPTIONS_DEFAULT;
    CHECK(kao_embed_images(want, &m, cpu, paths, count, 64, 56, &norm, image, batch, false) == KAO_OK, "%s",
          kao_last_error());
    CHECK(kao_embed_images(got, &m, gpu, paths, count, 64, 56, &norm, image, batch, false) == KAO_OK, "%s",
          kao_last_error());
    printf("%s embed: %d images in batches of %d\n", gpu->name, count, batch);
    check_near("kao_embed_images", got, want, (size_t)count * E, limits.forward);
    free(want), free(got);
    kao_model_free(&m);
    kao_free_paths(paths, count);
}

/* ---- ArcFace at its edges, through the backend ----------------------------------------------- */

/* Rows whose cosine with their class is 1 (the class's own column) and −1, a huge and a tiny
 * embedding, a zero row; and a scale of 1000 (logits up to ±1000, where an unshifted softmax
 * overflows). The loss and every gradient must be finite and close to the CPU's (which follows
 * the same edge rules, arcface.h). */
static void test_arcface_edges(void) {
    enum { B = 6, E = 8, C = 5 };
    int labels[B] = {0, 1, 2, 3, 4, 0};
    float W[E * C], emb[B * E];
    for (int i = 0; i < E * C; i++) W[i] = kao_rng_normal(&rng);
    for (int e = 0; e < E; e++) {
        emb[0 * E + e] = W[e * C + 0];                  /* cos = 1 */
        emb[1 * E + e] = -3.0f * W[e * C + 1];          /* cos = −1 */
        emb[2 * E + e] = 1e30f * W[e * C + 4];          /* huge */
        emb[3 * E + e] = 1e-30f * kao_rng_normal(&rng); /* tiny */
        emb[4 * E + e] = 0.0f;                          /* zero */
        emb[5 * E + e] = kao_rng_normal(&rng);
    }
    const double scales[2] = {64, 1000};
    for (int k = 0; k < 2; k++) {
        kao_arcface_cfg cfg = kao_arcface_default_cfg();
        cfg.scale = scales[k];
        float dW_c[E * C] = {0}, demb_c[B * E];
        void *ac = cpu->arcface_create(cpu, B, E, C);
        float loss_c = cpu->arcface_forward(cpu, ac, emb, W, labels, B, E, C, &cfg);
        cpu->arcface_backward(cpu, demb_c, dW_c, ac, labels, B, E, C, &cfg);
        cpu->arcface_free(cpu, ac);

        float *dev_W = gpu->alloc(gpu, sizeof W, "W"), *dev_emb = gpu->alloc(gpu, sizeof emb, "emb");
        float *dev_dW = gpu->alloc(gpu, sizeof W, "dW"), *dev_demb = gpu->alloc(gpu, sizeof emb, "d_emb");
        int *dev_labels = gpu->alloc(gpu, sizeof labels, "labels");
        gpu->to_backend(gpu, dev_W, W, sizeof W);
        gpu->to_backend(gpu, dev_emb, emb, sizeof emb);
        gpu->to_backend(gpu, dev_labels, labels, sizeof labels);
        void *ag = gpu->arcface_create(gpu, B, E, C);
        float loss_g = gpu->arcface_forward(gpu, ag, dev_emb, dev_W, dev_labels, B, E, C, &cfg);
        gpu->arcface_backward(gpu, dev_demb, dev_dW, ag, dev_labels, B, E, C, &cfg);
        float *demb_g = fetch(dev_demb, B * E), *dW_g = fetch(dev_dW, E * C);
        gpu->arcface_free(gpu, ag);

        bool finite = isfinite(loss_g);
        for (int i = 0; i < B * E; i++) finite &= isfinite(demb_g[i]) != 0;
        for (int i = 0; i < E * C; i++) finite &= isfinite(dW_g[i]) != 0;
        printf("%s arcface edges, scale %g: loss %.6g (CPU %.6g)\n", gpu->name, scales[k], loss_g, loss_c);
        CHECK(finite, "arcface edges, scale %g: a non-finite loss or gradient", scales[k]);
        CHECK(fabsf(loss_g - loss_c) <= 1e-4f * fabsf(loss_c) + 1e-4f, "arcface edges, scale %g: loss %.7g vs %.7g",
              scales[k], loss_g, loss_c);
        char what[96];
        snprintf(what, sizeof what, "arcface edges, scale %g: dW", scales[k]);
        check_near(what, dW_g, dW_c, E * C, 1e-3);
        /* Row by row: the zero and tiny rows' gradients are huge (the clamped norm), the huge
         * row's ~1e-30; one scale for all would hide the others. Row 0's (cos = 1: ŵ − cos·ê = 0)
         * is 0 in exact arithmetic: both must be rounding noise, far below the scale/|e| of a
         * row's gradient terms. */
        double norm0 = 0;
        for (int e = 0; e < E; e++) norm0 += (double)emb[e] * emb[e];
        double bound = 1e-4 * scales[k] / sqrt(norm0);
        CHECK(max_abs(demb_g, E) <= bound && max_abs(demb_c, E) <= bound,
              "arcface edges, scale %g: d_emb row 0 is %g (CPU %g), not within %g of 0", scales[k],
              max_abs(demb_g, E), max_abs(demb_c, E), bound);
        for (int b = 1; b < B; b++) {
            snprintf(what, sizeof what, "arcface edges, scale %g: d_emb row %d", scales[k], b);
            check_near(what, demb_g + b * E, demb_c + b * E, E, 1e-3);
        }
        void *bufs[] = {dev_W, dev_emb, dev_dW, dev_demb, dev_labels};
        for (int i = 0; i < 5; i++) gpu->release(gpu, bufs[i]);
        free(demb_g), free(dW_g);
    }
}

/* Every check above: the tiny models' forward in fp32 and (tf32: a GPU under test) with TF32 math,
 * their training, and the rest. b0_size > 0 adds the full-size tf_efficientnetv2_b0 (every channel
 * count of the real network) at b0_size × b0_size: forward in fp32 and with TF32 math, and
 * training — at 224 on a GPU; the CPU emulator (tests/cuda_emu) takes a smaller size to stay
 * quick. */
static void run_parity_checks(int b0_size, bool tf32) {
    const int S = b0_size;
    test_forward(&tiny_b0, 3, 35, 33, 1e-4);
    test_forward(&tiny_s, 2, 41, 35, 1e-4);
    if (S > 0) test_forward(&full_b0, 2, S, S, 1e-4);
    if (tf32) { /* TF32 tensor-core math (train.precision = tf32), then back to fp32 for the rest */
        KAO_ASSERT(gpu->set_precision(gpu, KAO_PRECISION_TF32) == KAO_OK, "%s", kao_last_error());
        test_forward(&tiny_b0, 3, 35, 33, 2e-2);
        if (S > 0) test_forward(&full_b0, 2, S, S, 2e-2);
        KAO_ASSERT(gpu->set_precision(gpu, KAO_PRECISION_FP32) == KAO_OK, "%s", kao_last_error());
    }
    kao_train_options plain = {0}, frozen_bn = {.freeze_bn = true}, late_units = {.frozen_units = 3};
    test_training(&tiny_b0, "all units", plain, 6, 35, 33, 9);
    test_training(&tiny_b0, "frozen BN", frozen_bn, 6, 35, 33, 9);
    test_training(&tiny_b0, "first 3 units frozen", late_units, 6, 35, 33, 9);
    test_training(&tiny_s, "all units", plain, 4, 41, 35, 7);
    if (S > 0) test_training(&full_b0, "all units", plain, 8, S, S, 100);
    test_checkpoint_interchange();
    test_embed_images();
    test_arcface_edges();
}

/* bf16 mixed precision on the backend under test against the CPU in fp32: the network, training
 * (twice, bit-identical), checkpoints both ways, kao embed's path and ArcFace's edges; then fp32
 * again. */
static void run_bf16_checks(int b0_size) {
    const int S = b0_size;
    KAO_ASSERT(gpu->set_precision(gpu, KAO_PRECISION_BF16) == KAO_OK, "%s", kao_last_error());
    bool exact = expect_exact;
    expect_exact = false;
    limits = bf16_tol;
    test_forward(&tiny_b0, 3, 35, 33, limits.forward);
    test_forward(&tiny_s, 2, 41, 35, limits.forward);
    if (S > 0) test_forward(&full_b0, 2, S, S, limits.forward);
    kao_train_options plain = {0}, frozen_bn = {.freeze_bn = true};
    test_training(&tiny_b0, "bf16, all units", plain, 8, 64, 64, 9);
    test_training(&tiny_b0, "bf16, frozen BN", frozen_bn, 6, 35, 33, 9);
    test_training(&tiny_s, "bf16, all units", plain, 8, 64, 64, 7);
    if (S > 0) test_training(&full_b0, "bf16, all units", plain, 8, S, S, 100);
    test_checkpoint_interchange();
    test_embed_images();
    test_arcface_edges(); /* the loss stays fp32 under bf16: the same edges, through the same backend */
    limits = fp32_tol;
    expect_exact = exact;
    KAO_ASSERT(gpu->set_precision(gpu, KAO_PRECISION_FP32) == KAO_OK, "%s", kao_last_error());
}

#endif
