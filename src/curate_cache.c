/* curate_cache.c — kao curate's embedding cache (curate_analysis.h): a sealed HDF5 file holding
 * "embeddings" (N, E) float32 (raw, as kao embed writes them), "paths" (N) relative to the data
 * root, "sizes" and "mtimes_ns" (N) int64, and the root attribute "key" (the weights' CRC-32 and
 * size and the forward options). A rerun embeds only the images whose path, size or modification
 * time it does not find; other weights or options invalidate every row. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kao/curate_analysis.h"
#include "kao/files.h"
#include "kao/h5io.h"
#include "kao/util.h"

int kao_curate_cache_key(char *key, size_t size, const char *weights, int height, int width, const float mean[3],
                         const float std[3], bool exif_transpose) {
    uint32_t crc = 0;
    uint64_t bytes = 0;
    int fd = kao_open_regular(weights, "weights");
    if (fd < 0) return KAO_ERR;
    int rc = kao_file_crc32(fd, 0, &bytes, &crc);
    int err = errno;
    close(fd);
    if (rc) return kao_fail("%s: cannot read: %s", weights, strerror(err));
    char m[128], s[128];
    kao_format_floats(m, sizeof m, mean, 3);
    kao_format_floats(s, sizeof s, std, 3);
    snprintf(key, size, "weights crc32 %08" PRIx32 " bytes %" PRIu64 "; input %dx%d; mean %s; std %s; exif_transpose %d",
             crc, bytes, height, width, m, s, exif_transpose ? 1 : 0);
    return KAO_OK;
}

int kao_curate_stamps(kao_curate_stamp *stamps, const kao_dataset *ds) {
    for (int i = 0; i < ds->num_images; i++) {
        struct stat st;
        if (stat(ds->images[i].path, &st) != 0)
            return kao_fail("%s: cannot read: %s", ds->images[i].path, strerror(errno));
        stamps[i].size = (long long)st.st_size;
        stamps[i].mtime_ns = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
    }
    return KAO_OK;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(**(char **const *)a, **(char **const *)b);
}

/* Copies the matching rows; the cache's arrays are n long. */
static void match_rows(const kao_dataset *ds, const kao_curate_stamp *stamps, int dim, float *emb, bool *have,
                       int *cached, char **paths, const int64_t *sizes, const int64_t *mtimes, const float *rows,
                       int n) {
    char ***order = kao_malloc((size_t)n * sizeof *order, "cache index");
    for (int j = 0; j < n; j++) order[j] = &paths[j];
    qsort(order, (size_t)n, sizeof *order, cmp_str);
    for (int i = 0; i < ds->num_images; i++) {
        const char *rel = ds->images[i].rel;
        char **key = (char **)&rel;
        char ***hit = bsearch(&key, order, (size_t)n, sizeof *order, cmp_str);
        if (!hit) continue;
        int j = (int)(*hit - paths);
        if (sizes[j] != stamps[i].size || mtimes[j] != stamps[i].mtime_ns) continue;
        memcpy(emb + (size_t)i * dim, rows + (size_t)j * dim, (size_t)dim * sizeof(float));
        have[i] = true;
        ++*cached;
    }
    free(order);
}

int kao_curate_cache_load(const char *cache_path, const char *key, const kao_dataset *ds,
                          const kao_curate_stamp *stamps, int dim, float *emb, bool *have, int *cached) {
    memset(have, 0, (size_t)ds->num_images * sizeof *have);
    *cached = 0;
    if (!kao_file_exists(cache_path)) return KAO_OK;
    kao_h5_file f;
    if (kao_h5_open(&f, cache_path)) return KAO_ERR;
    char stored[512];
    kao_h5_info info;
    char **paths = NULL;
    int n = 0, rc = KAO_OK;
    if (kao_h5_read_attr_str(&f, NULL, "key", stored, sizeof stored) ||
        kao_h5_dataset_info_backed(&f, "embeddings", &info)) {
        rc = KAO_ERR;
    } else if (!strcmp(stored, key) && info.ndim == 2 && info.shape[1] == dim && info.shape[0] <= 1 << 30) {
        n = (int)info.shape[0];
        size_t m = n > 0 ? (size_t)n : 1;
        int64_t *sizes = kao_malloc(m * sizeof *sizes, "cache"), *mtimes = kao_malloc(m * sizeof *mtimes, "cache");
        float *rows = kao_malloc(m * dim * sizeof *rows, "cache");
        int count = 0;
        rc = kao_h5_read_strings(&f, "paths", &paths, &count) || count != n ||
                     kao_h5_read_i64(&f, "sizes", sizes, 1, (int64_t[]){n}) ||
                     kao_h5_read_i64(&f, "mtimes_ns", mtimes, 1, (int64_t[]){n}) ||
                     kao_h5_read_f32(&f, "embeddings", rows, 2, (int64_t[]){n, dim})
                 ? KAO_ERR : KAO_OK;
        if (rc == KAO_OK) match_rows(ds, stamps, dim, emb, have, cached, paths, sizes, mtimes, rows, n);
        else if (count != n && paths) rc = kao_fail("%s: %d paths for %d embeddings", cache_path, count, n);
        kao_h5_free_names(paths, count);
        free(sizes);
        free(mtimes);
        free(rows);
    }
    kao_h5_close(&f);
    return rc ? kao_fail_context("embedding cache %s (delete it to start afresh): ", cache_path) : KAO_OK;
}

int kao_curate_cache_save(const char *cache_path, const char *key, const kao_dataset *ds,
                          const kao_curate_stamp *stamps, int dim, const float *emb) {
    int n = ds->num_images;
    const char **paths = kao_malloc((size_t)n * sizeof *paths, "cache");
    int64_t *sizes = kao_malloc((size_t)n * sizeof *sizes, "cache"), *mtimes = kao_malloc((size_t)n * sizeof *mtimes, "cache");
    for (int i = 0; i < n; i++) {
        paths[i] = ds->images[i].rel;
        sizes[i] = stamps[i].size;
        mtimes[i] = stamps[i].mtime_ns;
    }
    kao_h5_file f;
    int rc = kao_h5_create(&f, cache_path);
    if (rc == KAO_OK)
        rc = kao_h5_write_f32(&f, "embeddings", emb, 2, (int64_t[]){n, dim}) ||
                     kao_h5_write_strings(&f, "paths", paths, n) ||
                     kao_h5_write_i64(&f, "sizes", sizes, 1, (int64_t[]){n}) ||
                     kao_h5_write_i64(&f, "mtimes_ns", mtimes, 1, (int64_t[]){n}) ||
                     kao_h5_write_attr_str(&f, NULL, "key", key) || kao_h5_commit(&f)
                 ? KAO_ERR : KAO_OK;
    kao_h5_close(&f);
    free(paths);
    free(sizes);
    free(mtimes);
    return rc;
}
