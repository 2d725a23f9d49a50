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
    "  --model NAME       architecture, e.g. tf_efficientnetv2_b0 (default: from the file)\n"
    "  --width-mult X     custom channel multiplier (default: the file's or the variant's)\n"
    "  --depth-mult Y     custom depth multiplier\n"
    "  --size H[xW]       input size; images of another size are resized bilinearly (default 224)\n"
    "  --batch N          images per forward pass (default 32)\n"
    "  --threads N        CPU threads (default: all cores)\n"
    "  --out FILE         FILE.h5 (HDF5: embeddings, paths), FILE.npy (+ FILE.npy.paths.txt) or FILE.csv\n"
    "  --quiet            no progress line\n";

int kao_cmd_embed(int argc, char **argv) {
    kao_cli_model_options mo = {0};
    const char *out = NULL;
    int height = 224, width = 224, batch = 32, threads = 0;
    bool quiet = false;
    char **inputs = kao_malloc((size_t)argc * sizeof *inputs, "arguments");
    int num_inputs = 0, status = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = kao_cli_model_option(&mo, "embed", argc, argv, &i);
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
        else if (!strcmp(a, "--size") && has_value) {
            if (!kao_cli_parse_size(argv[++i], &height, &width)) {
                kao_cli_usage_error("embed", "--size wants H or HxW between 8 and 4096, got '%s'", argv[i]);
                goto done;
            }
        } else if ((!strcmp(a, "--batch") || !strcmp(a, "--threads")) && has_value) {
            int *target = !strcmp(a, "--batch") ? &batch : &threads;
            if (!kao_cli_parse_int(argv[++i], 1, 4096, target)) {
                kao_cli_usage_error("embed", "%s wants a positive integer, got '%s'", a, argv[i]);
                goto done;
            }
        } else if (a[0] == '-' && a[1] == '-') {
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
    kao_cli_set_threads(threads);

    status = 1;
    char **paths = NULL;
    int count = 0;
    kao_model m;
    if (kao_check_parent_dir(out) || kao_collect_images(&paths, &count, inputs, num_inputs)) {
        status = kao_cli_report_error();
        goto done;
    }
    if (kao_cli_load_model(&m, &mo)) {
        kao_free_paths(paths, count);
        status = kao_cli_report_error();
        goto done;
    }
    float *emb = kao_malloc((size_t)count * m.arch.embedding_dim * sizeof(float), "embeddings");
    if (kao_embed_images(emb, &m, paths, count, height, width, batch, !quiet) ||
        kao_embeddings_save(out, kao_embedding_format_for(out), emb, count, m.arch.embedding_dim, paths, &m,
                            height, width)) {
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
