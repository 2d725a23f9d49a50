/* Verification metrics against scikit-learn (tests/data/metrics_reference.h5, written by
 * tools/gen_metrics_reference.py): ROC points, AUC (1e-9), EER and its threshold (1e-6), TAR at
 * FAR, the threshold at FAR 1e-3, the threshold of best balanced accuracy, and the exact counts at
 * the threshold, on hand-made cases (ties, all-equal scores, separable, inverted, few same pairs
 * among many different ones) and random ones. Then the input errors, the percentage score, and
 * kao_verify_labeled (the training loop's validation) against a brute-force pair list and its
 * balanced sampling. */
#include "check.h"
#include "kao/metrics.h"
#include "kao/rng.h"
#include "kao/util.h"
#include "kao/verify.h"

#include <stdint.h>
#include <string.h>

static bool error_has(const char *part) {
    bool ok = strstr(kao_last_error(), part) != NULL;
    if (!ok) fprintf(stderr, "  error was: %s\n  expected it to contain: %s\n", kao_last_error(), part);
    return ok;
}

static void check_case(const kao_h5_file *f, int k) {
    char group[32], name[64];
    snprintf(group, sizeof group, "case%d", k);
    ref_attr_str(f, group, "name", name, sizeof name);
    int64_t count;
    float *scores = ref_read(f, group, "scores", REF_F32, 0, &count);
    size_t n = (size_t)count;
    int *same_int = ref_int(f, group, "same", count);
    double *fpr_ref = ref_read(f, group, "fpr", REF_F64, 0, &count);
    size_t points = (size_t)count;
    double *tpr_ref = ref_f64(f, group, "tpr", count);
    bool *same = kao_malloc(n * sizeof *same, "same");
    for (size_t i = 0; i < n; i++) same[i] = same_int[i] != 0;
    double threshold = ref_attr(f, group, "threshold");
#define REF(key) ref_attr(f, group, key)

    kao_pair_metrics m;
    int rc = kao_pair_metrics_compute(&m, scores, same, (int)n, threshold);
    CHECK(rc == KAO_OK, "%s: %s", name, kao_last_error());
    CHECK(m.pairs == (int)n && m.same_pairs == (int)REF("same_pairs") && m.diff_pairs == (int)REF("diff_pairs"),
          "%s: pairs %d/%d/%d", name, m.pairs, m.same_pairs, m.diff_pairs);
    CHECK(m.threshold == threshold, "%s: threshold %g", name, m.threshold);
    CHECK(m.tp == (int)REF("tp") && m.fp == (int)REF("fp") && m.tn == (int)REF("tn") && m.fn == (int)REF("fn"),
          "%s: tp fp tn fn = %d %d %d %d, expected %g %g %g %g", name, m.tp, m.fp, m.tn, m.fn, REF("tp"),
          REF("fp"), REF("tn"), REF("fn"));
    CHECK(fabs(m.accuracy - REF("accuracy")) <= 1e-12, "%s: accuracy %.15g vs %.15g", name, m.accuracy, REF("accuracy"));
    CHECK(fabs(m.auc - REF("auc")) <= 1e-9, "%s: auc %.15g vs %.15g", name, m.auc, REF("auc"));
    CHECK(fabs(m.eer - REF("eer")) <= 1e-6, "%s: eer %.12g vs %.12g", name, m.eer, REF("eer"));
    CHECK(fabs(m.eer_threshold - REF("eer_threshold")) <= 1e-6, "%s: eer threshold %.12g vs %.12g", name,
          m.eer_threshold, REF("eer_threshold"));
    CHECK(m.tar_at_far_1e2 == REF("tar_at_far_1e2") && m.tar_at_far_1e3 == REF("tar_at_far_1e3"),
          "%s: tar %.15g %.15g vs %.15g %.15g", name, m.tar_at_far_1e2, m.tar_at_far_1e3, REF("tar_at_far_1e2"),
          REF("tar_at_far_1e3"));
    CHECK(m.best_threshold == REF("best_threshold"), "%s: best threshold %.9g vs %.9g", name, m.best_threshold,
          REF("best_threshold"));
    CHECK(fabs(m.best_balanced_accuracy - REF("best_balanced_accuracy")) <= 1e-12,
          "%s: best balanced accuracy %.15g vs %.15g", name, m.best_balanced_accuracy, REF("best_balanced_accuracy"));
    CHECK(m.far_1e3_threshold == REF("far_1e3_threshold"), "%s: threshold at FAR 1e-3 %.9g vs %.9g", name,
          m.far_1e3_threshold, REF("far_1e3_threshold"));
#undef REF

    kao_roc_point *roc = kao_malloc((n + 1) * sizeof *roc, "roc");
    int got = kao_roc_curve(roc, scores, same, (int)n);
    CHECK(got == (int)points, "%s: %d ROC points, expected %zu", name, got, points);
    for (int i = 0; got == (int)points && i < got; i++) /* the same quotients of integers: exact */
        CHECK(roc[i].far == fpr_ref[i] && roc[i].tar == tpr_ref[i], "%s: ROC point %d (%.17g, %.17g), expected (%.17g, %.17g)",
              name, i, roc[i].far, roc[i].tar, fpr_ref[i], tpr_ref[i]);
    free(roc);
    free(same);
    free(scores);
    free(same_int);
    free(fpr_ref);
    free(tpr_ref);
}

static void check_errors(void) {
    kao_pair_metrics m;
    float s[3] = {0.1f, 0.2f, 0.3f};
    bool all_same[3] = {true, true, true}, all_diff[3] = {false, false, false}, mixed[3] = {true, false, true};
    kao_roc_point roc[4];
    CHECK(kao_pair_metrics_compute(&m, s, all_diff, 3, 0.4) == KAO_ERR && error_has("no same-identity pairs"), "no same");
    CHECK(kao_pair_metrics_compute(&m, s, all_same, 3, 0.4) == KAO_ERR && error_has("no different-identity pairs"), "no diff");
    CHECK(kao_pair_metrics_compute(&m, s, mixed, 1, 0.4) == KAO_ERR && error_has("needs at least one"), "one pair");
    CHECK(kao_pair_metrics_compute(&m, s, mixed, 0, 0.4) == KAO_ERR, "no pairs");
    CHECK(kao_roc_curve(roc, s, all_same, 3) == KAO_ERR && error_has("no different-identity pairs"), "roc no diff");
    float nan_scores[3] = {0.1f, NAN, 0.3f};
    CHECK(kao_pair_metrics_compute(&m, nan_scores, mixed, 3, 0.4) == KAO_ERR && error_has("pair 1 is not a number"), "nan");
}

/* The original's formula (seed write-up: round(-23.71 x² + 49.98 x + 73.69, 2)); 0.4 gives 89.89,
 * the write-up's "90% at threshold 0.4". */
static void check_percentage(void) {
    CHECK(fabs(kao_percentage_score(0.4) - (-23.71 * 0.16 + 49.98 * 0.4 + 73.69)) < 1e-12, "pct 0.4");
    CHECK(fabs(kao_percentage_score(0.0) - 73.69) < 1e-12, "pct 0");
    CHECK(fabs(kao_percentage_score(1.0) - 99.96) < 1e-12, "pct 1");
}

/* kao_verify_labeled against the same metrics on a brute-force list of every pair. */
static void check_labeled(void) {
    enum { N = 60, E = 8, IDS = 12 };
    float emb[N * E];
    int labels[N];
    kao_rng r;
    kao_rng_seed(&r, 7, 0);
    float centers[IDS * E];
    for (int i = 0; i < IDS * E; i++) centers[i] = kao_rng_normal(&r);
    for (int i = 0; i < N; i++) {
        labels[i] = (int)kao_rng_below(&r, IDS);
        for (int j = 0; j < E; j++) emb[i * E + j] = centers[labels[i] * E + j] + 0.8f * kao_rng_normal(&r);
    }
    int total = N * (N - 1) / 2, k = 0;
    float *scores = kao_malloc((size_t)total * sizeof *scores, "scores");
    bool *same = kao_malloc((size_t)total * sizeof *same, "same");
    int n_same = 0;
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++) {
            double dot = 0, na = 0, nb = 0;
            for (int c = 0; c < E; c++) {
                dot += (double)emb[i * E + c] * emb[j * E + c];
                na += (double)emb[i * E + c] * emb[i * E + c];
                nb += (double)emb[j * E + c] * emb[j * E + c];
            }
            scores[k] = (float)(dot / sqrt(na * nb));
            same[k] = labels[i] == labels[j];
            n_same += same[k++];
        }
    kao_pair_metrics want, got;
    CHECK(kao_pair_metrics_compute(&want, scores, same, total, 0.4) == KAO_OK, "brute force");
    /* No cap, no ratio: every pair. */
    kao_pair_sampling all = {.seed = 1};
    CHECK(kao_verify_labeled(&got, emb, labels, N, E, &all, 0.4) == KAO_OK, "%s", kao_last_error());
    CHECK(got.pairs == total && got.same_pairs == n_same, "pairs %d same %d", got.pairs, got.same_pairs);
    CHECK(fabs(got.auc - want.auc) < 1e-12 && fabs(got.eer - want.eer) < 1e-12 && got.tp == want.tp &&
              got.fp == want.fp && got.best_balanced_accuracy == want.best_balanced_accuracy,
          "labeled auc %.12g vs %.12g, eer %.12g vs %.12g", got.auc, want.auc, got.eer, want.eer);

    /* A sample of 200 different pairs: the count is exact, a seed repeats, another seed differs. */
    kao_pair_metrics a, b, c;
    kao_pair_sampling s5 = {.max_pairs = n_same + 200, .seed = 5}, s6 = {.max_pairs = n_same + 200, .seed = 6};
    CHECK(kao_verify_labeled(&a, emb, labels, N, E, &s5, 0.4) == KAO_OK, "%s", kao_last_error());
    CHECK(kao_verify_labeled(&b, emb, labels, N, E, &s5, 0.4) == KAO_OK, "%s", kao_last_error());
    CHECK(kao_verify_labeled(&c, emb, labels, N, E, &s6, 0.4) == KAO_OK, "%s", kao_last_error());
    CHECK(a.same_pairs == n_same && a.diff_pairs == 200, "sampled: %d same, %d diff", a.same_pairs, a.diff_pairs);
    CHECK(a.auc == b.auc && a.eer == b.eer && a.fp == b.fp && a.best_threshold == b.best_threshold,
          "same seed, same metrics");
    CHECK(a.auc != c.auc || a.fp != c.fp, "another seed, another sample");

    int one_id[4] = {3, 3, 3, 3}, singletons[4] = {0, 1, 2, 3};
    CHECK(kao_verify_labeled(&a, emb, one_id, 4, E, &all, 0.4) == KAO_ERR && error_has("different-identity"), "one identity");
    CHECK(kao_verify_labeled(&a, emb, singletons, 4, E, &all, 0.4) == KAO_ERR && error_has("same-identity"), "no same pairs");
    free(scores);
    free(same);
}

int main(void) {
    kao_h5_file f;
    ref_open(&f, "metrics_reference.h5");
    int cases = (int)ref_attr(&f, NULL, "num_cases");
    CHECK(cases >= 13, "%d reference cases", cases);
    for (int k = 0; k < cases; k++) check_case(&f, k);
    kao_h5_close(&f);
    check_errors();
    check_percentage();
    check_labeled();
    return check_summary("test_metrics");
}
