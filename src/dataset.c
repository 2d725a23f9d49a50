#include "kao/dataset.h"

#include "kao/curate.h"

#include "kao/files.h"
#include "kao/image.h"
#include "kao/util.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

typedef struct {
    char **items; /* (n) owned strings */
    int n, cap;
} str_list;

static void str_list_push(str_list *l, char *s) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->items = kao_realloc(l->items, (size_t)l->cap * sizeof *l->items, "name list");
    }
    l->items[l->n++] = s;
}

static void str_list_free(str_list *l) {
    for (int i = 0; i < l->n; i++) free(l->items[i]);
    free(l->items);
    *l = (str_list){0};
}

static int compare_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static char *join_path(const char *dir, const char *name) {
    size_t nd = strlen(dir), nn = strlen(name);
    char *p = kao_malloc(nd + nn + 2, "path");
    memcpy(p, dir, nd);
    p[nd] = '/';
    memcpy(p + nd + 1, name, nn + 1);
    return p;
}

/* The non-hidden entries of dir, in byte order. */
static int list_dir(str_list *out, const char *dir, const char *what) {
    DIR *d = opendir(dir);
    if (!d) return kao_fail("%s: cannot read %s: %s", dir, what, strerror(errno));
    struct dirent *e;
    errno = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] != '.') str_list_push(out, kao_strdup(e->d_name));
        errno = 0;
    }
    int err = errno;
    closedir(d);
    if (err) return kao_fail("%s: cannot read %s: %s", dir, what, strerror(err));
    if (out->n) qsort(out->items, (size_t)out->n, sizeof *out->items, compare_str);
    return KAO_OK;
}

/* A manifest line is "side<TAB>identity<TAB>identity/file": names must not break it. */
static int check_name(const char *path, const char *name) {
    if (strpbrk(name, "\t\n\r"))
        return kao_fail("%s: a name with a tab or line break cannot be listed in a split manifest; rename it",
                        path);
    return KAO_OK;
}

/* A quarantine folder of kao curate --apply (curate.h) inside an identity folder. */
static bool is_quarantine(const char *name) {
    for (kao_verdict v = KAO_VERDICT_NOT_ME; v <= KAO_VERDICT_NO_FACE; v++)
        if (!strcmp(name, kao_verdict_folder(v))) return true;
    return false;
}

static void note_ignored(kao_dataset *ds, const char *rel_dir, const char *name) {
    if (ds->ignored_files++ == 0) ds->ignored_example = rel_dir ? join_path(rel_dir, name) : kao_strdup(name);
}

/* Whether path (the entry name of folder rel_dir, NULL: the root) is a symbolic link out of the
 * root (root_real) to skip; such links are counted, skipped or followed. */
static bool skip_outside(kao_dataset *ds, const char *root_real, const char *path, const char *rel_dir,
                         const char *name) {
    struct stat st;
    if (lstat(path, &st) != 0 || !S_ISLNK(st.st_mode) || kao_path_inside(root_real, path)) return false;
    if (ds->outside_links++ == 0) ds->outside_example = rel_dir ? join_path(rel_dir, name) : kao_strdup(name);
    return !ds->options.follow_symlinks;
}

static void add_dropped(kao_dataset *ds, const char *name, int num_images) {
    ds->dropped = kao_realloc(ds->dropped, (size_t)(ds->num_dropped + 1) * sizeof *ds->dropped, "dropped list");
    ds->dropped[ds->num_dropped++] = (kao_dropped_identity){kao_strdup(name), num_images};
}

/* Appends identity `name` with the given image file names (sorted) as the next class. */
static void add_class(kao_dataset *ds, const char *name, const str_list *files, int count) {
    int c = ds->num_classes++;
    ds->classes = kao_realloc(ds->classes, (size_t)ds->num_classes * sizeof *ds->classes, "class list");
    ds->images = kao_realloc(ds->images, (size_t)(ds->num_images + count) * sizeof *ds->images, "image list");
    kao_class *cls = &ds->classes[c];
    cls->name = kao_strdup(name);
    cls->num_images = count;
    cls->images = kao_malloc((size_t)count * sizeof *cls->images, "class image list");
    size_t root_len = strlen(ds->root);
    char *dir = join_path(ds->root, name);
    for (int k = 0; k < count; k++) {
        kao_sample *img = &ds->images[ds->num_images];
        img->path = join_path(dir, files->items[k]);
        img->rel = img->path + root_len + 1;
        img->label = c;
        img->skipped = false;
        cls->images[k] = ds->num_images++;
    }
    free(dir);
}

/* Lists identity folder `name`; adds it as a class, or drops it, by the options. */
static int scan_identity(kao_dataset *ds, const char *root_real, const char *name, int *largest) {
    char *dir = join_path(ds->root, name);
    str_list entries = {0}, images = {0};
    int rc = KAO_OK;
    if (!kao_valid_utf8(name)) {
        rc = kao_fail("%s: identity folder name is not valid UTF-8", dir);
        goto done;
    }
    if ((rc = check_name(dir, name)) != KAO_OK) goto done;
    if ((rc = list_dir(&entries, dir, "identity folder")) != KAO_OK) goto done;
    for (int i = 0; i < entries.n; i++) {
        const char *file = entries.items[i];
        char *path = join_path(dir, file);
        struct stat st = {0}; /* mode 0 (neither file nor folder) when stat fails */
        bool is_image = stat(path, &st) == 0 && S_ISREG(st.st_mode) && kao_is_image_name(file);
        if (is_image && skip_outside(ds, root_real, path, name, file)) {
            free(path);
            continue;
        }
        if (is_image && (rc = check_name(path, file)) != KAO_OK) {
            free(path);
            goto done;
        }
        free(path);
        if (is_image) str_list_push(&images, kao_strdup(file));
        else if (S_ISDIR(st.st_mode) && is_quarantine(file)) ds->quarantine_folders++;
        else note_ignored(ds, name, file);
    }
    if (images.n == 0) {
        if (ds->options.strict) {
            rc = kao_fail("%s: identity folder has no PNG or JPEG images (remove it, or set data.strict = false "
                          "to drop empty folders with a warning)", dir);
            goto done;
        }
        add_dropped(ds, name, 0);
        goto done;
    }
    if (images.n > *largest) *largest = images.n;
    if (images.n < ds->options.min_images) {
        add_dropped(ds, name, images.n);
        goto done;
    }
    int count = images.n;
    if (ds->options.max_images > 0 && count > ds->options.max_images) {
        count = ds->options.max_images;
        ds->num_capped++;
    }
    add_class(ds, name, &images, count);
done:
    str_list_free(&entries);
    str_list_free(&images);
    free(dir);
    return rc;
}

static int scan(kao_dataset *ds, const char *root, const kao_dataset_options *options) {
    ds->options = *options;
    KAO_ASSERT(options->min_images >= 1 && options->max_images >= 0, "min %d max %d", options->min_images,
               options->max_images);
    if (!root || !root[0]) return kao_fail("no data root given (set data.root)");
    ds->root = kao_strdup(root);
    for (size_t n = strlen(ds->root); n > 1 && ds->root[n - 1] == '/'; n--) ds->root[n - 1] = '\0';

    struct stat st;
    if (stat(ds->root, &st) != 0)
        return kao_fail("%s: data root %s", ds->root, errno == ENOENT ? "does not exist" : strerror(errno));
    if (!S_ISDIR(st.st_mode)) return kao_fail("%s: data root is not a folder", ds->root);

    str_list entries = {0};
    char *root_real = realpath(ds->root, NULL);
    if (!root_real) return kao_fail("%s: data root: %s", ds->root, strerror(errno));
    if (list_dir(&entries, ds->root, "data root") != KAO_OK) {
        free(root_real);
        return KAO_ERR;
    }
    int rc = KAO_OK, identities = 0, largest = 0;
    for (int i = 0; i < entries.n && rc == KAO_OK; i++) {
        char *path = join_path(ds->root, entries.items[i]);
        bool is_dir = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
        bool skip = is_dir && skip_outside(ds, root_real, path, NULL, entries.items[i]);
        free(path);
        if (skip) continue;
        if (!is_dir) {
            note_ignored(ds, NULL, entries.items[i]);
            continue;
        }
        identities++;
        rc = scan_identity(ds, root_real, entries.items[i], &largest);
    }
    str_list_free(&entries);
    free(root_real);
    if (rc != KAO_OK) return rc;

    if (identities == 0 && ds->outside_links)
        return kao_fail("%s: no identity folders inside it: %d symbolic links (e.g. %s) lead out of it and are not "
                        "followed (data.follow_symlinks = true, or --follow-symlinks, follows them)", ds->root,
                        ds->outside_links, ds->outside_example);
    if (identities == 0)
        return kao_fail("%s: no identity folders (expected %s/<identity>/<image>.png or .jpg)", ds->root, ds->root);
    if (ds->num_classes == 0) {
        if (largest == 0) return kao_fail("%s: none of the %d identity folders holds a PNG or JPEG image", ds->root, identities);
        return kao_fail("%s: all %d identities have fewer than %d images (the largest has %d); lower data.min_images",
                        ds->root, identities, options->min_images, largest);
    }
    return KAO_OK;
}

int kao_dataset_scan(kao_dataset *ds, const char *root, const kao_dataset_options *options) {
    *ds = (kao_dataset){0};
    int rc = scan(ds, root, options);
    if (rc != KAO_OK) kao_dataset_free(ds); /* nothing half-made is left for the caller */
    return rc;
}

void kao_dataset_free(kao_dataset *ds) {
    for (int c = 0; c < ds->num_classes; c++) {
        free(ds->classes[c].name);
        free(ds->classes[c].images);
    }
    for (int i = 0; i < ds->num_images; i++) free(ds->images[i].path);
    for (int i = 0; i < ds->num_dropped; i++) free(ds->dropped[i].name);
    free(ds->classes);
    free(ds->images);
    free(ds->dropped);
    free(ds->ignored_example);
    free(ds->outside_example);
    free(ds->root);
    *ds = (kao_dataset){0};
}

int kao_dataset_find(const kao_dataset *ds, const char *rel) {
    const char *slash = strchr(rel, '/');
    if (!slash) return -1;
    size_t name_len = (size_t)(slash - rel);
    const char *file = slash + 1;
    int lo = 0, hi = ds->num_classes - 1;
    while (lo <= hi) { /* classes are sorted by name (byte order) */
        int mid = (lo + hi) / 2;
        const char *name = ds->classes[mid].name;
        int cmp = strncmp(name, rel, name_len);
        if (cmp == 0) cmp = name[name_len] ? 1 : 0;
        if (cmp < 0) lo = mid + 1;
        else if (cmp > 0) hi = mid - 1;
        else {
            const kao_class *cls = &ds->classes[mid];
            int a = 0, b = cls->num_images - 1;
            while (a <= b) { /* and its images by file name */
                int m = (a + b) / 2;
                int i = cls->images[m];
                int fc = strcmp(ds->images[i].rel + name_len + 1, file);
                if (fc == 0) return i;
                if (fc < 0) a = m + 1;
                else b = m - 1;
            }
            return -1;
        }
    }
    return -1;
}

bool kao_dataset_mark_skipped(kao_dataset *ds, int i) {
    KAO_ASSERT(i >= 0 && i < ds->num_images, "image %d of %d", i, ds->num_images);
    if (ds->images[i].skipped) return false;
    ds->images[i].skipped = true;
    ds->skipped_images++;
    return true;
}

static int compare_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* "a (12), b (3), ... and 4 more" for the dropped identities that match `empty`. */
static void print_dropped(FILE *f, const kao_dataset *ds, bool empty) {
    int shown = 0, total = 0;
    for (int i = 0; i < ds->num_dropped; i++) {
        const kao_dropped_identity *d = &ds->dropped[i];
        if ((d->num_images == 0) != empty) continue;
        if (total++ >= 8) continue;
        if (empty) fprintf(f, "%s%s", shown ? ", " : "", d->name);
        else fprintf(f, "%s%s (%d)", shown ? ", " : "", d->name, d->num_images);
        shown++;
    }
    if (total > shown) fprintf(f, " ... and %d more", total - shown);
    fputc('\n', f);
}

/* Images named *.png (any case); the others are *.jpg or *.jpeg (kao_is_image_name). The decoder
 * goes by content, so this counts names, not formats. */
static int count_png_names(const kao_dataset *ds) {
    int png = 0;
    for (int i = 0; i < ds->num_images; i++) {
        size_t n = strlen(ds->images[i].path);
        png += n >= 4 && strcasecmp(ds->images[i].path + n - 4, ".png") == 0;
    }
    return png;
}

void kao_dataset_print_summary(FILE *f, const kao_dataset *ds) {
    int *counts = kao_malloc((size_t)ds->num_classes * sizeof *counts, "class sizes");
    for (int c = 0; c < ds->num_classes; c++) counts[c] = ds->classes[c].num_images;
    qsort(counts, (size_t)ds->num_classes, sizeof *counts, compare_int);
    int n = ds->num_classes;
    double median = n % 2 ? counts[n / 2] : 0.5 * (counts[n / 2 - 1] + counts[n / 2]);
    int empty = 0;
    for (int i = 0; i < ds->num_dropped; i++) empty += ds->dropped[i].num_images == 0;
    int small = ds->num_dropped - empty;

    fprintf(f, "data: %s\n", ds->root);
    fprintf(f, "  identities: %d (images per identity: min %d, median %g, max %d)\n", n, counts[0], median,
            counts[n - 1]);
    int png = count_png_names(ds);
    fprintf(f, "  images:     %d (%d .png, %d .jpg or .jpeg)\n", ds->num_images, png, ds->num_images - png);
    if (small) {
        fprintf(f, "  dropped:    %d %s with fewer than %d images: ", small, small == 1 ? "identity" : "identities",
                ds->options.min_images);
        print_dropped(f, ds, false);
    }
    if (empty) {
        fprintf(f, "  dropped:    %d empty identity %s: ", empty, empty == 1 ? "folder" : "folders");
        print_dropped(f, ds, true);
    }
    if (ds->num_capped)
        fprintf(f, "  capped:     %d %s at %d images\n", ds->num_capped,
                ds->num_capped == 1 ? "identity" : "identities", ds->options.max_images);
    if (ds->quarantine_folders)
        fprintf(f, "  quarantine: %d %s (kao curate) left out\n", ds->quarantine_folders,
                ds->quarantine_folders == 1 ? "not_me/, same_face/ or no_face/ folder" : "not_me/, same_face/ or no_face/ folders");
    fprintf(f, "  ignored:    %d %s neither an identity folder nor a PNG or JPEG image", ds->ignored_files,
            ds->ignored_files == 1 ? "entry is" : "entries are");
    if (ds->ignored_example) fprintf(f, " (e.g. %s)", ds->ignored_example);
    fputc('\n', f);
    if (ds->outside_links)
        fprintf(f, "  outside:    %d symbolic %s out of the data root (e.g. %s), %s\n", ds->outside_links,
                ds->outside_links == 1 ? "link leads" : "links lead", ds->outside_example,
                ds->options.follow_symlinks ? "followed (data.follow_symlinks = true)"
                                            : "not followed (data.follow_symlinks = true follows them)");
    fprintf(f, "  skipped:    %d %s that failed to decode\n", ds->skipped_images,
            ds->skipped_images == 1 ? "image" : "images");
    free(counts);
}
