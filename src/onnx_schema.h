/* onnx_schema.h — the ops kao's exporter emits, as rules that a model read back must follow
 * (onnx_check.c), and text from a model made safe for a terminal.
 *
 * Private to src/. The rules are those of kao's exports, stricter than ONNX's: an op kao does
 * not emit, an attribute it never writes or a shape it cannot determine makes a file "not a kao
 * export", so that every file kao_onnx_check accepts is one that onnx.checker and onnxruntime
 * accept too.
 */
#ifndef KAO_ONNX_SCHEMA_H
#define KAO_ONNX_SCHEMA_H

#include <stdint.h>
#include <stdio.h>

#include "onnx_subset.pb-c.h"

#define ONNX_MAX_RANK 4
#define ONNX_MAX_INPUTS 3    /* of any op in the table */
#define ONNX_BATCH (-1)      /* the graph input's symbolic batch size */
#define ONNX_DIM_MAX (1ll << 31) /* larger dimensions are refused (and arithmetic never overflows) */

/* A value's shape: rank dims, each >= 1 or ONNX_BATCH. Every value is float32. */
typedef struct {
    int rank;
    int64_t dim[ONNX_MAX_RANK];
} onnx_shape;

/* s as text, e.g. "[batch, 32, 56, 56]". Returns out. */
const char *onnx_shape_text(char out[64], const onnx_shape *s);

/* Checks node n against the schema of its op (default domain, the same for opsets 13 and 17):
 * op type, attributes and their types and values, input and output counts, and the shapes of
 * its inputs in[0 .. min(n_input, ONNX_MAX_INPUTS)), from which it computes its output's shape.
 * KAO_ERR with the reason recorded (no file or node in it). */
int onnx_check_node(const Onnx__NodeProto *n, const onnx_shape *const *in, onnx_shape *out);

/* s with control characters escaped — C0 and DEL as \x1b, C1 as \u009b, bytes that are not
 * UTF-8 as \xff — in out, cut (at a character) to fit out_size. Returns out. */
const char *onnx_escape(char *out, size_t out_size, const char *s);
/* The same written to f, whole. */
void onnx_print_text(FILE *f, const char *s);

#endif
