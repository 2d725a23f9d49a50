#include "kao/split.h"

#include "kao/files.h"
#include "kao/rng.h"
#include "kao/util.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull
#define HEADER_TAG "# kao-split v1 "

static uint64_t fnv1a64(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * FNV_PRIME;
    return h;
}

static const char *side_word(const kao_split *s, int i) { return s->is_val[i] ? "val" : "train"; }

/* Fills train/val lists and counts from is_val. */
static void finish_lists(kao_split *s, const kao_dataset *ds) {
    s->num_train = s->num_val = 0;
    for (int i = 0; i < ds->num_images; i++) s->num_val += s->is_val[i];
    s->num_train = ds->num_images - s->num_val;
    s->train = kao_malloc((size_t)s->num_train * sizeof *s->train, "train list");
    s->val = kao_malloc((size_t)s->num_val * sizeof *s->val, "validation list");
    int nt = 0, nv = 0;
    for (int i = 0; i < ds->num_images; i++) {
        if (s->is_val[i]) s->val[nv++] = i;
        else s->train[nt++] = i;
    }
    s->num_train_only = 0;
    for (int c = 0; c < ds->num_classes; c++) {
        int v = 0;
        for (int k = 0; k < ds->classes[c].num_images; k++) v += s->is_val[ds->classes[c].images[k]];
        s->num_train_only += v == 0;
    }
    s->hash = kao_split_hash(s, ds);
}

/* Images of an identity of n that go to validation (the rule in split.h). */
static int val_images(int n, const kao_split_options *o) {
    if (n < 2) return 0;
    int k = o->val_count > 0 ? o->val_count : (int)floor(o->val_fraction * n + 0.5);
    if (k < 1) k = 1;
    if (k > n - 1) k = n - 1;
    return k;
}

int kao_split_create(kao_split *s, const kao_dataset *ds, const kao_split_options *options) {
    *s = (kao_split){0};
    s->options = *options;
    if (options->val_count < 0) return kao_fail("split: val_count must be >= 0, got %d", options->val_count);
    if (options->val_count == 0 && !(options->val_fraction > 0 && options->val_fraction < 1))
        return kao_fail("split: val_fraction must be between 0 and 1 (exclusive), got %g", options->val_fraction);
    s->is_val = kao_calloc((size_t)ds->num_images, 1, "split sides");
    int *order = kao_malloc((size_t)ds->num_images * sizeof *order, "split order");
    for (int c = 0; c < ds->num_classes; c++) {
        const kao_class *cls = &ds->classes[c];
        int k = val_images(cls->num_images, options);
        if (k == 0) continue;
        kao_rng rng;
        kao_rng_seed(&rng, options->seed, fnv1a64(FNV_OFFSET, cls->name, strlen(cls->name)));
        memcpy(order, cls->images, (size_t)cls->num_images * sizeof *order);
        kao_rng_shuffle(&rng, order, cls->num_images);
        for (int j = 0; j < k; j++) s->is_val[order[j]] = 1;
    }
    free(order);
    finish_lists(s, ds);
    if (s->num_val == 0)
        return kao_fail("%s: no identity has 2 or more images, so the validation set would be empty", ds->root);
    return KAO_OK;
}

/* "side\tidentity\tpath\n" for image i. */
static char *manifest_line(const kao_split *s, const kao_dataset *ds, int i) {
    const kao_sample *img = &ds->images[i];
    const char *side = side_word(s, i), *name = ds->classes[img->label].name;
    size_t n = strlen(side) + strlen(name) + strlen(img->rel) + 4;
    char *line = kao_malloc(n, "manifest line");
    snprintf(line, n, "%s\t%s\t%s\n", side, name, img->rel);
    return line;
}

static int compare_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

uint64_t kao_split_hash(const kao_split *s, const kao_dataset *ds) {
    char **lines = kao_malloc((size_t)ds->num_images * sizeof *lines, "manifest lines");
    for (int i = 0; i < ds->num_images; i++) lines[i] = manifest_line(s, ds, i);
    qsort(lines, (size_t)ds->num_images, sizeof *lines, compare_str);
    uint64_t h = FNV_OFFSET;
    for (int i = 0; i < ds->num_images; i++) {
        h = fnv1a64(h, lines[i], strlen(lines[i]));
        free(lines[i]);
    }
    free(lines);
    return h;
}

int kao_split_write(const kao_split *s, const kao_dataset *ds, const char *path) {
    char temp[4200];
    FILE *f = kao_atomic_fopen(temp, sizeof temp, path);
    if (!f) return KAO_ERR;
    fprintf(f, HEADER_TAG "seed=%" PRIu64 " val_fraction=%.15g val_count=%d train=%d val=%d hash=%016" PRIx64 "\n",
            s->options.seed, s->options.val_fraction, s->options.val_count, s->num_train, s->num_val, s->hash);
    for (int i = 0; i < ds->num_images; i++) {
        char *line = manifest_line(s, ds, i);
        fputs(line, f);
        free(line);
    }
    return kao_atomic_fclose(f, temp, path);
}

typedef struct {
    uint64_t seed;
    double val_fraction;
    int val_count, train, val;
    uint64_t hash;
} header_fields;

static int parse_header(header_fields *h, const char *line, const char *path) {
    char hash_hex[17] = {0};
    int end = 0;
    if (strncmp(line, HEADER_TAG, strlen(HEADER_TAG)) != 0 ||
        sscanf(line + strlen(HEADER_TAG),
               "seed=%" SCNu64 " val_fraction=%lf val_count=%d train=%d val=%d hash=%16[0-9a-f]%n", &h->seed,
               &h->val_fraction, &h->val_count, &h->train, &h->val, hash_hex, &end) != 6 ||
        strlen(hash_hex) != 16 || line[strlen(HEADER_TAG) + (size_t)end] != '\0')
        return kao_fail("%s:1: not a kao split manifest header (expected '" HEADER_TAG
                        "seed=N val_fraction=F val_count=N train=N val=N hash=<16 hex digits>')", path);
    h->hash = strtoull(hash_hex, NULL, 16);
    return KAO_OK;
}

/* Checks one "side\tidentity\tpath" line and records its side; line_of[i] = line number of image i. */
static int parse_line(kao_split *s, const kao_dataset *ds, int *line_of, char *line, const char *path, int lineno) {
    char *tab1 = strchr(line, '\t'), *tab2 = tab1 ? strchr(tab1 + 1, '\t') : NULL;
    if (!tab2 || strchr(tab2 + 1, '\t'))
        return kao_fail("%s:%d: expected 'train|val<TAB>identity<TAB>identity/file.png', found '%s'", path, lineno,
                        line);
    *tab1 = *tab2 = '\0';
    const char *side = line, *identity = tab1 + 1, *rel = tab2 + 1;
    unsigned char is_val;
    if (strcmp(side, "train") == 0) is_val = 0;
    else if (strcmp(side, "val") == 0) is_val = 1;
    else return kao_fail("%s:%d: unknown split '%s' (expected 'train' or 'val')", path, lineno, side);
    if (!kao_rel_path_contained(rel))
        return kao_fail("%s:%d: '%s' leads out of the data root (an absolute path or a '..'); a manifest names "
                        "images as identity/file", path, lineno, rel);

    size_t n = strlen(ds->root) + strlen(rel) + 2;
    char *full = kao_malloc(n, "path");
    snprintf(full, n, "%s/%s", ds->root, rel);
    bool exists = kao_file_exists(full);
    int rc = KAO_OK;
    if (!exists) rc = kao_fail("%s:%d: %s does not exist (the data set changed since this split was made)", path, lineno, full);
    free(full);
    if (rc != KAO_OK) return rc;

    int i = kao_dataset_find(ds, rel);
    if (i < 0)
        return kao_fail("%s:%d: '%s' is not part of the data set (its identity was dropped by data.min_images, or "
                        "the image by data.max_images)", path, lineno, rel);
    const char *owner = ds->classes[ds->images[i].label].name;
    if (strcmp(owner, identity) != 0)
        return kao_fail("%s:%d: '%s' belongs to identity '%s', not '%s'", path, lineno, rel, owner, identity);
    if (line_of[i]) return kao_fail("%s:%d: '%s' is listed twice (also on line %d)", path, lineno, rel, line_of[i]);
    line_of[i] = lineno;
    s->is_val[i] = is_val;
    return KAO_OK;
}

static int read_lines(kao_split *s, const kao_dataset *ds, header_fields *h, FILE *f, const char *path) {
    int *line_of = kao_calloc((size_t)ds->num_images, sizeof *line_of, "manifest line numbers");
    char *line = kao_malloc(KAO_MAX_LINE + 1, "manifest line");
    long len;
    int lineno = 0, rc = KAO_OK;
    while (rc == KAO_OK && (len = kao_read_line(f, line, KAO_MAX_LINE + 1)) != -1) {
        lineno++;
        if (len == -2) {
            rc = kao_fail("%s:%d: line longer than %d bytes: not a kao split manifest", path, lineno, KAO_MAX_LINE);
            break;
        }
        while (len > 0 && line[len - 1] == '\r') line[--len] = '\0';
        if (lineno == 1) rc = parse_header(h, line, path);
        else if (len > 0 && line[0] != '#') rc = parse_line(s, ds, line_of, line, path, lineno);
    }
    if (rc == KAO_OK && ferror(f)) rc = kao_fail("%s: read error: %s", path, strerror(errno));
    if (rc == KAO_OK && lineno == 0) rc = kao_fail("%s: empty split manifest", path);
    for (int i = 0; rc == KAO_OK && i < ds->num_images; i++) {
        if (line_of[i]) continue;
        int missing = 0;
        for (int j = i; j < ds->num_images; j++) missing += line_of[j] == 0;
        rc = kao_fail("%s: %d image%s of %s %s not listed (first: %s); the data set changed since this split was "
                      "made: make a new split", path, missing, missing == 1 ? "" : "s", ds->root,
                      missing == 1 ? "is" : "are", ds->images[i].rel);
    }
    free(line);
    free(line_of);
    return rc;
}

int kao_split_read(kao_split *s, const kao_dataset *ds, const char *path) {
    *s = (kao_split){0};
    FILE *f = kao_fopen_regular(path, "split manifest");
    if (!f) return KAO_ERR;
    s->is_val = kao_calloc((size_t)ds->num_images, 1, "split sides");
    header_fields h = {0};
    int rc = read_lines(s, ds, &h, f, path);
    fclose(f);
    if (rc != KAO_OK) return rc;
    s->options = (kao_split_options){h.seed, h.val_fraction, h.val_count};
    finish_lists(s, ds);
    if (s->hash != h.hash)
        return kao_fail("%s: content hash %016" PRIx64 " does not match the header's %016" PRIx64
                        " (the file was edited)", path, s->hash, h.hash);
    if (s->num_train != h.train || s->num_val != h.val)
        return kao_fail("%s: %d train and %d val lines, but the header says %d and %d", path, s->num_train,
                        s->num_val, h.train, h.val);
    if (s->num_val == 0) return kao_fail("%s: the split has no validation images", path);
    return KAO_OK;
}

void kao_split_print_summary(FILE *f, const kao_split *s, const kao_dataset *ds) {
    fprintf(f, "split: %d train, %d val images (seed %" PRIu64 ", ", s->num_train, s->num_val, s->options.seed);
    if (s->options.val_count > 0) fprintf(f, "val_count %d", s->options.val_count);
    else fprintf(f, "val_fraction %g", s->options.val_fraction);
    fprintf(f, "), hash %016" PRIx64 "\n", s->hash);
    if (s->num_train_only) {
        fprintf(f, "  train only: %d %s with fewer than 2 images:", s->num_train_only,
                s->num_train_only == 1 ? "identity" : "identities");
        int shown = 0;
        for (int c = 0; c < ds->num_classes; c++) {
            const kao_class *cls = &ds->classes[c];
            int v = 0;
            for (int k = 0; k < cls->num_images; k++) v += s->is_val[cls->images[k]];
            if (v || shown++ >= 8) continue;
            fprintf(f, " %s", cls->name);
        }
        if (shown > 8) fprintf(f, " ... and %d more", shown - 8);
        fputc('\n', f);
    }
}

void kao_split_free(kao_split *s) {
    free(s->is_val);
    free(s->train);
    free(s->val);
    *s = (kao_split){0};
}
