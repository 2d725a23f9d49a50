/* check.h — the tests' few assertions. Every failed check prints file, line and the values;
 * the test's exit status is non-zero when any check failed. check_summary() prints the
 * "N passed, N failed" line that ctest logs and CI read. The ref_* readers load PyTorch reference
 * data (tests/data/<file>.h5, written by tools/gen_*_reference.py) through h5io. */
#ifndef KAO_TEST_CHECK_H
#define KAO_TEST_CHECK_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "kao/h5io.h"
#include "kao/rng.h"
#include "kao/util.h"

static int check_passed, check_failed;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (cond) {                                                                                \
            check_passed++;                                                                        \
        } else {                                                                                   \
            check_failed++;                                                                        \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

/* Largest |a-b| / (atol + rtol·|b|) over n values; <= 1 means within tolerance (llm.c style). */
static inline double check_max_violation(const float *a, const float *b, size_t n, double atol,
                                         double rtol, size_t *worst) {
    double max = 0;
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)a[i] - (double)b[i]);
        double v = err / (atol + rtol * fabs((double)b[i]));
        if (!(v <= max)) { /* also catches NaN */
            max = isnan(v) ? INFINITY : v;
            if (worst) *worst = i;
        }
    }
    return max;
}

#define CHECK_CLOSE(what, got, want, n, atol, rtol)                                                \
    do {                                                                                           \
        size_t worst_ = 0;                                                                         \
        double v_ = check_max_violation((got), (want), (n), (atol), (rtol), &worst_);              \
        CHECK(v_ <= 1.0, "%s: element %zu is %.9g, expected %.9g (atol %g, rtol %g)", (what),      \
              worst_, (double)(got)[worst_], (double)(want)[worst_], (double)(atol), (double)(rtol)); \
    } while (0)

/* ---- reference data ----------------------------------------------------------------------
 * A missing or misshapen reference is a failed test: the readers print h5io's message (it names
 * the file and the object) and exit 1. Datasets and attributes are named by group ("a/b"; NULL is
 * the root) and name, as h5io names attributes; numeric types are converted (float64 stays exact
 * in the double readers). */

static inline void ref_die(void) {
    fprintf(stderr, "FAIL reference data: %s\n", kao_last_error());
    exit(1);
}

/* Opens tests/data/<file> under $KAO_SOURCE_DIR (default: the current folder). */
static inline void ref_open(kao_h5_file *f, const char *file) {
    const char *root = getenv("KAO_SOURCE_DIR");
    char path[KAO_H5_PATH_MAX];
    snprintf(path, sizeof path, "%s/tests/data/%s", root ? root : ".", file);
    if (kao_h5_open(f, path)) ref_die();
}

typedef enum { REF_F32, REF_F64, REF_I64 } ref_type;

/* Dataset group/name, any shape, into a new buffer of the given type; its element count must be
 * numel (0: any, returned through *count when count is not NULL). */
static inline void *ref_read(const kao_h5_file *f, const char *group, const char *name, ref_type type,
                             int64_t numel, int64_t *count) {
    char path[512];
    snprintf(path, sizeof path, "%s%s%s", group ? group : "", group ? "/" : "", name);
    kao_h5_info info;
    if (kao_h5_dataset_info(f, path, &info)) ref_die();
    if (numel && info.numel != numel) {
        kao_fail("%s: dataset '%s' has %lld elements, expected %lld", f->path, path, (long long)info.numel,
                 (long long)numel);
        ref_die();
    }
    void *out = kao_malloc((size_t)info.numel * (type == REF_F32 ? sizeof(float) : 8), path);
    int rc = type == REF_F32   ? kao_h5_read_f32(f, path, out, info.ndim, info.shape)
             : type == REF_F64 ? kao_h5_read_f64(f, path, out, info.ndim, info.shape)
                               : kao_h5_read_i64(f, path, out, info.ndim, info.shape);
    if (rc) ref_die();
    if (count) *count = info.numel;
    return out;
}

static inline float *ref_f32(const kao_h5_file *f, const char *group, const char *name, int64_t numel) {
    return ref_read(f, group, name, REF_F32, numel, NULL);
}
static inline double *ref_f64(const kao_h5_file *f, const char *group, const char *name, int64_t numel) {
    return ref_read(f, group, name, REF_F64, numel, NULL);
}
/* An integer dataset as int (labels, flags). */
static inline int *ref_int(const kao_h5_file *f, const char *group, const char *name, int64_t numel) {
    int64_t n;
    int64_t *wide = ref_read(f, group, name, REF_I64, numel, &n);
    int *out = kao_malloc((size_t)n * sizeof *out, name);
    for (int64_t i = 0; i < n; i++) out[i] = (int)wide[i];
    free(wide);
    return out;
}
static inline double ref_scalar(const kao_h5_file *f, const char *group, const char *name) {
    double *p = ref_f64(f, group, name, 1), v = *p;
    free(p);
    return v;
}

/* A numeric attribute as double; a string attribute into out. */
static inline double ref_attr(const kao_h5_file *f, const char *group, const char *name) {
    double v;
    if (kao_h5_read_attr_f64(f, group, name, &v)) ref_die();
    return v;
}
static inline void ref_attr_str(const kao_h5_file *f, const char *group, const char *name, char *out,
                                size_t size) {
    if (kao_h5_read_attr_str(f, group, name, out, size)) ref_die();
}

/* Test buffers: n floats uniform in [lo, hi) from r, or zeros. Free with free(). */
static inline float *check_uniform(kao_rng *r, size_t n, float lo, float hi) {
    float *x = kao_malloc(n * sizeof(float), "test buffer");
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * kao_rng_uniform(r);
    return x;
}

static inline float *check_zeros(size_t n) { return kao_calloc(n, sizeof(float), "test buffer"); }

static inline int check_summary(const char *name) {
    printf("%s: %d passed, %d failed\n", name, check_passed, check_failed);
    return check_failed ? 1 : 0;
}

#endif
