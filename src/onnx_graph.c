#include "onnx_graph.h"

#include <errno.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kao/files.h"
#include "kao/util.h"

/* ---- the arena --------------------------------------------------------------------------- */

struct onnx_chunk {
    onnx_chunk *next;
    size_t used, size;
    alignas(16) unsigned char data[];
};

#define CHUNK_BYTES ((size_t)1 << 20)

void *onnx_alloc(onnx_builder *b, size_t bytes) {
    bytes = (bytes + 15) & ~(size_t)15;
    onnx_chunk *c = b->chunks;
    if (!c || c->size - c->used < bytes) {
        size_t size = bytes > CHUNK_BYTES ? bytes : CHUNK_BYTES;
        c = kao_calloc(1, sizeof *c + size, "ONNX model");
        c->size = size;
        c->next = b->chunks;
        b->chunks = c;
    }
    void *p = c->data + c->used; /* calloc'd and never reused: already zero */
    c->used += bytes;
    return p;
}

char *onnx_strdup(onnx_builder *b, const char *s) {
    size_t n = strlen(s) + 1;
    return memcpy(onnx_alloc(b, n), s, n);
}

/* Room for one more element in an arena array of n elements: capacity is 4, then the next
 * power of two, so the array is copied only when n reaches one. */
static void *grow(onnx_builder *b, void *items, size_t n, size_t elem) {
    if (n == 0) return onnx_alloc(b, 4 * elem);
    if (n < 4 || (n & (n - 1)) != 0) return items;
    void *bigger = onnx_alloc(b, 2 * n * elem);
    memcpy(bigger, items, n * elem);
    return bigger;
}
#define PUSH(b, items, count, item)                                                                \
    do {                                                                                           \
        (items) = grow((b), (items), (count), sizeof *(items));                                    \
        (items)[(count)++] = (item);                                                               \
    } while (0)

/* ---- building ---------------------------------------------------------------------------- */

void onnx_builder_init(onnx_builder *b, const char *graph_name) {
    memset(b, 0, sizeof *b);
    b->model = onnx_alloc(b, sizeof *b->model);
    onnx__model_proto__init(b->model);
    b->graph = onnx_alloc(b, sizeof *b->graph);
    onnx__graph_proto__init(b->graph);
    b->graph->name = onnx_strdup(b, graph_name);
    b->model->graph = b->graph;
}

void onnx_builder_free(onnx_builder *b) {
    for (onnx_chunk *c = b->chunks, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    memset(b, 0, sizeof *b);
}

Onnx__NodeProto *onnx_add_node(onnx_builder *b, const char *op_type, const char *output,
                               int n_inputs, const char *const *inputs) {
    Onnx__NodeProto *n = onnx_alloc(b, sizeof *n);
    onnx__node_proto__init(n);
    n->op_type = onnx_strdup(b, op_type);
    n->name = onnx_strdup(b, output);
    n->n_output = 1;
    n->output = onnx_alloc(b, sizeof *n->output);
    n->output[0] = n->name;
    n->n_input = (size_t)n_inputs;
    n->input = onnx_alloc(b, (size_t)n_inputs * sizeof *n->input);
    for (int i = 0; i < n_inputs; i++) n->input[i] = onnx_strdup(b, inputs[i]);
    PUSH(b, b->graph->node, b->graph->n_node, n);
    return n;
}

static Onnx__AttributeProto *add_attribute(onnx_builder *b, Onnx__NodeProto *node, const char *name,
                                           Onnx__AttributeProto__AttributeType type) {
    Onnx__AttributeProto *a = onnx_alloc(b, sizeof *a);
    onnx__attribute_proto__init(a);
    a->name = onnx_strdup(b, name);
    a->has_type = 1;
    a->type = type;
    PUSH(b, node->attribute, node->n_attribute, a);
    return a;
}

void onnx_set_int(onnx_builder *b, Onnx__NodeProto *node, const char *name, int64_t value) {
    Onnx__AttributeProto *a = add_attribute(b, node, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    a->has_i = 1;
    a->i = value;
}

void onnx_set_ints(onnx_builder *b, Onnx__NodeProto *node, const char *name, int count,
                   const int64_t *values) {
    Onnx__AttributeProto *a = add_attribute(b, node, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    a->n_ints = (size_t)count;
    a->ints = onnx_alloc(b, (size_t)count * sizeof *a->ints);
    memcpy(a->ints, values, (size_t)count * sizeof *a->ints);
}

void onnx_add_initializer(onnx_builder *b, const char *name, int ndim, const int64_t *dims,
                          const float *data) {
    Onnx__TensorProto *t = onnx_alloc(b, sizeof *t);
    onnx__tensor_proto__init(t);
    t->name = onnx_strdup(b, name);
    t->has_data_type = 1;
    t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    t->n_dims = (size_t)ndim;
    t->dims = onnx_alloc(b, (size_t)ndim * sizeof *t->dims);
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        t->dims[i] = dims[i];
        numel *= (size_t)dims[i];
    }
    /* raw_data is little-endian whatever the host's byte order. */
    uint8_t *raw = onnx_alloc(b, 4 * numel);
    for (size_t i = 0; i < numel; i++) {
        uint32_t u;
        memcpy(&u, &data[i], 4);
        for (int k = 0; k < 4; k++) raw[4 * i + k] = (uint8_t)(u >> (8 * k));
    }
    t->has_raw_data = 1;
    t->raw_data.len = 4 * numel;
    t->raw_data.data = raw;
    PUSH(b, b->graph->initializer, b->graph->n_initializer, t);
}

static Onnx__ValueInfoProto *tensor_value(onnx_builder *b, const char *name, int ndim,
                                          const int64_t *dims, const char *const *params) {
    Onnx__TensorShapeProto *shape = onnx_alloc(b, sizeof *shape);
    onnx__tensor_shape_proto__init(shape);
    shape->n_dim = (size_t)ndim;
    shape->dim = onnx_alloc(b, (size_t)ndim * sizeof *shape->dim);
    for (int i = 0; i < ndim; i++) {
        Onnx__TensorShapeProto__Dimension *d = onnx_alloc(b, sizeof *d);
        onnx__tensor_shape_proto__dimension__init(d);
        if (dims[i] < 0) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = onnx_strdup(b, params[i]);
        } else {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = dims[i];
        }
        shape->dim[i] = d;
    }
    Onnx__TypeProto__Tensor *tt = onnx_alloc(b, sizeof *tt);
    onnx__type_proto__tensor__init(tt);
    tt->has_elem_type = 1;
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt->shape = shape;
    Onnx__TypeProto *type = onnx_alloc(b, sizeof *type);
    onnx__type_proto__init(type);
    type->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    type->tensor_type = tt;
    Onnx__ValueInfoProto *v = onnx_alloc(b, sizeof *v);
    onnx__value_info_proto__init(v);
    v->name = onnx_strdup(b, name);
    v->type = type;
    return v;
}

void onnx_add_input(onnx_builder *b, const char *name, int ndim, const int64_t *dims,
                    const char *const *params) {
    PUSH(b, b->graph->input, b->graph->n_input, tensor_value(b, name, ndim, dims, params));
}

void onnx_add_output(onnx_builder *b, const char *name, int ndim, const int64_t *dims,
                     const char *const *params) {
    PUSH(b, b->graph->output, b->graph->n_output, tensor_value(b, name, ndim, dims, params));
}

void onnx_add_opset(onnx_builder *b, const char *domain, int64_t version) {
    Onnx__OperatorSetIdProto *o = onnx_alloc(b, sizeof *o);
    onnx__operator_set_id_proto__init(o);
    o->domain = onnx_strdup(b, domain);
    o->has_version = 1;
    o->version = version;
    PUSH(b, b->model->opset_import, b->model->n_opset_import, o);
}

void onnx_add_metadata(onnx_builder *b, const char *key, const char *value) {
    Onnx__StringStringEntryProto *e = onnx_alloc(b, sizeof *e);
    onnx__string_string_entry_proto__init(e);
    e->key = onnx_strdup(b, key);
    e->value = onnx_strdup(b, value);
    PUSH(b, b->model->metadata_props, b->model->n_metadata_props, e);
}

/* ---- files ------------------------------------------------------------------------------- */

/* protobuf-c streams the encoding through this, so the file is never held in memory twice. */
typedef struct {
    ProtobufCBuffer base;
    FILE *file;
    int error; /* errno of the first failed write, 0 if none */
} file_sink;

static void sink_append(ProtobufCBuffer *buffer, size_t len, const uint8_t *data) {
    file_sink *s = (file_sink *)buffer;
    if (!s->error && fwrite(data, 1, len, s->file) != len) s->error = errno ? errno : EIO;
}

int onnx_write_model(const onnx_builder *b, const char *path) {
    char temp[4200];
    FILE *f = kao_atomic_fopen(temp, sizeof temp, path);
    if (!f) return KAO_ERR;
    file_sink sink = {{sink_append}, f, 0};
    protobuf_c_message_pack_to_buffer(&b->model->base, &sink.base);
    if (fclose(f) != 0 && !sink.error) sink.error = errno ? errno : EIO;
    if (sink.error) {
        kao_discard_file(temp);
        return kao_fail("%s: cannot write: %s", path, strerror(sink.error));
    }
    return kao_commit_file(temp, path);
}

Onnx__ModelProto *onnx_read_model(const char *path) {
    FILE *f = kao_fopen_regular(path, "ONNX model");
    if (!f) return NULL;
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        kao_fail("%s: cannot open ONNX model: %s", path, strerror(errno));
        fclose(f);
        return NULL;
    }
    size_t size = (size_t)st.st_size;
    uint8_t *bytes = kao_malloc(size, "ONNX file");
    size_t got = fread(bytes, 1, size, f);
    int err = ferror(f) ? errno : 0;
    fclose(f);
    if (got != size) {
        free(bytes);
        kao_fail("%s: read error: %s", path, err ? strerror(err) : "file shrank while reading");
        return NULL;
    }
    Onnx__ModelProto *model = onnx__model_proto__unpack(NULL, size, bytes);
    free(bytes);
    if (!model) kao_fail("%s: not a valid ONNX model (truncated or corrupt protobuf)", path);
    return model;
}
