/* weights_copy_tool IN.h5 OUT.h5 — kao's side of test_convert_timm.py: tell IN's architecture
 * (kao_weights_probe), load it strictly into a fresh model and save it to OUT. */
#include <stdio.h>

#include "kao/util.h"
#include "kao/weights.h"

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: weights_copy_tool IN.h5 OUT.h5\n");
        return 2;
    }
    kao_arch arch;
    if (kao_weights_probe(argv[1], &arch)) goto fail;
    kao_model m;
    kao_model_create(&m, &arch);
    kao_weights_report r;
    int rc = kao_weights_load(&m, argv[1], NULL, &r);
    if (rc == KAO_OK) rc = kao_weights_save(&m, argv[2]);
    if (rc == KAO_OK)
        printf("%s: %s (width %g, depth %g), %d-d head: %d tensors, %d counters -> %s\n", argv[1],
               arch.variant, arch.width_mult, arch.depth_mult, arch.embedding_dim, r.tensors_loaded,
               r.counters_loaded, argv[2]);
    kao_model_free(&m);
    if (rc == KAO_OK) return 0;
fail:
    fprintf(stderr, "weights_copy_tool: error: %s\n", kao_last_error());
    return 1;
}
