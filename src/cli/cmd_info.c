/* kao info: what a weights file holds. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "kao/h5io.h"
#include "kao/metrics.h"
#include "kao/trained_info.h"
#include "kao/util.h"
#include "kao/weights.h"
#include "kao/weights_source.h"

static const char *help =
    "usage: kao info W.h5 [--model NAME] [--width-mult X] [--depth-mult Y]\n"
    "       kao info --reseal FILE.h5\n"
    "\n"
    "Names the format and the architecture of a weights file (kao's HDF5, timm's model.safetensors\n"
    "or Keras's efficientnetv2-*.h5; the architecture from its attributes or its tensor shapes),\n"
    "counts its parameters and checks every tensor against that architecture (or the one --model\n"
    "names): each missing, unexpected or mis-shaped tensor is listed. Exits 1 when the file does\n"
    "not match. A backbone without a classifier (Keras's _notop files) is described as one. Shows the\n"
    "verification thresholds kao train recorded (validation EER and FAR 1e-3; kao verify --threshold).\n"
    "\n"
    "Every HDF5 file kao writes carries a seal (its length and CRC-32, in the HDF5 user block), and\n"
    "kao refuses a file whose contents no longer match it. --reseal renews the seal of a kao file\n"
    "that another program (h5py in r+ mode, say) changed on purpose, so that kao reads it again.\n";

static void print_summary(const kao_model *m, const char *path, const kao_weights_format *format, bool has_head) {
    const kao_arch *a = &m->arch;
    int stages[KAO_MAX_STAGES] = {0};
    for (int i = 0; i < a->num_blocks; i++) stages[a->blocks[i].stage]++;
    printf("file:          %s\n", path);
    printf("format:        %s\n", format->name);
    printf("architecture:  %s (width %.4g, depth %.4g)\n", a->variant, a->width_mult, a->depth_mult);
    printf("blocks:        %d in %d stages (", a->num_blocks, a->num_stages);
    for (int s = 0; s < a->num_stages; s++) printf("%s%d", s ? ", " : "", stages[s]);
    printf(")\nstem/features: %d / %d channels\n", a->stem_ch, a->num_features);
    size_t head = (size_t)a->embedding_dim * a->num_features + (size_t)a->embedding_dim;
    if (has_head) {
        printf("embedding:     %d\n", a->embedding_dim);
        printf("parameters:    %zu (%zu in the backbone, %zu in the embedding head)\n", kao_model_param_count(m),
               kao_model_param_count(m) - head, head);
    } else {
        printf("embedding:     none: a backbone without a classifier, for kao train --init (which adds a head)\n");
        printf("parameters:    %zu, all in the backbone\n", kao_model_param_count(m) - head);
    }
    printf("BN layers:     %d, trained for %lld steps\n", m->num_bn, (long long)m->bn_batches_tracked[0]);
    printf("check:         every tensor present with the expected shape\n");
    kao_h5_seal_state seal;
    bool hdf5 = format->kind == KAO_WEIGHTS_KAO_SEALED || format->kind == KAO_WEIGHTS_HDF5;
    if (hdf5 && kao_h5_check_seal(path, &seal) == KAO_OK)
        printf("seal:          %s\n", seal == KAO_H5_SEALED ? "length and CRC-32 match (written by kao)"
                                                             : "none (not written by kao): read by libhdf5 in a child process");
}

/* The verification thresholds kao train recorded (trained_info.h), for kao verify --threshold. */
static void print_thresholds(const kao_trained_info *t) {
    if (!t->has_thresholds) {
        printf("thresholds:    none recorded\n");
        return;
    }
    printf("thresholds:    EER %.6f, FAR 1e-3 %.6f (validation, %lld different pairs%s)\n", t->threshold_eer,
           t->threshold_far1e3, (long long)t->threshold_diff_pairs,
           t->threshold_diff_pairs < KAO_FAR_1E3_MIN_PAIRS ? "; under 1000: the FAR 1e-3 one is the threshold of no false accept" : "");
}

/* The exit status: 0 when the file matches its architecture, 1 when it does not or cannot be read. */
static int describe(const kao_cli_model_options *mo) {
    kao_arch arch;
    bool has_head;
    if (kao_cli_model_arch_backbone(&arch, mo, &has_head)) return kao_cli_report_error();
    kao_weights_options backbone = {.allow_head_mismatch = !has_head}; /* no head to check in a backbone */
    kao_model m;
    kao_model_create(&m, &arch);
    int mismatches = kao_weights_list_mismatches(&m, mo->weights, &backbone, stdout);
    if (mismatches != 0) {
        kao_model_free(&m);
        if (mismatches < 0) return kao_cli_report_error();
        fprintf(stderr, "kao: error: %s: %d tensor%s do not match %s (width %.4g, depth %.4g), listed above\n",
                mo->weights, mismatches, mismatches == 1 ? "" : "s", arch.variant, arch.width_mult, arch.depth_mult);
        return 1;
    }
    kao_weights_format format;
    kao_h5_file f;
    kao_trained_info trained;
    int rc = kao_weights_load(&m, mo->weights, &backbone, NULL);
    if (rc == KAO_OK) rc = kao_weights_open(&f, mo->weights, &format);
    if (rc == KAO_OK) {
        kao_h5_close(&f);
        rc = kao_trained_info_read(mo->weights, &trained);
    }
    if (rc == KAO_OK) {
        print_summary(&m, mo->weights, &format, has_head);
        print_thresholds(&trained);
    }
    kao_model_free(&m);
    return rc == KAO_OK ? 0 : kao_cli_report_error();
}

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
    return describe(&mo);
}
