#include "kao/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kao/rng.h"
#include "kao/util.h"

/* ---- building the table ------------------------------------------------------------------ */

typedef struct {
    kao_model *m;
    int capacity;
} table_builder;

static int add_tensor(table_builder *tb, const char *name, kao_role role, int stage, int ndim,
                      int d0, int d1, int d2, int d3) {
    kao_model *m = tb->m;
    if (m->num_tensors == tb->capacity) {
        tb->capacity = tb->capacity ? 2 * tb->capacity : 256;
        m->tensors = kao_realloc(m->tensors, (size_t)tb->capacity * sizeof *m->tensors, "tensor table");
    }
    kao_tensor *t = &m->tensors[m->num_tensors];
    memset(t, 0, sizeof *t);
    KAO_ASSERT(strlen(name) < sizeof t->name, "tensor name too long: %s", name);
    strcpy(t->name, name);
    t->ndim = ndim;
    int dims[4] = {d0, d1, d2, d3};
    t->numel = 1;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = dims[i];
        t->numel *= (size_t)dims[i];
    }
    t->role = role;
    t->no_decay = ndim == 1;
    t->stage = stage;
    if (role == KAO_ROLE_PARAM) {
        t->offset = m->num_params;
        m->num_params += t->numel;
    } else {
        t->offset = m->num_buffers;
        m->num_buffers += t->numel;
    }
    return m->num_tensors++;
}

static kao_conv_ref add_conv(table_builder *tb, const char *prefix, int stage, int out_ch, int in_ch,
                             int k, bool bias) {
    char name[64];
    kao_conv_ref ref;
    snprintf(name, sizeof name, "%s.weight", prefix);
    ref.weight = add_tensor(tb, name, KAO_ROLE_PARAM, stage, 4, out_ch, in_ch, k, k);
    ref.bias = -1;
    if (bias) {
        snprintf(name, sizeof name, "%s.bias", prefix);
        ref.bias = add_tensor(tb, name, KAO_ROLE_PARAM, stage, 1, out_ch, 0, 0, 0);
    }
    return ref;
}

static kao_bn_ref add_bn(table_builder *tb, const char *prefix, int stage, int ch) {
    char name[64];
    kao_bn_ref ref;
    snprintf(name, sizeof name, "%s.weight", prefix);
    ref.weight = add_tensor(tb, name, KAO_ROLE_PARAM, stage, 1, ch, 0, 0, 0);
    snprintf(name, sizeof name, "%s.bias", prefix);
    ref.bias = add_tensor(tb, name, KAO_ROLE_PARAM, stage, 1, ch, 0, 0, 0);
    snprintf(name, sizeof name, "%s.running_mean", prefix);
    ref.mean = add_tensor(tb, name, KAO_ROLE_BUFFER, stage, 1, ch, 0, 0, 0);
    snprintf(name, sizeof name, "%s.running_var", prefix);
    ref.var = add_tensor(tb, name, KAO_ROLE_BUFFER, stage, 1, ch, 0, 0, 0);
    ref.index = tb->m->num_bn++;
    return ref;
}

static void add_block(table_builder *tb, kao_block *blk, const kao_block_arch *a) {
    char p[48], name[64];
    snprintf(p, sizeof p, "blocks.%d.%d", a->stage, a->index_in_stage);
    int s = a->stage;
    memset(blk, 0, sizeof *blk);
    blk->arch = *a;
    blk->conv_dw = blk->se_reduce = blk->se_expand = blk->conv_pwl = (kao_conv_ref){-1, -1};
    blk->bn_dw = blk->bn_pwl = (kao_bn_ref){-1, -1, -1, -1, -1};
#define NAME(suffix) (snprintf(name, sizeof name, "%s." suffix, p), name)
    switch (a->type) {
    case KAO_BLOCK_CN:
        blk->conv1 = add_conv(tb, NAME("conv"), s, a->out_ch, a->in_ch, a->kernel, false);
        blk->bn1 = add_bn(tb, NAME("bn1"), s, a->out_ch);
        break;
    case KAO_BLOCK_ER:
        blk->conv1 = add_conv(tb, NAME("conv_exp"), s, a->mid_ch, a->in_ch, a->kernel, false);
        blk->bn1 = add_bn(tb, NAME("bn1"), s, a->mid_ch);
        blk->conv_pwl = add_conv(tb, NAME("conv_pwl"), s, a->out_ch, a->mid_ch, 1, false);
        blk->bn_pwl = add_bn(tb, NAME("bn2"), s, a->out_ch);
        break;
    case KAO_BLOCK_IR:
        blk->conv1 = add_conv(tb, NAME("conv_pw"), s, a->mid_ch, a->in_ch, 1, false);
        blk->bn1 = add_bn(tb, NAME("bn1"), s, a->mid_ch);
        blk->conv_dw = add_conv(tb, NAME("conv_dw"), s, a->mid_ch, 1, a->kernel, false);
        blk->bn_dw = add_bn(tb, NAME("bn2"), s, a->mid_ch);
        if (a->se_ch > 0) {
            blk->se_reduce = add_conv(tb, NAME("se.conv_reduce"), s, a->se_ch, a->mid_ch, 1, true);
            blk->se_expand = add_conv(tb, NAME("se.conv_expand"), s, a->mid_ch, a->se_ch, 1, true);
        }
        blk->conv_pwl = add_conv(tb, NAME("conv_pwl"), s, a->out_ch, a->mid_ch, 1, false);
        blk->bn_pwl = add_bn(tb, NAME("bn3"), s, a->out_ch);
        break;
    }
#undef NAME
}

void kao_model_create(kao_model *m, const kao_arch *arch) {
    memset(m, 0, sizeof *m);
    m->arch = *arch;
    table_builder tb = {m, 0};
    int head = arch->num_stages;
    m->conv_stem = add_conv(&tb, "conv_stem", -1, arch->stem_ch, 3, 3, false);
    m->bn_stem = add_bn(&tb, "bn1", -1, arch->stem_ch);
    for (int i = 0; i < arch->num_blocks; i++) add_block(&tb, &m->blocks[i], &arch->blocks[i]);
    int last_ch = arch->blocks[arch->num_blocks - 1].out_ch;
    m->conv_head = add_conv(&tb, "conv_head", head, arch->num_features, last_ch, 1, false);
    m->bn_head = add_bn(&tb, "bn2", head, arch->num_features);
    m->classifier_weight = add_tensor(&tb, "classifier.weight", KAO_ROLE_PARAM, head, 2,
                                      arch->embedding_dim, arch->num_features, 0, 0);
    m->classifier_bias = add_tensor(&tb, "classifier.bias", KAO_ROLE_PARAM, head, 1,
                                    arch->embedding_dim, 0, 0, 0);
    m->tensors[m->classifier_weight].is_head = true;
    m->tensors[m->classifier_bias].is_head = true;

    m->params = kao_aligned_alloc(m->num_params * sizeof(float), "parameters");
    m->buffers = kao_aligned_alloc(m->num_buffers * sizeof(float), "BN buffers");
    memset(m->params, 0, m->num_params * sizeof(float));
    memset(m->buffers, 0, m->num_buffers * sizeof(float));
    m->bn_batches_tracked = kao_calloc((size_t)m->num_bn, sizeof(int64_t), "BN counters");
}

void kao_model_free(kao_model *m) {
    free(m->tensors);
    free(m->params);
    free(m->buffers);
    free(m->bn_batches_tracked);
    memset(m, 0, sizeof *m);
}

/* ---- initialisation (timm's _init_weight_goog) ------------------------------------------- */

static bool ends_with(const char *s, const char *suffix) { return kao_ends_with(s, suffix); }

static void init_tensor(kao_model *m, int i, kao_rng *rng) {
    kao_tensor *t = &m->tensors[i];
    float *x = kao_tensor_data(m, i);
    if (ends_with(t->name, "running_var")) {
        for (size_t j = 0; j < t->numel; j++) x[j] = 1.0f;
    } else if (t->role == KAO_ROLE_BUFFER || t->ndim == 1) {
        /* BN weight: 1; running_mean, BN bias and conv/linear biases: 0 */
        bool bn_weight = ends_with(t->name, ".weight");
        for (size_t j = 0; j < t->numel; j++) x[j] = bn_weight ? 1.0f : 0.0f;
    } else if (t->ndim == 4) {
        /* Conv: N(0, sqrt(2 / fan_out)), fan_out = k·k·out / groups. A depthwise weight has
         * in = 1 per group, so groups = out and fan_out = k·k. */
        int groups = t->shape[1] == 1 && strstr(t->name, "conv_dw") ? t->shape[0] : 1;
        double fan_out = (double)t->shape[2] * t->shape[3] * t->shape[0] / groups;
        float std = (float)sqrt(2.0 / fan_out);
        for (size_t j = 0; j < t->numel; j++) x[j] = std * kao_rng_normal(rng);
    } else {
        /* Linear: U(-1/sqrt(out_features), +1/sqrt(out_features)). */
        float r = 1.0f / sqrtf((float)t->shape[0]);
        for (size_t j = 0; j < t->numel; j++) x[j] = r * (2.0f * kao_rng_uniform(rng) - 1.0f);
    }
}

void kao_model_init(kao_model *m, uint64_t seed) {
    kao_rng rng;
    kao_rng_seed(&rng, seed, 0x1417);
    for (int i = 0; i < m->num_tensors; i++) init_tensor(m, i, &rng);
    memset(m->bn_batches_tracked, 0, (size_t)m->num_bn * sizeof(int64_t));
}

void kao_model_init_head(kao_model *m, uint64_t seed) {
    kao_rng rng;
    kao_rng_seed(&rng, seed, 0x4EAD);
    init_tensor(m, m->classifier_weight, &rng);
    init_tensor(m, m->classifier_bias, &rng);
}

/* ---- lookup ------------------------------------------------------------------------------ */

int kao_model_find(const kao_model *m, const char *name) {
    for (int i = 0; i < m->num_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return i;
    return -1;
}

float *kao_tensor_data(const kao_model *m, int index) {
    KAO_ASSERT(index >= 0 && index < m->num_tensors, "tensor index %d", index);
    const kao_tensor *t = &m->tensors[index];
    return (t->role == KAO_ROLE_PARAM ? m->params : m->buffers) + t->offset;
}

size_t kao_model_param_count(const kao_model *m) { return m->num_params; }

void kao_shape_string(char *out, size_t out_size, int ndim, const int *shape) {
    size_t n = (size_t)snprintf(out, out_size, "[");
    for (int i = 0; i < ndim && n < out_size; i++)
        n += (size_t)snprintf(out + n, out_size - n, "%s%d", i ? ", " : "", shape[i]);
    if (n < out_size) snprintf(out + n, out_size - n, "]");
}
