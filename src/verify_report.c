/* verify_report.c — the per-pair lines and the summary of `kao verify` (formats in verify.h). */
#include "kao/verify.h"

#include <stdlib.h>
#include <string.h>

#include "kao/util.h"

typedef struct {
    const kao_pair *pairs;
    const float *scores;
    char *const *paths;
} order_context;

static int by_name(const void *x, const void *y, void *arg) {
    const order_context *c = arg;
    const kao_pair *p = &c->pairs[*(const int *)x], *q = &c->pairs[*(const int *)y];
    int r = strcmp(c->paths[p->a], c->paths[q->a]);
    if (!r) r = strcmp(c->paths[p->b], c->paths[q->b]);
    return r ? r : (*(const int *)x > *(const int *)y) - (*(const int *)x < *(const int *)y);
}

static int by_score(const void *x, const void *y, void *arg) {
    const order_context *c = arg;
    float s = c->scores[*(const int *)x], t = c->scores[*(const int *)y];
    return s != t ? (s > t) - (s < t) : by_name(x, y, arg);
}

void kao_pairs_order(int *order, const kao_pair *pairs, const float *scores, int count, char *const *paths,
                     kao_pair_sort sort) {
    for (int k = 0; k < count; k++) order[k] = k;
    order_context c = {pairs, scores, paths};
    if (sort == KAO_SORT_NAME) qsort_r(order, (size_t)count, sizeof *order, by_name, &c);
    if (sort == KAO_SORT_SCORE) qsort_r(order, (size_t)count, sizeof *order, by_score, &c);
}

static void print_lines(FILE *out, const kao_pair *pairs, const float *scores, const int *order, int count,
                        char *const *paths, double threshold, const char *sep, const char *percent) {
    for (int i = 0; i < count; i++) {
        int k = order[i];
        double s = scores[k];
        fprintf(out, "%s%s%s%s%s%s%.2f%s%s%.6f%s%s\n", paths[pairs[k].a], sep, paths[pairs[k].b], sep,
                s >= threshold ? "True" : "False", sep, kao_percentage_score(s), percent, sep, s, sep,
                pairs[k].same ? "same" : "different");
    }
}

void kao_print_pairs(FILE *out, const kao_pair *pairs, const float *scores, const int *order, int count,
                     char *const *paths, double threshold) {
    print_lines(out, pairs, scores, order, count, paths, threshold, ", ", "%");
}

int kao_save_pairs_tsv(const char *path, const kao_pair *pairs, const float *scores, const int *order,
                       int count, char *const *paths, double threshold) {
    char temp[4200];
    FILE *f = kao_atomic_fopen(temp, sizeof temp, path);
    if (!f) return KAO_ERR;
    fputs("image1\timage2\tdecision\tpercentage\tcosine\tidentity\n", f);
    print_lines(f, pairs, scores, order, count, paths, threshold, "\t", "");
    return kao_atomic_fclose(f, temp, path);
}

void kao_print_summary(FILE *out, const kao_pair_metrics *m) {
    fprintf(out, "pairs: %d\nsame pairs: %d\ndifferent pairs: %d\n", m->pairs, m->same_pairs, m->diff_pairs);
    fprintf(out, "threshold: %.6f\naccuracy: %.6f\n", m->threshold, m->accuracy);
    fprintf(out, "TP: %d\nFP: %d\nTN: %d\nFN: %d\n", m->tp, m->fp, m->tn, m->fn);
    fprintf(out, "AUC: %.6f\nEER: %.6f\nEER threshold: %.6f\n", m->auc, m->eer, m->eer_threshold);
    fprintf(out, "TAR@FAR=1e-2: %.6f\nTAR@FAR=1e-3: %.6f\n", m->tar_at_far_1e2, m->tar_at_far_1e3);
    fprintf(out, "threshold at FAR=1e-3: %.6f%s\n", m->far_1e3_threshold,
            m->diff_pairs < KAO_FAR_1E3_MIN_PAIRS ? " (no false accept: fewer than 1000 different pairs)" : "");
    fprintf(out, "best threshold (balanced accuracy): %.6f\n", m->best_threshold);
    fprintf(out, "best balanced accuracy: %.6f\n", m->best_balanced_accuracy);
}
