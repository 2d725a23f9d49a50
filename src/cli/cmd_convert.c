/* kao convert: any weights file kao reads → a sealed kao weights file. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "kao/files.h"
#include "kao/trained_info.h"
#include "kao/util.h"
#include "kao/weights.h"
#include "kao/weights_source.h"

static const char *help =
    "usage: kao convert IN OUT.h5 [--model NAME] [--width-mult X] [--depth-mult Y]\n"
    "\n"
    "Writes the weights in IN, any file kao reads (kao's HDF5, timm's model.safetensors in F32, F16\n"
    "or BF16, Keras's efficientnetv2-*.h5 with or without _notop), as a sealed kao weights file,\n"
    "float32, with the input size and normalisation IN records (a Keras file: Keras's own\n"
    "preprocessing and default size; a safetensors file: timm's pretrained_cfg of the variant).\n"
    "Every tensor is checked first, as kao train --init checks it. A backbone without a classifier\n"
    "(Keras's _notop files) stays a backbone: no head is made up for it. OUT is replaced\n"
    "atomically and may not be IN.\n"
    "\n"
    "options:\n"
    "  --model NAME       architecture, e.g. tf_efficientnetv2_b0 (default: from the file)\n"
    "  --width-mult X     custom channel multiplier (default: the file's or the variant's)\n"
    "  --depth-mult Y     custom depth multiplier\n";

/* Creates m from mo->weights and loads it; *has_head false for a backbone. */
static int load(kao_model *m, bool *has_head, const kao_cli_model_options *mo) {
    kao_arch arch;
    if (kao_cli_model_arch_backbone(&arch, mo, has_head)) return KAO_ERR;
    kao_model_create(m, &arch);
    kao_weights_options backbone = {.allow_head_mismatch = !*has_head};
    if (kao_weights_load(m, mo->weights, &backbone, NULL)) {
        kao_model_free(m);
        return KAO_ERR;
    }
    return KAO_OK;
}

static int save(const kao_model *m, bool has_head, const kao_trained_info *info, const char *path) {
    kao_h5_file f;
    if (kao_h5_create(&f, path)) return KAO_ERR;
    int rc = has_head ? kao_weights_write(&f, NULL, m) : kao_weights_write_backbone(&f, NULL, m);
    if (rc == KAO_OK) rc = kao_trained_info_write(&f, info);
    if (rc == KAO_OK) rc = kao_h5_commit(&f);
    kao_h5_close(&f); /* after a failure: deletes the temporary file */
    return rc;
}

static void print_summary(const char *in, const char *out, const kao_weights_format *format, const kao_arch *a,
                          bool has_head, const kao_trained_info *info) {
    printf("%s: %s (width %.4g, depth %.4g), ", out, a->variant, a->width_mult, a->depth_mult);
    if (has_head) printf("%d-d head", a->embedding_dim);
    else printf("a backbone without a classifier");
    printf(", from %s (%s)\n", in, format->name);
    if (info->input_height > 0) printf("  input size %dx%d\n", info->input_height, info->input_width);
    if (info->has_normalisation)
        printf("  normalisation mean [%.6g, %.6g, %.6g], std [%.6g, %.6g, %.6g]\n", info->mean[0], info->mean[1],
               info->mean[2], info->std[0], info->std[1], info->std[2]);
}

static int convert(const kao_cli_model_options *mo, const char *out) {
    kao_weights_format format;
    kao_h5_file f;
    if (kao_weights_open(&f, mo->weights, &format)) return KAO_ERR;
    kao_h5_close(&f);
    kao_trained_info info;
    kao_model m;
    bool has_head;
    if (kao_trained_info_read(mo->weights, &info) || load(&m, &has_head, mo)) return KAO_ERR;
    int rc = save(&m, has_head, &info, out);
    if (rc == KAO_OK) print_summary(mo->weights, out, &format, &m.arch, has_head, &info);
    kao_model_free(&m);
    return rc;
}

int kao_cmd_convert(int argc, char **argv) {
    kao_cli_model_options mo = {0};
    const char *files[2] = {NULL, NULL};
    int num_files = 0;
    for (int i = 1; i < argc; i++) {
        int r = kao_cli_model_option(&mo, "convert", argc, argv, &i);
        if (r < 0) return 2;
        if (r > 0) continue;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(help, stdout);
            return 0;
        }
        if (argv[i][0] == '-') return kao_cli_usage_error("convert", "unknown option '%s'", argv[i]);
        if (num_files == 2) return kao_cli_usage_error("convert", "takes two files, IN and OUT");
        files[num_files++] = argv[i];
    }
    if (num_files != 2 || mo.weights)
        return kao_cli_usage_error("convert", "takes two files, IN and OUT (and no --weights)");
    if (kao_check_not_input(files[1], &files[0], 1)) /* the same file, also through links */
        return kao_cli_usage_error("convert", "OUT is IN: %s", kao_last_error());
    mo.weights = files[0];
    return convert(&mo, files[1]) ? kao_cli_report_error() : 0;
}
