/* check.h — the tests' few assertions. Every failed check prints file, line and the values;
 * the test's exit status is non-zero when any check failed. check_summary() prints the
 * "N passed, N failed" line that ctest logs and CI read. */
#ifndef KAO_TEST_CHECK_H
#define KAO_TEST_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

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

static inline int check_summary(const char *name) {
    printf("%s: %d passed, %d failed\n", name, check_passed, check_failed);
    return check_failed ? 1 : 0;
}

#endif
