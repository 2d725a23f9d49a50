/* metrics.h — verification metrics over scored pairs (cosine similarity, higher = same person).
 *
 * The field's measures and the original write-up's: accuracy at a fixed threshold (the original
 * used cosine 0.4), the best-threshold accuracy, ROC AUC (ties counted half, as scikit-learn's
 * roc_auc_score), EER (where the false-accept and false-reject rates cross, interpolated on the
 * ROC), and TAR at a given FAR (the largest true-accept rate with false-accept rate <= FAR).
 * The percentage score of the original inference code: -23.71·x² + 49.98·x + 73.69.
 *
 * Exact definitions (tests/test_metrics.c checks them against scikit-learn and an independent
 * NumPy computation, tools/gen_metrics_reference.py):
 *  - ROC: one point per distinct score t, accepting score >= t, plus the point (0, 0) where
 *    nothing is accepted (threshold +inf); scikit-learn's roc_curve(drop_intermediate=False).
 *  - AUC: the area under that polyline = P(score_same > score_diff) + ½·P(equal).
 *  - best_threshold: the ROC threshold (a score, or +inf for "reject all") of highest accuracy;
 *    among equal accuracies the highest threshold.
 *  - EER: the ROC polyline, walked from (0, 0) to (1, 1), crosses FPR = 1 − TPR exactly once;
 *    eer is the FPR there, found by linear interpolation between the two ROC points around the
 *    crossing (weight α), and eer_threshold interpolates their thresholds with the same α, the
 *    point (0, 0) counting as the highest score. Perfectly separable: eer 0 at the lowest
 *    same-pair score; all scores equal: eer 0.5 at that score.
 *  - TAR at FAR f: max TPR over the ROC points with FPR <= f (no interpolation; 0 if only (0, 0)).
 * Scores that are NaN, fewer than one pair of each kind: an error (kao_fail), nothing computed.
 */
#ifndef KAO_METRICS_H
#define KAO_METRICS_H

#include <stdbool.h>

typedef struct {
    int pairs, same_pairs, diff_pairs;
    double threshold;                 /* the fixed threshold the counts below use */
    int tp, fp, tn, fn;               /* same = score >= threshold */
    double accuracy;                  /* (tp + tn) / pairs */
    double best_threshold, best_accuracy;
    double auc, eer, eer_threshold;
    double tar_at_far_1e2, tar_at_far_1e3;
} kao_pair_metrics;

/* scores (n), same (n): true for a same-identity pair. Needs at least one pair of each kind. */
int kao_pair_metrics_compute(kao_pair_metrics *out, const float *scores, const bool *same, int n,
                             double threshold);

/* The original's percentage score of a cosine similarity. */
double kao_percentage_score(double cosine);

/* ROC points (false-accept, true-accept) at every distinct threshold, in increasing FAR; for plots.
 * fpr and tpr get n + 1 entries at most; returns how many were written, or KAO_ERR (the same
 * input errors as kao_pair_metrics_compute). */
int kao_roc_curve(float *fpr, float *tpr, const float *scores, const bool *same, int n);

#endif
