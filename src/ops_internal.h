/* ops_internal.h — what the src/ops_*.c files share: 8-float vectors, the vector sigmoid, and the
 * threading rule for OpenBLAS. Private to the op layer; not installed.
 *
 * Threading: the fast ops parallelise with OpenMP and call OpenBLAS single-threaded (from inside
 * their own parallel regions, each thread on its own block of rows). One thread pool instead of
 * two means no oversubscription and no OpenBLAS worker threads spinning while OpenMP runs; it is
 * also faster for the thin GEMMs of convolutions (measured on the 2-core target: 105 vs 82 GFLOP/s
 * for [100352×144]·[144×64], 65 vs 44 for [401408×288]·[288×16]). kao_blas_single_threaded()
 * therefore sets openblas_set_num_threads(1) for the whole process. */
#ifndef KAO_OPS_INTERNAL_H
#define KAO_OPS_INTERNAL_H

#include "kao/ops.h" /* first: cblas.h brings complex.h, whose macro I would break its prototypes */

#include <cblas.h>
#include <math.h>
#include <stddef.h>
#include <string.h>
#ifdef __AVX__
#include <immintrin.h>
#endif

#ifdef _OPENMP
#include <omp.h>
static inline int kao_max_threads(void) { return omp_get_max_threads(); }
static inline int kao_thread_num(void) { return omp_get_thread_num(); }
static inline int kao_num_threads(void) { return omp_get_num_threads(); }
#else
static inline int kao_max_threads(void) { return 1; }
static inline int kao_thread_num(void) { return 0; }
static inline int kao_num_threads(void) { return 1; }
#endif

static inline void kao_blas_single_threaded(void) {
    if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
}

/* ops_conv_direct.c: direct NHWC convolution kernels (see there). The packed weights take
 * kao_direct_packed_floats(s) floats; the dweight scratch kao_direct_wgrad_floats(s) per thread. */
/* The epilogue of kao_conv_epilogue, run by the thread that owns a piece of the output (ops_conv.c):
 * scale/shift padded to whole 16-lane blocks (1 and 0 where absent), per-thread partial sums. */
typedef struct {
    int C, padded;          /* channels; rounded up to 16 */
    kao_act act;
    float *scale, *shift;   /* (padded) */
    float *fsum;            /* (threads, 2, padded): float sums since the last flush */
    double *dsum;           /* (threads, 2, padded) */
    int *pending;           /* (threads) pixels in fsum */
    double *sums;           /* the caller's (2, C), or NULL */
} kao_epi;
/* Returns NULL when ep asks for nothing (plain convolution). */
kao_epi *kao_epi_begin(const kao_conv_epilogue *ep, int C);
/* rows rows of C channels at y (row stride C), in place, channels [c0, c0 + cols) of them; the
 * calling thread's sums. */
void kao_epi_rows(kao_epi *e, float *y, size_t rows, int c0, int cols);
/* After npix more pixels went into the calling thread's float sums: moves them to its double
 * sums once 256 have gathered (float rounding stays ~1e-7 of the sums). */
void kao_epi_flush(kao_epi *e, int npix);
/* Reduces the sums into ep->sums and frees e (NULL is fine). */
void kao_epi_end(kao_epi *e);

size_t kao_direct_packed_floats(const kao_conv_shape *s);
void kao_direct_pack_forward(float *wd, const float *weight, const kao_conv_shape *s);
void kao_direct_pack_backward(float *wt, const float *weight, const kao_conv_shape *s);
void kao_direct_forward(float *out, const float *inp, const float *wd, kao_epi *e, const kao_conv_shape *s);
void kao_direct_backward_input(float *dinp, const float *dout, const float *wt, const kao_conv_shape *s);
size_t kao_direct_wgrad_floats(const kao_conv_shape *s);
void kao_direct_backward_weight(float *dweight, const float *dout, const float *inp, const kao_conv_shape *s,
                                float *scratch);

/* GCC/Clang vector extensions: one AVX2 register with -march=native, two SSE registers without
 * (then GCC notes that passing them changes the ABI: irrelevant, every user is static inline). */
#if defined(__GNUC__) && !defined(__AVX__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif
typedef float kao_v8f __attribute__((vector_size(32)));
typedef int kao_v8i __attribute__((vector_size(32)));

static inline kao_v8f kao_load8(const float *p) {
    kao_v8f v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void kao_store8(float *p, kao_v8f v) { memcpy(p, &v, sizeof v); }
static inline kao_v8f kao_splat8(float x) { return (kao_v8f){x, x, x, x, x, x, x, x}; }
static inline kao_v8f kao_select8(kao_v8i mask, kao_v8f a, kao_v8f b) { /* mask ? a : b */
    return (kao_v8f)(((kao_v8i)a & mask) | ((kao_v8i)b & ~mask));
}
/* a·b + c, fused where the CPU has FMA (ISO C mode leaves -ffp-contract off, so say it). */
static inline kao_v8f kao_fma8(kao_v8f a, kao_v8f b, kao_v8f c) {
#ifdef __FMA__
    return (kao_v8f)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
#else
    return a * b + c;
#endif
}

/* exp(x) for x <= 0 (Cephes expf: range reduction by ln 2 in two parts, degree-6 polynomial;
 * about 1 ulp). Below -87.3 (where 2^n would leave the normal range) it returns 0. */
static inline kao_v8f kao_exp_neg8(kao_v8f x) {
    kao_v8i underflow = x < kao_splat8(-87.3f);
    x = kao_select8(underflow, kao_splat8(-87.3f), x);
#ifdef __AVX__
    kao_v8f n = (kao_v8f)_mm256_round_ps((__m256)(x * kao_splat8(1.44269504088896341f)),
                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
#else
    const kao_v8f magic = kao_splat8(12582912.0f); /* 1.5·2^23: adding it rounds to an integer */
    kao_v8f n = (x * kao_splat8(1.44269504088896341f) + magic) - magic;
#endif
    kao_v8f r = kao_fma8(n, kao_splat8(-0.693359375f), x);
    r = kao_fma8(n, kao_splat8(2.12194440e-4f), r);
    kao_v8f p = kao_splat8(1.9875691500e-4f);
    p = kao_fma8(p, r, kao_splat8(1.3981999507e-3f));
    p = kao_fma8(p, r, kao_splat8(8.3334519073e-3f));
    p = kao_fma8(p, r, kao_splat8(4.1665795894e-2f));
    p = kao_fma8(p, r, kao_splat8(1.6666665459e-1f));
    p = kao_fma8(p, r, kao_splat8(5.0000001201e-1f));
    p = kao_fma8(p, r * r, r) + kao_splat8(1.0f);
    kao_v8i bits = (__builtin_convertvector(n, kao_v8i) + 127) << 23; /* 2^n */
    kao_v8f e = p * (kao_v8f)bits;
    return kao_select8(underflow, kao_splat8(0.0f), e);
}

/* 1/d for d in [1, 2]: the 12-bit hardware estimate and one Newton step (~2e-7 relative), a
 * third of the cost of a division. */
static inline kao_v8f kao_recip12(kao_v8f d) {
#ifdef __AVX__
    kao_v8f r = (kao_v8f)_mm256_rcp_ps((__m256)d);
    return r * (kao_splat8(2.0f) - d * r);
#else
    return kao_splat8(1.0f) / d;
#endif
}

/* sigmoid(x) and 1 - sigmoid(x) = sigmoid(-x), both from e = exp(-|x|) (nothing overflows) and
 * both to full relative precision (1 - s in float would lose it where s ≈ 1, as in silu' for
 * x > 10). Within ~3e-7 relative of double for |x| <= 87 (tests/test_ops_forward.c checks 1e-6);
 * below -87.3 the sigmoid (< 1.2e-38) is returned as 0. */
static inline void kao_sigmoid_pair8(kao_v8f x, kao_v8f *s, kao_v8f *one_minus_s) {
    kao_v8f ax = (kao_v8f)((kao_v8i)x & ~(kao_v8i)kao_splat8(-0.0f));
    kao_v8f e = kao_exp_neg8(-ax);
    kao_v8f big = kao_recip12(kao_splat8(1.0f) + e), small = e * big;
    kao_v8i pos = x >= kao_splat8(0.0f);
    *s = kao_select8(pos, big, small);
    if (one_minus_s) *one_minus_s = kao_select8(pos, small, big);
}

static inline kao_v8f kao_sigmoid8(kao_v8f x) {
    kao_v8f s;
    kao_sigmoid_pair8(x, &s, NULL);
    return s;
}

/* The epilogue on a register tile: P pixels × the 16 channels [c0, c0 + 16) of res (P, 16) go
 * to outp[j] + c0 (cnt of the 16 exist); their sums first go to the thread's float sums. */
static inline void kao_epi_tile(kao_epi *e, float *const *outp, const float *res, int P, int c0, int cnt) {
    kao_v8f sc0 = kao_load8(e->scale + c0), sc1 = kao_load8(e->scale + c0 + 8);
    kao_v8f sh0 = kao_load8(e->shift + c0), sh1 = kao_load8(e->shift + c0 + 8);
    kao_v8f a0 = kao_splat8(0.0f), a1 = a0, q0 = a0, q1 = a0;
    for (int j = 0; j < P; j++) {
        kao_v8f y0 = kao_load8(res + 16 * j), y1 = kao_load8(res + 16 * j + 8);
        a0 += y0, a1 += y1, q0 = kao_fma8(y0, y0, q0), q1 = kao_fma8(y1, y1, q1);
        y0 = kao_fma8(y0, sc0, sh0), y1 = kao_fma8(y1, sc1, sh1);
        if (e->act == KAO_ACT_SILU) y0 = y0 * kao_sigmoid8(y0), y1 = y1 * kao_sigmoid8(y1);
        float *o = outp[j] + c0;
        if (cnt == 16) {
            kao_store8(o, y0), kao_store8(o + 8, y1);
        } else {
            float t[16];
            kao_store8(t, y0), kao_store8(t + 8, y1);
            memcpy(o, t, (size_t)cnt * sizeof(float));
        }
    }
    if (e->sums) {
        float *s1 = e->fsum + (size_t)kao_thread_num() * 2 * e->padded + c0, *s2 = s1 + e->padded;
        kao_store8(s1, kao_load8(s1) + a0), kao_store8(s1 + 8, kao_load8(s1 + 8) + a1);
        kao_store8(s2, kao_load8(s2) + q0), kao_store8(s2 + 8, kao_load8(s2 + 8) + q1);
    }
}

/* Loads n < 8 floats into a zero-padded vector; stores the first n lanes back. */
static inline kao_v8f kao_load_tail(const float *p, size_t n) {
    float t[8] = {0};
    memcpy(t, p, n * sizeof(float));
    return kao_load8(t);
}
static inline void kao_store_tail(float *p, kao_v8f v, size_t n) {
    float t[8];
    kao_store8(t, v);
    memcpy(p, t, n * sizeof(float));
}

/* out[i] = sigmoid(x[i]); out may equal x. */
static inline void kao_sigmoid_array(float *out, const float *x, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) kao_store8(out + i, kao_sigmoid8(kao_load8(x + i)));
    if (i < n) kao_store_tail(out + i, kao_sigmoid8(kao_load_tail(x + i, n - i)), n - i);
}

/* out[i] = x[i]·sigmoid(x[i]); out may equal x. */
static inline void kao_silu_array(float *out, const float *x, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        kao_v8f v = kao_load8(x + i);
        kao_store8(out + i, v * kao_sigmoid8(v));
    }
    if (i < n) {
        kao_v8f v = kao_load_tail(x + i, n - i);
        kao_store_tail(out + i, v * kao_sigmoid8(v), n - i);
    }
}

/* dinp[i] = dout[i]·silu'(x[i]), silu' = s·(1 + x·(1 - s)), s = sigmoid(x); dinp may equal dout. */
static inline kao_v8f kao_silu_grad8(kao_v8f dout, kao_v8f x) {
    kao_v8f s, t;
    kao_sigmoid_pair8(x, &s, &t);
    return dout * s * (kao_splat8(1.0f) + x * t);
}
static inline void kao_silu_grad_array(float *dinp, const float *dout, const float *x, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) kao_store8(dinp + i, kao_silu_grad8(kao_load8(dout + i), kao_load8(x + i)));
    if (i < n)
        kao_store_tail(dinp + i, kao_silu_grad8(kao_load_tail(dout + i, n - i), kao_load_tail(x + i, n - i)), n - i);
}

#endif
