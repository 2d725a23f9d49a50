#include "kao/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
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

int kao_check_memory(double bytes, const char *what, const char *hint) {
    struct sysinfo si;
    if (sysinfo(&si) != 0) return KAO_OK;
    double total = ((double)si.totalram + (double)si.totalswap) * si.mem_unit;
    struct rlimit limit;
    if (getrlimit(RLIMIT_AS, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY && (double)limit.rlim_cur < total)
        total = (double)limit.rlim_cur;
    if (bytes <= total) return KAO_OK;
    double gib = 1024.0 * 1024.0 * 1024.0;
    return kao_fail("%s: needs %.1f GiB of memory, more than the %.1f GiB this machine has; %s", what, bytes / gib,
                    total / gib, hint);
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

static const char temp_letters[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
#define TEMP_RANDOM 6

/* Six random letters or digits; where getrandom fails, the clock, the process and a counter mixed
 * (O_EXCL keeps even a guessed name safe: it only makes kao draw again). */
static void temp_suffix(char out[TEMP_RANDOM + 1]) {
    static _Atomic unsigned long long counter;
    unsigned char bytes[TEMP_RANDOM];
    if (getrandom(bytes, sizeof bytes, GRND_NONBLOCK) != (ssize_t)sizeof bytes) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        unsigned long long x = (unsigned long long)ts.tv_nsec ^ ((unsigned long long)getpid() << 32) ^
                               (++counter * 0x9E3779B97F4A7C15ull);
        for (int i = 0; i < TEMP_RANDOM; i++, x = x * 6364136223846793005ull + 1442695040888963407ull)
            bytes[i] = (unsigned char)(x >> 56);
    }
    for (int i = 0; i < TEMP_RANDOM; i++) out[i] = temp_letters[bytes[i] % (sizeof temp_letters - 1)];
    out[TEMP_RANDOM] = '\0';
}

int kao_temp_create(char *temp, size_t temp_size, const char *path) {
    for (int attempt = 0; attempt < 100; attempt++) {
        char suffix[TEMP_RANDOM + 1];
        temp_suffix(suffix);
        if ((size_t)snprintf(temp, temp_size, "%s" KAO_TEMP_TAG "%s", path, suffix) >= temp_size) {
            kao_fail("%s: path too long", path);
            return -1;
        }
        int fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
        if (fd >= 0) return fd;
        if (errno != EEXIST) {
            kao_fail("%s: cannot create '%s': %s", path, temp, strerror(errno));
            return -1;
        }
    }
    kao_fail("%s: cannot create a temporary file beside it (every name drawn exists)", path);
    return -1;
}

bool kao_is_temp_name(const char *name, const char *final_name) {
    size_t n = strlen(final_name), tag = strlen(KAO_TEMP_TAG);
    if (strncmp(name, final_name, n) != 0 || strncmp(name + n, KAO_TEMP_TAG, tag) != 0) return false;
    const char *suffix = name + n + tag;
    return strlen(suffix) == TEMP_RANDOM && strspn(suffix, temp_letters) == TEMP_RANDOM;
}

static int fsync_path(const char *path, int flags) {
    int fd = open(path, flags);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int kao_commit_file(const char *temp_path, const char *path) {
    if (fsync_path(temp_path, O_RDONLY | O_NOFOLLOW) != 0) {
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
    kao_fsync_folder_of(path);
    return KAO_OK;
}

int kao_fsync_folder_of(const char *path) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir) dir[1] = '\0';
    else if (slash) *slash = '\0';
    else snprintf(dir, sizeof dir, ".");
    return fsync_path(dir, O_RDONLY | O_DIRECTORY);
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
    int fd = kao_temp_create(temp, temp_size, path);
    if (fd < 0) return NULL;
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        kao_fail("%s: cannot create file: %s", path, strerror(errno));
        close(fd);
        kao_discard_file(temp);
    }
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

/* The fewest significant digits (6 to 9) that strtof reads back as v. */
static int format_float(char *out, size_t size, float v) {
    for (int digits = 6;; digits++) {
        int n = snprintf(out, size, "%.*g", digits, (double)v);
        if (digits >= 9 || strtof(out, NULL) == v) return n;
    }
}

void kao_format_floats(char *out, size_t size, const float *v, int n) {
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < n && used + 1 < size; i++) {
        if (i) used += (size_t)snprintf(out + used, size - used, ",");
        if (used + 1 < size) used += (size_t)format_float(out + used, size - used, v[i]);
    }
}
