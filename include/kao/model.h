/* model.h — the tensor table and the EfficientNetV2 embedding model.
 *
 * One table lists every tensor by its timm state_dict name and PyTorch shape. It drives
 * everything that touches weights: allocation (parameters in one block, BN buffers in another,
 * gradients and optimizer moments with the parameters' layout), HDF5 loading and saving, ONNX
 * export and the optimizer. The table is generated from the architecture (arch.h) in timm's
 * state_dict order; nothing else lists tensors.
 */
#ifndef KAO_MODEL_H
#define KAO_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "kao/arch.h"

typedef enum {
    KAO_ROLE_PARAM,  /* trainable: in model->params, has a gradient */
    KAO_ROLE_BUFFER, /* BN running mean/var: in model->buffers */
} kao_role;

typedef struct {
    char name[64];     /* timm key, e.g. "blocks.3.0.se.conv_reduce.bias" */
    int ndim;
    int shape[4];      /* PyTorch shape */
    size_t numel;
    size_t offset;     /* floats into params or buffers, by role */
    kao_role role;
    bool no_decay;     /* 1-D tensors (BN affine, biases): optionally excluded from weight decay */
    int stage;         /* -1 stem, 0..num_stages-1 blocks, num_stages head (conv_head, bn2, classifier) */
    bool is_head;      /* the embedding head (classifier), trained with its own learning rate */
} kao_tensor;

typedef struct { int weight, bias; } kao_conv_ref;             /* table indices; bias -1 if none */
typedef struct { int weight, bias, mean, var, index; } kao_bn_ref; /* index: BN layer number */

typedef struct {
    kao_block_arch arch;
    kao_conv_ref conv1; kao_bn_ref bn1;      /* cn: conv; er: conv_exp (k×k); ir: conv_pw (1×1) */
    kao_conv_ref conv_dw; kao_bn_ref bn_dw;  /* ir: conv_dw, bn2 */
    kao_conv_ref se_reduce, se_expand;       /* ir with SE */
    kao_conv_ref conv_pwl; kao_bn_ref bn_pwl;/* er: conv_pwl, bn2; ir: conv_pwl, bn3 */
} kao_block;

typedef struct {
    kao_arch arch;
    kao_tensor *tensors;
    int num_tensors;
    float *params;              /* (num_params) every trainable tensor, in table order */
    size_t num_params;
    float *buffers;             /* (num_buffers) BN running statistics */
    size_t num_buffers;
    int64_t *bn_batches_tracked;/* (num_bn) PyTorch's num_batches_tracked, saved for round trips */
    int num_bn;

    kao_conv_ref conv_stem; kao_bn_ref bn_stem;
    kao_block blocks[KAO_MAX_BLOCKS];
    kao_conv_ref conv_head; kao_bn_ref bn_head;
    int classifier_weight, classifier_bias;
} kao_model;

/* Builds the table for arch and allocates parameters and buffers (zeroed). */
void kao_model_create(kao_model *m, const kao_arch *arch);
void kao_model_free(kao_model *m);
/* timm's _init_weight_goog (docs/architecture.md, 'Initialisation') with kao's seeded generator;
 * BN running stats to mean 0 / var 1. */
void kao_model_init(kao_model *m, uint64_t seed);
/* Re-initialises only the embedding head (classifier), as when ImageNet weights are loaded. */
void kao_model_init_head(kao_model *m, uint64_t seed);

int kao_model_find(const kao_model *m, const char *name); /* -1 if absent */
float *kao_tensor_data(const kao_model *m, int index);
/* Number of trainable floats, as PyTorch counts parameters (BN buffers excluded). */
size_t kao_model_param_count(const kao_model *m);
/* e.g. "[192, 48, 1, 1]" */
void kao_shape_string(char *out, size_t out_size, int ndim, const int *shape);

#endif
