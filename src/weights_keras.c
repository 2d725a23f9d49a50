/* weights_keras.c — Keras's EfficientNetV2 weights (keras.applications: efficientnetv2-b0.h5 …
 * -l.h5, with or without _notop) converted into an HDF5 file in memory in kao's layout
 * (weights_source.h).
 *
 * Keras's legacy HDF5 weights: the attribute layer_names (on the root as save_weights writes it,
 * on "model_weights" as model.save does; layer_names0, layer_names1, … when split) lists the
 * layers; each layer's group has an attribute weight_names, and a weight is the dataset
 * "<layer>/<weight name>", e.g. "stem_conv/stem_conv/kernel:0" (Keras 2) or ".../kernel" (Keras 3).
 *
 * Layers map onto timm's tf_efficientnetv2 modules (keras/src/applications/efficientnet_v2.py
 * against timm's EfficientNet; model.c holds timm's names):
 *   stem_conv, stem_bn → conv_stem, bn1; top_conv, top_bn → conv_head, bn2; predictions → classifier;
 *   block{S}{L}_<part> → blocks.{S-1}.{L-'a'}.<module>, by the block's kind:
 *     MBConv (it has a dwconv2; timm's InvertedResidual): expand_conv conv_pw, expand_bn bn1,
 *       dwconv2 conv_dw, bn bn2, se_reduce se.conv_reduce, se_expand se.conv_expand,
 *       project_conv conv_pwl, project_bn bn3;
 *     FusedMBConv with an expansion (timm's EdgeResidual): expand_conv conv_exp, expand_bn bn1,
 *       project_conv conv_pwl, project_bn bn2;
 *     FusedMBConv without one (timm's ConvBnAct): project_conv conv, project_bn bn1.
 * Layouts: conv kernels HWIO → OIHW, depthwise (kh, kw, C, 1) → (C, 1, kh, kw), dense (in, out) →
 * (out, in); BN gamma, beta, moving_mean, moving_variance → weight, bias, running_mean,
 * running_var (Keras's epsilon, 1e-3, is that of timm's tf_ variants and kao's). Layers without
 * weights (activations, adds, rescaling) are skipped, and so is the preprocessing's normalization
 * layer; any other layer with weights is refused by name. The names, types and shapes that come
 * out are then checked as any weights file's are (weights.c).
 *
 * Keras's preprocessing is recorded (trained_info.h), with Keras's default input size: b0–b3
 * rescale to 0..1 and normalise with the ImageNet mean and std; s, m and l compute x/128 − 1, that
 * is mean = std = 128/255 on kao's 0..1 scale.
 */
#include <stdlib.h>
#include <string.h>

#include "kao/arch.h"
#include "kao/image.h"
#include "kao/trained_info.h"
#include "kao/util.h"
#include "kao/weights.h"
#include "kao/weights_source.h"

#define MAX_TENSOR_ELEMENTS ((int64_t)1 << 28) /* far above any EfficientNetV2 tensor */
#define MAX_REPEATS 26                         /* Keras names a stage's blocks a, b, … z */

typedef enum { LAYER_CONV, LAYER_DWCONV, LAYER_BN, LAYER_DENSE } layer_kind;

enum { EXPAND_CONV, EXPAND_BN, DWCONV, BN, SE_REDUCE, SE_EXPAND, PROJECT_CONV, PROJECT_BN, NUM_PARTS };
static const char *const part_names[NUM_PARTS] = {"expand_conv", "expand_bn", "dwconv2",      "bn",
                                                  "se_reduce",   "se_expand", "project_conv", "project_bn"};
static const layer_kind part_kinds[NUM_PARTS] = {LAYER_CONV, LAYER_BN, LAYER_DWCONV, LAYER_BN,
                                                 LAYER_CONV, LAYER_CONV, LAYER_CONV, LAYER_BN};

/* timm's module of each part, per block kind; NULL: Keras never puts that layer in such a block. */
enum { KIND_IR, KIND_ER, KIND_CN };
static const char *const block_modules[3][NUM_PARTS] = {
    {"conv_pw", "bn1", "conv_dw", "bn2", "se.conv_reduce", "se.conv_expand", "conv_pwl", "bn3"},
    {"conv_exp", "bn1", NULL, NULL, NULL, NULL, "conv_pwl", "bn2"},
    {NULL, NULL, NULL, NULL, NULL, NULL, "conv", "bn1"},
};

static const struct {
    const char *keras, *timm;
    layer_kind kind;
} top_layers[] = {
    {"stem_conv", "conv_stem", LAYER_CONV}, {"stem_bn", "bn1", LAYER_BN},       {"top_conv", "conv_head", LAYER_CONV},
    {"top_bn", "bn2", LAYER_BN},            {"predictions", "classifier", LAYER_DENSE},
};

/* keras.applications' models: name, default input size, preprocessing. */
static const struct {
    const char *timm, *keras;
    int input_size;
    bool imagenet_norm; /* else x/128 - 1 */
} keras_models[] = {
    {"tf_efficientnetv2_b0", "efficientnetv2-b0", 224, true}, {"tf_efficientnetv2_b1", "efficientnetv2-b1", 240, true},
    {"tf_efficientnetv2_b2", "efficientnetv2-b2", 260, true}, {"tf_efficientnetv2_b3", "efficientnetv2-b3", 300, true},
    {"tf_efficientnetv2_s", "efficientnetv2-s", 384, false},  {"tf_efficientnetv2_m", "efficientnetv2-m", 480, false},
    {"tf_efficientnetv2_l", "efficientnetv2-l", 480, false},
};

typedef struct {
    const kao_h5_file *src;
    const char *group;                                /* NULL: the root */
    unsigned parts[KAO_MAX_STAGES][MAX_REPEATS];      /* bit p: the block has part p */
} keras_file;

/* ---- the layers ---------------------------------------------------------------------------- */

static bool has_layer_names(const kao_h5_file *f, const char *object) {
    return kao_h5_has_attr(f, object, "layer_names") || kao_h5_has_attr(f, object, "layer_names0");
}

const char *kao_keras_weights_group(const kao_h5_file *f) {
    if (has_layer_names(f, NULL)) return "/";
    if (kao_h5_exists(f, "model_weights") && has_layer_names(f, "model_weights")) return "model_weights";
    return NULL;
}

/* layer_names, or its chunks layer_names0, layer_names1, … (Keras splits long lists). */
static int read_layer_names(const keras_file *k, char ***names, int *count) {
    if (kao_h5_has_attr(k->src, k->group, "layer_names"))
        return kao_h5_read_attr_strings(k->src, k->group, "layer_names", names, count);
    *names = NULL;
    *count = 0;
    for (int chunk = 0;; chunk++) {
        char attr[32];
        snprintf(attr, sizeof attr, "layer_names%d", chunk);
        if (!kao_h5_has_attr(k->src, k->group, attr)) return KAO_OK;
        char **part;
        int n;
        if (kao_h5_read_attr_strings(k->src, k->group, attr, &part, &n)) {
            kao_h5_free_names(*names, *count);
            return KAO_ERR;
        }
        *names = kao_realloc(*names, (size_t)(*count + n) * sizeof **names, "layer names");
        memcpy(*names + *count, part, (size_t)n * sizeof *part);
        *count += n;
        free(part); /* the strings moved to names */
    }
}

/* "<group>/<layer>[/<weight>]" into out; fails when it does not fit. */
static int object_path(char *out, size_t size, const keras_file *k, const char *layer, const char *weight) {
    int n = snprintf(out, size, "%s%s%s%s%s", k->group ? k->group : "", k->group ? "/" : "", layer,
                     weight ? "/" : "", weight ? weight : "");
    if (n < 0 || (size_t)n >= size) return kao_fail("%s: Keras layer name too long", k->src->path);
    return KAO_OK;
}

static int read_weight_names(const keras_file *k, const char *layer, char ***names, int *count) {
    char object[1024];
    if (object_path(object, sizeof object, k, layer, NULL)) return KAO_ERR;
    return kao_h5_read_attr_strings(k->src, object, "weight_names", names, count);
}

/* "block4a_se_reduce" → stage 3, block 0, SE_REDUCE. */
static bool parse_block_layer(const char *name, int *stage, int *index, int *part) {
    if (strncmp(name, "block", 5) != 0 || name[5] < '1' || name[5] > '9') return false;
    char *end;
    long s = strtol(name + 5, &end, 10);
    if (s < 1 || s > KAO_MAX_STAGES || *end < 'a' || *end > 'z' || end[1] != '_') return false;
    for (int p = 0; p < NUM_PARTS; p++)
        if (!strcmp(end + 2, part_names[p])) {
            *stage = (int)s - 1;
            *index = *end - 'a';
            *part = p;
            return true;
        }
    return false;
}

/* The timm module a layer with weights maps to, and its kind. */
static int map_layer(const keras_file *k, const char *layer, char *module, size_t size, layer_kind *kind) {
    for (size_t i = 0; i < sizeof top_layers / sizeof top_layers[0]; i++)
        if (!strcmp(layer, top_layers[i].keras)) {
            snprintf(module, size, "%s", top_layers[i].timm);
            *kind = top_layers[i].kind;
            return KAO_OK;
        }
    int stage, index, part;
    if (!parse_block_layer(layer, &stage, &index, &part))
        return kao_fail("%s: Keras layer '%s' has weights but is no layer of keras.applications' EfficientNetV2",
                        k->src->path, layer);
    unsigned parts = k->parts[stage][index];
    int block_kind = parts & 1u << DWCONV ? KIND_IR : parts & 1u << EXPAND_CONV ? KIND_ER : KIND_CN;
    const char *m = block_modules[block_kind][part];
    if (!m) return kao_fail("%s: Keras layer '%s' does not belong in a FusedMBConv block", k->src->path, layer);
    snprintf(module, size, "blocks.%d.%d.%s", stage, index, m);
    *kind = part_kinds[part];
    return KAO_OK;
}

/* ---- the weights --------------------------------------------------------------------------- */

/* "stem_conv/kernel:0" → "kernel". */
static void weight_kind(char *out, size_t size, const char *weight) {
    const char *slash = strrchr(weight, '/');
    snprintf(out, size, "%s", slash ? slash + 1 : weight);
    char *colon = strchr(out, ':');
    if (colon) *colon = '\0';
}

/* timm's tensor suffix of a Keras weight of a layer of that kind and the rank it must have. */
static const char *timm_suffix(layer_kind kind, const char *w, int *ndim) {
    *ndim = 1;
    if (kind == LAYER_BN) {
        static const char *const keras[] = {"gamma", "beta", "moving_mean", "moving_variance"};
        static const char *const timm[] = {"weight", "bias", "running_mean", "running_var"};
        for (int i = 0; i < 4; i++)
            if (!strcmp(w, keras[i])) return timm[i];
        return NULL;
    }
    if (!strcmp(w, "bias")) return "bias";
    bool kernel = !strcmp(w, "kernel") || (kind == LAYER_DWCONV && !strcmp(w, "depthwise_kernel"));
    *ndim = kind == LAYER_DENSE ? 2 : 4;
    return kernel ? "weight" : NULL;
}

/* Keras's layout to PyTorch's: kernels (kh, kw, in, out) → (out, in, kh, kw); depthwise kernels
 * (kh, kw, C, 1) → (C, 1, kh, kw), the same permutation; dense (in, out) → (out, in). */
static void to_pytorch(float *out, int64_t *shape, const float *in, const kao_h5_info *info, layer_kind kind) {
    const int64_t *s = info->shape;
    if (info->ndim == 4) {
        int64_t kh = s[0], kw = s[1], ci = s[2], co = s[3];
        for (int64_t y = 0; y < kh; y++)
            for (int64_t x = 0; x < kw; x++)
                for (int64_t i = 0; i < ci; i++)
                    for (int64_t o = 0; o < co; o++)
                        out[((o * ci + i) * kh + y) * kw + x] = in[((y * kw + x) * ci + i) * co + o];
        int64_t oihw[4] = {co, ci, kh, kw}, dw[4] = {ci, 1, kh, kw};
        memcpy(shape, kind == LAYER_DWCONV ? dw : oihw, sizeof oihw);
    } else if (info->ndim == 2) {
        for (int64_t i = 0; i < s[0]; i++)
            for (int64_t o = 0; o < s[1]; o++) out[o * s[0] + i] = in[i * s[1] + o];
        shape[0] = s[1];
        shape[1] = s[0];
    } else {
        memcpy(out, in, (size_t)info->numel * sizeof *out);
        shape[0] = s[0];
    }
}

static int check_weight(const keras_file *k, const char *path, const kao_h5_info *info, int ndim, layer_kind kind) {
    char shape[160];
    kao_h5_shape_string(shape, sizeof shape, info->ndim, info->shape);
    if (info->cls != KAO_H5_FLOAT)
        return kao_fail("%s: Keras weight '%s' is %s, expected floats", k->src->path, path, kao_h5_type_name(info));
    if (info->ndim != ndim || info->numel > MAX_TENSOR_ELEMENTS)
        return kao_fail("%s: Keras weight '%s' has shape %s, expected %d dimensions", k->src->path, path, shape, ndim);
    if (kind == LAYER_DWCONV && info->shape[3] != 1)
        return kao_fail("%s: Keras weight '%s' has shape %s: a depth multiplier of %lld, EfficientNetV2's is 1",
                        k->src->path, path, shape, (long long)info->shape[3]);
    return KAO_OK;
}

static int convert_weight(kao_h5_file *mem, const keras_file *k, const char *layer, const char *weight,
                          const char *module, layer_kind kind) {
    char w[128], path[1024], name[256];
    weight_kind(w, sizeof w, weight);
    int ndim;
    const char *suffix = timm_suffix(kind, w, &ndim);
    if (object_path(path, sizeof path, k, layer, weight)) return KAO_ERR;
    if (!suffix) return kao_fail("%s: Keras weight '%s' is none that kao maps onto timm's modules", k->src->path, path);
    kao_h5_info info;
    if (kao_h5_dataset_info(k->src, path, &info) || check_weight(k, path, &info, ndim, kind)) return KAO_ERR;
    size_t n = (size_t)info.numel;
    float *keras = kao_malloc((n ? n : 1) * sizeof *keras, "Keras weight");
    float *torch = kao_malloc((n ? n : 1) * sizeof *torch, "Keras weight");
    int64_t shape[4];
    int rc = kao_h5_read_f32(k->src, path, keras, info.ndim, info.shape);
    if (rc == KAO_OK) {
        to_pytorch(torch, shape, keras, &info, kind);
        snprintf(name, sizeof name, "%s.%s", module, suffix);
        rc = kao_h5_write_f32(mem, name, torch, ndim, shape);
    }
    free(keras);
    free(torch);
    return rc;
}

static int convert_layer(kao_h5_file *mem, const keras_file *k, const char *layer) {
    char **weights;
    int count;
    /* The preprocessing's own constants (a Normalization layer's mean and variance) are recorded
     * as the normalisation instead. */
    if (!strncmp(layer, "normalization", 13)) return KAO_OK;
    if (read_weight_names(k, layer, &weights, &count)) return KAO_ERR;
    char module[96];
    layer_kind kind = LAYER_CONV;
    int rc = count ? map_layer(k, layer, module, sizeof module, &kind) : KAO_OK;
    for (int i = 0; i < count && rc == KAO_OK; i++) rc = convert_weight(mem, k, layer, weights[i], module, kind);
    kao_h5_free_names(weights, count);
    return rc;
}

/* Which parts each block has: they tell its kind. */
static void note_block_parts(keras_file *k, char **layers, int count) {
    for (int i = 0; i < count; i++) {
        int stage, index, part;
        if (parse_block_layer(layers[i], &stage, &index, &part)) k->parts[stage][index] |= 1u << part;
    }
}

/* ---- the variant and its preprocessing ----------------------------------------------------- */

static int record_preprocessing(kao_h5_file *mem, char *model, size_t model_size) {
    kao_arch arch;
    bool has_head;
    if (kao_weights_probe_backbone_file(mem, NULL, &arch, &has_head)) {
        kao_clear_error(); /* not one of keras.applications' sizes: --model can still name it */
        snprintf(model, model_size, "EfficientNetV2 of no keras.applications size");
        return KAO_OK;
    }
    for (size_t i = 0; i < sizeof keras_models / sizeof keras_models[0]; i++) {
        if (strcmp(arch.variant, keras_models[i].timm) != 0) continue;
        snprintf(model, model_size, "%s%s", keras_models[i].keras, has_head ? "" : ", no top");
        kao_trained_info info = {.input_height = keras_models[i].input_size,
                                 .input_width = keras_models[i].input_size,
                                 .has_normalisation = true};
        for (int c = 0; c < 3; c++) {
            info.mean[c] = keras_models[i].imagenet_norm ? kao_imagenet_mean[c] : 128.0f / 255.0f;
            info.std[c] = keras_models[i].imagenet_norm ? kao_imagenet_std[c] : 128.0f / 255.0f;
        }
        return kao_trained_info_write(mem, &info);
    }
    KAO_ASSERT(false, "%s has no Keras twin", arch.variant);
    return KAO_ERR;
}

int kao_keras_import(kao_h5_file *mem, const kao_h5_file *src, const char *group, char *model, size_t model_size) {
    keras_file k = {.src = src, .group = strcmp(group, "/") ? group : NULL};
    char **layers;
    int count;
    if (read_layer_names(&k, &layers, &count)) return KAO_ERR;
    note_block_parts(&k, layers, count);
    int rc = KAO_OK;
    for (int i = 0; i < count && rc == KAO_OK; i++) rc = convert_layer(mem, &k, layers[i]);
    kao_h5_free_names(layers, count);
    if (rc == KAO_OK) rc = record_preprocessing(mem, model, model_size);
    return rc;
}
