/* arcface.c — ArcFace loss forward and backward (arcface.h has the definition and the edges). */
#include "kao/arcface.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kao/util.h"

#define NORM_EPS 1e-12 /* F.normalize's eps */

kao_arcface_cfg kao_arcface_default_cfg(void) {
    return (kao_arcface_cfg){.margin_deg = 28.6, .scale = 64.0};
}

int kao_arcface_cfg_check(const kao_arcface_cfg *cfg) {
    if (!(cfg->margin_deg >= 0 && cfg->margin_deg < 180))
        return kao_fail("arcface: margin %g degrees outside [0, 180)", cfg->margin_deg);
    if (!(cfg->scale > 0)) return kao_fail("arcface: scale %g must be > 0", cfg->scale);
    return KAO_OK;
}

void kao_arcface_acts_create(kao_arcface_acts *a, int max_batch, int dim, int classes) {
    KAO_ASSERT(max_batch > 0 && dim > 0 && classes > 0, "%d %d %d", max_batch, dim, classes);
    size_t B = (size_t)max_batch, E = (size_t)dim, C = (size_t)classes;
    a->max_batch = max_batch;
    a->dim = dim;
    a->classes = classes;
    a->emb_hat = kao_aligned_alloc(B * E * sizeof(float), "arcface emb_hat");
    a->emb_norm = kao_aligned_alloc(B * sizeof(float), "arcface emb_norm");
    a->w_hat = kao_aligned_alloc(E * C * sizeof(float), "arcface w_hat");
    a->w_norm = kao_aligned_alloc(C * sizeof(float), "arcface w_norm");
    a->cosine = kao_aligned_alloc(B * C * sizeof(float), "arcface cosine");
    a->probs = kao_aligned_alloc(B * C * sizeof(float), "arcface probs");
    a->dtarget = kao_aligned_alloc(B * sizeof(float), "arcface dtarget");
    a->dcos = kao_aligned_alloc(B * C * sizeof(float), "arcface dcos");
    a->dw_hat = kao_aligned_alloc(E * C * sizeof(float), "arcface dw_hat");
    a->demb_hat = kao_aligned_alloc(B * E * sizeof(float), "arcface demb_hat");
    a->col_acc = kao_aligned_alloc(C * sizeof(double), "arcface col_acc");
}

void kao_arcface_acts_free(kao_arcface_acts *a) {
    free(a->emb_hat);
    free(a->emb_norm);
    free(a->w_hat);
    free(a->w_norm);
    free(a->cosine);
    free(a->probs);
    free(a->dtarget);
    free(a->dcos);
    free(a->dw_hat);
    free(a->demb_hat);
    free(a->col_acc);
    memset(a, 0, sizeof *a);
}

void kao_arcface_init_weight(float *W, int E, int C, kao_rng *rng) {
    size_t n = (size_t)E * (size_t)C;
    for (size_t i = 0; i < n; i++) W[i] = kao_rng_normal(rng);
}

void kao_arcface_weight_tensor(kao_tensor *t, int E, int C) {
    memset(t, 0, sizeof *t);
    strcpy(t->name, "W");
    t->ndim = 2;
    t->shape[0] = E;
    t->shape[1] = C;
    t->numel = (size_t)E * (size_t)C;
    t->offset = 0;
    t->role = KAO_ROLE_PARAM;
    t->no_decay = false;
    t->stage = -1;
    t->is_head = false;
}

/* ---- normalisation (F.normalize) and its backward ---------------------------------------- */

/* out (B, E) = x / norm per row; norm (B) = max(‖x‖, eps) */
static void normalize_rows(float *out, float *norm, const float *x, int B, int E) {
    for (int b = 0; b < B; b++) {
        const float *xb = x + (size_t)b * E;
        double ss = 0;
        for (int e = 0; e < E; e++) ss += (double)xb[e] * xb[e];
        double n = fmax(sqrt(ss), NORM_EPS);
        norm[b] = (float)n;
        float *ob = out + (size_t)b * E;
        for (int e = 0; e < E; e++) ob[e] = (float)(xb[e] / n);
    }
}

/* out (E, C) = W / norm per column; norm (C) = max(‖W[:, c]‖, eps); acc (C) scratch */
static void normalize_cols(float *out, float *norm, double *acc, const float *W, int E, int C) {
    for (int c = 0; c < C; c++) acc[c] = 0;
    for (int e = 0; e < E; e++) {
        const float *we = W + (size_t)e * C;
        for (int c = 0; c < C; c++) acc[c] += (double)we[c] * we[c];
    }
    for (int c = 0; c < C; c++) {
        acc[c] = fmax(sqrt(acc[c]), NORM_EPS);
        norm[c] = (float)acc[c];
    }
    for (int e = 0; e < E; e++) {
        const float *we = W + (size_t)e * C;
        float *oe = out + (size_t)e * C;
        for (int c = 0; c < C; c++) oe[c] = (float)(we[c] / acc[c]);
    }
}

/* A norm clamped to eps passes no gradient (clamp_min): then dx = dx̂ / eps. */
static bool norm_clamped(float norm) { return norm <= (float)NORM_EPS; }

/* ---- forward ----------------------------------------------------------------------------- */

void kao_arcface_cosine(kao_arcface_acts *a, const float *emb, const float *W, int B, int E, int C) {
    KAO_ASSERT(B > 0 && B <= a->max_batch && E == a->dim && C == a->classes,
               "batch %d (max %d), dim %d (%d), classes %d (%d)", B, a->max_batch, E, a->dim, C,
               a->classes);
    normalize_rows(a->emb_hat, a->emb_norm, emb, B, E);
    normalize_cols(a->w_hat, a->w_norm, a->col_acc, W, E, C);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, C, E, 1.0f, a->emb_hat, E, a->w_hat,
                C, 0.0f, a->cosine, C);
}

float kao_arcface_forward(kao_arcface_acts *a, const float *emb, const float *W, const int *labels,
                          int B, int E, int C, const kao_arcface_cfg *cfg) {
    kao_arcface_cosine(a, emb, W, B, E, C);
    const double m = cfg->margin_deg * (M_PI / 180.0), s = cfg->scale;
    const double cos_m = cos(m), sin_m = sin(m);
    double total = 0;
    for (int b = 0; b < B; b++) {
        const int y = labels[b];
        KAO_ASSERT(y >= 0 && y < C, "label %d of row %d outside [0, %d)", y, b, C);
        const float *cb = a->cosine + (size_t)b * C;
        /* the target logit and its derivative d t / d cos_y */
        double c = fmin(fmax((double)cb[y], -1.0), 1.0), t, dt;
        /* c = −1 (θ = π) takes the second branch, which m > 0 selects there anyway: with m = 0 the
         * first branch's dt would be sin m·c/sin θ = 0/0 = NaN (both branches give t = −1). */
        if (c > -1.0 && acos(c) <= M_PI - m) {
            double sin_t = sqrt(1.0 - c * c); /* >= 3.45e-4 for every float c < 1 */
            t = c * cos_m - sin_t * sin_m;    /* = cos(θ + m) */
            dt = c < 1.0 ? cos_m + sin_m * c / sin_t : 0.0; /* θ = 0: the symmetric subgradient */
        } else {
            t = c - m * sin_m;
            dt = 1.0;
        }
        a->dtarget[b] = (float)dt;
        /* cross-entropy by log-sum-exp with the max subtracted */
        double max = s * t;
        for (int j = 0; j < C; j++)
            if (j != y && s * cb[j] > max) max = s * cb[j];
        double sum = 0;
        for (int j = 0; j < C; j++) sum += exp((j == y ? s * t : s * cb[j]) - max);
        double lse = max + log(sum);
        float *pb = a->probs + (size_t)b * C;
        for (int j = 0; j < C; j++) pb[j] = (float)exp((j == y ? s * t : s * cb[j]) - lse);
        total += lse - s * t;
    }
    return (float)(total / B);
}

/* ---- backward ---------------------------------------------------------------------------- */

void kao_arcface_backward(float *d_emb, float *dW, kao_arcface_acts *a, const int *labels, int B,
                          int E, int C, const kao_arcface_cfg *cfg) {
    KAO_ASSERT(B > 0 && B <= a->max_batch && E == a->dim && C == a->classes, "shapes");
    const double s = cfg->scale;
    /* dcos (B, C): s · (p − onehot) / B, times d t / d cos at the target */
    for (int b = 0; b < B; b++) {
        const int y = labels[b];
        const float *pb = a->probs + (size_t)b * C;
        float *db = a->dcos + (size_t)b * C;
        for (int j = 0; j < C; j++) db[j] = (float)(s * pb[j] / B);
        db[y] = (float)(s * ((double)pb[y] - 1.0) / B * a->dtarget[b]);
    }
    if (d_emb) {
        /* dê (B, E) = dcos (B, C) · Ŵᵀ (C, E), then through x / ‖x‖ */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, E, C, 1.0f, a->dcos, C, a->w_hat,
                    C, 0.0f, a->demb_hat, E);
        for (int b = 0; b < B; b++) {
            const float *eh = a->emb_hat + (size_t)b * E, *dh = a->demb_hat + (size_t)b * E;
            float *dx = d_emb + (size_t)b * E;
            const double n = a->emb_norm[b];
            double dot = 0;
            if (!norm_clamped(a->emb_norm[b]))
                for (int e = 0; e < E; e++) dot += (double)eh[e] * dh[e];
            for (int e = 0; e < E; e++) dx[e] = (float)((dh[e] - eh[e] * dot) / n);
        }
    }
    if (dW) {
        /* dŴ (E, C) = êᵀ (E, B) · dcos (B, C), then through W / ‖W‖ per column */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, E, C, B, 1.0f, a->emb_hat, E, a->dcos,
                    C, 0.0f, a->dw_hat, C);
        double *dot = a->col_acc;
        for (int c = 0; c < C; c++) dot[c] = 0;
        for (int e = 0; e < E; e++) {
            const float *wh = a->w_hat + (size_t)e * C, *dh = a->dw_hat + (size_t)e * C;
            for (int c = 0; c < C; c++) dot[c] += (double)wh[c] * dh[c];
        }
        for (int c = 0; c < C; c++)
            if (norm_clamped(a->w_norm[c])) dot[c] = 0;
        for (int e = 0; e < E; e++) {
            const float *wh = a->w_hat + (size_t)e * C, *dh = a->dw_hat + (size_t)e * C;
            float *dwe = dW + (size_t)e * C;
            for (int c = 0; c < C; c++)
                dwe[c] += (float)((dh[c] - wh[c] * dot[c]) / a->w_norm[c]);
        }
    }
}

int kao_arcface_correct(const float *cosine, const int *labels, int B, int C) {
    int correct = 0;
    for (int b = 0; b < B; b++) {
        const float *cb = cosine + (size_t)b * C;
        int best = 0;
        for (int j = 1; j < C; j++)
            if (cb[j] > cb[best]) best = j;
        correct += best == labels[b];
    }
    return correct;
}
