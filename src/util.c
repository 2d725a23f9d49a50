#include "kao/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static _Thread_local char error_message[2048];

void kao_utf8_trim(char *s) {
    size_t n = strlen(s), start = n;
    while (start > 0 && n - start < 4 && ((unsigned char)s[start - 1] & 0xC0) == 0x80) start--;
    if (start == 0) return;
    unsigned lead = (unsigned char)s[start - 1];
    size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    if (n - (start - 1) < need) s[start - 1] = '\0'; /* a character cut short by a byte limit */
}

int kao_fail(const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    vsnprintf(error_message, sizeof error_message, fmt, args);
    va_end(args);
    kao_utf8_trim(error_message);
    return KAO_ERR;
}

int kao_fail_context(const char *fmt, ...) {
    char joined[sizeof error_message];
    va_list args;
    va_start(args, fmt);
    int n = vsnprintf(joined, sizeof joined, fmt, args);
    va_end(args);
    if (n >= 0 && (size_t)n < sizeof joined) {
        size_t room = sizeof joined - (size_t)n;
        memcpy(joined + n, error_message, strnlen(error_message, room - 1));
        joined[n + (int)strnlen(error_message, room - 1)] = '\0';
    }
    memcpy(error_message, joined, sizeof error_message);
    kao_utf8_trim(error_message);
    return KAO_ERR;
}

const char *kao_last_error(void) { return error_message[0] ? error_message : "unknown error"; }

void kao_clear_error(void) { error_message[0] = '\0'; }

void kao_abort(const char *file, int line, const char *fmt, ...) {
    fprintf(stderr, "kao: internal error at %s:%d: ", file, line);
    va_list args;
    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);
    fputc('\n', stderr);
    abort();
}

void *kao_malloc(size_t bytes, const char *what) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) kao_abort(__FILE__, __LINE__, "out of memory allocating %zu bytes for %s", bytes, what);
    return p;
}

void *kao_calloc(size_t count, size_t size, const char *what) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) kao_abort(__FILE__, __LINE__, "out of memory allocating %zu x %zu bytes for %s", count, size, what);
    return p;
}

void *kao_realloc(void *ptr, size_t bytes, const char *what) {
    void *p = realloc(ptr, bytes ? bytes : 1);
    if (!p) kao_abort(__FILE__, __LINE__, "out of memory growing %s to %zu bytes", what, bytes);
    return p;
}

void *kao_aligned_alloc(size_t bytes, const char *what) {
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0)
        kao_abort(__FILE__, __LINE__, "out of memory allocating %zu aligned bytes for %s", bytes, what);
    return p;
}

char *kao_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *copy = kao_malloc(n, "string");
    memcpy(copy, s, n);
    return copy;
}

void kao_temp_path(char *out, size_t out_size, const char *path) {
    snprintf(out, out_size, "%s.tmp.%ld", path, (long)getpid());
}

static int fsync_path(const char *path, int flags) {
    int fd = open(path, flags);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int kao_commit_file(const char *temp_path, const char *path) {
    if (fsync_path(temp_path, O_RDONLY) != 0) {
        int err = errno;
        kao_discard_file(temp_path);
        return kao_fail("%s: cannot flush to disk: %s", path, strerror(err));
    }
    if (rename(temp_path, path) != 0) {
        int err = errno;
        kao_discard_file(temp_path);
        return kao_fail("%s: cannot replace file: %s", path, strerror(err));
    }
    /* The rename itself is durable only once the folder's entry is on disk. */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir) dir[1] = '\0';
    else if (slash) *slash = '\0';
    else snprintf(dir, sizeof dir, ".");
    fsync_path(dir, O_RDONLY | O_DIRECTORY);
    return KAO_OK;
}

void kao_discard_file(const char *temp_path) { unlink(temp_path); }

int kao_check_parent_dir(const char *path) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) return KAO_OK;
    if (slash == dir) return KAO_OK;
    *slash = '\0';
    if (!kao_is_dir(dir)) return kao_fail("%s: folder '%s' does not exist", path, dir);
    return KAO_OK;
}

FILE *kao_atomic_fopen(char *temp, size_t temp_size, const char *path) {
    if (kao_check_parent_dir(path)) return NULL;
    kao_temp_path(temp, temp_size, path);
    FILE *f = fopen(temp, "wb");
    if (!f) kao_fail("%s: cannot create file: %s", path, strerror(errno));
    return f;
}

int kao_atomic_fclose(FILE *f, const char *temp, const char *path) {
    bool ok = !ferror(f);
    if (fclose(f) != 0) ok = false;
    if (!ok) {
        kao_discard_file(temp);
        return kao_fail("%s: write failed (disk full?)", path);
    }
    return kao_commit_file(temp, path);
}

bool kao_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

bool kao_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

bool kao_valid_utf8(const char *str) {
    const unsigned char *s = (const unsigned char *)str;
    while (*s) {
        unsigned c = *s;
        int extra;
        unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
        if (c < 0x80) extra = 0;
        else if (c >= 0xC2 && c <= 0xDF) extra = 1;
        else if (c >= 0xE0 && c <= 0xEF) {
            extra = 2;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            extra = 3;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else return false;
        s++;
        for (int k = 0; k < extra; k++, s++) {
            unsigned b = *s;
            if (k == 0 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return false;
        }
    }
    return true;
}

bool kao_ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

double kao_now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double kao_peak_rss_mib(void) {
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return (double)usage.ru_maxrss / 1024.0; /* Linux reports KiB */
}
