/* fuzz_keras.c — Keras's EfficientNetV2 HDF5 weights: kao_h5_open (no seal: libhdf5 reads the file
 * in a child, h5sandbox.c), kao_keras_weights_group, kao_keras_import (layer names, weight names,
 * layouts) into an HDF5 file in memory, then the architecture probe on what it gives. */
#include <stdint.h>
#include <stdio.h>

#include "fuzz_common.h"
#include "kao/h5io.h"
#include "kao/util.h"
#include "kao/weights.h"
#include "kao/weights_source.h"

static void import(const kao_h5_file *src, const char *group) {
    kao_h5_file mem;
    char model[64];
    if (kao_h5_create_memory(&mem, src->path)) return;
    kao_arch arch;
    bool has_head;
    if (kao_keras_import(&mem, src, group, model, sizeof model) == KAO_OK)
        kao_weights_probe_backbone_file(&mem, NULL, &arch, &has_head);
    kao_h5_close(&mem);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    kao_clear_error();
    char path[FUZZ_PATH_MAX];
    fuzz_write_new(path, "keras.h5", data, size);
    kao_h5_file src;
    if (kao_h5_open(&src, path) == KAO_OK) {
        const char *group = kao_keras_weights_group(&src);
        if (group) import(&src, group);
        kao_h5_close(&src);
    }
    return 0;
}
