/* optim.cu — AdamW, SGD and gradient clipping on the GPU: the CUDA twin of src/optim.c.
 *
 * The update kernels do per element exactly the float operations of src/optim.c in the same
 * order, written with the round-to-nearest intrinsics (__fmul_rn, __fadd_rn, __fdiv_rn,
 * __fsqrt_rn) so that nvcc cannot contract a multiply and an add into an FMA (kao's C is compiled
 * in ISO mode, where GCC contracts nothing), and fmaf exactly where the CPU calls fmaf. The
 * scalars (1 − lr·wd, bias corrections, step size) are computed on the host by the same
 * expressions. So the GPU's parameters and moments equal the CPU's bit for bit.
 * kao_optim_step_gpu walks the host table as kao_optim_step does (groups, frozen tensors,
 * per-tensor step counts) and launches one kernel per run of adjacent tensors sharing the same
 * scalars (usually a whole group). */
#include <math.h>
#include <string.h>

#include "cuda_internal.cuh"

/* ---- element kernels ---------------------------------------------------------------------- */

typedef struct {
    float decay, w1, b2, w2, neg_step_size, bc2_sqrt, eps;
} adamw_scalars;

static __global__ void adamw_kernel(float *p, float *m, float *v, const float *g, size_t n, adamw_scalars k) {
    KAO_GRID_STRIDE(i, n) {
        float gi = g[i];
        float pi = __fmul_rn(p[i], k.decay);                      /* param.mul_(1 - lr·wd) */
        float mi = fmaf(k.w1, __fsub_rn(gi, m[i]), m[i]);          /* exp_avg.lerp_(grad, 1 - β1) */
        float vi = __fmul_rn(v[i], k.b2);                         /* exp_avg_sq.mul_(β2) */
        vi = __fadd_rn(vi, __fmul_rn(__fmul_rn(k.w2, gi), gi));   /* .addcmul_(grad, grad, 1 - β2) */
        float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), k.bc2_sqrt), k.eps);
        p[i] = __fadd_rn(pi, __fdiv_rn(__fmul_rn(k.neg_step_size, mi), denom)); /* addcdiv_ */
        m[i] = mi;
        v[i] = vi;
    }
}

typedef struct {
    float wd, mom, neg_lr;
    int use_wd, nesterov, first;
} sgd_scalars;

static __global__ void sgd_kernel(float *p, float *buf, const float *g, size_t n, sgd_scalars k) {
    KAO_GRID_STRIDE(i, n) {
        float d = k.use_wd ? fmaf(p[i], k.wd, g[i]) : g[i];      /* grad.add(param, alpha=wd) */
        if (buf) {
            float b = k.first ? d : __fadd_rn(__fmul_rn(buf[i], k.mom), d); /* buf.mul_(μ).add_(grad) */
            buf[i] = b;
            d = k.nesterov ? fmaf(b, k.mom, d) : b;
        }
        p[i] = fmaf(d, k.neg_lr, p[i]);                          /* param.add_(grad, alpha=-lr) */
    }
}

/* ---- the step ----------------------------------------------------------------------------- */

/* What one tensor's update needs besides its memory; equal keys may share a launch. */
typedef struct {
    double lr, wd;
    int64_t step;
} update_key;

static void launch_run(const kao_optim *o, kao_optim_state_gpu *st, float *params, const float *grads, size_t offset,
                       size_t n, update_key key, kao_cuda_ctx *ctx) {
    const char *op = "optim_step_gpu";
    const kao_optim_cfg *c = &o->cfg;
    if (n == 0) return;
    if (c->type == KAO_OPTIM_ADAMW) {
        /* optim.c's adamw_update, scalars by the same expressions */
        adamw_scalars k;
        k.decay = (float)(1.0 - key.lr * key.wd);
        k.w1 = (float)(1.0 - c->beta1);
        k.b2 = (float)c->beta2;
        k.w2 = (float)(1.0 - c->beta2);
        double bc1 = 1.0 - pow(c->beta1, (double)key.step), bc2 = 1.0 - pow(c->beta2, (double)key.step);
        k.neg_step_size = (float)(-(key.lr / bc1));
        k.bc2_sqrt = (float)sqrt(bc2);
        k.eps = (float)c->eps;
        adamw_kernel<<<kao_blocks(n), KAO_THREADS, 0, ctx->stream>>>(params + offset, st->exp_avg + offset,
                                                                     st->exp_avg_sq + offset, grads + offset, n, k);
    } else {
        sgd_scalars k;
        k.wd = (float)key.wd;
        k.use_wd = key.wd != 0;
        k.mom = (float)c->momentum;
        k.neg_lr = (float)(-key.lr);
        k.nesterov = c->nesterov;
        k.first = key.step == 1;
        sgd_kernel<<<kao_blocks(n), KAO_THREADS, 0, ctx->stream>>>(
            params + offset, st->exp_avg ? st->exp_avg + offset : NULL, grads + offset, n, k);
    }
    KAO_LAUNCH_CHECK(ctx, op, "%s, floats %zu at offset %zu, step %lld", kao_optim_type_name(c->type), n, offset,
                     (long long)key.step);
}

void kao_optim_step_gpu(kao_optim *o, kao_optim_state_gpu *st, float *params, const float *grads, double lr_factor,
                        kao_cuda_ctx *ctx) {
    const kao_optim_cfg *c = &o->cfg;
    KAO_CUDA_ASSERT((st->exp_avg != NULL) == (o->exp_avg != NULL) && (st->exp_avg_sq != NULL) == (o->exp_avg_sq != NULL),
                    "optim_step_gpu", "device state does not match the optimizer (%s)", kao_optim_type_name(c->type));
    size_t run_offset = 0, run_n = 0;
    update_key run_key = {0, 0, 0};
    for (int i = 0; i < o->num_tensors; i++) {
        if (o->group[i] < 0) continue;
        const kao_tensor *t = &o->tensors[i];
        const kao_optim_group *g = &c->groups[o->group[i]];
        update_key key;
        key.lr = g->lr * lr_factor;
        key.wd = g->exclude_no_decay && t->no_decay ? 0.0 : g->weight_decay;
        key.step = ++o->steps[i];
        bool joins = run_n > 0 && run_offset + run_n == t->offset && key.lr == run_key.lr && key.wd == run_key.wd &&
                     key.step == run_key.step;
        if (joins) {
            run_n += t->numel;
            continue;
        }
        launch_run(o, st, params, grads, run_offset, run_n, run_key, ctx);
        run_offset = t->offset, run_n = t->numel, run_key = key;
    }
    launch_run(o, st, params, grads, run_offset, run_n, run_key, ctx);
}

void kao_optim_state_create_gpu(kao_optim_state_gpu *st, const kao_optim *o, kao_cuda_ctx *ctx) {
    memset(st, 0, sizeof *st);
    size_t bytes = o->numel * sizeof(float);
    if (o->exp_avg) {
        st->exp_avg = (float *)kao_cuda_malloc(bytes, "optimizer exp_avg");
        kao_cuda_to_device(ctx, st->exp_avg, o->exp_avg, bytes);
    }
    if (o->exp_avg_sq) {
        st->exp_avg_sq = (float *)kao_cuda_malloc(bytes, "optimizer exp_avg_sq");
        kao_cuda_to_device(ctx, st->exp_avg_sq, o->exp_avg_sq, bytes);
    }
}

void kao_optim_state_free_gpu(kao_optim_state_gpu *st) {
    kao_cuda_free(st->exp_avg);
    kao_cuda_free(st->exp_avg_sq);
    memset(st, 0, sizeof *st);
}

/* ---- clipping ----------------------------------------------------------------------------- */

enum { CLIP_THREADS = 256, CLIP_MAX_BLOCKS = 1024 };

/* Blocks for a span of n floats: a fixed function of n. */
static unsigned clip_blocks(size_t n) {
    size_t b = (n + (size_t)CLIP_THREADS * 16 - 1) / ((size_t)CLIP_THREADS * 16);
    if (b < 1) b = 1;
    if (b > CLIP_MAX_BLOCKS) b = CLIP_MAX_BLOCKS;
    return (unsigned)b;
}

/* part (gridDim.x) = per-block Σ x² in double (threads stride the span, then a fixed tree). */
static __global__ void sum_squares_kernel(double *part, const float *x, size_t n) {
    __shared__ double sh[CLIP_THREADS];
    double acc = 0.0;
    KAO_GRID_STRIDE(i, n) acc += (double)x[i] * x[i];
    sh[threadIdx.x] = acc;
    __syncthreads();
    for (int stride = CLIP_THREADS / 2; stride > 0; stride /= 2) {
        if (threadIdx.x < stride) sh[threadIdx.x] += sh[threadIdx.x + stride];
        __syncthreads();
    }
    if (threadIdx.x == 0) part[blockIdx.x] = sh[0];
}

static __global__ void sum_parts_kernel(double *total, const double *part, size_t n) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += part[i];
    *total = s;
}

static __global__ void scale_kernel(float *x, size_t n, float coef) {
    KAO_GRID_STRIDE(i, n) x[i] *= coef;
}

float kao_norm_gpu(const kao_span *spans, int count, kao_cuda_ctx *ctx) {
    const char *op = "norm_gpu";
    size_t nparts = 0;
    for (int k = 0; k < count; k++) nparts += clip_blocks(spans[k].numel);
    kao_carver cv = {NULL, 0};
    kao_carve<double>(&cv, nparts + 1);
    cv.base = (char *)kao_cuda_workspace(ctx, cv.used), cv.used = 0;
    double *part = kao_carve<double>(&cv, nparts + 1), *total = part + nparts;
    size_t at = 0;
    for (int k = 0; k < count; k++) {
        unsigned blocks = clip_blocks(spans[k].numel);
        sum_squares_kernel<<<blocks, CLIP_THREADS, 0, ctx->stream>>>(part + at, spans[k].data, spans[k].numel);
        KAO_LAUNCH_CHECK(ctx, op, "span %d of %d: %zu floats", k, count, spans[k].numel);
        at += blocks;
    }
    sum_parts_kernel<<<1, 1, 0, ctx->stream>>>(total, part, nparts);
    KAO_LAUNCH_CHECK(ctx, op, "%zu partial sums", nparts);
    double ss = 0.0;
    kao_cuda_to_host(ctx, &ss, total, sizeof ss);
    return (float)sqrt(ss);
}

float kao_clip_grad_norm_gpu(kao_span *grads, int count, float max_norm, kao_cuda_ctx *ctx) {
    const char *op = "clip_grad_norm_gpu";
    /* The coefficient exactly as kao_clip_grad_norm's. */
    const float norm = kao_norm_gpu(grads, count, ctx);
    float coef = (1.0f / (norm + 1e-6f)) * max_norm;
    if (coef > 1.0f) coef = 1.0f; /* NaN passes, as in torch */
    for (int k = 0; k < count; k++) {
        if (grads[k].numel == 0) continue;
        scale_kernel<<<kao_blocks(grads[k].numel), KAO_THREADS, 0, ctx->stream>>>(grads[k].data, grads[k].numel, coef);
        KAO_LAUNCH_CHECK(ctx, op, "scale span %d: %zu floats", k, grads[k].numel);
    }
    return norm;
}
