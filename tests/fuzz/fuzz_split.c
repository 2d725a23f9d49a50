/* fuzz_split.c — the split manifest reader (kao_split_read) against a small data set. The data set
 * is the one tests/fuzz/make_seeds.py writes its manifests for. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "fuzz_common.h"
#include "kao/dataset.h"
#include "kao/split.h"
#include "kao/util.h"

static const char *const images[] = {"data/a/1.png", "data/a/2.jpg",   "data/a/3.PNG",   "data/b/1.png",
                                     "data/b/2.png", "data/名前/1.png", "data/名前/2.jpeg"};

static const kao_dataset *dataset(void) {
    static kao_dataset ds;
    static char root[FUZZ_PATH_MAX];
    if (root[0]) return &ds;
    for (size_t i = 0; i < sizeof images / sizeof *images; i++) fuzz_touch(images[i]);
    fuzz_path(root, "data");
    kao_dataset_options opt = {.min_images = 1, .max_images = 0, .strict = true};
    KAO_ASSERT(kao_dataset_scan(&ds, root, &opt) == KAO_OK, "%s", kao_last_error());
    return &ds;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const kao_dataset *ds = dataset();
    kao_clear_error();
    char path[FUZZ_PATH_MAX];
    fuzz_write(path, "split.tsv", data, size);
    kao_split s;
    if (kao_split_read(&s, ds, path) == KAO_OK)
        KAO_ASSERT(s.num_train + s.num_val == ds->num_images, "every image on one side");
    kao_split_free(&s); /* after a failure too, as kao train does */
    remove(path);
    return 0;
}
