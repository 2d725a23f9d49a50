/* kao_onnx_check: reads an ONNX file back with protobuf-c, checks that it is a kao export — its
 * encoding, header, values, every node against the schema of the ops kao emits (onnx_schema.c)
 * with the shapes they compute, and its metadata — and prints its signature and metadata. */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kao/onnx_export.h"
#include "kao/util.h"
#include "onnx_graph.h"
#include "onnx_schema.h"

#define FLOAT32 ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT
#define DIM_VALUE ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE
#define DIM_PARAM ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM
#define NAME_TEXT 128 /* bytes of a name (escaped) in a message */

/* "PATH: not a kao export: " + the formatted reason; returns KAO_ERR. */
KAO_PRINTF(2, 3) static int not_kao(const char *path, const char *fmt, ...) {
    char reason[1024];
    va_list args;
    va_start(args, fmt);
    vsnprintf(reason, sizeof reason, fmt, args);
    va_end(args);
    return kao_fail("%s: not a kao export: %s", path, reason);
}

/* ---- a map from names to indices (open addressing; the strings belong to the model) ------- */

typedef struct {
    const char **names; /* (capacity) NULL = empty */
    size_t *index;      /* (capacity) */
    size_t capacity;
} name_map;

static void map_init(name_map *s, size_t expected) {
    s->capacity = 16;
    while (s->capacity < 2 * expected) s->capacity *= 2;
    s->names = kao_calloc(s->capacity, sizeof *s->names, "ONNX names");
    s->index = kao_calloc(s->capacity, sizeof *s->index, "ONNX names");
}

static void map_free(name_map *s) {
    free(s->names);
    free(s->index);
}

static size_t map_slot(const name_map *s, const char *name) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const char *c = name; *c; c++) h = (h ^ (uint8_t)*c) * 1099511628211ull;
    size_t i = (size_t)h & (s->capacity - 1);
    while (s->names[i] && strcmp(s->names[i], name) != 0) i = (i + 1) & (s->capacity - 1);
    return i;
}

/* The index stored for name, or SIZE_MAX. */
static size_t map_get(const name_map *s, const char *name) {
    size_t i = map_slot(s, name);
    return s->names[i] ? s->index[i] : SIZE_MAX;
}

/* Returns false when name was already there. The capacity covers every name added. */
static bool map_add(name_map *s, const char *name, size_t index) {
    size_t i = map_slot(s, name);
    if (s->names[i]) return false;
    s->names[i] = name;
    s->index[i] = index;
    return true;
}

/* ---- the encoding ------------------------------------------------------------------------ */

/* The count of msg's field f and where its items' pointers are (strings and messages only). */
static size_t field_items(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f, void *const **items) {
    const char *base = (const char *)msg;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        *items = *(void *const *const *)(base + f->offset);
        return *(const size_t *)(base + f->quantifier_offset);
    }
    *items = (void *const *)(base + f->offset);
    if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && *(const uint32_t *)(base + f->quantifier_offset) != f->id)
        return 0; /* another member of the oneof */
    return **items ? 1 : 0;
}

/* Every field of msg and of the messages in it is one that onnx_subset.proto declares (an
 * undeclared one is a part of the model kao cannot check) and every string is UTF-8 (protobuf's
 * rule; a damaged one must not reach a message as raw bytes). */
static int check_fields(const ProtobufCMessage *msg, const char *path) {
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    if (msg->n_unknown_fields)
        return not_kao(path, "%s field %" PRIu32 " is not one kao writes", d->short_name,
                       msg->unknown_fields[0].tag);
    for (unsigned f = 0; f < d->n_fields; f++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[f];
        if (fd->type != PROTOBUF_C_TYPE_STRING && fd->type != PROTOBUF_C_TYPE_MESSAGE) continue;
        void *const *items;
        size_t n = field_items(msg, fd, &items);
        for (size_t i = 0; i < n; i++) {
            if (fd->type == PROTOBUF_C_TYPE_MESSAGE) {
                if (check_fields(items[i], path))
                    return KAO_ERR; /* nesting is bounded: the subset has no cycle */
            } else if (!kao_valid_utf8(items[i])) {
                return kao_fail("%s: not a valid ONNX model: %s.%s is not UTF-8 text (damaged?)", path,
                                d->short_name, fd->name);
            }
        }
    }
    return KAO_OK;
}

/* The file is exactly the encoding of what protobuf-c read: nothing it skipped or merged. A
 * string with a NUL byte, which C reads shorter than onnxruntime does, fails here. */
static int check_size(const Onnx__ModelProto *m, const char *path) {
    struct stat st;
    size_t packed = protobuf_c_message_get_packed_size(&m->base);
    if (stat(path, &st) != 0 || (size_t)st.st_size != packed)
        return not_kao(path,
                       "its fields encode in %zu bytes, not the file's %lld (a NUL byte inside a string, "
                       "a field given twice, or another encoding kao does not write)",
                       packed, (long long)st.st_size);
    return KAO_OK;
}

/* ---- the header and the graph's values --------------------------------------------------- */

/* What any ONNX model has (a file that parses may still be something else). */
static int check_is_model(const Onnx__ModelProto *m, const char *path) {
    if (!m->has_ir_version || m->ir_version < 1)
        return kao_fail("%s: not a valid ONNX model (no IR version; truncated or not ONNX?)", path);
    if (!m->graph) return kao_fail("%s: not a valid ONNX model (no graph; truncated or not ONNX?)", path);
    return KAO_OK;
}

static int check_header(const Onnx__ModelProto *m, const char *path) {
    const Onnx__OperatorSetIdProto *o = m->n_opset_import == 1 ? m->opset_import[0] : NULL;
    if (!o || (o->domain && o->domain[0]) || !o->has_version || (o->version != 13 && o->version != 17))
        return not_kao(path, "its opsets are not one of the default domain, 13 or 17");
    if (m->ir_version != (o->version == 13 ? 7 : 8))
        return not_kao(path, "IR version %" PRId64 " with opset %" PRId64 " (kao writes 7 with 13, 8 with 17)",
                       m->ir_version, o->version);
    const Onnx__GraphProto *g = m->graph;
    if (!g->name || !g->name[0]) return not_kao(path, "the graph has no name");
    if (g->n_value_info) return not_kao(path, "the graph has value_info, which kao does not write");
    if (g->n_input != 1 || g->n_output != 1)
        return not_kao(path, "the graph has %zu inputs and %zu outputs (kao's have one of each)", g->n_input,
                       g->n_output);
    return KAO_OK;
}

/* A graph input's or output's shape: float32, a symbolic batch, then sizes. */
static int value_shape(const Onnx__ValueInfoProto *v, const char *what, onnx_shape *s, const char *path) {
    char name[NAME_TEXT];
    onnx_escape(name, sizeof name, v->name ? v->name : "");
    const Onnx__TypeProto *t = v->type;
    if (!name[0]) return not_kao(path, "the graph %s has no name", what);
    if (!t || t->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !t->tensor_type->has_elem_type ||
        t->tensor_type->elem_type != FLOAT32 || !t->tensor_type->shape)
        return not_kao(path, "graph %s '%s' is not a float32 tensor with a shape", what, name);
    const Onnx__TensorShapeProto *shape = t->tensor_type->shape;
    if (shape->n_dim < 1 || shape->n_dim > ONNX_MAX_RANK)
        return not_kao(path, "graph %s '%s' has rank %zu", what, name, shape->n_dim);
    s->rank = (int)shape->n_dim;
    for (int i = 0; i < s->rank; i++) {
        const Onnx__TensorShapeProto__Dimension *d = shape->dim[i];
        bool batch = i == 0 && d->value_case == DIM_PARAM && d->dim_param[0];
        bool size = i > 0 && d->value_case == DIM_VALUE && d->dim_value >= 1 && d->dim_value <= ONNX_DIM_MAX;
        if (!batch && !size)
            return not_kao(path, "graph %s '%s': dimension %d is not %s", what, name, i,
                           i ? "a size" : "a symbolic batch");
        s->dim[i] = batch ? ONNX_BATCH : d->dim_value;
    }
    return KAO_OK;
}

/* A float32 constant of rank 1..4 whose data (raw_data or float_data) fills its shape. */
static int initializer_shape(const Onnx__TensorProto *t, onnx_shape *s, const char *path) {
    char name[NAME_TEXT];
    onnx_escape(name, sizeof name, t->name ? t->name : "");
    if (!name[0]) return not_kao(path, "an initializer has no name");
    if (!t->has_data_type || t->data_type != FLOAT32 || t->n_int64_data ||
        t->has_raw_data == (t->n_float_data > 0))
        return not_kao(path, "initializer '%s' is not float32 with either raw_data or float_data", name);
    if (t->n_dims < 1 || t->n_dims > ONNX_MAX_RANK)
        return not_kao(path, "initializer '%s' has rank %zu", name, t->n_dims);
    size_t have = t->has_raw_data ? t->raw_data.len / 4 : t->n_float_data, numel = 1;
    s->rank = (int)t->n_dims;
    for (int i = 0; i < s->rank; i++) {
        if (t->dims[i] < 1 || t->dims[i] > ONNX_DIM_MAX || (size_t)t->dims[i] > have / numel)
            return not_kao(path, "initializer '%s': dimension %d (%" PRId64 ") does not fit its %zu values",
                           name, i, t->dims[i], have);
        numel *= (size_t)t->dims[i];
        s->dim[i] = t->dims[i];
    }
    if (numel != have || (t->has_raw_data && t->raw_data.len % 4))
        return not_kao(path, "initializer '%s' holds %zu values, its shape %zu", name, have, numel);
    return KAO_OK;
}

/* ---- the nodes --------------------------------------------------------------------------- */

typedef struct {
    const Onnx__GraphProto *g;
    name_map values;     /* value name → index in shapes */
    name_map node_names;
    onnx_shape *shapes;  /* of the values defined so far */
    size_t n_values;
} graph_walk;

static int define(graph_walk *w, const char *name, const onnx_shape *s) {
    char text[NAME_TEXT];
    if (!name[0]) return kao_fail("a value has no name");
    if (!map_add(&w->values, name, w->n_values))
        return kao_fail("'%s' is defined twice", onnx_escape(text, sizeof text, name));
    w->shapes[w->n_values++] = *s;
    return KAO_OK;
}

/* One node: its name, its inputs defined before it, the schema of its op, its output. */
static int check_node(graph_walk *w, const Onnx__NodeProto *n) {
    char text[NAME_TEXT];
    if (!n->name || !n->name[0] || !map_add(&w->node_names, n->name, 0))
        return kao_fail("its name is empty or an earlier node's");
    const onnx_shape *in[ONNX_MAX_INPUTS];
    for (size_t j = 0; j < n->n_input; j++) {
        size_t v = map_get(&w->values, n->input[j]);
        if (v == SIZE_MAX)
            return kao_fail("input %zu '%s' is defined by nothing before it", j,
                            onnx_escape(text, sizeof text, n->input[j]));
        if (j < ONNX_MAX_INPUTS) in[j] = &w->shapes[v];
    }
    onnx_shape out;
    if (onnx_check_node(n, in, &out)) return KAO_ERR;
    for (int i = 0; i < out.rank; i++)
        if (out.dim[i] > ONNX_DIM_MAX) return kao_fail("its output is too large");
    return define(w, n->output[0], &out);
}

static int check_nodes(graph_walk *w, const char *path) {
    char op[NAME_TEXT], name[NAME_TEXT];
    for (size_t i = 0; i < w->g->n_node; i++) {
        const Onnx__NodeProto *n = w->g->node[i];
        if (check_node(w, n))
            return kao_fail_context("%s: not a kao export: node %zu (%s '%s'): ", path, i,
                                    onnx_escape(op, sizeof op, n->op_type ? n->op_type : ""),
                                    onnx_escape(name, sizeof name, n->name ? n->name : ""));
    }
    return KAO_OK;
}

/* The graph input and the initializers, the first values. */
static int define_constants(graph_walk *w, const char *path) {
    onnx_shape s;
    if (value_shape(w->g->input[0], "input", &s, path)) return KAO_ERR;
    if (define(w, w->g->input[0]->name, &s)) return kao_fail_context("%s: not a kao export: ", path);
    for (size_t i = 0; i < w->g->n_initializer; i++) {
        if (initializer_shape(w->g->initializer[i], &s, path)) return KAO_ERR;
        if (define(w, w->g->initializer[i]->name, &s)) return kao_fail_context("%s: not a kao export: ", path);
    }
    return KAO_OK;
}

static bool same_shape(const onnx_shape *a, const onnx_shape *b) {
    return a->rank == b->rank && memcmp(a->dim, b->dim, (size_t)a->rank * sizeof a->dim[0]) == 0;
}

/* The graph output is computed, with the shape (and symbolic batch) it is declared with. */
static int check_output(graph_walk *w, const char *path) {
    const Onnx__ValueInfoProto *in = w->g->input[0], *out = w->g->output[0];
    onnx_shape want;
    char name[NAME_TEXT], has[64], declared[64];
    if (value_shape(out, "output", &want, path)) return KAO_ERR;
    onnx_escape(name, sizeof name, out->name);
    size_t v = map_get(&w->values, out->name);
    if (v == SIZE_MAX) return not_kao(path, "graph output '%s' is not computed", name);
    const onnx_shape *s = &w->shapes[v];
    if (!same_shape(s, &want))
        return not_kao(path, "graph output '%s' is declared %s, computes %s", name,
                       onnx_shape_text(declared, &want), onnx_shape_text(has, s));
    if (strcmp(in->type->tensor_type->shape->dim[0]->dim_param,
               out->type->tensor_type->shape->dim[0]->dim_param))
        return not_kao(path, "graph output '%s' has another batch dimension than the input", name);
    return KAO_OK;
}

static int check_graph(const Onnx__GraphProto *g, const char *path) {
    size_t names = 1 + g->n_initializer + g->n_node;
    graph_walk w = {g, {0}, {0}, kao_malloc(names * sizeof *w.shapes, "ONNX shapes"), 0};
    map_init(&w.values, names);
    map_init(&w.node_names, g->n_node);
    int rc = define_constants(&w, path);
    if (rc == KAO_OK) rc = check_nodes(&w, path);
    if (rc == KAO_OK) rc = check_output(&w, path);
    map_free(&w.values);
    map_free(&w.node_names);
    free(w.shapes);
    return rc;
}

/* ---- metadata ---------------------------------------------------------------------------- */

/* Metadata key (present) has the value want. */
static int check_described(const Onnx__ModelProto *m, const name_map *keys, const char *key, const char *want,
                           const char *path) {
    const char *value = m->metadata_props[map_get(keys, key)]->value;
    char text[NAME_TEXT];
    if (strcmp(value ? value : "", want) != 0)
        return not_kao(path, "metadata %s is '%s', the graph's %s", key,
                       onnx_escape(text, sizeof text, value ? value : ""), want[0] ? want : "another shape");
    return KAO_OK;
}

/* kao.input_size and kao.embedding_dim describe the graph's input and output. */
static int check_described_shapes(const Onnx__ModelProto *m, const name_map *keys, const char *path) {
    const Onnx__TensorShapeProto *in = m->graph->input[0]->type->tensor_type->shape;
    const Onnx__TensorShapeProto *out = m->graph->output[0]->type->tensor_type->shape;
    char size[48] = "", dim[24] = "";
    if (in->n_dim == 4)
        snprintf(size, sizeof size, "%" PRId64 "x%" PRId64, in->dim[2]->dim_value, in->dim[3]->dim_value);
    if (out->n_dim == 2) snprintf(dim, sizeof dim, "%" PRId64, out->dim[1]->dim_value);
    if (check_described(m, keys, "kao.input_size", size, path)) return KAO_ERR;
    return check_described(m, keys, "kao.embedding_dim", dim, path);
}

/* kao.threshold_eer and kao.threshold_far1e-3: a cosine (a float step above 1 allowed) or "unknown". */
static int check_thresholds(const Onnx__ModelProto *m, const name_map *keys, const char *path) {
    const char *names[2] = {"kao.threshold_eer", "kao.threshold_far1e-3"};
    for (int i = 0; i < 2; i++) {
        const char *value = m->metadata_props[map_get(keys, names[i])]->value;
        value = value ? value : "";
        char *end, text[NAME_TEXT];
        double t = strtod(value, &end);
        if (strcmp(value, "unknown") != 0 && (end == value || *end || !(fabs(t) <= 1.001)))
            return not_kao(path, "metadata %s is '%s', not a cosine threshold or 'unknown'", names[i],
                           onnx_escape(text, sizeof text, value));
    }
    return KAO_OK;
}

/* Keys are unique (onnx.checker's rule) and a kao export has all of kao's; metadata is written
 * last, so a file cut between two entries still parses and is caught only here. */
static int check_metadata(const Onnx__ModelProto *m, const char *path) {
    name_map keys;
    map_init(&keys, m->n_metadata_props);
    int rc = KAO_OK;
    for (size_t i = 0; i < m->n_metadata_props && rc == KAO_OK; i++) {
        const char *key = m->metadata_props[i]->key;
        char text[NAME_TEXT];
        if (!key || !key[0])
            rc = not_kao(path, "metadata entry %zu has no key", i);
        else if (!map_add(&keys, key, i))
            rc = not_kao(path, "metadata key '%s' appears twice", onnx_escape(text, sizeof text, key));
    }
    for (size_t k = 0; rc == KAO_OK && kao_onnx_metadata_keys[k]; k++)
        if (map_get(&keys, kao_onnx_metadata_keys[k]) == SIZE_MAX)
            rc = kao_fail("%s: not a valid kao ONNX model: metadata '%s' is missing (truncated file?)", path,
                          kao_onnx_metadata_keys[k]);
    if (rc == KAO_OK) rc = check_described_shapes(m, &keys, path);
    if (rc == KAO_OK) rc = check_thresholds(m, &keys, path);
    map_free(&keys);
    return rc;
}

/* ---- printing ---------------------------------------------------------------------------- */

static void print_value(const char *what, const Onnx__ValueInfoProto *v) {
    const Onnx__TensorShapeProto *shape = v->type->tensor_type->shape;
    printf("  %s ", what);
    onnx_print_text(stdout, v->name);
    printf(": float32 [");
    for (size_t i = 0; i < shape->n_dim; i++) {
        const Onnx__TensorShapeProto__Dimension *d = shape->dim[i];
        if (i) printf(", ");
        if (d->value_case == DIM_VALUE) printf("%" PRId64, d->dim_value);
        else onnx_print_text(stdout, d->dim_param);
    }
    printf("]\n");
}

static void print_model(const Onnx__ModelProto *m, const char *path) {
    printf("%s: ONNX model, IR version %" PRId64 ", opset ai.onnx %" PRId64 ", producer ", path, m->ir_version,
           m->opset_import[0]->version);
    onnx_print_text(stdout, m->producer_name ? m->producer_name : "(none)");
    printf(" ");
    onnx_print_text(stdout, m->producer_version ? m->producer_version : "");
    const Onnx__GraphProto *g = m->graph;
    size_t weights = 0;
    for (size_t i = 0; i < g->n_initializer; i++) {
        size_t numel = 1;
        for (size_t j = 0; j < g->initializer[i]->n_dims; j++) numel *= (size_t)g->initializer[i]->dims[j];
        weights += numel;
    }
    printf("\n  graph ");
    onnx_print_text(stdout, g->name);
    printf(": %zu nodes, %zu initializers, %zu weights\n", g->n_node, g->n_initializer, weights);
    print_value("input", g->input[0]);
    print_value("output", g->output[0]);
    printf("  metadata:\n");
    for (size_t i = 0; i < m->n_metadata_props; i++) {
        printf("    ");
        onnx_print_text(stdout, m->metadata_props[i]->key);
        printf(" = ");
        onnx_print_text(stdout, m->metadata_props[i]->value ? m->metadata_props[i]->value : "");
        printf("\n");
    }
}

int kao_onnx_check(const char *path) {
    Onnx__ModelProto *m = onnx_read_model(path);
    if (!m) return KAO_ERR;
    int rc = check_is_model(m, path);
    if (rc == KAO_OK) rc = check_fields(&m->base, path);
    if (rc == KAO_OK) rc = check_size(m, path);
    if (rc == KAO_OK) rc = check_header(m, path);
    if (rc == KAO_OK) rc = check_graph(m->graph, path);
    if (rc == KAO_OK) rc = check_metadata(m, path);
    if (rc == KAO_OK) print_model(m, path);
    onnx__model_proto__free_unpacked(m, NULL);
    return rc;
}
