/* The forward pass, eval and training, over the plan in kao_acts, on the acts' backend. Each
 * convolution and the BatchNorm after it are one backend op (conv_bn), which a backend may fuse. */
#include "kao/network.h"
#include "kao/profile.h"
#include "kao/util.h"

typedef struct {
    kao_model *mutable_m;       /* training: num_batches_tracked is counted here */
    const kao_model *m;
    const kao_net_weights *w;
    kao_backend *be;
    const kao_train_options *opt;
    kao_bn_mode bn_mode;
    kao_profile *prof;
} pass;

#define TIMED(p, op, call) KAO_TIMED((p)->prof, KAO_PROF_FORWARD, op, call)

static float *P(const pass *p, int index) { return kao_net_tensor(p->w, p->m, index); }

static kao_prof_op conv_kind(const kao_conv_shape *s) {
    return s->depthwise ? KAO_PROF_DWCONV : s->kernel == 1 ? KAO_PROF_CONV_1X1 : KAO_PROF_CONV_KXK;
}

/* out = act(BN(conv(inp))). conv_out (the BN's input) is written when training (backward reads it);
 * save_mean/save_rstd keep the batch statistics. Training updates the running statistics (counted
 * in num_batches_tracked) unless BN is frozen. */
static void conv_bn(const pass *p, kao_map *out, kao_map *conv_out, float *save_mean, float *save_rstd,
                    const kao_map *inp, int weight, const kao_conv_shape *s, kao_bn_ref bn, kao_act act) {
    kao_bn_tensors t = kao_net_bn(p->w, p->m, bn);
    TIMED(p, conv_kind(s), p->be->conv_bn(p->be, out, conv_out, save_mean, save_rstd, inp, P(p, weight), s, &t,
                                          p->bn_mode, act));
    if (p->bn_mode == KAO_BN_TRAIN) p->mutable_m->bn_batches_tracked[bn.index]++;
}

/* timm's DropPath: each sample's branch is kept with probability 1 - rate and scaled by 1/keep.
 * Drawn on the host in sample order (the same masks on every backend), then copied over. */
static void draw_drop_mask(const pass *p, kao_block_acts *ba, int B, float rate, kao_rng *rng) {
    float keep = 1.0f - rate;
    for (int b = 0; b < B; b++) ba->drop_mask_host[b] = kao_rng_uniform(rng) < keep ? 1.0f / keep : 0.0f;
    p->be->to_backend(p->be, ba->drop_mask, ba->drop_mask_host, (size_t)B * sizeof(float));
}

static void block_forward(const pass *p, const kao_block *blk, kao_block_acts *ba, kao_rng *rng) {
    const kao_block_arch *b = &blk->arch;
    int B = ba->conv1.batch;
    if (b->type == KAO_BLOCK_CN) {
        conv_bn(p, ba->out, ba->c1, ba->mean1, ba->rstd1, ba->in, blk->conv1.weight, &ba->conv1, blk->bn1, KAO_ACT_SILU);
    } else {
        conv_bn(p, ba->a1, ba->c1, ba->mean1, ba->rstd1, ba->in, blk->conv1.weight, &ba->conv1, blk->bn1, KAO_ACT_SILU);
        const kao_map *pwl_in = ba->a1;
        if (b->type == KAO_BLOCK_IR) {
            conv_bn(p, ba->a2, ba->c2, ba->mean2, ba->rstd2, ba->a1, blk->conv_dw.weight, &ba->conv_dw, blk->bn_dw,
                    KAO_ACT_SILU);
            if (b->se_ch > 0)
                TIMED(p, KAO_PROF_SE,
                      p->be->se_forward(p->be, ba->se_out, ba->se_pooled, ba->se_hidden, ba->se_gate, ba->a2,
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
        if (rng && ba->drop_mask) {
            draw_drop_mask(p, ba, B, b->drop_path_rate, rng);
            TIMED(p, KAO_PROF_RESIDUAL, p->be->scale_rows(p->be, ba->out, ba->drop_mask, B, per_sample));
        }
        TIMED(p, KAO_PROF_RESIDUAL, p->be->add_inplace(p->be, ba->out, ba->in, per_sample * (size_t)B));
    }
}

static void forward(const pass *p, kao_acts *a, const float *input, kao_rng *rng) {
    const kao_model *m = p->m;
    const kao_arch *arch = &m->arch;
    kao_backend *be = p->be;
    KAO_ASSERT(a->map_bytes == be->map_bytes, "activations planned for another precision");
    size_t input_n = (size_t)a->batch * a->height * a->width * 3;
    if (a->input_copy) be->map_from_floats(be, a->input_copy, input, input_n);
    a->input = a->input_copy ? a->input_copy : (const kao_map *)input; /* float maps: the batch itself */
    conv_bn(p, a->stem_out, a->stem_c, a->stem_mean, a->stem_rstd, a->input, m->conv_stem.weight, &a->stem_conv,
            m->bn_stem, KAO_ACT_SILU);
    for (int i = 0; i < arch->num_blocks; i++) block_forward(p, &m->blocks[i], &a->blocks[i], rng);
    conv_bn(p, a->head_a, a->head_c, a->head_mean, a->head_rstd, a->blocks[arch->num_blocks - 1].out,
            m->conv_head.weight, &a->head_conv, m->bn_head, KAO_ACT_SILU);
    int hw = a->head_conv.out_h * a->head_conv.out_w;
    TIMED(p, KAO_PROF_HEAD, be->avgpool_forward(be, a->pooled, a->head_a, a->batch, hw, arch->num_features));
    TIMED(p, KAO_PROF_HEAD, be->linear_forward(be, a->embedding, a->pooled, P(p, m->classifier_weight),
                                               P(p, m->classifier_bias), a->batch, arch->num_features,
                                               arch->embedding_dim));
}

void kao_forward_eval(const kao_model *m, const kao_net_weights *w, kao_acts *a, const float *input) {
    KAO_ASSERT(w->backend == a->backend, "weights and activations on different backends");
    pass p = {NULL, m, w, a->backend, NULL, KAO_BN_EVAL, a->profile};
    forward(&p, a, input, NULL);
}

void kao_forward_train(kao_model *m, kao_net_weights *w, kao_acts *a, const float *input,
                       const kao_train_options *opt, kao_rng *rng) {
    KAO_ASSERT(a->training, "training forward needs activations planned for training");
    KAO_ASSERT(w->backend == a->backend, "weights and activations on different backends");
    pass p = {m, m, w, a->backend, opt, opt->freeze_bn ? KAO_BN_FROZEN : KAO_BN_TRAIN, a->profile};
    forward(&p, a, input, rng);
}
