/* dwconv.cu — depthwise convolution (groups = channels), TF "same" padding (asymmetric padding
 * handled directly: out-of-image taps are skipped), NHWC, weight (C, 1, k, k), no bias: the CUDA
 * twin of src/ops_dwconv.c, with kernels of its own (cuDNN's grouped convolutions are slow in
 * NHWC fp32). The maps are float or bf16 (ops_t.cuh), loaded as float; the weight and its gradient
 * are float.
 *  - forward: one thread per output element, channels fastest (consecutive threads read
 *    consecutive channels of a pixel: coalesced); the taps in (ky, kx) order.
 *  - backward input: one thread per input element gathers the outputs whose window holds it (no
 *    scatter, no atomics); writes every element, so dinp is overwritten.
 *  - backward weight: per channel, the k² sums over all B·Ho·Wo output pixels of dout·inp, a
 *    deterministic column reduction with k² values per element (reduce.cuh). */
#include "ops_t.cuh"
#include "reduce.cuh"

#define SHAPE_FMT "B %d, in %dx%dx%d, out %dx%dx%d, k %d, stride %d, pad top %d left %d"
#define SHAPE_ARGS(s)                                                                              \
    (s)->batch, (s)->in_h, (s)->in_w, (s)->in_c, (s)->out_h, (s)->out_w, (s)->out_c, (s)->kernel,  \
        (s)->stride, (s)->pad_top, (s)->pad_left

template <class T>
static __global__ void dw_forward_kernel(T *out, const T *inp, const float *weight, kao_conv_shape s) {
    int k = s.kernel, C = s.in_c;
    KAO_GRID_STRIDE(i, (size_t)s.batch * s.out_h * s.out_w * C) {
        size_t c = i % (size_t)C, p = i / (size_t)C;
        int ox = (int)(p % (size_t)s.out_w), oy = (int)((p / (size_t)s.out_w) % (size_t)s.out_h);
        size_t b = p / ((size_t)s.out_w * s.out_h);
        const float *w = weight + c * k * k;
        float acc = 0.0f;
        for (int ky = 0; ky < k; ky++) {
            int iy = oy * s.stride - s.pad_top + ky;
            if (iy < 0 || iy >= s.in_h) continue;
            for (int kx = 0; kx < k; kx++) {
                int ix = ox * s.stride - s.pad_left + kx;
                if (ix < 0 || ix >= s.in_w) continue;
                acc += kao_ld(inp[((b * s.in_h + iy) * s.in_w + ix) * C + c]) * w[ky * k + kx];
            }
        }
        kao_st(&out[i], acc);
    }
}

template <class T>
static __global__ void dw_backward_input_kernel(T *dinp, const T *dout, const float *weight, kao_conv_shape s) {
    int k = s.kernel, C = s.in_c, S = s.stride;
    KAO_GRID_STRIDE(i, (size_t)s.batch * s.in_h * s.in_w * C) {
        size_t c = i % (size_t)C, p = i / (size_t)C;
        int ix = (int)(p % (size_t)s.in_w), iy = (int)((p / (size_t)s.in_w) % (size_t)s.in_h);
        size_t b = p / ((size_t)s.in_w * s.in_h);
        const float *w = weight + c * k * k;
        float acc = 0.0f;
        for (int ky = 0; ky < k; ky++) {
            int ty = iy + s.pad_top - ky; /* = oy·S for the output whose tap ky lands here */
            if (ty < 0 || ty % S) continue;
            int oy = ty / S;
            if (oy >= s.out_h) continue;
            for (int kx = 0; kx < k; kx++) {
                int tx = ix + s.pad_left - kx;
                if (tx < 0 || tx % S) continue;
                int ox = tx / S;
                if (ox >= s.out_w) continue;
                acc += kao_ld(dout[((b * s.out_h + oy) * s.out_w + ox) * C + c]) * w[ky * k + kx];
            }
        }
        kao_st(&dinp[i], acc);
    }
}

/* For output pixel m and channel c: the K² products dout·inp of its window (0 outside the image). */
template <class T, int K> struct dw_weight_products {
    const T *dout, *inp;
    kao_conv_shape s;
    __device__ void operator()(size_t m, int c, float *v) const {
        int ox = (int)(m % (size_t)s.out_w), oy = (int)((m / (size_t)s.out_w) % (size_t)s.out_h);
        size_t b = m / ((size_t)s.out_w * s.out_h);
        float g = kao_ld(dout[m * s.in_c + c]);
#pragma unroll
        for (int ky = 0; ky < K; ky++) {
            int iy = oy * s.stride - s.pad_top + ky;
#pragma unroll
            for (int kx = 0; kx < K; kx++) {
                int ix = ox * s.stride - s.pad_left + kx;
                bool inside = iy >= 0 && iy < s.in_h && ix >= 0 && ix < s.in_w;
                v[ky * K + kx] = inside ? g * kao_ld(inp[((b * s.in_h + iy) * s.in_w + ix) * s.in_c + c]) : 0.0f;
            }
        }
    }
};

/* dweight (C, K, K) += totals (K·K, C) */
static __global__ void add_weight_totals_kernel(float *dweight, const double *totals, int C, int kk) {
    KAO_GRID_STRIDE(i, (size_t)C * kk) {
        size_t t = i % (size_t)kk, c = i / (size_t)kk;
        dweight[i] += (float)totals[t * C + c];
    }
}

template <int K, class T>
static void weight_grad(float *dweight, const T *dout, const T *inp, const kao_conv_shape *s,
                        kao_cuda_ctx *ctx, const char *op) {
    const int NV = K * K;
    int C = s->in_c;
    size_t M = (size_t)s->batch * s->out_h * s->out_w;
    kao_colsum_plan plan = kao_colsum_make_plan(M, NV);
    kao_carver cv = {NULL, 0};
    kao_carve<double>(&cv, kao_colsum_part_doubles(&plan, NV, C));
    kao_carve<double>(&cv, (size_t)NV * C);
    cv.base = (char *)kao_cuda_workspace(ctx, cv.used), cv.used = 0;
    double *part = kao_carve<double>(&cv, kao_colsum_part_doubles(&plan, NV, C));
    double *totals = kao_carve<double>(&cv, (size_t)NV * C);
    kao_colsum<NV>(totals, part, &plan, dw_weight_products<T, K>{dout, inp, *s}, M, C, ctx, op);
    add_weight_totals_kernel<<<kao_blocks((size_t)C * NV), KAO_THREADS, 0, ctx->stream>>>(dweight, totals, C, NV);
    KAO_LAUNCH_CHECK(ctx, op, "dweight; " SHAPE_FMT, SHAPE_ARGS(s));
}

static void check_shape(const kao_conv_shape *s, const char *op) {
    KAO_CUDA_ASSERT(s->depthwise && s->in_c == s->out_c, op, SHAPE_FMT, SHAPE_ARGS(s));
    KAO_CUDA_ASSERT(s->kernel == 1 || s->kernel == 3 || s->kernel == 5 || s->kernel == 7, op,
                    "kernel size not instantiated; " SHAPE_FMT, SHAPE_ARGS(s));
}

template <class T>
void kao_t::dwconv2d_forward(T *out, const T *inp, const float *weight, const kao_conv_shape *s, kao_cuda_ctx *ctx) {
    const char *op = KAO_OP(T, "dwconv2d_forward_gpu");
    check_shape(s, op);
    size_t n = (size_t)s->batch * s->out_h * s->out_w * s->out_c;
    dw_forward_kernel<<<kao_blocks(n), KAO_THREADS, 0, ctx->stream>>>(out, inp, weight, *s);
    KAO_LAUNCH_CHECK(ctx, op, SHAPE_FMT, SHAPE_ARGS(s));
}

template <class T>
void kao_t::dwconv2d_backward(T *dinp, float *dweight, const T *dout, const T *inp, const float *weight,
                              const kao_conv_shape *s, kao_cuda_ctx *ctx) {
    const char *op = KAO_OP(T, "dwconv2d_backward_gpu");
    check_shape(s, op);
    switch (s->kernel) {
    case 1: weight_grad<1>(dweight, dout, inp, s, ctx, op); break;
    case 3: weight_grad<3>(dweight, dout, inp, s, ctx, op); break;
    case 5: weight_grad<5>(dweight, dout, inp, s, ctx, op); break;
    default: weight_grad<7>(dweight, dout, inp, s, ctx, op); break;
    }
    if (!dinp) return;
    size_t n = (size_t)s->batch * s->in_h * s->in_w * s->in_c;
    dw_backward_input_kernel<<<kao_blocks(n), KAO_THREADS, 0, ctx->stream>>>(dinp, dout, weight, *s);
    KAO_LAUNCH_CHECK(ctx, op, "dinp; " SHAPE_FMT, SHAPE_ARGS(s));
}

void kao_dwconv2d_forward_gpu(float *out, const float *inp, const float *weight, const kao_conv_shape *s,
                              kao_cuda_ctx *ctx) {
    kao_t::dwconv2d_forward<float>(out, inp, weight, s, ctx);
}

void kao_dwconv2d_backward_gpu(float *dinp, float *dweight, const float *dout, const float *inp,
                               const float *weight, const kao_conv_shape *s, kao_cuda_ctx *ctx) {
    kao_t::dwconv2d_backward<float>(dinp, dweight, dout, inp, weight, s, ctx);
}

#define INSTANTIATE(T)                                                                             \
    template void kao_t::dwconv2d_forward<T>(T *, const T *, const float *, const kao_conv_shape *, kao_cuda_ctx *); \
    template void kao_t::dwconv2d_backward<T>(T *, float *, const T *, const T *, const float *,     \
                                              const kao_conv_shape *, kao_cuda_ctx *);
INSTANTIATE(float)
INSTANTIATE(kao_bf16)
