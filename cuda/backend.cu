/* backend.cu — the CUDA backend (backend.h): device memory, the _gpu ops, a fused argmax count for
 * the training accuracy, and page-locked host memory for the batches.
 *
 * Copies to the device are cudaMemcpyAsync on the context's stream without a wait: from pageable
 * memory the driver has taken the data when the call returns; from host_alloc's page-locked
 * memory the DMA may still run, so such a buffer must stay unchanged until the backend's next wait
 * (a training step ends with one, when its loss is read). That lets a batch's copy overlap the
 * kernels queued before it.
 *
 * Each map op is written once as a template on the map's element type and dispatched on the
 * precision: float maps (fp32, TF32) or bf16 maps (bf16 mixed precision), ops_t.cuh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.cuh"
#include "ops_t.cuh"

typedef struct {
    kao_cuda_ctx *ctx;
    size_t free_at_start; /* the device's free memory once the context was made */
    size_t peak;          /* the most memory kao has held since, as the driver counts it */
    bool bf16;            /* maps in bf16 (KAO_PRECISION_BF16) */
} cuda_state;

static kao_cuda_ctx *ctx_of(kao_backend *be) { return ((cuda_state *)be->impl)->ctx; }

static size_t device_free(void) {
    size_t free_bytes = 0, total = 0;
    KAO_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total), "device_free", "cudaMemGetInfo");
    return free_bytes;
}

/* kao's memory is what the device lost since the context was made: its tensors, the _gpu API's own
 * blocks (ArcFace's saved tensors, optimizer moments), workspaces and the libraries' (not the CUDA
 * context itself), to cudaMalloc's 2 MiB granularity. Sampled after every allocation, when the use
 * can only have grown, and when the figure is asked for. */
static void sample_memory(kao_backend *be) {
    cuda_state *st = (cuda_state *)be->impl;
    size_t now = device_free(), used = st->free_at_start > now ? st->free_at_start - now : 0;
    if (used > st->peak) st->peak = used;
}

static void *cuda_alloc(kao_backend *be, size_t bytes, const char *what) {
    void *p = kao_cuda_malloc(bytes, what);
    kao_cuda_zero(ctx_of(be), p, bytes);
    sample_memory(be);
    return p;
}

static void cuda_release(kao_backend *be, void *p) { kao_cuda_free(p); }

static double cuda_peak_memory_mib(kao_backend *be) {
    sample_memory(be);
    return (double)((cuda_state *)be->impl)->peak / (1024.0 * 1024.0);
}

static void cuda_to_backend(kao_backend *be, void *dst, const void *host_src, size_t bytes) {
    kao_cuda_ctx *ctx = ctx_of(be);
    KAO_CUDA_CHECK(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, ctx->stream), "to_backend",
                   "%zu bytes", bytes);
}

static void cuda_to_host(kao_backend *be, void *host_dst, const void *src, size_t bytes) {
    kao_cuda_to_host(ctx_of(be), host_dst, src, bytes);
}

static void cuda_copy(kao_backend *be, void *dst, const void *src, size_t bytes) {
    if (dst != src) kao_cuda_copy(ctx_of(be), dst, src, bytes);
}

static void cuda_zero(kao_backend *be, void *p, size_t bytes) { kao_cuda_zero(ctx_of(be), p, bytes); }

static void *cuda_host_alloc(kao_backend *be, size_t bytes, const char *what) {
    void *p = NULL;
    KAO_CUDA_CHECK(cudaMallocHost(&p, bytes ? bytes : 1), "host_alloc", "%zu page-locked bytes for %s", bytes, what);
    memset(p, 0, bytes);
    return p;
}

static void cuda_host_release(kao_backend *be, void *p) {
    if (p) KAO_CUDA_CHECK(cudaFreeHost(p), "host_release", "%p", p);
}

static void cuda_sync(kao_backend *be) { kao_cuda_sync(ctx_of(be)); }

/* bf16: maps of 2-byte elements and the bf16 instances of the map ops (ops_t.cuh); the fp32 GEMMs
 * (embedding head, SE, ArcFace) keep true fp32 math. TF32: float maps, TF32 matrix math. */
static int cuda_set_precision(kao_backend *be, kao_precision precision) {
    cuda_state *st = (cuda_state *)be->impl;
    st->bf16 = precision == KAO_PRECISION_BF16;
    be->map_bytes = st->bf16 ? sizeof(kao_bf16) : sizeof(float);
    kao_cuda_set_tf32(st->ctx, precision == KAO_PRECISION_TF32);
    return KAO_OK;
}

static bool bf16(kao_backend *be) { return ((cuda_state *)be->impl)->bf16; }

/* A map as the element type T of the backend's precision. */
template <class T> static T *as(kao_map *m) { return (T *)m; }
template <class T> static const T *as(const kao_map *m) { return (const T *)m; }

/* Calls fn<T>(be, args...) with T the map type of the backend's precision: each op below is written
 * once, as a template on T. */
#define DISPATCH(fn, be, ...)                                                                      \
    do {                                                                                           \
        if (bf16(be)) fn<kao_bf16>(be, __VA_ARGS__);                                               \
        else fn<float>(be, __VA_ARGS__);                                                           \
    } while (0)

static void cuda_map_from_floats(kao_backend *be, kao_map *dst, const float *src, size_t n) {
    if (bf16(be)) kao_t::convert<kao_bf16, float>(as<kao_bf16>(dst), src, n, ctx_of(be), "map_from_floats");
    else kao_cuda_copy(ctx_of(be), dst, src, n * sizeof(float));
}

static void cuda_map_to_floats(kao_backend *be, float *dst, const kao_map *src, size_t n) {
    if (bf16(be)) kao_t::convert<float, kao_bf16>(dst, as<kao_bf16>(src), n, ctx_of(be), "map_to_floats");
    else kao_cuda_copy(ctx_of(be), dst, src, n * sizeof(float));
}

/* ---- network ops ---- */

template <class T>
static void conv_bn_t(kao_backend *be, kao_map *out_map, kao_map *conv_out_map, float *save_mean, float *save_rstd,
                      const kao_map *inp_map, const float *weight, const kao_conv_shape *s, const kao_bn_tensors *bn,
                      kao_bn_mode mode, kao_act act) {
    kao_cuda_ctx *ctx = ctx_of(be);
    T *out = as<T>(out_map), *conv_out = as<T>(conv_out_map);
    const T *inp = as<T>(inp_map);
    T *y = mode == KAO_BN_EVAL ? out : conv_out; /* eval: BN runs in place on the conv's output */
    if (s->depthwise) kao_t::dwconv2d_forward<T>(y, inp, weight, s, ctx);
    else kao_t::conv2d_forward<T>(y, inp, weight, NULL, s, ctx);
    size_t M = (size_t)s->batch * s->out_h * s->out_w;
    if (mode == KAO_BN_TRAIN)
        kao_t::batchnorm_forward_train<T>(out, save_mean, save_rstd, conv_out, bn->gamma, bn->beta,
                                          bn->running_mean, bn->running_var, bn->eps, bn->momentum, act, M,
                                          s->out_c, ctx);
    else
        kao_t::batchnorm_forward_eval<T>(out, y, bn->gamma, bn->beta, bn->running_mean, bn->running_var, bn->eps,
                                         act, M, s->out_c, ctx);
}

static void cuda_conv_bn(kao_backend *be, kao_map *out, kao_map *conv_out, float *save_mean, float *save_rstd,
                         const kao_map *inp, const float *weight, const kao_conv_shape *s, const kao_bn_tensors *bn,
                         kao_bn_mode mode, kao_act act) {
    DISPATCH(conv_bn_t, be, out, conv_out, save_mean, save_rstd, inp, weight, s, bn, mode, act);
}

template <class T>
static void conv_backward_t(kao_backend *be, kao_map *dinp, float *dweight, const kao_map *dout, const kao_map *inp,
                            const float *weight, const kao_conv_shape *s) {
    if (s->depthwise)
        kao_t::dwconv2d_backward<T>(as<T>(dinp), dweight, as<T>(dout), as<T>(inp), weight, s, ctx_of(be));
    else
        kao_t::conv2d_backward<T>(as<T>(dinp), dweight, NULL, as<T>(dout), as<T>(inp), weight, s, ctx_of(be));
}

static void cuda_conv_backward(kao_backend *be, kao_map *dinp, float *dweight, const kao_map *dout,
                               const kao_map *inp, const float *weight, const kao_conv_shape *s) {
    DISPATCH(conv_backward_t, be, dinp, dweight, dout, inp, weight, s);
}

template <class T>
static void bn_backward_t(kao_backend *be, kao_map *d_map, float *dgamma, float *dbeta, const kao_map *inp,
                          const float *save_mean, const float *save_rstd, const kao_bn_tensors *bn, kao_bn_mode mode,
                          kao_act act, size_t M, int C) {
    T *d = as<T>(d_map);
    if (mode == KAO_BN_FROZEN)
        kao_t::batchnorm_backward_frozen<T>(d, dgamma, dbeta, d, as<T>(inp), bn->running_mean, bn->running_var,
                                            bn->gamma, bn->beta, bn->eps, act, M, C, ctx_of(be));
    else
        kao_t::batchnorm_backward<T>(d, dgamma, dbeta, d, as<T>(inp), save_mean, save_rstd, bn->gamma, bn->beta, act,
                                     M, C, ctx_of(be));
}

static void cuda_bn_backward(kao_backend *be, kao_map *d, float *dgamma, float *dbeta, const kao_map *inp,
                             const float *save_mean, const float *save_rstd, const kao_bn_tensors *bn,
                             kao_bn_mode mode, kao_act act, size_t M, int C) {
    DISPATCH(bn_backward_t, be, d, dgamma, dbeta, inp, save_mean, save_rstd, bn, mode, act, M, C);
}

template <class T>
static void se_forward_t(kao_backend *be, kao_map *out, float *save_pooled, float *save_hidden, float *save_gate,
                         const kao_map *inp, const float *w_reduce, const float *b_reduce, const float *w_expand,
                         const float *b_expand, int B, int HW, int C, int R) {
    kao_t::se_forward<T>(as<T>(out), save_pooled, save_hidden, save_gate, as<T>(inp), w_reduce, b_reduce, w_expand,
                         b_expand, B, HW, C, R, ctx_of(be));
}

static void cuda_se_forward(kao_backend *be, kao_map *out, float *save_pooled, float *save_hidden, float *save_gate,
                            const kao_map *inp, const float *w_reduce, const float *b_reduce, const float *w_expand,
                            const float *b_expand, int B, int HW, int C, int R) {
    DISPATCH(se_forward_t, be, out, save_pooled, save_hidden, save_gate, inp, w_reduce, b_reduce, w_expand, b_expand,
             B, HW, C, R);
}

template <class T>
static void se_backward_t(kao_backend *be, kao_map *dinp, float *dw_reduce, float *db_reduce, float *dw_expand,
                          float *db_expand, const kao_map *dout, const kao_map *inp, const float *save_pooled,
                          const float *save_hidden, const float *save_gate, const float *w_reduce,
                          const float *w_expand, int B, int HW, int C, int R) {
    kao_t::se_backward<T>(as<T>(dinp), dw_reduce, db_reduce, dw_expand, db_expand, as<T>(dout), as<T>(inp),
                          save_pooled, save_hidden, save_gate, w_reduce, w_expand, B, HW, C, R, ctx_of(be));
}

static void cuda_se_backward(kao_backend *be, kao_map *dinp, float *dw_reduce, float *db_reduce, float *dw_expand,
                             float *db_expand, const kao_map *dout, const kao_map *inp, const float *save_pooled,
                             const float *save_hidden, const float *save_gate, const float *w_reduce,
                             const float *w_expand, int B, int HW, int C, int R) {
    DISPATCH(se_backward_t, be, dinp, dw_reduce, db_reduce, dw_expand, db_expand, dout, inp, save_pooled, save_hidden,
             save_gate, w_reduce, w_expand, B, HW, C, R);
}

template <class T>
static void avgpool_forward_t(kao_backend *be, float *out, const kao_map *inp, int B, int HW, int C) {
    kao_t::avgpool_forward<T>(out, as<T>(inp), B, HW, C, ctx_of(be));
}

static void cuda_avgpool_forward(kao_backend *be, float *out, const kao_map *inp, int B, int HW, int C) {
    DISPATCH(avgpool_forward_t, be, out, inp, B, HW, C);
}

template <class T>
static void avgpool_backward_t(kao_backend *be, kao_map *dinp, const float *dout, int B, int HW, int C) {
    kao_t::avgpool_backward<T>(as<T>(dinp), dout, B, HW, C, ctx_of(be));
}

static void cuda_avgpool_backward(kao_backend *be, kao_map *dinp, const float *dout, int B, int HW, int C) {
    DISPATCH(avgpool_backward_t, be, dinp, dout, B, HW, C);
}

static void cuda_linear_forward(kao_backend *be, float *out, const float *inp, const float *weight, const float *bias,
                                int B, int n_in, int n_out) {
    kao_linear_forward_gpu(out, inp, weight, bias, B, n_in, n_out, ctx_of(be));
}

static void cuda_linear_backward(kao_backend *be, float *dinp, float *dweight, float *dbias, const float *dout,
                                 const float *inp, const float *weight, int B, int n_in, int n_out) {
    kao_linear_backward_gpu(dinp, dweight, dbias, dout, inp, weight, B, n_in, n_out, ctx_of(be));
}

template <class T> static void add_inplace_t(kao_backend *be, kao_map *out, const kao_map *x, size_t n) {
    kao_t::add_inplace<T>(as<T>(out), as<T>(x), n, ctx_of(be));
}

static void cuda_add_inplace(kao_backend *be, kao_map *out, const kao_map *x, size_t n) {
    DISPATCH(add_inplace_t, be, out, x, n);
}

template <class T> static void scale_rows_t(kao_backend *be, kao_map *x, const float *mask, int B, size_t n) {
    kao_t::scale_rows<T>(as<T>(x), mask, B, n, ctx_of(be));
}

static void cuda_scale_rows(kao_backend *be, kao_map *x, const float *mask, int B, size_t n) {
    DISPATCH(scale_rows_t, be, x, mask, B, n);
}

/* ---- ArcFace ---- */

typedef struct {
    kao_arcface_acts_gpu acts;
    float *loss;     /* (1) device */
    int *correct;    /* (1) device */
} arcface_record;

static void *cuda_arcface_create(kao_backend *be, int max_batch, int E, int C) {
    arcface_record *r = (arcface_record *)kao_calloc(1, sizeof *r, "ArcFace record");
    kao_arcface_acts_create_gpu(&r->acts, max_batch, E, C);
    r->loss = (float *)kao_cuda_malloc(sizeof(float), "ArcFace loss");
    r->correct = (int *)kao_cuda_malloc(sizeof(int), "ArcFace correct count");
    sample_memory(be);
    return r;
}

static void cuda_arcface_free(kao_backend *be, void *p) {
    arcface_record *r = (arcface_record *)p;
    if (!r) return;
    kao_cuda_sync(ctx_of(be));
    kao_arcface_acts_free_gpu(&r->acts);
    kao_cuda_free(r->loss);
    kao_cuda_free(r->correct);
    free(r);
}

/* ArcFace stays in true fp32 under TF32 math: its logits are cosines × scale (64), so TF32's 2⁻¹¹
 * rounding of the cosine GEMM's operands would move a logit by up to ~0.03. Returns whether TF32
 * was on, for arcface_fp32_end. */
static bool arcface_fp32_begin(kao_cuda_ctx *ctx) {
    bool tf32 = ctx->tf32;
    if (tf32) kao_cuda_set_tf32(ctx, false);
    return tf32;
}

static void arcface_fp32_end(kao_cuda_ctx *ctx, bool tf32) {
    if (tf32) kao_cuda_set_tf32(ctx, true);
}

static float cuda_arcface_forward(kao_backend *be, void *p, const float *emb, const float *W, const int *labels, int B,
                                  int E, int C, const kao_arcface_cfg *cfg) {
    arcface_record *r = (arcface_record *)p;
    bool tf32 = arcface_fp32_begin(ctx_of(be));
    kao_arcface_forward_gpu(r->loss, &r->acts, emb, W, labels, B, E, C, cfg, ctx_of(be));
    arcface_fp32_end(ctx_of(be), tf32);
    float loss;
    kao_cuda_to_host(ctx_of(be), &loss, r->loss, sizeof loss);
    return loss;
}

static void cuda_arcface_backward(kao_backend *be, float *d_emb, float *dW, void *p, const int *labels, int B, int E,
                                  int C, const kao_arcface_cfg *cfg) {
    bool tf32 = arcface_fp32_begin(ctx_of(be));
    kao_arcface_backward_gpu(d_emb, dW, &((arcface_record *)p)->acts, labels, B, E, C, cfg, ctx_of(be));
    arcface_fp32_end(ctx_of(be), tf32);
}

/* One thread per row: whether the row's first largest cosine (torch.argmax's tie rule) is its label.
 * An integer count: the atomic sum is exact in any order. */
static __global__ void count_correct_kernel(int *count, const float *cosine, const int *labels, int B, int C) {
    int b = blockIdx.x * blockDim.x + threadIdx.x;
    if (b >= B) return;
    const float *row = cosine + (size_t)b * C;
    int best = 0;
    for (int c = 1; c < C; c++)
        if (row[c] > row[best]) best = c;
    if (best == labels[b]) atomicAdd(count, 1);
}

static int cuda_arcface_correct(kao_backend *be, void *p, const int *labels, int B, int C) {
    arcface_record *r = (arcface_record *)p;
    kao_cuda_ctx *ctx = ctx_of(be);
    const char *op = "arcface_correct";
    if (B == 0) return 0; /* no rows: a launch of 0 blocks would be an error */
    kao_cuda_zero(ctx, r->correct, sizeof(int));
    count_correct_kernel<<<(B + 127) / 128, 128, 0, ctx->stream>>>(r->correct, r->acts.cosine, labels, B, C);
    KAO_LAUNCH_CHECK(ctx, op, "B %d, C %d", B, C);
    int correct;
    kao_cuda_to_host(ctx, &correct, r->correct, sizeof correct);
    return correct;
}

/* ---- optimizers ---- */

static void *cuda_optim_state_create(kao_backend *be, const kao_optim *o) {
    kao_optim_state_gpu *st = (kao_optim_state_gpu *)kao_calloc(1, sizeof *st, "optimizer state");
    kao_optim_state_create_gpu(st, o, ctx_of(be));
    sample_memory(be);
    return st;
}

static void cuda_optim_state_free(kao_backend *be, void *p) {
    if (!p) return;
    kao_cuda_sync(ctx_of(be));
    kao_optim_state_free_gpu((kao_optim_state_gpu *)p);
    free(p);
}

static void cuda_optim_state_sync(kao_backend *be, kao_optim *o, void *p, bool to_host) {
    kao_optim_state_gpu *st = (kao_optim_state_gpu *)p;
    kao_cuda_ctx *ctx = ctx_of(be);
    size_t bytes = o->numel * sizeof(float);
    float *host[2] = {o->exp_avg, o->exp_avg_sq}, *dev[2] = {st->exp_avg, st->exp_avg_sq};
    for (int k = 0; k < 2; k++) {
        if (!host[k]) continue;
        if (to_host) kao_cuda_to_host(ctx, host[k], dev[k], bytes);
        else kao_cuda_to_device(ctx, dev[k], host[k], bytes);
    }
}

static void cuda_optim_step(kao_backend *be, kao_optim *o, void *p, float *params, const float *grads,
                            double lr_factor) {
    kao_optim_step_gpu(o, (kao_optim_state_gpu *)p, params, grads, lr_factor, ctx_of(be));
}

static float cuda_clip_grad_norm(kao_backend *be, kao_span *grads, int count, float max_norm) {
    return kao_clip_grad_norm_gpu(grads, count, max_norm, ctx_of(be));
}

static float cuda_norm(kao_backend *be, const kao_span *spans, int count) {
    return kao_norm_gpu(spans, count, ctx_of(be));
}

static void cuda_destroy(kao_backend *be) {
    cuda_state *st = (cuda_state *)be->impl;
    kao_cuda_destroy(st->ctx);
    free(st);
    free(be);
}

kao_backend *kao_backend_cuda(int device) {
    kao_backend *be = (kao_backend *)kao_calloc(1, sizeof *be, "CUDA backend");
    cuda_state *st = (cuda_state *)kao_calloc(1, sizeof *st, "CUDA backend state");
    st->ctx = kao_cuda_create(device);
    st->free_at_start = device_free();
    be->name = "cuda";
    be->host_memory = false;
    be->impl = st;
    kao_cuda_describe(st->ctx, be->description, sizeof be->description);
    be->alloc = cuda_alloc;
    be->release = cuda_release;
    be->to_backend = cuda_to_backend;
    be->to_host = cuda_to_host;
    be->copy = cuda_copy;
    be->zero = cuda_zero;
    be->host_alloc = cuda_host_alloc;
    be->host_release = cuda_host_release;
    be->sync = cuda_sync;
    be->set_precision = cuda_set_precision;
    be->map_bytes = sizeof(float);
    be->map_from_floats = cuda_map_from_floats;
    be->map_to_floats = cuda_map_to_floats;
    be->peak_memory_mib = cuda_peak_memory_mib;
    be->conv_bn = cuda_conv_bn;
    be->conv_backward = cuda_conv_backward;
    be->bn_backward = cuda_bn_backward;
    be->se_forward = cuda_se_forward;
    be->se_backward = cuda_se_backward;
    be->avgpool_forward = cuda_avgpool_forward;
    be->avgpool_backward = cuda_avgpool_backward;
    be->linear_forward = cuda_linear_forward;
    be->linear_backward = cuda_linear_backward;
    be->add_inplace = cuda_add_inplace;
    be->scale_rows = cuda_scale_rows;
    be->arcface_create = cuda_arcface_create;
    be->arcface_free = cuda_arcface_free;
    be->arcface_forward = cuda_arcface_forward;
    be->arcface_backward = cuda_arcface_backward;
    be->arcface_correct = cuda_arcface_correct;
    be->optim_state_create = cuda_optim_state_create;
    be->optim_state_free = cuda_optim_state_free;
    be->optim_state_sync = cuda_optim_state_sync;
    be->optim_step = cuda_optim_step;
    be->clip_grad_norm = cuda_clip_grad_norm;
    be->norm = cuda_norm;
    be->destroy = cuda_destroy;
    return be;
}
