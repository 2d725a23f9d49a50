/* train_guard.c — kao train's divergence checks (train_loop.h): the start weights, every step, and
 * the state before it is validated or saved.
 *
 * A run stops with one message naming the step, the epoch, what went wrong and what to try when
 *   - after a step, the loss, the gradient norm (known when train.grad_clip is set) or the norm of
 *     the network's weights is not finite (a weight that is not finite is named);
 *   - a step more than doubles the norm of the network's weights (KAO_GUARD_MAX_GROWTH);
 *   - the trainer's state (weights, BN statistics, ArcFace W, optimizer moments) holds a number
 *     that is not finite when it is about to be validated or saved: nothing is saved from it;
 *   - the validation embeddings are not finite (the weights are, but the activations overflow).
 * Start weights that are not finite are refused before the run folder is made (the file and the
 * tensor named), a checkpoint that is not finite before a resume uses it.
 *
 * Why the weights' norm: ArcFace normalises the embeddings and the class centres, and BatchNorm
 * follows every convolution, so the loss stays below 2·scale + log(classes) whatever the weights,
 * and the gradients shrink as the weights grow. A learning rate far too high shows neither an
 * exploding loss nor an exploding gradient norm, but weights that jump: on the tests' tiny network
 * AdamW at lr 10 grows their norm 13-fold in its first step (38-fold without warm-up), SGD with
 * momentum 0.999 at lr 10 4.6-fold. Healthy steps change it by a few percent at most (the demo and
 * the tests: 0.02%; AdamW at lr 0.05 or SGD at lr 0.5: 2% and 18%; even AdamW at lr 1, which learns
 * little, 53%).
 */
#include "train_internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "kao/h5io.h"
#include "kao/weights_source.h"

/* A step that multiplies the weights' norm by more than this is an explosion (see above). */
#define KAO_GUARD_MAX_GROWTH 2.0

/* The 1-based epoch of the latest step (after an epoch's end, the epoch just completed). */
static int step_epoch(const kao_run *r) {
    return r->batch_in_epoch == 0 && r->epoch > 0 ? r->epoch : r->epoch + 1;
}

/* What to try, for messages: "lower train.lr (now 10) and train.head_lr (now 10), or set ...", with
 * the settings as they are now. Clipping is offered to SGD only: AdamW's steps do not depend on the
 * gradients' scale. */
static void advice(const kao_run *r, bool arcface, char *out, size_t size) {
    const kao_config *c = &r->cfg;
    char items[4][600];
    int n = 0;
    if (arcface) {
        snprintf(items[n++], sizeof items[0], "lower arcface.lr (now %g)", c->arcface.lr);
        if (c->arcface.optimizer == KAO_OPTIMIZER_SGD && c->arcface.momentum > 0)
            snprintf(items[n++], sizeof items[0], "lower arcface.momentum (now %g)", c->arcface.momentum);
    } else {
        snprintf(items[n++], sizeof items[0], "lower train.lr (now %g) and train.head_lr (now %g)", c->train.lr,
                 c->train.head_lr);
    }
    if (!arcface && c->train.optimizer == KAO_OPTIMIZER_SGD) {
        snprintf(items[n++], sizeof items[0], "lower train.momentum (now %g)", c->train.momentum);
        if (c->train.grad_clip == 0) snprintf(items[n++], sizeof items[0], "set train.grad_clip");
    }
    if (c->model.weights[0]) snprintf(items[n++], sizeof items[0], "check the start weights (%s)", c->model.weights);
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < n && used < size; i++)
        used += (size_t)snprintf(out + used, size - used, "%s%s", i == 0 ? "" : i == n - 1 ? ", or " : ", ", items[i]);
}

/* "step 37 (epoch 2): <what>; the training is diverging: <what to try>" */
static int diverged(kao_run *r, bool arcface, const char *fmt, ...) KAO_PRINTF(3, 4);
static int diverged(kao_run *r, bool arcface, const char *fmt, ...) {
    char what[600], hint[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    advice(r, arcface, hint, sizeof hint);
    return kao_fail("step %" PRId64 " (epoch %d): %s; the training is diverging: %s", r->trainer.step,
                    step_epoch(r), what, hint);
}

/* For messages: every NaN as "nan" (printf shows a negative one as "-nan"). */
static double shown(float x) { return isnan(x) ? (double)NAN : (double)x; }

/* ---- the trainer's state ----------------------------------------------------------------------- */

typedef struct {
    char name[160]; /* as in a checkpoint (checkpoint.h), without model/ */
    float value;
    bool arcface;   /* W or its optimizer state */
} nonfinite;

static bool scan(const float *x, size_t n, float *bad) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) {
            *bad = x[i];
            return true;
        }
    return false;
}

static bool scan_optim(const kao_optim *o, const char *group, nonfinite *out) {
    for (int k = 0; k < kao_optim_num_states(o); k++) {
        const float *state = kao_optim_state(o, k);
        for (int i = 0; i < o->num_tensors; i++) {
            const kao_tensor *t = &o->tensors[i];
            if (t->role != KAO_ROLE_PARAM || !scan(state + t->offset, t->numel, &out->value)) continue;
            snprintf(out->name, sizeof out->name, "optimizer/%s/%s.%s", group, t->name, kao_optim_state_name(o, k));
            return true;
        }
    }
    return false;
}

/* The first tensor of the trainer's state that holds a number that is not finite. */
static bool find_nonfinite(kao_run *r, nonfinite *out) {
    kao_trainer *t = &r->trainer;
    const kao_model *m = &r->model;
    kao_trainer_to_host(t);
    memset(out, 0, sizeof *out);
    for (int i = 0; i < m->num_tensors; i++)
        if (scan(kao_tensor_data(m, i), m->tensors[i].numel, &out->value)) {
            snprintf(out->name, sizeof out->name, "%s", m->tensors[i].name);
            return true;
        }
    out->arcface = true;
    if (scan(t->arcface_W, t->arcface_optim.numel, &out->value)) {
        snprintf(out->name, sizeof out->name, "arcface/W");
        return true;
    }
    if (scan_optim(&t->arcface_optim, "arcface", out)) return true;
    out->arcface = false;
    return scan_optim(&t->optim, "model", out);
}

int kao_guard_state(kao_run *r) {
    nonfinite bad;
    if (!find_nonfinite(r, &bad)) return KAO_OK;
    return diverged(r, bad.arcface, "%s holds %g, not a finite number", bad.name, shown(bad.value));
}

int kao_guard_resumed(kao_run *r, const char *path) {
    nonfinite bad;
    if (!find_nonfinite(r, &bad)) return KAO_OK;
    return kao_fail("%s: %s holds %g, not a finite number: the checkpoint was saved from a diverged run; delete "
                    "it to resume from the one before", path, bad.name, shown(bad.value));
}

/* ---- steps and outputs ------------------------------------------------------------------------- */

int kao_guard_step(kao_run *r, const kao_step_stats *s) {
    float before = r->weight_norm, after = kao_trainer_weight_norm(&r->trainer);
    r->weight_norm = after;
    if (!isfinite(s->loss)) return diverged(r, false, "the loss is not finite (%g)", shown(s->loss));
    if (!isfinite(s->grad_norm)) return diverged(r, false, "the gradients' norm is not finite (%g)", shown(s->grad_norm));
    if (!isfinite(after) && kao_guard_state(r)) return KAO_ERR; /* names the tensor */
    if (before > 0 && !(after <= KAO_GUARD_MAX_GROWTH * before))
        return diverged(r, false, "the weights are exploding: this step grew their norm %.3g-fold (from %.4g to "
                        "%.4g; a healthy step changes it by a few percent at most)", (double)(after / before),
                        (double)before, (double)after);
    return KAO_OK;
}

int kao_guard_outputs(kao_run *r, const float *embeddings, size_t n) {
    float bad;
    if (!scan(embeddings, n, &bad)) return KAO_OK;
    return diverged(r, false, "the validation embeddings are not finite (%g) though the weights are: the "
                    "activations overflow", shown(bad));
}

/* ---- start weights ----------------------------------------------------------------------------- */

/* The float datasets directly in group of f; fails naming the first that is not finite. */
static int scan_group(const kao_h5_file *f, const char *group) {
    char **names;
    int count;
    if (kao_h5_list(f, group, &names, &count)) return KAO_ERR;
    int rc = KAO_OK;
    for (int i = 0; i < count && rc == KAO_OK; i++) {
        char name[KAO_H5_PATH_MAX];
        snprintf(name, sizeof name, "%s%s%s", group ? group : "", group ? "/" : "", names[i]);
        kao_h5_info info;
        if ((rc = kao_h5_dataset_info_backed(f, name, &info)) != KAO_OK || info.cls != KAO_H5_FLOAT) continue;
        float *x = kao_malloc((size_t)info.numel * sizeof *x, "start weights");
        float bad;
        rc = kao_h5_read_f32(f, name, x, info.ndim, info.shape);
        if (rc == KAO_OK && scan(x, (size_t)info.numel, &bad))
            rc = kao_fail("%s: %s holds %g, not a finite number: kao train does not start from weights that are "
                          "not finite (model.weights / --init)", f->path, name, shown(bad));
        free(x);
    }
    kao_h5_free_names(names, count);
    return rc;
}

int kao_guard_start_file(const char *path) {
    kao_h5_file f;
    if (kao_weights_open(&f, path, NULL)) return KAO_ERR;
    char format[64] = "";
    int rc = KAO_OK;
    if (kao_h5_has_attr(&f, NULL, "format")) rc = kao_h5_read_attr_str(&f, NULL, "format", format, sizeof format);
    /* What kao train loads: the weights (a checkpoint's under model/) and the ArcFace centres. */
    if (rc == KAO_OK) rc = scan_group(&f, strcmp(format, KAO_CHECKPOINT_FORMAT) == 0 ? "model" : NULL);
    if (rc == KAO_OK && kao_h5_exists(&f, "arcface/W")) rc = scan_group(&f, "arcface");
    kao_h5_close(&f);
    return rc;
}
