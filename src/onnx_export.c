#include "kao/onnx_export.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kao/image.h"
#include "kao/util.h"
#include "onnx_graph.h"

/* Scoring that the exported model's users need, from the original work's inference code
 * (optimal_threshold = 0.4, percentage(cos_sim) = round(-23.71·x² + 49.98·x + 73.69, 2) with x
 * the cosine similarity). The preprocessing (kao.mean, kao.std) comes with the weights. */
#define EXPORT_THRESHOLD "0.4"
#define EXPORT_SCORE_FORMULA "-23.71*x^2 + 49.98*x + 73.69"

const char *const kao_onnx_metadata_keys[] = {
    "kao.architecture", "kao.width_mult", "kao.depth_mult", "kao.input_size", "kao.mean",
    "kao.std", "kao.color_order", "kao.layout", "kao.embedding_dim", "kao.normalized",
    "kao.threshold", "kao.threshold_eer", "kao.threshold_far1e-3", "kao.score_formula", "kao.num_identities",
    "kao.split_hash", "kao.version", "kao.export_time", NULL,
};

void kao_onnx_options_init(kao_onnx_options *opt) {
    memset(opt, 0, sizeof *opt);
    opt->input_h = opt->input_w = 224;
    opt->opset = 13;
    memcpy(opt->mean, kao_imagenet_mean, sizeof opt->mean);
    memcpy(opt->std, kao_imagenet_std, sizeof opt->std);
}

/* ---- the network as a graph -------------------------------------------------------------- */

typedef struct {
    onnx_builder *b;
    const kao_model *m;
    const char *x;   /* the current value's name */
    int c, h, w;     /* its channels and spatial size */
} walk;

/* "blocks.3.0.conv_dw.weight" → "blocks.3.0.conv_dw" (in out[64]). */
static void module_name(char out[64], const kao_model *m, int tensor) {
    snprintf(out, 64, "%s", m->tensors[tensor].name);
    char *dot = strrchr(out, '.');
    KAO_ASSERT(dot != NULL, "tensor name %s", out);
    *dot = '\0';
}

static const char *node1(walk *g, const char *op, const char *out, const char *a) {
    const char *in[1] = {a};
    return onnx_add_node(g->b, op, out, 1, in)->name;
}

static const char *node2(walk *g, const char *op, const char *out, const char *a, const char *b) {
    const char *in[2] = {a, b};
    return onnx_add_node(g->b, op, out, 2, in)->name;
}

/* SiLU = x·sigmoid(x), as two nodes named <name>.sigmoid and <name>. */
static const char *silu(walk *g, const char *x, const char *name) {
    char sig[160];
    snprintf(sig, sizeof sig, "%s.sigmoid", name);
    return node2(g, "Mul", name, x, node1(g, "Sigmoid", sig, x));
}

/* TF "same" padding on one axis (docs/architecture.md, 'Padding'): out = ceil(in/s), the odd pixel after. */
static void same_pad(int *out, int64_t *begin, int64_t *end, int in, int kernel, int stride) {
    *out = (in + stride - 1) / stride;
    int total = (*out - 1) * stride + kernel - in;
    if (total < 0) total = 0;
    *begin = total / 2;
    *end = total - total / 2;
}

/* Conv of the current value with conv's weights, bn folded in when bn.index >= 0 (in double),
 * a bias input when either exists. Advances g->x, c, h, w. */
static void conv(walk *g, kao_conv_ref ref, kao_bn_ref bn, int stride) {
    const kao_model *m = g->m;
    const kao_tensor *wt = &m->tensors[ref.weight];
    int out_ch = wt->shape[0], in_per_group = wt->shape[1], k = wt->shape[2];
    KAO_ASSERT(g->c / in_per_group * in_per_group == g->c, "%s: %d input channels", wt->name, g->c);
    int groups = g->c / in_per_group;
    size_t per_out = wt->numel / (size_t)out_ch;
    bool has_bias = ref.bias >= 0 || bn.index >= 0;

    const float *w = kao_tensor_data(m, ref.weight);           /* (out, in/groups, k, k) */
    const float *bias = ref.bias >= 0 ? kao_tensor_data(m, ref.bias) : NULL; /* (out) */
    float *fw = kao_malloc(wt->numel * sizeof(float), "folded conv weight");
    float *fb = kao_malloc((size_t)out_ch * sizeof(float), "folded conv bias");
    for (int o = 0; o < out_ch; o++) {
        double scale = 1.0, shift = bias ? bias[o] : 0.0;
        if (bn.index >= 0) {
            double gamma = kao_tensor_data(m, bn.weight)[o], beta = kao_tensor_data(m, bn.bias)[o];
            double mean = kao_tensor_data(m, bn.mean)[o], var = kao_tensor_data(m, bn.var)[o];
            scale = gamma / sqrt(var + (double)m->arch.bn_eps);
            shift = (shift - mean) * scale + beta;
        }
        for (size_t j = 0; j < per_out; j++)
            fw[(size_t)o * per_out + j] = (float)(w[(size_t)o * per_out + j] * scale);
        fb[o] = (float)shift;
    }

    char name[64], wname[96], bname[96];
    module_name(name, m, ref.weight);
    const char *kind = bn.index >= 0 ? "fused." : "";
    snprintf(wname, sizeof wname, "%s.%sweight", name, kind);
    snprintf(bname, sizeof bname, "%s.%sbias", name, kind);
    int64_t dims[4] = {out_ch, in_per_group, k, wt->shape[3]};
    onnx_add_initializer(g->b, wname, 4, dims, fw);
    if (has_bias) onnx_add_initializer(g->b, bname, 1, dims, fb);
    free(fw);
    free(fb);

    int64_t pads[4], kernel[2] = {k, wt->shape[3]}, strides[2] = {stride, stride};
    int out_h, out_w;
    same_pad(&out_h, &pads[0], &pads[2], g->h, k, stride);
    same_pad(&out_w, &pads[1], &pads[3], g->w, wt->shape[3], stride);
    const char *in[3] = {g->x, wname, bname};
    Onnx__NodeProto *n = onnx_add_node(g->b, "Conv", name, has_bias ? 3 : 2, in);
    onnx_set_ints(g->b, n, "kernel_shape", 2, kernel);
    onnx_set_ints(g->b, n, "strides", 2, strides);
    onnx_set_ints(g->b, n, "pads", 4, pads);
    if (groups > 1) onnx_set_int(g->b, n, "group", groups);
    g->x = n->name;
    g->c = out_ch;
    g->h = out_h;
    g->w = out_w;
}

/* conv + folded BN, then SiLU named after the BN module (e.g. "blocks.3.0.bn1.act"). */
static void conv_bn_silu(walk *g, kao_conv_ref ref, kao_bn_ref bn, int stride) {
    conv(g, ref, bn, stride);
    char name[64], act[96];
    module_name(name, g->m, bn.weight);
    snprintf(act, sizeof act, "%s.act", name);
    g->x = silu(g, g->x, act);
}

/* timm's SqueezeExcite: x · sigmoid(conv_expand(silu(conv_reduce(mean_hw(x))))). */
static void squeeze_excite(walk *g, const kao_block *blk, const char *p) {
    const kao_bn_ref none = {-1, -1, -1, -1, -1};
    char name[96];
    const char *x = g->x;
    int c = g->c, h = g->h, w = g->w;
    snprintf(name, sizeof name, "%s.se.pool", p);
    g->x = node1(g, "GlobalAveragePool", name, x);
    g->h = g->w = 1;
    conv(g, blk->se_reduce, none, 1);
    snprintf(name, sizeof name, "%s.se.act1", p);
    g->x = silu(g, g->x, name);
    conv(g, blk->se_expand, none, 1);
    snprintf(name, sizeof name, "%s.se.gate", p);
    const char *gate = node1(g, "Sigmoid", name, g->x);
    snprintf(name, sizeof name, "%s.se", p);
    g->x = node2(g, "Mul", name, x, gate);
    KAO_ASSERT(g->c == c, "SE of %s changes channels", p);
    g->h = h;
    g->w = w;
}

static void block(walk *g, const kao_block *blk) {
    const kao_block_arch *a = &blk->arch;
    char p[48], name[64];
    snprintf(p, sizeof p, "blocks.%d.%d", a->stage, a->index_in_stage);
    const char *shortcut = g->x;
    switch (a->type) {
    case KAO_BLOCK_CN:
        conv_bn_silu(g, blk->conv1, blk->bn1, a->stride);
        break;
    case KAO_BLOCK_ER:
        conv_bn_silu(g, blk->conv1, blk->bn1, a->stride);
        conv(g, blk->conv_pwl, blk->bn_pwl, 1);
        break;
    case KAO_BLOCK_IR:
        conv_bn_silu(g, blk->conv1, blk->bn1, 1);
        conv_bn_silu(g, blk->conv_dw, blk->bn_dw, a->stride);
        if (a->se_ch > 0) squeeze_excite(g, blk, p);
        conv(g, blk->conv_pwl, blk->bn_pwl, 1);
        break;
    }
    if (a->has_skip) {
        snprintf(name, sizeof name, "%s.add", p);
        g->x = node2(g, "Add", name, g->x, shortcut);
    }
}

static void build_graph(onnx_builder *b, const kao_model *m, const kao_onnx_options *opt) {
    const kao_arch *arch = &m->arch;
    const char *batch[4] = {"batch", NULL, NULL, NULL};
    int64_t in_dims[4] = {-1, 3, opt->input_h, opt->input_w};
    onnx_add_input(b, "input", 4, in_dims, batch);

    walk g = {b, m, "input", 3, opt->input_h, opt->input_w};
    conv_bn_silu(&g, m->conv_stem, m->bn_stem, 2);
    for (int i = 0; i < arch->num_blocks; i++) block(&g, &m->blocks[i]);
    conv_bn_silu(&g, m->conv_head, m->bn_head, 1);
    g.x = node1(&g, "GlobalAveragePool", "global_pool", g.x);
    Onnx__NodeProto *flat = onnx_add_node(b, "Flatten", "flatten", 1, &g.x);
    onnx_set_int(b, flat, "axis", 1);

    const kao_tensor *cw = &m->tensors[m->classifier_weight];
    int64_t cdims[2] = {cw->shape[0], cw->shape[1]};
    onnx_add_initializer(b, "classifier.weight", 2, cdims, kao_tensor_data(m, m->classifier_weight));
    onnx_add_initializer(b, "classifier.bias", 1, cdims, kao_tensor_data(m, m->classifier_bias));
    const char *gemm_in[3] = {flat->name, "classifier.weight", "classifier.bias"};
    Onnx__NodeProto *gemm = onnx_add_node(b, "Gemm", opt->l2_normalize ? "classifier" : "embedding",
                                          3, gemm_in);
    onnx_set_int(b, gemm, "transB", 1);
    if (opt->l2_normalize) {
        Onnx__NodeProto *norm = onnx_add_node(b, "LpNormalization", "embedding", 1,
                                              (const char *const *)gemm->output);
        onnx_set_int(b, norm, "axis", 1);
        onnx_set_int(b, norm, "p", 2);
    }
    int64_t out_dims[2] = {-1, arch->embedding_dim};
    onnx_add_output(b, "embedding", 2, out_dims, batch);
}

/* ---- metadata ---------------------------------------------------------------------------- */

static void add_metadata(onnx_builder *b, const kao_model *m, const kao_onnx_options *opt) {
    const kao_arch *a = &m->arch;
    char v[256];
    if (opt->signature) {
        onnx_add_metadata(b, "signature", opt->signature);
    } else {
        snprintf(v, sizeof v, "%s face embedding, exported by kao %s", a->variant, KAO_VERSION);
        onnx_add_metadata(b, "signature", v);
    }
    onnx_add_metadata(b, "kao.architecture", a->variant);
    snprintf(v, sizeof v, "%.15g", a->width_mult);
    onnx_add_metadata(b, "kao.width_mult", v);
    snprintf(v, sizeof v, "%.15g", a->depth_mult);
    onnx_add_metadata(b, "kao.depth_mult", v);
    snprintf(v, sizeof v, "%dx%d", opt->input_h, opt->input_w);
    onnx_add_metadata(b, "kao.input_size", v);
    kao_format_floats(v, sizeof v, opt->mean, 3);
    onnx_add_metadata(b, "kao.mean", v);
    kao_format_floats(v, sizeof v, opt->std, 3);
    onnx_add_metadata(b, "kao.std", v);
    onnx_add_metadata(b, "kao.color_order", "RGB");
    onnx_add_metadata(b, "kao.layout", "NCHW");
    snprintf(v, sizeof v, "%d", a->embedding_dim);
    onnx_add_metadata(b, "kao.embedding_dim", v);
    onnx_add_metadata(b, "kao.normalized", opt->l2_normalize ? "true" : "false");
    onnx_add_metadata(b, "kao.threshold", EXPORT_THRESHOLD);
    /* %.17g: the exact double kao train recorded, so the file's users decide as kao verify does. */
    if (opt->has_thresholds) snprintf(v, sizeof v, "%.17g", opt->threshold_eer);
    onnx_add_metadata(b, "kao.threshold_eer", opt->has_thresholds ? v : "unknown");
    if (opt->has_thresholds) snprintf(v, sizeof v, "%.17g", opt->threshold_far1e3);
    onnx_add_metadata(b, "kao.threshold_far1e-3", opt->has_thresholds ? v : "unknown");
    onnx_add_metadata(b, "kao.score_formula", EXPORT_SCORE_FORMULA);
    if (opt->num_identities > 0) snprintf(v, sizeof v, "%d", opt->num_identities);
    else snprintf(v, sizeof v, "unknown");
    onnx_add_metadata(b, "kao.num_identities", v);
    onnx_add_metadata(b, "kao.split_hash",
                      opt->split_hash && opt->split_hash[0] ? opt->split_hash : "unknown");
    onnx_add_metadata(b, "kao.version", KAO_VERSION);
    time_t now = time(NULL);
    struct tm utc;
    gmtime_r(&now, &utc);
    strftime(v, sizeof v, "%Y-%m-%dT%H:%M:%SZ", &utc);
    onnx_add_metadata(b, "kao.export_time", v);

    for (size_t i = 0; kao_onnx_metadata_keys[i]; i++)
        KAO_ASSERT(i + 1 < b->model->n_metadata_props &&
                       strcmp(b->model->metadata_props[i + 1]->key, kao_onnx_metadata_keys[i]) == 0,
                   "metadata key %zu is not %s", i, kao_onnx_metadata_keys[i]);
}

/* ---- export ------------------------------------------------------------------------------ */

int kao_onnx_export(const kao_model *m, const char *path, const kao_onnx_options *opt) {
    if (opt->opset != 13 && opt->opset != 17)
        return kao_fail("%s: ONNX opset %d is not supported (use 13 or 17)", path, opt->opset);
    if (opt->input_h < 1 || opt->input_w < 1 || opt->input_h > 16384 || opt->input_w > 16384)
        return kao_fail("%s: export input size %dx%d is out of range (1..16384)", path,
                        opt->input_h, opt->input_w);
    if (kao_check_parent_dir(path) != KAO_OK) return KAO_ERR;

    onnx_builder b;
    onnx_builder_init(&b, m->arch.variant);
    Onnx__ModelProto *model = b.model;
    model->has_ir_version = 1;
    model->ir_version = opt->opset == 13 ? 7 : 8; /* opset 13 ↔ IR 7, 17 ↔ IR 8: docs/formats.md, 'ONNX export' */
    model->producer_name = onnx_strdup(&b, "kao");
    model->producer_version = onnx_strdup(&b, KAO_VERSION);
    model->doc_string = onnx_strdup(&b, "Face embedding network (timm EfficientNetV2 + linear head), "
                                        "eval mode, BatchNorm folded into the convolutions.");
    onnx_add_opset(&b, "", opt->opset);
    build_graph(&b, m, opt);
    add_metadata(&b, m, opt);
    int rc = onnx_write_model(&b, path);
    onnx_builder_free(&b);
    return rc;
}
