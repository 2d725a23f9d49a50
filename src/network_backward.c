/* The backward pass: from d_embedding to every parameter gradient (and, on request, the input),
 * on the activations' backend. Gradients of activations live in four scratch buffers as large as
 * the largest activation: dout (the block output's gradient), din (the block input's) and two
 * temporaries. */
#include <string.h>

#include "kao/network.h"
#include "kao/profile.h"
#include "kao/util.h"

bool kao_tensor_frozen(const kao_tensor *t, const kao_train_options *opt) {
    return !t->is_head && t->stage + 1 < opt->frozen_units;
}

typedef struct {
    const kao_model *m;
    const kao_net_weights *w;
    kao_backend *be;
    float *grads;
    const kao_train_options *opt;
    kao_profile *prof;
} pass;

#define TIMED(p, op, call) KAO_TIMED((p)->prof, KAO_PROF_BACKWARD, op, call)

static float *P(const pass *p, int index) { return kao_net_tensor(p->w, p->m, index); }
static float *G(const pass *p, int index) { return p->grads + p->m->tensors[index].offset; }

static size_t rows(const kao_conv_shape *s) { return (size_t)s->batch * s->out_h * s->out_w; }

/* In place: d (gradient of BN's output) becomes the gradient of BN's input. */
static void batchnorm_backward(const pass *p, kao_map *d, const kao_map *inp, const float *mean,
                               const float *rstd, kao_bn_ref bn, kao_act act, size_t M, int C) {
    kao_bn_tensors t = kao_net_bn(p->w, p->m, bn);
    kao_bn_mode mode = p->opt->freeze_bn ? KAO_BN_FROZEN : KAO_BN_TRAIN;
    TIMED(p, KAO_PROF_BN, p->be->bn_backward(p->be, d, G(p, bn.weight), G(p, bn.bias), inp, mean, rstd, &t, mode,
                                             act, M, C));
}

/* din may be NULL (no input gradient needed). */
static void conv_backward(const pass *p, kao_map *din, int weight, const kao_map *dout, const kao_map *inp,
                          const kao_conv_shape *s) {
    kao_prof_op op = s->depthwise ? KAO_PROF_DWCONV : s->kernel == 1 ? KAO_PROF_CONV_1X1 : KAO_PROF_CONV_KXK;
    TIMED(p, op, p->be->conv_backward(p->be, din, G(p, weight), dout, inp, P(p, weight), s));
}

/* dout: gradient of the block's output (kept intact); din: written with the gradient of its input. */
static void block_backward(const pass *p, const kao_block *blk, const kao_block_acts *ba, kao_map *din,
                           kao_map *dout, kao_map *t1, kao_map *t2, bool need_din) {
    const kao_block_arch *b = &blk->arch;
    int B = ba->conv1.batch;
    size_t out_n = (size_t)B * ba->out_h * ba->out_w * b->out_ch;

    /* The branch's gradient: through the drop-path mask; a copy when dout is still needed for the skip. */
    kao_map *dbranch = dout;
    if (b->has_skip) {
        dbranch = t1;
        TIMED(p, KAO_PROF_RESIDUAL, p->be->copy(p->be, dbranch, dout, out_n * p->be->map_bytes));
        if (ba->drop_mask)
            TIMED(p, KAO_PROF_RESIDUAL, p->be->scale_rows(p->be, dbranch, ba->drop_mask, B, out_n / (size_t)B));
    }
    kao_map *d_in_target = need_din ? din : NULL;

    if (b->type == KAO_BLOCK_CN) {
        batchnorm_backward(p, dbranch, ba->c1, ba->mean1, ba->rstd1, blk->bn1, KAO_ACT_SILU, rows(&ba->conv1), b->out_ch);
        conv_backward(p, d_in_target, blk->conv1.weight, dbranch, ba->in, &ba->conv1);
    } else {
        batchnorm_backward(p, dbranch, ba->c3, ba->mean3, ba->rstd3, blk->bn_pwl, KAO_ACT_NONE, rows(&ba->conv_pwl), b->out_ch);
        const kao_map *pwl_in = b->type == KAO_BLOCK_IR ? ba->se_out : ba->a1;
        kao_map *d_pwl_in = t2;
        conv_backward(p, d_pwl_in, blk->conv_pwl.weight, dbranch, pwl_in, &ba->conv_pwl);
        kao_map *d_a1 = d_pwl_in;
        if (b->type == KAO_BLOCK_IR) {
            /* dbranch (t1 or dout) is no longer needed: t1 is free for the SE's input gradient. */
            kao_map *d_a2 = d_pwl_in;
            if (b->se_ch > 0) {
                d_a2 = t1;
                TIMED(p, KAO_PROF_SE,
                      p->be->se_backward(p->be, d_a2, G(p, blk->se_reduce.weight), G(p, blk->se_reduce.bias),
                                      G(p, blk->se_expand.weight), G(p, blk->se_expand.bias), d_pwl_in, ba->a2,
                                      ba->se_pooled, ba->se_hidden, ba->se_gate, P(p, blk->se_reduce.weight),
                                      P(p, blk->se_expand.weight), B, ba->out_h * ba->out_w, b->mid_ch, b->se_ch));
            }
            batchnorm_backward(p, d_a2, ba->c2, ba->mean2, ba->rstd2, blk->bn_dw, KAO_ACT_SILU, rows(&ba->conv_dw), b->mid_ch);
            d_a1 = d_a2 == t1 ? t2 : t1;
            conv_backward(p, d_a1, blk->conv_dw.weight, d_a2, ba->a1, &ba->conv_dw);
        }
        batchnorm_backward(p, d_a1, ba->c1, ba->mean1, ba->rstd1, blk->bn1, KAO_ACT_SILU, rows(&ba->conv1), b->mid_ch);
        conv_backward(p, d_in_target, blk->conv1.weight, d_a1, ba->in, &ba->conv1);
    }
    if (b->has_skip && need_din) TIMED(p, KAO_PROF_RESIDUAL, p->be->add_inplace(p->be, din, dout, out_n));
}

static size_t largest_activation(const kao_acts *a, const kao_model *m) {
    size_t largest = rows(&a->stem_conv) * (size_t)m->arch.stem_ch;
    for (int i = 0; i < m->arch.num_blocks; i++) {
        const kao_block_acts *ba = &a->blocks[i];
        size_t sizes[3] = {rows(&ba->conv1) * (size_t)ba->conv1.out_c,
                           m->arch.blocks[i].type == KAO_BLOCK_IR ? rows(&ba->conv_dw) * (size_t)ba->conv_dw.out_c : 0,
                           (size_t)a->batch * ba->out_h * ba->out_w * m->arch.blocks[i].out_ch};
        for (int k = 0; k < 3; k++) largest = sizes[k] > largest ? sizes[k] : largest;
    }
    size_t head = rows(&a->head_conv) * (size_t)m->arch.num_features;
    return head > largest ? head : largest;
}

void kao_backward(const kao_model *m, const kao_net_weights *w, float *grads, float *d_input, const kao_acts *a,
                  const float *d_embedding, const kao_train_options *opt, kao_grad_scratch *scratch) {
    KAO_ASSERT(a->training, "backward needs activations planned for training");
    KAO_ASSERT(w->backend == a->backend, "weights and activations on different backends");
    kao_backend *be = a->backend;
    const kao_arch *arch = &m->arch;
    KAO_ASSERT(!d_input || opt->frozen_units == 0, "an input gradient needs an unfrozen stem");
    KAO_ASSERT(a->map_bytes == be->map_bytes, "activations planned for another precision");
    /* Every map's gradient, the pooled features' float gradient and, where the input was converted
     * (input_copy), the input's gradient on its way back to floats fit in one. */
    size_t input_n = (size_t)a->batch * a->height * a->width * 3, maps = largest_activation(a, m);
    if (a->input_copy && input_n > maps) maps = input_n;
    size_t pooled_bytes = (size_t)a->batch * arch->num_features * sizeof(float);
    size_t need = maps * be->map_bytes > pooled_bytes ? maps * be->map_bytes : pooled_bytes;
    KAO_ASSERT(!scratch->backend || scratch->backend == be, "gradient scratch of another backend");
    if (scratch->bytes < need) {
        kao_grad_scratch_free(scratch);
        scratch->backend = be;
        for (int i = 0; i < 4; i++) scratch->buf[i] = be->alloc(be, need, "activation gradients");
        scratch->bytes = need;
    }
    pass p = {m, w, be, grads, opt, a->profile};
    int B = a->batch, nf = arch->num_features;
    kao_map *dout = scratch->buf[0], *din = scratch->buf[1], *t1 = scratch->buf[2], *t2 = scratch->buf[3];
    /* The head's float gradients (pooled features) in t1's memory, which is free until the blocks. */
    float *d_pooled = (float *)t1;

    /* Head: classifier, pool, BN+SiLU, conv_head. */
    TIMED(&p, KAO_PROF_HEAD, be->linear_backward(be, d_pooled, G(&p, m->classifier_weight), G(&p, m->classifier_bias),
                                                 d_embedding, a->pooled, P(&p, m->classifier_weight), B, nf,
                                                 arch->embedding_dim));
    int head_unit = arch->num_stages + 1;
    if (opt->frozen_units > head_unit) return;
    int hw = a->head_conv.out_h * a->head_conv.out_w;
    TIMED(&p, KAO_PROF_HEAD, be->avgpool_backward(be, t2, d_pooled, B, hw, nf));
    batchnorm_backward(&p, t2, a->head_c, a->head_mean, a->head_rstd, m->bn_head, KAO_ACT_SILU, rows(&a->head_conv), nf);
    bool blocks_train = opt->frozen_units < head_unit;
    conv_backward(&p, blocks_train ? dout : NULL, m->conv_head.weight, t2, a->blocks[arch->num_blocks - 1].out,
                  &a->head_conv);

    for (int i = arch->num_blocks - 1; i >= 0 && blocks_train; i--) {
        int unit = arch->blocks[i].stage + 1;
        if (unit < opt->frozen_units) break;
        /* The first trainable block needs no input gradient when everything before it is frozen. */
        bool need_din = i > 0 ? arch->blocks[i - 1].stage + 1 >= opt->frozen_units : opt->frozen_units == 0;
        block_backward(&p, &m->blocks[i], &a->blocks[i], din, dout, t1, t2, need_din);
        kao_map *swap = dout;
        dout = din;
        din = swap;
        if (!need_din) return;
    }
    if (opt->frozen_units > 0) return;
    batchnorm_backward(&p, dout, a->stem_c, a->stem_mean, a->stem_rstd, m->bn_stem, KAO_ACT_SILU,
                       rows(&a->stem_conv), arch->stem_ch);
    /* Float maps: the input gradient is written where the caller wants it; else through din. */
    kao_map *d_input_map = d_input && a->input_copy ? din : (kao_map *)d_input;
    conv_backward(&p, d_input_map, m->conv_stem.weight, dout, a->input, &a->stem_conv);
    if (d_input && a->input_copy) be->map_to_floats(be, d_input, d_input_map, input_n);
}

void kao_grad_scratch_free(kao_grad_scratch *s) {
    for (int i = 0; i < 4 && s->backend; i++) s->backend->release(s->backend, s->buf[i]);
    memset(s, 0, sizeof *s);
}
