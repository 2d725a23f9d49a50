/* h5io.h — checked helpers over the HDF5 C library.
 *
 * kao's files (weights, checkpoints, reference data, embeddings) are HDF5: named datasets plus
 * attributes, readable by h5py without kao. These helpers hide the hid_t bookkeeping and turn
 * every HDF5 failure into a kao_fail() message that names the file and the object; HDF5's own
 * error-stack printing is switched off. Paths go to the OS unchanged, so UTF-8 names work.
 *
 * Names. A dataset name is a path from the root: "conv_stem.weight" or "optimizer/m"; writing
 * creates the intermediate groups. An attribute lives on the object named by `object`: NULL (or
 * "/") is the root group.
 *
 * Types. Floats are stored as little-endian float32, integers as int64, strings as variable-length
 * UTF-8. Reading converts: kao_h5_read_f32 and _f64 accept any float width, kao_h5_read_i64 any integer,
 * attribute readers accept fixed- or variable-length strings and 1-element arrays (as numpy
 * writes them). Every reader checks the stored shape against the one the caller expects.
 *
 * Writing is atomic: kao_h5_create() opens a temporary file beside the target (util.h:
 * "<path>.tmp.XXXXXX", created afresh, never through a file or link already there), kao_h5_commit()
 * closes it and renames it over the target (util.h: kao_commit_file); kao_h5_close() on a writer
 * that was not committed deletes the temporary file. A failure at any point leaves the previous
 * file, if any, untouched and no partial file behind.
 *
 * Sealing: every file kao_h5_create writes carries, in a 512-byte HDF5 user block (which HDF5 and
 * h5py skip), the length and CRC-32 of the rest of the file (src/h5seal.c). kao_h5_open checks
 * them before HDF5 reads anything, so a truncated or damaged file is refused with a message
 * instead of loading wrong numbers. Then every file, sealed or not (a seal shows damage, not
 * intent), is read by libhdf5 in a child process that leaves a copy in shared memory
 * (src/h5sandbox.c), so a crash or a hang inside libhdf5 on a damaged or hostile file becomes an
 * error naming it. A numeric dataset's declared size must match what the file stores for it.
 *
 *     kao_h5_file f;
 *     if (kao_h5_create(&f, path)) return KAO_ERR;
 *     if (kao_h5_write_f32(&f, "x", x, 2, (int64_t[]){n, c}) || kao_h5_commit(&f)) {
 *         kao_h5_close(&f);   // discards the temporary file
 *         return KAO_ERR;
 *     }
 *     kao_h5_close(&f);        // no-op after a commit
 */
#ifndef KAO_H5IO_H
#define KAO_H5IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KAO_H5_MAX_DIMS 8
#define KAO_H5_PATH_MAX 4096

typedef struct {
    int64_t id;                         /* HDF5 file id (hid_t); -1 when closed */
    bool writing;                       /* created by kao_h5_create and not yet committed */
    void *image;                        /* readers: the copy of the file the id reads (h5sandbox.c) */
    char path[KAO_H5_PATH_MAX];         /* the file as the caller named it (errors name it) */
    char temp_path[KAO_H5_PATH_MAX + 32]; /* writers: where the data goes until the commit */
} kao_h5_file;

typedef enum { KAO_H5_FLOAT, KAO_H5_INT, KAO_H5_STRING, KAO_H5_OTHER } kao_h5_class;

typedef struct {
    int ndim;                           /* 0 for a scalar */
    int64_t shape[KAO_H5_MAX_DIMS];
    int64_t numel;                      /* product of shape (1 for a scalar) */
    kao_h5_class cls;
    int bytes;                          /* bytes per stored element: 4 for float32, 8 for int64 */
    bool is_signed;                     /* integers */
} kao_h5_info;

/* ---- files ------------------------------------------------------------------------------- */

/* Opens an existing file for reading. Errors: "<path>: No such file or directory",
 * "<path>: is a folder, not a file", the seal's ("<path>: truncated: ...", "<path>: damaged:
 * ..."), "<path>: not an HDF5 file (or truncated/corrupt)". */
int kao_h5_open(kao_h5_file *f, const char *path);
/* Starts writing path atomically (see above). Fails when path's folder does not exist or the
 * temporary file cannot be created. */
int kao_h5_create(kao_h5_file *f, const char *path);
/* Starts an HDF5 file that lives in memory only (HDF5's core driver, no backing store), for data
 * converted from another format: it is written with the usual writers and read with the usual
 * readers, and kao_h5_close frees it (never commit it). Errors name path, the file it came from. */
int kao_h5_create_memory(kao_h5_file *f, const char *path);
/* Closes the writer and replaces path with it. On failure the temporary file is removed. */
int kao_h5_commit(kao_h5_file *f);
/* Closes f; an uncommitted writer's temporary file is deleted. Safe on a closed file. */
void kao_h5_close(kao_h5_file *f);

/* ---- seals (src/h5seal.c) ------------------------------------------------------------------ */

#define KAO_H5_SEAL_BYTES 512 /* the user block that holds the seal */
typedef enum { KAO_H5_UNSEALED, KAO_H5_SEALED } kao_h5_seal_state;

/* Writes the seal of file, a closed HDF5 file with a KAO_H5_SEAL_BYTES user block; errors name
 * path (the file it will become). */
int kao_h5_seal(const char *file, const char *path);
/* Fails naming path when it carries a seal that its contents do not match (truncated, extended,
 * damaged); *state says whether there was a seal. */
int kao_h5_check_seal(const char *path, kao_h5_seal_state *state);
/* Renews the seal of a sealed file for its present contents (after a deliberate edit elsewhere). */
int kao_h5_reseal(const char *path);

/* ---- datasets ---------------------------------------------------------------------------- */

bool kao_h5_exists(const kao_h5_file *f, const char *name);
/* Shape and element type of a dataset; fails if it is missing or not a dataset. */
int kao_h5_dataset_info(const kao_h5_file *f, const char *name, kao_h5_info *info);
/* The same, and the file stores the data the header declares (a damaged or hostile header can
 * declare terabytes): for a caller that allocates by the declared shape. */
int kao_h5_dataset_info_backed(const kao_h5_file *f, const char *name, kao_h5_info *info);
/* The names of the datasets directly in group (NULL: the root), in creation order when the file
 * tracks it (files written by kao_h5_create and h5py's track_order=True do), otherwise in name
 * order. Sub-groups are not listed. Free with kao_h5_free_names. */
int kao_h5_list(const kao_h5_file *f, const char *group, char ***names, int *count);
void kao_h5_free_names(char **names, int count);
/* "float32", "int64", "uint8", "string", ... for messages. */
const char *kao_h5_type_name(const kao_h5_info *info);
/* "[192, 48, 1, 1]"; "[]" for a scalar. */
void kao_h5_shape_string(char *out, size_t out_size, int ndim, const int64_t *shape);

/* Read a whole dataset whose shape must be exactly (ndim, shape); ndim 0 is a scalar. */
int kao_h5_read_f32(const kao_h5_file *f, const char *name, float *out, int ndim,
                    const int64_t *shape);
int kao_h5_read_i64(const kao_h5_file *f, const char *name, int64_t *out, int ndim,
                    const int64_t *shape);
/* As double: float64 data (e.g. PyTorch reference values) without a float32 rounding. */
int kao_h5_read_f64(const kao_h5_file *f, const char *name, double *out, int ndim,
                    const int64_t *shape);
/* Create a dataset (it must not exist yet) and write it whole. */
int kao_h5_write_f32(kao_h5_file *f, const char *name, const float *data, int ndim,
                     const int64_t *shape);
int kao_h5_write_i64(kao_h5_file *f, const char *name, const int64_t *data, int ndim,
                     const int64_t *shape);
/* A 1-D dataset of UTF-8 strings (e.g. the image paths beside an embeddings matrix). */
int kao_h5_write_strings(kao_h5_file *f, const char *name, const char *const *strings, int count);
/* Reads a 1-D string dataset; free with kao_h5_free_names. */
int kao_h5_read_strings(const kao_h5_file *f, const char *name, char ***strings, int *count);

/* ---- attributes (object NULL = root) ------------------------------------------------------ */

bool kao_h5_has_attr(const kao_h5_file *f, const char *object, const char *name);
/* Writing replaces an attribute of the same name. */
int kao_h5_write_attr_str(kao_h5_file *f, const char *object, const char *name, const char *value);
int kao_h5_write_attr_i64(kao_h5_file *f, const char *object, const char *name, int64_t value);
int kao_h5_write_attr_f64(kao_h5_file *f, const char *object, const char *name, double value);
/* A 1-D float64 attribute of count (>= 1) values, e.g. a per-channel mean. */
int kao_h5_write_attr_f64_array(kao_h5_file *f, const char *object, const char *name, const double *values,
                                int count);
/* Fail with "<path>: missing attribute '<name>'" when absent, or a message when the type does
 * not fit (a string too long for out_size, a string where a number is wanted). The f64 reader
 * also accepts an integer attribute. */
int kao_h5_read_attr_str(const kao_h5_file *f, const char *object, const char *name, char *out,
                         size_t out_size);
int kao_h5_read_attr_i64(const kao_h5_file *f, const char *object, const char *name, int64_t *out);
int kao_h5_read_attr_f64(const kao_h5_file *f, const char *object, const char *name, double *out);
/* Exactly count numbers (any float or integer type), e.g. written by kao_h5_write_attr_f64_array. */
int kao_h5_read_attr_f64_array(const kao_h5_file *f, const char *object, const char *name, double *out,
                               int count);
/* A 1-D attribute of strings (fixed or variable length; a scalar string reads as one) as Keras and
 * h5py write lists of names; an empty numeric array (h5py's empty list) reads as none. Free with
 * kao_h5_free_names. */
int kao_h5_read_attr_strings(const kao_h5_file *f, const char *object, const char *name, char ***strings,
                             int *count);

#endif
