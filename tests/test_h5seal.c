/* The seal on kao's HDF5 files (src/h5seal.c): a file kao writes carries its length and CRC-32,
 * and a truncated, extended or damaged copy is refused with a message naming the file, before
 * HDF5 reads it. One damaged byte in a weight's data is the case that matters: HDF5 alone loads
 * it without a word (shown here on an unsealed copy), the seal refuses it, and a deliberate change
 * is accepted after kao_h5_reseal. Files go to a fresh folder under $TMPDIR, removed at the end. */
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "kao/h5io.h"
#include "kao/util.h"
#include "kao/weights.h"

static char tmp_root[512];

#define CHECK_ERROR(rc, want)                                                                      \
    CHECK((rc) == KAO_ERR && strstr(kao_last_error(), (want)), "rc %d, message '%s' lacks '%s'",  \
          (rc), kao_last_error(), (want))

typedef struct {
    unsigned char *bytes;
    size_t size;
} blob;

static blob read_blob(const char *path) {
    blob b = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return b;
    fseek(f, 0, SEEK_END);
    b.size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    b.bytes = kao_malloc(b.size + 1, "file copy");
    if (fread(b.bytes, 1, b.size, f) != b.size) b.size = 0;
    fclose(f);
    return b;
}

static void write_blob(const char *path, const unsigned char *bytes, size_t size) {
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(bytes, 1, size, f);
        fclose(f);
    }
}

static const char *file_in_tmp(const char *name) {
    static char paths[16][600];
    static int next;
    char *p = paths[next++ % 16];
    snprintf(p, sizeof paths[0], "%s/%s", tmp_root, name);
    return p;
}

static void tiny_model(kao_model *m, uint64_t seed) {
    kao_arch a;
    KAO_ASSERT(kao_arch_build(&a, "tf_efficientnetv2_b0", 0.25, 0.5, 16, 0) == KAO_OK, "%s", kao_last_error());
    kao_model_create(m, &a);
    kao_model_init(m, seed);
}

/* The file offset of a contiguous dataset's first byte (HDF5 counts the user block in). */
static size_t data_offset(const char *path, const char *dataset) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, dataset, H5P_DEFAULT);
    haddr_t at = H5Dget_offset(d);
    H5Dclose(d);
    H5Fclose(f);
    return (size_t)at;
}

int main(void) {
    const char *tmp = getenv("TMPDIR");
    snprintf(tmp_root, sizeof tmp_root, "%s/kao_test_h5seal_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(tmp_root)) {
        perror(tmp_root);
        return 1;
    }
    kao_model saved, loaded;
    tiny_model(&saved, 7);
    tiny_model(&loaded, 8);

    /* A file kao writes is sealed, and the seal is text in the HDF5 user block. */
    const char *good = file_in_tmp("good.h5");
    CHECK(kao_weights_save(&saved, good) == KAO_OK, "save: %s", kao_last_error());
    kao_h5_seal_state state = KAO_H5_UNSEALED;
    CHECK(kao_h5_check_seal(good, &state) == KAO_OK && state == KAO_H5_SEALED, "not sealed: %s", kao_last_error());
    blob b = read_blob(good);
    CHECK(b.size > 10000 && !memcmp(b.bytes, "kao-seal 1\ncrc32 ", 17), "no seal text at the start of the file");
    CHECK(kao_weights_load(&loaded, good, NULL, NULL) == KAO_OK &&
              !memcmp(loaded.params, saved.params, saved.num_params * sizeof(float)),
          "sealed file does not load back: %s", kao_last_error());

    /* One byte of conv_stem.weight's data damaged (the last byte of element 5, its sign and high
     * exponent bits): HDF5 itself finds nothing wrong with such a file. */
    size_t at = data_offset(good, "conv_stem.weight");
    float stored;
    memcpy(&stored, b.bytes + at + 5 * sizeof(float), sizeof stored);
    CHECK(at >= KAO_H5_SEAL_BYTES && at + 64 < b.size && stored == saved.params[5],
          "conv_stem.weight's data is not at offset %zu", at);
    b.bytes[at + 5 * sizeof(float) + 3] ^= 0x40;
    const char *damaged = file_in_tmp("damaged.h5");
    write_blob(damaged, b.bytes, b.size);
    CHECK_ERROR(kao_weights_load(&loaded, damaged, NULL, NULL), "damaged.h5: damaged: CRC-32 ");
    CHECK(strstr(kao_last_error(), "kao info --reseal"), "the message does not say how to accept a deliberate change");

    const char *unsealed = file_in_tmp("unsealed.h5");
    unsigned char *block = kao_calloc(1, KAO_H5_SEAL_BYTES, "blank user block");
    memcpy(b.bytes, block, KAO_H5_SEAL_BYTES);
    write_blob(unsealed, b.bytes, b.size);
    CHECK(kao_h5_check_seal(unsealed, &state) == KAO_OK && state == KAO_H5_UNSEALED, "blank user block: %s",
          kao_last_error());
    CHECK(kao_weights_load(&loaded, unsealed, NULL, NULL) == KAO_OK && loaded.params[5] != saved.params[5] &&
              !memcmp(loaded.params, saved.params, 5 * sizeof(float)),
          "HDF5 alone should load the damaged weight unnoticed: %s", kao_last_error());
    CHECK_ERROR(kao_h5_reseal(unsealed), "unsealed.h5: has no kao seal to renew");

    /* A deliberate change, accepted by renewing the seal. */
    CHECK(kao_h5_reseal(damaged) == KAO_OK, "reseal: %s", kao_last_error());
    CHECK(kao_h5_check_seal(damaged, &state) == KAO_OK && state == KAO_H5_SEALED, "after reseal: %s", kao_last_error());
    CHECK(kao_weights_load(&loaded, damaged, NULL, NULL) == KAO_OK && loaded.params[5] != saved.params[5],
          "resealed file: %s", kao_last_error());

    /* Cut short, extended, an unreadable seal. */
    free(b.bytes);
    b = read_blob(good);
    const char *cut = file_in_tmp("cut.h5");
    write_blob(cut, b.bytes, b.size - 16);
    char want[160];
    snprintf(want, sizeof want, "cut.h5: truncated: %zu of its %zu bytes are there", b.size - 16, b.size);
    CHECK_ERROR(kao_weights_load(&loaded, cut, NULL, NULL), want);

    const char *stub = file_in_tmp("stub.h5"); /* cut inside the seal itself */
    write_blob(stub, b.bytes, 100);
    CHECK_ERROR(kao_weights_load(&loaded, stub, NULL, NULL), "stub.h5: truncated: 100 bytes, less than its kao seal's 512");

    const char *longer = file_in_tmp("longer.h5");
    unsigned char *grown = kao_calloc(1, b.size + 1, "grown copy");
    memcpy(grown, b.bytes, b.size);
    write_blob(longer, grown, b.size + 1);
    snprintf(want, sizeof want, "longer.h5: changed: %zu bytes, its seal says %zu", b.size + 1, b.size);
    CHECK_ERROR(kao_weights_load(&loaded, longer, NULL, NULL), want);

    /* Every single flipped bit in the seal's text, and in its zero tail, is refused (as a damaged
     * seal, or by the CRC or length it then gives): none turns the file into an unsealed one that
     * HDF5 would read unchecked. */
    const char *flipped = file_in_tmp("flipped.h5");
    size_t text = strlen((const char *)b.bytes);
    int flips = 0, refused = 0;
    for (size_t i = 0; i < KAO_H5_SEAL_BYTES; i += i < text + 8 ? 1 : 37) {
        for (int bit = 0; bit < 8; bit++, flips++) {
            b.bytes[i] ^= (unsigned char)(1 << bit);
            write_blob(flipped, b.bytes, b.size);
            b.bytes[i] ^= (unsigned char)(1 << bit);
            refused += kao_h5_check_seal(flipped, &state) == KAO_ERR && strstr(kao_last_error(), "flipped.h5: ");
        }
    }
    CHECK(refused == flips, "%d of %d single-bit flips in the seal block refused", refused, flips);

    const char *garbled = file_in_tmp("garbled.h5");
    memcpy(b.bytes + strlen("kao-seal 1\ncrc32 "), "zz", 2);
    write_blob(garbled, b.bytes, b.size);
    CHECK_ERROR(kao_weights_load(&loaded, garbled, NULL, NULL), "garbled.h5: damaged: its kao seal (the first 512 bytes) is unreadable");

    /* A file checked once and changed in place afterwards is read through again, not taken on trust
     * (the reader remembers the last file that matched, by device, inode, size and times). */
    const char *edited = file_in_tmp("edited.h5");
    write_blob(edited, b.bytes, b.size);
    CHECK_ERROR(kao_h5_check_seal(edited, &state), "edited.h5: damaged: its kao seal"); /* b is garbled */
    free(b.bytes);
    b = read_blob(good);
    write_blob(edited, b.bytes, b.size);
    CHECK(kao_h5_check_seal(edited, &state) == KAO_OK && state == KAO_H5_SEALED, "edited.h5: %s", kao_last_error());
    FILE *in_place = fopen(edited, "r+b");
    fseek(in_place, (long)(b.size / 2), SEEK_SET);
    fputc(b.bytes[b.size / 2] ^ 0x01, in_place);
    fclose(in_place);
    CHECK_ERROR(kao_h5_check_seal(edited, &state), "edited.h5: damaged: CRC-32");

    /* The generic reader checks the seal too (checkpoints, embeddings, reference files). */
    kao_h5_file f;
    CHECK_ERROR(kao_h5_open(&f, cut), "cut.h5: truncated");

    free(grown);
    free(block);
    free(b.bytes);
    kao_model_free(&saved);
    kao_model_free(&loaded);
    const char *names[] = {"good.h5",  "damaged.h5", "unsealed.h5", "cut.h5",
                           "stub.h5", "longer.h5",  "garbled.h5",  "edited.h5", "flipped.h5"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) unlink(file_in_tmp(names[i]));
    rmdir(tmp_root);
    return check_summary("test_h5seal");
}
