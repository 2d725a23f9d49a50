/* The CPU backend: host memory and the fast ops of ops.h.
 *
 * Every convolution is followed by a BatchNorm, and on the CPU the two run as one op where they
 * can: in eval the BN (and its SiLU) is folded into the convolution's epilogue, so the conv writes
 * the BN's output directly; in training the convolution gathers BN's batch sums (Σx, Σx²) while its
 * output is still in registers, and BN normalises from them. Frozen-BN training keeps them
 * separate, because its backward needs the convolution's own output. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "backend_internal.h"
#include "kao/backend.h"
#include "kao/util.h"

typedef struct {
    kao_workspace ws;
    float *bn_scale, *bn_shift; /* (channels) the folded eval BN of the current layer */
    double *bn_sums;            /* (2, channels) the current layer's Σx, Σx² */
    int channels;
} cpu_state;

static cpu_state *state(kao_backend *be) { return be->impl; }

static void *cpu_alloc(kao_backend *be, size_t bytes, const char *what) {
    void *p = kao_aligned_alloc(bytes ? bytes : 1, what);
    memset(p, 0, bytes);
    return p;
}

static void cpu_release(kao_backend *be, void *p) { free(p); }

static void cpu_copy(kao_backend *be, void *dst, const void *src, size_t bytes) {
    if (dst != src) memcpy(dst, src, bytes);
}

static void cpu_zero(kao_backend *be, void *p, size_t bytes) { memset(p, 0, bytes); }

static void cpu_sync(kao_backend *be) {}

static void install_fp32_ops(kao_backend *be);

/* fp32; the detached backend also emulates bf16 (backend_bf16.c), as the reference for a GPU's. */
static int cpu_set_precision(kao_backend *be, kao_precision precision) {
    if (precision == KAO_PRECISION_FP32) install_fp32_ops(be);
    else if (precision == KAO_PRECISION_BF16 && !be->host_memory) kao_backend_bf16_install(be);
    else
        return kao_fail("the CPU computes in fp32 only (%s is a GPU mode%s)", kao_precision_name(precision),
                        precision == KAO_PRECISION_BF16 ? "; --device cpu-detached emulates it" : "");
    return KAO_OK;
}

/* Float maps: a kao_map is the float tensor itself. */
static float *F(kao_map *m) { return (float *)m; }
static const float *CF(const kao_map *m) { return (const float *)m; }

static void cpu_map_from_floats(kao_backend *be, kao_map *dst, const float *src, size_t n) {
    cpu_copy(be, dst, src, n * sizeof(float));
}

static void cpu_map_to_floats(kao_backend *be, float *dst, const kao_map *src, size_t n) {
    cpu_copy(be, dst, src, n * sizeof(float));
}

/* Per-layer BN scratch, grown to the widest layer seen. */
static void ensure_bn_scratch(cpu_state *st, int C) {
    if (C <= st->channels) return;
    free(st->bn_scale);
    free(st->bn_shift);
    free(st->bn_sums);
    st->bn_scale = kao_aligned_alloc((size_t)C * sizeof(float), "BN scale");
    st->bn_shift = kao_aligned_alloc((size_t)C * sizeof(float), "BN shift");
    st->bn_sums = kao_aligned_alloc(2 * (size_t)C * sizeof(double), "BN sums");
    st->channels = C;
}

static void conv_fused(cpu_state *st, float *out, const float *inp, const float *weight, const kao_conv_epilogue *ep,
                       const kao_conv_shape *s) {
    if (s->depthwise) kao_dwconv2d_forward_fused(out, inp, weight, ep, s);
    else kao_conv2d_forward_fused(out, inp, weight, ep, s, &st->ws);
}

static void cpu_conv_bn(kao_backend *be, kao_map *out_map, kao_map *conv_out_map, float *save_mean, float *save_rstd,
                        const kao_map *inp_map, const float *weight, const kao_conv_shape *s, const kao_bn_tensors *bn,
                        kao_bn_mode mode, kao_act act) {
    cpu_state *st = state(be);
    float *out = F(out_map), *conv_out = F(conv_out_map);
    const float *inp = CF(inp_map);
    int C = s->out_c;
    size_t M = (size_t)s->batch * s->out_h * s->out_w;
    ensure_bn_scratch(st, C);
    if (mode == KAO_BN_EVAL) {
        kao_batchnorm_fold(st->bn_scale, st->bn_shift, bn->gamma, bn->beta, bn->running_mean, bn->running_var,
                           bn->eps, C);
        kao_conv_epilogue ep = {st->bn_scale, st->bn_shift, act, NULL};
        conv_fused(st, out, inp, weight, &ep, s);
    } else if (mode == KAO_BN_FROZEN) {
        kao_conv_epilogue ep = {NULL, NULL, KAO_ACT_NONE, NULL};
        conv_fused(st, conv_out, inp, weight, &ep, s);
        kao_batchnorm_forward_eval(out, conv_out, bn->gamma, bn->beta, bn->running_mean, bn->running_var, bn->eps,
                                   act, M, C);
    } else {
        kao_conv_epilogue ep = {NULL, NULL, KAO_ACT_NONE, st->bn_sums};
        conv_fused(st, conv_out, inp, weight, &ep, s);
        kao_batchnorm_forward_train_sums(out, save_mean, save_rstd, conv_out, st->bn_sums, bn->gamma, bn->beta,
                                         bn->running_mean, bn->running_var, bn->eps, bn->momentum, act, M, C);
    }
}

static void cpu_conv_backward(kao_backend *be, kao_map *dinp, float *dweight, const kao_map *dout,
                              const kao_map *inp, const float *weight, const kao_conv_shape *s) {
    if (s->depthwise) kao_dwconv2d_backward(F(dinp), dweight, CF(dout), CF(inp), weight, s);
    else kao_conv2d_backward(F(dinp), dweight, NULL, CF(dout), CF(inp), weight, s, &state(be)->ws);
}

static void cpu_bn_backward(kao_backend *be, kao_map *d, float *dgamma, float *dbeta, const kao_map *inp,
                            const float *save_mean, const float *save_rstd, const kao_bn_tensors *bn,
                            kao_bn_mode mode, kao_act act, size_t M, int C) {
    if (mode == KAO_BN_FROZEN)
        kao_batchnorm_backward_frozen(F(d), dgamma, dbeta, F(d), CF(inp), bn->running_mean, bn->running_var,
                                      bn->gamma, bn->beta, bn->eps, act, M, C);
    else
        kao_batchnorm_backward(F(d), dgamma, dbeta, F(d), CF(inp), save_mean, save_rstd, bn->gamma, bn->beta, act, M,
                               C);
}

static void cpu_se_forward(kao_backend *be, kao_map *out, float *save_pooled, float *save_hidden, float *save_gate,
                           const kao_map *inp, const float *w_reduce, const float *b_reduce, const float *w_expand,
                           const float *b_expand, int B, int HW, int C, int R) {
    kao_se_forward(F(out), save_pooled, save_hidden, save_gate, CF(inp), w_reduce, b_reduce, w_expand, b_expand, B,
                   HW, C, R);
}

static void cpu_se_backward(kao_backend *be, kao_map *dinp, float *dw_reduce, float *db_reduce, float *dw_expand,
                            float *db_expand, const kao_map *dout, const kao_map *inp, const float *save_pooled,
                            const float *save_hidden, const float *save_gate, const float *w_reduce,
                            const float *w_expand, int B, int HW, int C, int R) {
    kao_se_backward(F(dinp), dw_reduce, db_reduce, dw_expand, db_expand, CF(dout), CF(inp), save_pooled, save_hidden,
                    save_gate, w_reduce, w_expand, B, HW, C, R);
}

static void cpu_avgpool_forward(kao_backend *be, float *out, const kao_map *inp, int B, int HW, int C) {
    kao_avgpool_forward(out, CF(inp), B, HW, C);
}

static void cpu_avgpool_backward(kao_backend *be, kao_map *dinp, const float *dout, int B, int HW, int C) {
    kao_avgpool_backward(F(dinp), dout, B, HW, C);
}

static void cpu_linear_forward(kao_backend *be, float *out, const float *inp, const float *weight, const float *bias,
                               int B, int n_in, int n_out) {
    kao_linear_forward(out, inp, weight, bias, B, n_in, n_out);
}

static void cpu_linear_backward(kao_backend *be, float *dinp, float *dweight, float *dbias, const float *dout,
                                const float *inp, const float *weight, int B, int n_in, int n_out) {
    kao_linear_backward(dinp, dweight, dbias, dout, inp, weight, B, n_in, n_out);
}

static void cpu_add_inplace(kao_backend *be, kao_map *out, const kao_map *x, size_t n) {
    kao_add_inplace(F(out), CF(x), n);
}

static void cpu_scale_rows(kao_backend *be, kao_map *x, const float *mask, int B, size_t n) {
    kao_scale_rows(F(x), mask, B, n);
}

static void *cpu_arcface_create(kao_backend *be, int max_batch, int E, int C) {
    kao_arcface_acts *a = kao_malloc(sizeof *a, "ArcFace activations");
    kao_arcface_acts_create(a, max_batch, E, C);
    return a;
}

static void cpu_arcface_free(kao_backend *be, void *acts) {
    if (!acts) return;
    kao_arcface_acts_free(acts);
    free(acts);
}

static float cpu_arcface_forward(kao_backend *be, void *acts, const float *emb, const float *W, const int *labels,
                                 int B, int E, int C, const kao_arcface_cfg *cfg) {
    return kao_arcface_forward(acts, emb, W, labels, B, E, C, cfg);
}

static void cpu_arcface_backward(kao_backend *be, float *d_emb, float *dW, void *acts, const int *labels, int B,
                                 int E, int C, const kao_arcface_cfg *cfg) {
    kao_arcface_backward(d_emb, dW, acts, labels, B, E, C, cfg);
}

static int cpu_arcface_correct(kao_backend *be, void *acts, const int *labels, int B, int C) {
    return kao_arcface_correct(((kao_arcface_acts *)acts)->cosine, labels, B, C);
}

/* On the host the kao_optim's own moments are the state (NULL); the detached backend keeps copies,
 * as a GPU does, and swaps them in for the step. */
typedef struct {
    float *exp_avg, *exp_avg_sq; /* (numel) or NULL where the kao_optim's are */
} moments;

static void *cpu_optim_state_create(kao_backend *be, const kao_optim *o) {
    if (be->host_memory) return NULL;
    moments *m = kao_calloc(1, sizeof *m, "optimizer state");
    size_t bytes = o->numel * sizeof(float);
    if (o->exp_avg) m->exp_avg = memcpy(kao_aligned_alloc(bytes, "exp_avg"), o->exp_avg, bytes);
    if (o->exp_avg_sq) m->exp_avg_sq = memcpy(kao_aligned_alloc(bytes, "exp_avg_sq"), o->exp_avg_sq, bytes);
    return m;
}

static void cpu_optim_state_free(kao_backend *be, void *st) {
    moments *m = st;
    if (!m) return;
    free(m->exp_avg);
    free(m->exp_avg_sq);
    free(m);
}

static void cpu_optim_state_sync(kao_backend *be, kao_optim *o, void *st, bool to_host) {
    moments *m = st;
    if (!m) return;
    size_t bytes = o->numel * sizeof(float);
    float *host[2] = {o->exp_avg, o->exp_avg_sq}, *own[2] = {m->exp_avg, m->exp_avg_sq};
    for (int k = 0; k < 2; k++)
        if (host[k]) memcpy(to_host ? host[k] : own[k], to_host ? own[k] : host[k], bytes);
}

static void cpu_optim_step(kao_backend *be, kao_optim *o, void *st, float *params, const float *grads,
                           double lr_factor) {
    moments *m = st;
    if (!m) {
        kao_optim_step(o, params, grads, lr_factor);
        return;
    }
    float *host_avg = o->exp_avg, *host_avg_sq = o->exp_avg_sq;
    o->exp_avg = m->exp_avg;
    o->exp_avg_sq = m->exp_avg_sq;
    kao_optim_step(o, params, grads, lr_factor);
    o->exp_avg = host_avg;
    o->exp_avg_sq = host_avg_sq;
}

static float cpu_clip_grad_norm(kao_backend *be, kao_span *grads, int count, float max_norm) {
    return kao_clip_grad_norm(grads, count, max_norm);
}

static float cpu_norm(kao_backend *be, const kao_span *spans, int count) { return kao_norm(spans, count); }

static void cpu_destroy(kao_backend *be) {
    cpu_state *st = state(be);
    kao_workspace_free(&st->ws);
    free(st->bn_scale);
    free(st->bn_shift);
    free(st->bn_sums);
    free(st);
    free(be);
}

static kao_backend *cpu_backend(bool host_memory) {
    kao_backend *be = kao_calloc(1, sizeof *be, "CPU backend");
    be->name = host_memory ? "cpu" : "cpu-detached";
    be->host_memory = host_memory;
    int threads = omp_get_max_threads();
    snprintf(be->description, sizeof be->description, "CPU, %d thread%s%s", threads, threads == 1 ? "" : "s",
             host_memory ? "" : ", memory of its own (a device stand-in)");
    be->impl = kao_calloc(1, sizeof(cpu_state), "CPU backend state");
    be->alloc = cpu_alloc;
    be->release = cpu_release;
    be->to_backend = cpu_copy;
    be->to_host = cpu_copy;
    be->copy = cpu_copy;
    be->zero = cpu_zero;
    be->host_alloc = cpu_alloc;
    be->host_release = cpu_release;
    be->sync = cpu_sync;
    be->set_precision = cpu_set_precision;
    install_fp32_ops(be);
    be->linear_forward = cpu_linear_forward;
    be->linear_backward = cpu_linear_backward;
    be->arcface_create = cpu_arcface_create;
    be->arcface_free = cpu_arcface_free;
    be->arcface_forward = cpu_arcface_forward;
    be->arcface_backward = cpu_arcface_backward;
    be->arcface_correct = cpu_arcface_correct;
    be->optim_state_create = cpu_optim_state_create;
    be->optim_state_free = cpu_optim_state_free;
    be->optim_state_sync = cpu_optim_state_sync;
    be->optim_step = cpu_optim_step;
    be->clip_grad_norm = cpu_clip_grad_norm;
    be->norm = cpu_norm;
    be->destroy = cpu_destroy;
    return be;
}

/* The ops over float maps (backend_bf16.c replaces them under bf16). */
static void install_fp32_ops(kao_backend *be) {
    be->map_bytes = sizeof(float);
    be->map_from_floats = cpu_map_from_floats;
    be->map_to_floats = cpu_map_to_floats;
    be->conv_bn = cpu_conv_bn;
    be->conv_backward = cpu_conv_backward;
    be->bn_backward = cpu_bn_backward;
    be->se_forward = cpu_se_forward;
    be->se_backward = cpu_se_backward;
    be->avgpool_forward = cpu_avgpool_forward;
    be->avgpool_backward = cpu_avgpool_backward;
    be->add_inplace = cpu_add_inplace;
    be->scale_rows = cpu_scale_rows;
}

kao_backend *kao_backend_cpu(void) { return cpu_backend(true); }

kao_backend *kao_backend_cpu_detached(void) { return cpu_backend(false); }
