/* fuzz_weights.c — every reader of a weights or checkpoint file: kao_weights_probe_backbone (which
 * tells the format: kao's HDF5, sealed or not, Keras's HDF5, timm's safetensors), a model built from
 * what it tells and kao_weights_load / kao_weights_list_mismatches into it, kao_trained_info_read
 * and kao_checkpoint_read_info.
 *
 * The seeds (make_seeds.py) are sealed and unsealed files: the mutations of a sealed one test the
 * seal check (h5seal.c), those of an unsealed one reach libhdf5 in the child process (h5sandbox.c)
 * and kao's readers on the copy it sends back. Inputs are not re-sealed here: a file with a
 * matching seal is read by libhdf5 in this process, as one of kao's own, and libhdf5 1.10 crashes
 * on hostile ones within seconds of fuzzing. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "fuzz_common.h"
#include "kao/checkpoint.h"
#include "kao/h5io.h"
#include "kao/model.h"
#include "kao/trained_info.h"
#include "kao/util.h"
#include "kao/weights.h"
#include "kao/weights_source.h"

static void load(const char *path, const kao_arch *arch) {
    static FILE *null;
    if (!null && !(null = fopen("/dev/null", "w"))) abort();
    kao_model m;
    kao_model_create(&m, arch);
    kao_weights_options options = {.allow_head_mismatch = true, .head_seed = 1};
    kao_weights_report report;
    kao_clear_error();
    kao_weights_load(&m, path, &options, &report);
    kao_clear_error();
    kao_weights_list_mismatches(&m, path, NULL, null);
    kao_model_free(&m);
}

/* A file libhdf5 cannot read fails every reader alike, some only at the sandbox's CPU limit: it is
 * opened once first (the sandbox keeps the copy of a file that opens, for the readers). */
static bool opens(const char *path) {
    kao_h5_file f;
    if (kao_weights_open(&f, path, NULL)) return false;
    kao_h5_close(&f);
    return true;
}

static void read_all(const char *path) {
    kao_arch arch;
    bool has_head;
    if (kao_weights_probe_backbone(path, &arch, &has_head) == KAO_OK) load(path, &arch);
    kao_clear_error();
    kao_trained_info info;
    kao_trained_info_read(path, &info);
    kao_clear_error();
    kao_checkpoint_info checkpoint;
    if (kao_checkpoint_read_info(&checkpoint, path) == KAO_OK) kao_checkpoint_info_free(&checkpoint);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[FUZZ_PATH_MAX];
    fuzz_write_new(path, "weights.h5", data, size);
    kao_clear_error();
    if (opens(path)) read_all(path);
    kao_clear_error();
    return 0;
}
