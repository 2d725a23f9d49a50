/* h5ref.h — reading the tests' PyTorch reference files (tests/data/<name>.h5) with the plain HDF5 API,
 * converting to the type the test wants (doubles keep float64 references exact). A missing or
 * misshapen reference is a failed test: the reader prints what is wrong and exits 1. */
#ifndef KAO_TEST_H5REF_H
#define KAO_TEST_H5REF_H

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>

static inline void h5ref_die(const char *what, const char *name) {
    fprintf(stderr, "FAIL reference data: %s '%s'\n", what, name);
    exit(1);
}

/* Opens tests/data/<file> under $KAO_SOURCE_DIR (default: the current folder). */
static inline hid_t h5ref_open(const char *file) {
    const char *root = getenv("KAO_SOURCE_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/data/%s", root ? root : ".", file);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) h5ref_die("cannot open", path);
    return f;
}

/* Reads dataset name (a path from loc) as mem_type into a new buffer; the element count must be
 * numel (0: any, returned through *count when count is not NULL). */
static inline void *h5ref_read(hid_t loc, const char *name, hid_t mem_type, size_t elem,
                               size_t numel, size_t *count) {
    hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
    if (d < 0) h5ref_die("missing dataset", name);
    hid_t space = H5Dget_space(d);
    hssize_t n = H5Sget_simple_extent_npoints(space);
    H5Sclose(space);
    if (n < 0 || (numel && (size_t)n != numel)) h5ref_die("unexpected size of", name);
    void *out = malloc((size_t)(n ? n : 1) * elem);
    if (!out || H5Dread(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0)
        h5ref_die("cannot read", name);
    H5Dclose(d);
    if (count) *count = (size_t)n;
    return out;
}

static inline float *h5ref_floats(hid_t loc, const char *name, size_t numel) {
    return h5ref_read(loc, name, H5T_NATIVE_FLOAT, sizeof(float), numel, NULL);
}
static inline double *h5ref_doubles(hid_t loc, const char *name, size_t numel) {
    return h5ref_read(loc, name, H5T_NATIVE_DOUBLE, sizeof(double), numel, NULL);
}
static inline int *h5ref_ints(hid_t loc, const char *name, size_t numel) {
    return h5ref_read(loc, name, H5T_NATIVE_INT, sizeof(int), numel, NULL);
}
static inline double h5ref_scalar(hid_t loc, const char *name) {
    double *p = h5ref_doubles(loc, name, 1), v = *p;
    free(p);
    return v;
}

/* A numeric attribute of the object at path (relative to loc), as double. */
static inline double h5ref_attr(hid_t loc, const char *path, const char *name) {
    double v;
    hid_t a = H5Aopen_by_name(loc, path, name, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0 || H5Aread(a, H5T_NATIVE_DOUBLE, &v) < 0) h5ref_die("missing attribute", name);
    H5Aclose(a);
    return v;
}

/* A string attribute (h5py writes variable-length UTF-8) into out. */
static inline void h5ref_attr_str(hid_t loc, const char *path, const char *name, char *out,
                                  size_t size) {
    hid_t a = H5Aopen_by_name(loc, path, name, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0) h5ref_die("missing attribute", name);
    hid_t t = H5Aget_type(a);
    if (H5Tis_variable_str(t) > 0) {
        char *s = NULL;
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(t));
        if (H5Aread(a, mt, &s) < 0 || !s) h5ref_die("cannot read attribute", name);
        snprintf(out, size, "%s", s);
        H5free_memory(s);
        H5Tclose(mt);
    } else {
        size_t n = H5Tget_size(t);
        if (n + 1 > size || H5Aread(a, t, out) < 0) h5ref_die("cannot read attribute", name);
        out[n] = 0;
    }
    H5Tclose(t);
    H5Aclose(a);
}

#endif
