/* metrics.h — verification metrics over scored pairs (cosine similarity, higher = same person).
 *
 * The field's measures and the original write-up's: accuracy at a fixed threshold (the original
 * used cosine 0.4), the threshold of best balanced accuracy, ROC AUC (ties counted half, as scikit-learn's
 * roc_auc_score), EER (where the false-accept and false-reject rates cross, interpolated on the
 * ROC), and TAR at a given FAR (the largest true-accept rate with false-accept rate <= FAR).
 * The percentage score of the original inference code: -23.71·x² + 49.98·x + 73.69.
 *
 * Exact definitions (tests/test_metrics.c checks them against scikit-learn and an independent
 * NumPy computation, tools/gen_metrics_reference.py):
 *  - ROC: one point per distinct score t, accepting score >= t, plus the point (0, 0) where
 *    nothing is accepted (threshold +inf); scikit-learn's roc_curve(drop_intermediate=False).
 *  - AUC: the area under that polyline = P(score_same > score_diff) + ½·P(equal).
 *  - best_threshold: the score of highest balanced accuracy, (TPR + TNR) / 2, as a threshold;
 *    among equal balanced accuracies the highest. Balanced, not plain, accuracy: with far more
 *    different than same pairs, rejecting everything maximises plain accuracy, a useless threshold.
 *    The reject-all point (+inf) is no candidate: its balanced accuracy, 0.5, is matched by
 *    accepting everything (the lowest score), so the best threshold is always a score, and it is
 *    the lowest score exactly when no threshold beats chance (all scores equal, inverted scores).
 *  - EER: the ROC polyline, walked from (0, 0) to (1, 1), crosses FPR = 1 − TPR exactly once;
 *    eer is the FPR there, found by linear interpolation between the two ROC points around the
 *    crossing (weight α), and eer_threshold interpolates their thresholds with the same α, the
 *    point (0, 0) counting as the highest score. Perfectly separable: eer 0 at the lowest
 *    same-pair score; all scores equal: eer 0.5 at that score.
 *  - TAR at FAR f: max TPR over the ROC points with FPR <= f (no interpolation; 0 if only (0, 0)).
 *  - threshold at FAR 1e-3: the lowest score t whose FPR (different pairs scoring >= t, over all
 *    different pairs) is <= 1e-3 — the threshold of the TAR@FAR=1e-3 point. When no score
 *    qualifies (the highest score has different pairs beyond the allowance), the float just above
 *    the highest score (accepting nothing). With fewer than 1000 different pairs the allowance is
 *    zero false accepts: it is then the threshold of no false accept on these pairs, which meets
 *    FAR 1e-3 here but does not measure it (callers say so, see KAO_FAR_1E3_MIN_PAIRS).
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
    double best_threshold, best_balanced_accuracy;
    double auc, eer, eer_threshold;
    double tar_at_far_1e2, tar_at_far_1e3;
    double far_1e3_threshold;
} kao_pair_metrics;

/* Different pairs needed for one false accept to be a FAR of at most 1e-3. */
#define KAO_FAR_1E3_MIN_PAIRS 1000

/* scores (n), same (n): true for a same-identity pair. Needs at least one pair of each kind. */
int kao_pair_metrics_compute(kao_pair_metrics *out, const float *scores, const bool *same, int n,
                             double threshold);

/* The original's percentage score of a cosine similarity. */
double kao_percentage_score(double cosine);

/* One ROC point: the false- and true-accept rates (exact quotients of the counts) when accepting
 * score >= threshold; the first point, (0, 0), has threshold +inf (nothing accepted). */
typedef struct {
    double far, tar;
    float threshold;
} kao_roc_point;

/* The ROC points at every distinct threshold, in increasing FAR (scikit-learn's
 * roc_curve(drop_intermediate=False): fpr, tpr, thresholds); for plots and roc.csv. out gets
 * n + 1 entries at most; returns how many were written, or KAO_ERR (the same input errors as
 * kao_pair_metrics_compute). */
int kao_roc_curve(kao_roc_point *out, const float *scores, const bool *same, int n);

#endif
