/* fuzz_safetensors.c — timm's safetensors read as they are downloaded: kao_safetensors_import (the
 * header's length, JSON, dtypes, shapes and offsets; F16/BF16 made float32) into an HDF5 file in
 * memory, then the architecture probe on what it gives. */
#include <stdint.h>
#include <stdio.h>

#include "fuzz_common.h"
#include "kao/h5io.h"
#include "kao/util.h"
#include "kao/weights.h"
#include "kao/weights_source.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    kao_clear_error();
    char path[FUZZ_PATH_MAX], dtypes[32];
    fuzz_write(path, "model.safetensors", data, size);
    kao_h5_file mem;
    if (kao_h5_create_memory(&mem, path) == KAO_OK) {
        kao_arch arch;
        bool has_head;
        if (kao_safetensors_import(&mem, path, dtypes, sizeof dtypes) == KAO_OK)
            kao_weights_probe_backbone_file(&mem, NULL, &arch, &has_head);
        kao_h5_close(&mem);
    }
    remove(path);
    return 0;
}
