/* h5sandbox.c — every HDF5 file is read by libhdf5 in a child process first.
 *
 * Why: libhdf5 trusts its files, and a damaged one can crash it (Debian's 1.10: bad frees, heap
 * overflows and overlapping copies on mutated weights files). kao's own files carry a seal
 * (h5seal.c), but a seal only proves the file is as some writer left it, not that the writer was
 * kao: anyone can seal a file. Files from h5py, Keras and other tools carry none. So a forked child
 * opens the file, checks that its datasets use only the filters listed below, copies everything
 * in it (every object under the root, and the root's attributes) into a new in-memory HDF5 file,
 * and leaves that file's image in a shared anonymous mapping the parent made before the fork.
 * The parent opens the image in place: its structure was written by libhdf5 itself, so a crash, a
 * hang or a failure while reading the original happens in the child and becomes one error naming
 * the file. (A shared mapping rather than a memory file: no file-size limit applies to it.)
 *
 * The cost is the copy: for tf_efficientnetv2_l's 477 MB, about 1 s on a 2-core Intel Xeon (kao
 * info 1.5–1.8 s instead of 0.7 s), and the image's memory while the file is open (the child's own
 * copy is gone by then).
 *
 * A command opens the same file several times (probe, trained_info, load): the last copy is kept
 * and reused while the file is unchanged (same device, inode, size, modification and change times).
 * A copy's region counts the open files that read it, and is unmapped when none does and it is
 * not the kept one.
 *
 * The child is forked before it touches HDF5 state of its own (the parent's open files are left
 * alone: the child only opens the file at hand and exits with _exit, which flushes nothing). */
#include "h5sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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

/* The copy keeps compressed data compressed, so it is about the file's size; a file whose copy
 * grows past 4 times its size plus 64 MB is not a weights file. */
static uint64_t copy_limit(const struct stat *st) { return ((uint64_t)(st ? st->st_size : 0) << 2) + ((uint64_t)64 << 20); }

/* The filters a dataset may use: gzip (zlib), shuffle and Fletcher-32, what h5py and Keras write.
 * The parent decompresses the copy's data, so a filter's decoder must be one that is safe on
 * hostile input; HDF5's own n-bit, scale-offset and szip decoders have had memory-safety bugs. */
static bool filter_allowed(H5Z_filter_t id) {
    return id == H5Z_FILTER_DEFLATE || id == H5Z_FILTER_SHUFFLE || id == H5Z_FILTER_FLETCHER32;
}

/* What the child sends: one status byte, a length, then nothing (the copy is ready) or a message. */
enum { SANDBOX_COPIED = 0, SANDBOX_MESSAGE = 1 };

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

/* Where the copy goes, and how large it may grow: one dataset behind a thousand links would be
 * copied a thousand times. */
typedef struct {
    hid_t file, root;
    hsize_t max_bytes;
    bool too_big; /* the copy outgrew max_bytes */
} copy_target;

/* Copies the root attribute `name` of src to dst (H5Ocopy copies every object but the root). */
static herr_t copy_attribute(hid_t src_root, const char *name, const H5A_info_t *info, void *target) {
    hid_t dst_root = ((copy_target *)target)->root;
    hid_t a = H5Aopen(src_root, name, H5P_DEFAULT);
    hid_t type = a >= 0 ? H5Aget_type(a) : -1, space = a >= 0 ? H5Aget_space(a) : -1;
    hid_t mem = type >= 0 ? H5Tget_native_type(type, H5T_DIR_ASCEND) : -1;
    hssize_t n = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    size_t bytes = mem >= 0 ? H5Tget_size(mem) : 0;
    herr_t rc = -1;
    if (n >= 0 && bytes > 0 && (uint64_t)n <= (uint64_t)1 << 20) {
        void *buf = calloc((size_t)n + 1, bytes);
        hid_t out = buf ? H5Acreate2(dst_root, name, type, space, H5P_DEFAULT, H5P_DEFAULT) : -1;
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

static herr_t copy_object(hid_t src_root, const char *name, const H5L_info_t *info, void *target) {
    copy_target *t = target;
    hsize_t size = 0;
    t->too_big = H5Fget_filesize(t->file, &size) < 0 || size > t->max_bytes;
    if (t->too_big) return -1;
    if (info->type != H5L_TYPE_HARD) return 0; /* soft and external links are not followed */
    return H5Ocopy(src_root, name, t->root, name, H5P_DEFAULT, H5P_DEFAULT);
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

/* H5Ovisit's callback: stops (1) at the first dataset with a filter outside filter_allowed. */
static herr_t check_filters(hid_t root, const char *name, const H5O_info_t *info, void *bad) {
    if (info->type != H5O_TYPE_DATASET) return 0;
    hid_t d = H5Dopen2(root, name, H5P_DEFAULT);
    hid_t dcpl = d >= 0 ? H5Dget_create_plist(d) : -1;
    int n = dcpl >= 0 ? H5Pget_nfilters(dcpl) : -1;
    herr_t rc = n < 0 ? -1 : 0;
    for (int k = 0; k < n && rc == 0; k++) {
        unsigned flags;
        size_t nvalues = 0;
        H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)k, &flags, &nvalues, NULL, 0, NULL, NULL);
        if (!filter_allowed(id)) {
            snprintf(bad, 512, "dataset '%.300s' uses HDF5 filter %d, which kao does not read (only gzip, "
                     "shuffle and Fletcher-32)", name, (int)id);
            rc = 1;
        }
    }
    if (dcpl >= 0) H5Pclose(dcpl);
    if (d >= 0) H5Dclose(d);
    return rc;
}

/* A copy's region: this header, then the image from byte REGION_IMAGE on. Mapped MAP_NORESERVE
 * at its largest size (copy_limit): only the pages the image fills take memory. */
typedef struct {
    size_t mapped;      /* bytes mapped, header included */
    size_t image_bytes; /* written by the child */
    int users;          /* open files reading the image (the parent's count) */
} region;
enum { REGION_IMAGE = 4096 };

/* Leaves the image of the in-memory file dst in r. */
static bool share_image(hid_t dst, region *r) {
    ssize_t size = H5Fget_file_image(dst, NULL, 0);
    if (size <= 0 || (size_t)size > r->mapped - REGION_IMAGE) return false;
    r->image_bytes = (size_t)size;
    return H5Fget_file_image(dst, (char *)r + REGION_IMAGE, (size_t)size) == size;
}

/* Opens path, copies it into memory, leaves the copy's image in r and says how it went; never
 * returns. */
static void child(int fd, const char *path, region *r, int cpu) {
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
    hid_t src_root = H5Gopen2(src, "/", H5P_DEFAULT);
    if (src_root < 0) send_message(fd, "cannot open its root group (corrupt?)");
    char bad[512] = "";
    herr_t visited = H5Ovisit(src_root, H5_INDEX_NAME, H5_ITER_INC, check_filters, bad);
    if (bad[0]) send_message(fd, bad);
    if (visited < 0) send_message(fd, "cannot read its objects (damaged HDF5 file?)");
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    H5Pset_link_creation_order(fcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
    H5Pset_attr_creation_order(fcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
    hid_t mem_fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fapl_core(mem_fapl, (size_t)1 << 24, false); /* grown 16 MB at a time */
    copy_target t = {.file = H5Fcreate("kao-sandbox-copy", H5F_ACC_TRUNC, fcpl, mem_fapl),
                     .max_bytes = r->mapped - REGION_IMAGE};
    t.root = t.file >= 0 ? H5Gopen2(t.file, "/", H5P_DEFAULT) : -1;
    if (t.root < 0) send_message(fd, "cannot make its copy in memory");
    H5_index_t order = copy_order(src_root);
    herr_t copied = H5Literate(src_root, order, H5_ITER_INC, NULL, copy_object, &t);
    if (t.too_big) {
        char message[128];
        snprintf(message, sizeof message, "its contents come to more than %llu MB (a damaged or hostile HDF5 file?)",
                 (unsigned long long)(t.max_bytes >> 20));
        send_message(fd, message);
    }
    if (copied < 0) send_message(fd, "cannot read its objects (damaged HDF5 file?)");
    if (H5Aiterate2(src_root, order, H5_ITER_INC, NULL, copy_attribute, &t) < 0)
        send_message(fd, "cannot read its root attributes (damaged HDF5 file?)");
    H5Gclose(t.root);
    if (H5Fflush(t.file, H5F_SCOPE_GLOBAL) < 0 || !share_image(t.file, r)) send_message(fd, "cannot copy it into memory");
    reply(fd, SANDBOX_COPIED, NULL, 0);
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

/* HDF5 copies a file image it is given, through these callbacks: pointing every copy at the
 * image itself opens it in place (what H5LTopen_file_image's DONT_COPY does, but without the
 * allocation that leaks in libhdf5 1.10, and with the strong close below). The file is opened
 * read-only, so HDF5 never writes, grows or frees the image; the region's count says when it goes. */
static void *image_in_place(size_t size, H5FD_file_image_op_t op, void *r) {
    return size == ((region *)r)->image_bytes ? (char *)r + REGION_IMAGE : NULL;
}
static void *copy_in_place(void *dest, const void *src, size_t size, H5FD_file_image_op_t op, void *r) {
    return dest == src ? dest : NULL;
}
static herr_t keep_image(void *ptr, H5FD_file_image_op_t op, void *r) { return 0; }
static void *same_region(void *r) { return r; }
static herr_t keep_region(void *r) { return 0; }

/* Opens the image in r in place, read-only, as one more of its users. */
static int open_copy(const char *path, region *r, int64_t *id, void **image) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fapl_core(fapl, (size_t)1 << 20, false);
    H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG); /* closing the file closes all in it: then r may go */
    H5FD_file_image_callbacks_t callbacks = {image_in_place, copy_in_place, NULL, keep_image, same_region,
                                             keep_region, r};
    H5Pset_file_image_callbacks(fapl, &callbacks);
    H5Pset_file_image(fapl, (char *)r + REGION_IMAGE, r->image_bytes);
    static unsigned serial; /* HDF5 tells open files apart by name */
    char name[64];
    snprintf(name, sizeof name, "kao-sandboxed-%u", ++serial);
    hid_t h = H5Fopen(name, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    if (h < 0) return kao_fail("%s: its copy from the HDF5 reader does not open (out of memory?)", path);
    r->users++;
    *id = h;
    *image = r;
    return KAO_OK;
}

/* The last copy made, and the file it is a copy of. */
static struct {
    region *r; /* NULL: none */
    kao_file_identity file;
} cached;

static void unmap_unused(region *r) {
    if (r && r->users == 0 && r != cached.r) munmap(r, r->mapped);
}

void kao_h5_sandbox_release(void *image) {
    region *r = image;
    if (!r) return;
    r->users--;
    unmap_unused(r);
}

static bool is_cached(const struct stat *st) {
    kao_file_identity file = kao_file_identity_of(st);
    return cached.r && kao_same_file_identity(&file, &cached.file);
}

static void cache(region *r, const struct stat *st) {
    region *old = cached.r;
    cached.r = r;
    cached.file = kao_file_identity_of(st);
    unmap_unused(old);
}

/* Reads the child's reply from fd: the opened copy in *id, or the error. *replied is false when
 * the child ended (or stalled) before a whole reply: its exit status then says why. */
static int receive(int fd, const char *path, region *r, int64_t *id, void **image, bool *replied) {
    uint8_t status;
    uint64_t size;
    *replied = false;
    if (!read_all(fd, &status, 1) || !read_all(fd, &size, sizeof size) || size > 4096) return KAO_ERR;
    char message[4097];
    if (!read_all(fd, message, size)) return KAO_ERR;
    *replied = true;
    message[size] = '\0';
    return status == SANDBOX_MESSAGE ? kao_fail("%s: %s", path, message) : open_copy(path, r, id, image);
}

int kao_h5_sandbox_open(const char *path, int64_t *id, void **image) {
    struct stat st;
    bool known = stat(path, &st) == 0;
    if (known && is_cached(&st)) return open_copy(path, cached.r, id, image);
    int cpu = cpu_seconds(known ? &st : NULL);
    size_t mapped = REGION_IMAGE + (size_t)copy_limit(known ? &st : NULL);
    region *r = mmap(NULL, mapped, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (r == MAP_FAILED) return kao_fail("%s: cannot make room for the HDF5 reader's copy: %s", path, strerror(errno));
    *r = (region){.mapped = mapped};
    int pipe_fds[2];
    if (pipe(pipe_fds) != 0) {
        munmap(r, mapped);
        return kao_fail("%s: cannot start the HDF5 reader: %s", path, strerror(errno));
    }
    fflush(NULL); /* nothing buffered is written twice */
    pid_t pid = fork();
    if (pid < 0) {
        close(pipe_fds[0]);
        close(pipe_fds[1]);
        munmap(r, mapped);
        return kao_fail("%s: cannot start the HDF5 reader: %s", path, strerror(errno));
    }
    if (pid == 0) {
        close(pipe_fds[0]);
        child(pipe_fds[1], path, r, cpu);
    }
    close(pipe_fds[1]);
    bool replied;
    int rc = receive(pipe_fds[0], path, r, id, image, &replied);
    close(pipe_fds[0]); /* a child still writing gets EPIPE and ends */
    if (!replied) kill(pid, SIGKILL); /* one that stalled mid-reply; a dead one is not hurt */
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!replied) rc = child_failure(path, status, cpu);
    if (rc == KAO_OK && known) cache(r, &st);
    else if (rc != KAO_OK) munmap(r, mapped);
    return rc;
}
