/* metrics.c — verification metrics over scored pairs (definitions in metrics.h). Everything is
 * read off one ROC walk: the pairs sorted by score, highest first, one ROC point per group of
 * equal scores, with exact integer counts (so AUC, TAR and the accuracies equal scikit-learn's
 * to rounding). */
#include "kao/metrics.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "kao/util.h"

typedef struct {
    float score;
    bool same;
} scored;

static int by_score_desc(const void *a, const void *b) {
    float x = ((const scored *)a)->score, y = ((const scored *)b)->score;
    return (x < y) - (x > y);
}

/* The ROC at every distinct threshold, point 0 = (0, 0) (nothing accepted, threshold +inf).
 * tp, fp (points): cumulative counts; thr (points): the lowest accepted score. */
typedef struct {
    int points, P, N;
    int *tp, *fp;
    float *thr;
} roc;

static void roc_free(roc *r) {
    free(r->tp);
    free(r->fp);
    free(r->thr);
}

static int roc_build(roc *r, const float *scores, const bool *same, int n) {
    *r = (roc){0};
    if (n < 2) return kao_fail("pair metrics: %d pair%s; needs at least one same-identity and one different-identity pair", n, n == 1 ? "" : "s");
    for (int i = 0; i < n; i++) {
        if (isnan(scores[i])) return kao_fail("pair metrics: the score of pair %d is not a number", i);
        if (same[i]) r->P++;
        else r->N++;
    }
    if (r->P == 0) return kao_fail("pair metrics: no same-identity pairs among %d pairs (needs at least one of each kind)", n);
    if (r->N == 0) return kao_fail("pair metrics: no different-identity pairs among %d pairs (needs at least one of each kind)", n);
    scored *s = kao_malloc((size_t)n * sizeof *s, "scored pairs");
    for (int i = 0; i < n; i++) s[i] = (scored){scores[i], same[i]};
    qsort(s, (size_t)n, sizeof *s, by_score_desc);
    r->tp = kao_malloc((size_t)(n + 1) * sizeof *r->tp, "roc");
    r->fp = kao_malloc((size_t)(n + 1) * sizeof *r->fp, "roc");
    r->thr = kao_malloc((size_t)(n + 1) * sizeof *r->thr, "roc");
    r->tp[0] = r->fp[0] = 0;
    r->thr[0] = INFINITY;
    int k = 0;
    for (int i = 0; i < n;) {
        int tp = r->tp[k], fp = r->fp[k];
        float v = s[i].score;
        for (; i < n && s[i].score == v; i++) {
            tp += s[i].same;
            fp += !s[i].same;
        }
        k++;
        r->tp[k] = tp;
        r->fp[k] = fp;
        r->thr[k] = v;
    }
    r->points = k + 1;
    free(s);
    return KAO_OK;
}

/* The last point with FPR <= far (0 when only the reject-all point). FPR and TPR both grow along
 * the walk, so it has the largest TPR and the lowest threshold of those points. */
static int last_point_within(const roc *r, double far) {
    int last = 0;
    for (int k = 1; k < r->points && (double)r->fp[k] / r->N <= far; k++) last = k;
    return last;
}

static double tar_at_far(const roc *r, double far) { return (double)r->tp[last_point_within(r, far)] / r->P; }

int kao_pair_metrics_compute(kao_pair_metrics *out, const float *scores, const bool *same, int n,
                             double threshold) {
    roc r;
    if (roc_build(&r, scores, same, n)) return KAO_ERR;
    kao_pair_metrics m = {.pairs = n, .same_pairs = r.P, .diff_pairs = r.N, .threshold = threshold};
    for (int i = 0; i < n; i++) {
        bool accept = scores[i] >= threshold;
        if (same[i]) accept ? m.tp++ : m.fn++;
        else accept ? m.fp++ : m.tn++;
    }
    m.accuracy = (double)(m.tp + m.tn) / n;

    /* Best balanced accuracy, compared exactly as tp·N + tn·P (= 2·P·N·balanced accuracy); point 0
     * (reject all, +inf) is no candidate (metrics.h); ties keep the highest threshold. */
    int best = 1;
    int64_t best_twice = -1;
    for (int k = 1; k < r.points; k++) {
        int64_t twice = (int64_t)r.tp[k] * r.N + (int64_t)(r.N - r.fp[k]) * r.P;
        if (twice > best_twice) best_twice = twice, best = k;
    }
    m.best_threshold = r.thr[best];
    m.best_balanced_accuracy = (double)best_twice / (2.0 * r.P * r.N);

    /* AUC: trapezoids between points, ties inside a group counted half. 2·area·P·N is an integer. */
    double twice_area = 0;
    for (int k = 1; k < r.points; k++)
        twice_area += (double)(r.fp[k] - r.fp[k - 1]) * (double)(r.tp[k] + r.tp[k - 1]);
    m.auc = twice_area / (2.0 * r.P * r.N);

    /* EER: g = FPR - FRR = FPR + TPR - 1 grows strictly along the walk from -1 to 1; the ROC
     * polyline meets FPR = FRR in the segment where g turns >= 0. */
    double g_prev = -1;
    for (int k = 1; k < r.points; k++) {
        double fpr = (double)r.fp[k] / r.N, tpr = (double)r.tp[k] / r.P, g = fpr + tpr - 1;
        if (g < 0) {
            g_prev = g;
            continue;
        }
        double fpr_prev = (double)r.fp[k - 1] / r.N, alpha = -g_prev / (g - g_prev);
        /* Point 0's threshold is +inf; for the interpolation it counts as the highest score. */
        double thr_prev = k == 1 ? r.thr[1] : r.thr[k - 1];
        m.eer = fpr_prev + alpha * (fpr - fpr_prev);
        m.eer_threshold = thr_prev + alpha * ((double)r.thr[k] - thr_prev);
        break;
    }
    m.tar_at_far_1e2 = tar_at_far(&r, 1e-2);
    m.tar_at_far_1e3 = tar_at_far(&r, 1e-3);
    int far_point = last_point_within(&r, 1e-3);
    m.far_1e3_threshold = far_point > 0 ? r.thr[far_point] : nextafterf(r.thr[1], INFINITY);
    roc_free(&r);
    *out = m;
    return KAO_OK;
}

double kao_percentage_score(double cosine) { return -23.71 * cosine * cosine + 49.98 * cosine + 73.69; }

int kao_roc_curve(kao_roc_point *out, const float *scores, const bool *same, int n) {
    roc r;
    if (roc_build(&r, scores, same, n)) return KAO_ERR;
    for (int k = 0; k < r.points; k++) out[k] = (kao_roc_point){(double)r.fp[k] / r.N, (double)r.tp[k] / r.P, r.thr[k]};
    int points = r.points;
    roc_free(&r);
    return points;
}
