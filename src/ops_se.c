/* ops_se.c — squeeze-excite (timm SqueezeExcite; docs/architecture.md, 'Blocks'): per image b,
 *   pooled = mean_hw(inp); hidden = W_r·pooled + b_r; a = silu(hidden);
 *   gate = sigmoid(W_e·a + b_e); out = inp·gate (per channel).
 * The two 1×1 convs act on (B, C) vectors: one small GEMM each (OpenBLAS, single-threaded, see
 * ops_internal.h); pooling and gating stream over the (B, HW, C) tensor with OpenMP.
 *
 * Backward, with dgl = dgate·gate·(1 - gate) and dh = (dgl·W_e)·silu'(hidden):
 *   dgate = Σ_hw dout·inp; dW_e += dglᵀ·a; db_e += Σ_b dgl; dW_r += dhᵀ·pooled; db_r += Σ_b dh;
 *   dinp = dout·gate + (dh·W_r) / HW. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kao/ops.h"
#include "kao/util.h"
#include "ops_internal.h"

/* ---- reference ---------------------------------------------------------------------------- */

static double sigmoid_d(double x) { return 1.0 / (1.0 + exp(-x)); }

void kao_se_forward_ref(float *out, float *save_pooled, float *save_hidden, float *save_gate,
                        const float *inp, const float *w_reduce, const float *b_reduce,
                        const float *w_expand, const float *b_expand, int B, int HW, int C, int R) {
    double *act = kao_malloc((size_t)R * sizeof(double), "se_ref hidden");
    for (int b = 0; b < B; b++) {
        const float *x = inp + (size_t)b * HW * C;
        for (int c = 0; c < C; c++) {
            double sum = 0.0;
            for (int p = 0; p < HW; p++) sum += x[(size_t)p * C + c];
            save_pooled[(size_t)b * C + c] = (float)(sum / HW);
        }
        for (int r = 0; r < R; r++) {
            double h = b_reduce[r];
            for (int c = 0; c < C; c++) h += (double)w_reduce[(size_t)r * C + c] * save_pooled[(size_t)b * C + c];
            save_hidden[(size_t)b * R + r] = (float)h;
            act[r] = h * sigmoid_d(h);
        }
        for (int c = 0; c < C; c++) {
            double z = b_expand[c];
            for (int r = 0; r < R; r++) z += w_expand[(size_t)c * R + r] * act[r];
            save_gate[(size_t)b * C + c] = (float)sigmoid_d(z);
        }
        for (int p = 0; p < HW; p++)
            for (int c = 0; c < C; c++)
                out[((size_t)b * HW + p) * C + c] = x[(size_t)p * C + c] * save_gate[(size_t)b * C + c];
    }
    free(act);
}

void kao_se_backward_ref(float *dinp, float *dw_reduce, float *db_reduce, float *dw_expand,
                         float *db_expand, const float *dout, const float *inp, const float *save_pooled,
                         const float *save_hidden, const float *save_gate, const float *w_reduce,
                         const float *w_expand, int B, int HW, int C, int R) {
    double *dgl = kao_malloc(((size_t)C + 2 * (size_t)R) * sizeof(double), "se_ref grads");
    double *act = dgl + C, *dh = act + R;
    for (int b = 0; b < B; b++) {
        const float *x = inp + (size_t)b * HW * C, *d = dout + (size_t)b * HW * C;
        const float *gate = save_gate + (size_t)b * C, *hidden = save_hidden + (size_t)b * R;
        for (int c = 0; c < C; c++) {
            double dgate = 0.0;
            for (int p = 0; p < HW; p++) dgate += (double)d[(size_t)p * C + c] * x[(size_t)p * C + c];
            dgl[c] = dgate * gate[c] * (1.0 - gate[c]);
            db_expand[c] += (float)dgl[c];
        }
        for (int r = 0; r < R; r++) {
            double s = sigmoid_d(hidden[r]), da = 0.0;
            act[r] = hidden[r] * s;
            for (int c = 0; c < C; c++) da += w_expand[(size_t)c * R + r] * dgl[c];
            dh[r] = da * s * (1.0 + hidden[r] * (1.0 - s));
            db_reduce[r] += (float)dh[r];
        }
        for (int c = 0; c < C; c++)
            for (int r = 0; r < R; r++) dw_expand[(size_t)c * R + r] += (float)(dgl[c] * act[r]);
        for (int r = 0; r < R; r++)
            for (int c = 0; c < C; c++)
                dw_reduce[(size_t)r * C + c] += (float)(dh[r] * save_pooled[(size_t)b * C + c]);
        if (!dinp) continue;
        for (int c = 0; c < C; c++) {
            double dpooled = 0.0;
            for (int r = 0; r < R; r++) dpooled += w_reduce[(size_t)r * C + c] * dh[r];
            for (int p = 0; p < HW; p++)
                dinp[((size_t)b * HW + p) * C + c] = (float)(d[(size_t)p * C + c] * gate[c] + dpooled / HW);
        }
    }
    free(dgl);
}

/* ---- fast --------------------------------------------------------------------------------- */

void kao_se_forward(float *out, float *save_pooled, float *save_hidden, float *save_gate,
                    const float *inp, const float *w_reduce, const float *b_reduce,
                    const float *w_expand, const float *b_expand, int B, int HW, int C, int R) {
    kao_blas_single_threaded();
    float *act = kao_malloc((size_t)B * R * sizeof(float), "se activations"); /* (B, R) */
    kao_avgpool_forward(save_pooled, inp, B, HW, C);
    for (int b = 0; b < B; b++) memcpy(save_hidden + (size_t)b * R, b_reduce, (size_t)R * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, R, C, 1.0f, save_pooled, C, w_reduce, C,
                1.0f, save_hidden, R);
    kao_silu_array(act, save_hidden, (size_t)B * R);
    for (int b = 0; b < B; b++) memcpy(save_gate + (size_t)b * C, b_expand, (size_t)C * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, C, R, 1.0f, act, R, w_expand, R, 1.0f,
                save_gate, C);
    kao_sigmoid_array(save_gate, save_gate, (size_t)B * C);
    long rows = (long)B * HW;
#pragma omp parallel for schedule(static)
    for (long m = 0; m < rows; m++) {
        const float *restrict x = inp + (size_t)m * C, *restrict g = save_gate + (size_t)(m / HW) * C;
        float *y = out + (size_t)m * C; /* may equal x */
        for (int c = 0; c < C; c++) y[c] = x[c] * g[c];
    }
    free(act);
}

void kao_se_backward(float *dinp, float *dw_reduce, float *db_reduce, float *dw_expand,
                     float *db_expand, const float *dout, const float *inp, const float *save_pooled,
                     const float *save_hidden, const float *save_gate, const float *w_reduce,
                     const float *w_expand, int B, int HW, int C, int R) {
    kao_blas_single_threaded();
    float *dgl = kao_calloc(2 * (size_t)B * C + 2 * (size_t)B * R, sizeof(float), "se grads");
    float *dpooled = dgl + (size_t)B * C, *act = dpooled + (size_t)B * C, *dh = act + (size_t)B * R;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        float *restrict dg = dgl + (size_t)b * C; /* Σ_hw dout·inp, then times sigmoid' */
        const float *g = save_gate + (size_t)b * C;
        for (int p = 0; p < HW; p++) {
            const float *restrict d = dout + ((size_t)b * HW + p) * C, *restrict x = inp + ((size_t)b * HW + p) * C;
            for (int c = 0; c < C; c++) dg[c] += d[c] * x[c];
        }
        for (int c = 0; c < C; c++) dg[c] *= g[c] * (1.0f - g[c]);
    }
    kao_silu_array(act, save_hidden, (size_t)B * R);
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) db_expand[c] += dgl[(size_t)b * C + c];
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, C, R, B, 1.0f, dgl, C, act, R, 1.0f, dw_expand, R);
    /* da (B, R) = dgl · W_e, then dh = da·silu'(hidden) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, R, C, 1.0f, dgl, C, w_expand, R, 0.0f, dh, R);
    kao_silu_grad_array(dh, dh, save_hidden, (size_t)B * R);
    for (int b = 0; b < B; b++)
        for (int r = 0; r < R; r++) db_reduce[r] += dh[(size_t)b * R + r];
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, R, C, B, 1.0f, dh, R, save_pooled, C, 1.0f, dw_reduce, C);
    if (dinp) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, C, R, 1.0f / HW, dh, R, w_reduce, C, 0.0f,
                    dpooled, C);
        long rows = (long)B * HW;
#pragma omp parallel for schedule(static)
        for (long m = 0; m < rows; m++) {
            const float *restrict g = save_gate + (size_t)(m / HW) * C, *restrict dp = dpooled + (size_t)(m / HW) * C;
            const float *d = dout + (size_t)m * C;
            float *di = dinp + (size_t)m * C; /* may equal d */
            for (int c = 0; c < C; c++) di[c] = d[c] * g[c] + dp[c];
        }
    }
    free(dgl);
}
