/* kao embed: embeddings of PNG images with a weights file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "kao/embeddings.h"
#include "kao/util.h"

static const char *help =
    "usage: kao embed --weights W.h5 [options] IMAGE|DIR... --out FILE\n"
    "\n"
    "Computes one embedding per PNG image (folders are searched recursively) with the model's\n"
    "forward pass in eval mode and writes them, raw (not L2-normalised), with the image paths.\n"
    "\n"
    "options:\n"
    "  --weights W.h5     weights file (kao's HDF5 layout; see tools/convert_timm.py)\n"
    KAO_CLI_FORWARD_HELP
    "  --out FILE         FILE.h5 (HDF5: embeddings, paths), FILE.npy (+ FILE.npy.paths.txt) or FILE.csv\n"
    "  --quiet            no progress line\n";

int kao_cmd_embed(int argc, char **argv) {
    kao_cli_model_options mo = {0};
    const char *out = NULL;
    kao_cli_forward_options fo = KAO_CLI_FORWARD_DEFAULTS;
    bool quiet = false;
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
        else if (!strcmp(a, "--out") && has_value) out = argv[++i];
        else if (a[0] == '-' && a[1] == '-') {
            kao_cli_usage_error("embed", has_value ? "unknown option '%s'" : "option '%s' needs a value", a);
            goto done;
        } else {
            inputs[num_inputs++] = argv[i];
        }
    }
    if (!mo.weights || !out || num_inputs == 0) {
        kao_cli_usage_error("embed", "needs --weights, --out and at least one image or folder");
        goto done;
    }
    kao_cli_set_threads(fo.threads);

    status = 1;
    char **paths = NULL;
    int count = 0;
    kao_model m;
    if (kao_check_parent_dir(out) || kao_collect_images(&paths, &count, inputs, num_inputs) ||
        kao_cli_forward_size(&fo, mo.weights)) {
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
        kao_embeddings_save(out, kao_embedding_format_for(out), emb, count, m.arch.embedding_dim, paths, &m,
                            fo.height, fo.width)) {
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
