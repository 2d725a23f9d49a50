/* backend.h — where the network runs: the CPU ops (ops.h) or their CUDA twins (cuda.h), behind
 * one table of functions.
 *
 * The network's forward and backward (network_forward.c, network_backward.c), the training step
 * (train_step.c) and the embedder are written once against this table; a backend supplies its
 * memory and the ops at the granularity the network uses them. The CPU backend fuses what its
 * kernels can (BN folded into the convolution's epilogue in eval, BN batch sums gathered there in
 * training); the CUDA backend calls cuDNN/cuBLAS and its own kernels. Every tensor pointer passed
 * to a backend function is in that backend's memory (device memory for CUDA) unless it is named
 * host; sizes and configs are host values.
 *
 * kao_backend_cpu() is always there; kao_backend_cuda() (cuda.h) when kao is built with
 * -DKAO_CUDA=ON. A backend is used from one thread of control.
 */
#ifndef KAO_BACKEND_H
#define KAO_BACKEND_H

#include <stdbool.h>
#include <stddef.h>

#include "kao/arcface.h"
#include "kao/ops.h"
#include "kao/optim.h"

/* How a backend stores activations and does matrix work (convolutions, GEMMs).
 * FP32: everything fp32.
 * TF32: fp32 data; tensor cores multiply operands rounded to a 10-bit mantissa (relative 2⁻¹¹)
 *       and accumulate in fp32 — PyTorch's default for cuDNN convolutions; GPUs only.
 * BF16: mixed precision, PyTorch autocast's split: activation maps (kao_map) stored in bfloat16
 *       (8-bit mantissa, fp32's exponent) and bf16 operands for the convolutions, fp32
 *       accumulation inside every op; fp32 master weights, weight gradients, optimizer moments,
 *       BatchNorm statistics, the embedding head and the whole ArcFace loss. GPUs, and the
 *       detached CPU backend as its reference (backend_bf16.c). No loss scaling: bf16 has fp32's
 *       exponent range, so small gradients do not underflow as in fp16 (cuda.h says more). */
typedef enum { KAO_PRECISION_FP32, KAO_PRECISION_TF32, KAO_PRECISION_BF16 } kao_precision;

/* An activation map (B, H, W, C) or its gradient, in a backend's memory, with map_bytes bytes per
 * element: float, or bfloat16 under KAO_PRECISION_BF16. Opaque: only the backend reads the
 * elements (kao_map_to_host brings one to the host as floats). */
typedef struct kao_map kao_map;

/* How a BatchNorm layer normalises: running statistics (eval), batch statistics with the
 * running ones updated (train), or running statistics while training (frozen BN). */
typedef enum { KAO_BN_EVAL, KAO_BN_TRAIN, KAO_BN_FROZEN } kao_bn_mode;

/* One BatchNorm layer's tensors, in the backend's memory, and its constants. */
typedef struct {
    const float *gamma, *beta;          /* (C) */
    float *running_mean, *running_var;  /* (C) */
    float eps, momentum;
} kao_bn_tensors;

typedef struct kao_backend kao_backend;
struct kao_backend {
    const char *name;   /* "cpu" or "cuda" */
    char description[160]; /* for logs: "CPU, 2 threads", "NVIDIA H100 80GB HBM3, compute 9.0, 132 SMs" */
    bool host_memory;   /* its memory is the host's: mirrors of host tensors can alias them */
    void *impl;         /* the implementation's state (workspace, scratch, CUDA context) */
    size_t map_bytes;   /* bytes per kao_map element: 4, or 2 under bf16 (set_precision) */

    /* ---- memory: allocations are zero-filled; copies are ordered with the ops ---- */
    void *(*alloc)(kao_backend *be, size_t bytes, const char *what);
    void (*release)(kao_backend *be, void *p);
    /* May return before the copy is done: ordinary host memory may be reused at once, but memory
     * from host_alloc (page-locked on a GPU, copied by DMA) must stay unchanged until the backend's
     * next wait (to_host, sync, or an op that returns a value, such as arcface_forward). */
    void (*to_backend)(kao_backend *be, void *dst, const void *host_src, size_t bytes);
    /* Waits until the data is in host. */
    void (*to_host)(kao_backend *be, void *host_dst, const void *src, size_t bytes);
    void (*copy)(kao_backend *be, void *dst, const void *src, size_t bytes);
    void (*zero)(kao_backend *be, void *p, size_t bytes);
    /* Host memory that copies to the backend fastest (page-locked for a GPU). */
    void *(*host_alloc)(kao_backend *be, size_t bytes, const char *what);
    void (*host_release)(kao_backend *be, void *p);
    /* Waits for everything queued (for timing). */
    void (*sync)(kao_backend *be);
    /* Fails (naming the precision) where the backend does not offer it. Maps made before a change of
     * map_bytes must not be used after it. */
    int (*set_precision)(kao_backend *be, kao_precision precision);
    /* Maps from and to float tensors of the backend's memory (the network's input, its gradient). */
    void (*map_from_floats)(kao_backend *be, kao_map *dst, const float *src, size_t n);
    void (*map_to_floats)(kao_backend *be, float *dst, const kao_map *src, size_t n);
    /* The most device memory in use at once so far, in MiB; NULL where the memory is the host's. */
    double (*peak_memory_mib)(kao_backend *be);

    /* ---- the network's ops (ops.h for each op's semantics); kao_map arguments are maps ---- */
    /* out = act(BN(conv(inp))), groups = 1 or depthwise as s says. conv_out (the BN's input) is
     * written in TRAIN and FROZEN modes, where backward reads it, and may be NULL in EVAL;
     * save_mean/save_rstd (C) are written in TRAIN; TRAIN updates the running statistics. */
    void (*conv_bn)(kao_backend *be, kao_map *out, kao_map *conv_out, float *save_mean, float *save_rstd,
                    const kao_map *inp, const float *weight, const kao_conv_shape *s, const kao_bn_tensors *bn,
                    kao_bn_mode mode, kao_act act);
    /* Convolution backward without bias: dinp overwritten or NULL; dweight +=. */
    void (*conv_backward)(kao_backend *be, kao_map *dinp, float *dweight, const kao_map *dout, const kao_map *inp,
                          const float *weight, const kao_conv_shape *s);
    /* BN(+act) backward in place: d, the gradient of the output, becomes the input's. mode is TRAIN
     * (save_mean/save_rstd used) or FROZEN (running statistics used). dgamma, dbeta +=. */
    void (*bn_backward)(kao_backend *be, kao_map *d, float *dgamma, float *dbeta, const kao_map *inp,
                        const float *save_mean, const float *save_rstd, const kao_bn_tensors *bn,
                        kao_bn_mode mode, kao_act act, size_t M, int C);
    void (*se_forward)(kao_backend *be, kao_map *out, float *save_pooled, float *save_hidden, float *save_gate,
                       const kao_map *inp, const float *w_reduce, const float *b_reduce, const float *w_expand,
                       const float *b_expand, int B, int HW, int C, int R);
    void (*se_backward)(kao_backend *be, kao_map *dinp, float *dw_reduce, float *db_reduce, float *dw_expand,
                        float *db_expand, const kao_map *dout, const kao_map *inp, const float *save_pooled,
                        const float *save_hidden, const float *save_gate, const float *w_reduce,
                        const float *w_expand, int B, int HW, int C, int R);
    void (*avgpool_forward)(kao_backend *be, float *out, const kao_map *inp, int B, int HW, int C);
    void (*avgpool_backward)(kao_backend *be, kao_map *dinp, const float *dout, int B, int HW, int C);
    void (*linear_forward)(kao_backend *be, float *out, const float *inp, const float *weight, const float *bias,
                           int B, int n_in, int n_out);
    void (*linear_backward)(kao_backend *be, float *dinp, float *dweight, float *dbias, const float *dout,
                            const float *inp, const float *weight, int B, int n_in, int n_out);
    void (*add_inplace)(kao_backend *be, kao_map *out, const kao_map *x, size_t n);
    void (*scale_rows)(kao_backend *be, kao_map *x, const float *mask, int B, size_t n);

    /* ---- the training step's ops ---- */
    /* ArcFace (arcface.h): acts is the backend's own saved-tensor record. labels (B) are in the
     * backend's memory. forward returns the mean loss (waiting for it); correct counts the rows
     * of the last forward whose nearest class is their label. */
    void *(*arcface_create)(kao_backend *be, int max_batch, int E, int C);
    void (*arcface_free)(kao_backend *be, void *acts);
    float (*arcface_forward)(kao_backend *be, void *acts, const float *emb, const float *W, const int *labels,
                             int B, int E, int C, const kao_arcface_cfg *cfg);
    void (*arcface_backward)(kao_backend *be, float *d_emb, float *dW, void *acts, const int *labels, int B,
                             int E, int C, const kao_arcface_cfg *cfg);
    int (*arcface_correct)(kao_backend *be, void *acts, const int *labels, int B, int C);
    /* Optimizer state (optim.h): the host kao_optim keeps the table, groups and step counts; a
     * backend that is not host memory keeps the moments itself. state_sync copies them into the
     * host kao_optim's blocks (to_host) or from them (!to_host). */
    void *(*optim_state_create)(kao_backend *be, const kao_optim *o);
    void (*optim_state_free)(kao_backend *be, void *state);
    void (*optim_state_sync)(kao_backend *be, kao_optim *o, void *state, bool to_host);
    void (*optim_step)(kao_backend *be, kao_optim *o, void *state, float *params, const float *grads,
                       double lr_factor);
    /* kao_clip_grad_norm over spans of the backend's memory; returns the norm before clipping. */
    float (*clip_grad_norm)(kao_backend *be, kao_span *grads, int count, float max_norm);
    /* kao_norm over spans of the backend's memory (the trainer's weight norm). */
    float (*norm)(kao_backend *be, const kao_span *spans, int count);

    void (*destroy)(kao_backend *be);
};

/* The CPU backend (the fast ops of ops.h, OpenMP + OpenBLAS). */
kao_backend *kao_backend_cpu(void);
/* The same ops, but treated as a device with memory of its own: nothing aliases the host's
 * tensors, everything is copied over and back as for a GPU. It runs the device paths of the
 * trainer, the embedder and checkpoints on any machine (tests/test_backend_copies.c). */
kao_backend *kao_backend_cpu_detached(void);
/* "cpu", "cuda[:N]" or "cpu-detached"; fails naming the device when it is unknown, when kao was
 * built without CUDA, or when no GPU can be used (with the driver's reason). */
int kao_backend_open(kao_backend **out, const char *device);
/* n elements of a map in be's memory, as floats in host memory (tests, diagnostics). */
void kao_map_to_host(kao_backend *be, float *host_dst, const kao_map *src, size_t n);
/* "fp32" | "tf32" | "bf16" */
int kao_precision_parse(kao_precision *out, const char *name);
const char *kao_precision_name(kao_precision precision);
void kao_backend_free(kao_backend *be);

#endif
