/* h5sandbox.c — files without kao's seal are read by libhdf5 in a child process.
 *
 * Why: libhdf5 trusts its files, and a damaged one can crash it (Debian's 1.10: bad frees, heap
 * overflows and overlapping copies on mutated weights files). kao's own files carry a seal
 * (h5seal.c) checked before HDF5 reads them; files from h5py, Keras and other tools do not, and
 * they are the common case. So such a file is opened by a forked child, which copies everything
 * in it (every object under the root, and the root's attributes) into a new in-memory HDF5 file
 * and sends that file's image back through a pipe. The parent opens the image: its structure was
 * written by libhdf5 itself, so a crash, a hang or a failure while reading the original happens
 * in the child and becomes one error naming the file.
 *
 * A command opens the same file several times (probe, trained_info, load): the last image is kept
 * and reused while the file is unchanged (same device, inode, size, modification and change times).
 *
 * The child is forked before it touches HDF5 state of its own (the parent's open files are left
 * alone: the child only opens the file at hand and exits with _exit, which flushes nothing). */
#include "h5sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kao/files.h"
#include "kao/util.h"

/* A child that has not finished by then is taken to hang on a hostile file (a copy of the
 * largest EfficientNetV2 weights takes about a second). */
#define SANDBOX_SECONDS 120

/* libhdf5 loops for ever on some damaged files (a 52 KB one, found by tests/fuzz/fuzz_weights.c,
 * kept the child busy until the alarm above). A copy takes about 5 ms of CPU per MB (84 MB of
 * tf_efficientnetv2_s: 0.4 s), so the child gets more than ten times that in CPU time, 2 s + 1 s
 * per 16 MB, while the alarm still bounds the wall time (a slow disk). */
static int cpu_seconds(const struct stat *st) { return 2 + (int)((st ? st->st_size : 0) >> 24); }

/* What the child sends: one status byte, a length, then the image (status 0) or a message. */
enum { SANDBOX_IMAGE = 0, SANDBOX_MESSAGE = 1 };

static bool write_all(int fd, const void *data, size_t size) {
    const char *p = data;
    while (size > 0) {
        ssize_t n = write(fd, p, size);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        p += n;
        size -= (size_t)n;
    }
    return true;
}

static bool read_all(int fd, void *data, size_t size) {
    char *p = data;
    while (size > 0) {
        ssize_t n = read(fd, p, size);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        p += n;
        size -= (size_t)n;
    }
    return true;
}

static void reply(int fd, uint8_t status, const void *data, uint64_t size) {
    bool ok = write_all(fd, &status, 1) && write_all(fd, &size, sizeof size) && write_all(fd, data, size);
    _exit(ok ? 0 : 3);
}

static void send_message(int fd, const char *message) { reply(fd, SANDBOX_MESSAGE, message, strlen(message)); }

/* ---- the child ------------------------------------------------------------------------------- */

/* Copies the root attribute `name` of src to dst (H5Ocopy copies every object but the root). */
static herr_t copy_attribute(hid_t src_root, const char *name, const H5A_info_t *info, void *dst_root) {
    hid_t a = H5Aopen(src_root, name, H5P_DEFAULT);
    hid_t type = a >= 0 ? H5Aget_type(a) : -1, space = a >= 0 ? H5Aget_space(a) : -1;
    hid_t mem = type >= 0 ? H5Tget_native_type(type, H5T_DIR_ASCEND) : -1;
    hssize_t n = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    size_t bytes = mem >= 0 ? H5Tget_size(mem) : 0;
    herr_t rc = -1;
    if (n >= 0 && bytes > 0 && (uint64_t)n <= (uint64_t)1 << 20) {
        void *buf = calloc((size_t)n + 1, bytes);
        hid_t out = buf ? H5Acreate2(*(hid_t *)dst_root, name, type, space, H5P_DEFAULT, H5P_DEFAULT) : -1;
        if (out >= 0 && H5Aread(a, mem, buf) >= 0) {
            rc = H5Awrite(out, mem, buf);
#if H5_VERSION_GE(1, 12, 0)
            H5Treclaim(mem, space, H5P_DEFAULT, buf); /* strings that HDF5 allocated */
#else
            H5Dvlen_reclaim(mem, space, H5P_DEFAULT, buf);
#endif
        }
        if (out >= 0) H5Aclose(out);
        free(buf);
    }
    if (mem >= 0) H5Tclose(mem);
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    if (a >= 0) H5Aclose(a);
    return rc;
}

static herr_t copy_object(hid_t src_root, const char *name, const H5L_info_t *info, void *dst_root) {
    if (info->type != H5L_TYPE_HARD) return 0; /* soft and external links are not followed */
    return H5Ocopy(src_root, name, *(hid_t *)dst_root, name, H5P_DEFAULT, H5P_DEFAULT);
}

/* The order to copy in: creation order where the file tracks it (kao_h5_list's order), else names. */
static H5_index_t copy_order(hid_t root) {
    hid_t gcpl = H5Gget_create_plist(root);
    unsigned flags = 0;
    if (gcpl >= 0) {
        H5Pget_link_creation_order(gcpl, &flags);
        H5Pclose(gcpl);
    }
    return flags & H5P_CRT_ORDER_INDEXED ? H5_INDEX_CRT_ORDER : H5_INDEX_NAME;
}

/* Opens path, copies it into memory and sends the image; never returns. */
static void child(int fd, const char *path, int cpu) {
    alarm(SANDBOX_SECONDS);
    setrlimit(RLIMIT_CPU, &(struct rlimit){(rlim_t)cpu, (rlim_t)cpu + 1}); /* SIGXCPU when spent */
    setrlimit(RLIMIT_CORE, &(struct rlimit){0, 0}); /* its crashes are reported, not dumped */
    /* What a crashing libhdf5 would print (a sanitizer's report, glibc's abort message) is not
     * the user's business: the parent reports the crash in one line. */
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0) dup2(null, STDERR_FILENO);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
#if (H5_VERS_MAJOR == 1 && H5_VERS_MINOR == 10 && H5_VERS_RELEASE >= 7) || H5_VERSION_GE(1, 12, 1)
    H5Pset_file_locking(fapl, false, true);
#endif
    hid_t src = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    if (src < 0) send_message(fd, "not an HDF5 file (or truncated/corrupt)");
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    H5Pset_link_creation_order(fcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
    H5Pset_attr_creation_order(fcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
    hid_t mem_fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fapl_core(mem_fapl, (size_t)1 << 20, false);
    hid_t dst = H5Fcreate("kao-sandbox-copy", H5F_ACC_TRUNC, fcpl, mem_fapl);
    hid_t src_root = H5Gopen2(src, "/", H5P_DEFAULT), dst_root = H5Gopen2(dst, "/", H5P_DEFAULT);
    if (dst < 0 || src_root < 0 || dst_root < 0) send_message(fd, "cannot open its root group (corrupt?)");
    H5_index_t order = copy_order(src_root);
    if (H5Literate(src_root, order, H5_ITER_INC, NULL, copy_object, &dst_root) < 0)
        send_message(fd, "cannot read its objects (damaged HDF5 file?)");
    if (H5Aiterate2(src_root, order, H5_ITER_INC, NULL, copy_attribute, &dst_root) < 0)
        send_message(fd, "cannot read its root attributes (damaged HDF5 file?)");
    H5Gclose(dst_root);
    if (H5Fflush(dst, H5F_SCOPE_GLOBAL) < 0) send_message(fd, "cannot copy it into memory");
    ssize_t size = H5Fget_file_image(dst, NULL, 0);
    void *image = size > 0 ? malloc((size_t)size) : NULL;
    if (!image || H5Fget_file_image(dst, image, (size_t)size) != size) send_message(fd, "cannot copy it into memory");
    reply(fd, SANDBOX_IMAGE, image, (uint64_t)size);
}

/* ---- the parent ------------------------------------------------------------------------------ */

/* What became of the child (status from waitpid), for the message when it sent nothing usable. */
static int child_failure(const char *path, int status, int cpu) {
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
        return kao_fail("%s: reading it took libhdf5 more than %d s (a damaged or hostile HDF5 file?)", path,
                        SANDBOX_SECONDS);
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGXCPU)
        return kao_fail("%s: reading it took libhdf5 more than %d s of CPU time (a damaged or hostile HDF5 "
                        "file?)", path, cpu);
    if (WIFSIGNALED(status))
        return kao_fail("%s: libhdf5 crashed reading it (%s): a damaged or hostile HDF5 file", path,
                        strsignal(WTERMSIG(status)));
    return kao_fail("%s: libhdf5 could not read it (exit status %d)", path, WEXITSTATUS(status));
}

/* Opens the image in memory; the id is read-only like the file's. */
static int open_image(const char *path, void *image, size_t size, int64_t *id) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fapl_core(fapl, (size_t)1 << 20, false);
    H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
    H5Pset_file_image(fapl, image, size); /* HDF5 keeps a copy */
    static unsigned serial; /* HDF5 tells open files apart by name */
    char name[64];
    snprintf(name, sizeof name, "kao-sandboxed-%u", ++serial);
    hid_t h = H5Fopen(name, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    if (h < 0) return kao_fail("%s: its copy from the HDF5 reader does not open (out of memory?)", path);
    *id = h;
    return KAO_OK;
}

/* The last image made, and the file it is a copy of. */
static struct {
    char *data;
    size_t size;
    kao_file_identity file;
} cached;

static bool is_cached(const struct stat *st) {
    kao_file_identity file = kao_file_identity_of(st);
    return cached.data && kao_same_file_identity(&file, &cached.file);
}

static void cache(char *data, size_t size, const struct stat *st) {
    free(cached.data);
    cached.data = data;
    cached.size = size;
    cached.file = kao_file_identity_of(st);
}

/* Reads the child's reply from fd: the opened image in *id, or the error. *replied is false when
 * the child ended (or stalled) before a whole reply: its exit status then says why. An image is
 * kept for the file st describes. */
static int receive(int fd, const char *path, const struct stat *st, int64_t *id, bool *replied) {
    uint8_t status;
    uint64_t size;
    *replied = false;
    if (!read_all(fd, &status, 1) || !read_all(fd, &size, sizeof size) || size > ((uint64_t)1 << 40)) return KAO_ERR;
    char *data = malloc(size + 1);
    *replied = data == NULL;
    if (!data) return kao_fail("%s: out of memory for its %llu-byte copy", path, (unsigned long long)size);
    int rc = KAO_ERR;
    if (read_all(fd, data, size)) {
        *replied = true;
        data[size] = '\0';
        rc = status == SANDBOX_MESSAGE ? kao_fail("%s: %s", path, data) : open_image(path, data, size, id);
    }
    if (rc == KAO_OK && st) cache(data, size, st);
    else free(data);
    return rc;
}

int kao_h5_sandbox_open(const char *path, int64_t *id) {
    struct stat st;
    bool known = stat(path, &st) == 0;
    if (known && is_cached(&st)) return open_image(path, cached.data, cached.size, id);
    int pipe_fds[2];
    if (pipe(pipe_fds) != 0) return kao_fail("%s: cannot start the HDF5 reader: %s", path, strerror(errno));
    fflush(NULL); /* nothing buffered is written twice */
    pid_t pid = fork();
    if (pid < 0) {
        close(pipe_fds[0]);
        close(pipe_fds[1]);
        return kao_fail("%s: cannot start the HDF5 reader: %s", path, strerror(errno));
    }
    if (pid == 0) {
        close(pipe_fds[0]);
        child(pipe_fds[1], path, cpu_seconds(known ? &st : NULL));
    }
    close(pipe_fds[1]);
    bool replied;
    int rc = receive(pipe_fds[0], path, known ? &st : NULL, id, &replied);
    close(pipe_fds[0]); /* a child still writing gets EPIPE and ends */
    if (!replied) kill(pid, SIGKILL); /* one that stalled mid-reply; a dead one is not hurt */
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return replied ? rc : child_failure(path, status, cpu_seconds(known ? &st : NULL));
}
