/* util.h — errors, checked allocation, atomic file replacement, timing.
 *
 * Two kinds of failure, two mechanisms:
 *  - Bad input from outside (a file, a config, a command line): the function that meets it calls
 *    kao_fail("...") and returns KAO_ERR; the message names the file or key and the problem.
 *    Callers pass KAO_ERR up; the program prints kao_last_error() once and exits non-zero.
 *  - A broken invariant inside kao (a shape that the code itself computed is wrong): KAO_ASSERT
 *    aborts with file and line. It is never used to validate input and is never compiled out.
 */
#ifndef KAO_UTIL_H
#define KAO_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdbool.h>

#define KAO_OK 0
#define KAO_ERR (-1)

#if defined(__GNUC__)
#define KAO_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define KAO_PRINTF(a, b)
#endif

/* Records the message of the current thread's error and returns KAO_ERR. */
int kao_fail(const char *fmt, ...) KAO_PRINTF(1, 2);
/* Prefixes the recorded message with more context ("loading W.h5: " + message); returns KAO_ERR. */
int kao_fail_context(const char *fmt, ...) KAO_PRINTF(1, 2);
const char *kao_last_error(void);
void kao_clear_error(void);

void kao_abort(const char *file, int line, const char *fmt, ...) KAO_PRINTF(3, 4);
#define KAO_ASSERT(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond)) kao_abort(__FILE__, __LINE__, "assertion `" #cond "` failed: " __VA_ARGS__);  \
    } while (0)

/* Allocation that aborts with the size and purpose on failure (out of memory is not recoverable). */
void *kao_malloc(size_t bytes, const char *what);
void *kao_calloc(size_t count, size_t size, const char *what);
void *kao_realloc(void *ptr, size_t bytes, const char *what);
/* Buffers whose size the user chooses (a batch, an input size) are checked before they are taken:
 * fails with "<what>: needs X GiB of memory, more than the Y GiB this machine has; <hint>" when
 * bytes exceed the machine's memory and swap (or the process's address-space limit). */
int kao_check_memory(double bytes, const char *what, const char *hint);
/* 64-byte aligned, for SIMD and cache lines; free with free(). */
void *kao_aligned_alloc(size_t bytes, const char *what);
char *kao_strdup(const char *s);

/* Atomic replacement of a file: write to a temporary file that kao_temp_create() makes beside it,
 * then kao_commit_file() fsyncs it, renames it over path and fsyncs the folder. A crash at any
 * moment leaves either the old or the new file at path, never a half-written one.
 * kao_discard_file() removes an abandoned temp file.
 * The temporary file is "<path>.tmp.XXXXXX" (KAO_TEMP_TAG and six random letters or digits),
 * created with O_CREAT | O_EXCL | O_NOFOLLOW: a file or symbolic link already at that name (one
 * planted to make kao write through it) is never opened, another name is drawn. Only such names
 * are kao's temporary files (kao_is_temp_name: what kao train --resume cleans up). */
#define KAO_TEMP_TAG ".tmp."
/* Creates the temporary file of path (its name in temp); the open descriptor, or -1 after kao_fail. */
int kao_temp_create(char *temp, size_t temp_size, const char *path);
/* Whether name is a temporary file of final_name: final_name + ".tmp." + six letters or digits. */
bool kao_is_temp_name(const char *name, const char *final_name);
int kao_commit_file(const char *temp_path, const char *path);
void kao_discard_file(const char *temp_path);
/* fsyncs the folder that holds path, so that a new or renamed entry of it survives a crash: 0, or -1
 * with errno (no kao_fail). */
int kao_fsync_folder_of(const char *path);
/* Fails (with a message naming the folder) when the folder that would hold path does not exist. */
int kao_check_parent_dir(const char *path);
/* The same through stdio: kao_atomic_fopen checks path's folder and opens its temp file (name in
 * temp; NULL after kao_fail when it cannot); kao_atomic_fclose closes the stream and commits it,
 * or, when a write failed (ferror) or the close fails, removes it and fails with
 * "<path>: write failed (disk full?)". */
FILE *kao_atomic_fopen(char *temp, size_t temp_size, const char *path);
int kao_atomic_fclose(FILE *f, const char *temp, const char *path);

bool kao_file_exists(const char *path);
bool kao_is_dir(const char *path);
bool kao_ends_with(const char *s, const char *suffix);
/* "0.485,0.456,0.406": n floats, comma-separated, each in the fewest digits that read back exactly. */
void kao_format_floats(char *out, size_t size, const float *v, int n);
/* Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF. */
bool kao_valid_utf8(const char *str);
/* Cuts off a UTF-8 character left incomplete at the end of s (by a byte limit such as snprintf's).
 * Messages are trimmed so (kao_fail); a string cut to fit elsewhere should be too. */
void kao_utf8_trim(char *s);

double kao_now_seconds(void);
/* Peak resident set size of this process in MiB (from getrusage). */
double kao_peak_rss_mib(void);

#endif
