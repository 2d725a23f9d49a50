#include "kao/h5io.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "h5sandbox.h"
#include "kao/files.h"
#include "kao/util.h"

_Static_assert(sizeof(hid_t) == sizeof(int64_t), "kao_h5_file.id holds a hid_t");

/* ---- files ------------------------------------------------------------------------------- */

/* HDF5 prints its error stack to stderr by default; kao reports errors itself. And HDF5 closes
 * the files still open at exit, flushing them: after a write that failed (disk full) that flush
 * crashed libhdf5 (1.10.8) inside exit(), turning kao's clear error into a segfault. kao closes
 * every file it keeps; one left open is a failed writer whose temporary file is discarded anyway,
 * so the exit handler is not installed (H5dont_atexit must come before any other HDF5 call). */
static void quiet_hdf5(void) {
    static bool done;
    if (done) return;
    H5dont_atexit();
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    done = true;
}

static hid_t file_access_plist(void) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    /* Closing the file closes whatever was left open in it, so a commit never renames a file
     * that HDF5 still holds. */
    H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
#if (H5_VERS_MAJOR == 1 && H5_VERS_MINOR == 10 && H5_VERS_RELEASE >= 7) || H5_VERSION_GE(1, 12, 1)
    /* kao never writes a file in place (writers rename a finished file over it), so readers need
     * no lock; and flock fails on some network filesystems. */
    H5Pset_file_locking(fapl, false, true);
#endif
    return fapl;
}

static int start(kao_h5_file *f, const char *path) {
    memset(f, 0, sizeof *f);
    f->id = -1;
    if (strlen(path) >= sizeof f->path) return kao_fail("%.200s...: path too long", path);
    strcpy(f->path, path);
    quiet_hdf5();
    return KAO_OK;
}

int kao_h5_open(kao_h5_file *f, const char *path) {
    if (start(f, path)) return KAO_ERR;
    /* Ask the OS first: HDF5's own message for a missing file is unreadable. */
    struct stat st;
    if (stat(path, &st) != 0) return kao_fail("%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) return kao_fail("%s: is a folder, not a file", path);
    if (kao_check_regular(path, "HDF5 file")) return KAO_ERR; /* a FIFO would block the open for ever */
    if (access(path, R_OK) != 0) return kao_fail("%s: %s", path, strerror(errno));
    kao_h5_seal_state seal;
    if (kao_h5_check_seal(path, &seal)) return KAO_ERR;
    /* The seal catches damage, not intent: anyone can seal a file (tools/kao_seal.py does). A
     * damaged or hostile file can crash libhdf5, so every file is read by a child process. */
    return kao_h5_sandbox_open(path, &f->id, &f->image);
}

int kao_h5_create(kao_h5_file *f, const char *path) {
    if (start(f, path)) return KAO_ERR;
    if (kao_check_parent_dir(path)) return KAO_ERR;
    if (kao_is_dir(path)) return kao_fail("%s: is a folder, not a file", path);
    /* Create the file ourselves first: HDF5 does not say why a create failed. HDF5 then creates
     * the name anew with O_EXCL, so whatever appears there in between is refused, not written. */
    int fd = kao_temp_create(f->temp_path, sizeof f->temp_path, path);
    if (fd < 0) return KAO_ERR;
    close(fd);
    unlink(f->temp_path);
    /* Track creation order so that readers (kao_h5_list, h5py) list datasets as written. */
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    H5Pset_link_creation_order(fcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
    H5Pset_userblock(fcpl, KAO_H5_SEAL_BYTES); /* room for the seal (h5seal.c) */
    hid_t fapl = file_access_plist();
    hid_t id = H5Fcreate(f->temp_path, H5F_ACC_EXCL, fcpl, fapl);
    H5Pclose(fapl);
    H5Pclose(fcpl);
    if (id < 0) return kao_fail("%s: cannot create an HDF5 file at '%s'", path, f->temp_path);
    f->id = id;
    f->writing = true;
    return KAO_OK;
}

int kao_h5_create_memory(kao_h5_file *f, const char *path) {
    if (start(f, path)) return KAO_ERR;
    /* HDF5 tells open files apart by name: each in-memory file gets its own. */
    static unsigned serial;
    char name[64];
    snprintf(name, sizeof name, "kao-memory-%u", ++serial);
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    H5Pset_link_creation_order(fcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
    hid_t fapl = file_access_plist();
    H5Pset_fapl_core(fapl, (size_t)1 << 20, false); /* no backing store: nothing touches the disk */
    hid_t id = H5Fcreate(name, H5F_ACC_TRUNC, fcpl, fapl);
    H5Pclose(fapl);
    H5Pclose(fcpl);
    if (id < 0) return kao_fail("%s: cannot create an HDF5 file in memory", path);
    f->id = id;
    f->writing = true; /* temp_path stays empty: there is nothing to commit or discard */
    return KAO_OK;
}

int kao_h5_commit(kao_h5_file *f) {
    KAO_ASSERT(f->writing && f->id >= 0, "commit of a file that is not being written: %s", f->path);
    herr_t rc = H5Fclose((hid_t)f->id);
    f->id = -1;
    f->writing = false;
    if (rc < 0) {
        kao_discard_file(f->temp_path);
        return kao_fail("%s: could not finish writing '%s' (disk full?)", f->path, f->temp_path);
    }
    if (kao_h5_seal(f->temp_path, f->path)) {
        kao_discard_file(f->temp_path);
        return KAO_ERR;
    }
    return kao_commit_file(f->temp_path, f->path);
}

void kao_h5_close(kao_h5_file *f) {
    if (f->id >= 0) H5Fclose((hid_t)f->id);
    kao_h5_sandbox_release(f->image);
    f->image = NULL;
    if (f->writing && f->temp_path[0]) kao_discard_file(f->temp_path);
    f->id = -1;
    f->writing = false;
}

/* ---- describing datasets ------------------------------------------------------------------ */

bool kao_h5_exists(const kao_h5_file *f, const char *name) {
    /* Negative (an error) when an intermediate group is missing: that is "no" too. */
    return H5Lexists((hid_t)f->id, name, H5P_DEFAULT) > 0;
}

static void describe_type(kao_h5_info *info, hid_t type) {
    switch (H5Tget_class(type)) {
    case H5T_FLOAT: info->cls = KAO_H5_FLOAT; break;
    case H5T_INTEGER: info->cls = KAO_H5_INT; break;
    case H5T_STRING: info->cls = KAO_H5_STRING; break;
    default: info->cls = KAO_H5_OTHER; break;
    }
    info->bytes = (int)H5Tget_size(type);
    info->is_signed = info->cls == KAO_H5_INT && H5Tget_sign(type) == H5T_SGN_2;
}

/* Fills info from an open dataset or attribute's space and type. */
static int describe(const kao_h5_file *f, const char *name, hid_t space, hid_t type,
                    kao_h5_info *info) {
    memset(info, 0, sizeof *info);
    int ndim = H5Sget_simple_extent_ndims(space);
    if (ndim < 0 || H5Sget_simple_extent_type(space) == H5S_NULL)
        return kao_fail("%s: '%s' has no dataspace (corrupt?)", f->path, name);
    if (ndim > KAO_H5_MAX_DIMS)
        return kao_fail("%s: '%s' has %d dimensions, kao reads at most %d", f->path, name, ndim,
                        KAO_H5_MAX_DIMS);
    hsize_t dims[KAO_H5_MAX_DIMS];
    H5Sget_simple_extent_dims(space, dims, NULL);
    info->ndim = ndim;
    info->numel = 1;
    for (int i = 0; i < ndim; i++) {
        /* A damaged or foreign file may claim any size: the product must fit an int64. */
        if (dims[i] > (hsize_t)INT64_MAX || (dims[i] > 0 && info->numel > INT64_MAX / (int64_t)dims[i]))
            return kao_fail("%s: '%s' claims more than 2^63 elements (damaged?)", f->path, name);
        info->shape[i] = (int64_t)dims[i];
        info->numel *= (int64_t)dims[i];
    }
    describe_type(info, type);
    return KAO_OK;
}

static int open_dataset(const kao_h5_file *f, const char *name, hid_t *out) {
    if (!kao_h5_exists(f, name)) return kao_fail("%s: missing dataset '%s'", f->path, name);
    hid_t d = H5Dopen2((hid_t)f->id, name, H5P_DEFAULT);
    if (d < 0) return kao_fail("%s: '%s' is not a dataset (or is corrupt)", f->path, name);
    *out = d;
    return KAO_OK;
}

/* A header can declare any size, and some callers allocate by it: a numeric dataset's declared
 * bytes must be what the file stores for it (unfiltered), or at most 1032 times that (zlib's
 * largest expansion; the sandbox allows no other decompressing filter, h5sandbox.c). Checked
 * before every read, and by kao_h5_dataset_info_backed for callers that allocate by the header. */
static int check_stored(const kao_h5_file *f, const char *name, hid_t d, const kao_h5_info *info) {
    if ((info->cls != KAO_H5_FLOAT && info->cls != KAO_H5_INT) || info->numel == 0) return KAO_OK;
    hid_t dcpl = H5Dget_create_plist(d);
    int filters = dcpl >= 0 ? H5Pget_nfilters(dcpl) : -1;
    if (dcpl >= 0) H5Pclose(dcpl);
    double declared = (double)info->numel * info->bytes, stored = (double)H5Dget_storage_size(d);
    if (filters < 0) return kao_fail("%s: cannot read the storage of '%s' (corrupt?)", f->path, name);
    if (filters == 0 ? stored != declared : declared > stored * 1032 + 4096)
        return kao_fail("%s: '%s' declares %.0f bytes but the file stores %.0f for it (damaged?)", f->path, name,
                        declared, stored);
    return KAO_OK;
}

static int dataset_info(const kao_h5_file *f, const char *name, hid_t d, kao_h5_info *info) {
    hid_t space = H5Dget_space(d), type = H5Dget_type(d);
    int rc = space >= 0 && type >= 0 ? describe(f, name, space, type, info)
                                     : kao_fail("%s: cannot read the header of '%s' (corrupt?)", f->path, name);
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    return rc;
}

static int info_of(const kao_h5_file *f, const char *name, kao_h5_info *info, bool backed) {
    hid_t d = -1;
    if (open_dataset(f, name, &d)) return KAO_ERR;
    int rc = dataset_info(f, name, d, info);
    if (rc == KAO_OK && backed) rc = check_stored(f, name, d, info);
    H5Dclose(d);
    return rc;
}

int kao_h5_dataset_info(const kao_h5_file *f, const char *name, kao_h5_info *info) {
    return info_of(f, name, info, false);
}

int kao_h5_dataset_info_backed(const kao_h5_file *f, const char *name, kao_h5_info *info) {
    return info_of(f, name, info, true);
}

const char *kao_h5_type_name(const kao_h5_info *info) {
    switch (info->cls) {
    case KAO_H5_FLOAT:
        return info->bytes == 2 ? "float16" : info->bytes == 4 ? "float32" : info->bytes == 8 ? "float64" : "float";
    case KAO_H5_INT:
        switch (info->bytes) {
        case 1: return info->is_signed ? "int8" : "uint8";
        case 2: return info->is_signed ? "int16" : "uint16";
        case 4: return info->is_signed ? "int32" : "uint32";
        case 8: return info->is_signed ? "int64" : "uint64";
        default: return "integer";
        }
    case KAO_H5_STRING: return "string";
    default: return "a non-numeric type";
    }
}

void kao_h5_shape_string(char *out, size_t out_size, int ndim, const int64_t *shape) {
    size_t n = (size_t)snprintf(out, out_size, "[");
    for (int i = 0; i < ndim && n < out_size; i++)
        n += (size_t)snprintf(out + n, out_size - n, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (n < out_size) snprintf(out + n, out_size - n, "]");
}

/* ---- listing ----------------------------------------------------------------------------- */

typedef struct {
    char **names;
    int count, capacity;
} name_list;

static void append_name(name_list *l, const char *name) {
    if (l->count == l->capacity) {
        l->capacity = l->capacity ? 2 * l->capacity : 64;
        l->names = kao_realloc(l->names, (size_t)l->capacity * sizeof *l->names, "name list");
    }
    l->names[l->count++] = kao_strdup(name);
}

static herr_t list_one(hid_t group, const char *name, const H5L_info_t *link, void *data) {
    (void)link;
    hid_t obj = H5Oopen(group, name, H5P_DEFAULT);
    if (obj < 0) return 0; /* a dangling soft link: not a dataset */
    if (H5Iget_type(obj) == H5I_DATASET) append_name(data, name);
    H5Oclose(obj);
    return 0;
}

int kao_h5_list(const kao_h5_file *f, const char *group, char ***names, int *count) {
    const char *g_name = group ? group : "/";
    *names = NULL;
    *count = 0;
    hid_t g = H5Gopen2((hid_t)f->id, g_name, H5P_DEFAULT);
    if (g < 0) return kao_fail("%s: missing group '%s'", f->path, g_name);
    unsigned order_flags = 0;
    hid_t gcpl = H5Gget_create_plist(g);
    if (gcpl >= 0) {
        H5Pget_link_creation_order(gcpl, &order_flags);
        H5Pclose(gcpl);
    }
    H5_index_t index = order_flags & H5P_CRT_ORDER_TRACKED ? H5_INDEX_CRT_ORDER : H5_INDEX_NAME;
    name_list l = {0};
    herr_t rc = H5Literate(g, index, H5_ITER_INC, NULL, list_one, &l);
    H5Gclose(g);
    if (rc < 0) {
        kao_h5_free_names(l.names, l.count);
        return kao_fail("%s: cannot list group '%s' (corrupt?)", f->path, g_name);
    }
    for (int i = 0; i < l.count; i++)
        if (!kao_valid_utf8(l.names[i])) {
            kao_h5_free_names(l.names, l.count);
            return kao_fail("%s: a dataset name in group '%s' is not UTF-8 text (damaged?)", f->path, g_name);
        }
    *names = l.names;
    *count = l.count;
    return KAO_OK;
}

void kao_h5_free_names(char **names, int count) {
    for (int i = 0; i < count; i++) free(names[i]);
    free(names);
}

/* ---- reading and writing datasets -------------------------------------------------------- */

static bool same_shape(const kao_h5_info *info, int ndim, const int64_t *shape) {
    if (info->ndim != ndim) return false;
    for (int i = 0; i < ndim; i++)
        if (info->shape[i] != shape[i]) return false;
    return true;
}

static int read_numbers(const kao_h5_file *f, const char *name, void *out, hid_t memtype,
                        kao_h5_class want, const char *want_name, int ndim, const int64_t *shape) {
    hid_t d = -1;
    if (open_dataset(f, name, &d)) return KAO_ERR;
    kao_h5_info info;
    int rc = dataset_info(f, name, d, &info);
    if (rc == KAO_OK && info.cls != want)
        rc = kao_fail("%s: dataset '%s' is %s, expected %s", f->path, name, kao_h5_type_name(&info),
                      want_name);
    if (rc == KAO_OK && !same_shape(&info, ndim, shape)) {
        char found[128], expected[128];
        kao_h5_shape_string(found, sizeof found, info.ndim, info.shape);
        kao_h5_shape_string(expected, sizeof expected, ndim, shape);
        rc = kao_fail("%s: dataset '%s' has shape %s, expected %s", f->path, name, found, expected);
    }
    if (rc == KAO_OK) rc = check_stored(f, name, d, &info); /* never fill values for missing data */
    if (rc == KAO_OK && H5Dread(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0)
        rc = kao_fail("%s: cannot read dataset '%s' (truncated or corrupt?)", f->path, name);
    H5Dclose(d);
    return rc;
}

int kao_h5_read_f32(const kao_h5_file *f, const char *name, float *out, int ndim,
                    const int64_t *shape) {
    return read_numbers(f, name, out, H5T_NATIVE_FLOAT, KAO_H5_FLOAT, "float", ndim, shape);
}

int kao_h5_read_i64(const kao_h5_file *f, const char *name, int64_t *out, int ndim,
                    const int64_t *shape) {
    return read_numbers(f, name, out, H5T_NATIVE_INT64, KAO_H5_INT, "integer", ndim, shape);
}

int kao_h5_read_f64(const kao_h5_file *f, const char *name, double *out, int ndim,
                    const int64_t *shape) {
    return read_numbers(f, name, out, H5T_NATIVE_DOUBLE, KAO_H5_FLOAT, "float", ndim, shape);
}

/* Creates name (with its intermediate groups) as a dataset of the given file type and shape. */
static int create_dataset(kao_h5_file *f, const char *name, hid_t filetype, int ndim,
                          const int64_t *shape, hid_t *out) {
    KAO_ASSERT(f->writing, "%s: not open for writing", f->path);
    KAO_ASSERT(ndim >= 0 && ndim <= KAO_H5_MAX_DIMS, "%d dimensions", ndim);
    if (kao_h5_exists(f, name)) return kao_fail("%s: dataset '%s' written twice", f->path, name);
    hsize_t dims[KAO_H5_MAX_DIMS];
    for (int i = 0; i < ndim; i++) {
        KAO_ASSERT(shape[i] >= 0, "'%s': dimension %d is %lld", name, i, (long long)shape[i]);
        dims[i] = (hsize_t)shape[i];
    }
    hid_t space = ndim ? H5Screate_simple(ndim, dims, NULL) : H5Screate(H5S_SCALAR);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t d = H5Dcreate2((hid_t)f->id, name, filetype, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    H5Pclose(lcpl);
    H5Sclose(space);
    if (d < 0) return kao_fail("%s: cannot create dataset '%s'", f->path, name);
    *out = d;
    return KAO_OK;
}

static int write_numbers(kao_h5_file *f, const char *name, const void *data, hid_t filetype,
                         hid_t memtype, int ndim, const int64_t *shape) {
    hid_t d = -1;
    if (create_dataset(f, name, filetype, ndim, shape, &d)) return KAO_ERR;
    herr_t rc = H5Dwrite(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    H5Dclose(d);
    if (rc < 0) return kao_fail("%s: cannot write dataset '%s' (disk full?)", f->path, name);
    return KAO_OK;
}

int kao_h5_write_f32(kao_h5_file *f, const char *name, const float *data, int ndim,
                     const int64_t *shape) {
    return write_numbers(f, name, data, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, ndim, shape);
}

int kao_h5_write_i64(kao_h5_file *f, const char *name, const int64_t *data, int ndim,
                     const int64_t *shape) {
    return write_numbers(f, name, data, H5T_STD_I64LE, H5T_NATIVE_INT64, ndim, shape);
}

static hid_t utf8_string_type(void) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
}

int kao_h5_write_strings(kao_h5_file *f, const char *name, const char *const *strings, int count) {
    hid_t type = utf8_string_type(), d = -1;
    int rc = create_dataset(f, name, type, 1, (int64_t[]){count}, &d);
    if (rc == KAO_OK) {
        if (count > 0 && H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, strings) < 0)
            rc = kao_fail("%s: cannot write dataset '%s' (disk full?)", f->path, name);
        H5Dclose(d);
    }
    H5Tclose(type);
    return rc;
}

int kao_h5_read_strings(const kao_h5_file *f, const char *name, char ***strings, int *count) {
    *strings = NULL;
    *count = 0;
    hid_t d = -1;
    if (open_dataset(f, name, &d)) return KAO_ERR;
    kao_h5_info info;
    int rc = dataset_info(f, name, d, &info);
    if (rc == KAO_OK && (info.cls != KAO_H5_STRING || info.ndim != 1))
        rc = kao_fail("%s: dataset '%s' is not a 1-D list of strings", f->path, name);
    /* A few bytes of metadata can declare billions of strings: such a list must fit an int and have
     * been written, before memory is taken for it. */
    if (rc == KAO_OK && (info.shape[0] > INT_MAX || (info.shape[0] > 0 && H5Dget_storage_size(d) == 0)))
        rc = kao_fail("%s: dataset '%s' declares %lld strings but %s (damaged?)", f->path, name,
                      (long long)info.shape[0], info.shape[0] > INT_MAX ? "kao reads at most 2^31 - 1" : "holds none");
    if (rc != KAO_OK) {
        H5Dclose(d);
        return rc;
    }
    int n = (int)info.shape[0];
    char **out = kao_calloc((size_t)n, sizeof *out, "strings");
    hid_t type = H5Dget_type(d); /* read as stored: HDF5 does not convert between charsets */
    if (H5Tis_variable_str(type) > 0) {
        char **raw = kao_calloc((size_t)n, sizeof *raw, "strings");
        if (n > 0 && H5Dread(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) < 0)
            rc = kao_fail("%s: cannot read dataset '%s' (truncated or corrupt?)", f->path, name);
        for (int i = 0; i < n; i++) {
            out[i] = kao_strdup(raw[i] ? raw[i] : "");
            if (raw[i]) H5free_memory(raw[i]);
        }
        free(raw);
    } else {
        size_t width = H5Tget_size(type);
        char *raw = kao_calloc((size_t)n, width, "strings");
        if (n > 0 && H5Dread(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) < 0)
            rc = kao_fail("%s: cannot read dataset '%s' (truncated or corrupt?)", f->path, name);
        for (int i = 0; i < n; i++) {
            out[i] = kao_calloc(width + 1, 1, "string");
            memcpy(out[i], raw + (size_t)i * width, width);
        }
        free(raw);
    }
    H5Tclose(type);
    H5Dclose(d);
    for (int i = 0; i < n && rc == KAO_OK; i++)
        if (!kao_valid_utf8(out[i])) /* it would reach messages and files as it is */
            rc = kao_fail("%s: entry %d of dataset '%s' is not UTF-8 text (damaged?)", f->path, i, name);
    if (rc != KAO_OK) {
        kao_h5_free_names(out, n);
        return rc;
    }
    *strings = out;
    *count = n;
    return KAO_OK;
}

/* ---- attributes -------------------------------------------------------------------------- */

static const char *object_name(const char *object) { return object ? object : "/"; }

/* " on 'blocks.0'" (written into buf) for messages about attributes of objects other than the
 * root, "" for the root: use the returned string, not buf. */
static const char *on_object(char *buf, size_t size, const char *object) {
    if (!object || strcmp(object, "/") == 0) return "";
    snprintf(buf, size, " on '%s'", object);
    return buf;
}

bool kao_h5_has_attr(const kao_h5_file *f, const char *object, const char *name) {
    return H5Aexists_by_name((hid_t)f->id, object_name(object), name, H5P_DEFAULT) > 0;
}

/* A scalar attribute when count is 0, else a 1-D array of count values. */
static int write_attr(kao_h5_file *f, const char *object, const char *name, hid_t filetype,
                      hid_t memtype, const void *value, int count) {
    KAO_ASSERT(f->writing, "%s: not open for writing", f->path);
    const char *obj = object_name(object);
    if (kao_h5_has_attr(f, object, name)) H5Adelete_by_name((hid_t)f->id, obj, name, H5P_DEFAULT);
    hsize_t dims[1] = {(hsize_t)count};
    hid_t space = count ? H5Screate_simple(1, dims, NULL) : H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate_by_name((hid_t)f->id, obj, name, filetype, space, H5P_DEFAULT, H5P_DEFAULT,
                                H5P_DEFAULT);
    bool ok = a >= 0 && H5Awrite(a, memtype, value) >= 0;
    if (a >= 0) H5Aclose(a);
    H5Sclose(space);
    char where[300];
    if (!ok)
        return kao_fail("%s: cannot write attribute '%s'%s", f->path, name,
                        on_object(where, sizeof where, object));
    return KAO_OK;
}

int kao_h5_write_attr_str(kao_h5_file *f, const char *object, const char *name, const char *value) {
    hid_t type = utf8_string_type();
    int rc = write_attr(f, object, name, type, type, &value, 0);
    H5Tclose(type);
    return rc;
}

int kao_h5_write_attr_i64(kao_h5_file *f, const char *object, const char *name, int64_t value) {
    return write_attr(f, object, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value, 0);
}

int kao_h5_write_attr_f64(kao_h5_file *f, const char *object, const char *name, double value) {
    return write_attr(f, object, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value, 0);
}

int kao_h5_write_attr_f64_array(kao_h5_file *f, const char *object, const char *name, const double *values,
                                int count) {
    KAO_ASSERT(count > 0, "attribute '%s': %d values", name, count);
    return write_attr(f, object, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, values, count);
}

/* Opens an attribute of count values (a scalar or a 1-D array when count is 1) and describes its type. */
static int open_attr(const kao_h5_file *f, const char *object, const char *name, int count, hid_t *a_out,
                     hid_t *type_out, kao_h5_info *info) {
    char where_buf[300];
    const char *where = on_object(where_buf, sizeof where_buf, object);
    if (!kao_h5_has_attr(f, object, name))
        return kao_fail("%s: missing attribute '%s'%s", f->path, name, where);
    hid_t a = H5Aopen_by_name((hid_t)f->id, object_name(object), name, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0) return kao_fail("%s: cannot open attribute '%s'%s (corrupt?)", f->path, name, where);
    hid_t space = H5Aget_space(a), type = H5Aget_type(a);
    int rc = space >= 0 && type >= 0 ? describe(f, name, space, type, info)
                                     : kao_fail("%s: cannot read attribute '%s'%s", f->path, name, where);
    if (rc == KAO_OK && (info->numel != count || info->ndim > 1))
        rc = kao_fail("%s: attribute '%s'%s holds %lld values, expected %d", f->path, name, where,
                      (long long)info->numel, count);
    if (space >= 0) H5Sclose(space);
    if (rc != KAO_OK) {
        if (type >= 0) H5Tclose(type);
        H5Aclose(a);
        return rc;
    }
    *a_out = a;
    *type_out = type;
    return KAO_OK;
}

int kao_h5_read_attr_str(const kao_h5_file *f, const char *object, const char *name, char *out,
                         size_t out_size) {
    hid_t a, type;
    kao_h5_info info;
    if (open_attr(f, object, name, 1, &a, &type, &info)) return KAO_ERR;
    char where_buf[300];
    const char *where = on_object(where_buf, sizeof where_buf, object);
    int rc = KAO_OK;
    char *value = NULL; /* read as stored: HDF5 does not convert between charsets */
    if (info.cls != KAO_H5_STRING) {
        rc = kao_fail("%s: attribute '%s'%s is %s, expected a string", f->path, name, where,
                      kao_h5_type_name(&info));
    } else if (H5Tis_variable_str(type) > 0) {
        char *raw = NULL;
        if (H5Aread(a, type, &raw) < 0) rc = kao_fail("%s: cannot read attribute '%s'%s", f->path, name, where);
        else value = kao_strdup(raw ? raw : "");
        if (raw) H5free_memory(raw);
    } else {
        size_t width = H5Tget_size(type);
        value = kao_calloc(width + 1, 1, "attribute");
        if (H5Aread(a, type, value) < 0) rc = kao_fail("%s: cannot read attribute '%s'%s", f->path, name, where);
    }
    if (rc == KAO_OK && strlen(value) >= out_size)
        rc = kao_fail("%s: attribute '%s'%s is longer than %zu bytes", f->path, name, where, out_size - 1);
    if (rc == KAO_OK && !kao_valid_utf8(value)) /* it would reach messages as it is */
        rc = kao_fail("%s: attribute '%s'%s is not UTF-8 text (damaged?)", f->path, name, where);
    if (rc == KAO_OK) strcpy(out, value);
    free(value);
    H5Tclose(type);
    H5Aclose(a);
    return rc;
}

static int read_attr_number(const kao_h5_file *f, const char *object, const char *name, void *out, int count,
                            hid_t memtype, bool accept_float) {
    hid_t a, type;
    kao_h5_info info;
    if (open_attr(f, object, name, count, &a, &type, &info)) return KAO_ERR;
    char where_buf[300];
    const char *where = on_object(where_buf, sizeof where_buf, object);
    int rc = KAO_OK;
    if (!(info.cls == KAO_H5_INT || (accept_float && info.cls == KAO_H5_FLOAT)))
        rc = kao_fail("%s: attribute '%s'%s is %s, expected %s", f->path, name, where,
                      kao_h5_type_name(&info), accept_float ? "a number" : "an integer");
    else if (H5Aread(a, memtype, out) < 0)
        rc = kao_fail("%s: cannot read attribute '%s'%s", f->path, name, where);
    H5Tclose(type);
    H5Aclose(a);
    return rc;
}

int kao_h5_read_attr_i64(const kao_h5_file *f, const char *object, const char *name, int64_t *out) {
    return read_attr_number(f, object, name, out, 1, H5T_NATIVE_INT64, false);
}

int kao_h5_read_attr_f64(const kao_h5_file *f, const char *object, const char *name, double *out) {
    return read_attr_number(f, object, name, out, 1, H5T_NATIVE_DOUBLE, true);
}

int kao_h5_read_attr_f64_array(const kao_h5_file *f, const char *object, const char *name, double *out, int count) {
    return read_attr_number(f, object, name, out, count, H5T_NATIVE_DOUBLE, true);
}

/* The n fixed- or variable-length strings of an open attribute, copied into out. */
static int read_attr_string_values(hid_t a, hid_t type, int n, char **out) {
    if (H5Tis_variable_str(type) > 0) {
        char **raw = kao_calloc((size_t)n, sizeof *raw, "attribute strings");
        int rc = H5Aread(a, type, raw) < 0 ? KAO_ERR : KAO_OK;
        for (int i = 0; i < n; i++) {
            if (rc == KAO_OK) out[i] = kao_strdup(raw[i] ? raw[i] : "");
            if (raw[i]) H5free_memory(raw[i]);
        }
        free(raw);
        return rc;
    }
    size_t width = H5Tget_size(type);
    if (width == 0 || width > ((size_t)1 << 20)) return KAO_ERR;
    char *raw = kao_calloc((size_t)n, width, "attribute strings");
    int rc = H5Aread(a, type, raw) < 0 ? KAO_ERR : KAO_OK;
    for (int i = 0; i < n && rc == KAO_OK; i++) {
        out[i] = kao_calloc(width + 1, 1, "attribute string"); /* NUL-padded, or filled to the width */
        memcpy(out[i], raw + (size_t)i * width, width);
    }
    free(raw);
    return rc;
}

int kao_h5_read_attr_strings(const kao_h5_file *f, const char *object, const char *name, char ***strings,
                             int *count) {
    *strings = NULL;
    *count = 0;
    char where_buf[300];
    const char *where = on_object(where_buf, sizeof where_buf, object);
    if (!kao_h5_has_attr(f, object, name)) return kao_fail("%s: missing attribute '%s'%s", f->path, name, where);
    hid_t a = H5Aopen_by_name((hid_t)f->id, object_name(object), name, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0) return kao_fail("%s: cannot open attribute '%s'%s (corrupt?)", f->path, name, where);
    hid_t space = H5Aget_space(a), type = H5Aget_type(a);
    kao_h5_info info;
    int rc = space >= 0 && type >= 0 ? describe(f, name, space, type, &info)
                                     : kao_fail("%s: cannot read attribute '%s'%s", f->path, name, where);
    if (space >= 0) H5Sclose(space);
    /* h5py stores an empty list as an empty float64 array. */
    bool empty = rc == KAO_OK && info.numel == 0 && info.ndim == 1;
    if (rc == KAO_OK && !empty && (info.cls != KAO_H5_STRING || info.ndim > 1 || info.numel > (1 << 20)))
        rc = kao_fail("%s: attribute '%s'%s is not a list of strings", f->path, name, where);
    char **out = NULL;
    int n = rc == KAO_OK && !empty ? (int)info.numel : 0;
    if (n > 0) {
        out = kao_calloc((size_t)n, sizeof *out, "attribute strings");
        if (read_attr_string_values(a, type, n, out))
            rc = kao_fail("%s: cannot read attribute '%s'%s (corrupt?)", f->path, name, where);
    }
    for (int i = 0; i < n && rc == KAO_OK; i++)
        if (!kao_valid_utf8(out[i])) rc = kao_fail("%s: attribute '%s'%s is not UTF-8 text", f->path, name, where);
    if (type >= 0) H5Tclose(type);
    H5Aclose(a);
    if (rc != KAO_OK) {
        kao_h5_free_names(out, n);
        return rc;
    }
    *strings = out;
    *count = n;
    return KAO_OK;
}
