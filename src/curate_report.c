/* curate_report.c — kao curate's report folder and printed summary (curate_analysis.h). Every TSV
 * is written atomically; paths are relative to the data root (the scan refuses tabs and line
 * breaks in names, so no field needs quoting). */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "kao/curate_analysis.h"
#include "kao/util.h"

static const char *verdict_name(kao_verdict v) {
    static const char *const names[] = {"keep", "not_me", "same_face", "no_face"};
    return names[v];
}

static const char *const threshold_names[4] = {"not_me", "no_face", "same_face", "same_person"};

static double threshold_value(const kao_curate_thresholds *t, int i) {
    const double v[4] = {t->not_me, t->no_face, t->same_face, t->same_person};
    return v[i];
}

/* Why image i got its verdict, in words. */
static void reason(char *out, size_t size, const kao_dataset *ds, const kao_curate_result *r, int i,
                   const kao_curate_thresholds *t) {
    const kao_curate_image *im = &r->images[i];
    const char *closest = im->other >= 0 && im->verdict != KAO_VERDICT_SAME_FACE ? ds->classes[im->other].name : "-";
    switch (im->verdict) {
    case KAO_VERDICT_KEEP:
        if (im->reference)
            snprintf(out, size, "reference (%s)", r->by_marker[ds->images[i].label] ? "marker" : "medoid");
        else snprintf(out, size, "similarity to the reference >= not_me %.4g", t->not_me);
        break;
    case KAO_VERDICT_NOT_ME:
        snprintf(out, size, "similarity to the reference < not_me %.4g; most like %s", t->not_me, closest);
        break;
    case KAO_VERDICT_NO_FACE:
        snprintf(out, size, "best similarity to every identity < no_face %.4g (closest %s)", t->no_face, closest);
        break;
    default:
        snprintf(out, size, "near-duplicate (>= same_face %.4g) of %s, kept", t->same_face,
                 ds->images[im->other].rel);
    }
}

static int write_images(const char *dir, const kao_dataset *ds, const kao_curate_result *r,
                        const kao_curate_thresholds *t) {
    char path[4200], temp[4300], why[2048];
    snprintf(path, sizeof path, "%s/images.tsv", dir);
    FILE *f = kao_atomic_fopen(temp, sizeof temp, path);
    if (!f) return KAO_ERR;
    fputs("path\tidentity\tverdict\tsimilarity\treason\n", f);
    for (int i = 0; i < ds->num_images; i++) {
        reason(why, sizeof why, ds, r, i, t);
        fprintf(f, "%s\t%s\t%s\t%.4f\t%s\n", ds->images[i].rel, ds->classes[ds->images[i].label].name,
                verdict_name(r->images[i].verdict), r->images[i].similarity, why);
    }
    return kao_atomic_fclose(f, temp, path);
}

static int write_identities(const char *dir, const kao_dataset *ds, const kao_curate_result *r) {
    char path[4200], temp[4300];
    snprintf(path, sizeof path, "%s/identities.tsv", dir);
    FILE *f = kao_atomic_fopen(temp, sizeof temp, path);
    if (!f) return KAO_ERR;
    fputs("identity\timages\tkeep\tnot_me\tsame_face\tno_face\treference\ttoo_small\n", f);
    for (int c = 0; c < ds->num_classes; c++) {
        int count[4] = {0};
        const kao_class *k = &ds->classes[c];
        for (int i = 0; i < k->num_images; i++) count[r->images[k->images[i]].verdict]++;
        fprintf(f, "%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n", k->name, k->num_images, count[0], count[1], count[2],
                count[3], r->by_marker[c] ? "marker" : "medoid", r->small[c] ? "yes" : "no");
    }
    return kao_atomic_fclose(f, temp, path);
}

static int write_pairs(const char *dir, const char *name, const char *header, const kao_curate_pair *p, int n,
                       const kao_dataset *ds, bool identities) {
    char path[4200], temp[4300];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = kao_atomic_fopen(temp, sizeof temp, path);
    if (!f) return KAO_ERR;
    fputs(header, f);
    for (int i = 0; i < n; i++)
        fprintf(f, "%s\t%s\t%.4f\n", identities ? ds->classes[p[i].a].name : ds->images[p[i].a].rel,
                identities ? ds->classes[p[i].b].name : ds->images[p[i].b].rel, p[i].similarity);
    return kao_atomic_fclose(f, temp, path);
}

static int write_thresholds(const char *dir, const kao_curate_settings *s) {
    char path[4200], temp[4300];
    snprintf(path, sizeof path, "%s/thresholds.tsv", dir);
    FILE *f = kao_atomic_fopen(temp, sizeof temp, path);
    if (!f) return KAO_ERR;
    fputs("threshold\tvalue\tsource\n", f);
    for (int i = 0; i < 4; i++)
        fprintf(f, "%s\t%.6g\t%s\n", threshold_names[i], threshold_value(&s->values, i), s->source[i]);
    fprintf(f, "min_images\t%d\t%s\n", s->values.min_images, s->source[4]);
    return kao_atomic_fclose(f, temp, path);
}

int kao_curate_write_report(const char *dir, const kao_dataset *ds, const kao_curate_result *r,
                            const kao_curate_settings *s) {
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) return kao_fail("%s: cannot create folder: %s", dir, strerror(errno));
    if (!kao_is_dir(dir)) return kao_fail("%s: not a folder", dir);
    return write_images(dir, ds, r, &s->values) || write_identities(dir, ds, r) ||
                   write_pairs(dir, "identity_pairs.tsv", "identity_a\tidentity_b\tsimilarity\n", r->identity_pairs,
                               r->num_identity_pairs, ds, true) ||
                   write_pairs(dir, "duplicates.tsv", "path_a\tpath_b\tsimilarity\n", r->duplicates,
                               r->num_duplicates, ds, false) ||
                   write_thresholds(dir, s)
               ? KAO_ERR : KAO_OK;
}

#define SHOWN 5 /* findings of each kind printed; the report has them all */

void kao_curate_print_summary(FILE *f, const kao_dataset *ds, const kao_curate_result *r,
                              const kao_curate_settings *s) {
    fprintf(f, "thresholds:\n");
    for (int i = 0; i < 4; i++)
        fprintf(f, "  %-12s %.4g (%s)\n", threshold_names[i], threshold_value(&s->values, i), s->source[i]);
    fprintf(f, "  %-12s %d (%s)\n", "min_images", s->values.min_images, s->source[4]);
    int count[4] = {0}, small = 0;
    for (int i = 0; i < r->num_images; i++) count[r->images[i].verdict]++;
    fprintf(f, "images: %d: keep %d, not_me %d, same_face %d, no_face %d\n", r->num_images, count[0], count[1],
            count[2], count[3]);
    for (int c = 0; c < r->num_classes; c++) small += r->small[c];
    fprintf(f, "identities: %d, %d too small (fewer than %d kept images)%s", r->num_classes, small,
            s->values.min_images, small ? ":" : "\n");
    for (int c = 0, shown = 0; c < r->num_classes && small; c++)
        if (r->small[c] && shown++ < SHOWN) fprintf(f, "%s%s", shown > 1 ? ", " : " ", ds->classes[c].name);
    if (small) fprintf(f, "%s\n", small > SHOWN ? ", ..." : "");
    fprintf(f, "same person under two names? %d identity pairs\n", r->num_identity_pairs);
    for (int i = 0; i < r->num_identity_pairs && i < SHOWN; i++)
        fprintf(f, "  %s ~ %s (%.3f)\n", ds->classes[r->identity_pairs[i].a].name,
                ds->classes[r->identity_pairs[i].b].name, r->identity_pairs[i].similarity);
    fprintf(f, "near-duplicates across identities: %d image pairs\n", r->num_duplicates);
    for (int i = 0; i < r->num_duplicates && i < SHOWN; i++)
        fprintf(f, "  %s ~ %s (%.3f)\n", ds->images[r->duplicates[i].a].rel, ds->images[r->duplicates[i].b].rel,
                r->duplicates[i].similarity);
}
