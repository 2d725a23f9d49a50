/* verify.c — identities from paths, all pairs or a seeded, balanced sample of them, cosine scores,
 * and the training loop's validation metrics (rules in verify.h). */
#include "kao/verify.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kao/rng.h"
#include "kao/util.h"

/* ---- identities -------------------------------------------------------------------------------- */

static const char *base_name(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* The identity of path under layout (NAMES or FOLDERS), as a new string. */
static char *identity_of(const char *path, kao_layout layout) {
    const char *name = base_name(path);
    if (layout == KAO_LAYOUT_NAMES) {
        const char *underscore = strrchr(name, '_');
        if (!underscore || underscore == name) {
            kao_fail("cannot tell the identity of '%s': expected <identity>_<n>.png (or .jpg, .jpeg)", name);
            return NULL;
        }
        return strndup(name, (size_t)(underscore - name));
    }
    if (name == path) return kao_strdup("."); /* a bare file name: the current folder */
    const char *end = name - 1, *start = end;
    while (start > path && start[-1] != '/') start--;
    if (start == end) return kao_strdup("/");
    return strndup(start, (size_t)(end - start));
}

typedef struct {
    const char *identity;
    int index;
} named;

static int by_identity(const void *a, const void *b) {
    const named *x = a, *y = b;
    int c = strcmp(x->identity, y->identity);
    return c ? c : (x->index > y->index) - (x->index < y->index);
}

/* Whether every path lies in the same folder. */
static bool one_folder(char *const *paths, int count) {
    size_t len0 = (size_t)(base_name(paths[0]) - paths[0]);
    for (int i = 1; i < count; i++) {
        size_t len = (size_t)(base_name(paths[i]) - paths[i]);
        if (len != len0 || strncmp(paths[i], paths[0], len)) return false;
    }
    return true;
}

int kao_identity_labels(int *labels, int *num_identities, char *const *paths, int count, kao_layout layout) {
    if (count <= 0) return kao_fail("no images");
    if (layout == KAO_LAYOUT_AUTO) layout = one_folder(paths, count) ? KAO_LAYOUT_NAMES : KAO_LAYOUT_FOLDERS;
    named *items = kao_malloc((size_t)count * sizeof *items, "identities");
    int rc = KAO_OK, made = 0;
    for (; made < count; made++) {
        items[made] = (named){identity_of(paths[made], layout), made};
        if (!items[made].identity) {
            rc = KAO_ERR;
            break;
        }
    }
    if (rc == KAO_OK) {
        qsort(items, (size_t)count, sizeof *items, by_identity);
        int label = -1;
        for (int i = 0; i < count; i++) {
            if (i == 0 || strcmp(items[i].identity, items[i - 1].identity)) label++;
            labels[items[i].index] = label;
        }
        *num_identities = label + 1;
    }
    for (int i = 0; i < made; i++) free((char *)items[i].identity);
    free(items);
    return rc;
}

/* ---- pairs ------------------------------------------------------------------------------------- */

int64_t kao_count_same_pairs(const int *labels, int n) {
    int max = -1;
    for (int i = 0; i < n; i++) max = labels[i] > max ? labels[i] : max;
    int64_t *per = kao_calloc((size_t)max + 1, sizeof *per, "identity counts"), same = 0;
    for (int i = 0; i < n; i++) same += per[labels[i]]++;
    free(per);
    return same;
}

static int by_ab(const void *x, const void *y) {
    const kao_pair *p = x, *q = y;
    if (p->a != q->a) return (p->a > q->a) - (p->a < q->a);
    return (p->b > q->b) - (p->b < q->b);
}

/* Uniform in [0, n) for a 64-bit n, without modulo bias: draws from [0, L) with L the largest
 * multiple of n that fits. */
static uint64_t below64(kao_rng *r, uint64_t n) {
    uint64_t limit = UINT64_MAX - UINT64_MAX % n, x;
    do x = kao_rng_next(r);
    while (x >= limit);
    return x % n;
}

/* A set of uint64 keys (open addressing); capacity a power of two, at least twice the keys. */
typedef struct {
    uint64_t *slots; /* (capacity) key + 1; 0 = empty */
    uint64_t mask;
} key_set;

static key_set key_set_new(int64_t keys) {
    uint64_t capacity = 16;
    while (capacity < 2 * (uint64_t)keys) capacity *= 2;
    return (key_set){kao_calloc(capacity, sizeof(uint64_t), "pair set"), capacity - 1};
}

static bool key_set_insert(key_set *s, uint64_t key) {
    uint64_t h = (key + 1) * 0x9E3779B97F4A7C15ull;
    for (uint64_t i = (h >> 17) & s->mask;; i = (i + 1) & s->mask) {
        if (s->slots[i] == key + 1) return false;
        if (s->slots[i] == 0) {
            s->slots[i] = key + 1;
            return true;
        }
    }
}

/* The images grouped by identity: identity l's are by_label[start[l] .. start[l] + per[l]). */
typedef struct {
    int num_labels;
    int *per, *start, *by_label;
} grouped;

static grouped group_by_label(const int *labels, int n, int num_labels) {
    grouped g = {num_labels, kao_calloc((size_t)num_labels, sizeof(int), "identity counts"),
                 kao_malloc((size_t)num_labels * sizeof(int), "identity starts"),
                 kao_malloc((size_t)n * sizeof(int), "images by identity")};
    for (int i = 0; i < n; i++) g.per[labels[i]]++;
    for (int l = 0, s = 0; l < num_labels; s += g.per[l++]) g.start[l] = s;
    int *fill = kao_calloc((size_t)num_labels, sizeof *fill, "fill");
    for (int i = 0; i < n; i++) g.by_label[g.start[labels[i]] + fill[labels[i]]++] = i;
    free(fill);
    return g;
}

static void grouped_free(grouped *g) {
    free(g->per);
    free(g->start);
    free(g->by_label);
}

static int64_t pairs_of(int64_t m) { return m * (m - 1) / 2; }

/* How many same-identity pairs the cap leaves (cap <= 0: all). */
static int64_t capped_same(const grouped *g, int cap) {
    int64_t total = 0;
    for (int l = 0; l < g->num_labels; l++) {
        int64_t all = pairs_of(g->per[l]);
        total += cap > 0 && all > cap ? cap : all;
    }
    return total;
}

/* The same-identity pairs into out: an identity's every pair, or cap of them drawn uniformly
 * without repetition (an unordered pair of its images is uniform when the first is uniform and
 * the second uniform among the others; repeats are redrawn). Returns how many. */
static int same_pairs(kao_pair *out, const grouped *g, int n, int cap, kao_rng *r) {
    int k = 0;
    for (int l = 0; l < g->num_labels; l++) {
        const int *img = g->by_label + g->start[l];
        int m = g->per[l];
        if (cap <= 0 || pairs_of(m) <= cap) {
            for (int x = 0; x < m; x++)
                for (int y = x + 1; y < m; y++) out[k++] = (kao_pair){img[x], img[y], true};
            continue;
        }
        key_set seen = key_set_new(cap);
        for (int got = 0; got < cap;) {
            int x = (int)kao_rng_below(r, (uint32_t)m), y = (int)kao_rng_below(r, (uint32_t)(m - 1));
            y += y >= x;
            int a = img[x] < img[y] ? img[x] : img[y], b = img[x] < img[y] ? img[y] : img[x];
            if (key_set_insert(&seen, (uint64_t)a * (uint64_t)n + (uint64_t)b)) out[k + got++] = (kao_pair){a, b, true};
        }
        k += cap;
        free(seen.slots);
    }
    return k;
}

/* k different-identity pairs drawn uniformly without repetition into out, when k <= D/2 (D:
 * all of them). An ordered pair (i, j) with different labels is uniform when i is drawn with
 * weight n - count(label i) and j uniformly among the other identities' images; each unordered
 * pair is then equally likely, and repeats are redrawn. */
static void sample_diff(kao_pair *out, int k, const int *labels, int n, const grouped *g, kao_rng *r) {
    const int *per = g->per, *start = g->start, *by_label = g->by_label;
    uint64_t *cum = kao_malloc((size_t)n * sizeof *cum, "weights"); /* (n) cumulative weights */
    uint64_t total = 0;
    for (int p = 0; p < n; p++) cum[p] = total += (uint64_t)(n - per[labels[by_label[p]]]);
    key_set seen = key_set_new(k);
    for (int got = 0; got < k;) {
        uint64_t u = below64(r, total);
        int lo = 0, hi = n - 1; /* the first position with cum > u */
        while (lo < hi) {
            int mid = lo + (hi - lo) / 2;
            if (cum[mid] > u) hi = mid;
            else lo = mid + 1;
        }
        int i = by_label[lo], l = labels[i];
        int q = (int)below64(r, (uint64_t)(n - per[l]));
        int j = by_label[q < start[l] ? q : q + per[l]];
        int a = i < j ? i : j, b = i < j ? j : i;
        if (key_set_insert(&seen, (uint64_t)a * (uint64_t)n + (uint64_t)b)) out[got++] = (kao_pair){a, b, false};
    }
    free(seen.slots);
    free(cum);
}

/* take of the diff different-identity pairs into out: all, a rejection sample (take <= diff/2),
 * or, for a larger share, the first take of a partial Fisher–Yates shuffle of the list of all. */
static void diff_pairs(kao_pair *out, int64_t take, int64_t diff, const int *labels, int n, const grouped *g,
                       kao_rng *r) {
    if (2 * take <= diff) {
        sample_diff(out, (int)take, labels, n, g, r);
        return;
    }
    kao_pair *all = take == diff ? out : kao_malloc((size_t)diff * sizeof *all, "different pairs");
    int64_t d = 0;
    for (int a = 0; a < n; a++)
        for (int b = a + 1; b < n; b++)
            if (labels[a] != labels[b]) all[d++] = (kao_pair){a, b, false};
    if (take == diff) return;
    for (int64_t i = 0; i < take; i++) {
        int64_t j = i + (int64_t)below64(r, (uint64_t)(diff - i));
        kao_pair t = all[i];
        all[i] = all[j];
        all[j] = t;
    }
    memcpy(out, all, (size_t)take * sizeof *out);
    free(all);
}

/* How many different pairs the sampling takes of diff, given same (rules in verify.h). */
static int take_diff(int64_t *take, int64_t same, int64_t diff, const kao_pair_sampling *s) {
    double want = s->diff_per_same > 0 ? round(s->diff_per_same * (double)same) : (double)diff;
    *take = want >= (double)diff ? diff : want < 1 ? 1 : (int64_t)want;
    if (s->max_pairs > 0 && same + *take > s->max_pairs) {
        if (same >= s->max_pairs)
            return kao_fail("%lld same-identity pairs leave no room for different ones under a limit of %lld pairs",
                            (long long)same, (long long)s->max_pairs);
        *take = s->max_pairs - same;
    }
    if (same + *take > INT_MAX)
        return kao_fail("%lld pairs are too many (at most %d): sample the different-identity pairs",
                        (long long)(same + *take), INT_MAX);
    return KAO_OK;
}

int kao_pairs_build(kao_pair **pairs, int *count, const int *labels, int n, const kao_pair_sampling *sampling) {
    if (n < 2) return kao_fail("needs at least two images to make a pair, found %d", n);
    int num_labels = 0;
    for (int i = 0; i < n; i++) {
        if (labels[i] < 0) return kao_fail("the label of image %d is negative (%d)", i, labels[i]);
        num_labels = labels[i] >= num_labels ? labels[i] + 1 : num_labels;
    }
    int64_t all_same = kao_count_same_pairs(labels, n), diff = pairs_of(n) - all_same, take;
    if (diff == 0) return kao_fail("only one identity among %d images: no different-identity pairs to compare", n);
    if (all_same == 0) return kao_fail("no identity has two images among %d images: no same-identity pairs to compare", n);
    grouped g = group_by_label(labels, n, num_labels);
    int64_t same = capped_same(&g, sampling->same_per_identity);
    if (take_diff(&take, same, diff, sampling)) {
        grouped_free(&g);
        return KAO_ERR;
    }
    kao_pair *p = kao_malloc((size_t)(same + take) * sizeof *p, "pairs");
    kao_rng same_rng, diff_rng;
    kao_rng_seed(&same_rng, sampling->seed, 1);
    kao_rng_seed(&diff_rng, sampling->seed, 0);
    int k = same_pairs(p, &g, n, sampling->same_per_identity, &same_rng);
    diff_pairs(p + k, take, diff, labels, n, &g, &diff_rng);
    grouped_free(&g);
    k += (int)take;
    qsort(p, (size_t)k, sizeof *p, by_ab);
    *pairs = p;
    *count = k;
    return KAO_OK;
}

/* ---- scores ------------------------------------------------------------------------------------ */

int kao_pair_scores(float *scores, const kao_pair *pairs, int count, const float *emb, int num_images,
                    int dim, char *const *paths) {
    double *norm = kao_malloc((size_t)num_images * sizeof *norm, "norms"); /* (num_images) */
    for (int i = 0; i < num_images; i++) {
        const float *e = emb + (size_t)i * dim;
        double s = 0;
        for (int c = 0; c < dim; c++) s += (double)e[c] * e[c];
        norm[i] = sqrt(s);
        if (!(norm[i] > 0) || !isfinite(norm[i])) {
            free(norm);
            if (paths) return kao_fail("%s: its embedding is %s", paths[i], s == 0 ? "all zeros" : "not finite");
            return kao_fail("embedding %d is %s", i, s == 0 ? "all zeros" : "not finite");
        }
    }
#pragma omp parallel for schedule(static)
    for (int k = 0; k < count; k++) {
        const float *x = emb + (size_t)pairs[k].a * dim, *y = emb + (size_t)pairs[k].b * dim;
        double dot = 0;
        for (int c = 0; c < dim; c++) dot += (double)x[c] * y[c];
        scores[k] = (float)(dot / (norm[pairs[k].a] * norm[pairs[k].b]));
    }
    free(norm);
    return KAO_OK;
}

int kao_verify_labeled(kao_pair_metrics *out, const float *emb, const int *labels, int n, int dim,
                       const kao_pair_sampling *sampling, double threshold) {
    kao_pair *pairs;
    int count;
    if (kao_pairs_build(&pairs, &count, labels, n, sampling)) return KAO_ERR;
    float *scores = kao_malloc((size_t)count * sizeof *scores, "scores");
    bool *same = kao_malloc((size_t)count * sizeof *same, "same");
    for (int k = 0; k < count; k++) same[k] = pairs[k].same;
    int rc = kao_pair_scores(scores, pairs, count, emb, n, dim, NULL) ||
             kao_pair_metrics_compute(out, scores, same, count, threshold);
    free(same);
    free(scores);
    free(pairs);
    return rc ? KAO_ERR : KAO_OK;
}
