/* verify_file.c — reading an LFW-style pairs file and resolving its images, against a root
 * folder or a list of known paths (format and rules in verify.h). */
#include "kao/verify.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kao/embeddings.h"
#include "kao/files.h"
#include "kao/util.h"

/* Distinct strings → their index in first-insertion order (FNV-1a, open addressing). */
typedef struct {
    char **items; /* (count) owned */
    int count, capacity;
    int *slots;   /* (slot_count) index + 1; 0 = empty */
    size_t slot_count;
} string_index;

static uint64_t fnv1a(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

static void index_grow(string_index *x) {
    size_t slot_count = x->slot_count ? 2 * x->slot_count : 1024;
    int *slots = kao_calloc(slot_count, sizeof *slots, "path index");
    for (int i = 0; i < x->count; i++) {
        size_t s = fnv1a(x->items[i]) & (slot_count - 1);
        while (slots[s]) s = (s + 1) & (slot_count - 1);
        slots[s] = i + 1;
    }
    free(x->slots);
    x->slots = slots;
    x->slot_count = slot_count;
}

/* The index of s, adding it when new (*added set). */
static int index_add(string_index *x, const char *s, bool *added) {
    if (2 * (size_t)(x->count + 1) > x->slot_count) index_grow(x);
    size_t slot = fnv1a(s) & (x->slot_count - 1);
    for (; x->slots[slot]; slot = (slot + 1) & (x->slot_count - 1))
        if (!strcmp(x->items[x->slots[slot] - 1], s)) {
            *added = false;
            return x->slots[slot] - 1;
        }
    if (x->count == x->capacity) {
        x->capacity = x->capacity ? 2 * x->capacity : 256;
        x->items = kao_realloc(x->items, (size_t)x->capacity * sizeof *x->items, "path index");
    }
    x->items[x->count] = kao_strdup(s);
    x->slots[slot] = x->count + 1;
    *added = true;
    return x->count++;
}

/* ---- known paths by file name ------------------------------------------------------------------ */

typedef struct {
    const char *base; /* the file name part of the path */
    int index;
} by_base;

static int cmp_base(const void *a, const void *b) {
    const by_base *x = a, *y = b;
    int c = strcmp(x->base, y->base);
    return c ? c : (x->index > y->index) - (x->index < y->index);
}

static const char *base_name(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* The known path equal to rel or ending in "/" + rel: its index, -1 if none, -2 if several. */
static int find_known(const by_base *sorted, int n, char *const *known, const char *rel) {
    const char *base = base_name(rel);
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (strcmp(sorted[mid].base, base) < 0) lo = mid + 1;
        else hi = mid;
    }
    int found = -1;
    size_t rel_len = strlen(rel);
    for (int i = lo; i < n && !strcmp(sorted[i].base, base); i++) {
        const char *p = known[sorted[i].index];
        size_t len = strlen(p);
        bool match = len == rel_len ? !strcmp(p, rel)
                                    : len > rel_len && p[len - rel_len - 1] == '/' && !strcmp(p + len - rel_len, rel);
        if (match) {
            if (found >= 0) return -2;
            found = sorted[i].index;
        }
    }
    return found;
}

/* ---- the file ---------------------------------------------------------------------------------- */

static bool parse_number(const char *text, int *out) {
    char *end;
    long v = strtol(text, &end, 10);
    if (end == text || *end || v < 0 || v > 99999999) return false;
    *out = (int)v;
    return true;
}

typedef struct {
    const char *path, *root;
    char *root_real; /* root with its links resolved; NULL: follow links out of it */
    char *const *known;
    int num_known;
    by_base *sorted; /* (num_known) known mode */
    string_index images;
} resolver;

/* The image file names a pairs line may mean, in the order they are tried. */
static const char *const extensions[] = {".png", ".jpg", ".jpeg"};
#define NUM_EXTENSIONS ((int)(sizeof extensions / sizeof *extensions))

/* The known path of <name>/<name>_NNNN with the first extension that has one (see verify.h). */
static int resolve_known(resolver *r, int line, const char *stem) {
    char rel[1100];
    for (int e = 0; e < NUM_EXTENSIONS; e++) {
        snprintf(rel, sizeof rel, "%s%s", stem, extensions[e]);
        int k = find_known(r->sorted, r->num_known, r->known, rel);
        if (k == -2) return kao_fail("%s:%d: several of the embeddings' paths end in %s", r->path, line, rel);
        if (k >= 0) return k;
    }
    return kao_fail("%s:%d: no embedding for %s.png (or .jpg, .jpeg) among the %d images", r->path, line, stem,
                    r->num_known);
}

/* ROOT/<name>/<name>_NNNN with the first extension whose file exists (see verify.h). */
static int resolve_file(resolver *r, int line, const char *stem) {
    char full[4200];
    for (int e = 0; e < NUM_EXTENSIONS; e++) {
        snprintf(full, sizeof full, "%s/%s%s", r->root, stem, extensions[e]);
        if (kao_file_exists(full)) {
            if (r->root_real && !kao_path_inside(r->root_real, full))
                return kao_fail("%s:%d: %s leads out of %s through a symbolic link (--follow-symlinks follows it)",
                                r->path, line, full, r->root);
            bool added;
            return index_add(&r->images, full, &added);
        }
    }
    return kao_fail("%s:%d: %s/%s.png: No such file (nor .jpg, .jpeg)", r->path, line, r->root, stem);
}

/* The image index of <name>/<name>_NNNN.png, .jpg or .jpeg (see verify.h), or KAO_ERR. */
static int resolve(resolver *r, int line, const char *name, int number) {
    if (strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
        return kao_fail("%s:%d: '%s' is not an identity name: the images must lie in ROOT/<name>/, so a name has "
                        "no '/' and is not '.' or '..'", r->path, line, name);
    char stem[1024];
    if ((size_t)snprintf(stem, sizeof stem, "%s/%s_%04d", name, name, number) >= sizeof stem)
        return kao_fail("%s:%d: name too long", r->path, line);
    return r->known ? resolve_known(r, line, stem) : resolve_file(r, line, stem);
}

int kao_pairs_from_file(kao_pair **pairs, int *count, char ***images, int *num_images, const char *path,
                        const char *root, char *const *known, int num_known, bool follow_symlinks) {
    KAO_ASSERT((root == NULL) != (known == NULL), "give a root or known paths");
    FILE *f = kao_fopen_regular(path, "pairs file");
    if (!f) return KAO_ERR;
    resolver r = {.path = path, .root = root, .known = known, .num_known = num_known};
    if (root && !follow_symlinks && !(r.root_real = realpath(root, NULL))) {
        fclose(f);
        return kao_fail("%s: %s", root, strerror(errno));
    }
    if (known) {
        r.sorted = kao_malloc((size_t)(num_known ? num_known : 1) * sizeof *r.sorted, "known paths");
        for (int i = 0; i < num_known; i++) r.sorted[i] = (by_base){base_name(known[i]), i};
        qsort(r.sorted, (size_t)num_known, sizeof *r.sorted, cmp_base);
    }
    kao_pair *p = NULL;
    int n = 0, capacity = 0, line_no = 0, rc = KAO_OK, same = 0;
    bool first = true;
    char *line = kao_malloc(KAO_MAX_LINE + 1, "pairs line");
    for (long len; rc == KAO_OK && (len = kao_read_line(f, line, KAO_MAX_LINE + 1)) != -1;) {
        line_no++;
        if (len == -2) {
            rc = kao_fail("%s:%d: line longer than %d bytes: not a pairs file", path, line_no, KAO_MAX_LINE);
            break;
        }
        if (strlen(line) != (size_t)len || !kao_valid_utf8(line)) {
            rc = kao_fail("%s:%d: not UTF-8 text (save the file as UTF-8)", path, line_no);
            break;
        }
        char copy[2048];
        snprintf(copy, sizeof copy, "%s", line);
        copy[strcspn(copy, "\r\n")] = '\0';
        kao_utf8_trim(copy);
        char *field[5];
        int fields = 0;
        for (char *save, *t = strtok_r(line, " \t\r\n", &save); t; t = strtok_r(NULL, " \t\r\n", &save))
            if (fields < 5) field[fields++] = t;
            else fields = 6;
        if (fields == 0 || field[0][0] == '#') continue;
        int n1, n2, dummy;
        bool header = first && fields <= 2 && parse_number(field[0], &dummy) &&
                      (fields == 1 || parse_number(field[1], &dummy));
        first = false;
        if (header) continue;
        const char *name1 = field[0], *name2 = fields == 4 ? field[2] : field[0];
        if (!((fields == 3 && parse_number(field[1], &n1) && parse_number(field[2], &n2)) ||
              (fields == 4 && parse_number(field[1], &n1) && parse_number(field[3], &n2)))) {
            rc = kao_fail("%s:%d: expected 'name n1 n2' or 'name1 n1 name2 n2', got '%s'", path, line_no, copy);
            break;
        }
        int a = resolve(&r, line_no, name1, n1);
        int b = a < 0 ? -1 : resolve(&r, line_no, name2, n2);
        if (b < 0) {
            rc = KAO_ERR;
            break;
        }
        if (n == capacity) {
            capacity = capacity ? 2 * capacity : 256;
            p = kao_realloc(p, (size_t)capacity * sizeof *p, "pairs");
        }
        p[n] = (kao_pair){a, b, !strcmp(name1, name2)};
        same += p[n++].same;
    }
    free(line);
    fclose(f);
    if (rc == KAO_OK && n == 0) rc = kao_fail("%s: no pairs in the file", path);
    else if (rc == KAO_OK && same == 0) rc = kao_fail("%s: no same-identity pairs among its %d pairs", path, n);
    else if (rc == KAO_OK && same == n) rc = kao_fail("%s: no different-identity pairs among its %d pairs", path, n);
    free(r.sorted);
    free(r.root_real);
    free(r.images.slots);
    if (rc) {
        kao_free_paths(r.images.items, r.images.count);
        free(p);
        return KAO_ERR;
    }
    *pairs = p;
    *count = n;
    *images = known ? NULL : r.images.items;
    *num_images = known ? num_known : r.images.count;
    if (known) kao_free_paths(r.images.items, r.images.count);
    return KAO_OK;
}
