/* cudnn.cpp — the CUDA emulator's cuDNN: the handle, 4-d tensor, filter and 2-d convolution
 * descriptors, the legacy (v7) algorithm queries and the three convolution directions kao uses,
 * as reference loops on host memory (emu_runtime.h).
 *
 * Tensors are NCHW or NHWC, fp32 or bf16; a filter (k, c, r, s) in format NCHW is laid out KCRS,
 * in NHWC KRSC. Cross-correlation, groups 1, any padding, stride and dilation, fp32 compute. Each
 * output element is accumulated in double and rounded once to the tensor's type, whatever the
 * algorithm. fp32 operands are first rounded to TF32 unless the math type is CUDNN_FMA_MATH: the
 * default and tensor-op math types allow TF32 on this GPU generation, so only FMA math promises
 * true fp32. Calls are validated as cuDNN does (descriptors that disagree: BAD_PARAM;
 * an algorithm not offered: NOT_SUPPORTED; too small a workspace: BAD_PARAM); memory that is not
 * device memory is a fault (kao_emu::fail). The computation runs in stream order, queued, on
 * copies of the descriptors and scalars.
 *
 * The algorithms each direction offers are the emulator's own choice, made to exercise kao's
 * filtering (listed at OFFERS). The workspace an algorithm asks for is overwritten with NaN bytes
 * when it runs, so an operand that kao carved over it shows in the results. */
#include <cuda_bf16.h>
#include <cudnn.h>

#include <stdlib.h>
#include <string.h>

#include <vector>

#include "emu_runtime.h"

/* A tensor's (n, c, h, w) or a filter's (k, c, r, s). */
struct dims4 {
    bool set;
    cudnnTensorFormat_t format;
    cudnnDataType_t dtype;
    int n, c, h, w;
};

struct cudnnContext { cudaStream_t stream; };
struct cudnnTensorStruct { dims4 d; };
struct cudnnFilterStruct { dims4 d; };
struct cudnnConvolutionStruct {
    bool set;
    int pad_h, pad_w, u, v, dil_h, dil_w;
    cudnnMathType_t math;
};

namespace {

size_t count(const dims4 &d) { return (size_t)d.n * d.c * d.h * d.w; }
size_t bytes(const dims4 &d) { return count(d) * (d.dtype == CUDNN_DATA_FLOAT ? 4 : 2); }

/* Element (a, b, y, x) in the canonical NCHW order the loops use. */
size_t canon(const dims4 &d, int a, int b, int y, int x) { return (((size_t)a * d.c + b) * d.h + y) * d.w + x; }

/* f(index in memory, canonical index) for every element of d. */
template <class F> void each_element(const dims4 &d, F f) {
    for (int a = 0; a < d.n; a++)
        for (int b = 0; b < d.c; b++)
            for (int y = 0; y < d.h; y++)
                for (int x = 0; x < d.w; x++)
                    f(d.format == CUDNN_TENSOR_NCHW ? canon(d, a, b, y, x)
                                                    : (((size_t)a * d.h + y) * d.w + x) * d.c + b,
                      canon(d, a, b, y, x));
}

cudnnStatus_t set4(dims4 *d, cudnnTensorFormat_t format, cudnnDataType_t dtype, int n, int c, int h, int w) {
    if (n < 1 || c < 1 || h < 1 || w < 1) return CUDNN_STATUS_BAD_PARAM;
    if (format != CUDNN_TENSOR_NCHW && format != CUDNN_TENSOR_NHWC) return CUDNN_STATUS_NOT_SUPPORTED;
    if (dtype != CUDNN_DATA_FLOAT && dtype != CUDNN_DATA_BFLOAT16) return CUDNN_STATUS_NOT_SUPPORTED;
    *d = dims4{true, format, dtype, n, c, h, w};
    return CUDNN_STATUS_SUCCESS;
}

/* d's elements in canonical order, as doubles. */
std::vector<double> load(const dims4 &d, const void *p) {
    std::vector<double> v(count(d));
    each_element(d, [&](size_t i, size_t k) {
        v[k] = d.dtype == CUDNN_DATA_FLOAT ? static_cast<const float *>(p)[i]
                                           : __bfloat162float(static_cast<const __nv_bfloat16 *>(p)[i]);
    });
    return v;
}

/* p = alpha·v + beta·p, rounded once (bf16 straight from double); beta = 0: p is not read. */
void store(const dims4 &d, void *p, const std::vector<double> &v, double alpha, double beta) {
    std::vector<double> old = beta != 0.0 ? load(d, p) : std::vector<double>(count(d), 0.0);
    each_element(d, [&](size_t i, size_t k) {
        double r = alpha * v[k] + (beta != 0.0 ? beta * old[k] : 0.0);
        if (d.dtype == CUDNN_DATA_FLOAT) static_cast<float *>(p)[i] = (float)r;
        else static_cast<__nv_bfloat16 *>(p)[i] = __double2bfloat16(r);
    });
}

/* 1 + (in + 2·pad − (dil·(filter − 1) + 1)) / stride, or 0 where the filter does not fit. */
int out_dim(int in, int pad, int filter, int dil, int stride) {
    int room = in + 2 * pad - (dil * (filter - 1) + 1);
    return room < 0 ? 0 : 1 + room / stride;
}

cudnnStatus_t output_dims(const cudnnConvolutionStruct *conv, const cudnnTensorStruct *x, const cudnnFilterStruct *w,
                          dims4 *y) {
    if (!conv || !x || !w || !conv->set || !x->d.set || !w->d.set || x->d.c != w->d.c) return CUDNN_STATUS_BAD_PARAM;
    *y = x->d;
    y->c = w->d.n;
    y->h = out_dim(x->d.h, conv->pad_h, w->d.h, conv->dil_h, conv->u);
    y->w = out_dim(x->d.w, conv->pad_w, w->d.w, conv->dil_w, conv->v);
    return y->h > 0 && y->w > 0 ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_BAD_PARAM;
}

/* One convolution's settings, copied from descriptors that agree: operands x, w, y. */
struct geometry {
    dims4 d[3];
    cudnnConvolutionStruct conv;
};

cudnnStatus_t make_geometry(const cudnnTensorStruct *x, const cudnnFilterStruct *w, const cudnnConvolutionStruct *conv,
                            const cudnnTensorStruct *y, geometry *g) {
    dims4 want;
    cudnnStatus_t s = output_dims(conv, x, w, &want);
    if (s != CUDNN_STATUS_SUCCESS) return s;
    if (!y || !y->d.set) return CUDNN_STATUS_BAD_PARAM;
    if (x->d.dtype != w->d.dtype || x->d.dtype != y->d.dtype) return CUDNN_STATUS_BAD_PARAM;
    /* Mixed layouts exist in cuDNN for some algorithms only; none here. */
    if (x->d.format != w->d.format || x->d.format != y->d.format) return CUDNN_STATUS_NOT_SUPPORTED;
    if (y->d.n != want.n || y->d.c != want.c || y->d.h != want.h || y->d.w != want.w) return CUDNN_STATUS_BAD_PARAM;
    *g = geometry{{x->d, w->d, y->d}, *conv};
    return CUDNN_STATUS_SUCCESS;
}

/* f(i) for every product of the cross-correlation, i = its x, w and y canonical indices: all three
 * directions are sums of these products (into y, x or w). The loops run (n, k, c, r, s, p, q) with
 * each operand's offset built up as they go: the emulator spends most of its time here. */
template <class F> void each_product(const geometry &g, F f) {
    const dims4 &x = g.d[0], &w = g.d[1], &y = g.d[2];
    const cudnnConvolutionStruct &cv = g.conv;
    for (int n = 0; n < y.n; n++)
        for (int k = 0; k < y.c; k++)
            for (int c = 0; c < x.c; c++) {
                size_t x_plane = canon(x, n, c, 0, 0), y_plane = canon(y, n, k, 0, 0);
                for (int r = 0; r < w.h; r++)
                    for (int s = 0; s < w.w; s++) {
                        size_t i[3];
                        i[1] = canon(w, k, c, r, s);
                        for (int p = 0; p < y.h; p++) {
                            int ih = p * cv.u - cv.pad_h + r * cv.dil_h;
                            if (ih < 0 || ih >= x.h) continue; /* padding */
                            for (int q = 0; q < y.w; q++) {
                                int iw = q * cv.v - cv.pad_w + s * cv.dil_w;
                                if (iw < 0 || iw >= x.w) continue;
                                i[0] = x_plane + (size_t)ih * x.w + iw;
                                i[2] = y_plane + (size_t)p * y.w + q;
                                f(i);
                            }
                        }
                    }
            }
}

/* A new T (a handle or descriptor) in *p. */
template <class T> cudnnStatus_t create(T **p, T init) {
    if (!p) return CUDNN_STATUS_BAD_PARAM;
    *p = new T(init);
    return CUDNN_STATUS_SUCCESS;
}

/* ---- the algorithms offered ----
 * For each direction, best first (the _v7 heuristics and Find* give the same list): one
 * non-deterministic algorithm, one NOT_SUPPORTED (though marked deterministic), one deterministic
 * that needs 64 bytes of workspace per output channel (K, the filter's) and one deterministic
 * that needs none. With KAO_EMU_CUDNN_NHWC_NONDETERMINISTIC=1, NHWC convolutions are offered only
 * the first two, so kao must fall back to NCHW. */

enum direction { FORWARD, BACKWARD_DATA, BACKWARD_FILTER };
const int WRITTEN[3] = {2, 0, 1}; /* the operand (x 0, w 1, y 2) each direction writes */
const char *const NAMES[3][3] = {{"x", "w", "y"}, {"dx", "w", "dy"}, {"x", "dw", "dy"}};

struct offer {
    int algo;
    cudnnStatus_t status;
    cudnnDeterminism_t determinism;
    bool per_channel_workspace; /* 64 bytes per output channel, else none */
};

const cudnnDeterminism_t ND = CUDNN_NON_DETERMINISTIC, DET = CUDNN_DETERMINISTIC;
const cudnnStatus_t OK = CUDNN_STATUS_SUCCESS, NO = CUDNN_STATUS_NOT_SUPPORTED;
const offer OFFERS[3][4] = {
    {{CUDNN_CONVOLUTION_FWD_ALGO_FFT, OK, ND, false},
     {CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD, NO, DET, false},
     {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, OK, DET, true},
     {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, OK, DET, false}},
    {{CUDNN_CONVOLUTION_BWD_DATA_ALGO_0, OK, ND, false},
     {CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD, NO, DET, false},
     {CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, OK, DET, true},
     {CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING, OK, DET, false}},
    {{CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3, OK, ND, false},
     {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD, NO, DET, false},
     {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, OK, DET, true},
     {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING, OK, DET, false}},
};

bool offered(const offer &o, const geometry &g) {
    const char *env = getenv("KAO_EMU_CUDNN_NHWC_NONDETERMINISTIC");
    bool nhwc_nondeterministic = env && strcmp(env, "1") == 0 && g.d[0].format == CUDNN_TENSOR_NHWC;
    return !(nhwc_nondeterministic && o.status == OK && o.determinism == DET);
}

size_t workspace(const offer &o, const geometry &g) { return o.per_channel_workspace ? 64 * (size_t)g.d[1].n : 0; }

/* The runnable algorithm algo for dir and this geometry, or null. */
const offer *find(direction dir, int algo, const geometry &g) {
    for (const offer &o : OFFERS[dir])
        if (o.algo == algo && o.status == OK && offered(o, g)) return &o;
    return nullptr;
}

/* The _v7 and Find* answer (Perf: the direction's perf struct). */
template <class Perf>
cudnnStatus_t rank(direction dir, cudnnHandle_t h, const cudnnTensorStruct *x, const cudnnFilterStruct *w,
                   const cudnnConvolutionStruct *conv, const cudnnTensorStruct *y, int requested, int *returned,
                   Perf *perf) {
    if (!h || requested < 1 || !returned || !perf) return CUDNN_STATUS_BAD_PARAM;
    geometry g;
    cudnnStatus_t s = make_geometry(x, w, conv, y, &g);
    if (s != CUDNN_STATUS_SUCCESS) return s;
    int n = 0;
    for (const offer &o : OFFERS[dir]) {
        if (n == requested) break;
        if (!offered(o, g)) continue;
        Perf p{};
        p.algo = static_cast<decltype(p.algo)>(o.algo);
        p.status = o.status;
        p.time = 0.5f * (float)(n + 1); /* best first */
        p.memory = o.status == OK ? workspace(o, g) : 0;
        p.determinism = o.determinism;
        p.mathType = conv->math;
        perf[n++] = p;
    }
    *returned = n;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t workspace_size(direction dir, cudnnHandle_t h, const cudnnTensorStruct *x, const cudnnFilterStruct *w,
                             const cudnnConvolutionStruct *conv, const cudnnTensorStruct *y, int algo, size_t *size) {
    if (!h || !size) return CUDNN_STATUS_BAD_PARAM;
    geometry g;
    cudnnStatus_t s = make_geometry(x, w, conv, y, &g);
    if (s != CUDNN_STATUS_SUCCESS) return s;
    const offer *o = find(dir, algo, g);
    if (!o) return CUDNN_STATUS_NOT_SUPPORTED;
    *size = workspace(*o, g);
    return CUDNN_STATUS_SUCCESS;
}

/* One direction's call on the convolution's input x, filter w and output y (memory x, w, y). */
cudnnStatus_t execute(const char *fn, direction dir, cudnnHandle_t h, const void *alpha, const void *beta,
                      const cudnnTensorStruct *xd, const void *x, const cudnnFilterStruct *wd, const void *w,
                      const cudnnTensorStruct *yd, const void *y, const cudnnConvolutionStruct *conv, int algo,
                      void *ws, size_t ws_bytes) {
    if (!h || !alpha || !beta) return CUDNN_STATUS_BAD_PARAM;
    if (!h->stream) /* on a GPU: the legacy default stream, unordered with a non-blocking one */
        kao_emu::fail("%s: the handle has no stream (cudnnSetStream)", fn);
    geometry g;
    cudnnStatus_t s = make_geometry(xd, wd, conv, yd, &g);
    if (s != CUDNN_STATUS_SUCCESS) return s;
    const offer *o = find(dir, algo, g);
    if (!o) return CUDNN_STATUS_NOT_SUPPORTED;
    size_t need = workspace(*o, g);
    if (ws_bytes < need) return CUDNN_STATUS_BAD_PARAM;
    void *mem[3] = {const_cast<void *>(x), const_cast<void *>(w), const_cast<void *>(y)};
    for (int i = 0; i < 3; i++) {
        const dims4 &d = g.d[i];
        if (!kao_emu::is_device(mem[i], bytes(d)))
            kao_emu::fail("%s: %s (%s %s, %d x %d x %d x %d) at %p is not device memory covering %zu bytes", fn,
                          NAMES[dir][i], d.format == CUDNN_TENSOR_NCHW ? "NCHW" : "NHWC",
                          d.dtype == CUDNN_DATA_FLOAT ? "fp32" : "bf16", d.n, d.c, d.h, d.w, mem[i], bytes(d));
    }
    if (ws_bytes > 0 && !kao_emu::is_device(ws, ws_bytes))
        kao_emu::fail("%s: workspace at %p is not device memory covering the %zu bytes passed", fn, ws, ws_bytes);
    /* Host scalars of the compute type (float for fp32 and bf16 data), read now. */
    double a = *static_cast<const float *>(alpha), b = *static_cast<const float *>(beta);
    int out = WRITTEN[dir], in1 = (out + 1) % 3, in2 = (out + 2) % 3;
    bool tf32 = conv->math != CUDNN_FMA_MATH && g.d[in1].dtype == CUDNN_DATA_FLOAT;
    kao_emu::enqueue([=]() {
        if (need) memset(ws, 0xff, need); /* the algorithm's scratch: NaN in fp32 and bf16 */
        std::vector<double> u = load(g.d[in1], mem[in1]), v = load(g.d[in2], mem[in2]), sum(count(g.d[out]));
        if (tf32)
            for (auto *operand : {&u, &v})
                for (double &e : *operand) e = kao_emu::round_tf32((float)e);
        each_product(g, [&](const size_t *i) { sum[i[out]] += u[i[in1]] * v[i[in2]]; });
        store(g.d[out], mem[out], sum, a, b);
    });
    return CUDNN_STATUS_SUCCESS;
}

} // namespace

/* Shorter names for the descriptor types in the prototypes below. */
typedef cudnnTensorDescriptor_t tensor_t;
typedef cudnnFilterDescriptor_t filter_t;
typedef cudnnConvolutionDescriptor_t conv_t;

extern "C" {

size_t cudnnGetVersion(void) { return CUDNN_VERSION; }

const char *cudnnGetErrorString(cudnnStatus_t status) {
#define NAME(s) case CUDNN_STATUS_##s: return "CUDNN_STATUS_" #s;
    switch (status) { /* every value (-Wswitch checks), the deprecated aliases sharing theirs */
        NAME(SUCCESS) NAME(NOT_INITIALIZED) NAME(SUBLIBRARY_VERSION_MISMATCH) NAME(SERIALIZATION_VERSION_MISMATCH)
        NAME(DEPRECATED) NAME(LICENSE_ERROR) NAME(RUNTIME_IN_PROGRESS) NAME(RUNTIME_FP_OVERFLOW)
        NAME(SUBLIBRARY_LOADING_FAILED) NAME(BAD_PARAM) NAME(INVALID_VALUE) NAME(BAD_PARAM_NULL_POINTER)
        NAME(BAD_PARAM_MISALIGNED_POINTER) NAME(BAD_PARAM_NOT_FINALIZED) NAME(BAD_PARAM_OUT_OF_BOUND)
        NAME(BAD_PARAM_SIZE_INSUFFICIENT) NAME(BAD_PARAM_STREAM_MISMATCH) NAME(BAD_PARAM_SHAPE_MISMATCH)
        NAME(BAD_PARAM_DUPLICATED_ENTRIES) NAME(BAD_PARAM_ATTRIBUTE_TYPE) NAME(BAD_PARAM_CUDA_GRAPH_MISMATCH)
        NAME(BAD_PARAM_DESCRIPTOR_TYPE) NAME(NOT_SUPPORTED) NAME(NOT_SUPPORTED_GRAPH_PATTERN)
        NAME(NOT_SUPPORTED_SHAPE) NAME(NOT_SUPPORTED_DATA_TYPE) NAME(NOT_SUPPORTED_LAYOUT)
        NAME(NOT_SUPPORTED_INCOMPATIBLE_CUDA_DRIVER) NAME(NOT_SUPPORTED_INCOMPATIBLE_CUDART)
        NAME(NOT_SUPPORTED_ARCH_MISMATCH) NAME(NOT_SUPPORTED_RUNTIME_PREREQUISITE_MISSING)
        NAME(NOT_SUPPORTED_SUBLIBRARY_UNAVAILABLE) NAME(NOT_SUPPORTED_SHARED_MEMORY_INSUFFICIENT)
        NAME(NOT_SUPPORTED_PADDING) NAME(NOT_SUPPORTED_BAD_LAUNCH_PARAM) NAME(NOT_SUPPORTED_CUDA_GRAPH_NATIVE_API)
        NAME(NOT_SUPPORTED_INVALID_DYNAMIC_SHAPE) NAME(INTERNAL_ERROR) NAME(INTERNAL_ERROR_COMPILATION_FAILED)
        NAME(INTERNAL_ERROR_UNEXPECTED_VALUE) NAME(INTERNAL_ERROR_HOST_ALLOCATION_FAILED)
        NAME(INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED) NAME(INTERNAL_ERROR_BAD_LAUNCH_PARAM)
        NAME(INTERNAL_ERROR_TEXTURE_CREATION_FAILED) NAME(EXECUTION_FAILED) NAME(EXECUTION_FAILED_CUDA_DRIVER)
        NAME(EXECUTION_FAILED_CUBLAS) NAME(EXECUTION_FAILED_CUDART) NAME(EXECUTION_FAILED_CURAND)
    }
#undef NAME
    return "CUDNN_STATUS_UNKNOWN"; /* not a value of this header's cudnnStatus_t */
}

/* ---- handle and descriptors (destroying null is a no-op) ---- */

cudnnStatus_t cudnnCreate(cudnnHandle_t *h) { return create(h, cudnnContext{nullptr}); }
cudnnStatus_t cudnnDestroy(cudnnHandle_t h) { delete h; return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnSetStream(cudnnHandle_t h, cudaStream_t stream) {
    if (!h) return CUDNN_STATUS_BAD_PARAM;
    h->stream = stream; /* one queue for every stream (emu_runtime.h) */
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateTensorDescriptor(tensor_t *t) { return create(t, cudnnTensorStruct{}); }
cudnnStatus_t cudnnDestroyTensorDescriptor(tensor_t t) { delete t; return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnSetTensor4dDescriptor(tensor_t t, cudnnTensorFormat_t format, cudnnDataType_t dtype, int n, int c,
                                         int h, int w) {
    return t ? set4(&t->d, format, dtype, n, c, h, w) : CUDNN_STATUS_BAD_PARAM;
}

cudnnStatus_t cudnnCreateFilterDescriptor(filter_t *f) { return create(f, cudnnFilterStruct{}); }
cudnnStatus_t cudnnDestroyFilterDescriptor(filter_t f) { delete f; return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnSetFilter4dDescriptor(filter_t f, cudnnDataType_t dtype, cudnnTensorFormat_t format, int k, int c,
                                         int h, int w) {
    return f ? set4(&f->d, format, dtype, k, c, h, w) : CUDNN_STATUS_BAD_PARAM;
}

cudnnStatus_t cudnnCreateConvolutionDescriptor(conv_t *c) {
    return create(c, cudnnConvolutionStruct{false, 0, 0, 1, 1, 1, 1, CUDNN_DEFAULT_MATH});
}
cudnnStatus_t cudnnDestroyConvolutionDescriptor(conv_t c) { delete c; return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnSetConvolution2dDescriptor(conv_t c, int pad_h, int pad_w, int u, int v, int dil_h, int dil_w,
                                              cudnnConvolutionMode_t mode, cudnnDataType_t compute) {
    if (!c || pad_h < 0 || pad_w < 0 || u < 1 || v < 1 || dil_h < 1 || dil_w < 1) return CUDNN_STATUS_BAD_PARAM;
    /* True convolution (a flipped filter) and other compute types are not emulated. */
    if (mode != CUDNN_CROSS_CORRELATION || compute != CUDNN_DATA_FLOAT) return CUDNN_STATUS_NOT_SUPPORTED;
    *c = cudnnConvolutionStruct{true, pad_h, pad_w, u, v, dil_h, dil_w, c->math};
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolutionMathType(conv_t c, cudnnMathType_t math) {
    if (!c || (math != CUDNN_DEFAULT_MATH && math != CUDNN_TENSOR_OP_MATH &&
               math != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION && math != CUDNN_FMA_MATH))
        return CUDNN_STATUS_BAD_PARAM;
    c->math = math; /* reported back by the queries; all but FMA math round fp32 operands to TF32 */
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolution2dForwardOutputDim(conv_t c, tensor_t x, filter_t w, int *n, int *k, int *h,
                                                    int *wo) {
    dims4 y;
    if (!n || !k || !h || !wo) return CUDNN_STATUS_BAD_PARAM;
    cudnnStatus_t s = output_dims(c, x, w, &y);
    if (s == CUDNN_STATUS_SUCCESS) *n = y.n, *k = y.c, *h = y.h, *wo = y.w;
    return s;
}

/* ---- algorithms: heuristics and Find* give the same list ---- */

cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(cudnnHandle_t h, tensor_t x, filter_t w, conv_t c, tensor_t y,
                                                     int requested, int *returned,
                                                     cudnnConvolutionFwdAlgoPerf_t *perf) {
    return rank(FORWARD, h, x, w, c, y, requested, returned, perf);
}
cudnnStatus_t cudnnFindConvolutionForwardAlgorithm(cudnnHandle_t h, tensor_t x, filter_t w, conv_t c, tensor_t y,
                                                   int requested, int *returned, cudnnConvolutionFwdAlgoPerf_t *perf) {
    return rank(FORWARD, h, x, w, c, y, requested, returned, perf);
}
cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(cudnnHandle_t h, filter_t w, tensor_t dy, conv_t c,
                                                          tensor_t dx, int requested, int *returned,
                                                          cudnnConvolutionBwdDataAlgoPerf_t *perf) {
    return rank(BACKWARD_DATA, h, dx, w, c, dy, requested, returned, perf);
}
cudnnStatus_t cudnnFindConvolutionBackwardDataAlgorithm(cudnnHandle_t h, filter_t w, tensor_t dy, conv_t c,
                                                        tensor_t dx, int requested, int *returned,
                                                        cudnnConvolutionBwdDataAlgoPerf_t *perf) {
    return rank(BACKWARD_DATA, h, dx, w, c, dy, requested, returned, perf);
}
cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithm_v7(cudnnHandle_t h, tensor_t x, tensor_t dy, conv_t c,
                                                            filter_t dw, int requested, int *returned,
                                                            cudnnConvolutionBwdFilterAlgoPerf_t *perf) {
    return rank(BACKWARD_FILTER, h, x, dw, c, dy, requested, returned, perf);
}
cudnnStatus_t cudnnFindConvolutionBackwardFilterAlgorithm(cudnnHandle_t h, tensor_t x, tensor_t dy, conv_t c,
                                                          filter_t dw, int requested, int *returned,
                                                          cudnnConvolutionBwdFilterAlgoPerf_t *perf) {
    return rank(BACKWARD_FILTER, h, x, dw, c, dy, requested, returned, perf);
}

cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(cudnnHandle_t h, tensor_t x, filter_t w, conv_t c, tensor_t y,
                                                      cudnnConvolutionFwdAlgo_t algo, size_t *size) {
    return workspace_size(FORWARD, h, x, w, c, y, algo, size);
}
cudnnStatus_t cudnnGetConvolutionBackwardDataWorkspaceSize(cudnnHandle_t h, filter_t w, tensor_t dy, conv_t c,
                                                           tensor_t dx, cudnnConvolutionBwdDataAlgo_t algo,
                                                           size_t *size) {
    return workspace_size(BACKWARD_DATA, h, dx, w, c, dy, algo, size);
}
cudnnStatus_t cudnnGetConvolutionBackwardFilterWorkspaceSize(cudnnHandle_t h, tensor_t x, tensor_t dy, conv_t c,
                                                             filter_t dw, cudnnConvolutionBwdFilterAlgo_t algo,
                                                             size_t *size) {
    return workspace_size(BACKWARD_FILTER, h, x, dw, c, dy, algo, size);
}

/* ---- the convolutions ---- */

cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t h, const void *alpha, tensor_t xd, const void *x, filter_t wd,
                                      const void *w, conv_t c, cudnnConvolutionFwdAlgo_t algo, void *ws,
                                      size_t ws_bytes, const void *beta, tensor_t yd, void *y) {
    return execute("cudnnConvolutionForward", FORWARD, h, alpha, beta, xd, x, wd, w, yd, y, c, algo, ws, ws_bytes);
}
cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t h, const void *alpha, filter_t wd, const void *w,
                                           tensor_t dyd, const void *dy, conv_t c, cudnnConvolutionBwdDataAlgo_t algo,
                                           void *ws, size_t ws_bytes, const void *beta, tensor_t dxd, void *dx) {
    return execute("cudnnConvolutionBackwardData", BACKWARD_DATA, h, alpha, beta, dxd, dx, wd, w, dyd, dy, c, algo,
                   ws, ws_bytes);
}
cudnnStatus_t cudnnConvolutionBackwardFilter(cudnnHandle_t h, const void *alpha, tensor_t xd, const void *x,
                                             tensor_t dyd, const void *dy, conv_t c,
                                             cudnnConvolutionBwdFilterAlgo_t algo, void *ws, size_t ws_bytes,
                                             const void *beta, filter_t dwd, void *dw) {
    return execute("cudnnConvolutionBackwardFilter", BACKWARD_FILTER, h, alpha, beta, xd, x, dwd, dw, dyd, dy, c,
                   algo, ws, ws_bytes);
}

} // extern "C"
