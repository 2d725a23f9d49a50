/* fuzz_common.c — the harnesses' temp folder (fuzz_common.h). */
#define _XOPEN_SOURCE 700
#include "fuzz_common.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[FUZZ_PATH_MAX];

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    return remove(path);
}

static void remove_dir(void) { nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS); }

const char *fuzz_dir(void) {
    if (dir[0]) return dir;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/kao-fuzz-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror(dir);
        abort();
    }
    atexit(remove_dir);
    return dir;
}

void fuzz_path(char *out, const char *name) { snprintf(out, FUZZ_PATH_MAX, "%s/%s", fuzz_dir(), name); }

void fuzz_write(char *out, const char *name, const void *data, size_t size) {
    fuzz_path(out, name);
    FILE *f = fopen(out, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) {
        perror(out);
        abort();
    }
}

void fuzz_write_new(char *out, const char *name, const void *data, size_t size) {
    static int turn;
    char file[256], previous[FUZZ_PATH_MAX];
    snprintf(file, sizeof file, "%d.%s", turn, name);
    fuzz_write(out, file, data, size);
    snprintf(file, sizeof file, "%d.%s", !turn, name);
    fuzz_path(previous, file);
    remove(previous);
    turn = !turn;
}

void fuzz_touch(const char *rel) {
    char path[FUZZ_PATH_MAX];
    fuzz_path(path, rel);
    for (char *slash = strchr(path + strlen(fuzz_dir()) + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        mkdir(path, 0700);
        *slash = '/';
    }
    fuzz_write(path, rel, "", 0);
}

void fuzz_silence_stdout(void) {
    if (!freopen("/dev/null", "w", stdout)) abort();
}
