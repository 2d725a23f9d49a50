/* fuzz_pairs.c — the pairs-file reader (kao_pairs_from_file), against known paths (an embeddings
 * file's) and against a root folder of images. */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_common.h"
#include "kao/embeddings.h"
#include "kao/util.h"
#include "kao/verify.h"

/* The images both modes know: the names make_seeds.py's pairs files use. */
static char *known[] = {"lfw/Aaron/Aaron_0001.png", "lfw/Aaron/Aaron_0002.jpg", "lfw/Bea/Bea_0001.jpeg",
                        "lfw/Bea/Bea_0002.png",     "x/Bea/Bea_0002.png",       "lfw/太郎/太郎_0001.png",
                        "lfw/太郎/太郎_0012.png"};
#define NUM_KNOWN ((int)(sizeof known / sizeof *known))

static void read_pairs(const char *path, const char *root) {
    kao_clear_error();
    kao_pair *pairs;
    char **images;
    int count, num_images;
    if (kao_pairs_from_file(&pairs, &count, &images, &num_images, path, root, root ? NULL : known,
                            root ? 0 : NUM_KNOWN, false))
        return;
    KAO_ASSERT(count > 0, "pairs read");
    for (int i = 0; i < count; i++)
        KAO_ASSERT(pairs[i].a >= 0 && pairs[i].a < num_images && pairs[i].b >= 0 && pairs[i].b < num_images,
                   "pair %d indexes the images", i);
    free(pairs);
    if (images) kao_free_paths(images, num_images);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char root[FUZZ_PATH_MAX];
    if (!root[0]) {
        for (int i = 0; i < NUM_KNOWN; i++) fuzz_touch(known[i]);
        fuzz_path(root, "lfw");
    }
    char path[FUZZ_PATH_MAX];
    fuzz_write(path, "pairs.txt", data, size);
    read_pairs(path, NULL);
    read_pairs(path, root);
    remove(path);
    return 0;
}
