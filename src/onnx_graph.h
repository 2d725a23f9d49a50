/* onnx_graph.h — building ONNX models as protobuf-c messages, writing and reading model files.
 *
 * Private to src/ (onnx_export.c builds kao's network with it, onnx_check.c reads models back).
 * The messages come from src/onnx/onnx_subset.proto, compiled by protoc-c at build time.
 *
 * Every message, string and tensor of a model being built lives in one arena owned by the
 * builder; onnx_builder_free releases all of it at once. Names and strings are copied in, so
 * callers may pass temporaries.
 */
#ifndef KAO_ONNX_GRAPH_H
#define KAO_ONNX_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "onnx_subset.pb-c.h"

typedef struct onnx_chunk onnx_chunk;

typedef struct {
    onnx_chunk *chunks;       /* the arena: a list of blocks, newest first */
    Onnx__ModelProto *model;
    Onnx__GraphProto *graph;  /* = model->graph */
} onnx_builder;

/* An empty model with one graph named graph_name. */
void onnx_builder_init(onnx_builder *b, const char *graph_name);
void onnx_builder_free(onnx_builder *b);

/* Arena allocation (zeroed) and string copies that live as long as the builder. */
void *onnx_alloc(onnx_builder *b, size_t bytes);
char *onnx_strdup(onnx_builder *b, const char *s);

/* Appends a node with one output; its name is the output's name. inputs: n_inputs names. */
Onnx__NodeProto *onnx_add_node(onnx_builder *b, const char *op_type, const char *output,
                               int n_inputs, const char *const *inputs);
void onnx_set_int(onnx_builder *b, Onnx__NodeProto *node, const char *name, int64_t value);
void onnx_set_ints(onnx_builder *b, Onnx__NodeProto *node, const char *name, int count,
                   const int64_t *values);

/* A float32 initializer (a constant: not listed as a graph input), stored as little-endian
 * raw_data. data: prod(dims) floats, copied. */
void onnx_add_initializer(onnx_builder *b, const char *name, int ndim, const int64_t *dims,
                          const float *data);

/* A float32 graph input or output. dims[i] < 0 is the symbolic size params[i] (e.g. "batch"). */
void onnx_add_input(onnx_builder *b, const char *name, int ndim, const int64_t *dims,
                    const char *const *params);
void onnx_add_output(onnx_builder *b, const char *name, int ndim, const int64_t *dims,
                     const char *const *params);

void onnx_add_opset(onnx_builder *b, const char *domain, int64_t version);
void onnx_add_metadata(onnx_builder *b, const char *key, const char *value);

/* Serialises b->model to path atomically (temp file, fsync, rename). On failure nothing is
 * left at path (an older file there stays). */
int onnx_write_model(const onnx_builder *b, const char *path);

/* Parses the file at path. Returns NULL (error recorded) when it cannot be read or is not a
 * protobuf ModelProto; free the result with onnx__model_proto__free_unpacked(model, NULL). */
Onnx__ModelProto *onnx_read_model(const char *path);

#endif
