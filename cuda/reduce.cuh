/* reduce.cuh — deterministic per-channel sums over the M = B·H·W rows of an NHWC tensor.
 *
 * A functor f(m, c, v) gives NV values for row m, channel c (e.g. BatchNorm's x and x², or a
 * depthwise weight gradient's k² products); colsum() returns totals (NV, C) in double:
 *   stage 1: the rows are cut into `chunks` contiguous chunks (a fixed function of M and NV,
 *            never of the GPU); block (column tile, chunk) has 32 × 8 threads: thread (x, y)
 *            sums rows y, y+8, … of its chunk for column 32·tile + x (consecutive x read
 *            consecutive channels: coalesced) in float over runs of 32 rows, each run added to a
 *            double total (as the CPU ops do: float runs much longer than that showed in BN's
 *            dgamma at 1e-5); the 8 totals are added in double in order, and the block writes
 *            part (chunks, NV, C);
 *   stage 2: totals[k][c] = Σ over chunks in order, in double.
 * No atomics: the same input gives the same bits on every run. */
#ifndef KAO_REDUCE_CUH
#define KAO_REDUCE_CUH

#include "cuda_internal.cuh"

enum { COLSUM_TX = 32, COLSUM_TY = 8, COLSUM_RUN = 32 };

typedef struct {
    int chunks;
    size_t rows_per_chunk;
} kao_colsum_plan;

/* At least 32 rows per chunk, at most 512 chunks, and NV·chunks <= 2048 (bounds the partials). */
static inline kao_colsum_plan kao_colsum_make_plan(size_t M, int nv) {
    size_t chunks = (M + 31) / 32;
    size_t cap = 2048 / (size_t)nv;
    if (cap > 512) cap = 512;
    if (cap < 1) cap = 1;
    if (chunks > cap) chunks = cap;
    if (chunks < 1) chunks = 1;
    kao_colsum_plan p;
    p.rows_per_chunk = (M + chunks - 1) / chunks;
    if (p.rows_per_chunk < 1) p.rows_per_chunk = 1; /* M = 0: one empty chunk, no division by zero */
    p.chunks = (int)((M + p.rows_per_chunk - 1) / p.rows_per_chunk);
    if (p.chunks < 1) p.chunks = 1;
    return p;
}

/* Doubles of workspace colsum() needs for the partials. */
static inline size_t kao_colsum_part_doubles(const kao_colsum_plan *p, int nv, int C) {
    return (size_t)p->chunks * nv * C;
}

template <int NV, class F>
__global__ void kao_colsum_partial_kernel(double *part, F f, size_t M, int C, size_t rows_per_chunk) {
    __shared__ double sh[COLSUM_TY][COLSUM_TX];
    int c = blockIdx.x * COLSUM_TX + threadIdx.x;
    size_t m0 = (size_t)blockIdx.y * rows_per_chunk;
    size_t m1 = m0 + rows_per_chunk < M ? m0 + rows_per_chunk : M;
    float acc[NV];
    double total[NV];
#pragma unroll
    for (int k = 0; k < NV; k++) acc[k] = 0.0f, total[k] = 0.0;
    if (c < C) {
        int run = 0;
        for (size_t m = m0 + threadIdx.y; m < m1; m += COLSUM_TY) {
            float v[NV];
            f(m, c, v);
#pragma unroll
            for (int k = 0; k < NV; k++) acc[k] += v[k];
            if (++run == COLSUM_RUN) {
#pragma unroll
                for (int k = 0; k < NV; k++) total[k] += acc[k], acc[k] = 0.0f;
                run = 0;
            }
        }
    }
#pragma unroll
    for (int k = 0; k < NV; k++) {
        sh[threadIdx.y][threadIdx.x] = total[k] + acc[k];
        __syncthreads();
        if (threadIdx.y == 0 && c < C) {
            double s = 0.0;
            for (int y = 0; y < COLSUM_TY; y++) s += sh[y][threadIdx.x];
            part[((size_t)blockIdx.y * NV + k) * C + c] = s;
        }
        __syncthreads();
    }
}

__global__ void kao_colsum_final_kernel(double *totals, const double *part, int chunks, int nv, int C);

/* totals (NV, C) device doubles; part: kao_colsum_part_doubles(plan) device doubles. */
template <int NV, class F>
void kao_colsum(double *totals, double *part, const kao_colsum_plan *plan, F f, size_t M, int C,
                kao_cuda_ctx *ctx, const char *op) {
    dim3 block(COLSUM_TX, COLSUM_TY), grid((unsigned)((C + COLSUM_TX - 1) / COLSUM_TX), (unsigned)plan->chunks);
    kao_colsum_partial_kernel<NV, F><<<grid, block, 0, ctx->stream>>>(part, f, M, C, plan->rows_per_chunk);
    KAO_LAUNCH_CHECK(ctx, op, "colsum partial: M %zu, C %d, %d values, %d chunks", M, C, NV, plan->chunks);
    kao_colsum_final_kernel<<<kao_blocks((size_t)NV * C), KAO_THREADS, 0, ctx->stream>>>(totals, part, plan->chunks, NV, C);
    KAO_LAUNCH_CHECK(ctx, op, "colsum final: C %d, %d values, %d chunks", C, NV, plan->chunks);
}

#endif
