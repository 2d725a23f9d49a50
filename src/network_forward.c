/* The forward pass, eval and training, over the plan in kao_acts.
 *
 * Every convolution is followed by a BatchNorm, and the two run as one op where they can: in eval
 * the BN (and its SiLU) is folded into the convolution's epilogue, so the conv writes the BN's
 * output directly; in training the convolution gathers BN's batch sums (Σx, Σx²) while its output
 * is still in registers, and BN normalises from them. Frozen-BN training keeps them separate,
 * because its backward needs the convolution's own output. */
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
    float *bn_scale, *bn_shift; /* (max channels) the folded eval BN of the current layer */
    double *bn_sums;            /* (2, max channels) the current layer's Σx, Σx² */
} pass;

#define TIMED(p, op, call) KAO_TIMED((p)->prof, KAO_PROF_FORWARD, op, call)

static const float *P(const pass *p, int index) { return kao_tensor_data(p->m, index); }

static size_t rows(const kao_conv_shape *s) { return (size_t)s->batch * s->out_h * s->out_w; }

static kao_prof_op conv_kind(const kao_conv_shape *s) {
    return s->depthwise ? KAO_PROF_DWCONV : s->kernel == 1 ? KAO_PROF_CONV_1X1 : KAO_PROF_CONV_KXK;
}

static void conv_fused(const pass *p, float *out, const float *inp, int weight, const kao_conv_epilogue *ep,
                       const kao_conv_shape *s) {
    if (s->depthwise) TIMED(p, KAO_PROF_DWCONV, kao_dwconv2d_forward_fused(out, inp, P(p, weight), ep, s));
    else TIMED(p, conv_kind(s), kao_conv2d_forward_fused(out, inp, P(p, weight), ep, s, p->ws));
}

/* out = act(BN(conv(inp))). conv_out (the BN's input) is written when training (backward reads it);
 * save_mean/save_rstd keep the batch statistics. Training updates the running statistics (counted
 * in num_batches_tracked) unless BN is frozen. */
static void conv_bn(const pass *p, float *out, float *conv_out, float *save_mean, float *save_rstd,
                    const float *inp, int weight, const kao_conv_shape *s, kao_bn_ref bn, kao_act act) {
    const kao_model *m = p->m;
    int C = s->out_c;
    const float *gamma = P(p, bn.weight), *beta = P(p, bn.bias);
    if (!p->training) {
        kao_batchnorm_fold(p->bn_scale, p->bn_shift, gamma, beta, P(p, bn.mean), P(p, bn.var), m->arch.bn_eps, C);
        kao_conv_epilogue ep = {p->bn_scale, p->bn_shift, act, NULL};
        conv_fused(p, out, inp, weight, &ep, s);
    } else if (p->opt->freeze_bn) {
        kao_conv_epilogue ep = {NULL, NULL, KAO_ACT_NONE, NULL};
        conv_fused(p, conv_out, inp, weight, &ep, s);
        TIMED(p, KAO_PROF_BN, kao_batchnorm_forward_eval(out, conv_out, gamma, beta, P(p, bn.mean), P(p, bn.var),
                                                         m->arch.bn_eps, act, rows(s), C));
    } else {
        kao_conv_epilogue ep = {NULL, NULL, KAO_ACT_NONE, p->bn_sums};
        conv_fused(p, conv_out, inp, weight, &ep, s);
        TIMED(p, KAO_PROF_BN, kao_batchnorm_forward_train_sums(out, save_mean, save_rstd, conv_out, p->bn_sums, gamma,
                                                               beta, kao_tensor_data(m, bn.mean),
                                                               kao_tensor_data(m, bn.var), m->arch.bn_eps,
                                                               m->arch.bn_momentum, act, rows(s), C));
        p->mutable_m->bn_batches_tracked[bn.index]++;
    }
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
        conv_bn(p, ba->out, ba->c1, ba->mean1, ba->rstd1, ba->in, blk->conv1.weight, &ba->conv1, blk->bn1, KAO_ACT_SILU);
    } else {
        conv_bn(p, ba->a1, ba->c1, ba->mean1, ba->rstd1, ba->in, blk->conv1.weight, &ba->conv1, blk->bn1, KAO_ACT_SILU);
        const float *pwl_in = ba->a1;
        if (b->type == KAO_BLOCK_IR) {
            conv_bn(p, ba->a2, ba->c2, ba->mean2, ba->rstd2, ba->a1, blk->conv_dw.weight, &ba->conv_dw, blk->bn_dw,
                    KAO_ACT_SILU);
            if (b->se_ch > 0)
                TIMED(p, KAO_PROF_SE,
                      kao_se_forward(ba->se_out, ba->se_pooled, ba->se_hidden, ba->se_gate, ba->a2,
                                     P(p, blk->se_reduce.weight), P(p, blk->se_reduce.bias),
                                     P(p, blk->se_expand.weight), P(p, blk->se_expand.bias), B,
                                     ba->out_h * ba->out_w, b->mid_ch, b->se_ch));
            pwl_in = ba->se_out;
        }
        conv_bn(p, ba->out, ba->c3, ba->mean3, ba->rstd3, pwl_in, blk->conv_pwl.weight, &ba->conv_pwl, blk->bn_pwl,
                KAO_ACT_NONE);
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

static void forward(pass *p, kao_acts *a, const float *input, kao_rng *rng) {
    const kao_model *m = p->m;
    const kao_arch *arch = &m->arch;
    p->bn_scale = a->bn_scale;
    p->bn_shift = a->bn_shift;
    p->bn_sums = a->bn_sums;
    a->input = input;
    conv_bn(p, a->stem_out, a->stem_c, a->stem_mean, a->stem_rstd, input, m->conv_stem.weight, &a->stem_conv,
            m->bn_stem, KAO_ACT_SILU);
    for (int i = 0; i < arch->num_blocks; i++) block_forward(p, &m->blocks[i], &a->blocks[i], rng);
    conv_bn(p, a->head_a, a->head_c, a->head_mean, a->head_rstd, a->blocks[arch->num_blocks - 1].out,
            m->conv_head.weight, &a->head_conv, m->bn_head, KAO_ACT_SILU);
    int hw = a->head_conv.out_h * a->head_conv.out_w;
    TIMED(p, KAO_PROF_HEAD, kao_avgpool_forward(a->pooled, a->head_a, a->batch, hw, arch->num_features));
    TIMED(p, KAO_PROF_HEAD, kao_linear_forward(a->embedding, a->pooled, P(p, m->classifier_weight),
                                               P(p, m->classifier_bias), a->batch, arch->num_features,
                                               arch->embedding_dim));
}

void kao_forward_eval(const kao_model *m, kao_acts *a, const float *input, kao_workspace *ws) {
    kao_train_options none = {0};
    pass p = {m, NULL, &none, ws, false, a->profile, NULL, NULL, NULL};
    forward(&p, a, input, NULL);
}

void kao_forward_train(kao_model *m, kao_acts *a, const float *input, const kao_train_options *opt,
                       kao_rng *rng, kao_workspace *ws) {
    KAO_ASSERT(a->training, "training forward needs activations planned for training");
    pass p = {m, m, opt, ws, true, a->profile, NULL, NULL, NULL};
    forward(&p, a, input, rng);
}
