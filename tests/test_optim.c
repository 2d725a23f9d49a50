/* AdamW, SGD (momentum, Nesterov), parameter groups, clip_grad_norm_ and the schedules against
 * torch 2.5 (tests/data/optim_reference.h5, written by tools/gen_loss_reference.py).
 *
 * Tolerances. Parameters, moments and momentum buffers after each of 3 steps: |kao − torch| <=
 * 1e-6·|torch| + 1e-12 (float computations in torch's order, so the differences are a few ulp
 * where torch's compiled kernels fuse differently; the 1e-12 floor covers moments of the
 * 1e-6-sized gradients). Clipped norms: 1e-6 relative (kao sums squares in double, torch
 * per-tensor norms in float). Schedule factors: 1e-12 relative (both in double; torch chains
 * its factors step by step).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "kao/optim.h"
#include "kao/schedule.h"
#include "kao/util.h"

#define STEPS 3

typedef struct {
    kao_tensor *tensors;
    int count;
    size_t numel;
    float *params0; /* (numel) */
    float *grads;   /* (STEPS, numel) */
} table;

static table read_table(const kao_h5_file *f) {
    table t;
    int64_t count;
    int64_t *numel = ref_read(f, NULL, "tensor_numel", REF_I64, 0, &count);
    t.count = (int)count;
    int *no_decay = ref_int(f, NULL, "tensor_no_decay", count), *is_head = ref_int(f, NULL, "tensor_is_head", count);
    t.tensors = calloc((size_t)count, sizeof *t.tensors);
    t.numel = 0;
    for (int i = 0; i < t.count; i++) {
        kao_tensor *k = &t.tensors[i];
        snprintf(k->name, sizeof k->name, "tensor%d", i);
        k->ndim = 1;
        k->shape[0] = (int)numel[i];
        k->numel = (size_t)numel[i];
        k->offset = t.numel;
        k->role = KAO_ROLE_PARAM;
        k->no_decay = no_decay[i];
        k->is_head = is_head[i];
        t.numel += k->numel;
    }
    t.params0 = ref_f32(f, NULL, "params0", (int64_t)t.numel);
    t.grads = ref_f32(f, NULL, "grads", (int64_t)(STEPS * t.numel));
    free(numel), free(no_decay), free(is_head);
    return t;
}

static void check_case(const kao_h5_file *f, const table *t, const char *name) {
    char type[16];
    ref_attr_str(f, name, "type", type, sizeof type);
    kao_optim_type ot;
    CHECK(kao_optim_type_parse(&ot, type) == KAO_OK, "%s: type %s", name, type);
    kao_optim_cfg cfg = kao_optim_default_cfg(ot, 0);
    cfg.momentum = ref_attr(f, name, "momentum");
    cfg.nesterov = ref_attr(f, name, "nesterov") != 0;
    cfg.num_groups = 2;
    for (int g = 0; g < 2; g++) {
        char key[32];
        snprintf(key, sizeof key, "lr%d", g);
        cfg.groups[g].lr = ref_attr(f, name, key);
        snprintf(key, sizeof key, "wd%d", g);
        cfg.groups[g].weight_decay = ref_attr(f, name, key);
        snprintf(key, sizeof key, "exclude%d", g);
        cfg.groups[g].exclude_no_decay = ref_attr(f, name, key) != 0;
    }
    const float max_norm = (float)ref_attr(f, name, "max_norm");
    kao_schedule sched = {.type = KAO_SCHEDULE_CONSTANT};
    if (ref_attr(f, name, "step_size") > 0) {
        sched.type = KAO_SCHEDULE_STEP;
        sched.step_size = (int64_t)ref_attr(f, name, "step_size");
        sched.gamma = ref_attr(f, name, "gamma");
    }
    CHECK(kao_schedule_check(&sched) == KAO_OK, "%s: schedule", name);

    int *group = malloc((size_t)t->count * sizeof *group);
    for (int i = 0; i < t->count; i++) group[i] = t->tensors[i].is_head ? 1 : 0;
    kao_optim o;
    CHECK(kao_optim_create(&o, &cfg, t->tensors, t->count, t->numel, group) == KAO_OK, "%s: %s",
          name, kao_last_error());
    free(group);

    float *params = malloc(t->numel * sizeof *params), *grads = malloc(t->numel * sizeof *grads);
    memcpy(params, t->params0, t->numel * sizeof *params);
    float *want = ref_f32(f, name, "params", (int64_t)(STEPS * t->numel));
    float *want_norm = max_norm > 0 ? ref_f32(f, name, "grad_norm", STEPS) : NULL;
    kao_span *spans = malloc((size_t)t->count * sizeof *spans);
    for (int s = 0; s < STEPS; s++) {
        memcpy(grads, t->grads + (size_t)s * t->numel, t->numel * sizeof *grads);
        if (max_norm > 0) {
            int n = kao_optim_grad_spans(spans, &o, grads);
            CHECK(n == 1, "%s: adjacent tensors make one span, got %d", name, n);
            float norm = kao_clip_grad_norm(spans, n, max_norm);
            CHECK(fabsf(norm - want_norm[s]) <= 1e-6f * want_norm[s], "%s step %d: norm %.9g, torch %.9g",
                  name, s, norm, want_norm[s]);
        }
        kao_optim_step(&o, params, grads, kao_schedule_factor(&sched, s));
        char what[128];
        snprintf(what, sizeof what, "%s params after step %d", name, s + 1);
        CHECK_CLOSE(what, params, want + (size_t)s * t->numel, t->numel, 1e-12, 1e-6);
        size_t same = 0;
        for (size_t i = 0; i < t->numel; i++) same += params[i] == want[(size_t)s * t->numel + i];
        if (s == STEPS - 1) printf("%-18s %zu of %zu parameters bitwise equal to torch after %d steps\n", name, same, t->numel, STEPS);
    }
    for (int k = 0; k < kao_optim_num_states(&o); k++) {
        char path[128];
        snprintf(path, sizeof path, "%s/%s", name, kao_optim_state_name(&o, k));
        float *ws = ref_f32(f, name, kao_optim_state_name(&o, k), (int64_t)t->numel);
        CHECK_CLOSE(path, kao_optim_state(&o, k), ws, t->numel, 1e-12, 1e-6);
        free(ws);
    }
    int want_states = ot == KAO_OPTIM_ADAMW ? 2 : cfg.momentum != 0;
    CHECK(kao_optim_num_states(&o) == want_states, "%s: %d state blocks", name, kao_optim_num_states(&o));
    for (int i = 0; i < t->count; i++) CHECK(o.steps[i] == STEPS, "%s: steps of tensor %d", name, i);
    free(spans), free(params), free(grads), free(want), free(want_norm);
    kao_optim_free(&o);
}

/* A tensor in no group is left alone and its state stays empty; the spans skip it. */
static void check_frozen(const table *t) {
    kao_optim_cfg cfg = kao_optim_default_cfg(KAO_OPTIM_ADAMW, 1e-2);
    int *group = calloc((size_t)t->count, sizeof *group);
    group[1] = -1;
    kao_optim o;
    CHECK(kao_optim_create(&o, &cfg, t->tensors, t->count, t->numel, group) == KAO_OK, "frozen create");
    float *params = malloc(t->numel * sizeof *params);
    memcpy(params, t->params0, t->numel * sizeof *params);
    kao_optim_step(&o, params, t->grads, 1.0);
    const kao_tensor *fr = &t->tensors[1];
    CHECK(memcmp(params + fr->offset, t->params0 + fr->offset, fr->numel * sizeof(float)) == 0,
          "frozen tensor unchanged");
    CHECK(o.steps[1] == 0 && o.steps[0] == 1, "frozen steps %lld", (long long)o.steps[1]);
    CHECK(params[0] != t->params0[0], "trained tensor changed");
    kao_span spans[16];
    int n = kao_optim_grad_spans(spans, &o, t->grads);
    CHECK(n == 2 && spans[0].numel == t->tensors[0].numel, "spans around the frozen tensor: %d", n);
    free(params), free(group);
    kao_optim_free(&o);
}

static void check_errors(void) {
    kao_optim_type type;
    CHECK(kao_optim_type_parse(&type, "adam") == KAO_ERR && strstr(kao_last_error(), "adam"),
          "unknown optimizer named: %s", kao_last_error());
    kao_optim_cfg c = kao_optim_default_cfg(KAO_OPTIM_ADAMW, 1e-3);
    c.beta2 = 1.0;
    CHECK(kao_optim_cfg_check(&c) == KAO_ERR && strstr(kao_last_error(), "beta2"), "%s", kao_last_error());
    c = kao_optim_default_cfg(KAO_OPTIM_SGD, 1e-3);
    c.nesterov = true;
    CHECK(kao_optim_cfg_check(&c) == KAO_ERR && strstr(kao_last_error(), "Nesterov"), "%s", kao_last_error());
    c.groups[0].lr = -1;
    c.nesterov = false;
    CHECK(kao_optim_cfg_check(&c) == KAO_ERR && strstr(kao_last_error(), "learning rate"), "%s", kao_last_error());
    kao_schedule_type st;
    CHECK(kao_schedule_type_parse(&st, "cosine") == KAO_OK && st == KAO_SCHEDULE_COSINE, "cosine parses");
    CHECK(kao_schedule_type_parse(&st, "linear") == KAO_ERR, "unknown schedule");
    kao_schedule s = {.type = KAO_SCHEDULE_COSINE, .warmup_steps = 10, .warmup_start_factor = 0.1,
                      .total_steps = 10, .min_factor = 0};
    CHECK(kao_schedule_check(&s) == KAO_ERR && strstr(kao_last_error(), "total_steps"), "%s", kao_last_error());
    s.total_steps = 11;
    CHECK(kao_schedule_check(&s) == KAO_OK, "valid cosine");
    s = (kao_schedule){.type = KAO_SCHEDULE_STEP, .step_size = 0, .gamma = 0.1};
    CHECK(kao_schedule_check(&s) == KAO_ERR && strstr(kao_last_error(), "step_size"), "%s", kao_last_error());
}

static void check_schedule(const kao_h5_file *f, const char *name, kao_schedule s) {
    int64_t count;
    double *want = ref_read(f, "schedules", name, REF_F64, 0, &count);
    size_t n = (size_t)count;
    CHECK(kao_schedule_check(&s) == KAO_OK, "%s: %s", name, kao_last_error());
    double worst = 0;
    for (size_t t = 0; t < n; t++) {
        double got = kao_schedule_factor(&s, (int64_t)t), err = fabs(got - want[t]) / want[t];
        if (!(err <= worst)) worst = err;
        CHECK(err <= 1e-12, "%s step %zu: factor %.17g, torch %.17g", name, t, got, want[t]);
    }
    printf("schedule %-14s %zu steps, max rel err %.2g\n", name, n, worst);
    free(want);
}

/* A cosine schedule as the attributes of schedules/<name> describe it. */
static kao_schedule cosine_schedule(const kao_h5_file *f, const char *name) {
    char group[64];
    snprintf(group, sizeof group, "schedules/%s", name);
    kao_schedule s = {.type = KAO_SCHEDULE_COSINE};
    s.warmup_steps = (int64_t)ref_attr(f, group, "warmup_steps");
    s.warmup_start_factor = ref_attr(f, group, "warmup_start_factor");
    s.total_steps = (int64_t)ref_attr(f, group, "total_steps");
    s.min_factor = ref_attr(f, group, "min_factor");
    return s;
}

int main(void) {
    kao_h5_file file, *f = &file;
    ref_open(f, "optim_reference.h5");
    table t = read_table(f);
    const char *cases[] = {"adamw_groups_clip", "adamw_plain", "sgd_momentum_clip", "sgd_nesterov",
                           "sgd_plain"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_case(f, &t, cases[i]);
    check_frozen(&t);
    check_errors();

    kao_schedule cw = cosine_schedule(f, "cosine_warmup");
    check_schedule(f, "cosine_warmup", cw);
    /* past total_steps the factor stays at min_factor (schedule.h; torch's cosine would rise) */
    CHECK(kao_schedule_factor(&cw, cw.total_steps) == cw.min_factor &&
              kao_schedule_factor(&cw, 10 * cw.total_steps) == cw.min_factor, "cosine after the end");
    check_schedule(f, "cosine_nowarm", cosine_schedule(f, "cosine_nowarm"));
    kao_schedule st = {.type = KAO_SCHEDULE_STEP};
    st.step_size = (int64_t)ref_attr(f, "schedules/step", "step_size");
    st.gamma = ref_attr(f, "schedules/step", "gamma");
    check_schedule(f, "step", st);
    kao_schedule constant = {.type = KAO_SCHEDULE_CONSTANT};
    CHECK(kao_schedule_factor(&constant, 12345) == 1.0, "constant");

    free(t.tensors), free(t.params0), free(t.grads);
    kao_h5_close(f);
    return check_summary("test_optim");
}
