/* h5seal.c — a checksum over every HDF5 file kao writes, checked before HDF5 reads the file.
 *
 * Why: the HDF5 library trusts its files. A weights file with a few damaged bytes in its data
 * loads without complaint and gives wrong embeddings; damage in its metadata can crash libhdf5
 * itself (a double free in H5Literate, seen with Debian's 1.10.8). PNG has a CRC per chunk and
 * PyTorch's checkpoints a CRC per zip entry; kao's files get the same protection.
 *
 * How: kao creates its files with a 512-byte HDF5 user block (bytes HDF5 reserves at the start
 * of the file and never reads; h5py and every HDF5 tool skip it). Once HDF5 has closed the file,
 * the seal is written there, as text:
 *
 *     kao-seal 1
 *     crc32 1a2b3c4d
 *     bytes 1048576
 *
 * and zeros to the end of the block. "bytes" is the length of the HDF5 data after the user block
 * and "crc32" zlib's CRC-32 of it. A reader checks the block, the length (truncated or extended)
 * and the CRC before HDF5 sees the file.
 * Files without a seal (h5py's, older kao's) are read as they are (through h5sandbox.c, as all
 * files are). A block that holds two of the seal's three words but is not a seal is a damaged
 * seal, not a missing one: one flipped bit must not turn a sealed file into an unchecked one. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kao/files.h"
#include "kao/h5io.h"
#include "kao/util.h"

static const char seal_magic[] = "kao-seal 1\n";
static const char deliberate[] = "`kao info --reseal` accepts a deliberate change by another program";

/* Whether the first got bytes of a file hold at least two of the seal's words: a seal, perhaps a
 * damaged one (a bit flip breaks at most one word). */
static bool looks_like_seal(const char *block, ssize_t got) {
    static const char *const words[] = {"kao-seal ", "crc32 ", "\nbytes "};
    int found = 0;
    for (int i = 0; i < 3; i++) found += got > 0 && memmem(block, (size_t)got, words[i], strlen(words[i])) != NULL;
    return found >= 2;
}

/* The whole user block of a seal: the text, then zeros. */
static void format_seal(char block[KAO_H5_SEAL_BYTES], uint32_t crc, uint64_t bytes) {
    memset(block, 0, KAO_H5_SEAL_BYTES);
    snprintf(block, KAO_H5_SEAL_BYTES, "%scrc32 %08" PRIx32 "\nbytes %" PRIu64 "\n", seal_magic, crc, bytes);
}

int kao_h5_seal(const char *file, const char *path) {
    int fd = open(file, O_RDWR);
    if (fd < 0) return kao_fail("%s: cannot reopen '%s' to seal it: %s", path, file, strerror(errno));
    uint64_t bytes;
    uint32_t crc;
    char block[KAO_H5_SEAL_BYTES];
    errno = 0;
    bool ok = kao_file_crc32(fd, KAO_H5_SEAL_BYTES, &bytes, &crc) == 0;
    if (ok) {
        format_seal(block, crc, bytes);
        ok = pwrite(fd, block, sizeof block, 0) == (ssize_t)sizeof block;
    }
    int err = errno ? errno : EIO; /* a short write sets none */
    if (close(fd) != 0 && ok) ok = false, err = errno;
    if (!ok) return kao_fail("%s: cannot seal '%s': %s", path, file, strerror(err));
    return KAO_OK;
}

/* The last file whose seal matched: a command opens the same file several times (probe, load,
 * trained_info), and a file unchanged since is not read through again. */
static _Thread_local kao_file_identity last_sealed;
static _Thread_local bool have_last_sealed;

int kao_h5_check_seal(const char *path, kao_h5_seal_state *state) {
    *state = KAO_H5_UNSEALED;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return kao_fail("%s: %s", path, strerror(errno));
    struct stat st;
    kao_file_identity id = {0};
    if (fstat(fd, &st) == 0) id = kao_file_identity_of(&st);
    if (have_last_sealed && kao_same_file_identity(&id, &last_sealed)) {
        close(fd);
        *state = KAO_H5_SEALED;
        return KAO_OK;
    }
    char block[KAO_H5_SEAL_BYTES + 1] = {0};
    ssize_t got = pread(fd, block, KAO_H5_SEAL_BYTES, 0);
    bool magic = got >= (ssize_t)strlen(seal_magic) && memcmp(block, seal_magic, strlen(seal_magic)) == 0;
    if (!magic && !looks_like_seal(block, got)) {
        close(fd);
        return KAO_OK; /* no seal: HDF5 judges the file alone */
    }
    if (got < KAO_H5_SEAL_BYTES) {
        close(fd);
        return kao_fail("%s: truncated: %zd bytes, less than its kao seal's %d", path, got, KAO_H5_SEAL_BYTES);
    }
    /* Past its first line the block must be exactly what kao_h5_seal writes, zeros included. */
    uint32_t want_crc;
    uint64_t want_bytes;
    char canonical[KAO_H5_SEAL_BYTES];
    bool readable =
        sscanf(block + strlen(seal_magic), "crc32 %8" SCNx32 "\nbytes %" SCNu64, &want_crc, &want_bytes) == 2;
    readable = readable && want_bytes <= (uint64_t)INT64_MAX; /* a file size, with room for the block */
    if (readable) format_seal(canonical, want_crc, want_bytes);
    if (!readable || memcmp(block, canonical, KAO_H5_SEAL_BYTES) != 0) {
        close(fd);
        return kao_fail("%s: damaged: its kao seal (the first %d bytes) is unreadable", path, KAO_H5_SEAL_BYTES);
    }
    uint64_t bytes;
    uint32_t crc;
    int rc = kao_file_crc32(fd, KAO_H5_SEAL_BYTES, &bytes, &crc);
    int err = errno;
    close(fd);
    if (rc != 0) return kao_fail("%s: %s", path, strerror(err));
    if (bytes < want_bytes)
        return kao_fail("%s: truncated: %" PRIu64 " of its %" PRIu64 " bytes are there (an interrupted copy?; %s)",
                        path, bytes + KAO_H5_SEAL_BYTES, want_bytes + KAO_H5_SEAL_BYTES, deliberate);
    if (bytes > want_bytes)
        return kao_fail("%s: changed: %" PRIu64 " bytes, its seal says %" PRIu64 " (%s)", path,
                        bytes + KAO_H5_SEAL_BYTES, want_bytes + KAO_H5_SEAL_BYTES, deliberate);
    if (crc != want_crc)
        return kao_fail("%s: damaged: CRC-32 %08" PRIx32 ", its seal says %08" PRIx32 " (%s)", path, crc, want_crc,
                        deliberate);
    *state = KAO_H5_SEALED;
    last_sealed = id;
    have_last_sealed = id.ino != 0;
    return KAO_OK;
}

int kao_h5_reseal(const char *path) {
    char block[KAO_H5_SEAL_BYTES] = {0};
    int fd = kao_open_regular(path, "HDF5 file");
    if (fd < 0) return KAO_ERR;
    ssize_t got = pread(fd, block, sizeof block, 0);
    close(fd);
    if (got != (ssize_t)sizeof block || !looks_like_seal(block, got))
        return kao_fail("%s: has no kao seal to renew (only files kao wrote carry one)", path);
    if (kao_h5_seal(path, path)) return KAO_ERR;
    fd = open(path, O_RDONLY);
    if (fd < 0 || fsync(fd) != 0) {
        int err = errno;
        if (fd >= 0) close(fd);
        return kao_fail("%s: cannot flush the new seal to disk: %s", path, strerror(err));
    }
    close(fd);
    return KAO_OK;
}
