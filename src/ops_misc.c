/* ops_misc.c — SiLU, global average pooling, Linear, residual add and drop-path row scaling.
 * Elementwise loops split into OpenMP blocks; SiLU uses the vector sigmoid of ops_internal.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kao/ops.h"
#include "kao/util.h"
#include "ops_internal.h"

enum { BLOCK = 16384 }; /* elements per OpenMP work item in elementwise loops */

/* ---- SiLU --------------------------------------------------------------------------------- */

void kao_silu_forward_ref(float *out, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = (float)(inp[i] / (1.0 + exp(-(double)inp[i])));
}

void kao_silu_backward_ref(float *dinp, const float *dout, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double s = 1.0 / (1.0 + exp(-(double)inp[i]));
        dinp[i] = (float)(dout[i] * s * (1.0 + inp[i] * (1.0 - s)));
    }
}

void kao_silu_forward(float *out, const float *inp, size_t n) {
    long nblocks = (long)((n + BLOCK - 1) / BLOCK);
#pragma omp parallel for schedule(static)
    for (long blk = 0; blk < nblocks; blk++) {
        size_t i0 = (size_t)blk * BLOCK;
        kao_silu_array(out + i0, inp + i0, n - i0 < BLOCK ? n - i0 : BLOCK);
    }
}

void kao_silu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    long nblocks = (long)((n + BLOCK - 1) / BLOCK);
#pragma omp parallel for schedule(static)
    for (long blk = 0; blk < nblocks; blk++) {
        size_t i0 = (size_t)blk * BLOCK;
        kao_silu_grad_array(dinp + i0, dout + i0, inp + i0, n - i0 < BLOCK ? n - i0 : BLOCK);
    }
}

/* ---- global average pooling ---------------------------------------------------------------- */

void kao_avgpool_forward(float *out, const float *inp, int B, int HW, int C) {
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        float *restrict o = out + (size_t)b * C;
        memset(o, 0, (size_t)C * sizeof(float));
        for (int p = 0; p < HW; p++) {
            const float *restrict x = inp + ((size_t)b * HW + p) * C;
            for (int c = 0; c < C; c++) o[c] += x[c];
        }
        for (int c = 0; c < C; c++) o[c] /= (float)HW;
    }
}

void kao_avgpool_backward(float *dinp, const float *dout, int B, int HW, int C) {
    long rows = (long)B * HW;
#pragma omp parallel for schedule(static)
    for (long m = 0; m < rows; m++) {
        const float *restrict d = dout + (size_t)(m / HW) * C;
        float *restrict di = dinp + (size_t)m * C;
        for (int c = 0; c < C; c++) di[c] = d[c] / (float)HW;
    }
}

/* ---- Linear ------------------------------------------------------------------------------- */

void kao_linear_forward_ref(float *out, const float *inp, const float *weight, const float *bias,
                            int B, int In, int Out) {
    for (int b = 0; b < B; b++)
        for (int o = 0; o < Out; o++) {
            double acc = bias ? bias[o] : 0.0;
            for (int i = 0; i < In; i++) acc += (double)inp[(size_t)b * In + i] * weight[(size_t)o * In + i];
            out[(size_t)b * Out + o] = (float)acc;
        }
}

void kao_linear_backward_ref(float *dinp, float *dweight, float *dbias, const float *dout,
                             const float *inp, const float *weight, int B, int In, int Out) {
    for (int o = 0; o < Out; o++) {
        double db = 0.0;
        for (int b = 0; b < B; b++) db += dout[(size_t)b * Out + o];
        if (dbias) dbias[o] += (float)db;
        for (int i = 0; i < In; i++) {
            double dw = 0.0;
            for (int b = 0; b < B; b++) dw += (double)dout[(size_t)b * Out + o] * inp[(size_t)b * In + i];
            dweight[(size_t)o * In + i] += (float)dw;
        }
    }
    if (!dinp) return;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < In; i++) {
            double acc = 0.0;
            for (int o = 0; o < Out; o++) acc += (double)dout[(size_t)b * Out + o] * weight[(size_t)o * In + i];
            dinp[(size_t)b * In + i] = (float)acc;
        }
}

void kao_linear_forward(float *out, const float *inp, const float *weight, const float *bias,
                        int B, int In, int Out) {
    kao_blas_single_threaded();
    for (int b = 0; b < B; b++) {
        if (bias) memcpy(out + (size_t)b * Out, bias, (size_t)Out * sizeof(float));
        else memset(out + (size_t)b * Out, 0, (size_t)Out * sizeof(float));
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, Out, In, 1.0f, inp, In, weight, In, 1.0f, out, Out);
}

void kao_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                         const float *inp, const float *weight, int B, int In, int Out) {
    kao_blas_single_threaded();
    if (dbias)
        for (int b = 0; b < B; b++)
            for (int o = 0; o < Out; o++) dbias[o] += dout[(size_t)b * Out + o];
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Out, In, B, 1.0f, dout, Out, inp, In, 1.0f, dweight, In);
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, In, Out, 1.0f, dout, Out, weight, In, 0.0f, dinp, In);
}

/* ---- residual and drop-path --------------------------------------------------------------- */

void kao_add_inplace(float *out, const float *x, size_t n) {
    long nblocks = (long)((n + BLOCK - 1) / BLOCK);
#pragma omp parallel for schedule(static)
    for (long blk = 0; blk < nblocks; blk++) {
        size_t i0 = (size_t)blk * BLOCK, i1 = i0 + BLOCK < n ? i0 + BLOCK : n;
        for (size_t i = i0; i < i1; i++) out[i] += x[i];
    }
}

void kao_scale_rows(float *x, const float *mask, int B, size_t n) {
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++)
        for (size_t i = 0; i < n; i++) x[(size_t)b * n + i] *= mask[b];
}
