/* The schema of the ops kao's exporter emits (onnx_export.c), for kao_onnx_check. Their ONNX
 * versions are the same in opsets 13 and 17 (Conv 11, Sigmoid 13, Mul and Add 13/14 with the
 * same inputs, GlobalAveragePool 1, Flatten 13, Gemm 13, LpNormalization 1), so one table
 * serves both. */
#include <stdbool.h>
#include <string.h>

#include "kao/util.h"
#include "onnx_schema.h"

#define INT ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT
#define INTS ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS
#define FLOAT ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT
#define MAX_ATTRS 5 /* of any op in the table */

typedef struct {
    const char *name;
    Onnx__AttributeProto__AttributeType type; /* INT, INTS or FLOAT */
    bool required;                            /* kao always writes it */
    int count;                                /* INTS: how many values */
    int64_t min, max;                         /* INT, INTS: the range of every value */
} attr_rule;

typedef const Onnx__AttributeProto *attr_set[MAX_ATTRS]; /* a node's, in its rules' order */

/* out = the output's shape from the inputs' (n of them); KAO_ERR with the reason. */
typedef int shape_rule(const attr_set attr, const onnx_shape *const *in, size_t n, onnx_shape *out);

typedef struct {
    const char *op_type;
    size_t min_inputs, max_inputs;
    const attr_rule *attrs; /* NULL-name terminated */
    shape_rule *shape;
} op_rule;

/* ---- shapes ------------------------------------------------------------------------------ */

const char *onnx_shape_text(char out[64], const onnx_shape *s) {
    int used = snprintf(out, 64, "[");
    for (int i = 0; i < s->rank && used < 64; i++)
        used += s->dim[i] == ONNX_BATCH
                    ? snprintf(out + used, 64 - (size_t)used, "%sbatch", i ? ", " : "")
                    : snprintf(out + used, 64 - (size_t)used, "%s%lld", i ? ", " : "", (long long)s->dim[i]);
    if (used < 64) snprintf(out + used, 64 - (size_t)used, "]");
    return out;
}

/* Whether dims from..rank-1 of s are numbers (not the symbolic batch). */
static bool fixed_from(const onnx_shape *s, int from) {
    for (int i = from; i < s->rank; i++)
        if (s->dim[i] == ONNX_BATCH) return false;
    return true;
}

static int need_rank(const onnx_shape *s, int min, int max, const char *what) {
    char t[64];
    if (s->rank < min || s->rank > max)
        return kao_fail("%s has shape %s (rank %d..%d expected)", what, onnx_shape_text(t, s), min, max);
    return KAO_OK;
}

/* ONNX's multidirectional broadcasting of a and b into out; the symbolic batch broadcasts only
 * against itself and 1. */
static int broadcast(const onnx_shape *a, const onnx_shape *b, onnx_shape *out) {
    out->rank = a->rank > b->rank ? a->rank : b->rank;
    for (int i = 1; i <= out->rank; i++) {
        int64_t x = i <= a->rank ? a->dim[a->rank - i] : 1, y = i <= b->rank ? b->dim[b->rank - i] : 1;
        if (x != y && x != 1 && y != 1) {
            char ta[64], tb[64];
            return kao_fail("shapes %s and %s do not broadcast", onnx_shape_text(ta, a),
                            onnx_shape_text(tb, b));
        }
        out->dim[out->rank - i] = x == 1 ? y : x;
    }
    return KAO_OK;
}

static int64_t attr_int(const Onnx__AttributeProto *a, int64_t default_value) {
    return a ? a->i : default_value;
}

static int64_t attr_ints(const Onnx__AttributeProto *a, int i, int64_t default_value) {
    return a ? a->ints[i] : default_value;
}

enum { CONV_KERNEL, CONV_STRIDES, CONV_PADS, CONV_DILATIONS, CONV_GROUP };

/* One spatial axis of a Conv: its output size in *out. */
static int conv_axis(const attr_set attr, int axis, int64_t in, int64_t kernel, int64_t *out) {
    int64_t dilation = attr_ints(attr[CONV_DILATIONS], axis, 1),
            stride = attr_ints(attr[CONV_STRIDES], axis, 1);
    int64_t begin = attr_ints(attr[CONV_PADS], axis, 0), end = attr_ints(attr[CONV_PADS], axis + 2, 0);
    int64_t reach = (kernel - 1) * dilation + 1; /* < 2^31 · 2^14: no overflow */
    if (attr_ints(attr[CONV_KERNEL], axis, kernel) != kernel)
        return kao_fail("kernel_shape[%d] = %lld, the weight's is %lld", axis,
                        (long long)attr_ints(attr[CONV_KERNEL], axis, kernel), (long long)kernel);
    if (begin >= reach || end >= reach)
        return kao_fail("pads on axis %d (%lld, %lld) reach past the kernel (%lld)", axis, (long long)begin,
                        (long long)end, (long long)reach);
    if (in + begin + end < reach)
        return kao_fail("the kernel (%lld) is larger than the padded input (%lld) on axis %d", (long long)reach,
                        (long long)(in + begin + end), axis);
    *out = (in + begin + end - reach) / stride + 1;
    return KAO_OK;
}

static int conv_shape(const attr_set attr, const onnx_shape *const *in, size_t n, onnx_shape *out) {
    const onnx_shape *x = in[0], *w = in[1];
    char tx[64], tw[64];
    if (need_rank(x, 4, 4, "the input") || need_rank(w, 4, 4, "the weight")) return KAO_ERR;
    if (!fixed_from(x, 1) || !fixed_from(w, 0))
        return kao_fail("input %s and weight %s: sizes not fixed", onnx_shape_text(tx, x),
                        onnx_shape_text(tw, w));
    int64_t group = attr_int(attr[CONV_GROUP], 1);
    if (x->dim[1] != w->dim[1] * group || w->dim[0] % group != 0)
        return kao_fail("input %s does not fit weight %s with group %lld", onnx_shape_text(tx, x),
                        onnx_shape_text(tw, w), (long long)group);
    if (n == 3 && (in[2]->rank != 1 || in[2]->dim[0] != w->dim[0]))
        return kao_fail("bias %s for weight %s", onnx_shape_text(tx, in[2]), onnx_shape_text(tw, w));
    *out = (onnx_shape){4, {x->dim[0], w->dim[0], 0, 0}};
    for (int axis = 0; axis < 2; axis++)
        if (conv_axis(attr, axis, x->dim[2 + axis], w->dim[2 + axis], &out->dim[2 + axis])) return KAO_ERR;
    return KAO_OK;
}

static int same_shape(const attr_set attr, const onnx_shape *const *in, size_t n, onnx_shape *out) {
    *out = *in[0];
    return KAO_OK;
}

static int broadcast_shape(const attr_set attr, const onnx_shape *const *in, size_t n, onnx_shape *out) {
    return broadcast(in[0], in[1], out);
}

static int pool_shape(const attr_set attr, const onnx_shape *const *in, size_t n, onnx_shape *out) {
    if (need_rank(in[0], 3, ONNX_MAX_RANK, "the input")) return KAO_ERR;
    *out = *in[0];
    for (int i = 2; i < out->rank; i++) out->dim[i] = 1;
    return KAO_OK;
}

/* Flatten with axis 1 (the only one kao writes): [d0, d1·d2·…]. */
static int flatten_shape(const attr_set attr, const onnx_shape *const *in, size_t n, onnx_shape *out) {
    const onnx_shape *x = in[0];
    char t[64];
    if (need_rank(x, 2, ONNX_MAX_RANK, "the input")) return KAO_ERR;
    if (!fixed_from(x, 1)) return kao_fail("input %s: sizes not fixed", onnx_shape_text(t, x));
    int64_t features = 1;
    for (int i = 1; i < x->rank; i++) {
        if (x->dim[i] > ONNX_DIM_MAX / features)
            return kao_fail("input %s is too large", onnx_shape_text(t, x));
        features *= x->dim[i];
    }
    *out = (onnx_shape){2, {x->dim[0], features}};
    return KAO_OK;
}

/* Gemm with transA = 0, transB = 1 (the attribute rules allow no other): A [N, K] · B [M, K]ᵀ
 * + C, C broadcast to [N, M]. */
static int gemm_shape(const attr_set attr, const onnx_shape *const *in, size_t n, onnx_shape *out) {
    const onnx_shape *a = in[0], *b = in[1];
    char ta[64], tb[64];
    if (need_rank(a, 2, 2, "A") || need_rank(b, 2, 2, "B")) return KAO_ERR;
    if (!fixed_from(a, 1) || !fixed_from(b, 0) || a->dim[1] != b->dim[1])
        return kao_fail("A %s does not fit B %s (transB = 1)", onnx_shape_text(ta, a), onnx_shape_text(tb, b));
    *out = (onnx_shape){2, {a->dim[0], b->dim[0]}};
    onnx_shape c;
    if (n == 3 &&
        (broadcast(out, in[2], &c) || c.rank != 2 || c.dim[0] != out->dim[0] || c.dim[1] != out->dim[1]))
        return kao_fail("C %s does not broadcast to the output %s", onnx_shape_text(ta, in[2]),
                        onnx_shape_text(tb, out));
    return KAO_OK;
}

static int normalize_shape(const attr_set attr, const onnx_shape *const *in, size_t n, onnx_shape *out) {
    if (need_rank(in[0], 2, ONNX_MAX_RANK, "the input")) return KAO_ERR; /* axis 1 */
    *out = *in[0];
    return KAO_OK;
}

/* ---- the table --------------------------------------------------------------------------- */

static const attr_rule no_attrs[] = {{NULL}};
/* In enum CONV_* order. auto_pad is not allowed: kao writes explicit pads. */
static const attr_rule conv_attrs[] = {
    {"kernel_shape", INTS, true, 2, 1, ONNX_DIM_MAX},
    {"strides", INTS, true, 2, 1, ONNX_DIM_MAX},
    {"pads", INTS, true, 4, 0, ONNX_DIM_MAX},
    {"dilations", INTS, false, 2, 1, 1 << 14},
    {"group", INT, false, 0, 1, ONNX_DIM_MAX},
    {NULL},
};
static const attr_rule flatten_attrs[] = {{"axis", INT, true, 0, 1, 1}, {NULL}};
static const attr_rule gemm_attrs[] = {
    {"transB", INT, true, 0, 1, 1},
    {"transA", INT, false, 0, 0, 0},
    {"alpha", FLOAT, false, 0, 0, 0},
    {"beta", FLOAT, false, 0, 0, 0},
    {NULL},
};
static const attr_rule normalize_attrs[] = {{"axis", INT, true, 0, 1, 1}, {"p", INT, true, 0, 2, 2}, {NULL}};

static const op_rule ops[] = {
    {"Conv", 2, 3, conv_attrs, conv_shape},
    {"Sigmoid", 1, 1, no_attrs, same_shape},
    {"Mul", 2, 2, no_attrs, broadcast_shape},
    {"Add", 2, 2, no_attrs, broadcast_shape},
    {"GlobalAveragePool", 1, 1, no_attrs, pool_shape},
    {"Flatten", 1, 1, flatten_attrs, flatten_shape},
    {"Gemm", 2, 3, gemm_attrs, gemm_shape},
    {"LpNormalization", 1, 1, normalize_attrs, normalize_shape},
};
#define N_OPS (sizeof ops / sizeof ops[0])

/* ---- attributes -------------------------------------------------------------------------- */

static const char *type_text(Onnx__AttributeProto__AttributeType type) {
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&onnx__attribute_proto__attribute_type__descriptor, (int)type);
    return v ? v->name : "an unknown type";
}

/* Whether a holds a value of exactly its rule's type (and count), and nothing else. */
static bool holds_only(const Onnx__AttributeProto *a, const attr_rule *r) {
    if (a->has_s || a->n_floats || a->n_strings) return false;
    switch (r->type) {
    case INT: return a->has_i && !a->has_f && !a->n_ints;
    case INTS: return a->n_ints == (size_t)r->count && !a->has_i && !a->has_f;
    default: return a->has_f && !a->has_i && !a->n_ints;
    }
}

static bool in_range(const Onnx__AttributeProto *a, const attr_rule *r) {
    if (r->type == INT) return a->i >= r->min && a->i <= r->max;
    for (size_t i = 0; r->type == INTS && i < a->n_ints; i++)
        if (a->ints[i] < r->min || a->ints[i] > r->max) return false;
    return true;
}

static int check_attribute(const Onnx__AttributeProto *a, const op_rule *op, attr_set set) {
    char name[128], allowed[160] = "";
    onnx_escape(name, sizeof name, a->name ? a->name : "");
    int k = 0;
    while (op->attrs[k].name && (!a->name || strcmp(op->attrs[k].name, a->name) != 0)) k++;
    const attr_rule *r = &op->attrs[k];
    if (!r->name) {
        for (int i = 0; op->attrs[i].name; i++)
            snprintf(allowed + strlen(allowed), sizeof allowed - strlen(allowed), "%s%s", i ? ", " : "",
                     op->attrs[i].name);
        return kao_fail("attribute '%s' is not allowed (%s: %s)", name, op->op_type,
                        allowed[0] ? allowed : "none");
    }
    if (set[k]) return kao_fail("attribute '%s' appears twice", name);
    set[k] = a;
    if (!a->has_type) return kao_fail("attribute '%s' has no type", name);
    if (a->type != r->type)
        return kao_fail("attribute '%s' is of type %s, not %s", name, type_text(a->type), type_text(r->type));
    if (!holds_only(a, r)) {
        if (r->type == INTS)
            return kao_fail("attribute '%s' must hold %d ints and nothing else", name, r->count);
        return kao_fail("attribute '%s' must hold one %s and nothing else", name, type_text(r->type));
    }
    if (!in_range(a, r))
        return kao_fail("attribute '%s' is out of range (%lld..%lld)", name, (long long)r->min,
                        (long long)r->max);
    return KAO_OK;
}

static int check_attributes(const Onnx__NodeProto *n, const op_rule *op, attr_set set) {
    memset(set, 0, sizeof(attr_set));
    for (size_t i = 0; i < n->n_attribute; i++)
        if (check_attribute(n->attribute[i], op, set)) return KAO_ERR;
    for (int k = 0; op->attrs[k].name; k++)
        if (op->attrs[k].required && !set[k]) return kao_fail("attribute '%s' is missing", op->attrs[k].name);
    return KAO_OK;
}

/* ---- nodes ------------------------------------------------------------------------------- */

static const op_rule *find_op(const char *op_type) {
    for (size_t i = 0; op_type && i < N_OPS; i++)
        if (strcmp(ops[i].op_type, op_type) == 0) return &ops[i];
    return NULL;
}

int onnx_check_node(const Onnx__NodeProto *n, const onnx_shape *const *in, onnx_shape *out) {
    char text[128];
    if (n->domain && n->domain[0])
        return kao_fail("domain '%s' (kao's ops are in the default domain)",
                        onnx_escape(text, sizeof text, n->domain));
    const op_rule *op = find_op(n->op_type);
    if (!op)
        return kao_fail("op type '%s' is not one kao emits",
                        onnx_escape(text, sizeof text, n->op_type ? n->op_type : ""));
    if (n->n_input < op->min_inputs || n->n_input > op->max_inputs) {
        if (op->min_inputs == op->max_inputs)
            return kao_fail("%zu inputs (%s takes %zu)", n->n_input, op->op_type, op->min_inputs);
        return kao_fail("%zu inputs (%s takes %zu or %zu)", n->n_input, op->op_type, op->min_inputs,
                        op->max_inputs);
    }
    if (n->n_output != 1) return kao_fail("%zu outputs (%s has 1)", n->n_output, op->op_type);
    attr_set attr;
    if (check_attributes(n, op, attr)) return KAO_ERR;
    return op->shape(attr, in, n->n_input, out);
}
