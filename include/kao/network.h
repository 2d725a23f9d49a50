/* network.h — the EfficientNetV2 embedding network's forward and backward passes, on any backend
 * (backend.h).
 *
 * kao_net_weights holds the model's parameters and BN statistics in a backend's memory (on the
 * CPU they are the model's own blocks). kao_acts holds every activation of one batch at one input
 * size, in the same backend's memory. In training mode each tensor that backward needs has its
 * own memory (one block, carved by kao_acts_create); in eval mode the blocks ping-pong between a
 * few buffers, so inference needs only a few activation-sized tensors. Everything is NHWC.
 */
#ifndef KAO_NETWORK_H
#define KAO_NETWORK_H

#include "kao/backend.h"
#include "kao/model.h"
#include "kao/ops.h"
#include "kao/profile.h"
#include "kao/rng.h"

/* What one block keeps for backward. Block types use a subset (NULL otherwise):
 *  cn: c1 → (BN1+SiLU) → out                         (a1 is not stored: BN backward recomputes it)
 *  er: c1 → a1 → c3 → (BN) → out
 *  ir: c1 → a1 → c2 → a2 → se_out → c3 → (BN) → out
 * With a skip, out = branch·drop_mask + in. */
typedef struct {
    int in_h, in_w, out_h, out_w;
    kao_conv_shape conv1, conv_dw, conv_pwl;
    kao_map *in;                        /* (B, in_h, in_w, in_ch)   = previous block's out */
    kao_map *c1, *a1;                   /* (B, h1, w1, mid)  conv1 output, BN1+SiLU output */
    kao_map *c2, *a2;                   /* (B, out_h, out_w, mid)  depthwise output, BN2+SiLU */
    kao_map *se_out;                    /* (B, out_h, out_w, mid)  a2 · gate */
    float *se_pooled, *se_hidden, *se_gate; /* (B, mid), (B, rd), (B, mid) */
    kao_map *c3;                        /* (B, out_h, out_w, out)  conv_pwl output */
    kao_map *out;                       /* (B, out_h, out_w, out) */
    float *mean1, *rstd1, *mean2, *rstd2, *mean3, *rstd3; /* (C) batch statistics of each BN */
    float *drop_mask;                   /* (B) 0 or 1/keep per sample; NULL = identity */
    float *drop_mask_host;              /* (B) the mask as drawn, in the backend's host memory (page-locked
                                           for a GPU: its copy then never waits for queued kernels) */
} kao_block_acts;

typedef struct {
    int batch, height, width;
    bool training;
    kao_conv_shape stem_conv, head_conv;
    const kao_map *input;               /* (B, H, W, 3) the caller's batch, or input_copy */
    kao_map *input_copy;                /* the batch converted to the map type (bf16); NULL for float maps */
    kao_map *stem_c, *stem_out;         /* (B, Hs, Ws, stem) */
    float *stem_mean, *stem_rstd;
    kao_block_acts blocks[KAO_MAX_BLOCKS];
    kao_map *head_c, *head_a;           /* (B, Hh, Wh, nf) */
    float *head_mean, *head_rstd;
    float *pooled;                      /* (B, nf) */
    float *embedding;                   /* (B, E) */
    kao_backend *backend;               /* whose memory all of the above is */
    size_t map_bytes;                   /* the backend's map element size when the plan was made */
    void *memory;                       /* the one block everything above is carved from */
    float *host_masks;                  /* the drop_mask_host blocks (backend host memory) */
    size_t memory_bytes;
    kao_profile *profile;               /* optional: time every op into it (NULL: off) */
} kao_acts;

/* Options of one training forward/backward. */
typedef struct {
    bool freeze_bn;          /* BN uses (and keeps) its running statistics, as in eval */
    int frozen_units;        /* how many leading units get no gradient, counting the stem as unit 0,
                                block stage s as unit s+1 and conv_head+bn2 as unit num_stages+1;
                                0 = nothing frozen, num_stages+2 = only the classifier trains */
} kao_train_options;

/* Whether tensor t is frozen under opt (the classifier never is). */
bool kao_tensor_frozen(const kao_tensor *t, const kao_train_options *opt);

/* The model's parameters (num_params) and BN running statistics (num_buffers) in be's memory:
 * copies of the model's blocks, or the blocks themselves where be's memory is the host's. */
typedef struct {
    kao_backend *backend;
    float *params, *buffers;
    bool owned;           /* copies (freed with the struct) rather than the model's own blocks */
} kao_net_weights;
void kao_net_weights_create(kao_net_weights *w, const kao_model *m, kao_backend *be);
void kao_net_weights_free(kao_net_weights *w);
/* Copies the model's blocks into w (after the host model changed, e.g. a resume) or w into the
 * model's blocks (before saving); nothing to do where they are the same memory. */
void kao_net_weights_upload(kao_net_weights *w, const kao_model *m);
void kao_net_weights_download(const kao_net_weights *w, kao_model *m);
/* Table entry index of m in w: kao_tensor_data's twin for the backend's copy. */
float *kao_net_tensor(const kao_net_weights *w, const kao_model *m, int index);
/* A BatchNorm layer's tensors in w, with m's eps and momentum. */
kao_bn_tensors kao_net_bn(const kao_net_weights *w, const kao_model *m, kao_bn_ref bn);

/* Plans the activations in be's memory, maps in its current map type. */
void kao_acts_create(kao_acts *a, const kao_model *m, int batch, int height, int width, bool training,
                     kao_backend *be);
void kao_acts_free(kao_acts *a);
/* The bytes kao_acts_create takes for this batch and size with maps of map_bytes, without taking
 * them: to refuse a batch that cannot fit before allocating it. */
size_t kao_acts_bytes(const kao_model *m, int batch, int height, int width, bool training, size_t map_bytes);
/* Fails ("a batch of N images at HxW: needs X GiB of memory, more than ...; <hint>") when the input
 * batch and, where be computes in host memory, its activations cannot fit in this machine's memory
 * (kao_check_memory): a clear error before the allocation rather than an abort in it. */
int kao_acts_check_memory(const kao_model *m, const kao_backend *be, int batch, int height, int width,
                          bool training, const char *hint);

/* Eval forward: running BN statistics, no drop path. input (B, H, W, 3) floats in the backend's
 * memory; the result (floats) is in a->embedding. */
void kao_forward_eval(const kao_model *m, const kao_net_weights *w, kao_acts *a, const float *input);
/* Training forward: batch statistics (running statistics updated in w unless opt->freeze_bn,
 * counted in m->bn_batches_tracked), drop path drawn from rng. a must have been created with
 * training = true. */
void kao_forward_train(kao_model *m, kao_net_weights *w, kao_acts *a, const float *input,
                       const kao_train_options *opt, kao_rng *rng);
/* Backward from d_embedding (B, E). grads has the layout of m->params and is ACCUMULATED into;
 * d_input (B, H, W, 3) is written when non-NULL. d_embedding is not modified. Scratch gradient
 * memory is taken from scratch, which this call allocates on first use. Everything is in the
 * backend's memory of a. */
typedef struct {
    kao_backend *backend;
    kao_map *buf[4];      /* each as large as the largest activation: dout, din and two temporaries */
    size_t bytes;
} kao_grad_scratch;
void kao_backward(const kao_model *m, const kao_net_weights *w, float *grads, float *d_input, const kao_acts *a,
                  const float *d_embedding, const kao_train_options *opt, kao_grad_scratch *scratch);
void kao_grad_scratch_free(kao_grad_scratch *s);

#endif
