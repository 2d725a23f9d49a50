/* curate_judge.c — kao curate's verdicts (curate_analysis.h): references, NO_FACE, NOT_ME,
 * SAME_FACE within each identity, too-small identities, and the cross-identity findings. Every
 * similarity over many pairs comes from the blocked GEMM of curate_search.c. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kao/curate_analysis.h"
#include "kao/util.h"

#define DUP_K 8      /* near-duplicates kept per image by the search (groups link through them) */
#define IDENTITY_K 4 /* closest identities kept per identity */

static const float *row(const float *emb, int i, int dim) {
    return emb + (size_t)i * dim;
}

/* The rows of emb listed in idx (n), one after another. */
static float *gather(const float *emb, const int *idx, int n, int dim) {
    float *out = kao_malloc((size_t)(n ? n : 1) * dim * sizeof *out, "embeddings");
    for (int i = 0; i < n; i++) memcpy(out + (size_t)i * dim, row(emb, idx[i], dim), (size_t)dim * sizeof *out);
    return out;
}

static bool has_marker(const char *rel, const char *marker) {
    if (!marker || !*marker) return false;
    const char *name = strrchr(rel, '/');
    return strstr(name ? name + 1 : rel, marker) != NULL;
}

/* ---- 1. references ---------------------------------------------------------------------------- */

/* The marker images of class c, else its medoid: appended to refs; returns how many. */
static int find_references(kao_curate_result *r, const kao_dataset *ds, const float *emb, int dim, int c,
                           const char *marker, int *refs) {
    const kao_class *k = &ds->classes[c];
    int n = 0;
    for (int i = 0; i < k->num_images; i++)
        if (has_marker(ds->images[k->images[i]].rel, marker)) refs[n++] = k->images[i];
    r->by_marker[c] = n > 0;
    if (n == 0) {
        float *X = gather(emb, k->images, k->num_images, dim);
        double *sums = kao_malloc((size_t)k->num_images * sizeof *sums, "similarity sums");
        kao_sim_row_sums(sums, X, k->num_images, X, k->num_images, dim);
        int best = 0;
        for (int i = 1; i < k->num_images; i++)
            if (sums[i] > sums[best]) best = i;
        refs[n++] = k->images[best];
        free(sums);
        free(X);
    }
    for (int i = 0; i < n; i++) r->images[refs[i]].reference = true;
    return n;
}

/* ---- 2, 3. NO_FACE and NOT_ME ----------------------------------------------------------------- */

/* own[i]: image i's best similarity to its identity's references (ref_start/ref_count per class). */
static void own_similarity(float *own, const kao_dataset *ds, const float *emb, int dim, const float *R,
                           const int *ref_start, const int *ref_count) {
    for (int c = 0; c < ds->num_classes; c++) {
        const kao_class *k = &ds->classes[c];
        float *X = gather(emb, k->images, k->num_images, dim);
        float *S = kao_malloc((size_t)k->num_images * ref_count[c] * sizeof *S, "similarities");
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, k->num_images, ref_count[c], dim, 1.0f, X, dim,
                    R + (size_t)ref_start[c] * dim, dim, 0.0f, S, ref_count[c]);
        for (int i = 0; i < k->num_images; i++) {
            float best = -INFINITY;
            for (int j = 0; j < ref_count[c]; j++) best = fmaxf(best, S[(size_t)i * ref_count[c] + j]);
            own[k->images[i]] = best;
        }
        free(S);
        free(X);
    }
}

static void judge_faces(kao_curate_result *r, const kao_dataset *ds, const float *emb, int dim, const int *refs,
                        int num_refs, const int *ref_start, const int *ref_count, const kao_curate_thresholds *t) {
    int n = ds->num_images;
    float *R = gather(emb, refs, num_refs, dim);
    int *labels = kao_malloc((size_t)n * sizeof *labels, "labels"), *ref_labels = kao_malloc((size_t)num_refs * sizeof *ref_labels, "labels");
    for (int i = 0; i < n; i++) labels[i] = ds->images[i].label;
    for (int j = 0; j < num_refs; j++) ref_labels[j] = ds->images[refs[j]].label;
    int *other = kao_malloc((size_t)n * sizeof *other, "closest identities");
    float *other_sim = kao_malloc((size_t)n * sizeof *other_sim, "closest identities");
    float *own = kao_malloc((size_t)n * sizeof *own, "similarities");
    kao_sim_topk(other, other_sim, 1, emb, n, R, num_refs, dim, labels, ref_labels, false);
    own_similarity(own, ds, emb, dim, R, ref_start, ref_count);
    for (int i = 0; i < n; i++) {
        kao_curate_image *im = &r->images[i];
        im->other = other[i] >= 0 ? ref_labels[other[i]] : -1;
        float best = fmaxf(own[i], other_sim[i]);
        if (!im->reference && best < t->no_face) {
            im->verdict = KAO_VERDICT_NO_FACE;
            im->similarity = best;
        } else {
            im->verdict = !im->reference && own[i] < t->not_me ? KAO_VERDICT_NOT_ME : KAO_VERDICT_KEEP;
            im->similarity = own[i];
        }
    }
    free(own);
    free(other_sim);
    free(other);
    free(ref_labels);
    free(labels);
    free(R);
}

/* ---- 4. SAME_FACE ----------------------------------------------------------------------------- */

static int find_root(int *parent, int i) {
    while (parent[i] != i) i = parent[i] = parent[parent[i]];
    return i;
}

/* Whether image a should be kept before image b in a group: a reference first, then by name. */
static bool keep_before(const kao_curate_result *r, int a, int b) {
    if (r->images[a].reference != r->images[b].reference) return r->images[a].reference;
    return a < b;
}

static void judge_duplicates(kao_curate_result *r, const kao_dataset *ds, const float *emb, int dim, int c,
                             double same_face) {
    const kao_class *k = &ds->classes[c];
    int *kept = kao_malloc((size_t)k->num_images * sizeof *kept + 1, "kept images"), n = 0;
    for (int i = 0; i < k->num_images; i++)
        if (r->images[k->images[i]].verdict == KAO_VERDICT_KEEP) kept[n++] = k->images[i];
    int kk = DUP_K < n - 1 ? DUP_K : n - 1;
    if (kk >= 1) {
        float *X = gather(emb, kept, n, dim);
        int *index = kao_malloc((size_t)n * kk * sizeof *index, "neighbours"), *parent = kao_malloc((size_t)n * sizeof *parent, "groups");
        float *sim = kao_malloc((size_t)n * kk * sizeof *sim, "neighbours");
        kao_sim_topk(index, sim, kk, X, n, X, n, dim, NULL, NULL, true);
        for (int i = 0; i < n; i++) parent[i] = i;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < kk && index[i * kk + j] >= 0 && sim[i * kk + j] >= same_face; j++) {
                int a = find_root(parent, i), b = find_root(parent, index[i * kk + j]);
                if (a == b) continue;
                if (keep_before(r, kept[a], kept[b])) parent[b] = a;
                else parent[a] = b;
            }
        for (int i = 0; i < n; i++) {
            int keep = find_root(parent, i);
            if (keep == i) continue;
            kao_curate_image *im = &r->images[kept[i]];
            im->verdict = KAO_VERDICT_SAME_FACE;
            im->other = kept[keep];
            im->similarity = cblas_sdot(dim, row(emb, kept[i], dim), 1, row(emb, kept[keep], dim), 1);
        }
        free(sim);
        free(parent);
        free(index);
        free(X);
    }
    free(kept);
}

/* ---- across identities ------------------------------------------------------------------------ */

static int cmp_pairs(const void *x, const void *y) {
    const kao_curate_pair *a = x, *b = y;
    if (a->similarity != b->similarity) return a->similarity > b->similarity ? -1 : 1;
    if (a->a != b->a) return a->a < b->a ? -1 : 1;
    return (a->b > b->b) - (a->b < b->b);
}

/* The pairs (ids[i], ids[index]) at or above threshold from a top-k, each once, most similar first. */
static kao_curate_pair *collect_pairs(int *count, const int *ids, const int *index, const float *sim, int n, int k,
                                      double threshold) {
    kao_curate_pair *p = NULL;
    int m = 0, cap = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < k && index[i * k + j] >= 0 && sim[i * k + j] >= threshold; j++) {
            if (m == cap) p = kao_realloc(p, (size_t)(cap = cap ? 2 * cap : 16) * sizeof *p, "pairs");
            int a = ids[i], b = ids[index[i * k + j]];
            p[m++] = (kao_curate_pair){a < b ? a : b, a < b ? b : a, sim[i * k + j]};
        }
    if (m) qsort(p, (size_t)m, sizeof *p, cmp_pairs);
    int u = 0;
    for (int i = 0; i < m; i++)
        if (u == 0 || p[i].a != p[u - 1].a || p[i].b != p[u - 1].b) p[u++] = p[i];
    *count = u;
    return p;
}

/* Top-k of the rows X (n, with ids and labels) among themselves, turned into pairs. */
static kao_curate_pair *search_pairs(int *count, const float *X, const int *ids, const int *labels, int n, int dim,
                                     int k, double threshold) {
    k = k < n - 1 ? k : n - 1;
    *count = 0;
    if (k < 1) return NULL;
    int *index = kao_malloc((size_t)n * k * sizeof *index, "neighbours");
    float *sim = kao_malloc((size_t)n * k * sizeof *sim, "neighbours");
    kao_sim_topk(index, sim, k, X, n, X, n, dim, labels, labels, !labels);
    kao_curate_pair *p = collect_pairs(count, ids, index, sim, n, k, threshold);
    free(sim);
    free(index);
    return p;
}

/* Identities whose centres (normalised mean of their kept images) are at or above same_person. */
static void identity_pairs(kao_curate_result *r, const kao_dataset *ds, const float *emb, int dim, double threshold) {
    float *C = kao_calloc((size_t)ds->num_classes * dim, sizeof *C, "centres");
    int *ids = kao_malloc((size_t)ds->num_classes * sizeof *ids, "identities"), n = 0;
    for (int c = 0; c < ds->num_classes; c++) {
        if (r->kept[c] == 0) continue;
        const kao_class *k = &ds->classes[c];
        for (int i = 0; i < k->num_images; i++)
            if (r->images[k->images[i]].verdict == KAO_VERDICT_KEEP)
                cblas_saxpy(dim, 1.0f, row(emb, k->images[i], dim), 1, C + (size_t)n * dim, 1);
        ids[n++] = c;
    }
    kao_normalize_rows(C, n, dim);
    r->identity_pairs = search_pairs(&r->num_identity_pairs, C, ids, NULL, n, dim, IDENTITY_K, threshold);
    free(ids);
    free(C);
}

/* Images of different identities at or above same_face (NO_FACE images left out). */
static void cross_duplicates(kao_curate_result *r, const kao_dataset *ds, const float *emb, int dim,
                             double threshold) {
    int *ids = kao_malloc((size_t)ds->num_images * sizeof *ids, "images"), n = 0;
    for (int i = 0; i < ds->num_images; i++)
        if (r->images[i].verdict != KAO_VERDICT_NO_FACE) ids[n++] = i;
    int *labels = kao_malloc((size_t)(n ? n : 1) * sizeof *labels, "labels");
    for (int i = 0; i < n; i++) labels[i] = ds->images[ids[i]].label;
    float *X = gather(emb, ids, n, dim);
    r->duplicates = search_pairs(&r->num_duplicates, X, ids, labels, n, dim, DUP_K, threshold);
    free(X);
    free(labels);
    free(ids);
}

/* ---- the whole judgement ---------------------------------------------------------------------- */

void kao_curate_judge(kao_curate_result *r, const kao_dataset *ds, const float *emb, int dim,
                      const kao_curate_thresholds *t) {
    int n = ds->num_images, C = ds->num_classes;
    *r = (kao_curate_result){.num_images = n, .num_classes = C};
    r->images = kao_calloc((size_t)n, sizeof *r->images, "verdicts");
    r->by_marker = kao_calloc((size_t)C, sizeof *r->by_marker, "references");
    r->kept = kao_calloc((size_t)C, sizeof *r->kept, "kept images");
    r->small = kao_calloc((size_t)C, sizeof *r->small, "small identities");
    int *refs = kao_malloc((size_t)n * sizeof *refs, "references"), num_refs = 0;
    int *ref_start = kao_malloc((size_t)C * sizeof *ref_start, "references"), *ref_count = kao_malloc((size_t)C * sizeof *ref_count, "references");
    for (int c = 0; c < C; c++) {
        ref_start[c] = num_refs;
        ref_count[c] = find_references(r, ds, emb, dim, c, t->marker, refs + num_refs);
        num_refs += ref_count[c];
    }
    judge_faces(r, ds, emb, dim, refs, num_refs, ref_start, ref_count, t);
    for (int c = 0; c < C; c++) {
        judge_duplicates(r, ds, emb, dim, c, t->same_face);
        for (int i = 0; i < ds->classes[c].num_images; i++)
            r->kept[c] += r->images[ds->classes[c].images[i]].verdict == KAO_VERDICT_KEEP;
        r->small[c] = r->kept[c] < t->min_images;
    }
    identity_pairs(r, ds, emb, dim, t->same_person);
    cross_duplicates(r, ds, emb, dim, t->same_face);
    free(ref_count);
    free(ref_start);
    free(refs);
}

void kao_curate_result_free(kao_curate_result *r) {
    free(r->images);
    free(r->by_marker);
    free(r->kept);
    free(r->small);
    free(r->identity_pairs);
    free(r->duplicates);
    *r = (kao_curate_result){0};
}
