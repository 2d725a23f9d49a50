/* fuzz_onnx_check.c — `kao export --check`: kao_onnx_check on a file (protobuf-c's parser, then
 * kao's checks of the graph and the metadata). */
#include <stdint.h>
#include <stdio.h>

#include "fuzz_common.h"
#include "kao/onnx_export.h"
#include "kao/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int silenced;
    if (!silenced++) fuzz_silence_stdout(); /* the check prints what it read */
    kao_clear_error();
    char path[FUZZ_PATH_MAX];
    fuzz_write(path, "model.onnx", data, size);
    kao_onnx_check(path);
    remove(path);
    return 0;
}
