/* cuda.h — the CUDA backend: a device context, device memory, and the _gpu twin of every op.
 *
 * Each op here is the CUDA twin of the CPU op of the same name without the _gpu suffix (ops.h,
 * arcface.h, optim.h): the same argument order (outputs, inputs, sizes), the same layouts (NHWC
 * activations, OIHW weights, Linear [out, in]) and the same rules — parameter gradients
 * ACCUMULATE (+=), activation gradients (dinp) are OVERWRITTEN and a NULL dinp skips them — plus
 * a kao_cuda_ctx * last (it replaces the CPU convolution's kao_workspace). Every tensor pointer
 * passed to a _gpu op is DEVICE memory; sizes and configs are host values.
 *
 * Execution: everything runs in order on the context's one stream and returns before the GPU has
 * finished (except where a function says it waits). kao_cuda_to_host waits, so its result is
 * ready. With the environment variable KAO_CUDA_SYNC=1 every op waits for its own kernels, so an
 * error in a kernel is reported by the op that launched it (debugging; slower). With
 * KAO_CUDA_VERBOSE=1 each convolution's cuDNN choice (layout, algorithm, math type, workspace, and
 * the candidates passed over with the reason) is printed to stderr when it is first made. With
 * KAO_CUDA_AUTOTUNE=1 that choice is made by timing: cuDNN runs each algorithm once and the fastest
 * deterministic one is kept (as PyTorch's cudnn.benchmark, but deterministic algorithms only);
 * faster where the heuristics misjudge, but two processes may choose differently, and so differ in
 * the last bits.
 *
 * Errors: every CUDA, cuBLAS and cuDNN status is checked; a failure is an internal error (the
 * shapes were computed by kao) and aborts through kao_abort with file and line, the op, the call
 * that failed, the library's message and the op's shapes. kao_cuda_available() is the one
 * function that reports instead of aborting: it is how a program asks whether a GPU is there.
 *
 * Numerics: fp32 (bf16 maps under the bf16 precision, below), and reproducible: no atomics in
 * floating-point sums (every reduction runs in a fixed order: per-thread float sums over a fixed
 * set of rows, then double across threads and blocks), cuDNN algorithms restricted to deterministic ones with FMA math (no TF32),
 * cuBLAS in its default math mode (no TF32 for sgemm). Two runs of an op on the same GPU give
 * bit-identical results (tests/test_cuda_ops.c checks it). Results differ from the CPU ops by
 * rounding only (different summation orders); tests/test_cuda_ops.c states the tolerances.
 * kao_cuda_set_tf32 switches convolutions and GEMMs to TF32 tensor-core math (operands rounded to
 * a 10-bit mantissa, fp32 accumulation; still deterministic algorithms); the ArcFace loss then
 * stays in true fp32 (cuda/backend.cu).
 *
 * Convolution with TF "same" padding (ops.h): cuDNN takes only symmetric padding. Where the TF
 * padding is asymmetric (an odd total: the extra row/column goes after, e.g. a 3×3 stride-2 conv
 * of an even size), the input is copied into a buffer one row and/or column larger whose extra
 * row/column is zero, and cuDNN pads that symmetrically by pad_top/pad_left: the result is exactly
 * TF's padding (cropping a larger symmetric pad instead would shift the sampling grid by one pixel,
 * which a stride of 2 cannot absorb). The backward-data result is computed into the same larger
 * shape and cropped. Symmetric cases use the input directly. 1×1 stride-1 convolutions are one
 * cuBLAS GEMM over the B·H·W pixel rows (NHWC needs no copy); other shapes go to cuDNN with the
 * weight repacked to OHWI (cuDNN's NHWC filter layout, matching the NHWC activations). Where cuDNN
 * has no deterministic NHWC algorithm for a direction, that direction runs in NCHW (activations
 * transposed in and out, the OIHW weight as it is); KAO_CUDA_CONV_NCHW=1 forces it, to test it.
 *
 * ---- bf16 mixed precision (backend.h's KAO_PRECISION_BF16; cuda/ops_t.cuh) ---------------------
 * PyTorch autocast's split with fp32 master weights:
 *  - bf16: the activation maps stored between ops (half the memory traffic: the ops are mostly
 *    bandwidth-bound) and the operands of the convolutions (cuDNN with bf16 data and fp32 compute;
 *    cuBLAS GemmEx with bf16 inputs and CUBLAS_COMPUTE_32F for the 1×1s), fp32 accumulation
 *    inside every op. The backend's map ops are templates on the map type; the _gpu functions
 *    here are their float instances.
 *  - fp32: the master weights (rounded to bf16 into the workspace when a convolution takes them)
 *    and the optimizer moments (AdamW's update lr·m/√v is often below bf16's resolution of a
 *    weight, 2⁻⁸ relative, and would be lost), weight gradients as accumulated, BatchNorm
 *    statistics (mean/variance over up to ~400k rows, running statistics) and affine, the SE
 *    vectors, the pooled features and embedding head, and the whole ArcFace loss (norms, cosines
 *    scaled by 64, log-sum-exp): small tensors or precision-critical sums.
 *  - No loss scaling: bf16 has fp32's 8-bit exponent (range ~1e-38 to 3e38), so small gradients
 *    do not underflow as they do in fp16 (5-bit exponent, smallest normal 6e-5); only the
 *    mantissa is shorter (8 bits vs 24), which is a rounding question handled by the fp32
 *    accumulation above, not a range question.
 *  - The detached CPU backend emulates the same rounding points (src/backend_bf16.c); the tests
 *    compare both with fp32 (tests/backend_parity.h states the tolerances and why).
 */
#ifndef KAO_CUDA_H
#define KAO_CUDA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kao/arcface.h"
#include "kao/backend.h"
#include "kao/ops.h"
#include "kao/optim.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- context and memory ----------------------------------------------------------------- */

/* 1 when a CUDA device can be used; else 0 with the reason in why (cudaGetErrorString of
 * cudaGetDeviceCount's error, e.g. "CUDA driver version is insufficient for CUDA runtime
 * version", or "no CUDA-capable device is detected"). why may be NULL. Never aborts. */
int kao_cuda_available(char *why, size_t n);

/* Stream, cuBLAS and cuDNN handles bound to that stream, and a device workspace that grows on
 * demand. One context per thread of control; its ops run in order. */
typedef struct kao_cuda_ctx kao_cuda_ctx;
kao_cuda_ctx *kao_cuda_create(int device);
/* TF32 tensor-core math for convolutions and GEMMs (backend.h's kao_precision) instead of true
 * fp32 FMA (the default). Algorithms stay deterministic. */
void kao_cuda_set_tf32(kao_cuda_ctx *ctx, bool tf32);
/* The number of CUDA devices (0 where kao_cuda_available says none). */
int kao_cuda_device_count(void);
/* The CUDA backend (backend.h) on device, with its own context. The device must exist
 * (kao_backend_open checks). */
kao_backend *kao_backend_cuda(int device);
void kao_cuda_destroy(kao_cuda_ctx *ctx);
/* Waits for everything queued on the context's stream. */
void kao_cuda_sync(kao_cuda_ctx *ctx);
/* "NVIDIA H100 80GB HBM3, compute 9.0, 132 SMs" */
void kao_cuda_describe(kao_cuda_ctx *ctx, char *out, size_t n);

/* Device memory (cudaMalloc); what names it in the message if the allocation fails. */
void *kao_cuda_malloc(size_t bytes, const char *what);
void kao_cuda_free(void *dev);
/* Copies ordered on ctx's stream. to_device returns once host may be reused; to_host waits until
 * the data is in host. */
void kao_cuda_to_device(kao_cuda_ctx *ctx, void *dev, const void *host, size_t bytes);
void kao_cuda_to_host(kao_cuda_ctx *ctx, void *host, const void *dev, size_t bytes);
void kao_cuda_copy(kao_cuda_ctx *ctx, void *dst_dev, const void *src_dev, size_t bytes);
void kao_cuda_zero(kao_cuda_ctx *ctx, void *dev, size_t bytes);

/* ---- convolution (groups = 1) ------------------------------------------------------------ */
/* out (B, Ho, Wo, Co); inp (B, H, W, Ci); weight (Co, Ci, k, k); bias (Co) or NULL */
void kao_conv2d_forward_gpu(float *out, const float *inp, const float *weight, const float *bias,
                            const kao_conv_shape *s, kao_cuda_ctx *ctx);
/* dinp (B, H, W, Ci) overwritten or NULL; dweight (Co, Ci, k, k) +=; dbias (Co) += or NULL */
void kao_conv2d_backward_gpu(float *dinp, float *dweight, float *dbias, const float *dout,
                             const float *inp, const float *weight, const kao_conv_shape *s,
                             kao_cuda_ctx *ctx);

/* ---- depthwise convolution: weight (C, 1, k, k), k in {1, 3, 5, 7}, no bias ---------------- */
void kao_dwconv2d_forward_gpu(float *out, const float *inp, const float *weight,
                              const kao_conv_shape *s, kao_cuda_ctx *ctx);
void kao_dwconv2d_backward_gpu(float *dinp, float *dweight, const float *dout, const float *inp,
                               const float *weight, const kao_conv_shape *s, kao_cuda_ctx *ctx);

/* ---- BatchNorm over M rows of C channels, optional fused SiLU (ops.h for the semantics) ---- */
void kao_batchnorm_forward_eval_gpu(float *out, const float *inp, const float *gamma,
                                    const float *beta, const float *running_mean,
                                    const float *running_var, float eps, kao_act act, size_t M,
                                    int C, kao_cuda_ctx *ctx);
void kao_batchnorm_forward_train_gpu(float *out, float *save_mean, float *save_rstd,
                                     const float *inp, const float *gamma, const float *beta,
                                     float *running_mean, float *running_var, float eps,
                                     float momentum, kao_act act, size_t M, int C,
                                     kao_cuda_ctx *ctx);
void kao_batchnorm_backward_gpu(float *dinp, float *dgamma, float *dbeta, const float *dout,
                                const float *inp, const float *save_mean, const float *save_rstd,
                                const float *gamma, const float *beta, kao_act act, size_t M, int C,
                                kao_cuda_ctx *ctx);
void kao_batchnorm_backward_frozen_gpu(float *dinp, float *dgamma, float *dbeta, const float *dout,
                                       const float *inp, const float *running_mean,
                                       const float *running_var, const float *gamma,
                                       const float *beta, float eps, kao_act act, size_t M, int C,
                                       kao_cuda_ctx *ctx);

/* ---- activations, squeeze-excite, pooling, linear, residual ------------------------------ */
void kao_silu_forward_gpu(float *out, const float *inp, size_t n, kao_cuda_ctx *ctx);
void kao_silu_backward_gpu(float *dinp, const float *dout, const float *inp, size_t n,
                           kao_cuda_ctx *ctx);
/* inp/out (B, HW, C); save_pooled (B, C); save_hidden (B, R); save_gate (B, C) */
void kao_se_forward_gpu(float *out, float *save_pooled, float *save_hidden, float *save_gate,
                        const float *inp, const float *w_reduce, const float *b_reduce,
                        const float *w_expand, const float *b_expand, int B, int HW, int C, int R,
                        kao_cuda_ctx *ctx);
void kao_se_backward_gpu(float *dinp, float *dw_reduce, float *db_reduce, float *dw_expand,
                         float *db_expand, const float *dout, const float *inp,
                         const float *save_pooled, const float *save_hidden,
                         const float *save_gate, const float *w_reduce, const float *w_expand,
                         int B, int HW, int C, int R, kao_cuda_ctx *ctx);
void kao_avgpool_forward_gpu(float *out, const float *inp, int B, int HW, int C, kao_cuda_ctx *ctx);
void kao_avgpool_backward_gpu(float *dinp, const float *dout, int B, int HW, int C,
                              kao_cuda_ctx *ctx);
/* out (B, n_out) = inp (B, n_in) · weight (n_out, n_in)ᵀ + bias (n_out); bias may be NULL. */
void kao_linear_forward_gpu(float *out, const float *inp, const float *weight, const float *bias,
                            int B, int n_in, int n_out, kao_cuda_ctx *ctx);
void kao_linear_backward_gpu(float *dinp, float *dweight, float *dbias, const float *dout,
                             const float *inp, const float *weight, int B, int n_in, int n_out,
                             kao_cuda_ctx *ctx);
void kao_add_inplace_gpu(float *out, const float *x, size_t n, kao_cuda_ctx *ctx);
/* mask (B) device memory. */
void kao_scale_rows_gpu(float *x, const float *mask, int B, size_t n, kao_cuda_ctx *ctx);

/* ---- ArcFace loss (arcface.h for the definition and the edge rules) ---------------------- */
/* The same fields as kao_arcface_acts, in device memory, plus the per-row losses. */
typedef struct {
    int max_batch, dim, classes; /* B_max, E, C */
    float *emb_hat;   /* (B_max, E) */
    float *emb_norm;  /* (B_max) */
    float *w_hat;     /* (E, C) */
    float *w_norm;    /* (C) */
    float *cosine;    /* (B_max, C) before the margin */
    float *probs;     /* (B_max, C) */
    float *dtarget;   /* (B_max) */
    float *row_loss;  /* (B_max) lse − target logit of each row */
    float *dcos;      /* (B_max, C) backward scratch */
    float *dw_hat;    /* (E, C) backward scratch */
    float *demb_hat;  /* (B_max, E) backward scratch */
} kao_arcface_acts_gpu;
void kao_arcface_acts_create_gpu(kao_arcface_acts_gpu *a, int max_batch, int dim, int classes);
void kao_arcface_acts_free_gpu(kao_arcface_acts_gpu *a);
/* loss (1, device): the mean loss, left on the device so a training step needs no host wait.
 * emb (B, E); W (E, C); labels (B) device ints. A label outside [0, C) (kao's own bug) makes its
 * row's loss and probabilities NaN rather than reading out of bounds. */
void kao_arcface_forward_gpu(float *loss, kao_arcface_acts_gpu *a, const float *emb,
                             const float *W, const int *labels, int B, int E, int C,
                             const kao_arcface_cfg *cfg, kao_cuda_ctx *ctx);
/* d_emb (B, E) overwritten or NULL; dW (E, C) +=. */
void kao_arcface_backward_gpu(float *d_emb, float *dW, kao_arcface_acts_gpu *a, const int *labels,
                              int B, int E, int C, const kao_arcface_cfg *cfg, kao_cuda_ctx *ctx);
/* emb_hat, emb_norm, w_hat, w_norm and cosine (B, C) only. */
void kao_arcface_cosine_gpu(kao_arcface_acts_gpu *a, const float *emb, const float *W, int B,
                            int E, int C, kao_cuda_ctx *ctx);

/* ---- optimizers (optim.h for the formulas) ----------------------------------------------- */
/* The moments on the device, with the params' layout; the host kao_optim keeps the table, the
 * groups and the per-tensor step counts (and is what a checkpoint saves: copy these blocks into
 * its exp_avg / exp_avg_sq with kao_cuda_to_host first). NULL where the host's is NULL. */
typedef struct {
    float *exp_avg;    /* (numel) AdamW m / SGD momentum buffer */
    float *exp_avg_sq; /* (numel) AdamW v */
} kao_optim_state_gpu;
/* Device blocks shaped like o's host state, copied from it (zero for a fresh optimizer). */
void kao_optim_state_create_gpu(kao_optim_state_gpu *st, const kao_optim *o, kao_cuda_ctx *ctx);
void kao_optim_state_free_gpu(kao_optim_state_gpu *st);
/* kao_optim_step on device params/grads: the same per-element operations in the same order
 * (results equal the CPU's bit for bit); o->steps advance as on the CPU. Adjacent tensors with the
 * same scalars are updated by one kernel. */
void kao_optim_step_gpu(kao_optim *o, kao_optim_state_gpu *st, float *params, const float *grads,
                        double lr_factor, kao_cuda_ctx *ctx);
/* kao_clip_grad_norm over spans of device memory (the span structs themselves are host memory).
 * Returns the total norm before clipping; waits for the GPU to get it. */
float kao_clip_grad_norm_gpu(kao_span *grads, int count, float max_norm, kao_cuda_ctx *ctx);
/* kao_norm over spans of device memory (the sum in another order: an ulp or two apart), the same
 * on every run; waits for the GPU to get it. */
float kao_norm_gpu(const kao_span *spans, int count, kao_cuda_ctx *ctx);

#ifdef __cplusplus
}
#endif

#endif
