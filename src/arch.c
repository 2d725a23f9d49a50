#include "kao/arch.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "kao/image.h"
#include "kao/util.h"

/* One stage of timm's arch_def strings, e.g. "ir_r3_k3_s2_e4_c96_se0.25"
 * (docs/architecture.md, 'Variants'). */
typedef struct {
    kao_block_type type;
    int repeats, kernel, stride, expansion, out_ch;
    bool se, skip_token;
} stage_def;

typedef struct {
    const char *name;
    double width_mult, depth_mult;
    int family;   /* 0: _gen_efficientnetv2_base (b0–b3), 1: s, 2: m, 3: l */
    /* timm's default pretrained_cfg (the tag timm.create_model(name, pretrained=True) loads):
     * test_input_size, and ImageNet mean/std (in1k tags of b0–b2) or 0.5/0.5 (b3's and s/m/l's
     * in21k_ft_in1k defaults). */
    int test_size;
    bool imagenet_norm;
} variant_def;

static const variant_def variants[] = {
    {"tf_efficientnetv2_b0", 1.0, 1.0, 0, 224, true}, {"tf_efficientnetv2_b1", 1.0, 1.1, 0, 240, true},
    {"tf_efficientnetv2_b2", 1.1, 1.2, 0, 260, true}, {"tf_efficientnetv2_b3", 1.2, 1.4, 0, 300, false},
    {"tf_efficientnetv2_s", 1.0, 1.0, 1, 384, false}, {"tf_efficientnetv2_m", 1.0, 1.0, 2, 480, false},
    {"tf_efficientnetv2_l", 1.0, 1.0, 3, 480, false},
};

int kao_arch_pretrained_cfg(const char *variant, kao_pretrained_cfg *out) {
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
        if (strcmp(variants[i].name, variant) != 0) continue;
        out->input_size = variants[i].test_size;
        for (int c = 0; c < 3; c++) {
            out->mean[c] = variants[i].imagenet_norm ? kao_imagenet_mean[c] : 0.5f;
            out->std[c] = variants[i].imagenet_norm ? kao_imagenet_std[c] : 0.5f;
        }
        return KAO_OK;
    }
    return kao_fail("unknown model '%s'", variant);
}

const char *const kao_variant_names[] = {
    "tf_efficientnetv2_b0", "tf_efficientnetv2_b1", "tf_efficientnetv2_b2", "tf_efficientnetv2_b3",
    "tf_efficientnetv2_s",  "tf_efficientnetv2_m",  "tf_efficientnetv2_l",  NULL,
};

#define CN KAO_BLOCK_CN
#define ER KAO_BLOCK_ER
#define IR KAO_BLOCK_IR
static const stage_def base_stages[] = {
    {CN, 1, 3, 1, 1, 16, false, true},  {ER, 2, 3, 2, 4, 32, false, false},
    {ER, 2, 3, 2, 4, 48, false, false}, {IR, 3, 3, 2, 4, 96, true, false},
    {IR, 5, 3, 1, 6, 112, true, false}, {IR, 8, 3, 2, 6, 192, true, false},
};
static const stage_def s_stages[] = {
    {CN, 2, 3, 1, 1, 24, false, true},  {ER, 4, 3, 2, 4, 48, false, false},
    {ER, 4, 3, 2, 4, 64, false, false}, {IR, 6, 3, 2, 4, 128, true, false},
    {IR, 9, 3, 1, 6, 160, true, false}, {IR, 15, 3, 2, 6, 256, true, false},
};
static const stage_def m_stages[] = {
    {CN, 3, 3, 1, 1, 24, false, true},   {ER, 5, 3, 2, 4, 48, false, false},
    {ER, 5, 3, 2, 4, 80, false, false},  {IR, 7, 3, 2, 4, 160, true, false},
    {IR, 14, 3, 1, 6, 176, true, false}, {IR, 18, 3, 2, 6, 304, true, false},
    {IR, 5, 3, 1, 6, 512, true, false},
};
static const stage_def l_stages[] = {
    {CN, 4, 3, 1, 1, 32, false, true},   {ER, 7, 3, 2, 4, 64, false, false},
    {ER, 7, 3, 2, 4, 96, false, false},  {IR, 10, 3, 2, 4, 192, true, false},
    {IR, 19, 3, 1, 6, 224, true, false}, {IR, 25, 3, 2, 6, 384, true, false},
    {IR, 7, 3, 1, 6, 640, true, false},
};
#undef CN
#undef ER
#undef IR

/* timm.layers.helpers.make_divisible with min_value = divisor. */
int kao_make_divisible(double v, int divisor, double round_limit) {
    int n = (int)(v + divisor / 2.0) / divisor * divisor;
    if (n < divisor) n = divisor;
    if (n < round_limit * v) n += divisor;
    return n;
}

/* timm's round_channels: the channel multiplier applies even at 1.0. */
static int round_channels(int channels, double multiplier, double round_limit) {
    return kao_make_divisible(channels * multiplier, 8, round_limit);
}

int kao_arch_build(kao_arch *arch, const char *variant, double width_mult, double depth_mult,
                   int embedding_dim, float drop_path_rate) {
    const variant_def *def = NULL;
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++)
        if (strcmp(variants[i].name, variant) == 0) def = &variants[i];
    if (!def) {
        char known[512] = "";
        for (int i = 0; kao_variant_names[i]; i++) {
            strcat(known, i ? ", " : "");
            strcat(known, kao_variant_names[i]);
        }
        return kao_fail("unknown model '%s' (known: %s)", variant, known);
    }
    if (embedding_dim <= 0) return kao_fail("embedding dimension must be positive, got %d", embedding_dim);
    if (width_mult <= 0) width_mult = def->width_mult;
    if (depth_mult <= 0) depth_mult = def->depth_mult;
    if (width_mult > 8 || depth_mult > 8)
        return kao_fail("width/depth multipliers must be at most 8, got %g/%g", width_mult, depth_mult);

    const stage_def *stages;
    int num_stages;
    switch (def->family) {
    case 0: stages = base_stages; num_stages = 6; break;
    case 1: stages = s_stages; num_stages = 6; break;
    case 2: stages = m_stages; num_stages = 7; break;
    default: stages = l_stages; num_stages = 7; break;
    }
    /* _gen_efficientnetv2_base uses round_limit 0 (no +8 correction); s/m/l use 0.9. */
    double round_limit = def->family == 0 ? 0.0 : 0.9;

    memset(arch, 0, sizeof *arch);
    snprintf(arch->variant, sizeof arch->variant, "%s", variant);
    arch->width_mult = width_mult;
    arch->depth_mult = depth_mult;
    arch->num_stages = num_stages;
    arch->bn_eps = 1e-3f;
    arch->bn_momentum = 0.1f;
    arch->embedding_dim = embedding_dim;
    /* Doubles throughout, as Python computes timm's rounding. */
    double wm = width_mult, dm = depth_mult;
    arch->stem_ch = round_channels(def->family == 0 ? 32 : (def->family == 3 ? 32 : 24), wm, round_limit);
    arch->num_features = def->family >= 2 ? 1280 : round_channels(1280, wm, round_limit);

    int in_ch = arch->stem_ch, n = 0;
    for (int s = 0; s < num_stages; s++) {
        const stage_def *sd = &stages[s];
        int repeats = (int)ceil(sd->repeats * dm);
        int out_ch = round_channels(sd->out_ch, wm, round_limit);
        for (int r = 0; r < repeats; r++) {
            if (n >= KAO_MAX_BLOCKS) return kao_fail("model too deep: more than %d blocks", KAO_MAX_BLOCKS);
            kao_block_arch *b = &arch->blocks[n];
            b->type = sd->type;
            b->stage = s;
            b->index_in_stage = r;
            b->global_index = n;
            b->in_ch = in_ch;
            b->out_ch = out_ch;
            b->kernel = sd->kernel;
            b->stride = r == 0 ? sd->stride : 1;
            b->mid_ch = sd->type == KAO_BLOCK_CN ? out_ch : kao_make_divisible((double)in_ch * sd->expansion, 8, 0.9);
            if (sd->se) {
                /* SqueezeExcite(mid, rd_ratio = se_ratio / exp_ratio), rd = round(mid · rd_ratio):
                 * Python's round() rounds half to even, as nearbyint does by default. */
                double rd_ratio = 0.25 / (double)sd->expansion;
                b->se_ch = (int)nearbyint((double)b->mid_ch * rd_ratio);
                if (b->se_ch < 1) b->se_ch = 1;
            }
            bool same_shape = b->stride == 1 && in_ch == out_ch;
            b->has_skip = sd->type == KAO_BLOCK_CN ? (sd->skip_token && same_shape) : same_shape;
            in_ch = out_ch;
            n++;
        }
    }
    arch->num_blocks = n;
    for (int i = 0; i < n; i++)
        arch->blocks[i].drop_path_rate = drop_path_rate * (float)i / (float)n;
    return KAO_OK;
}
