/* Activation memory for one batch: sizes from the architecture and input size, then one block. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kao/network.h"
#include "kao/util.h"

static int ceil_div(int a, int b) { return (a + b - 1) / b; }

/* Hands out consecutive pieces of one block, maps of map_bytes per element and float tensors;
 * with base == NULL it only counts. */
typedef struct {
    char *base;
    size_t used, map_bytes;
} carver;

static void *carve_bytes(carver *c, size_t bytes) {
    void *p = c->base ? c->base + c->used : NULL;
    c->used += (bytes + 63) & ~(size_t)63; /* keep every tensor 64-byte aligned */
    return p;
}

static float *carve(carver *c, size_t floats) { return carve_bytes(c, floats * sizeof(float)); }
static kao_map *carve_map(carver *c, size_t elements) { return carve_bytes(c, elements * c->map_bytes); }

/* Geometry of every conv for this batch and input size (independent of the memory plan). */
static void plan_shapes(kao_acts *a, const kao_model *m) {
    const kao_arch *arch = &m->arch;
    int B = a->batch;
    kao_conv_shape_init(&a->stem_conv, B, a->height, a->width, 3, arch->stem_ch, 3, 2, false);
    int h = a->stem_conv.out_h, w = a->stem_conv.out_w;
    for (int i = 0; i < arch->num_blocks; i++) {
        const kao_block_arch *b = &arch->blocks[i];
        kao_block_acts *ba = &a->blocks[i];
        ba->in_h = h;
        ba->in_w = w;
        if (b->type == KAO_BLOCK_IR) {
            kao_conv_shape_init(&ba->conv1, B, h, w, b->in_ch, b->mid_ch, 1, 1, false);
            kao_conv_shape_init(&ba->conv_dw, B, h, w, b->mid_ch, b->mid_ch, b->kernel, b->stride, true);
        } else {
            int c1_out = b->type == KAO_BLOCK_CN ? b->out_ch : b->mid_ch;
            kao_conv_shape_init(&ba->conv1, B, h, w, b->in_ch, c1_out, b->kernel, b->stride, false);
        }
        ba->out_h = ceil_div(h, b->stride);
        ba->out_w = ceil_div(w, b->stride);
        if (b->type != KAO_BLOCK_CN)
            kao_conv_shape_init(&ba->conv_pwl, B, ba->out_h, ba->out_w, b->mid_ch, b->out_ch, 1, 1, false);
        h = ba->out_h;
        w = ba->out_w;
    }
    kao_conv_shape_init(&a->head_conv, B, h, w, arch->blocks[arch->num_blocks - 1].out_ch,
                        arch->num_features, 1, 1, false);
}

static size_t conv_out_floats(const kao_conv_shape *s) {
    return (size_t)s->batch * s->out_h * s->out_w * s->out_c;
}

/* Training: every tensor backward reads gets its own memory. */
static void plan_training(kao_acts *a, const kao_model *m, carver *c) {
    const kao_arch *arch = &m->arch;
    int B = a->batch;
    a->stem_c = carve_map(c, conv_out_floats(&a->stem_conv));
    a->stem_out = carve_map(c, conv_out_floats(&a->stem_conv));
    a->stem_mean = carve(c, (size_t)arch->stem_ch);
    a->stem_rstd = carve(c, (size_t)arch->stem_ch);
    kao_map *prev_out = a->stem_out;
    for (int i = 0; i < arch->num_blocks; i++) {
        const kao_block_arch *b = &arch->blocks[i];
        kao_block_acts *ba = &a->blocks[i];
        size_t c1 = conv_out_floats(&ba->conv1);
        size_t out = (size_t)B * ba->out_h * ba->out_w * b->out_ch;
        ba->in = prev_out;
        ba->c1 = carve_map(c, c1);
        ba->mean1 = carve(c, (size_t)ba->conv1.out_c);
        ba->rstd1 = carve(c, (size_t)ba->conv1.out_c);
        if (b->type != KAO_BLOCK_CN) {
            ba->a1 = carve_map(c, c1);
            ba->c3 = carve_map(c, out);
            ba->mean3 = carve(c, (size_t)b->out_ch);
            ba->rstd3 = carve(c, (size_t)b->out_ch);
        }
        if (b->type == KAO_BLOCK_IR) {
            size_t c2 = conv_out_floats(&ba->conv_dw);
            ba->c2 = carve_map(c, c2);
            ba->a2 = carve_map(c, c2);
            ba->mean2 = carve(c, (size_t)b->mid_ch);
            ba->rstd2 = carve(c, (size_t)b->mid_ch);
            if (b->se_ch > 0) {
                ba->se_out = carve_map(c, c2);
                ba->se_pooled = carve(c, (size_t)B * b->mid_ch);
                ba->se_hidden = carve(c, (size_t)B * b->se_ch);
                ba->se_gate = carve(c, (size_t)B * b->mid_ch);
            } else {
                ba->se_out = ba->a2;
            }
        }
        ba->out = carve_map(c, out);
        ba->drop_mask = b->has_skip && b->drop_path_rate > 0 ? carve(c, (size_t)B) : NULL;
        prev_out = ba->out;
    }
    a->head_c = carve_map(c, conv_out_floats(&a->head_conv));
    a->head_a = carve_map(c, conv_out_floats(&a->head_conv));
    a->head_mean = carve(c, (size_t)arch->num_features);
    a->head_rstd = carve(c, (size_t)arch->num_features);
    a->pooled = carve(c, (size_t)B * arch->num_features);
    a->embedding = carve(c, (size_t)B * arch->embedding_dim);
}

/* Eval: block outputs ping-pong between two buffers (io), a block's expanded tensors live in two
 * more (mid), and BN/SiLU/SE run in place. */
static void plan_eval(kao_acts *a, const kao_model *m, carver *c) {
    const kao_arch *arch = &m->arch;
    int B = a->batch;
    size_t io = conv_out_floats(&a->stem_conv), mid = io;
    for (int i = 0; i < arch->num_blocks; i++) {
        const kao_block_arch *b = &arch->blocks[i];
        const kao_block_acts *ba = &a->blocks[i];
        size_t out = (size_t)B * ba->out_h * ba->out_w * b->out_ch;
        io = out > io ? out : io;
        size_t c1 = conv_out_floats(&ba->conv1);
        mid = c1 > mid ? c1 : mid;
        if (b->type == KAO_BLOCK_IR) {
            size_t c2 = conv_out_floats(&ba->conv_dw);
            mid = c2 > mid ? c2 : mid;
        }
    }
    size_t head = conv_out_floats(&a->head_conv);
    mid = head > mid ? head : mid;
    kao_map *io_buf[2] = {carve_map(c, io), carve_map(c, io)};
    kao_map *mid_buf[2] = {carve_map(c, mid), carve_map(c, mid)};
    int maxc = arch->num_features;
    for (int i = 0; i < arch->num_blocks; i++) maxc = arch->blocks[i].mid_ch > maxc ? arch->blocks[i].mid_ch : maxc;
    float *se_pooled = carve(c, (size_t)B * maxc), *se_gate = carve(c, (size_t)B * maxc);
    float *se_hidden = carve(c, (size_t)B * maxc);

    a->stem_c = a->stem_out = io_buf[0];
    int cur = 0;
    for (int i = 0; i < arch->num_blocks; i++) {
        const kao_block_arch *b = &arch->blocks[i];
        kao_block_acts *ba = &a->blocks[i];
        ba->in = io_buf[cur];
        ba->out = io_buf[1 - cur];
        if (b->type == KAO_BLOCK_CN) {
            ba->c1 = ba->out;
        } else {
            ba->c1 = ba->a1 = mid_buf[0];
            ba->c3 = ba->out;
        }
        if (b->type == KAO_BLOCK_IR) {
            ba->c2 = ba->a2 = ba->se_out = mid_buf[1];
            ba->se_pooled = se_pooled;
            ba->se_hidden = se_hidden;
            ba->se_gate = se_gate;
        }
        cur = 1 - cur;
    }
    a->head_c = a->head_a = mid_buf[0];
    a->pooled = carve(c, (size_t)B * arch->num_features);
    a->embedding = carve(c, (size_t)B * arch->embedding_dim);
}

/* The whole plan: the tensors of the mode and, for maps that are not floats, the input's copy. */
static void plan(kao_acts *a, const kao_model *m, carver *c) {
    if (a->training) plan_training(a, m, c);
    else plan_eval(a, m, c);
    a->input_copy = c->map_bytes != sizeof(float) ? carve_map(c, (size_t)a->batch * a->height * a->width * 3) : NULL;
}

/* The shapes of a, and the bytes its plan takes. */
static size_t plan_size(kao_acts *a, const kao_model *m, int batch, int height, int width, bool training,
                        size_t map_bytes) {
    memset(a, 0, sizeof *a);
    a->batch = batch;
    a->height = height;
    a->width = width;
    a->training = training;
    a->map_bytes = map_bytes;
    plan_shapes(a, m);
    carver counter = {NULL, 0, map_bytes};
    plan(a, m, &counter);
    return counter.used;
}

size_t kao_acts_bytes(const kao_model *m, int batch, int height, int width, bool training, size_t map_bytes) {
    kao_acts a;
    return plan_size(&a, m, batch, height, width, training, map_bytes);
}

int kao_acts_check_memory(const kao_model *m, const kao_backend *be, int batch, int height, int width,
                          bool training, const char *hint) {
    /* Per image, then times the batch in double: a batch the user chose may overflow size_t. */
    double bytes = (double)batch * height * width * 3 * sizeof(float);
    if (be->host_memory) bytes += (double)batch * (double)kao_acts_bytes(m, 1, height, width, training, be->map_bytes);
    char what[128];
    snprintf(what, sizeof what, "a batch of %d images at %dx%d", batch, height, width);
    return kao_check_memory(bytes, what, hint);
}

void kao_acts_create(kao_acts *a, const kao_model *m, int batch, int height, int width, bool training,
                     kao_backend *be) {
    size_t bytes = plan_size(a, m, batch, height, width, training, be->map_bytes);
    a->backend = be;
    a->memory_bytes = bytes;
    a->memory = be->alloc(be, bytes, "activations");
    carver c = {a->memory, 0, be->map_bytes};
    plan(a, m, &c);
    int masks = 0;
    for (int i = 0; i < m->arch.num_blocks; i++) masks += a->blocks[i].drop_mask != NULL;
    if (masks == 0) return;
    a->host_masks = be->host_alloc(be, (size_t)masks * batch * sizeof(float), "drop-path masks");
    for (int i = 0, k = 0; i < m->arch.num_blocks; i++)
        if (a->blocks[i].drop_mask) a->blocks[i].drop_mask_host = a->host_masks + (size_t)k++ * batch;
}

void kao_acts_free(kao_acts *a) {
    if (a->backend) a->backend->release(a->backend, a->memory);
    if (a->host_masks) a->backend->host_release(a->backend, a->host_masks);
    memset(a, 0, sizeof *a);
}
