/* conv.cu — convolution with groups = 1, TF "same" padding, NHWC activations, OIHW weights: the
 * CUDA twin of src/ops_conv.c.
 *
 *  - 1×1 stride 1: one cuBLAS GEMM over the M = B·H·W pixel rows, out [M, Co] = inp [M, Ci] ·
 *    W [Co, Ci]ᵀ; backward dinp = dout · W and dW += doutᵀ · inp (NHWC needs no copy; a 1×1 OIHW
 *    weight is already [Co, Ci]).
 *  - everything else: cuDNN (legacy v7 API: the heuristics' list, or with KAO_CUDA_AUTOTUNE=1
 *    cuDNN's timing of each algorithm, and the first algorithm on it that is deterministic and supported in the math mode: FMA, i.e. true fp32, by default; tensor-op
 *    math, i.e. TF32, after kao_cuda_set_tf32). The descriptors and the algorithms chosen are
 *    kept per shape and math mode in the context (a plan): the heuristics' query costs far more
 *    host time than the launches, and the network repeats the same few shapes every step. Activations are
 *    NHWC tensors; the weight is repacked OIHW → OHWI (cuDNN's NHWC filter layout: matching the
 *    activations' layout is what cuDNN's NHWC kernels take) and dW is computed in OHWI and added
 *    back into the OIHW gradient.
 *  - asymmetric TF padding (cuda.h explains): the input is copied into (B, H + eh, W + ew, Ci)
 *    with a zero extra row (eh = 1) and/or column (ew = 1) after the image, and cuDNN pads it
 *    symmetrically by (pad_top, pad_left); backward data is computed in that shape and cropped.
 *  - the fallback: where cuDNN offers no deterministic algorithm in NHWC for a direction
 *    (forward, backward filter, backward data) that direction runs in NCHW instead, with the OIHW
 *    weight (copied, not repacked) and the activations transposed in and out (KAO_CUDA_CONV_NCHW=1
 *    forces it everywhere, to test it).
 * The bias gradient (when asked) is a deterministic column sum of dout (reduce.cuh).
 * The maps are float or bf16 (ops_t.cuh); the weight, the bias and their gradients are float. With
 * bf16 maps the 1×1 GEMMs are cublasGemmEx calls on bf16 operands (the weight rounded into the
 * workspace) accumulating in fp32, dW straight into the float gradient; cuDNN runs on bf16 tensors
 * and a bf16 weight copy with fp32 compute, in the math type of the algorithm chosen (as with TF32:
 * FMA math is for true fp32 only), and its bf16 dW is added into the float gradient. Plans are kept
 * per data type too. */
#include "ops_t.cuh"
#include "reduce.cuh"

#define SHAPE_FMT "B %d, in %dx%dx%d, out %dx%dx%d, k %d, stride %d, pad top %d left %d"
#define SHAPE_ARGS(s)                                                                              \
    (s)->batch, (s)->in_h, (s)->in_w, (s)->in_c, (s)->out_h, (s)->out_w, (s)->out_c, (s)->kernel,  \
        (s)->stride, (s)->pad_top, (s)->pad_left

/* cuDNN may use up to this much workspace per call (an algorithm needing more is skipped). */
static const size_t MAX_CUDNN_WORKSPACE = (size_t)1 << 30;

static bool pointwise(const kao_conv_shape *s) { return s->kernel == 1 && s->stride == 1; }

/* The extra zero row/column the TF padding needs after the image (0 or 1 each). */
static int extra_after(int in, int out, int kernel, int stride, int pad_before) {
    int total = (out - 1) * stride + kernel - in;
    if (total < 0) total = 0;
    return (total - pad_before) - pad_before;
}

/* ---- small kernels ------------------------------------------------------------------------ */

template <class T> static __global__ void add_bias_kernel(T *out, const float *bias, size_t M, int C) {
    KAO_GRID_STRIDE(i, M * C) kao_st(&out[i], kao_ld(out[i]) + bias[i % (size_t)C]);
}

/* w_ohwi (Co, k, k, Ci) from weight (Co, Ci, k, k) */
template <class T>
static __global__ void oihw_to_ohwi_kernel(T *w_ohwi, const float *weight, int Co, int Ci, int kk) {
    KAO_GRID_STRIDE(i, (size_t)Co * Ci * kk) {
        size_t ci = i % (size_t)Ci, t = (i / (size_t)Ci) % (size_t)kk, co = i / ((size_t)Ci * kk);
        kao_st(&w_ohwi[i], weight[(co * Ci + ci) * kk + t]);
    }
}

/* dweight (Co, Ci, k, k) += dw, cuDNN's weight gradient: (ohwi) OHWI (Co, k, k, Ci), else OIHW. */
template <class T>
static __global__ void add_weight_grad_kernel(float *dweight, const T *dw, int Co, int Ci, int kk, bool ohwi) {
    KAO_GRID_STRIDE(i, (size_t)Co * Ci * kk) {
        size_t t = i % (size_t)kk, ci = (i / (size_t)kk) % (size_t)Ci, co = i / ((size_t)Ci * kk);
        dweight[i] += kao_ld(dw[ohwi ? (co * kk + t) * Ci + ci : i]);
    }
}

/* dst = src (B, H, W, C) NHWC padded with zeros to (H + eh, W + ew) after the image, laid out NHWC
 * or (nchw) NCHW: cuDNN's input in either layout. */
template <class T>
static __global__ void to_conv_layout_kernel(T *dst, const T *src, int B, int H, int W, int C, int eh, int ew,
                                             bool nchw) {
    size_t Hp = (size_t)H + eh, Wp = (size_t)W + ew, Cs = (size_t)C;
    KAO_GRID_STRIDE(i, (size_t)B * Hp * Wp * Cs) {
        size_t c, x, y, b;
        if (nchw) {
            x = i % Wp, y = (i / Wp) % Hp, c = (i / (Wp * Hp)) % Cs, b = i / (Wp * Hp * Cs);
        } else {
            c = i % Cs, x = (i / Cs) % Wp, y = (i / (Cs * Wp)) % Hp, b = i / (Cs * Wp * Hp);
        }
        if (y < (size_t)H && x < (size_t)W) dst[i] = src[((b * H + y) * W + x) * Cs + c];
        else kao_st(&dst[i], 0.0f);
    }
}

/* dst (B, H, W, C) NHWC = the top-left (H, W) of src (B, H + eh, W + ew, C), laid out NHWC or
 * (nchw) NCHW. */
template <class T>
static __global__ void from_conv_layout_kernel(T *dst, const T *src, int B, int H, int W, int C, int eh, int ew,
                                               bool nchw) {
    size_t Hp = (size_t)H + eh, Wp = (size_t)W + ew, Cs = (size_t)C;
    KAO_GRID_STRIDE(i, (size_t)B * H * W * Cs) {
        size_t c = i % Cs, p = i / Cs;
        size_t x = p % (size_t)W, y = (p / (size_t)W) % (size_t)H, b = p / ((size_t)W * H);
        dst[i] = nchw ? src[((b * Cs + c) * Hp + y) * Wp + x] : src[((b * Hp + y) * Wp + x) * Cs + c];
    }
}

template <class T>
static void to_conv_layout(T *dst, const T *src, int B, int H, int W, int C, int eh, int ew, bool nchw,
                           kao_cuda_ctx *ctx, const char *op, const kao_conv_shape *s) {
    size_t n = (size_t)B * (H + eh) * (W + ew) * C;
    to_conv_layout_kernel<<<kao_blocks(n), KAO_THREADS, 0, ctx->stream>>>(dst, src, B, H, W, C, eh, ew, nchw);
    KAO_LAUNCH_CHECK(ctx, op, "to %s, pad %d %d; " SHAPE_FMT, nchw ? "NCHW" : "NHWC", eh, ew, SHAPE_ARGS(s));
}

template <class T>
static void from_conv_layout(T *dst, const T *src, int B, int H, int W, int C, int eh, int ew, bool nchw,
                             kao_cuda_ctx *ctx, const char *op, const kao_conv_shape *s) {
    size_t n = (size_t)B * H * W * C;
    from_conv_layout_kernel<<<kao_blocks(n), KAO_THREADS, 0, ctx->stream>>>(dst, src, B, H, W, C, eh, ew, nchw);
    KAO_LAUNCH_CHECK(ctx, op, "from %s, crop %d %d; " SHAPE_FMT, nchw ? "NCHW" : "NHWC", eh, ew, SHAPE_ARGS(s));
}

/* ---- cuDNN descriptors and algorithm choice ---------------------------------------------- */

typedef struct {
    cudnnTensorDescriptor_t x, y;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t conv;
    int eh, ew; /* the extra row/column of asymmetric padding */
    bool nchw;  /* NCHW activations and the OIHW weight (the fallback); else NHWC and OHWI */
} conv_descs;

/* dtype: the maps' and the weight's type (compute stays fp32); fma: true fp32 math only. */
static void descs_create(conv_descs *d, const kao_conv_shape *s, cudnnDataType_t dtype, bool fma, bool nchw,
                         const char *op) {
    d->eh = extra_after(s->in_h, s->out_h, s->kernel, s->stride, s->pad_top);
    d->ew = extra_after(s->in_w, s->out_w, s->kernel, s->stride, s->pad_left);
    d->nchw = nchw;
    KAO_CUDA_ASSERT(d->eh >= 0 && d->eh <= 1 && d->ew >= 0 && d->ew <= 1, op, SHAPE_FMT, SHAPE_ARGS(s));
    cudnnTensorFormat_t format = nchw ? CUDNN_TENSOR_NCHW : CUDNN_TENSOR_NHWC;
    KAO_CUDNN_CHECK(cudnnCreateTensorDescriptor(&d->x), op, SHAPE_FMT, SHAPE_ARGS(s));
    KAO_CUDNN_CHECK(cudnnCreateTensorDescriptor(&d->y), op, SHAPE_FMT, SHAPE_ARGS(s));
    KAO_CUDNN_CHECK(cudnnCreateFilterDescriptor(&d->w), op, SHAPE_FMT, SHAPE_ARGS(s));
    KAO_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&d->conv), op, SHAPE_FMT, SHAPE_ARGS(s));
    KAO_CUDNN_CHECK(cudnnSetTensor4dDescriptor(d->x, format, dtype, s->batch, s->in_c, s->in_h + d->eh,
                                               s->in_w + d->ew),
                    op, SHAPE_FMT, SHAPE_ARGS(s));
    KAO_CUDNN_CHECK(cudnnSetTensor4dDescriptor(d->y, format, dtype, s->batch, s->out_c, s->out_h, s->out_w), op,
                    SHAPE_FMT, SHAPE_ARGS(s));
    KAO_CUDNN_CHECK(cudnnSetFilter4dDescriptor(d->w, dtype, format, s->out_c, s->in_c, s->kernel, s->kernel), op,
                    SHAPE_FMT, SHAPE_ARGS(s));
    KAO_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(d->conv, s->pad_top, s->pad_left, s->stride, s->stride, 1, 1,
                                                    CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
                    op, SHAPE_FMT, SHAPE_ARGS(s));
    /* FMA math: true fp32. With TF32 asked for, or bf16 data, the default math, which lets Ampere and
     * later use TF32 for float data (PyTorch's choice for allow_tf32); the heuristics are then asked
     * with query_math and each call sets the math type of the algorithm they chose (use_math). */
    KAO_CUDNN_CHECK(cudnnSetConvolutionMathType(d->conv, fma ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH), op,
                    SHAPE_FMT, SHAPE_ARGS(s));
    /* The legacy API takes tensors of fewer than 2³¹ elements (the network's largest are ~1e8). */
    KAO_CUDA_ASSERT((size_t)s->batch * (s->in_h + d->eh) * (s->in_w + d->ew) * s->in_c < ((size_t)1 << 31) &&
                        (size_t)s->batch * s->out_h * s->out_w * s->out_c < ((size_t)1 << 31),
                    op, "a tensor of 2^31 elements or more; " SHAPE_FMT, SHAPE_ARGS(s));
    /* The geometry cuDNN derives must be the TF "same" output. */
    int n, c, h, w;
    KAO_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(d->conv, d->x, d->w, &n, &c, &h, &w), op, SHAPE_FMT,
                    SHAPE_ARGS(s));
    KAO_CUDA_ASSERT(n == s->batch && c == s->out_c && h == s->out_h && w == s->out_w, op,
                    "cuDNN output %dx%dx%dx%d; " SHAPE_FMT, n, h, w, c, SHAPE_ARGS(s));
}

static void descs_destroy(conv_descs *d, const kao_conv_shape *s, const char *op) {
    KAO_CUDNN_CHECK(cudnnDestroyConvolutionDescriptor(d->conv), op, SHAPE_FMT, SHAPE_ARGS(s));
    KAO_CUDNN_CHECK(cudnnDestroyFilterDescriptor(d->w), op, SHAPE_FMT, SHAPE_ARGS(s));
    KAO_CUDNN_CHECK(cudnnDestroyTensorDescriptor(d->y), op, SHAPE_FMT, SHAPE_ARGS(s));
    KAO_CUDNN_CHECK(cudnnDestroyTensorDescriptor(d->x), op, SHAPE_FMT, SHAPE_ARGS(s));
}

/* cuDNN's ranking of algorithms and its workspace query, one overload per direction (perf type).
 * The ranking is the heuristics' (no device work), or with KAO_CUDA_AUTOTUNE=1 the measured one:
 * cuDNN runs every algorithm once on buffers of its own and sorts them by time, as PyTorch's
 * cudnn.benchmark does. Timing can rank two close algorithms differently from one process to the
 * next, and with them the last bits of the results, so it is not the default. */
static cudnnStatus_t rank(kao_cuda_ctx *ctx, const conv_descs *d, cudnnConvolutionFwdAlgoPerf_t *perf, int count,
                          int *n) {
    if (ctx->autotune) return cudnnFindConvolutionForwardAlgorithm(ctx->cudnn, d->x, d->w, d->conv, d->y, count, n, perf);
    return cudnnGetConvolutionForwardAlgorithm_v7(ctx->cudnn, d->x, d->w, d->conv, d->y, count, n, perf);
}
static cudnnStatus_t workspace(kao_cuda_ctx *ctx, const conv_descs *d, cudnnConvolutionFwdAlgo_t algo, size_t *size) {
    return cudnnGetConvolutionForwardWorkspaceSize(ctx->cudnn, d->x, d->w, d->conv, d->y, algo, size);
}
static cudnnStatus_t rank(kao_cuda_ctx *ctx, const conv_descs *d, cudnnConvolutionBwdDataAlgoPerf_t *perf, int count,
                          int *n) {
    if (ctx->autotune)
        return cudnnFindConvolutionBackwardDataAlgorithm(ctx->cudnn, d->w, d->y, d->conv, d->x, count, n, perf);
    return cudnnGetConvolutionBackwardDataAlgorithm_v7(ctx->cudnn, d->w, d->y, d->conv, d->x, count, n, perf);
}
static cudnnStatus_t workspace(kao_cuda_ctx *ctx, const conv_descs *d, cudnnConvolutionBwdDataAlgo_t algo,
                               size_t *size) {
    return cudnnGetConvolutionBackwardDataWorkspaceSize(ctx->cudnn, d->w, d->y, d->conv, d->x, algo, size);
}
static cudnnStatus_t rank(kao_cuda_ctx *ctx, const conv_descs *d, cudnnConvolutionBwdFilterAlgoPerf_t *perf,
                          int count, int *n) {
    if (ctx->autotune)
        return cudnnFindConvolutionBackwardFilterAlgorithm(ctx->cudnn, d->x, d->y, d->conv, d->w, count, n, perf);
    return cudnnGetConvolutionBackwardFilterAlgorithm_v7(ctx->cudnn, d->x, d->y, d->conv, d->w, count, n, perf);
}
static cudnnStatus_t workspace(kao_cuda_ctx *ctx, const conv_descs *d, cudnnConvolutionBwdFilterAlgo_t algo,
                               size_t *size) {
    return cudnnGetConvolutionBackwardFilterWorkspaceSize(ctx->cudnn, d->x, d->y, d->conv, d->w, algo, size);
}

/* Appends to log (for no_algorithm's message) why candidate algo was passed over. */
static void note_rejected(char *log, size_t log_n, int algo, const char *why) {
    size_t used = strlen(log);
    if (used + 1 < log_n) snprintf(log + used, log_n - used, " %d:%s", algo, why);
}

/* The heuristics' ranking, filtered: status success, deterministic, a workspace size cuDNN
 * reports for this configuration (a query that fails means unsupported) within the limit.
 * Returns whether it found one; the others' reasons go to log. The workspace is the larger of the
 * query's and the heuristics' own figure: the query sees the default math, but the call runs in
 * the algorithm's math type (use_math), which may need more. Perf: the direction's perf struct;
 * Count: its number of algorithms. */
template <class Perf, int Count>
static bool pick(kao_cuda_ctx *ctx, const conv_descs *d, decltype(Perf::algo) *algo, size_t *bytes,
                 cudnnMathType_t *math, char *log, size_t log_n, const kao_conv_shape *s, const char *op) {
    Perf perf[Count];
    int n = 0;
    KAO_CUDNN_CHECK(rank(ctx, d, perf, Count, &n), op, SHAPE_FMT, SHAPE_ARGS(s));
    if (n == 0) note_rejected(log, log_n, -1, "none ranked");
    for (int i = 0; i < n; i++) {
        int a = (int)perf[i].algo;
        if (perf[i].status != CUDNN_STATUS_SUCCESS) {
            note_rejected(log, log_n, a, cudnnGetErrorString(perf[i].status));
            continue;
        }
        if (perf[i].determinism != CUDNN_DETERMINISTIC) {
            note_rejected(log, log_n, a, "nondeterministic");
            continue;
        }
        size_t size = 0;
        if (workspace(ctx, d, perf[i].algo, &size) != CUDNN_STATUS_SUCCESS) {
            note_rejected(log, log_n, a, "workspace query failed");
            continue;
        }
        if (perf[i].memory > size) size = perf[i].memory;
        if (size > MAX_CUDNN_WORKSPACE) {
            note_rejected(log, log_n, a, "workspace over 1 GiB");
            continue;
        }
        *algo = perf[i].algo, *bytes = size, *math = perf[i].mathType;
        return true;
    }
    return false;
}
static constexpr auto pick_forward = &pick<cudnnConvolutionFwdAlgoPerf_t, CUDNN_CONVOLUTION_FWD_ALGO_COUNT>;
static constexpr auto pick_backward_data =
    &pick<cudnnConvolutionBwdDataAlgoPerf_t, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT>;
static constexpr auto pick_backward_filter =
    &pick<cudnnConvolutionBwdFilterAlgoPerf_t, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT>;

/* ---- plans: descriptors and algorithms, made once per shape, math mode and data type ------- */

enum { NHWC = 0, NCHW = 1 };

/* One direction's choice: the layout (-1 until chosen), the algorithm's workspace and math type. */
typedef struct {
    int layout;
    size_t bytes;
    cudnnMathType_t math;
} conv_choice;

struct kao_conv_plan {
    kao_conv_shape shape;
    bool tf32;
    cudnnDataType_t dtype; /* the maps' type */
    conv_descs layouts[2]; /* NHWC and NCHW, each made on first use */
    bool made[2];
    conv_choice fwd, filter, data;
    cudnnConvolutionFwdAlgo_t fwd_algo;
    cudnnConvolutionBwdFilterAlgo_t filter_algo;
    cudnnConvolutionBwdDataAlgo_t data_algo;
};

/* Field by field: the struct's padding bytes are not part of the shape. */
static bool same_shape(const kao_conv_shape *a, const kao_conv_shape *b) {
    return a->batch == b->batch && a->in_h == b->in_h && a->in_w == b->in_w && a->in_c == b->in_c &&
           a->out_h == b->out_h && a->out_w == b->out_w && a->out_c == b->out_c && a->kernel == b->kernel &&
           a->stride == b->stride && a->pad_top == b->pad_top && a->pad_left == b->pad_left &&
           a->depthwise == b->depthwise;
}

/* The plan for s and data type dtype in the context's math mode. The pointer is valid until the next
 * call (the list may grow). */
static kao_conv_plan *get_plan(kao_cuda_ctx *ctx, const kao_conv_shape *s, cudnnDataType_t dtype, const char *op) {
    for (int i = 0; i < ctx->num_conv_plans; i++)
        if (ctx->conv_plans[i].tf32 == ctx->tf32 && ctx->conv_plans[i].dtype == dtype &&
            same_shape(&ctx->conv_plans[i].shape, s))
            return &ctx->conv_plans[i];
    if (ctx->num_conv_plans == ctx->conv_plans_capacity) {
        int capacity = ctx->conv_plans_capacity ? 2 * ctx->conv_plans_capacity : 32;
        kao_conv_plan *grown = (kao_conv_plan *)realloc(ctx->conv_plans, (size_t)capacity * sizeof *grown);
        KAO_CUDA_ASSERT(grown, op, "out of host memory for %d convolution plans; " SHAPE_FMT, capacity, SHAPE_ARGS(s));
        ctx->conv_plans = grown;
        ctx->conv_plans_capacity = capacity;
    }
    kao_conv_plan *p = &ctx->conv_plans[ctx->num_conv_plans++];
    memset(p, 0, sizeof *p);
    p->shape = *s;
    p->tf32 = ctx->tf32;
    p->dtype = dtype;
    p->fwd.layout = p->filter.layout = p->data.layout = -1;
    return p;
}

/* True fp32 math: fp32 data without TF32. */
static bool fma_only(const kao_conv_plan *p) { return !p->tf32 && p->dtype == CUDNN_DATA_FLOAT; }

static const conv_descs *plan_layout(kao_conv_plan *p, int layout, const char *op) {
    if (!p->made[layout]) {
        descs_create(&p->layouts[layout], &p->shape, p->dtype, fma_only(p), layout == NCHW, op);
        p->made[layout] = true;
    }
    return &p->layouts[layout];
}

void kao_conv_plans_free(kao_cuda_ctx *ctx) {
    for (int i = 0; i < ctx->num_conv_plans; i++)
        for (int l = 0; l < 2; l++)
            if (ctx->conv_plans[i].made[l])
                descs_destroy(&ctx->conv_plans[i].layouts[l], &ctx->conv_plans[i].shape, "kao_conv_plans_free");
    free(ctx->conv_plans);
    ctx->conv_plans = NULL;
    ctx->num_conv_plans = ctx->conv_plans_capacity = 0;
}

/* TF32 mode or bf16 data: the descriptor takes the math type of the algorithm about to run (the
 * directions share one descriptor), and query_math again for a heuristics query. FMA mode keeps
 * FMA: true fp32 whatever the heuristics said. */
static void use_math(const kao_conv_plan *p, const conv_descs *d, cudnnMathType_t math, const char *op) {
    if (!fma_only(p))
        KAO_CUDNN_CHECK(cudnnSetConvolutionMathType(d->conv, math), op, "math %d; " SHAPE_FMT, (int)math,
                        SHAPE_ARGS(&p->shape));
}

/* NHWC first, NCHW where NHWC has no deterministic algorithm (or KAO_CUDA_CONV_NCHW=1). */
static int first_layout(void) {
    const char *force = getenv("KAO_CUDA_CONV_NCHW");
    return force && !strcmp(force, "1") ? NCHW : NHWC;
}

static void no_algorithm(const char *direction, const char *log, const kao_conv_shape *s, const char *op) {
    kao_cuda_fail(__FILE__, __LINE__, op, "cuDNN heuristics", "no deterministic algorithm in NHWC or NCHW",
                  "%s; " SHAPE_FMT "; passed over (algorithm:reason):%s", direction, SHAPE_ARGS(s), log);
}

/* The math the heuristics query with: the default (TF32 allowed on float data) or, for bf16 data,
 * tensor-op math, which the default does not promise for 16-bit types (PyTorch asks for it too). */
static cudnnMathType_t query_math(const kao_conv_plan *p) {
    return p->dtype == CUDNN_DATA_BFLOAT16 ? CUDNN_TENSOR_OP_MATH : CUDNN_DEFAULT_MATH;
}

/* One direction's layout and algorithm, chosen on first use: NHWC, else NCHW (first_layout). */
template <class Algo>
static const conv_descs *choose(kao_cuda_ctx *ctx, kao_conv_plan *p, conv_choice *choice, Algo *algo,
                                bool (*pick)(kao_cuda_ctx *, const conv_descs *, Algo *, size_t *, cudnnMathType_t *,
                                             char *, size_t, const kao_conv_shape *, const char *),
                                const char *direction, const char *op) {
    static const char *const layout_names[2] = {"NHWC", "NCHW"};
    char log[1024] = "";
    for (int l = first_layout(); l < 2 && choice->layout < 0; l++) {
        const conv_descs *d = plan_layout(p, l, op);
        use_math(p, d, query_math(p), op); /* the heuristics see TF32 or tensor cores allowed */
        size_t used = strlen(log);
        snprintf(log + used, sizeof log - used, " %s:", layout_names[l]);
        if (pick(ctx, d, algo, &choice->bytes, &choice->math, log, sizeof log, &p->shape, op)) choice->layout = l;
        KAO_LIBRARY_DONE(ctx, op, SHAPE_FMT, SHAPE_ARGS(&p->shape));
    }
    if (choice->layout < 0) no_algorithm(direction, log, &p->shape, op);
    if (ctx->verbose)
        fprintf(stderr, "kao cuda: %s %s (%s%s): %s, algorithm %d, math %d, workspace %zu bytes; " SHAPE_FMT
                "; passed over:%s\n", op, direction, p->dtype == CUDNN_DATA_BFLOAT16 ? "bf16" : "fp32",
                p->tf32 ? ", tf32" : "", layout_names[choice->layout], (int)*algo, (int)choice->math, choice->bytes,
                SHAPE_ARGS(&p->shape), log);
    return &p->layouts[choice->layout];
}

/* ---- forward ------------------------------------------------------------------------------ */

/* The weight as cuDNN takes it in d's layout (OHWI for NHWC, OIHW for NCHW) and type T, in the
 * workspace. Even where no repacking or conversion is needed it is copied: the model's tensors are
 * packed, so only 4-byte aligned, and the workspace is 256-byte aligned. The gradient likewise goes
 * through the workspace (add_weight_grad). */
template <class T>
static void layout_weight(T *w_copy, const float *weight, const conv_descs *d, const kao_conv_shape *s,
                          kao_cuda_ctx *ctx, const char *op) {
    int kk = s->kernel * s->kernel;
    size_t n = (size_t)s->out_c * s->in_c * kk;
    if (d->nchw) {
        if constexpr (std::is_same<T, float>::value) kao_cuda_copy(ctx, w_copy, weight, n * sizeof(float));
        else kao_t::convert(w_copy, weight, n, ctx, op);
        return;
    }
    oihw_to_ohwi_kernel<<<kao_blocks(n), KAO_THREADS, 0, ctx->stream>>>(w_copy, weight, s->out_c, s->in_c, kk);
    KAO_LAUNCH_CHECK(ctx, op, "weight OIHW→OHWI; " SHAPE_FMT, SHAPE_ARGS(s));
}

/* dweight (OIHW) += dw_copy, cuDNN's weight gradient in d's layout. */
template <class T>
static void add_weight_grad(float *dweight, const T *dw_copy, const conv_descs *d, const kao_conv_shape *s,
                            kao_cuda_ctx *ctx, const char *op) {
    int kk = s->kernel * s->kernel;
    size_t n = (size_t)s->out_c * s->in_c * kk;
    add_weight_grad_kernel<<<kao_blocks(n), KAO_THREADS, 0, ctx->stream>>>(dweight, dw_copy, s->out_c, s->in_c, kk,
                                                                           !d->nchw);
    KAO_LAUNCH_CHECK(ctx, op, "dweight %s→OIHW; " SHAPE_FMT, d->nchw ? "OIHW" : "OHWI", SHAPE_ARGS(s));
}

/* Elements of cuDNN's copy of the input in d's layout: needed for NCHW or an extra row/column. */
static size_t input_copy_elems(const conv_descs *d, const kao_conv_shape *s) {
    return (d->nchw || d->eh || d->ew) ? (size_t)s->batch * (s->in_h + d->eh) * (s->in_w + d->ew) * s->in_c : 0;
}

/* The 1×1 stride-1 convolution as GEMMs over the M pixel rows: fp32 maps through kao_gemm_rm, bf16
 * maps through kao_gemm_rm_ex on a bf16 copy of the weight, accumulating in fp32. */
static void pointwise_forward(float *out, const float *inp, const float *weight, int M, const kao_conv_shape *s,
                              kao_cuda_ctx *ctx, const char *op) {
    kao_gemm_rm(ctx, op, false, true, M, s->out_c, s->in_c, 1.0f, inp, s->in_c, weight, s->in_c, 0.0f, out,
                s->out_c);
}

/* dweight (Co, Ci) += doutᵀ (Co, M) · inp (M, Ci); dinp (M, Ci) = dout (M, Co) · W (Co, Ci) */
static void pointwise_backward(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight,
                               int M, const kao_conv_shape *s, kao_cuda_ctx *ctx, const char *op) {
    int Ci = s->in_c, Co = s->out_c;
    kao_gemm_rm(ctx, op, true, false, Co, Ci, M, 1.0f, dout, Co, inp, Ci, 1.0f, dweight, Ci);
    if (dinp) kao_gemm_rm(ctx, op, false, false, M, Ci, Co, 1.0f, dout, Co, weight, Ci, 0.0f, dinp, Ci);
}

/* The (Co, Ci) weight of a 1×1 convolution rounded to bf16, in the workspace. */
static const kao_bf16 *weight_bf16(const float *weight, const kao_conv_shape *s, kao_cuda_ctx *ctx, const char *op) {
    size_t n = (size_t)s->out_c * s->in_c;
    kao_bf16 *w = (kao_bf16 *)kao_cuda_workspace(ctx, n * sizeof(kao_bf16));
    kao_t::convert(w, weight, n, ctx, op);
    return w;
}

static void pointwise_forward(kao_bf16 *out, const kao_bf16 *inp, const float *weight, int M,
                              const kao_conv_shape *s, kao_cuda_ctx *ctx, const char *op) {
    const kao_bf16 *w = weight_bf16(weight, s, ctx, op);
    kao_gemm_rm_ex(ctx, op, false, true, M, s->out_c, s->in_c, 1.0f, inp, CUDA_R_16BF, s->in_c, w, CUDA_R_16BF,
                   s->in_c, 0.0f, out, CUDA_R_16BF, s->out_c);
}

/* As the fp32 one; dweight is accumulated by cuBLAS in fp32 straight into the float gradient. */
static void pointwise_backward(kao_bf16 *dinp, float *dweight, const kao_bf16 *dout, const kao_bf16 *inp,
                               const float *weight, int M, const kao_conv_shape *s, kao_cuda_ctx *ctx,
                               const char *op) {
    int Ci = s->in_c, Co = s->out_c;
    kao_gemm_rm_ex(ctx, op, true, false, Co, Ci, M, 1.0f, dout, CUDA_R_16BF, Co, inp, CUDA_R_16BF, Ci, 1.0f, dweight,
                   CUDA_R_32F, Ci);
    if (dinp)
        kao_gemm_rm_ex(ctx, op, false, false, M, Ci, Co, 1.0f, dout, CUDA_R_16BF, Co, weight_bf16(weight, s, ctx, op),
                       CUDA_R_16BF, Ci, 0.0f, dinp, CUDA_R_16BF, Ci);
}

template <class T>
void kao_t::conv2d_forward(T *out, const T *inp, const float *weight, const float *bias, const kao_conv_shape *s,
                           kao_cuda_ctx *ctx) {
    const char *op = KAO_OP(T, "conv2d_forward_gpu");
    KAO_CUDA_ASSERT(!s->depthwise, op, SHAPE_FMT, SHAPE_ARGS(s));
    size_t M = (size_t)s->batch * s->out_h * s->out_w;
    KAO_CUDA_ASSERT(M <= INT32_MAX, op, SHAPE_FMT, SHAPE_ARGS(s));
    if (pointwise(s)) {
        pointwise_forward(out, inp, weight, (int)M, s, ctx, op);
    } else {
        kao_conv_plan *plan = get_plan(ctx, s, kao_type<T>::cudnn, op);
        const conv_descs *d = choose(ctx, plan, &plan->fwd, &plan->fwd_algo, pick_forward, "forward", op);
        size_t w_n = (size_t)s->out_c * s->in_c * s->kernel * s->kernel;
        size_t x_n = input_copy_elems(d, s), y_n = d->nchw ? M * s->out_c : 0;
        kao_carver c = {NULL, 0};
        kao_carve<T>(&c, w_n);
        kao_carve<T>(&c, x_n);
        kao_carve<T>(&c, y_n);
        kao_carve<char>(&c, plan->fwd.bytes);
        c.base = (char *)kao_cuda_workspace(ctx, c.used), c.used = 0;
        T *w = kao_carve<T>(&c, w_n), *x_copy = kao_carve<T>(&c, x_n);
        T *y_nchw = kao_carve<T>(&c, y_n);
        void *algo_ws = kao_carve<char>(&c, plan->fwd.bytes);
        const T *x = inp;
        layout_weight(w, weight, d, s, ctx, op);
        if (x_n) {
            to_conv_layout(x_copy, inp, s->batch, s->in_h, s->in_w, s->in_c, d->eh, d->ew, d->nchw, ctx, op, s);
            x = x_copy;
        }
        const float one = 1.0f, zero = 0.0f;
        use_math(plan, d, plan->fwd.math, op);
        KAO_CUDNN_CHECK(cudnnConvolutionForward(ctx->cudnn, &one, d->x, x, d->w, w, d->conv, plan->fwd_algo, algo_ws,
                                                plan->fwd.bytes, &zero, d->y, d->nchw ? y_nchw : out),
                        op, "algo %d, %s; " SHAPE_FMT, (int)plan->fwd_algo, d->nchw ? "NCHW" : "NHWC", SHAPE_ARGS(s));
        KAO_LIBRARY_DONE(ctx, op, SHAPE_FMT, SHAPE_ARGS(s));
        if (d->nchw) from_conv_layout(out, y_nchw, s->batch, s->out_h, s->out_w, s->out_c, 0, 0, true, ctx, op, s);
    }
    if (bias) {
        add_bias_kernel<<<kao_blocks(M * s->out_c), KAO_THREADS, 0, ctx->stream>>>(out, bias, M, s->out_c);
        KAO_LAUNCH_CHECK(ctx, op, "bias; " SHAPE_FMT, SHAPE_ARGS(s));
    }
}

/* ---- backward ----------------------------------------------------------------------------- */

/* dbias (C) += Σ over the M rows of dout (M, C). */
template <class T> struct dout_value {
    const T *dout;
    int C;
    __device__ void operator()(size_t m, int c, float *v) const { v[0] = kao_ld(dout[m * C + c]); }
};

static __global__ void add_totals_kernel(float *out, const double *totals, int C) {
    KAO_GRID_STRIDE(c, (size_t)C) out[c] += (float)totals[c];
}

template <class T>
static void bias_grad(float *dbias, const T *dout, size_t M, int C, kao_cuda_ctx *ctx, const char *op) {
    kao_colsum_plan plan = kao_colsum_make_plan(M, 1);
    kao_carver c = {NULL, 0};
    kao_carve<double>(&c, kao_colsum_part_doubles(&plan, 1, C));
    kao_carve<double>(&c, (size_t)C);
    c.base = (char *)kao_cuda_workspace(ctx, c.used), c.used = 0;
    double *part = kao_carve<double>(&c, kao_colsum_part_doubles(&plan, 1, C)), *totals = kao_carve<double>(&c, C);
    kao_colsum<1>(totals, part, &plan, dout_value<T>{dout, C}, M, C, ctx, op);
    add_totals_kernel<<<kao_blocks((size_t)C), KAO_THREADS, 0, ctx->stream>>>(dbias, totals, C);
    KAO_LAUNCH_CHECK(ctx, op, "dbias: M %zu, C %d", M, C);
}

template <class T>
void kao_t::conv2d_backward(T *dinp, float *dweight, float *dbias, const T *dout, const T *inp, const float *weight,
                            const kao_conv_shape *s, kao_cuda_ctx *ctx) {
    const char *op = KAO_OP(T, "conv2d_backward_gpu");
    KAO_CUDA_ASSERT(!s->depthwise, op, SHAPE_FMT, SHAPE_ARGS(s));
    size_t M = (size_t)s->batch * s->out_h * s->out_w;
    KAO_CUDA_ASSERT(M <= INT32_MAX, op, SHAPE_FMT, SHAPE_ARGS(s));
    if (dbias) bias_grad(dbias, dout, M, s->out_c, ctx, op);
    int Ci = s->in_c, Co = s->out_c;
    if (pointwise(s)) {
        pointwise_backward(dinp, dweight, dout, inp, weight, (int)M, s, ctx, op);
        return;
    }
    kao_conv_plan *plan = get_plan(ctx, s, kao_type<T>::cudnn, op);
    const conv_descs *df =
        choose(ctx, plan, &plan->filter, &plan->filter_algo, pick_backward_filter, "backward filter", op);
    const conv_descs *dd =
        dinp ? choose(ctx, plan, &plan->data, &plan->data_algo, pick_backward_data, "backward data", op) : NULL;
    size_t w_n = (size_t)Co * Ci * s->kernel * s->kernel;
    size_t filter_bytes = plan->filter.bytes, data_bytes = dd ? plan->data.bytes : 0;
    size_t algo_bytes = filter_bytes > data_bytes ? filter_bytes : data_bytes;
    /* The weight (data gradient) and the weight gradient in each direction's layout; in NCHW dout
     * is transposed. */
    size_t x_n = input_copy_elems(df, s), dx_n = dd ? input_copy_elems(dd, s) : 0;
    size_t w_copy_n = dd ? w_n : 0;
    size_t dy_n = df->nchw || (dd && dd->nchw) ? M * Co : 0;
    kao_carver c = {NULL, 0};
    kao_carve<T>(&c, w_copy_n);
    kao_carve<T>(&c, w_n);
    kao_carve<T>(&c, x_n);
    kao_carve<T>(&c, dx_n);
    kao_carve<T>(&c, dy_n);
    kao_carve<char>(&c, algo_bytes);
    c.base = (char *)kao_cuda_workspace(ctx, c.used), c.used = 0;
    T *w_copy = kao_carve<T>(&c, w_copy_n), *dw_copy = kao_carve<T>(&c, w_n);
    T *x_copy = kao_carve<T>(&c, x_n), *dx_copy = kao_carve<T>(&c, dx_n);
    T *dy_nchw = kao_carve<T>(&c, dy_n);
    void *algo_ws = kao_carve<char>(&c, algo_bytes);
    const float one = 1.0f, zero = 0.0f;
    if (dy_n) to_conv_layout(dy_nchw, dout, s->batch, s->out_h, s->out_w, Co, 0, 0, true, ctx, op, s);

    const T *x = inp;
    if (x_n) {
        to_conv_layout(x_copy, inp, s->batch, s->in_h, s->in_w, Ci, df->eh, df->ew, df->nchw, ctx, op, s);
        x = x_copy;
    }
    use_math(plan, df, plan->filter.math, op);
    KAO_CUDNN_CHECK(cudnnConvolutionBackwardFilter(ctx->cudnn, &one, df->x, x, df->y, df->nchw ? dy_nchw : dout,
                                                   df->conv, plan->filter_algo, algo_ws, algo_bytes, &zero, df->w,
                                                   dw_copy),
                    op, "filter algo %d, %s; " SHAPE_FMT, (int)plan->filter_algo, df->nchw ? "NCHW" : "NHWC",
                    SHAPE_ARGS(s));
    KAO_LIBRARY_DONE(ctx, op, SHAPE_FMT, SHAPE_ARGS(s));
    add_weight_grad(dweight, dw_copy, df, s, ctx, op);

    if (dd) {
        layout_weight(w_copy, weight, dd, s, ctx, op);
        use_math(plan, dd, plan->data.math, op);
        KAO_CUDNN_CHECK(cudnnConvolutionBackwardData(ctx->cudnn, &one, dd->w, w_copy, dd->y, dd->nchw ? dy_nchw : dout,
                                                     dd->conv, plan->data_algo, algo_ws, algo_bytes, &zero, dd->x,
                                                     dx_n ? dx_copy : dinp),
                        op, "data algo %d, %s; " SHAPE_FMT, (int)plan->data_algo, dd->nchw ? "NCHW" : "NHWC",
                        SHAPE_ARGS(s));
        KAO_LIBRARY_DONE(ctx, op, SHAPE_FMT, SHAPE_ARGS(s));
        if (dx_n) from_conv_layout(dinp, dx_copy, s->batch, s->in_h, s->in_w, Ci, dd->eh, dd->ew, dd->nchw, ctx, op, s);
    }
}

void kao_conv2d_forward_gpu(float *out, const float *inp, const float *weight, const float *bias,
                            const kao_conv_shape *s, kao_cuda_ctx *ctx) {
    kao_t::conv2d_forward<float>(out, inp, weight, bias, s, ctx);
}

void kao_conv2d_backward_gpu(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                             const float *weight, const kao_conv_shape *s, kao_cuda_ctx *ctx) {
    kao_t::conv2d_backward<float>(dinp, dweight, dbias, dout, inp, weight, s, ctx);
}

#define INSTANTIATE(T)                                                                             \
    template void kao_t::conv2d_forward<T>(T *, const T *, const float *, const float *, const kao_conv_shape *, \
                                           kao_cuda_ctx *);                                                      \
    template void kao_t::conv2d_backward<T>(T *, float *, float *, const T *, const T *, const float *,          \
                                            const kao_conv_shape *, kao_cuda_ctx *);
INSTANTIATE(float)
INSTANTIATE(kao_bf16)
