/* backend_bf16.c — bf16 mixed precision on the CPU (the detached backend with precision bf16):
 * the reference the CUDA backend's bf16 mode is checked against, and how kao's bf16 plumbing (maps
 * of 2-byte elements, the input's conversion and its gradient's) is tested on machines without a
 * GPU.
 *
 * It reproduces where the GPU rounds, not its speed: each op widens its bf16 maps to floats, runs
 * the CPU's fp32 op, and rounds every map it writes to bf16 (nearest even), as a CUDA kernel does
 * when it stores one. Where the GPU hands bf16 operands to cuDNN/cuBLAS (convolutions with
 * groups = 1) the weight is rounded too; where cuDNN returns the weight gradient in bf16 (every
 * convolution but the 1×1 stride-1 ones, which are cuBLAS GEMMs accumulating into the float
 * gradient) it is rounded before it is added. The convolution's output is rounded before its
 * BatchNorm reads it: the GPU stores it between the two. Sums run in other orders than on a GPU,
 * so the two agree to bf16's rounding, not bit for bit. Memory is allocated per call: this is a
 * reference for tests, not a fast path. */
#include <stdlib.h>
#include <string.h>

#include "backend_internal.h"
#include "kao/bf16.h"
#include "kao/util.h"

static float *widen(const kao_map *m, size_t n) {
    float *x = kao_malloc(n * sizeof(float) + 1, "bf16 map as floats");
    kao_bf16_to_floats(x, (const uint16_t *)m, n);
    return x;
}

static void narrow(kao_map *m, const float *x, size_t n) { kao_bf16_from_floats((uint16_t *)m, x, n); }

static float *scratch(size_t n) { return kao_calloc(n + 1, sizeof(float), "bf16 emulation scratch"); }

static size_t in_elements(const kao_conv_shape *s) { return (size_t)s->batch * s->in_h * s->in_w * s->in_c; }
static size_t out_elements(const kao_conv_shape *s) { return (size_t)s->batch * s->out_h * s->out_w * s->out_c; }
static size_t weight_elements(const kao_conv_shape *s) {
    return (size_t)s->out_c * (s->depthwise ? 1 : s->in_c) * s->kernel * s->kernel;
}

/* cuBLAS GEMMs on the GPU (the weight gradient stays fp32); everything else of groups = 1 is cuDNN. */
static bool gemm_conv(const kao_conv_shape *s) { return s->kernel == 1 && s->stride == 1; }

/* The weight as the GPU's matrix work sees it: bf16 for groups = 1, float for the depthwise kernels. */
static float *operand_weight(const float *weight, const kao_conv_shape *s) {
    size_t n = weight_elements(s);
    float *w = memcpy(kao_malloc(n * sizeof(float), "bf16 weight"), weight, n * sizeof(float));
    if (!s->depthwise) kao_bf16_round_floats(w, n);
    return w;
}

static void emu_map_from_floats(kao_backend *be, kao_map *dst, const float *src, size_t n) { narrow(dst, src, n); }

static void emu_map_to_floats(kao_backend *be, float *dst, const kao_map *src, size_t n) {
    kao_bf16_to_floats(dst, (const uint16_t *)src, n);
}

static void emu_conv_bn(kao_backend *be, kao_map *out, kao_map *conv_out, float *save_mean, float *save_rstd,
                        const kao_map *inp, const float *weight, const kao_conv_shape *s, const kao_bn_tensors *bn,
                        kao_bn_mode mode, kao_act act) {
    size_t n = out_elements(s), M = (size_t)s->batch * s->out_h * s->out_w;
    float *x = widen(inp, in_elements(s)), *w = operand_weight(weight, s), *y = scratch(n), *z = scratch(n);
    kao_workspace ws = {0};
    if (s->depthwise) kao_dwconv2d_forward(y, x, w, s);
    else kao_conv2d_forward(y, x, w, NULL, s, &ws);
    kao_bf16_round_floats(y, n);
    if (mode != KAO_BN_EVAL) narrow(conv_out, y, n);
    if (mode == KAO_BN_TRAIN)
        kao_batchnorm_forward_train(z, save_mean, save_rstd, y, bn->gamma, bn->beta, bn->running_mean,
                                    bn->running_var, bn->eps, bn->momentum, act, M, s->out_c);
    else
        kao_batchnorm_forward_eval(z, y, bn->gamma, bn->beta, bn->running_mean, bn->running_var, bn->eps, act, M,
                                   s->out_c);
    narrow(out, z, n);
    kao_workspace_free(&ws);
    free(x), free(w), free(y), free(z);
}

static void emu_conv_backward(kao_backend *be, kao_map *dinp, float *dweight, const kao_map *dout,
                              const kao_map *inp, const float *weight, const kao_conv_shape *s) {
    size_t n_in = in_elements(s), nw = weight_elements(s);
    float *dy = widen(dout, out_elements(s)), *x = widen(inp, n_in), *w = operand_weight(weight, s);
    float *dx = dinp ? scratch(n_in) : NULL, *dw = scratch(nw);
    kao_workspace ws = {0};
    if (s->depthwise) kao_dwconv2d_backward(dx, dw, dy, x, w, s);
    else kao_conv2d_backward(dx, dw, NULL, dy, x, w, s, &ws);
    if (!s->depthwise && !gemm_conv(s)) kao_bf16_round_floats(dw, nw);
    for (size_t i = 0; i < nw; i++) dweight[i] += dw[i];
    if (dinp) narrow(dinp, dx, n_in);
    kao_workspace_free(&ws);
    free(dy), free(x), free(w), free(dx), free(dw);
}

static void emu_bn_backward(kao_backend *be, kao_map *d, float *dgamma, float *dbeta, const kao_map *inp,
                            const float *save_mean, const float *save_rstd, const kao_bn_tensors *bn,
                            kao_bn_mode mode, kao_act act, size_t M, int C) {
    size_t n = M * (size_t)C;
    float *g = widen(d, n), *x = widen(inp, n);
    if (mode == KAO_BN_FROZEN)
        kao_batchnorm_backward_frozen(g, dgamma, dbeta, g, x, bn->running_mean, bn->running_var, bn->gamma, bn->beta,
                                      bn->eps, act, M, C);
    else
        kao_batchnorm_backward(g, dgamma, dbeta, g, x, save_mean, save_rstd, bn->gamma, bn->beta, act, M, C);
    narrow(d, g, n);
    free(g), free(x);
}

static void emu_se_forward(kao_backend *be, kao_map *out, float *save_pooled, float *save_hidden, float *save_gate,
                           const kao_map *inp, const float *w_reduce, const float *b_reduce, const float *w_expand,
                           const float *b_expand, int B, int HW, int C, int R) {
    size_t n = (size_t)B * HW * C;
    float *x = widen(inp, n), *y = scratch(n);
    kao_se_forward(y, save_pooled, save_hidden, save_gate, x, w_reduce, b_reduce, w_expand, b_expand, B, HW, C, R);
    narrow(out, y, n);
    free(x), free(y);
}

static void emu_se_backward(kao_backend *be, kao_map *dinp, float *dw_reduce, float *db_reduce, float *dw_expand,
                            float *db_expand, const kao_map *dout, const kao_map *inp, const float *save_pooled,
                            const float *save_hidden, const float *save_gate, const float *w_reduce,
                            const float *w_expand, int B, int HW, int C, int R) {
    size_t n = (size_t)B * HW * C;
    float *dy = widen(dout, n), *x = widen(inp, n), *dx = scratch(n);
    kao_se_backward(dx, dw_reduce, db_reduce, dw_expand, db_expand, dy, x, save_pooled, save_hidden, save_gate,
                    w_reduce, w_expand, B, HW, C, R);
    narrow(dinp, dx, n);
    free(dy), free(x), free(dx);
}

static void emu_avgpool_forward(kao_backend *be, float *out, const kao_map *inp, int B, int HW, int C) {
    float *x = widen(inp, (size_t)B * HW * C);
    kao_avgpool_forward(out, x, B, HW, C);
    free(x);
}

static void emu_avgpool_backward(kao_backend *be, kao_map *dinp, const float *dout, int B, int HW, int C) {
    size_t n = (size_t)B * HW * C;
    float *dx = scratch(n);
    kao_avgpool_backward(dx, dout, B, HW, C);
    narrow(dinp, dx, n);
    free(dx);
}

static void emu_add_inplace(kao_backend *be, kao_map *out, const kao_map *x, size_t n) {
    float *y = widen(out, n), *a = widen(x, n);
    kao_add_inplace(y, a, n);
    narrow(out, y, n);
    free(y), free(a);
}

static void emu_scale_rows(kao_backend *be, kao_map *x, const float *mask, int B, size_t n) {
    float *y = widen(x, (size_t)B * n);
    kao_scale_rows(y, mask, B, n);
    narrow(x, y, (size_t)B * n);
    free(y);
}

void kao_backend_bf16_install(kao_backend *be) {
    be->map_bytes = sizeof(uint16_t);
    be->map_from_floats = emu_map_from_floats;
    be->map_to_floats = emu_map_to_floats;
    be->conv_bn = emu_conv_bn;
    be->conv_backward = emu_conv_backward;
    be->bn_backward = emu_bn_backward;
    be->se_forward = emu_se_forward;
    be->se_backward = emu_se_backward;
    be->avgpool_forward = emu_avgpool_forward;
    be->avgpool_backward = emu_avgpool_backward;
    be->add_inplace = emu_add_inplace;
    be->scale_rows = emu_scale_rows;
}
