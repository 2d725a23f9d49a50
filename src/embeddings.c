#include "kao/embeddings.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "kao/augment.h"
#include "kao/h5io.h"
#include "kao/image.h"
#include "kao/loader.h"
#include "kao/embedder.h"
#include "kao/files.h"
#include "kao/util.h"

static bool has_extension(const char *path, const char *ext) {
    size_t n = strlen(path), m = strlen(ext);
    return n > m && strcasecmp(path + n - m, ext) == 0;
}

int kao_embedding_format_for(const char *path, kao_embedding_format *format) {
    if (has_extension(path, ".h5") || has_extension(path, ".hdf5")) *format = KAO_EMB_HDF5;
    else if (has_extension(path, ".npy")) *format = KAO_EMB_NPY;
    else if (has_extension(path, ".csv")) *format = KAO_EMB_CSV;
    else return kao_fail("%s: unknown output format: the name must end in .h5 or .hdf5 (HDF5), .npy or .csv", path);
    return KAO_OK;
}

int kao_embeddings_check_paths(const char *out, kao_embedding_format format, char *const *paths, int count) {
    for (int i = 0; format == KAO_EMB_NPY && i < count; i++)
        if (strpbrk(paths[i], "\n\r"))
            return kao_fail("%s: the file name holds a line break, which %s.paths.txt (one path per line) cannot "
                            "list; rename it, or write .h5 or .csv", paths[i], out);
    return KAO_OK;
}

/* ---- collecting images -------------------------------------------------------------------- */

typedef struct {
    char **items;
    int count, capacity;
} path_list;

static void push(path_list *l, const char *path) {
    if (l->count == l->capacity) {
        l->capacity = l->capacity ? 2 * l->capacity : 64;
        l->items = kao_realloc(l->items, (size_t)l->capacity * sizeof *l->items, "image list");
    }
    l->items[l->count++] = kao_strdup(path);
}

/* Image paths go into embeddings files and reports as UTF-8 text. One that is not is named with
 * its bytes above 0x7F written as \xNN (a message must be UTF-8 itself). */
static int push_image(path_list *l, const char *path) {
    if (kao_valid_utf8(path)) {
        push(l, path);
        return KAO_OK;
    }
    char shown[1024];
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)path; *p && n + 5 < sizeof shown; p++)
        n += (size_t)snprintf(shown + n, sizeof shown - n, *p < 0x80 ? "%c" : "\\x%02x", *p);
    return kao_fail("%s: the path is not UTF-8 text; rename it", shown);
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The folders from the input down to the one being walked: a folder that is its own ancestor
 * (through a symbolic link) would be walked again and again. */
typedef struct folder_chain {
    dev_t dev;
    ino_t ino;
    const char *path;
    const struct folder_chain *parent;
} folder_chain;

/* Whether the entry full of a folder being searched leads out of the input folder root_real
 * (NULL: links are followed anywhere) through a symbolic link. */
static bool leads_out(const char *root_real, const char *full) {
    struct stat st;
    return root_real && lstat(full, &st) == 0 && S_ISLNK(st.st_mode) && !kao_path_inside(root_real, full);
}

static int walk(path_list *l, const char *dir, const char *root_real, const folder_chain *parent) {
    struct stat st;
    if (stat(dir, &st) != 0) return kao_fail("%s: cannot open folder: %s", dir, strerror(errno));
    for (const folder_chain *a = parent; a; a = a->parent)
        if (a->dev == st.st_dev && a->ino == st.st_ino)
            return kao_fail("%s: leads back to %s (a symbolic link loop); remove the link, or name the folders to "
                            "search one by one", dir, a->path);
    folder_chain here = {st.st_dev, st.st_ino, dir, parent};
    DIR *d = opendir(dir);
    if (!d) return kao_fail("%s: cannot open folder", dir);
    path_list names = {0};
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') push(&names, e->d_name);
    closedir(d);
    if (names.count) qsort(names.items, (size_t)names.count, sizeof *names.items, cmp_names);
    int rc = KAO_OK;
    for (int i = 0; i < names.count && rc == KAO_OK; i++) {
        size_t len = strlen(dir) + strlen(names.items[i]) + 2;
        char *full = kao_malloc(len, "path");
        snprintf(full, len, "%s/%s", dir, names.items[i]);
        if ((kao_is_dir(full) || kao_is_image_name(full)) && leads_out(root_real, full))
            rc = kao_fail("%s: a symbolic link that leads out of the folder searched (--follow-symlinks follows it)",
                          full);
        else if (kao_is_dir(full)) rc = walk(l, full, root_real, &here);
        else if (kao_is_image_name(full)) rc = push_image(l, full);
        free(full);
    }
    kao_free_paths(names.items, names.count);
    return rc;
}

/* Searches the folder in, following symbolic links out of it only when follow_symlinks. */
static int search(path_list *l, const char *in, bool follow_symlinks) {
    char *real = follow_symlinks ? NULL : realpath(in, NULL);
    if (!follow_symlinks && !real) return kao_fail("%s: cannot open folder: %s", in, strerror(errno));
    int rc = walk(l, in, real, NULL);
    free(real);
    return rc;
}

int kao_collect_images(char ***paths, int *count, char *const *inputs, int num_inputs, bool follow_symlinks) {
    path_list l = {0};
    for (int i = 0; i < num_inputs; i++) {
        const char *in = inputs[i];
        int rc = KAO_OK;
        if (kao_is_dir(in)) rc = search(&l, in, follow_symlinks);
        else if (!kao_file_exists(in)) rc = kao_fail("%s: No such file or directory", in);
        else if (!kao_is_image_name(in))
            rc = kao_fail("%s: not a PNG or JPEG file name (kao reads *.png, *.jpg and *.jpeg)", in);
        else rc = push_image(&l, in);
        if (rc) {
            kao_free_paths(l.items, l.count);
            return KAO_ERR;
        }
    }
    if (l.count == 0) {
        kao_free_paths(l.items, l.count);
        return kao_fail("no PNG or JPEG images found in %s%s", num_inputs ? inputs[0] : "(no inputs)",
                        num_inputs > 1 ? " and the other inputs" : "");
    }
    *paths = l.items;
    *count = l.count;
    return KAO_OK;
}

void kao_free_paths(char **paths, int count) {
    for (int i = 0; i < count; i++) free(paths[i]);
    free(paths);
}

/* ---- the forward pass over files ---------------------------------------------------------- */

/* The progress line, rewritten after each batch; ended when all are done or (ended) an error
 * stops the pass, so that the error starts a line of its own. */
static void report_progress(bool progress, int done, int count, double start) {
    if (!progress) return;
    double rate = done / (kao_now_seconds() - start);
    int left = rate > 0 ? (int)((count - done) / rate + 0.5) : 0;
    fprintf(stderr, "\rembedded %d/%d images (%.1f images/s, %d:%02d left) ", done, count, rate, left / 60, left % 60);
    if (done == count) fputc('\n', stderr);
}

static int end_progress(bool progress, int done, int count, int rc) {
    if (progress && rc != KAO_OK && done > 0 && done < count) fputc('\n', stderr);
    return rc;
}

/* Each batch decoded by all the threads, then run: on the CPU the forward pass uses every core. */
static int embed_decoding_first(float *out, kao_embedder *embedder, kao_backend *be, char *const *paths, int count,
                                int E, int height, int width, const kao_input_norm *norm,
                                const kao_image_options *image, int batch, bool progress) {
    size_t image_floats = (size_t)height * width * 3;
    float *input = be->host_alloc(be, (size_t)batch * image_floats * sizeof(float), "input batch");
    int rc = KAO_OK, done = 0;
    double start = kao_now_seconds();
    for (int first = 0; first < count && rc == KAO_OK; first += batch) {
        int n = count - first < batch ? count - first : batch;
        int failed = -1;
        char message[1024] = "";
#pragma omp parallel for schedule(dynamic)
        for (int i = 0; i < n; i++) {
            if (kao_load_input(input + (size_t)i * image_floats, paths[first + i], height, width, norm, image)) {
#pragma omp critical
                if (failed < 0 || first + i < failed) {
                    failed = first + i;
                    snprintf(message, sizeof message, "%s", kao_last_error());
                }
            }
        }
        if (failed >= 0) {
            rc = kao_fail("%s", message);
            break;
        }
        kao_embedder_run(embedder, out + (size_t)first * E, input, n);
        report_progress(progress, first + n, count, start);
        done = first + n;
    }
    be->host_release(be, input);
    return end_progress(progress, done, count, rc);
}

/* On a device with memory of its own (a GPU) the host only decodes: the training loader's worker
 * threads (without augmentation: the same values as kao_load_input) prepare the next batches in
 * page-locked memory while the device runs this one. */
static int embed_decoding_ahead(float *out, kao_embedder *embedder, kao_backend *be, char *const *paths, int count,
                                int E, int height, int width, const kao_input_norm *norm,
                                const kao_image_options *image, int batch, bool progress) {
    kao_dataset list = {.num_images = count};
    list.images = kao_calloc((size_t)count, sizeof *list.images, "image list");
    int *items = kao_malloc((size_t)count * sizeof *items, "image list");
    for (int i = 0; i < count; i++) {
        list.images[i].path = paths[i];
        items[i] = i;
    }
    int workers = kao_loader_device_workers();
    kao_loader *L = kao_loader_create(&list, workers, workers + 1, batch, height, width, norm, image, be);
    kao_augment_cfg none = kao_augment_none();
    kao_loader_start(L, items, count, batch, 0, &none, 0, 0);
    int rc = KAO_OK, first = 0;
    double start = kao_now_seconds();
    for (const kao_batch *b; rc == KAO_OK && (b = kao_loader_next(L, NULL));) {
        if (b->num_failed > 0) {
            rc = kao_fail("%s", b->failed_message[0]);
            break;
        }
        kao_embedder_run(embedder, out + (size_t)first * E, b->input, b->count);
        first += b->count;
        report_progress(progress, first, count, start);
    }
    kao_loader_free(L);
    free(items);
    free(list.images);
    return end_progress(progress, first, count, rc);
}

int kao_embed_images(float *out, const kao_model *m, kao_backend *be, char *const *paths, int count, int height,
                     int width, const kao_input_norm *norm, const kao_image_options *image, int batch,
                     bool progress) {
    if (batch > count) batch = count;
    kao_net_weights weights;
    kao_net_weights_create(&weights, m, be);
    kao_embedder embedder;
    kao_embedder_init(&embedder, m, &weights, height, width);
    int E = m->arch.embedding_dim;
    int rc = be->host_memory
                 ? embed_decoding_first(out, &embedder, be, paths, count, E, height, width, norm, image, batch,
                                        progress)
                 : embed_decoding_ahead(out, &embedder, be, paths, count, E, height, width, norm, image, batch,
                                        progress);
    kao_embedder_free(&embedder);
    kao_net_weights_free(&weights);
    return rc;
}

/* ---- writers ------------------------------------------------------------------------------- */

static int save_hdf5(const char *path, const float *emb, int count, int dim, char *const *paths,
                     const kao_model *m, int height, int width) {
    kao_h5_file f;
    if (kao_h5_create(&f, path)) return KAO_ERR;
    int rc = kao_h5_write_f32(&f, "embeddings", emb, 2, (int64_t[]){count, dim}) ||
             kao_h5_write_strings(&f, "paths", (const char *const *)paths, count) ||
             kao_h5_write_attr_str(&f, NULL, "architecture", m->arch.variant) ||
             kao_h5_write_attr_f64(&f, NULL, "width_mult", m->arch.width_mult) ||
             kao_h5_write_attr_f64(&f, NULL, "depth_mult", m->arch.depth_mult) ||
             kao_h5_write_attr_i64(&f, NULL, "input_height", height) ||
             kao_h5_write_attr_i64(&f, NULL, "input_width", width) ||
             kao_h5_write_attr_i64(&f, NULL, "normalized", 0) || kao_h5_commit(&f);
    kao_h5_close(&f);
    return rc ? KAO_ERR : KAO_OK;
}

/* NumPy's .npy version 1.0: magic, header length, a Python-dict header padded to 64 bytes. */
static int save_npy(const char *path, const float *emb, int count, int dim) {
    char temp[4200];
    FILE *f = kao_atomic_fopen(temp, sizeof temp, path);
    if (!f) return KAO_ERR;
    char header[128];
    int n = snprintf(header, sizeof header, "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", count, dim);
    int total = 10 + n + 1;
    int padded = (total + 63) / 64 * 64;
    memset(header + n, ' ', (size_t)(padded - total));
    header[padded - 10 - 1] = '\n';
    unsigned short header_len = (unsigned short)(padded - 10);
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    fputc(header_len & 0xff, f);
    fputc(header_len >> 8, f);
    fwrite(header, 1, header_len, f);
    fwrite(emb, sizeof(float), (size_t)count * dim, f);
    return kao_atomic_fclose(f, temp, path);
}

static void write_csv_field(FILE *f, const char *s) {
    if (!strpbrk(s, ",\"\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static int save_csv(const char *path, const float *emb, int count, int dim, char *const *paths) {
    char temp[4200];
    FILE *f = kao_atomic_fopen(temp, sizeof temp, path);
    if (!f) return KAO_ERR;
    fputs("path", f);
    for (int j = 0; j < dim; j++) fprintf(f, ",e%d", j);
    fputc('\n', f);
    for (int i = 0; i < count; i++) {
        write_csv_field(f, paths[i]);
        for (int j = 0; j < dim; j++) fprintf(f, ",%.9g", emb[(size_t)i * dim + j]);
        fputc('\n', f);
    }
    return kao_atomic_fclose(f, temp, path);
}

static int save_path_list(const char *path, char *const *paths, int count) {
    char temp[4200];
    FILE *f = kao_atomic_fopen(temp, sizeof temp, path);
    if (!f) return KAO_ERR;
    for (int i = 0; i < count; i++) fprintf(f, "%s\n", paths[i]);
    return kao_atomic_fclose(f, temp, path);
}

int kao_embeddings_save(const char *path, kao_embedding_format format, const float *emb, int count,
                        int dim, char *const *paths, const kao_model *m, int height, int width) {
    if (kao_embeddings_check_paths(path, format, paths, count)) return KAO_ERR;
    switch (format) {
    case KAO_EMB_NPY: {
        char list[4200];
        snprintf(list, sizeof list, "%s.paths.txt", path);
        return save_path_list(list, paths, count) || save_npy(path, emb, count, dim) ? KAO_ERR : KAO_OK;
    }
    case KAO_EMB_CSV: return save_csv(path, emb, count, dim, paths);
    default: return save_hdf5(path, emb, count, dim, paths, m, height, width);
    }
}
