/* kao embed: embeddings of PNG or JPEG images with a weights file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "kao/embeddings.h"
#include "kao/files.h"
#include "kao/util.h"

static const char *help =
    "usage: kao embed --weights W.h5 [options] IMAGE|DIR... --out FILE\n"
    "\n"
    "Computes one embedding per image (PNG or JPEG: *.png, *.jpg, *.jpeg; folders are searched\n"
    "recursively) with the model's forward pass in eval mode and writes them, raw (not\n"
    "L2-normalised), with the image paths. FILE may not be one of the inputs (the weights, an image).\n"
    "\n"
    "options:\n"
    "  --weights W.h5     weights: kao's HDF5, timm's safetensors or Keras's HDF5 (kao info names it)\n"
    KAO_CLI_FORWARD_HELP
    "  --out FILE         FILE.h5 or .hdf5 (HDF5: embeddings, paths), FILE.npy (+ FILE.npy.paths.txt, one\n"
    "                     path per line: a file name with a line break is refused) or FILE.csv; the\n"
    "                     extension, in any letter case, picks the format, and any other is refused\n"
    "  --follow-symlinks  follow symbolic links that lead out of a folder searched (default: refused)\n"
    "  --quiet            no progress line\n";

/* Neither out nor (.npy) its path list may be an input: the weights or an image. */
static int check_outputs(const char *out, kao_embedding_format format, const char *weights, char **paths,
                         int count) {
    const char **inputs = kao_malloc((size_t)(count + 1) * sizeof *inputs, "inputs");
    inputs[0] = weights;
    for (int i = 0; i < count; i++) inputs[i + 1] = paths[i];
    char list[4200];
    snprintf(list, sizeof list, "%s.paths.txt", out);
    int rc = kao_check_not_input(out, inputs, count + 1);
    if (rc == KAO_OK && format == KAO_EMB_NPY) rc = kao_check_not_input(list, inputs, count + 1);
    free(inputs);
    return rc;
}

int kao_cmd_embed(int argc, char **argv) {
    kao_cli_model_options mo = {0};
    const char *out = NULL;
    kao_cli_forward_options fo = KAO_CLI_FORWARD_DEFAULTS;
    bool quiet = false, follow_symlinks = false;
    char **inputs = kao_malloc((size_t)argc * sizeof *inputs, "arguments");
    int num_inputs = 0, status = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = kao_cli_model_option(&mo, "embed", argc, argv, &i);
        if (r == 0) r = kao_cli_forward_option(&fo, "embed", argc, argv, &i);
        if (r < 0) goto done;
        if (r > 0) continue;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(help, stdout);
            status = 0;
            goto done;
        }
        bool has_value = i + 1 < argc;
        if (!strcmp(a, "--quiet")) quiet = true;
        else if (!strcmp(a, "--follow-symlinks")) follow_symlinks = true;
        else if (!strcmp(a, "--out") && has_value) out = argv[++i];
        else if (a[0] == '-' && a[1] == '-') {
            kao_cli_usage_error("embed", has_value ? "unknown option '%s'" : "option '%s' needs a value", a);
            goto done;
        } else {
            inputs[num_inputs++] = argv[i];
        }
    }
    kao_embedding_format format;
    if (!mo.weights || !out || num_inputs == 0) {
        kao_cli_usage_error("embed", "needs --weights, --out and at least one image or folder");
        goto done;
    }
    if (kao_embedding_format_for(out, &format)) {
        kao_cli_usage_error("embed", "%s", kao_last_error());
        goto done;
    }
    kao_cli_set_threads(fo.threads);

    status = 1;
    char **paths = NULL;
    int count = 0;
    kao_model m;
    if (kao_check_parent_dir(out) || kao_collect_images(&paths, &count, inputs, num_inputs, follow_symlinks) ||
        kao_embeddings_check_paths(out, format, paths, count) || check_outputs(out, format, mo.weights, paths, count) ||
        kao_cli_forward_defaults(&fo, mo.weights)) {
        kao_free_paths(paths, count);
        status = kao_cli_report_error();
        goto done;
    }
    if (kao_cli_load_model(&m, &mo)) {
        kao_free_paths(paths, count);
        status = kao_cli_report_error();
        goto done;
    }
    float *emb = kao_malloc((size_t)count * m.arch.embedding_dim * sizeof(float), "embeddings");
    if (kao_cli_embed_images(emb, &m, &fo, paths, count, !quiet) ||
        kao_embeddings_save(out, format, emb, count, m.arch.embedding_dim, paths, &m, fo.height, fo.width)) {
        status = kao_cli_report_error();
    } else {
        if (!quiet) fprintf(stderr, "wrote %d embeddings of dimension %d to %s\n", count, m.arch.embedding_dim, out);
        status = 0;
    }
    free(emb);
    kao_model_free(&m);
    kao_free_paths(paths, count);
done:
    free(inputs);
    return status;
}
