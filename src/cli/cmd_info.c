/* kao info: what a weights file holds. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "kao/h5io.h"
#include "kao/util.h"
#include "kao/weights.h"

static const char *help =
    "usage: kao info W.h5 [--model NAME] [--width-mult X] [--depth-mult Y]\n"
    "       kao info --reseal FILE.h5\n"
    "\n"
    "Names the architecture of a weights file (from its attributes or its tensor shapes), counts\n"
    "its parameters and checks every tensor against that architecture (or the one --model names):\n"
    "each missing, unexpected or mis-shaped tensor is listed. Exits 1 when the file does not match.\n"
    "\n"
    "Every HDF5 file kao writes carries a seal (its length and CRC-32, in the HDF5 user block), and\n"
    "kao refuses a file whose contents no longer match it. --reseal renews the seal of a kao file\n"
    "that another program (h5py in r+ mode, say) changed on purpose, so that kao reads it again.\n";

int kao_cmd_info(int argc, char **argv) {
    kao_cli_model_options mo = {0};
    for (int i = 1; i < argc; i++) {
        int r = kao_cli_model_option(&mo, "info", argc, argv, &i);
        if (r < 0) return 2;
        if (r > 0) continue;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(help, stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--reseal")) {
            if (i != 1 || argc != 3) return kao_cli_usage_error("info", "--reseal takes one file and nothing else");
            if (kao_h5_reseal(argv[i + 1])) return kao_cli_report_error();
            printf("%s: sealed for its present contents\n", argv[i + 1]);
            return 0;
        }
        if (argv[i][0] == '-') return kao_cli_usage_error("info", "unknown option '%s'", argv[i]);
        if (mo.weights) return kao_cli_usage_error("info", "one weights file at a time");
        mo.weights = argv[i];
    }
    if (!mo.weights) return kao_cli_usage_error("info", "needs a weights file");

    kao_arch arch;
    if (kao_cli_model_arch(&arch, &mo)) return kao_cli_report_error();
    kao_model m;
    kao_model_create(&m, &arch);
    int mismatches = kao_weights_list_mismatches(&m, mo.weights, stdout);
    if (mismatches != 0) {
        kao_model_free(&m);
        if (mismatches < 0) return kao_cli_report_error();
        fprintf(stderr, "kao: error: %s: %d tensor%s do not match %s (width %.4g, depth %.4g), listed above\n",
                mo.weights, mismatches, mismatches == 1 ? "" : "s", arch.variant, arch.width_mult, arch.depth_mult);
        return 1;
    }
    if (kao_weights_load(&m, mo.weights, NULL, NULL)) {
        kao_model_free(&m);
        return kao_cli_report_error();
    }
    const kao_arch *a = &m.arch;
    int stages[KAO_MAX_STAGES] = {0};
    for (int i = 0; i < a->num_blocks; i++) stages[a->blocks[i].stage]++;
    printf("file:          %s\n", mo.weights);
    printf("architecture:  %s (width %.4g, depth %.4g)\n", a->variant, a->width_mult, a->depth_mult);
    printf("blocks:        %d in %d stages (", a->num_blocks, a->num_stages);
    for (int s = 0; s < a->num_stages; s++) printf("%s%d", s ? ", " : "", stages[s]);
    printf(")\nstem/features: %d / %d channels\n", a->stem_ch, a->num_features);
    printf("embedding:     %d\n", a->embedding_dim);
    size_t head = (size_t)a->embedding_dim * a->num_features + (size_t)a->embedding_dim;
    printf("parameters:    %zu (%zu in the backbone, %zu in the embedding head)\n", kao_model_param_count(&m),
           kao_model_param_count(&m) - head, head);
    printf("BN layers:     %d, trained for %lld steps\n", m.num_bn, (long long)m.bn_batches_tracked[0]);
    printf("check:         every tensor present with the expected shape\n");
    kao_h5_seal_state seal;
    if (kao_h5_check_seal(mo.weights, &seal) == KAO_OK)
        printf("seal:          %s\n", seal == KAO_H5_SEALED ? "length and CRC-32 match (written by kao)"
                                                             : "none (not written by kao): HDF5's own checks only");
    kao_model_free(&m);
    return 0;
}
