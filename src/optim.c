/* optim.c — AdamW, SGD and gradient clipping with torch.optim's numerics (optim.h). */
#include "kao/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kao/util.h"

kao_optim_cfg kao_optim_default_cfg(kao_optim_type type, double lr) {
    kao_optim_cfg c;
    memset(&c, 0, sizeof c);
    c.type = type;
    c.beta1 = 0.9;
    c.beta2 = 0.999;
    c.eps = 1e-8;
    c.num_groups = 1;
    c.groups[0].lr = lr;
    c.groups[0].weight_decay = type == KAO_OPTIM_ADAMW ? 1e-2 : 0.0;
    return c;
}

int kao_optim_type_parse(kao_optim_type *out, const char *name) {
    if (strcmp(name, "adamw") == 0) {
        *out = KAO_OPTIM_ADAMW;
    } else if (strcmp(name, "sgd") == 0) {
        *out = KAO_OPTIM_SGD;
    } else {
        return kao_fail("optimizer \"%s\": expected \"adamw\" or \"sgd\"", name);
    }
    return KAO_OK;
}

const char *kao_optim_type_name(kao_optim_type type) {
    return type == KAO_OPTIM_ADAMW ? "adamw" : "sgd";
}

int kao_optim_cfg_check(const kao_optim_cfg *c) {
    const char *name = kao_optim_type_name(c->type);
    if (c->num_groups < 1 || c->num_groups > KAO_OPTIM_MAX_GROUPS)
        return kao_fail("%s: %d parameter groups, expected 1 to %d", name, c->num_groups,
                        KAO_OPTIM_MAX_GROUPS);
    for (int g = 0; g < c->num_groups; g++) {
        if (!(c->groups[g].lr >= 0))
            return kao_fail("%s: group %d: learning rate %g is negative", name, g, c->groups[g].lr);
        if (!(c->groups[g].weight_decay >= 0))
            return kao_fail("%s: group %d: weight decay %g is negative", name, g,
                            c->groups[g].weight_decay);
    }
    if (c->type == KAO_OPTIM_ADAMW) {
        if (!(c->beta1 >= 0 && c->beta1 < 1)) return kao_fail("adamw: beta1 %g outside [0, 1)", c->beta1);
        if (!(c->beta2 >= 0 && c->beta2 < 1)) return kao_fail("adamw: beta2 %g outside [0, 1)", c->beta2);
        if (!(c->eps >= 0)) return kao_fail("adamw: eps %g is negative", c->eps);
    } else {
        if (!(c->momentum >= 0)) return kao_fail("sgd: momentum %g is negative", c->momentum);
        if (c->nesterov && c->momentum <= 0) return kao_fail("sgd: Nesterov needs momentum > 0");
    }
    return KAO_OK;
}

int kao_optim_create(kao_optim *o, const kao_optim_cfg *cfg, const kao_tensor *tensors,
                     int num_tensors, size_t numel, const int *group) {
    memset(o, 0, sizeof *o);
    if (kao_optim_cfg_check(cfg) != KAO_OK) return KAO_ERR;
    o->cfg = *cfg;
    o->tensors = tensors;
    o->num_tensors = num_tensors;
    o->numel = numel;
    o->group = kao_malloc((size_t)num_tensors * sizeof *o->group, "optimizer groups");
    for (int i = 0; i < num_tensors; i++) {
        const kao_tensor *t = &tensors[i];
        KAO_ASSERT(group[i] >= -1 && group[i] < cfg->num_groups, "%s: group %d", t->name, group[i]);
        KAO_ASSERT(group[i] < 0 || (t->role == KAO_ROLE_PARAM && t->offset + t->numel <= numel),
                   "%s: not a parameter inside the block", t->name);
        o->group[i] = group[i];
    }
    o->steps = kao_calloc((size_t)num_tensors, sizeof *o->steps, "optimizer steps");
    if (cfg->type == KAO_OPTIM_ADAMW || cfg->momentum != 0)
        o->exp_avg = kao_calloc(numel, sizeof(float), "optimizer exp_avg");
    if (cfg->type == KAO_OPTIM_ADAMW)
        o->exp_avg_sq = kao_calloc(numel, sizeof(float), "optimizer exp_avg_sq");
    return KAO_OK;
}

void kao_optim_free(kao_optim *o) {
    free(o->group);
    free(o->steps);
    free(o->exp_avg);
    free(o->exp_avg_sq);
    memset(o, 0, sizeof *o);
}

/* torch's _single_tensor_adamw on one tensor; step is the new step count (>= 1). */
static void adamw_update(float *p, float *m, float *v, const float *g, size_t n, double lr,
                         double wd, double beta1, double beta2, double eps, int64_t step) {
    const float decay = (float)(1.0 - lr * wd);          /* param.mul_(1 - lr * wd) */
    const float w1 = (float)(1.0 - beta1);               /* exp_avg.lerp_(grad, 1 - beta1) */
    const float b2 = (float)beta2, w2 = (float)(1.0 - beta2);
    const double bc1 = 1.0 - pow(beta1, (double)step), bc2 = 1.0 - pow(beta2, (double)step);
    const float neg_step_size = (float)(-(lr / bc1));
    const float bc2_sqrt = (float)sqrt(bc2);
    const float epsf = (float)eps;
    for (size_t i = 0; i < n; i++) {
        p[i] = p[i] * decay;
        m[i] = fmaf(w1, g[i] - m[i], m[i]);               /* lerp, weight < 0.5: fma(w, end - self, self) */
        v[i] = v[i] * b2;
        v[i] = v[i] + w2 * g[i] * g[i];                   /* addcmul_: self + value * t1 * t2 */
        float denom = sqrtf(v[i]) / bc2_sqrt + epsf;
        p[i] = p[i] + neg_step_size * m[i] / denom;       /* addcdiv_: self + value * t1 / t2 */
    }
}

/* torch's _single_tensor_sgd on one tensor (dampening 0); first: the buffer does not exist yet. */
static void sgd_update(float *p, float *buf, const float *g, size_t n, double lr, double wd,
                       double momentum, bool nesterov, bool first) {
    const float wdf = (float)wd, mom = (float)momentum, neg_lr = (float)(-lr);
    for (size_t i = 0; i < n; i++) {
        float d = wd != 0 ? fmaf(p[i], wdf, g[i]) : g[i]; /* grad.add(param, alpha=wd) */
        if (buf) {
            buf[i] = first ? d : buf[i] * mom + d;       /* buf.mul_(momentum).add_(grad) */
            d = nesterov ? fmaf(buf[i], mom, d) : buf[i];
        }
        p[i] = fmaf(d, neg_lr, p[i]);                     /* param.add_(grad, alpha=-lr) */
    }
}

void kao_optim_step(kao_optim *o, float *params, const float *grads, double lr_factor) {
    const kao_optim_cfg *c = &o->cfg;
    for (int i = 0; i < o->num_tensors; i++) {
        if (o->group[i] < 0) continue;
        const kao_tensor *t = &o->tensors[i];
        const kao_optim_group *g = &c->groups[o->group[i]];
        const double lr = g->lr * lr_factor;
        const double wd = g->exclude_no_decay && t->no_decay ? 0.0 : g->weight_decay;
        float *p = params + t->offset;
        const float *gr = grads + t->offset;
        o->steps[i]++;
        if (c->type == KAO_OPTIM_ADAMW) {
            adamw_update(p, o->exp_avg + t->offset, o->exp_avg_sq + t->offset, gr, t->numel, lr,
                         wd, c->beta1, c->beta2, c->eps, o->steps[i]);
        } else {
            sgd_update(p, o->exp_avg ? o->exp_avg + t->offset : NULL, gr, t->numel, lr, wd,
                       c->momentum, c->nesterov, o->steps[i] == 1);
        }
    }
}

int kao_optim_num_states(const kao_optim *o) {
    return (o->exp_avg != NULL) + (o->exp_avg_sq != NULL);
}

const char *kao_optim_state_name(const kao_optim *o, int k) {
    KAO_ASSERT(k >= 0 && k < kao_optim_num_states(o), "state %d", k);
    if (o->cfg.type == KAO_OPTIM_SGD) return "momentum_buffer";
    return k == 0 ? "exp_avg" : "exp_avg_sq";
}

float *kao_optim_state(const kao_optim *o, int k) {
    KAO_ASSERT(k >= 0 && k < kao_optim_num_states(o), "state %d", k);
    return k == 0 ? o->exp_avg : o->exp_avg_sq;
}

/* ---- clipping ---------------------------------------------------------------------------- */

int kao_optim_grad_spans(kao_span *out, const kao_optim *o, float *grads) {
    int count = 0;
    for (int i = 0; i < o->num_tensors; i++) {
        if (o->group[i] < 0) continue;
        const kao_tensor *t = &o->tensors[i];
        float *start = grads + t->offset;
        if (count > 0 && out[count - 1].data + out[count - 1].numel == start) {
            out[count - 1].numel += t->numel;
        } else {
            out[count].data = start;
            out[count].numel = t->numel;
            count++;
        }
    }
    return count;
}

float kao_norm(const kao_span *spans, int count) {
    double ss = 0;
    for (int k = 0; k < count; k++)
        for (size_t i = 0; i < spans[k].numel; i++) ss += (double)spans[k].data[i] * spans[k].data[i];
    return (float)sqrt(ss);
}

float kao_clip_grad_norm(kao_span *grads, int count, float max_norm) {
    const float total = kao_norm(grads, count);
    float coef = (1.0f / (total + 1e-6f)) * max_norm; /* max_norm / (total_norm + 1e-6) */
    if (coef > 1.0f) coef = 1.0f;                     /* clamp(max=1.0); NaN passes, as in torch */
    for (int k = 0; k < count; k++)
        for (size_t i = 0; i < grads[k].numel; i++) grads[k].data[i] *= coef;
    return total;
}
