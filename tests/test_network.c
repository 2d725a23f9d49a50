/* The whole network against timm + PyTorch (reference data: tools/gen_model_reference.py).
 *
 *  1. Eval forward: every stage's output, the head, the pooled features and the embedding, for
 *     tiny b0 (every block type) and tiny s (ConvBnAct and EdgeResidual blocks with skips), at even
 *     and odd input sizes.
 *  2. One training step (b0): the ArcFace loss, the gradient of every parameter, of the input and of
 *     the ArcFace W, and the BN running statistics after the step.
 *  3. Three optimizer steps with AdamW and with SGD (Nesterov momentum), two parameter groups,
 *     weight-decay exclusion, gradient clipping and pytorch-metric-learning's separate SGD for W:
 *     every parameter and BN statistic afterwards.
 *
 * Tolerances. Forward: |kao − torch| <= 1e-4·max|torch| + 1e-4·|torch| per tensor; both compute
 * in float32 with different summation orders (BLAS blocking vs oneDNN), which moves results by a
 * few ulp per layer. Gradients: the same form with 2e-3: batch-statistics BN backward subtracts
 * nearly equal sums (mean of dy and of dy·x̂), so float32 rounding differences grow there; a wrong
 * gradient is off by O(1) of the tensor's scale. Some gradients are exactly zero in exact arithmetic
 * (the bias of a BN whose output feeds, linearly, another batch-statistics BN: the shift cancels),
 * and both sides then hold float32 noise of about 1e-6 against a loss of about 34 and gradients of
 * O(1–100); an absolute floor of 1e-5 covers that noise. Parameters after 3 steps: 1e-4 of the tensor's scale
 * plus 1e-6 (Adam's update is lr·m/sqrt(v), bounded by lr, so gradient rounding moves parameters by
 * far less; the 1e-6 is 1/6000 of the largest possible 3-step move, 3·2e-3, and matters only for
 * tensors that start at zero, such as SE biases, whose values are all update).
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "kao/h5io.h"
#include "kao/train_step.h"
#include "kao/util.h"
#include "kao/weights.h"

static kao_backend *cpu;

/* The CPU backend's maps are float tensors. */
static const float *floats(const kao_map *m) { return (const float *)m; }

static float *read_tensor(const kao_h5_file *f, const char *name, kao_h5_info *info) {
    if (kao_h5_dataset_info(f, name, info)) {
        fprintf(stderr, "reference: %s\n", kao_last_error());
        exit(1);
    }
    float *data = kao_malloc((size_t)info->numel * sizeof(float), name);
    if (kao_h5_read_f32(f, name, data, info->ndim, info->shape)) {
        fprintf(stderr, "reference: %s\n", kao_last_error());
        exit(1);
    }
    return data;
}

/* (N, C, H, W) → (N, H, W, C) */
static float *to_nhwc(const float *x, const int64_t *s) {
    int64_t N = s[0], C = s[1], H = s[2], W = s[3];
    float *y = kao_malloc((size_t)(N * C * H * W) * sizeof(float), "nhwc");
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t i = 0; i < H * W; i++) y[(n * H * W + i) * C + c] = x[(n * C + c) * H * W + i];
    return y;
}

static float max_abs(const float *x, size_t n) {
    float m = 0;
    for (size_t i = 0; i < n; i++) m = fabsf(x[i]) > m ? fabsf(x[i]) : m;
    return m;
}

/* Compares got with the reference dataset name: |got − ref| <= tol·max|ref| + atol_floor + tol·|ref|.
 * Activations (and the input gradient) are NCHW in the reference and NHWC in kao; weights and their
 * gradients have PyTorch's layout on both sides. */
typedef enum { WEIGHT_LAYOUT, ACTIVATION_LAYOUT } layout;

static void compare(const kao_h5_file *f, const char *name, const float *got, layout lay, double tol,
                    double atol_floor) {
    kao_h5_info info;
    float *ref = read_tensor(f, name, &info);
    float *want = lay == ACTIVATION_LAYOUT && info.ndim == 4 ? to_nhwc(ref, info.shape) : ref;
    double scale = max_abs(want, (size_t)info.numel);
    CHECK_CLOSE(name, got, want, (size_t)info.numel, tol * scale + atol_floor, tol);
    if (want != ref) free(want);
    free(ref);
}

static void load_model(kao_model *m, const char *weights) {
    kao_arch arch;
    if (kao_weights_probe(weights, &arch)) {
        fprintf(stderr, "%s\n", kao_last_error());
        exit(1);
    }
    kao_model_create(m, &arch);
    if (kao_weights_load(m, weights, NULL, NULL)) {
        fprintf(stderr, "%s\n", kao_last_error());
        exit(1);
    }
}

static void test_forward(const char *case_name) {
    char path[256], weights[256], name[128];
    snprintf(path, sizeof path, "tests/data/model_%s.h5", case_name);
    snprintf(weights, sizeof weights, "tests/data/model_%s.weights.h5", case_name);
    kao_model m;
    load_model(&m, weights);
    kao_h5_file f;
    CHECK(kao_h5_open(&f, path) == 0, "%s", kao_last_error());
    for (int k = 0; k < 4; k++) {
        char group[32];
        snprintf(group, sizeof group, "forward%d", k);
        snprintf(name, sizeof name, "%s/input", group);
        if (!kao_h5_exists(&f, name)) break;
        kao_h5_info info;
        float *nchw = read_tensor(&f, name, &info);
        float *input = to_nhwc(nchw, info.shape);
        int B = (int)info.shape[0], H = (int)info.shape[2], W = (int)info.shape[3];
        /* A training plan keeps every intermediate; the eval forward works on any plan. */
        kao_acts a;
        kao_acts_create(&a, &m, B, H, W, true, cpu);
        kao_net_weights w;
        kao_net_weights_create(&w, &m, cpu);
        kao_forward_eval(&m, &w, &a, input);
        printf("%s %s: batch %d at %dx%d\n", case_name, group, B, H, W);
        snprintf(name, sizeof name, "%s/act/stem", group);
        compare(&f, name, floats(a.stem_out), ACTIVATION_LAYOUT, 1e-4, 1e-7);
        for (int i = 0; i < m.arch.num_blocks; i++) {
            const kao_block_arch *b = &m.arch.blocks[i];
            bool last_in_stage = i + 1 == m.arch.num_blocks || m.arch.blocks[i + 1].stage != b->stage;
            if (!last_in_stage) continue;
            snprintf(name, sizeof name, "%s/act/stage%d", group, b->stage);
            compare(&f, name, floats(a.blocks[i].out), ACTIVATION_LAYOUT, 1e-4, 1e-7);
        }
        snprintf(name, sizeof name, "%s/act/head", group);
        compare(&f, name, floats(a.head_a), ACTIVATION_LAYOUT, 1e-4, 1e-7);
        snprintf(name, sizeof name, "%s/act/pooled", group);
        compare(&f, name, a.pooled, ACTIVATION_LAYOUT, 1e-4, 1e-7);
        snprintf(name, sizeof name, "%s/embedding", group);
        compare(&f, name, a.embedding, ACTIVATION_LAYOUT, 1e-4, 1e-7);
        kao_net_weights_free(&w);
        kao_acts_free(&a);
        free(input);
        free(nchw);
    }
    kao_h5_close(&f);
    kao_model_free(&m);
}

/* The reference's optimizer setup (tools/gen_model_reference.py: OPTIMIZERS). */
static kao_trainer_cfg reference_cfg(const kao_h5_file *f, const char *opt) {
    kao_trainer_cfg c;
    memset(&c, 0, sizeof c);
    char kind[16] = "adamw", arcface_kind[16] = "sgd";
    double lr = 0, head_lr = 0, wd = 0, arcface_lr = 0, arcface_wd = 0, clip = 0;
    int rc = kao_h5_read_attr_str(f, opt, "kind", kind, sizeof kind) || kao_h5_read_attr_f64(f, opt, "lr", &lr) ||
             kao_h5_read_attr_f64(f, opt, "head_lr", &head_lr) || kao_h5_read_attr_f64(f, opt, "weight_decay", &wd) ||
             kao_h5_read_attr_str(f, opt, "arcface_kind", arcface_kind, sizeof arcface_kind) ||
             kao_h5_read_attr_f64(f, opt, "arcface_lr", &arcface_lr) ||
             kao_h5_read_attr_f64(f, opt, "arcface_weight_decay", &arcface_wd) ||
             kao_h5_read_attr_f64(f, opt, "clip", &clip);
    kao_optim_type type = strcmp(kind, "sgd") ? KAO_OPTIM_ADAMW : KAO_OPTIM_SGD;
    /* W's own optimizer (arcface.optimizer): the other kind than the network's in each case. */
    kao_optim_type arcface_type = strcmp(arcface_kind, "sgd") ? KAO_OPTIM_ADAMW : KAO_OPTIM_SGD;
    c.arcface_optim = kao_optim_default_cfg(arcface_type, arcface_lr);
    c.arcface_optim.groups[0].weight_decay = arcface_wd;
    double *extra = arcface_type == KAO_OPTIM_SGD ? &c.arcface_optim.momentum : &c.arcface_optim.eps;
    rc = rc || kao_h5_read_attr_f64(f, opt, arcface_type == KAO_OPTIM_SGD ? "arcface_momentum" : "arcface_eps", extra);
    c.model_optim = kao_optim_default_cfg(type, lr);
    if (type == KAO_OPTIM_ADAMW) rc = rc || kao_h5_read_attr_f64(f, opt, "eps", &c.model_optim.eps);
    if (type == KAO_OPTIM_SGD) {
        int64_t nesterov = 0;
        rc = rc || kao_h5_read_attr_f64(f, opt, "momentum", &c.model_optim.momentum) ||
             kao_h5_read_attr_i64(f, opt, "nesterov", &nesterov);
        c.model_optim.nesterov = nesterov != 0;
    }
    CHECK(rc == 0, "reading %s's hyperparameters: %s", opt, kao_last_error());
    c.model_optim.num_groups = 2;
    c.model_optim.groups[KAO_GROUP_BACKBONE] = (kao_optim_group){lr, wd, true};
    c.model_optim.groups[KAO_GROUP_HEAD] = (kao_optim_group){head_lr, wd, false};
    c.arcface = kao_arcface_default_cfg();
    c.schedule.type = KAO_SCHEDULE_CONSTANT;
    c.grad_clip = clip;
    return c;
}

static int *read_labels(const kao_h5_file *f, const char *name, int n) {
    int64_t *l64 = kao_malloc((size_t)n * sizeof *l64, "labels");
    kao_h5_info info;
    kao_h5_dataset_info(f, name, &info);
    kao_h5_read_i64(f, name, l64, info.ndim, info.shape);
    int *labels = kao_malloc((size_t)n * sizeof *labels, "labels");
    for (int i = 0; i < n; i++) labels[i] = (int)l64[i];
    free(l64);
    return labels;
}

static void compare_params(const kao_h5_file *f, const kao_model *m, const char *prefix, double tol) {
    char name[320];
    for (int i = 0; i < m->num_tensors; i++) {
        snprintf(name, sizeof name, "%s%s", prefix, m->tensors[i].name);
        compare(f, name, kao_tensor_data(m, i), WEIGHT_LAYOUT, tol, 1e-6);
    }
}

static void test_training(void) {
    const char *path = "tests/data/model_b0_tiny.h5";
    kao_h5_file f;
    CHECK(kao_h5_open(&f, path) == 0, "%s", kao_last_error());
    int64_t classes;
    kao_h5_read_attr_i64(&f, "train", "num_classes", &classes);
    kao_h5_info info;
    float *nchw = read_tensor(&f, "train/input", &info);
    float *input = to_nhwc(nchw, info.shape);
    int B = (int)info.shape[0], H = (int)info.shape[2], W = (int)info.shape[3];
    int *labels = read_labels(&f, "train/labels", B);

    /* One step's gradients. */
    kao_model m;
    load_model(&m, "tests/data/model_b0_tiny.weights.h5");
    kao_trainer_cfg cfg = reference_cfg(&f, "train/adamw");
    kao_trainer t;
    CHECK(kao_trainer_create(&t, &m, cpu, (int)classes, &cfg, B, H, W) == 0, "%s", kao_last_error());
    kao_h5_info winfo;
    float *W0 = read_tensor(&f, "train/arcface_W", &winfo);
    memcpy(t.arcface_W, W0, (size_t)winfo.numel * sizeof(float));
    float *d_input = kao_malloc((size_t)B * H * W * 3 * sizeof(float), "d_input");
    float loss = kao_trainer_gradients(&t, d_input, input, labels, B, NULL);
    float ref_loss;
    kao_h5_read_f32(&f, "train/loss", &ref_loss, 0, NULL);
    printf("training step: loss %.6f (torch %.6f)\n", loss, ref_loss);
    CHECK(fabsf(loss - ref_loss) <= 1e-5f * fabsf(ref_loss) + 1e-5f, "loss %.7f vs %.7f", loss, ref_loss);
    char name[192];
    for (int i = 0; i < m.num_tensors; i++) {
        const kao_tensor *tensor = &m.tensors[i];
        if (tensor->role == KAO_ROLE_PARAM) {
            snprintf(name, sizeof name, "train/grad/%s", tensor->name);
            compare(&f, name, t.grads + tensor->offset, WEIGHT_LAYOUT, 2e-3, 1e-5);
        } else {
            snprintf(name, sizeof name, "train/running/%s", tensor->name);
            compare(&f, name, kao_tensor_data(&m, i), WEIGHT_LAYOUT, 1e-4, 1e-7);
        }
    }
    compare(&f, "train/grad/input", d_input, ACTIVATION_LAYOUT, 2e-3, 1e-5);
    compare(&f, "train/grad/arcface_W", t.dW, WEIGHT_LAYOUT, 2e-3, 1e-5);
    kao_trainer_free(&t);
    kao_model_free(&m);

    /* The same step with frozen BN statistics: BN in eval mode, running statistics untouched. */
    load_model(&m, "tests/data/model_b0_tiny.weights.h5");
    float *buffers_before = kao_malloc(m.num_buffers * sizeof(float), "buffers");
    memcpy(buffers_before, m.buffers, m.num_buffers * sizeof(float));
    cfg.options.freeze_bn = true;
    CHECK(kao_trainer_create(&t, &m, cpu, (int)classes, &cfg, B, H, W) == 0, "%s", kao_last_error());
    memcpy(t.arcface_W, W0, (size_t)winfo.numel * sizeof(float));
    loss = kao_trainer_gradients(&t, d_input, input, labels, B, NULL);
    kao_h5_read_f32(&f, "train/frozen_bn/loss", &ref_loss, 0, NULL);
    printf("frozen-BN step: loss %.6f (torch %.6f)\n", loss, ref_loss);
    CHECK(fabsf(loss - ref_loss) <= 1e-5f * fabsf(ref_loss) + 1e-5f, "frozen BN loss %.7f vs %.7f", loss, ref_loss);
    for (int i = 0; i < m.num_tensors; i++) {
        const kao_tensor *tensor = &m.tensors[i];
        if (tensor->role != KAO_ROLE_PARAM) continue;
        snprintf(name, sizeof name, "train/frozen_bn/grad/%s", tensor->name);
        compare(&f, name, t.grads + tensor->offset, WEIGHT_LAYOUT, 2e-3, 1e-5);
    }
    compare(&f, "train/frozen_bn/grad/input", d_input, ACTIVATION_LAYOUT, 2e-3, 1e-5);
    CHECK(memcmp(buffers_before, m.buffers, m.num_buffers * sizeof(float)) == 0, "frozen BN statistics changed");
    kao_trainer_free(&t);
    kao_model_free(&m);
    free(buffers_before);
    free(d_input);

    /* Three optimizer steps on three batches. */
    const char *optimizers[] = {"adamw", "sgd"};
    for (int k = 0; k < 2; k++) {
        char group[32];
        snprintf(group, sizeof group, "train/%s", optimizers[k]);
        load_model(&m, "tests/data/model_b0_tiny.weights.h5");
        cfg = reference_cfg(&f, group);
        CHECK(kao_trainer_create(&t, &m, cpu, (int)classes, &cfg, B, H, W) == 0, "%s", kao_last_error());
        memcpy(t.arcface_W, W0, (size_t)winfo.numel * sizeof(float));
        snprintf(name, sizeof name, "%s/input", group);
        kao_h5_info sinfo;
        float *steps = read_tensor(&f, name, &sinfo);
        snprintf(name, sizeof name, "%s/labels", group);
        int *step_labels = read_labels(&f, name, 3 * B);
        float ref_losses[3];
        snprintf(name, sizeof name, "%s/loss", group);
        kao_h5_read_f32(&f, name, ref_losses, 1, (int64_t[]){3});
        for (int s = 0; s < 3; s++) {
            float *x = to_nhwc(steps + (size_t)s * B * 3 * H * W, (int64_t[]){B, 3, H, W});
            kao_step_stats st;
            kao_trainer_step(&t, &st, x, step_labels + s * B, B);
            printf("%s step %d: loss %.6f (torch %.6f), grad norm %.4f\n", optimizers[k], s, st.loss, ref_losses[s], st.grad_norm);
            CHECK(fabsf(st.loss - ref_losses[s]) <= 1e-4f * fabsf(ref_losses[s]) + 1e-4f, "%s step %d loss %.7f vs %.7f",
                  optimizers[k], s, st.loss, ref_losses[s]);
            free(x);
        }
        snprintf(name, sizeof name, "%s/params/", group);
        compare_params(&f, &m, name, 1e-4);
        snprintf(name, sizeof name, "%s/arcface_W", group);
        compare(&f, name, t.arcface_W, WEIGHT_LAYOUT, 1e-4, 1e-7);
        free(steps);
        free(step_labels);
        kao_trainer_free(&t);
        kao_model_free(&m);
    }
    free(W0);
    free(labels);
    free(input);
    free(nchw);
    kao_h5_close(&f);
}

/* Drop path (timm's DropPath; docs/architecture.md, 'Drop path'): each sample's residual branch is kept with
 * probability 1 − rate and scaled by 1/keep, else dropped, so a dropped sample's block output
 * equals its input exactly. Its random draws cannot match PyTorch's generator, so the semantics
 * are checked directly: mask values, the dropped fraction, the identity on dropped samples, and
 * that the backward through a fixed mask is the one the ops' tests check. */
static void test_drop_path(void) {
    kao_arch arch;
    CHECK(kao_arch_build(&arch, "tf_efficientnetv2_b0", 0.25, 0.5, 16, 0.8f) == 0, "%s", kao_last_error());
    kao_model m;
    kao_model_create(&m, &arch);
    kao_model_init(&m, 3);
    int B = 16, H = 32, W = 32;
    float *input = kao_malloc((size_t)B * H * W * 3 * sizeof(float), "input");
    kao_rng rng;
    kao_rng_seed(&rng, 5, 0);
    for (int i = 0; i < B * H * W * 3; i++) input[i] = kao_rng_normal(&rng);
    kao_acts a;
    kao_acts_create(&a, &m, B, H, W, true, cpu);
    kao_net_weights w;
    kao_net_weights_create(&w, &m, cpu);
    kao_train_options opt = {0};
    int dropped = 0, draws = 0, identity_ok = 1, values_ok = 1;
    double expected_dropped = 0;
    for (int rep = 0; rep < 20; rep++) {
        kao_forward_train(&m, &w, &a, input, &opt, &rng);
        for (int i = 0; i < arch.num_blocks; i++) {
            const kao_block_acts *ba = &a.blocks[i];
            if (!ba->drop_mask) continue;
            float keep = 1.0f - arch.blocks[i].drop_path_rate;
            size_t n = (size_t)ba->out_h * ba->out_w * arch.blocks[i].out_ch;
            for (int b = 0; b < B; b++) {
                draws++;
                expected_dropped += arch.blocks[i].drop_path_rate;
                if (ba->drop_mask[b] == 0.0f) {
                    dropped++;
                    identity_ok &= memcmp(floats(ba->out) + b * n, floats(ba->in) + b * n, n * sizeof(float)) == 0;
                } else {
                    values_ok &= ba->drop_mask[b] == 1.0f / keep;
                }
            }
        }
    }
    double sd = sqrt(expected_dropped);
    printf("drop path: %d of %d branches dropped (expected %.0f)\n", dropped, draws, expected_dropped);
    CHECK(draws > 0 && fabs(dropped - expected_dropped) < 5 * sd + 1, "dropped %d, expected %.1f", dropped, expected_dropped);
    CHECK(identity_ok, "a dropped sample's block output is not its input");
    CHECK(values_ok, "kept samples are scaled by 1/keep");
    kao_net_weights_free(&w);
    kao_acts_free(&a);
    kao_model_free(&m);
    free(input);
}

int main(void) {
    cpu = kao_backend_cpu();
    test_drop_path();
    test_forward("b0_tiny");
    test_forward("s_tiny");
    test_training();
    kao_backend_free(cpu);
    return check_summary("test_network");
}
