/* arcface.cu — the ArcFace loss (arcface.h: definition, edge rules), forward and backward, on the
 * GPU. Norms are summed in double, as the CPU op does (a float sum of squares overflows from
 * |x| ~ 1e19 on, and a normalised row would become 0); dot products and log-sum-exp are fp32, all in
 * a fixed order; the per-row
 * target logit and its derivative are computed in double with exactly the CPU's expressions and
 * branch test, so the edge rules are the same:
 *  - θ = acos(clamp(cos_y, −1, 1)); t = cos·cos m − sinθ·sin m and dt/dcos = cos m + sin m·cos/sinθ
 *    when θ <= π − m, with dt/dcos = 0 at cos >= 1 (the symmetric subgradient, no division by 0);
 *    else t = cos − m·sin m, dt/dcos = 1;
 *  - norms are max(‖·‖, 1e-12) and a clamped norm passes no gradient through the norm;
 *  - log-sum-exp subtracts the row's maximum logit (no overflow; the sum is >= 1, so no log 0).
 * Nothing here divides by a value that can be 0 or takes a square root of a negative number, so a
 * NaN can only come from the inputs (or a bad label, made visible on purpose).
 * Kernels: rows of the embeddings are one block each (block tree reductions, fixed order);
 * columns of W one thread each (E in order); the products are cuBLAS GEMMs. */
#include <math.h>
#include <string.h>

#include "cuda_internal.cuh"

#define SHAPE_FMT "B %d, E %d, C %d"
#define NORM_EPS 1e-12 /* F.normalize's eps, as the CPU op */
enum { ROW_THREADS = 256 };

/* Block-wide sum of one value per thread, in a fixed tree order; every thread gets the result. */
template <class T> static __device__ T block_sum(T v, T *sh) {
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int stride = ROW_THREADS / 2; stride > 0; stride /= 2) {
        if (threadIdx.x < stride) sh[threadIdx.x] += sh[threadIdx.x + stride];
        __syncthreads();
    }
    T r = sh[0];
    __syncthreads();
    return r;
}

static __device__ float block_max(float v, float *sh) {
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int stride = ROW_THREADS / 2; stride > 0; stride /= 2) {
        if (threadIdx.x < stride) sh[threadIdx.x] = fmaxf(sh[threadIdx.x], sh[threadIdx.x + stride]);
        __syncthreads();
    }
    float r = sh[0];
    __syncthreads();
    return r;
}

/* ---- normalisation ------------------------------------------------------------------------ */

/* out (B, E) = x / norm per row; norm (B) = max(‖x‖, eps). One block per row. */
static __global__ void normalize_rows_kernel(float *out, float *norm, const float *x, int E) {
    __shared__ double sh[ROW_THREADS];
    const float *xb = x + (size_t)blockIdx.x * E;
    double ss = 0.0;
    for (int e = threadIdx.x; e < E; e += ROW_THREADS) ss += (double)xb[e] * xb[e];
    double n = fmax(sqrt(block_sum(ss, sh)), NORM_EPS);
    if (threadIdx.x == 0) norm[blockIdx.x] = (float)n;
    float *ob = out + (size_t)blockIdx.x * E;
    for (int e = threadIdx.x; e < E; e += ROW_THREADS) ob[e] = (float)(xb[e] / n);
}

/* out (E, C) = W / norm per column; norm (C). One thread per column, E in order. */
static __global__ void normalize_cols_kernel(float *out, float *norm, const float *W, int E, int C) {
    KAO_GRID_STRIDE(c, (size_t)C) {
        double ss = 0.0;
        for (int e = 0; e < E; e++) {
            double w = W[(size_t)e * C + c];
            ss += w * w;
        }
        double n = fmax(sqrt(ss), NORM_EPS);
        norm[c] = (float)n;
        for (int e = 0; e < E; e++) out[(size_t)e * C + c] = (float)(W[(size_t)e * C + c] / n);
    }
}

/* ---- the loss per row ---------------------------------------------------------------------- */

/* One block per row: the target logit (double, as the CPU op), log-sum-exp (float, max
 * subtracted), probabilities, the row's loss and d t / d cos_y. */
static __global__ void loss_rows_kernel(float *probs, float *row_loss, float *dtarget, const float *cosine,
                                        const int *labels, int C, float scale, double margin) {
    __shared__ float sh[ROW_THREADS];
    __shared__ float target_logit;
    __shared__ int bad_label;
    int b = blockIdx.x, y = labels[b];
    const float *cb = cosine + (size_t)b * C;
    float *pb = probs + (size_t)b * C;
    if (threadIdx.x == 0) {
        bad_label = y < 0 || y >= C;
        double t = 0.0, dt = 0.0;
        if (!bad_label) {
            double cos_m = cos(margin), sin_m = sin(margin);
            double c = fmin(fmax((double)cb[y], -1.0), 1.0);
            /* c = −1 (θ = π) takes the second branch, which m > 0 selects there anyway: with m = 0
             * the first branch's dt would be sin m·c/sinθ = 0/0 = NaN (both branches give t = −1). */
            if (c > -1.0 && acos(c) <= M_PI - margin) {
                double sin_t = sqrt(1.0 - c * c);
                t = c * cos_m - sin_t * sin_m;
                dt = c < 1.0 ? cos_m + sin_m * c / sin_t : 0.0;
            } else {
                t = c - margin * sin_m;
                dt = 1.0;
            }
        }
        target_logit = (float)((double)scale * t);
        dtarget[b] = (float)dt;
    }
    __syncthreads();
    if (bad_label) { /* kao's own bug: make it visible, read nothing out of bounds */
        for (int j = threadIdx.x; j < C; j += ROW_THREADS) pb[j] = NAN;
        if (threadIdx.x == 0) row_loss[b] = NAN;
        return;
    }
    float zy = target_logit, mx = -INFINITY;
    for (int j = threadIdx.x; j < C; j += ROW_THREADS) mx = fmaxf(mx, j == y ? zy : scale * cb[j]);
    mx = block_max(mx, sh);
    float sum = 0.0f;
    for (int j = threadIdx.x; j < C; j += ROW_THREADS) sum += expf((j == y ? zy : scale * cb[j]) - mx);
    float lse = mx + logf(block_sum(sum, sh));
    for (int j = threadIdx.x; j < C; j += ROW_THREADS) pb[j] = expf((j == y ? zy : scale * cb[j]) - lse);
    if (threadIdx.x == 0) row_loss[b] = lse - zy;
}

/* loss = mean of the rows' losses, summed in order in double. */
static __global__ void mean_loss_kernel(float *loss, const float *row_loss, int B) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    double total = 0.0;
    for (int b = 0; b < B; b++) total += row_loss[b];
    *loss = (float)(total / B);
}

/* ---- backward ----------------------------------------------------------------------------- */

/* dcos (B, C) = s·(p − onehot)/B, times d t / d cos at the target. */
static __global__ void dcos_kernel(float *dcos, const float *probs, const float *dtarget, const int *labels, int B,
                                   int C, float scale) {
    KAO_GRID_STRIDE(i, (size_t)B * C) {
        size_t b = i / (size_t)C;
        int j = (int)(i % (size_t)C);
        float p = probs[i];
        dcos[i] = j == labels[b] ? scale * (p - 1.0f) / (float)B * dtarget[b] : scale * p / (float)B;
    }
}

/* d_emb (B, E) = (dê − ê·(ê·dê)) / norm per row (no projection where the norm was clamped). */
static __global__ void row_norm_backward_kernel(float *d_emb, const float *emb_hat, const float *demb_hat,
                                                const float *emb_norm, int E) {
    __shared__ float sh[ROW_THREADS];
    size_t off = (size_t)blockIdx.x * E;
    const float *eh = emb_hat + off, *dh = demb_hat + off;
    float n = emb_norm[blockIdx.x], dot = 0.0f;
    for (int e = threadIdx.x; e < E; e += ROW_THREADS) dot += eh[e] * dh[e];
    dot = block_sum(dot, sh);
    if (n <= (float)NORM_EPS) dot = 0.0f;
    for (int e = threadIdx.x; e < E; e += ROW_THREADS) d_emb[off + e] = (dh[e] - eh[e] * dot) / n;
}

/* dW (E, C) += (dŴ − Ŵ·(Ŵ·dŴ)) / norm per column. */
static __global__ void col_norm_backward_kernel(float *dW, const float *w_hat, const float *dw_hat, const float *w_norm,
                                                int E, int C) {
    KAO_GRID_STRIDE(c, (size_t)C) {
        float dot = 0.0f;
        for (int e = 0; e < E; e++) dot += w_hat[(size_t)e * C + c] * dw_hat[(size_t)e * C + c];
        float n = w_norm[c];
        if (n <= (float)NORM_EPS) dot = 0.0f;
        for (int e = 0; e < E; e++) {
            size_t i = (size_t)e * C + c;
            dW[i] += (dw_hat[i] - w_hat[i] * dot) / n;
        }
    }
}

/* ---- public ------------------------------------------------------------------------------- */

void kao_arcface_acts_create_gpu(kao_arcface_acts_gpu *a, int max_batch, int dim, int classes) {
    KAO_CUDA_ASSERT(max_batch > 0 && dim > 0 && classes > 0, "arcface_acts_create_gpu", SHAPE_FMT, max_batch, dim,
                    classes);
    size_t B = (size_t)max_batch, E = (size_t)dim, C = (size_t)classes, f = sizeof(float);
    a->max_batch = max_batch, a->dim = dim, a->classes = classes;
    a->emb_hat = (float *)kao_cuda_malloc(B * E * f, "arcface emb_hat");
    a->emb_norm = (float *)kao_cuda_malloc(B * f, "arcface emb_norm");
    a->w_hat = (float *)kao_cuda_malloc(E * C * f, "arcface w_hat");
    a->w_norm = (float *)kao_cuda_malloc(C * f, "arcface w_norm");
    a->cosine = (float *)kao_cuda_malloc(B * C * f, "arcface cosine");
    a->probs = (float *)kao_cuda_malloc(B * C * f, "arcface probs");
    a->dtarget = (float *)kao_cuda_malloc(B * f, "arcface dtarget");
    a->row_loss = (float *)kao_cuda_malloc(B * f, "arcface row_loss");
    a->dcos = (float *)kao_cuda_malloc(B * C * f, "arcface dcos");
    a->dw_hat = (float *)kao_cuda_malloc(E * C * f, "arcface dw_hat");
    a->demb_hat = (float *)kao_cuda_malloc(B * E * f, "arcface demb_hat");
}

void kao_arcface_acts_free_gpu(kao_arcface_acts_gpu *a) {
    float *all[] = {a->emb_hat, a->emb_norm, a->w_hat, a->w_norm, a->cosine,  a->probs,
                    a->dtarget, a->row_loss, a->dcos,  a->dw_hat, a->demb_hat};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) kao_cuda_free(all[i]);
    memset(a, 0, sizeof *a);
}

static void check_sizes(const kao_arcface_acts_gpu *a, int B, int E, int C, const char *op) {
    KAO_CUDA_ASSERT(B > 0 && B <= a->max_batch && E == a->dim && C == a->classes, op,
                    SHAPE_FMT " (acts: max batch %d, E %d, C %d)", B, E, C, a->max_batch, a->dim, a->classes);
}

void kao_arcface_cosine_gpu(kao_arcface_acts_gpu *a, const float *emb, const float *W, int B, int E, int C,
                            kao_cuda_ctx *ctx) {
    const char *op = "arcface_cosine_gpu";
    check_sizes(a, B, E, C, op);
    normalize_rows_kernel<<<B, ROW_THREADS, 0, ctx->stream>>>(a->emb_hat, a->emb_norm, emb, E);
    KAO_LAUNCH_CHECK(ctx, op, "normalise rows; " SHAPE_FMT, B, E, C);
    normalize_cols_kernel<<<kao_blocks((size_t)C), KAO_THREADS, 0, ctx->stream>>>(a->w_hat, a->w_norm, W, E, C);
    KAO_LAUNCH_CHECK(ctx, op, "normalise columns; " SHAPE_FMT, B, E, C);
    /* cosine (B, C) = ê (B, E) · Ŵ (E, C) */
    kao_gemm_rm(ctx, op, false, false, B, C, E, 1.0f, a->emb_hat, E, a->w_hat, C, 0.0f, a->cosine, C);
}

void kao_arcface_forward_gpu(float *loss, kao_arcface_acts_gpu *a, const float *emb, const float *W,
                             const int *labels, int B, int E, int C, const kao_arcface_cfg *cfg, kao_cuda_ctx *ctx) {
    const char *op = "arcface_forward_gpu";
    kao_arcface_cosine_gpu(a, emb, W, B, E, C, ctx);
    double margin = cfg->margin_deg * (M_PI / 180.0);
    loss_rows_kernel<<<B, ROW_THREADS, 0, ctx->stream>>>(a->probs, a->row_loss, a->dtarget, a->cosine, labels, C,
                                                         (float)cfg->scale, margin);
    KAO_LAUNCH_CHECK(ctx, op, "loss rows; " SHAPE_FMT, B, E, C);
    mean_loss_kernel<<<1, 1, 0, ctx->stream>>>(loss, a->row_loss, B);
    KAO_LAUNCH_CHECK(ctx, op, "mean; " SHAPE_FMT, B, E, C);
}

void kao_arcface_backward_gpu(float *d_emb, float *dW, kao_arcface_acts_gpu *a, const int *labels, int B, int E,
                              int C, const kao_arcface_cfg *cfg, kao_cuda_ctx *ctx) {
    const char *op = "arcface_backward_gpu";
    check_sizes(a, B, E, C, op);
    dcos_kernel<<<kao_blocks((size_t)B * C), KAO_THREADS, 0, ctx->stream>>>(a->dcos, a->probs, a->dtarget, labels, B,
                                                                            C, (float)cfg->scale);
    KAO_LAUNCH_CHECK(ctx, op, "dcos; " SHAPE_FMT, B, E, C);
    if (d_emb) {
        /* dê (B, E) = dcos (B, C) · Ŵᵀ (C, E) */
        kao_gemm_rm(ctx, op, false, true, B, E, C, 1.0f, a->dcos, C, a->w_hat, C, 0.0f, a->demb_hat, E);
        row_norm_backward_kernel<<<B, ROW_THREADS, 0, ctx->stream>>>(d_emb, a->emb_hat, a->demb_hat, a->emb_norm, E);
        KAO_LAUNCH_CHECK(ctx, op, "d_emb; " SHAPE_FMT, B, E, C);
    }
    if (dW) {
        /* dŴ (E, C) = êᵀ (E, B) · dcos (B, C) */
        kao_gemm_rm(ctx, op, true, false, E, C, B, 1.0f, a->emb_hat, E, a->dcos, C, 0.0f, a->dw_hat, C);
        col_norm_backward_kernel<<<kao_blocks((size_t)C), KAO_THREADS, 0, ctx->stream>>>(dW, a->w_hat, a->dw_hat,
                                                                                         a->w_norm, E, C);
        KAO_LAUNCH_CHECK(ctx, op, "dW; " SHAPE_FMT, B, E, C);
    }
}
