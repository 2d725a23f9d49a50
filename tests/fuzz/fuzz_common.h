/* fuzz_common.h — what the libFuzzer harnesses (tests/fuzz/fuzz_*.c) share.
 *
 * Each harness takes one input per call, resets kao's error (kao_clear_error), runs the reader on
 * it, frees everything and removes the files it wrote, so that libFuzzer's leak check holds per
 * input. Files go into one folder per process, made on first use under $TMPDIR (scripts/fuzz.sh
 * points it into build-fuzz) and removed at exit. */
#ifndef KAO_FUZZ_COMMON_H
#define KAO_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* The process's temp folder. */
const char *fuzz_dir(void);
/* fuzz_dir()/name into out (a buffer of FUZZ_PATH_MAX bytes). */
#define FUZZ_PATH_MAX 4096
void fuzz_path(char *out, const char *name);
/* Writes data to fuzz_dir()/name; the path goes into out (FUZZ_PATH_MAX bytes). Aborts on failure
 * (a full disk is no finding). */
void fuzz_write(char *out, const char *name, const void *data, size_t size);
/* fuzz_write to a new file while the previous input's one still exists, then removes that: kao
 * remembers the last file it checked or copied by its inode, size and times (h5seal.c,
 * h5sandbox.c), and a file written where one was just removed may have all of them. */
void fuzz_write_new(char *out, const char *name, const void *data, size_t size);
/* An empty file at fuzz_dir()/rel, making its folders. */
void fuzz_touch(const char *rel);
/* The readers that print (kao_onnx_check) print into /dev/null. */
void fuzz_silence_stdout(void);

#endif
