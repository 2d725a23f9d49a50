/* arcface.h — pytorch-metric-learning's ArcFaceLoss (2.8.1), forward and backward, on the CPU.
 *
 * docs/numerics.md, 'ArcFace loss'. With x the embeddings (B, E), W the class weights (E, C)
 * (transposed relative to nn.Linear, as pytorch-metric-learning keeps it) and y the labels:
 *   ê = x / max(‖x‖, 1e-12) per row, Ŵ = W / max(‖W‖, 1e-12) per column (F.normalize),
 *   cos = ê·Ŵ (B, C),
 *   target: θ = acos(clamp(cos_y, -1, 1)); t = cos(θ + m) if θ <= π − m, else cos_y − m·sin m,
 *   logits = scale · cos, with column y replaced by scale · t,
 *   loss = mean over the batch of softmax cross-entropy.
 * m = radians(margin_deg); defaults margin 28.6° (m = 0.49916…) and scale 64.
 *
 * Numerics: the product and its two backward products are cblas_sgemm (float); norms, the target
 * logit, log-sum-exp (max subtracted) and the mean are in double. t is computed as
 * cos·cos m − sinθ·sin m with sinθ = sqrt(1 − cos²), the same value as cos(θ + m).
 *
 * Where kao departs from PyTorch (on purpose, at the edges only):
 *  - dt/dcos = sin(θ+m)/sin θ = cos m + sin m · cos / sinθ grows without bound as cos → 1: the
 *    loss has a cone (|x⊥|-like) point at θ = 0, where no gradient exists. PyTorch's autograd
 *    multiplies acos' −1/sqrt(1−c²) = −inf there and returns NaN gradients (float32: the whole
 *    row of d_emb and column of dW); a cosine rounded above 1 gets 0 from its clamp. kao takes
 *    dt/dcos = 0 at cos >= 1: the symmetric subgradient, the value central finite differences
 *    see, and PyTorch's own value just above 1. Below 1 no clamp is needed: a float cosine
 *    c < 1 is at most 1 − 2⁻²⁴, so sinθ >= 3.45e-4 and dt/dcos <= 1388. Near θ = 0 the target
 *    term is (Ŵ_y − ê·cos_y)·dt, a tiny vector times a large factor, so kao and PyTorch float32
 *    both carry rounding noise there; float64 PyTorch agrees with kao to the stated tolerances.
 *  - In the other branch (θ > π − m) t = cos_y − m·sin m, so dt/dcos = 1 exactly; PyTorch
 *    differentiates cos(acos(c)) and gets ±inf/NaN at c = −1.
 *  - A cosine rounded below −1: PyTorch's clamp gives it a zero gradient; kao keeps 1, the
 *    branch's exact derivative (continuous in the cosine; its factor Ŵ_y − ê·cos_y is ~0 there).
 *  - The branch test is θ <= π − m in double; within a float ulp of the threshold PyTorch's
 *    float32 test can choose the other branch (the two branches differ there by 0.117, as in
 *    pytorch-metric-learning and insightface).
 */
#ifndef KAO_ARCFACE_H
#define KAO_ARCFACE_H

#include <stdint.h>

#include "kao/model.h"
#include "kao/rng.h"

typedef struct {
    double margin_deg; /* additive angular margin in degrees (pytorch-metric-learning's unit) */
    double scale;      /* logit scale s */
} kao_arcface_cfg;

/* margin 28.6°, scale 64: ArcFaceLoss's defaults. */
kao_arcface_cfg kao_arcface_default_cfg(void);
/* Fails (naming the field and value) unless 0 <= margin_deg < 180 and scale > 0. */
int kao_arcface_cfg_check(const kao_arcface_cfg *cfg);

/* What the forward saves for the backward, and the backward's scratch. Sized once for the
 * largest batch; one per thread of control. */
typedef struct {
    int max_batch, dim, classes;   /* B_max, E, C */
    float *emb_hat;   /* (B_max, E) normalised embeddings ê */
    float *emb_norm;  /* (B_max) max(‖x‖, 1e-12) */
    float *w_hat;     /* (E, C) normalised class weights Ŵ */
    float *w_norm;    /* (C) max(‖W[:, c]‖, 1e-12) */
    float *cosine;    /* (B_max, C) ê·Ŵ, before the margin: the validation scores */
    float *probs;     /* (B_max, C) softmax of the scaled logits (with the margin) */
    float *dtarget;   /* (B_max) d t / d cos_y of each row's target */
    float *dcos;      /* (B_max, C) backward scratch */
    float *dw_hat;    /* (E, C) backward scratch */
    float *demb_hat;  /* (B_max, E) backward scratch */
    double *col_acc;  /* (C) per-column sums (norms, dot products) */
} kao_arcface_acts;

void kao_arcface_acts_create(kao_arcface_acts *a, int max_batch, int dim, int classes);
void kao_arcface_acts_free(kao_arcface_acts *a);

/* W (E, C) ~ N(0, 1), as torch.nn.init.normal_ (drawn in memory order from kao's generator). */
void kao_arcface_init_weight(float *W, int E, int C, kao_rng *rng);
/* A one-tensor table for W so the optimizer and checkpoints treat it like the model's tensors:
 * name "W" (the loss module's state_dict key), shape [E, C], offset 0, a parameter with decay,
 * stage -1 and not is_head (it is outside the backbone; give it its own optimizer or group). */
void kao_arcface_weight_tensor(kao_tensor *t, int E, int C);

/* Returns the mean loss; fills every field of acts for the first B rows.
 * emb (B, E); W (E, C); labels (B) in [0, C) (checked: a broken label is kao's own bug). */
float kao_arcface_forward(kao_arcface_acts *acts, const float *emb, const float *W,
                          const int *labels, int B, int E, int C, const kao_arcface_cfg *cfg);

/* Gradient of the mean loss from the saved acts. d_emb (B, E) overwritten (or NULL to skip);
 * dW (E, C) accumulated (+=). Uses acts' scratch fields. */
void kao_arcface_backward(float *d_emb, float *dW, kao_arcface_acts *acts, const int *labels,
                          int B, int E, int C, const kao_arcface_cfg *cfg);

/* Scores without labels (inference, validation): acts->emb_hat, emb_norm, w_hat, w_norm and
 * cosine (B, C) are filled; probs and dtarget are left alone. */
void kao_arcface_cosine(kao_arcface_acts *acts, const float *emb, const float *W, int B, int E, int C);

/* Number of rows whose arg-max cosine is its label (ties: the lowest class index, as torch.argmax). */
int kao_arcface_correct(const float *cosine, const int *labels, int B, int C);

#endif
