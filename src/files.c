/* files.c — regular files only, bounded lines, outputs that are not inputs, paths kept inside a
 * root (files.h). */
#include "kao/files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "kao/util.h"

static const char *kind_of(mode_t mode) {
    if (S_ISDIR(mode)) return "a folder";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISSOCK(mode)) return "a socket";
    return "not a plain file";
}

static int refuse(const char *path, const char *what, mode_t mode) {
    return kao_fail("%s: not a regular file (%s); kao reads the %s from a regular file only", path, kind_of(mode),
                    what);
}

int kao_open_regular(const char *path, const char *what) {
    /* O_NONBLOCK: opening a FIFO for reading would wait for a writer. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        kao_fail("%s: cannot open %s: %s", path, what, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        kao_fail("%s: cannot open %s: %s", path, what, strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        refuse(path, what, st.st_mode);
        close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    return fd;
}

FILE *kao_fopen_regular(const char *path, const char *what) {
    int fd = kao_open_regular(path, what);
    if (fd < 0) return NULL;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        kao_fail("%s: cannot open %s: %s", path, what, strerror(errno));
        close(fd);
    }
    return f;
}

int kao_check_regular(const char *path, const char *what) {
    struct stat st;
    if (stat(path, &st) != 0) return kao_fail("%s: cannot open %s: %s", path, what, strerror(errno));
    return S_ISREG(st.st_mode) ? KAO_OK : refuse(path, what, st.st_mode);
}

FILE *kao_fopen_write(const char *path, bool append) {
    int flags = O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | (append ? O_APPEND : O_EXCL);
    int fd = open(path, flags, 0666);
    FILE *f = fd < 0 ? NULL : fdopen(fd, append ? "a" : "w");
    if (!f) {
        kao_fail("%s: cannot open: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
    }
    return f;
}

long kao_read_line(FILE *f, char *buf, size_t size) {
    size_t n = 0;
    int c;
    while ((c = getc(f)) != EOF && c != '\n') {
        if (n + 1 >= size) {
            buf[n] = '\0';
            return -2;
        }
        buf[n++] = (char)c;
    }
    buf[n] = '\0';
    if (c == EOF && n == 0) return -1;
    return (long)n;
}

int kao_check_not_input(const char *output, const char *const *inputs, int num_inputs) {
    struct stat out, in;
    if (stat(output, &out) != 0) return KAO_OK; /* not there yet: no input either */
    for (int i = 0; i < num_inputs; i++) {
        if (!inputs[i] || stat(inputs[i], &in) != 0) continue;
        if (in.st_dev == out.st_dev && in.st_ino == out.st_ino)
            return kao_fail("%s: is the same file as the input %s; write the output elsewhere", output, inputs[i]);
    }
    return KAO_OK;
}

bool kao_rel_path_contained(const char *rel) {
    if (rel[0] == '/') return false;
    for (const char *p = rel; *p;) {
        size_t len = strcspn(p, "/");
        if (len == 2 && p[0] == '.' && p[1] == '.') return false;
        p += len;
        p += *p == '/';
    }
    return true;
}

bool kao_path_inside(const char *root_real, const char *path) {
    char *real = realpath(path, NULL);
    if (!real) return false;
    size_t n = strlen(root_real);
    bool inside = strncmp(real, root_real, n) == 0 &&
                  (real[n] == '\0' || real[n] == '/' || (n > 0 && root_real[n - 1] == '/'));
    free(real);
    return inside;
}

kao_file_identity kao_file_identity_of(const struct stat *st) {
    return (kao_file_identity){st->st_dev, st->st_ino, st->st_size, st->st_mtim, st->st_ctim};
}

bool kao_same_file_identity(const kao_file_identity *a, const kao_file_identity *b) {
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec &&
           a->mtime.tv_nsec == b->mtime.tv_nsec && a->ctime.tv_sec == b->ctime.tv_sec &&
           a->ctime.tv_nsec == b->ctime.tv_nsec;
}

int kao_file_crc32(int fd, off_t offset, uint64_t *bytes, uint32_t *crc) {
    enum { chunk = 1 << 20 };
    unsigned char *buf = kao_malloc(chunk, "CRC read buffer");
    uLong c = crc32_z(0, Z_NULL, 0);
    uint64_t total = 0;
    for (;;) {
        ssize_t n = pread(fd, buf, chunk, offset + (off_t)total);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            free(buf);
            return -1;
        }
        if (n == 0) break;
        c = crc32_z(c, buf, (z_size_t)n);
        total += (uint64_t)n;
    }
    free(buf);
    *bytes = total;
    *crc = (uint32_t)c;
    return 0;
}
