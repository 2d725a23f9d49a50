/* A damaged HDF5 file on which libhdf5 1.10 loops for ever (tests/data/hdf5_loop.h5, 52 KB, found by
 * tests/fuzz/fuzz_weights.c): its reader in the child process (src/h5sandbox.c) is stopped by its
 * CPU-time limit, 2 s for so small a file, with one message; it used to take the alarm's 120 s. */
#include "check.h"

#include <string.h>

int main(void) {
    kao_h5_file f;
    double start = kao_now_seconds();
    int rc = kao_h5_open(&f, "tests/data/hdf5_loop.h5");
    double seconds = kao_now_seconds() - start;
    CHECK(rc == KAO_ERR && strstr(kao_last_error(), "more than 2 s of CPU time"), "open: %s", kao_last_error());
    CHECK(seconds < 60, "the child was stopped after %.1f s", seconds);
    if (rc == KAO_OK) kao_h5_close(&f);
    return check_summary("test_h5_sandbox_cpu");
}
