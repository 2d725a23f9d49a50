/* train_step.h — one training step of the embedding network with an ArcFace head:
 * forward → ArcFace loss → backward → gradient clipping → optimizer updates.
 *
 * This is the PyTorch pipeline kao replaces, step for step:
 *     opt.zero_grad(); loss_opt.zero_grad()
 *     loss = ArcFaceLoss(model(x), labels); loss.backward()
 *     clip_grad_norm_(model.parameters(), clip)        # the network's gradients only
 *     opt.step(); loss_opt.step()                      # two optimizers: network, ArcFace W
 * with the learning rates of both scaled by the schedule's factor at the current step.
 * Everything a checkpoint needs is in kao_trainer: the model (parameters, BN statistics), W, both
 * optimizers' state, the step count and the drop-path generator.
 *
 * The step runs on a backend (backend.h). On the CPU the trainer works on the host model, W and
 * optimizer state directly; on a GPU it works on copies in device memory, and the host copies
 * (what checkpoints save and load) are brought up to date with kao_trainer_to_host and copied
 * back with kao_trainer_to_backend. Both are no-ops on the CPU.
 */
#ifndef KAO_TRAIN_STEP_H
#define KAO_TRAIN_STEP_H

#include "kao/arcface.h"
#include "kao/backend.h"
#include "kao/model.h"
#include "kao/network.h"
#include "kao/optim.h"
#include "kao/rng.h"
#include "kao/schedule.h"

/* Network optimizer groups: the backbone (group 0, with exclude_no_decay as configured) and the
 * embedding head (group 1, if the config has a second group; else the head shares group 0). */
enum { KAO_GROUP_BACKBONE = 0, KAO_GROUP_HEAD = 1 };

typedef struct {
    kao_optim_cfg model_optim;   /* 1 or 2 groups (backbone, head) */
    kao_optim_cfg arcface_optim; /* 1 group: the ArcFace W */
    kao_arcface_cfg arcface;
    kao_schedule schedule;
    kao_train_options options;   /* frozen units, frozen BN statistics */
    double grad_clip;            /* max global norm of the network's gradients; 0 = no clipping */
    uint64_t seed;               /* drop path */
} kao_trainer_cfg;

typedef struct {
    float loss;
    float grad_norm;             /* before clipping; 0 when clipping is off */
    double lr_factor;
    int correct;                 /* rows whose nearest class (by cosine) is their label */
    double seconds_forward, seconds_loss, seconds_backward, seconds_update;
} kao_step_stats;

typedef struct {
    kao_trainer_cfg cfg;
    kao_model *model;            /* borrowed; host */
    kao_backend *backend;        /* borrowed; where the step runs */
    int num_classes;
    kao_net_weights weights;     /* the model's tensors on the backend */
    float *grads;                /* (num_params) backend: the network's gradients, params' layout */
    float *arcface_W;            /* (E, C) host: what checkpoints save and validation scores with */
    float *W;                    /* (E, C) backend: arcface_W itself on the CPU */
    float *dW;                   /* (E, C) backend */
    kao_tensor arcface_tensor;   /* one-entry table for W */
    kao_optim optim, arcface_optim;           /* host: table, groups, step counts (and CPU moments) */
    void *optim_state, *arcface_optim_state;  /* the backend's moments (NULL on the CPU) */
    int64_t step;                /* optimizer steps taken */
    bool host_current;           /* the host copies equal the backend's: kao_trainer_to_host has nothing to do
                                    (validation, best.h5, last.h5 and a checkpoint in a row copy once) */
    kao_rng rng;                 /* drop path */
    /* per-batch memory, in the backend's */
    int batch, height, width, max_batch;
    kao_acts acts;
    void *arcface_acts;
    kao_grad_scratch scratch;
    float *d_embedding;          /* (B, E) */
    float *input;                /* (B, H, W, 3) the batch's copy; NULL where the backend is the host */
    int *labels;                 /* (B) */
    int *labels_host;            /* (B) their copy's source, in the backend's host memory (page-locked) */
    kao_span *spans;             /* (optim.num_tensors) host list of gradient ranges for clipping */
} kao_trainer;

/* W is initialised N(0, 1) from seed (stream of its own); the caller may overwrite
 * t->arcface_W afterwards (resume, carried-over identities; then kao_trainer_to_backend). Fails on
 * a bad optimizer config. */
int kao_trainer_create(kao_trainer *t, kao_model *m, kao_backend *be, int num_classes, const kao_trainer_cfg *cfg,
                       int batch, int height, int width);
void kao_trainer_free(kao_trainer *t);

/* Host ← backend: the model's parameters and BN statistics, W and both optimizers' moments. */
void kao_trainer_to_host(kao_trainer *t);
/* Backend ← host, after the host copies changed. */
void kao_trainer_to_backend(kao_trainer *t);

/* Changes which leading units are frozen (head-only warm-up, then the whole network). */
void kao_trainer_set_frozen(kao_trainer *t, int frozen_units);

/* One step on a batch: input (B, H, W, 3) NHWC, labels (B), both host. B may be smaller than the
 * planned batch (the last batch of an epoch); the activations are re-planned when it changes. */
void kao_trainer_step(kao_trainer *t, kao_step_stats *stats, const float *input, const int *labels, int B);

/* ‖the network's parameters‖₂ (every trainable tensor, frozen ones included) on the backend:
 * kao train's divergence check compares it from step to step. */
float kao_trainer_weight_norm(kao_trainer *t);

/* The gradient part alone (no update), for tests: fills t->grads, t->dW and, when d_input (host)
 * is non-NULL, the input gradient (B, H, W, 3). Returns the loss. */
float kao_trainer_gradients(kao_trainer *t, float *d_input, const float *input, const int *labels, int B,
                            kao_step_stats *stats);

#endif
