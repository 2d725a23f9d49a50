/* ops.h — the op layer: every computation of the model, forward and backward, on the CPU.
 *
 * Conventions (as in llm.c):
 *  - Outputs first, then inputs, then sizes. Gradients are prefixed d. Parameter gradients
 *    ACCUMULATE (+=) so that shared or frozen parameters work; activation gradients (dinp)
 *    are OVERWRITTEN, and a NULL dinp skips that computation (the first layer needs none).
 *  - Activations are channels-last (NHWC): element (b, y, x, c) is at ((b·H + y)·W + x)·C + c,
 *    so a 1×1 convolution is one GEMM and depthwise loops vectorise over channels.
 *  - Weights keep PyTorch's layout (OIHW; Linear [out, in]) so the tensor table loads, saves and
 *    exports them unchanged; kernels repack internally where a layout helps.
 *  - Each op has a plain reference (_ref, straightforward loops, the oracle the tests use) and the
 *    fast version used by the model (OpenMP + BLAS). The CUDA backend implements the same names
 *    with a _gpu suffix in cuda/.
 *  - Threads: the fast ops split their work over OpenMP threads and call OpenBLAS from inside
 *    those regions single-threaded; they set openblas_set_num_threads(1) for the process (one
 *    thread pool, no oversubscription; see src/ops_internal.h). Call them from one thread.
 */
#ifndef KAO_OPS_H
#define KAO_OPS_H

#include <stdbool.h>
#include <stddef.h>

typedef enum { KAO_ACT_NONE = 0, KAO_ACT_SILU = 1 } kao_act;

/* Geometry of one convolution with TF "same" padding (docs/architecture.md, 'Padding'):
 * out = ceil(in / stride), total pad = max((out-1)·stride + kernel - in, 0), the odd extra pixel
 * after (bottom/right). */
typedef struct {
    int batch;
    int in_h, in_w, in_c;
    int out_h, out_w, out_c;
    int kernel, stride;
    int pad_top, pad_left;
    bool depthwise; /* groups = in_c = out_c, weight [C, 1, k, k] */
} kao_conv_shape;

void kao_conv_shape_init(kao_conv_shape *s, int batch, int in_h, int in_w, int in_c, int out_c,
                         int kernel, int stride, bool depthwise);

/* Scratch memory for repacked weights and per-thread partial weight gradients; grows on demand,
 * reused across calls. One workspace per thread of control (not shared between concurrent calls). */
typedef struct {
    float *data;
    size_t capacity; /* floats */
} kao_workspace;
float *kao_workspace_get(kao_workspace *ws, size_t floats);
void kao_workspace_free(kao_workspace *ws);

/* ---- convolution (groups = 1): 1×1 and k×k ---------------------------------------------- */
/* out (B, Ho, Wo, Co); inp (B, H, W, Ci); weight (Co, Ci, k, k); bias (Co) or NULL */
void kao_conv2d_forward(float *out, const float *inp, const float *weight, const float *bias,
                        const kao_conv_shape *s, kao_workspace *ws);
void kao_conv2d_forward_ref(float *out, const float *inp, const float *weight, const float *bias,
                            const kao_conv_shape *s);
/* dinp (B, H, W, Ci) overwritten or NULL; dweight (Co, Ci, k, k) +=; dbias (Co) += or NULL */
void kao_conv2d_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                         const float *inp, const float *weight, const kao_conv_shape *s,
                         kao_workspace *ws);
void kao_conv2d_backward_ref(float *dinp, float *dweight, float *dbias, const float *dout,
                             const float *inp, const float *weight, const kao_conv_shape *s);

/* Fused epilogue of the fast convolutions, per output channel c:
 *   out = act(conv(inp)·scale[c] + shift[c])    (scale NULL: 1, shift NULL: 0; a bias is a shift)
 * and, when sums is not NULL, sums (2, Co) = Σ y and Σ y² of y = conv(inp) over all pixels, before
 * scale and shift: what kao_batchnorm_forward_train_sums takes. Inference folds eval BatchNorm
 * (+SiLU) into the convolution (kao_batchnorm_fold gives scale and shift); training gathers the BN
 * statistics while each output tile is still in registers. Either saves a pass over the output.
 * (The sums are one-pass Σy, Σy² in double: exact enough unless |mean| exceeds ~1e4 std.) */
typedef struct {
    const float *scale, *shift; /* (Co) or NULL */
    kao_act act;
    double *sums;               /* (2, Co) overwritten, or NULL */
} kao_conv_epilogue;
void kao_conv2d_forward_fused(float *out, const float *inp, const float *weight, const kao_conv_epilogue *ep,
                              const kao_conv_shape *s, kao_workspace *ws);

/* ---- depthwise convolution: weight (C, 1, k, k), no bias -------------------------------- */
void kao_dwconv2d_forward(float *out, const float *inp, const float *weight, const kao_conv_shape *s);
void kao_dwconv2d_forward_ref(float *out, const float *inp, const float *weight, const kao_conv_shape *s);
void kao_dwconv2d_forward_fused(float *out, const float *inp, const float *weight, const kao_conv_epilogue *ep,
                                const kao_conv_shape *s);
void kao_dwconv2d_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                           const float *weight, const kao_conv_shape *s);
void kao_dwconv2d_backward_ref(float *dinp, float *dweight, const float *dout, const float *inp,
                               const float *weight, const kao_conv_shape *s);

/* ---- BatchNorm over M = B·H·W rows of C channels, with an optional fused SiLU ------------ */
/* Eval: running statistics. out may equal inp. */
void kao_batchnorm_forward_eval(float *out, const float *inp, const float *gamma, const float *beta,
                                const float *running_mean, const float *running_var, float eps,
                                kao_act act, size_t M, int C);
/* Train: batch statistics (biased variance) normalise; save_mean/save_rstd (C) keep them for
 * backward; running_mean/var (C) are updated as PyTorch does (momentum, unbiased variance),
 * unless they are NULL (frozen BN statistics). out must not alias inp. */
void kao_batchnorm_forward_train(float *out, float *save_mean, float *save_rstd, const float *inp,
                                 const float *gamma, const float *beta, float *running_mean,
                                 float *running_var, float eps, float momentum, kao_act act,
                                 size_t M, int C);
/* The same from sums (2, C) = Σ x, Σ x² over the M rows, as a fused convolution gathers them. */
void kao_batchnorm_forward_train_sums(float *out, float *save_mean, float *save_rstd, const float *inp,
                                      const double *sums, const float *gamma, const float *beta,
                                      float *running_mean, float *running_var, float eps, float momentum,
                                      kao_act act, size_t M, int C);
/* Eval BatchNorm as a per-channel affine: scale = γ/√(var + eps), shift = β - mean·scale (C each). */
void kao_batchnorm_fold(float *scale, float *shift, const float *gamma, const float *beta,
                        const float *running_mean, const float *running_var, float eps, int C);
/* Training needs M >= 2 (as in PyTorch). The _ref twins compute in double: the tests' oracle. */
void kao_batchnorm_forward_eval_ref(float *out, const float *inp, const float *gamma, const float *beta,
                                    const float *running_mean, const float *running_var, float eps,
                                    kao_act act, size_t M, int C);
void kao_batchnorm_forward_train_ref(float *out, float *save_mean, float *save_rstd, const float *inp,
                                     const float *gamma, const float *beta, float *running_mean,
                                     float *running_var, float eps, float momentum, kao_act act,
                                     size_t M, int C);
/* dout is the gradient of the (activated) output; inp is the BN input. dinp may alias dout. */
void kao_batchnorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                            const float *inp, const float *save_mean, const float *save_rstd,
                            const float *gamma, const float *beta, kao_act act, size_t M, int C);
/* Backward through BN with fixed statistics (frozen BN or eval-mode fine-tuning). */
void kao_batchnorm_backward_frozen(float *dinp, float *dgamma, float *dbeta, const float *dout,
                                   const float *inp, const float *running_mean,
                                   const float *running_var, const float *gamma, const float *beta,
                                   float eps, kao_act act, size_t M, int C);
void kao_batchnorm_backward_ref(float *dinp, float *dgamma, float *dbeta, const float *dout,
                                const float *inp, const float *save_mean, const float *save_rstd,
                                const float *gamma, const float *beta, kao_act act, size_t M, int C);
void kao_batchnorm_backward_frozen_ref(float *dinp, float *dgamma, float *dbeta, const float *dout,
                                       const float *inp, const float *running_mean,
                                       const float *running_var, const float *gamma, const float *beta,
                                       float eps, kao_act act, size_t M, int C);

/* ---- activations ------------------------------------------------------------------------ */
void kao_silu_forward(float *out, const float *inp, size_t n);
void kao_silu_backward(float *dinp, const float *dout, const float *inp, size_t n);
void kao_silu_forward_ref(float *out, const float *inp, size_t n);
void kao_silu_backward_ref(float *dinp, const float *dout, const float *inp, size_t n);

/* ---- squeeze-excite: out = inp · sigmoid(W_e · silu(W_r · mean_hw(inp) + b_r) + b_e) ------ */
/* inp/out (B, HW, C); save_pooled (B, C); save_hidden (B, R) pre-activation; save_gate (B, C).
 * w_reduce (R, C, 1, 1), b_reduce (R), w_expand (C, R, 1, 1), b_expand (C). out may equal inp. */
void kao_se_forward(float *out, float *save_pooled, float *save_hidden, float *save_gate,
                    const float *inp, const float *w_reduce, const float *b_reduce,
                    const float *w_expand, const float *b_expand, int B, int HW, int C, int R);
void kao_se_backward(float *dinp, float *dw_reduce, float *db_reduce, float *dw_expand,
                     float *db_expand, const float *dout, const float *inp, const float *save_pooled,
                     const float *save_hidden, const float *save_gate, const float *w_reduce,
                     const float *w_expand, int B, int HW, int C, int R);
/* Backward needs the forward's inp (an in-place forward is for inference); dinp may alias dout. */
void kao_se_forward_ref(float *out, float *save_pooled, float *save_hidden, float *save_gate,
                        const float *inp, const float *w_reduce, const float *b_reduce,
                        const float *w_expand, const float *b_expand, int B, int HW, int C, int R);
void kao_se_backward_ref(float *dinp, float *dw_reduce, float *db_reduce, float *dw_expand,
                         float *db_expand, const float *dout, const float *inp, const float *save_pooled,
                         const float *save_hidden, const float *save_gate, const float *w_reduce,
                         const float *w_expand, int B, int HW, int C, int R);

/* ---- pooling, linear, residual, drop-path ---------------------------------------------- */
void kao_avgpool_forward(float *out, const float *inp, int B, int HW, int C);            /* (B,C) ← (B,HW,C) */
void kao_avgpool_backward(float *dinp, const float *dout, int B, int HW, int C);
/* out (B, n_out) = inp (B, n_in) · weight (n_out, n_in)ᵀ + bias (n_out); bias may be NULL. */
void kao_linear_forward(float *out, const float *inp, const float *weight, const float *bias,
                        int B, int n_in, int n_out);
void kao_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                         const float *inp, const float *weight, int B, int n_in, int n_out);
void kao_linear_forward_ref(float *out, const float *inp, const float *weight, const float *bias,
                            int B, int n_in, int n_out);
void kao_linear_backward_ref(float *dinp, float *dweight, float *dbias, const float *dout,
                             const float *inp, const float *weight, int B, int n_in, int n_out);
/* out += x (residual). */
void kao_add_inplace(float *out, const float *x, size_t n);
/* Stochastic depth: row b of x (B rows of n) is scaled by mask[b], which is 0 or 1/keep. */
void kao_scale_rows(float *x, const float *mask, int B, size_t n);

#endif
