/* The forward pass, eval and training, over the plan in kao_acts. */
#include <string.h>

#include "kao/network.h"
#include "kao/profile.h"
#include "kao/util.h"

typedef struct {
    const kao_model *m;
    kao_model *mutable_m;   /* training: running statistics are updated here */
    const kao_train_options *opt;
    kao_workspace *ws;
    bool training;
    kao_profile *prof;
} pass;

#define TIMED(p, op, call) KAO_TIMED((p)->prof, KAO_PROF_FORWARD, op, call)

static const float *P(const pass *p, int index) { return kao_tensor_data(p->m, index); }

/* BN (+ optional SiLU) over M rows. Training normalises with batch statistics (and updates the
 * running ones, counted in num_batches_tracked), unless BN is frozen. */
static void batchnorm(const pass *p, float *out, float *save_mean, float *save_rstd, const float *inp,
                      kao_bn_ref bn, kao_act act, size_t M, int C) {
    const kao_model *m = p->m;
    if (!p->training || p->opt->freeze_bn) {
        TIMED(p, KAO_PROF_BN, kao_batchnorm_forward_eval(out, inp, P(p, bn.weight), P(p, bn.bias), P(p, bn.mean),
                                                         P(p, bn.var), m->arch.bn_eps, act, M, C));
        return;
    }
    TIMED(p, KAO_PROF_BN, kao_batchnorm_forward_train(out, save_mean, save_rstd, inp, P(p, bn.weight), P(p, bn.bias),
                                                      kao_tensor_data(m, bn.mean), kao_tensor_data(m, bn.var),
                                                      m->arch.bn_eps, m->arch.bn_momentum, act, M, C));
    p->mutable_m->bn_batches_tracked[bn.index]++;
}

static size_t rows(const kao_conv_shape *s) { return (size_t)s->batch * s->out_h * s->out_w; }

static void conv(const pass *p, float *out, const float *inp, int weight, const kao_conv_shape *s) {
    kao_prof_op op = s->kernel == 1 ? KAO_PROF_CONV_1X1 : KAO_PROF_CONV_KXK;
    TIMED(p, op, kao_conv2d_forward(out, inp, P(p, weight), NULL, s, p->ws));
}

/* timm's DropPath: each sample's branch is kept with probability 1 - rate and scaled by 1/keep. */
static void draw_drop_mask(float *mask, int B, float rate, kao_rng *rng) {
    float keep = 1.0f - rate;
    for (int b = 0; b < B; b++) mask[b] = kao_rng_uniform(rng) < keep ? 1.0f / keep : 0.0f;
}

static void block_forward(const pass *p, const kao_block *blk, kao_block_acts *ba, kao_rng *rng) {
    const kao_block_arch *b = &blk->arch;
    int B = ba->conv1.batch;
    if (b->type == KAO_BLOCK_CN) {
        conv(p, ba->c1, ba->in, blk->conv1.weight, &ba->conv1);
        batchnorm(p, ba->out, ba->mean1, ba->rstd1, ba->c1, blk->bn1, KAO_ACT_SILU, rows(&ba->conv1), b->out_ch);
    } else {
        conv(p, ba->c1, ba->in, blk->conv1.weight, &ba->conv1);
        batchnorm(p, ba->a1, ba->mean1, ba->rstd1, ba->c1, blk->bn1, KAO_ACT_SILU, rows(&ba->conv1), b->mid_ch);
        const float *pwl_in = ba->a1;
        if (b->type == KAO_BLOCK_IR) {
            TIMED(p, KAO_PROF_DWCONV, kao_dwconv2d_forward(ba->c2, ba->a1, P(p, blk->conv_dw.weight), &ba->conv_dw));
            batchnorm(p, ba->a2, ba->mean2, ba->rstd2, ba->c2, blk->bn_dw, KAO_ACT_SILU, rows(&ba->conv_dw), b->mid_ch);
            if (b->se_ch > 0)
                TIMED(p, KAO_PROF_SE,
                      kao_se_forward(ba->se_out, ba->se_pooled, ba->se_hidden, ba->se_gate, ba->a2,
                                     P(p, blk->se_reduce.weight), P(p, blk->se_reduce.bias),
                                     P(p, blk->se_expand.weight), P(p, blk->se_expand.bias), B,
                                     ba->out_h * ba->out_w, b->mid_ch, b->se_ch));
            pwl_in = ba->se_out;
        }
        conv(p, ba->c3, pwl_in, blk->conv_pwl.weight, &ba->conv_pwl);
        batchnorm(p, ba->out, ba->mean3, ba->rstd3, ba->c3, blk->bn_pwl, KAO_ACT_NONE, rows(&ba->conv_pwl), b->out_ch);
    }
    if (b->has_skip) {
        size_t per_sample = (size_t)ba->out_h * ba->out_w * b->out_ch;
        if (p->training && ba->drop_mask) {
            draw_drop_mask(ba->drop_mask, B, b->drop_path_rate, rng);
            TIMED(p, KAO_PROF_RESIDUAL, kao_scale_rows(ba->out, ba->drop_mask, B, per_sample));
        }
        TIMED(p, KAO_PROF_RESIDUAL, kao_add_inplace(ba->out, ba->in, per_sample * (size_t)B));
    }
}

static void forward(const pass *p, kao_acts *a, const float *input, kao_rng *rng) {
    const kao_model *m = p->m;
    const kao_arch *arch = &m->arch;
    a->input = input;
    conv(p, a->stem_c, input, m->conv_stem.weight, &a->stem_conv);
    batchnorm(p, a->stem_out, a->stem_mean, a->stem_rstd, a->stem_c, m->bn_stem, KAO_ACT_SILU,
              rows(&a->stem_conv), arch->stem_ch);
    for (int i = 0; i < arch->num_blocks; i++) block_forward(p, &m->blocks[i], &a->blocks[i], rng);
    const float *last = a->blocks[arch->num_blocks - 1].out;
    conv(p, a->head_c, last, m->conv_head.weight, &a->head_conv);
    batchnorm(p, a->head_a, a->head_mean, a->head_rstd, a->head_c, m->bn_head, KAO_ACT_SILU,
              rows(&a->head_conv), arch->num_features);
    int hw = a->head_conv.out_h * a->head_conv.out_w;
    TIMED(p, KAO_PROF_HEAD, kao_avgpool_forward(a->pooled, a->head_a, a->batch, hw, arch->num_features));
    TIMED(p, KAO_PROF_HEAD, kao_linear_forward(a->embedding, a->pooled, P(p, m->classifier_weight),
                                               P(p, m->classifier_bias), a->batch, arch->num_features,
                                               arch->embedding_dim));
}

void kao_forward_eval(const kao_model *m, kao_acts *a, const float *input, kao_workspace *ws) {
    kao_train_options none = {0};
    pass p = {m, NULL, &none, ws, false, a->profile};
    forward(&p, a, input, NULL);
}

void kao_forward_train(kao_model *m, kao_acts *a, const float *input, const kao_train_options *opt,
                       kao_rng *rng, kao_workspace *ws) {
    KAO_ASSERT(a->training, "training forward needs activations planned for training");
    pass p = {m, m, opt, ws, true, a->profile};
    forward(&p, a, input, rng);
}
