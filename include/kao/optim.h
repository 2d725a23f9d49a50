/* optim.h — AdamW and SGD as torch.optim (2.5) computes them, and clip_grad_norm_.
 *
 * An optimizer updates the parameter tensors of one table (kao_tensor, offsets into one params
 * block; the gradients have the same layout). Each tensor belongs to a group (or to none: frozen);
 * each group has its own base learning rate and weight decay, and may exclude the tensors flagged
 * no_decay (1-D: BN affine, biases) from weight decay — PyTorch expresses that as a separate
 * group with weight_decay 0 and the same lr, which computes the same numbers.
 * The optimizer type belongs to the instance: the model and the ArcFace W (which
 * pytorch-metric-learning trains with its own optimizer) are two instances, the second over the
 * one-tensor table from kao_arcface_weight_tensor(). A step takes the schedule's factor
 * (schedule.h), the same for every group: group lr = base lr × factor (torch's LambdaLR).
 *
 * Numerics follow torch's single-tensor path (what torch.optim uses for CPU tensors:
 * foreach/fused are CUDA-only defaults), in float with torch's operation order; where torch's
 * vectorised kernels use a fused multiply-add (lerp_, add_ with alpha) kao uses fmaf. Scalars
 * (1 − lr·wd, bias corrections, step size) are computed in double and rounded to float as torch
 * does. Agreement with torch is within 1e-6 relative (tests/test_optim.c), not always bitwise:
 * torch's scalar tail loops may or may not be contracted to FMA by its compiler.
 *
 * AdamW (per element, step t counted per tensor from 1):
 *   p ← p·(1 − lr·wd);  m ← m + (1−β1)(g − m);  v ← v·β2 + (1−β2)·g·g
 *   p ← p + (−lr/(1−β1ᵗ)) · m / (sqrt(v)/sqrt(1−β2ᵗ) + eps)
 * SGD (dampening 0):
 *   g ← g + wd·p;  b ← g on a tensor's first step, else b·μ + g;  d ← g + μ·b (Nesterov) or b;
 *   p ← p − lr·d
 *
 * State for checkpoints: blocks with the params' layout, named as torch's state keys
 * (kao_optim_state_name: "exp_avg", "exp_avg_sq" for AdamW, "momentum_buffer" for SGD with
 * momentum), plus steps (num_tensors): torch's state["step"] per tensor (for SGD: whether the
 * momentum buffer exists, torch's None). A checkpoint writes "<tensor>.<state name>" with the
 * tensor's shape, and the steps.
 */
#ifndef KAO_OPTIM_H
#define KAO_OPTIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kao/model.h"

typedef enum { KAO_OPTIM_ADAMW = 0, KAO_OPTIM_SGD = 1 } kao_optim_type;

#define KAO_OPTIM_MAX_GROUPS 8

typedef struct {
    double lr;             /* base learning rate; a step uses lr · factor */
    double weight_decay;
    bool exclude_no_decay; /* tensors flagged no_decay get weight decay 0 */
} kao_optim_group;

typedef struct {
    kao_optim_type type;
    double beta1, beta2, eps; /* AdamW */
    double momentum;          /* SGD; 0: plain SGD without a buffer */
    bool nesterov;            /* SGD; needs momentum > 0 */
    int num_groups;
    kao_optim_group groups[KAO_OPTIM_MAX_GROUPS];
} kao_optim_cfg;

/* torch's defaults with one group of learning rate lr. AdamW: betas (0.9, 0.999), eps 1e-8,
 * weight_decay 1e-2. SGD: momentum 0, weight_decay 0, no Nesterov. */
kao_optim_cfg kao_optim_default_cfg(kao_optim_type type, double lr);
/* "adamw" | "sgd"; anything else fails naming it. */
int kao_optim_type_parse(kao_optim_type *out, const char *name);
const char *kao_optim_type_name(kao_optim_type type);
/* Fails (message naming the field and value) on what torch.optim rejects: lr < 0, eps < 0,
 * betas outside [0, 1), weight decay < 0, momentum < 0, Nesterov without momentum, and on
 * num_groups outside [1, KAO_OPTIM_MAX_GROUPS]. */
int kao_optim_cfg_check(const kao_optim_cfg *cfg);

typedef struct {
    kao_optim_cfg cfg;
    const kao_tensor *tensors; /* (num_tensors) the table, borrowed; its offsets index params */
    int num_tensors;
    size_t numel;              /* floats in the params block */
    int *group;                /* (num_tensors) group of each tensor, -1: not updated */
    float *exp_avg;            /* (numel) AdamW m / SGD momentum buffer; NULL for SGD without momentum */
    float *exp_avg_sq;         /* (numel) AdamW v; NULL for SGD */
    int64_t *steps;            /* (num_tensors) updates applied to each tensor (torch's state["step"]) */
} kao_optim;

/* group (num_tensors): each tensor's group in [0, num_groups) or -1 (frozen; buffers must be -1).
 * State starts zeroed, steps 0. Fails only on a bad cfg (kao_optim_cfg_check). */
int kao_optim_create(kao_optim *o, const kao_optim_cfg *cfg, const kao_tensor *tensors,
                     int num_tensors, size_t numel, const int *group);
void kao_optim_free(kao_optim *o);

/* One update of every tensor in a group. params (numel) updated; grads (numel) read only.
 * lr_factor: the schedule's factor (kao_schedule_factor) for this step. */
void kao_optim_step(kao_optim *o, float *params, const float *grads, double lr_factor);

/* Checkpoint state: k in [0, kao_optim_num_states). Each block is (numel), the params' layout. */
int kao_optim_num_states(const kao_optim *o);
const char *kao_optim_state_name(const kao_optim *o, int k);
float *kao_optim_state(const kao_optim *o, int k);

/* ---- norms and gradient clipping --------------------------------------------------------- */

typedef struct {
    float *data; /* (numel) */
    size_t numel;
} kao_span;

/* The gradient ranges of the tensors o updates (group >= 0), adjacent ones merged; writes at
 * most o->num_tensors spans to out and returns how many. */
int kao_optim_grad_spans(kao_span *out, const kao_optim *o, float *grads);

/* ‖all spans‖₂, accumulated in double and rounded to float (clip_grad_norm's total); not finite
 * when an element is not. */
float kao_norm(const kao_span *spans, int count);

/* torch.nn.utils.clip_grad_norm_(grads, max_norm) with norm_type 2: total = ‖all grads‖₂
 * (accumulated in double, rounded to float), coef = min(max_norm / (total + 1e-6), 1) in float
 * (torch computes (1/(total + 1e-6))·max_norm), every gradient × coef. Returns total, the norm
 * before clipping. Like torch (error_if_nonfinite=False) a non-finite total scales by NaN or 0:
 * the caller checks the returned norm (kao train stops the run when it is not finite). */
float kao_clip_grad_norm(kao_span *grads, int count, float max_norm);

#endif
