/* curate_search.c — similarities of L2-normalised embeddings by blocked GEMM (curate_analysis.h).
 *
 * A·Bᵀ is never held whole (100,000 images would need 40 GB): cblas_sgemm computes it BLOCK_ROWS ×
 * BLOCK_COLS at a time into one buffer (OpenBLAS spreads each call over its threads), and a visitor
 * folds the block into what the caller keeps — a top-k per row, or row sums — with OpenMP over the
 * rows. Each row's result depends only on the values, visited in column order, so it is the same
 * for any thread count. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kao/curate_analysis.h"
#include "kao/util.h"

#define BLOCK_ROWS 1024
#define BLOCK_COLS 4096
#define CHUNK 16 /* columns tested at once against a row's k-th best: one vectorised max */

typedef void (*block_visitor)(void *ctx, const float *S, int r0, int nr, int c0, int nc);

static void for_each_block(const float *A, int na, const float *B, int nb, int dim, block_visitor visit, void *ctx) {
    int rows = na < BLOCK_ROWS ? na : BLOCK_ROWS, cols = nb < BLOCK_COLS ? nb : BLOCK_COLS;
    if (rows <= 0 || cols <= 0) return;
    float *S = kao_aligned_alloc((size_t)rows * cols * sizeof(float), "similarity block");
    for (int r0 = 0; r0 < na; r0 += BLOCK_ROWS) {
        int nr = na - r0 < BLOCK_ROWS ? na - r0 : BLOCK_ROWS;
        for (int c0 = 0; c0 < nb; c0 += BLOCK_COLS) {
            int nc = nb - c0 < BLOCK_COLS ? nb - c0 : BLOCK_COLS;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nr, nc, dim, 1.0f, A + (size_t)r0 * dim, dim,
                        B + (size_t)c0 * dim, dim, 0.0f, S, nc);
            visit(ctx, S, r0, nr, c0, nc);
        }
    }
    free(S);
}

void kao_normalize_rows(float *x, int n, int dim) {
    for (int i = 0; i < n; i++) {
        float *row = x + (size_t)i * dim;
        float norm = cblas_snrm2(dim, row, 1);
        if (norm > 0) cblas_sscal(dim, 1.0f / norm, row, 1);
    }
}

/* ---- top-k ------------------------------------------------------------------------------------ */

typedef struct {
    int *index;
    float *sim;
    int k;
    const int *label_a, *label_b;
    bool skip_self;
} topk_ctx;

/* Whether (s, j) ranks before (t, i): larger similarity, then lower index. */
static bool ranks_before(float s, int j, float t, int i) {
    return s > t || (s == t && i >= 0 && j < i);
}

static void insert(int *index, float *sim, int k, int j, float s) {
    int p = k - 1;
    while (p > 0 && ranks_before(s, j, sim[p - 1], index[p - 1])) {
        sim[p] = sim[p - 1];
        index[p] = index[p - 1];
        p--;
    }
    sim[p] = s;
    index[p] = j;
}

static void topk_row(const topk_ctx *c, const float *s, int i, int c0, int nc) {
    int *index = c->index + (size_t)i * c->k;
    float *sim = c->sim + (size_t)i * c->k;
    int last = c->k - 1;
    for (int j0 = 0; j0 < nc; j0 += CHUNK) {
        int n = nc - j0 < CHUNK ? nc - j0 : CHUNK;
        float best = -INFINITY;
        for (int j = 0; j < n; j++) best = s[j0 + j] > best ? s[j0 + j] : best;
        if (best < sim[last]) continue; /* the common case: nothing in the chunk makes the top-k */
        for (int j = j0; j < j0 + n; j++) {
            int col = c0 + j;
            if (!ranks_before(s[j], col, sim[last], index[last])) continue;
            if (c->skip_self && col == i) continue;
            if (c->label_a && c->label_b && c->label_a[i] == c->label_b[col]) continue;
            insert(index, sim, c->k, col, s[j]);
        }
    }
}

static void topk_visit(void *ctx, const float *S, int r0, int nr, int c0, int nc) {
    const topk_ctx *c = ctx;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < nr; r++) topk_row(c, S + (size_t)r * nc, r0 + r, c0, nc);
}

void kao_sim_topk(int *index, float *sim, int k, const float *A, int na, const float *B, int nb, int dim,
                  const int *label_a, const int *label_b, bool skip_self) {
    for (size_t i = 0; i < (size_t)na * k; i++) {
        index[i] = -1;
        sim[i] = -INFINITY;
    }
    topk_ctx c = {index, sim, k, label_a, label_b, skip_self};
    for_each_block(A, na, B, nb, dim, topk_visit, &c);
}

/* ---- row sums --------------------------------------------------------------------------------- */

static void sums_visit(void *ctx, const float *S, int r0, int nr, int c0, int nc) {
    double *sums = ctx;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < nr; r++) {
        double total = 0;
        for (int j = 0; j < nc; j++) total += S[(size_t)r * nc + j];
        sums[r0 + r] += total;
    }
}

void kao_sim_row_sums(double *sums, const float *A, int na, const float *B, int nb, int dim) {
    memset(sums, 0, (size_t)na * sizeof *sums);
    for_each_block(A, na, B, nb, dim, sums_visit, sums);
}
