/* kao_onnx_check: reads an ONNX file back with protobuf-c, checks its structure and prints
 * its signature and metadata. Not a replacement for onnx.checker (no operator schemas), but
 * enough to catch a corrupt, truncated or half-written file without Python. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "kao/onnx_export.h"
#include "kao/util.h"
#include "onnx_graph.h"

/* ---- a set of names (open addressing; the strings belong to the model) ------------------- */

typedef struct {
    const char **slots; /* (capacity) NULL = empty */
    size_t capacity;
} name_set;

static void set_init(name_set *s, size_t expected) {
    s->capacity = 16;
    while (s->capacity < 2 * expected) s->capacity *= 2;
    s->slots = kao_calloc(s->capacity, sizeof *s->slots, "ONNX name set");
}

static size_t set_find(const name_set *s, const char *name) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const char *c = name; *c; c++) h = (h ^ (uint8_t)*c) * 1099511628211ull;
    size_t i = (size_t)h & (s->capacity - 1);
    while (s->slots[i] && strcmp(s->slots[i], name) != 0) i = (i + 1) & (s->capacity - 1);
    return i;
}

static bool set_has(const name_set *s, const char *name) { return s->slots[set_find(s, name)] != NULL; }

/* Returns false when name was already there. The capacity covers every name of the model. */
static bool set_add(name_set *s, const char *name) {
    size_t i = set_find(s, name);
    if (s->slots[i]) return false;
    s->slots[i] = name;
    return true;
}

/* ---- validation -------------------------------------------------------------------------- */

static const char *type_name(int32_t t) {
    switch (t) {
    case 1: return "float32";
    case 2: return "uint8";
    case 3: return "int8";
    case 6: return "int32";
    case 7: return "int64";
    case 9: return "bool";
    case 10: return "float16";
    case 11: return "float64";
    case 16: return "bfloat16";
    default: return NULL;
    }
}

static int check_value(const Onnx__ValueInfoProto *v, const char *what, const char *path) {
    if (!v->name || !v->name[0]) return kao_fail("%s: not a valid ONNX model: a graph %s has no name", path, what);
    const Onnx__TypeProto *t = v->type;
    if (!t || t->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !t->tensor_type->has_elem_type ||
        !t->tensor_type->shape)
        return kao_fail("%s: not a valid ONNX model: graph %s '%s' has no tensor type and shape", path,
                        what, v->name);
    return KAO_OK;
}

static int check_initializer(const Onnx__TensorProto *t, const char *path) {
    if (!t->name || !t->name[0]) return kao_fail("%s: not a valid ONNX model: an initializer has no name", path);
    size_t numel = 1;
    for (size_t i = 0; i < t->n_dims; i++) {
        if (t->dims[i] < 0)
            return kao_fail("%s: not a valid ONNX model: initializer '%s' has a negative dimension", path, t->name);
        numel *= (size_t)t->dims[i];
    }
    size_t elem = t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT   ? 4
                  : t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 ? 8
                                                                         : 0;
    if (!elem) return KAO_OK; /* other types: no size check */
    size_t have = t->has_raw_data ? t->raw_data.len / elem
                  : elem == 4     ? t->n_float_data
                                  : t->n_int64_data;
    if ((t->has_raw_data && t->raw_data.len % elem) || have != numel)
        return kao_fail("%s: not a valid ONNX model: initializer '%s' holds %zu values, its shape %zu",
                        path, t->name, have, numel);
    return KAO_OK;
}

/* ONNX strings are UTF-8 (protobuf's rule); a damaged one must not reach a message as raw bytes. */
static int check_strings_utf8(const Onnx__ModelProto *m, const char *path) {
    const Onnx__GraphProto *g = m->graph;
    const char *bad = NULL;
#define CHECK_TEXT(s, what) \
    if (!bad && (s) && !kao_valid_utf8(s)) bad = what
    for (size_t i = 0; i < g->n_input; i++) CHECK_TEXT(g->input[i]->name, "a graph input's name");
    for (size_t i = 0; i < g->n_output; i++) CHECK_TEXT(g->output[i]->name, "a graph output's name");
    for (size_t i = 0; i < g->n_initializer; i++) CHECK_TEXT(g->initializer[i]->name, "an initializer's name");
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *n = g->node[i];
        CHECK_TEXT(n->name, "a node's name");
        CHECK_TEXT(n->op_type, "a node's op_type");
        for (size_t j = 0; j < n->n_input; j++) CHECK_TEXT(n->input[j], "a node's input");
        for (size_t j = 0; j < n->n_output; j++) CHECK_TEXT(n->output[j], "a node's output");
    }
    for (size_t i = 0; i < m->n_metadata_props; i++) {
        CHECK_TEXT(m->metadata_props[i]->key, "a metadata key");
        CHECK_TEXT(m->metadata_props[i]->value, "a metadata value");
    }
#undef CHECK_TEXT
    return bad ? kao_fail("%s: not a valid ONNX model: %s is not UTF-8 text (damaged?)", path, bad) : KAO_OK;
}

static int check_model(const Onnx__ModelProto *m, const char *path) {
    if (!m->has_ir_version || m->ir_version < 1)
        return kao_fail("%s: not a valid ONNX model (no IR version; truncated or not ONNX?)", path);
    const Onnx__GraphProto *g = m->graph;
    if (!g) return kao_fail("%s: not a valid ONNX model (no graph; truncated or not ONNX?)", path);
    bool default_opset = false;
    for (size_t i = 0; i < m->n_opset_import; i++) {
        const char *d = m->opset_import[i]->domain;
        if ((!d || !d[0] || strcmp(d, "ai.onnx") == 0) && m->opset_import[i]->has_version) default_opset = true;
    }
    if (!default_opset) return kao_fail("%s: not a valid ONNX model (no opset for the default domain)", path);
    if (g->n_output == 0) return kao_fail("%s: not a valid ONNX model (the graph has no outputs)", path);
    if (check_strings_utf8(m, path) != KAO_OK) return KAO_ERR;
    for (size_t i = 0; i < g->n_input; i++)
        if (check_value(g->input[i], "input", path) != KAO_OK) return KAO_ERR;
    for (size_t i = 0; i < g->n_output; i++)
        if (check_value(g->output[i], "output", path) != KAO_OK) return KAO_ERR;

    /* Dataflow: every node input is a graph input, an initializer or an earlier node's output;
     * every value is defined once. */
    size_t names = g->n_input + g->n_initializer;
    for (size_t i = 0; i < g->n_node; i++) names += g->node[i]->n_output;
    name_set defined;
    set_init(&defined, names);
    int rc = KAO_OK;
    for (size_t i = 0; i < g->n_initializer && rc == KAO_OK; i++) {
        rc = check_initializer(g->initializer[i], path);
        if (rc == KAO_OK && !set_add(&defined, g->initializer[i]->name))
            rc = kao_fail("%s: not a valid ONNX model: initializer '%s' appears twice", path,
                          g->initializer[i]->name);
    }
    for (size_t i = 0; i < g->n_input && rc == KAO_OK; i++) set_add(&defined, g->input[i]->name);
    for (size_t i = 0; i < g->n_node && rc == KAO_OK; i++) {
        const Onnx__NodeProto *n = g->node[i];
        const char *nn = n->name ? n->name : "";
        if (!n->op_type || !n->op_type[0])
            rc = kao_fail("%s: not a valid ONNX model: node %zu '%s' has no op_type", path, i, nn);
        for (size_t j = 0; j < n->n_input && rc == KAO_OK; j++)
            if (n->input[j][0] && !set_has(&defined, n->input[j]))
                rc = kao_fail("%s: not a valid ONNX model: node '%s' (%s) reads '%s', which nothing "
                              "before it defines", path, nn, n->op_type, n->input[j]);
        for (size_t j = 0; j < n->n_output && rc == KAO_OK; j++)
            if (n->output[j][0] && !set_add(&defined, n->output[j]))
                rc = kao_fail("%s: not a valid ONNX model: '%s' is defined twice (node '%s')", path,
                              n->output[j], nn);
    }
    for (size_t i = 0; i < g->n_output && rc == KAO_OK; i++)
        if (!set_has(&defined, g->output[i]->name))
            rc = kao_fail("%s: not a valid ONNX model: graph output '%s' is not computed", path,
                          g->output[i]->name);
    free(defined.slots);
    if (rc != KAO_OK) return rc;

    /* A file that kao wrote carries every kao key; metadata is written last, so a file cut
     * between two entries still parses and is caught only here. */
    bool from_kao = false;
    for (size_t i = 0; i < m->n_metadata_props; i++)
        if (m->metadata_props[i]->key && strncmp(m->metadata_props[i]->key, "kao.", 4) == 0) from_kao = true;
    for (size_t k = 0; from_kao && kao_onnx_metadata_keys[k]; k++) {
        bool found = false;
        for (size_t i = 0; i < m->n_metadata_props; i++)
            if (m->metadata_props[i]->key && strcmp(m->metadata_props[i]->key, kao_onnx_metadata_keys[k]) == 0)
                found = true;
        if (!found)
            return kao_fail("%s: not a valid kao ONNX model: metadata '%s' is missing (truncated file?)",
                            path, kao_onnx_metadata_keys[k]);
    }
    return KAO_OK;
}

/* ---- printing ---------------------------------------------------------------------------- */

static void print_value(const char *what, const Onnx__ValueInfoProto *v) {
    const Onnx__TypeProto__Tensor *t = v->type->tensor_type;
    const char *tn = type_name(t->elem_type);
    printf("  %s %s: ", what, v->name);
    if (tn) printf("%s [", tn);
    else printf("type %" PRId32 " [", t->elem_type);
    for (size_t i = 0; i < t->shape->n_dim; i++) {
        const Onnx__TensorShapeProto__Dimension *d = t->shape->dim[i];
        if (i) printf(", ");
        if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) printf("%" PRId64, d->dim_value);
        else if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM) printf("%s", d->dim_param);
        else printf("?");
    }
    printf("]\n");
}

static void print_model(const Onnx__ModelProto *m, const char *path) {
    printf("%s: ONNX model, IR version %" PRId64, path, m->ir_version);
    for (size_t i = 0; i < m->n_opset_import; i++) {
        const char *d = m->opset_import[i]->domain;
        printf(", opset %s %" PRId64, d && d[0] ? d : "ai.onnx", m->opset_import[i]->version);
    }
    printf(", producer %s %s\n", m->producer_name ? m->producer_name : "(none)",
           m->producer_version ? m->producer_version : "");
    const Onnx__GraphProto *g = m->graph;
    size_t weights = 0;
    for (size_t i = 0; i < g->n_initializer; i++) {
        size_t numel = 1;
        for (size_t j = 0; j < g->initializer[i]->n_dims; j++) numel *= (size_t)g->initializer[i]->dims[j];
        weights += numel;
    }
    printf("  graph %s: %zu nodes, %zu initializers, %zu weights\n", g->name ? g->name : "(unnamed)",
           g->n_node, g->n_initializer, weights);
    for (size_t i = 0; i < g->n_input; i++) print_value("input", g->input[i]);
    for (size_t i = 0; i < g->n_output; i++) print_value("output", g->output[i]);
    if (m->n_metadata_props) printf("  metadata:\n");
    for (size_t i = 0; i < m->n_metadata_props; i++)
        printf("    %s = %s\n", m->metadata_props[i]->key ? m->metadata_props[i]->key : "",
               m->metadata_props[i]->value ? m->metadata_props[i]->value : "");
}

int kao_onnx_check(const char *path) {
    Onnx__ModelProto *m = onnx_read_model(path);
    if (!m) return KAO_ERR;
    int rc = check_model(m, path);
    if (rc == KAO_OK) print_model(m, path);
    onnx__model_proto__free_unpacked(m, NULL);
    return rc;
}
