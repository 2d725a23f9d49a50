/* kao export: weights (HDF5) → ONNX model; kao export --check: inspect an ONNX file. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "kao/files.h"
#include "kao/model.h"
#include "kao/onnx_export.h"
#include "kao/trained_info.h"
#include "kao/util.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: kao export --weights W.h5 --out model.onnx [options]\n"
            "       kao export --check model.onnx\n"
            "\n"
            "Writes the embedding network as an ONNX model for inference: input `input`\n"
            "float32 [batch, 3, H, W] (NCHW, RGB, normalised with the mean/std the weights record,\n"
            "else ImageNet's: metadata kao.mean, kao.std), output `embedding` float32 [batch, D];\n"
            "BatchNorm folded into the convolutions; metadata describing the model. --check\n"
            "re-reads a file, validates every node against the ops kao emits (attributes, input\n"
            "counts, shapes) and prints its signature and metadata with control characters\n"
            "escaped (exit status 1, \"not a kao export\", for anything else).\n"
            "\n"
            "options:\n"
            "  --weights FILE        weights: kao's HDF5, timm's safetensors or Keras's HDF5\n"
            "  --model NAME          architecture (default: the file's `architecture` attribute)\n"
            "  --width-mult X        channel multiplier (default: the file's, else the variant's)\n"
            "  --depth-mult Y        depth multiplier (default: the file's, else the variant's)\n"
            "  --size H[xW]          input size the model is exported for, 8..4096 (default: the size\n"
            "                        the weights were trained at, as kao train records it; else 224).\n"
            "                        A size other than the recorded one is refused without --force\n"
            "  --force               export at a --size other than the one the weights record\n"
            "  --opset 13|17         ONNX opset: 13 (IR 7, onnxruntime >= 1.6, default) or 17\n"
            "  --normalize           L2-normalise the embedding inside the model\n"
            "  --signature TEXT      free text stored as metadata `signature`\n"
            "  --num-identities N    identities trained on (metadata kao.num_identities; default: the\n"
            "                        weights file's, as kao train records it)\n"
            "  --split-hash TEXT     train/validation split id (metadata kao.split_hash; default: the\n"
            "                        weights file's)\n"
            "  --out FILE            the ONNX file to write (replaced atomically; not the weights file)\n"
            "  --check FILE          validate FILE as a kao export and print its signature and metadata\n");
}

typedef struct {
    kao_cli_model_options model; /* --weights, --model, --width-mult, --depth-mult */
    const char *out, *check;
    bool size_given, force;
    kao_onnx_options onnx;
    kao_trained_info trained; /* what the weights file records, for the defaults */
} export_args;

/* Returns 0, or the exit status of a usage error (2, message printed). */
static int parse_args(export_args *a, int argc, char **argv) {
    memset(a, 0, sizeof *a);
    kao_onnx_options_init(&a->onnx);
    for (int i = 1; i < argc; i++) {
        int r = kao_cli_model_option(&a->model, "export", argc, argv, &i);
        if (r < 0) return 2;
        if (r > 0) continue;
        const char *flag = argv[i];
        if (!strcmp(flag, "--normalize")) {
            a->onnx.l2_normalize = true;
            continue;
        }
        if (!strcmp(flag, "--force")) {
            a->force = true;
            continue;
        }
        if (i + 1 >= argc) return kao_cli_usage_error("export", "%s needs a value", flag);
        const char *v = argv[++i];
        bool ok = true;
        if (!strcmp(flag, "--out")) a->out = v;
        else if (!strcmp(flag, "--check")) a->check = v;
        else if (!strcmp(flag, "--signature")) a->onnx.signature = v;
        else if (!strcmp(flag, "--split-hash")) a->onnx.split_hash = v;
        else if (!strcmp(flag, "--size")) ok = a->size_given = kao_cli_parse_size(v, &a->onnx.input_h, &a->onnx.input_w);
        else if (!strcmp(flag, "--opset")) ok = kao_cli_parse_int(v, 13, 17, &a->onnx.opset) &&
                                                (a->onnx.opset == 13 || a->onnx.opset == 17);
        else if (!strcmp(flag, "--num-identities")) ok = kao_cli_parse_int(v, 1, 1 << 30, &a->onnx.num_identities);
        else return kao_cli_usage_error("export", "unknown option '%s'", flag);
        if (!ok) return kao_cli_usage_error("export", "%s: bad value '%s'", flag, v);
    }
    if (a->check && (a->model.weights || a->out))
        return kao_cli_usage_error("export", "--check takes no --weights or --out");
    if (!a->check && (!a->model.weights || !a->out))
        return kao_cli_usage_error("export", "needs --weights and --out, or --check FILE");
    return 0;
}

/* The options not given, from what the weights file records (trained_info.h). */
static int apply_trained_defaults(export_args *a) {
    if (kao_trained_info_read(a->model.weights, &a->trained)) return KAO_ERR;
    const kao_trained_info *t = &a->trained;
    kao_trained_info_normalisation(t, a->onnx.mean, a->onnx.std);
    if (!a->size_given && t->input_height > 0) {
        a->onnx.input_h = t->input_height;
        a->onnx.input_w = t->input_width;
    } else if (!a->size_given) {
        fprintf(stderr, "note: %s records no input size; exporting for %dx%d (--size chooses another)\n",
                a->model.weights, a->onnx.input_h, a->onnx.input_w);
    } else if (t->input_height > 0 && (a->onnx.input_h != t->input_height || a->onnx.input_w != t->input_width) &&
               !a->force) {
        /* A network's embeddings are only as good as at the size it learnt (and "same" padding is
         * baked in for the export's size): a mismatch is a mistake far more often than a wish. */
        return kao_fail("%s: trained at %dx%d; an export for %dx%d would give embeddings the network never "
                        "learnt (export at %dx%d, or add --force)", a->model.weights, t->input_height,
                        t->input_width, a->onnx.input_h, a->onnx.input_w, t->input_height, t->input_width);
    }
    if (a->onnx.num_identities <= 0) a->onnx.num_identities = a->trained.num_identities;
    if (!a->onnx.split_hash || !a->onnx.split_hash[0]) a->onnx.split_hash = a->trained.split_hash;
    a->onnx.has_thresholds = t->has_thresholds;
    a->onnx.threshold_eer = t->threshold_eer;
    a->onnx.threshold_far1e3 = t->threshold_far1e3;
    return KAO_OK;
}

/* Loads the weights and writes the ONNX file; KAO_ERR with the message recorded. */
static int run_export(export_args *a) {
    /* The output folder is checked before the (slow) load, so a typo costs nothing. */
    const char *weights = a->model.weights;
    if (kao_check_parent_dir(a->out) != KAO_OK || kao_check_not_input(a->out, &weights, 1) != KAO_OK ||
        apply_trained_defaults(a) != KAO_OK)
        return KAO_ERR;
    double t0 = kao_now_seconds();
    kao_model m;
    if (kao_cli_load_model(&m, &a->model) != KAO_OK) return KAO_ERR;
    double t1 = kao_now_seconds();
    int rc = kao_onnx_export(&m, a->out, &a->onnx);
    double t2 = kao_now_seconds();
    if (rc == KAO_OK) {
        struct stat st;
        double mb = stat(a->out, &st) == 0 ? st.st_size / 1e6 : 0;
        printf("%s: %s (width %g, depth %g, embedding %d), %zu parameters, input %dx%d, opset %d%s: "
               "%.1f MB in %.2f s (loading %.2f s)\n",
               a->out, m.arch.variant, m.arch.width_mult, m.arch.depth_mult, m.arch.embedding_dim,
               kao_model_param_count(&m), a->onnx.input_h, a->onnx.input_w, a->onnx.opset,
               a->onnx.l2_normalize ? ", L2-normalised" : "", mb, t2 - t1, t1 - t0);
    }
    kao_model_free(&m);
    return rc;
}

int kao_cmd_export(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
    export_args a;
    int status = parse_args(&a, argc, argv);
    if (status) return status;
    if ((a.check ? kao_onnx_check(a.check) : run_export(&a)) != KAO_OK) return kao_cli_report_error();
    return 0;
}
