/* files.h — reading only what the user meant to be read, writing nothing that is read.
 *
 * Inputs: wherever the user names a file (images, pairs files, split manifests, configs, weights,
 * embeddings, ONNX models) kao reads only a regular file. A FIFO would block the open for ever and
 * a device such as /dev/zero never ends, so kao_open_regular opens without blocking (O_NONBLOCK),
 * checks the type with fstat and only then reads; kao_check_regular does the same by name for
 * readers that open the file themselves (HDF5). Line-based files (pairs files, split manifests)
 * are read one bounded line at a time (kao_read_line): a line longer than KAO_MAX_LINE bytes is
 * an error naming the file and the line, not an ever-growing buffer.
 *
 * Outputs: kao_check_not_input refuses an output that is the same file as an input (the same
 * device and inode, so also through symbolic and hard links): writing it would replace what kao
 * reads. Files replaced as a whole go through a temporary file (util.h: kao_atomic_fopen); the
 * few written in place (a run's train.log and metrics.csv, appended to; TensorBoard event files,
 * new) are opened by kao_fopen_write, never through a symbolic link.
 *
 * Roots: a path that a pairs file or a split manifest names is relative to its root folder and
 * must stay inside it (kao_rel_path_contained: not absolute, no ".." component). A folder searched
 * for images follows a symbolic link that leads out of it only when the user asks (data.follow_symlinks,
 * --follow-symlinks); kao_path_inside tells such links.
 */
#ifndef KAO_FILES_H
#define KAO_FILES_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

#define KAO_MAX_LINE 8192

/* A file as fstat/stat saw it: device, inode, size, modification and change times. A file
 * replaced (rename), rewritten or touched since differs in one of these, so a reader may reuse
 * what it made of an identical one (the seal check, the HDF5 reader's copy). */
typedef struct {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
} kao_file_identity;
kao_file_identity kao_file_identity_of(const struct stat *st);
bool kao_same_file_identity(const kao_file_identity *a, const kao_file_identity *b);

/* Opens path read-only if it is a regular file: the descriptor, or -1 after kao_fail with
 * "<path>: cannot open <what>: <reason>" or "<path>: not a regular file (a FIFO)". */
int kao_open_regular(const char *path, const char *what);

/* zlib's CRC-32 of fd's bytes from offset to the end, and their count; -1 (errno set) on a read
 * error. For the seals of HDF5 files (h5seal.c) and the key of kao curate's cache. */
int kao_file_crc32(int fd, off_t offset, uint64_t *bytes, uint32_t *crc);
/* The same as a stdio stream ("rb"); NULL after kao_fail. */
FILE *kao_fopen_regular(const char *path, const char *what);
/* Fails with kao_open_regular's messages unless path names a regular file (stat, no open). */
int kao_check_regular(const char *path, const char *what);

/* Reads the next line of f into buf (size bytes), without its '\n': its
 * length (a NUL byte inside makes strlen(buf) shorter), -1 at the end of the file, -2 when the line
 * does not fit in buf (its rest is left unread). */
long kao_read_line(FILE *f, char *buf, size_t size);

/* Opens path for writing with O_NOFOLLOW: appending (created when missing), or a new file
 * (O_EXCL: one already there is refused). NULL after kao_fail("<path>: cannot open: ..."). */
FILE *kao_fopen_write(const char *path, bool append);

/* Fails with "<output>: is the same file as the input <input>; write the output elsewhere" when
 * output exists and is one of the inputs (NULL entries are skipped). */
int kao_check_not_input(const char *output, const char *const *inputs, int num_inputs);

/* Whether rel stays inside the folder it is relative to: not absolute, no ".." component. */
bool kao_rel_path_contained(const char *rel);
/* Whether path, its symbolic links resolved, is root_real (a realpath) or lies inside it. A path
 * that does not resolve (missing, a dangling link) is not inside. */
bool kao_path_inside(const char *root_real, const char *path);

#endif
