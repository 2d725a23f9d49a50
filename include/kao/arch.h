/* arch.h — EfficientNetV2 architectures exactly as timm builds them.
 *
 * kao_arch_build() turns a variant name (tf_efficientnetv2_b0 … _l) and optional width/depth
 * multipliers into the list of blocks with their channel counts, kernels and strides, using
 * timm's rounding rules (timm/models/_efficientnet_builder.py: round_channels, and the depth
 * multiplier's ceil per stage). Nothing here depends on the input
 * size; spatial sizes are computed per run by kao_plan (model.h).
 */
#ifndef KAO_ARCH_H
#define KAO_ARCH_H

#include <stdbool.h>

#define KAO_MAX_BLOCKS 128
#define KAO_MAX_STAGES 8

typedef enum {
    KAO_BLOCK_CN, /* ConvBnAct: conv k×k → BN+SiLU (+ skip) */
    KAO_BLOCK_ER, /* EdgeResidual / FusedMBConv: conv k×k → BN+SiLU → conv 1×1 → BN (+ skip) */
    KAO_BLOCK_IR, /* InvertedResidual / MBConv: 1×1 → BN+SiLU → dw k×k → BN+SiLU → SE → 1×1 → BN (+ skip) */
} kao_block_type;

typedef struct {
    kao_block_type type;
    int stage, index_in_stage, global_index;
    int in_ch, mid_ch, out_ch;
    int se_ch;          /* squeeze-excite reduced channels; 0 = no SE */
    int kernel, stride;
    bool has_skip;
    float drop_path_rate; /* timm: drop_path_rate · global_index / num_blocks */
} kao_block_arch;

typedef struct {
    char variant[64];          /* timm model name, e.g. "tf_efficientnetv2_b0" */
    double width_mult, depth_mult;
    int stem_ch;
    int num_blocks, num_stages;
    kao_block_arch blocks[KAO_MAX_BLOCKS];
    int num_features;          /* channels after conv_head */
    int embedding_dim;         /* classifier out_features */
    float bn_eps, bn_momentum;
} kao_arch;

/* width_mult/depth_mult <= 0 take the variant's own values. Returns KAO_ERR for an unknown
 * variant (the message lists the known ones) or multipliers that would give an empty model. */
int kao_arch_build(kao_arch *arch, const char *variant, double width_mult, double depth_mult,
                   int embedding_dim, float drop_path_rate);

/* What timm's default pretrained weights of a variant expect (its pretrained_cfg): the input size
 * timm evaluates them at (test_input_size) and the normalisation, on the 0..1 scale, RGB. */
typedef struct {
    int input_size;
    float mean[3], std[3];
} kao_pretrained_cfg;
int kao_arch_pretrained_cfg(const char *variant, kao_pretrained_cfg *out);

/* The names kao_arch_build accepts, NULL-terminated. */
extern const char *const kao_variant_names[];

/* timm's helpers, exposed for tests. */
int kao_make_divisible(double v, int divisor, double round_limit);

#endif
