/* kao verify: same-person decisions and verification metrics over pairs of face images. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "kao/embeddings.h"
#include "kao/files.h"
#include "kao/h5io.h"
#include "kao/metrics.h"
#include "kao/plot.h"
#include "kao/trained_info.h"
#include "kao/util.h"
#include "kao/verify.h"

static const char *help =
    "usage: kao verify --weights W.h5 [options] DIR\n"
    "       kao verify --weights W.h5 [options] --pairs PAIRS.txt ROOT\n"
    "       kao verify --embeddings E.h5 [options] [--pairs PAIRS.txt]\n"
    "\n"
    "Embeds face images, scores pairs of them by cosine similarity and decides \"same person\" when\n"
    "the score is >= the threshold, as the original inference script did. Prints one line per pair,\n"
    "    image1, image2, True|False, <percentage>%, <cosine>, same|different\n"
    "(the original's four fields, then the cosine and whether the identities really match; the\n"
    "percentage is the original's -23.71x^2 + 49.98x + 73.69), then a summary: pairs, accuracy at the\n"
    "threshold, TP/FP/TN/FN, ROC AUC, EER and its threshold, TAR at FAR 1e-2 and 1e-3, the threshold at\n"
    "FAR 1e-3 (the lowest with at most 1 false accept in 1000 different pairs; with fewer than 1000 the\n"
    "threshold of no false accept, and said so), and the threshold of best balanced accuracy (the mean\n"
    "of the true-accept and true-reject rates) with that accuracy.\n"
    "\n"
    "Pairs:\n"
    "  DIR                PNG or JPEG images (*.png, *.jpg, *.jpeg) named <identity>_<n>.png (or .jpg)\n"
    "                     in one folder (identity: the name up to the last underscore), or one\n"
    "                     sub-folder per identity; every pair of images\n"
    "  --pairs FILE       LFW-style pairs: lines 'name n1 n2' (same) or 'name1 n1 name2 n2'; the images\n"
    "                     are ROOT/<name>/<name>_<n as 4 digits> with .png, .jpg or .jpeg, whichever\n"
    "                     exists, in that order (with --embeddings: the path that ends in\n"
    "                     <name>/<name>_NNNN.png, .jpg or .jpeg). A name holds no '/' and is not '.'\n"
    "                     or '..': the images stay inside ROOT. Lines of at most 8192 bytes\n"
    "\n"
    "options:\n"
    "  --weights W.h5     weights: kao's HDF5, timm's safetensors or Keras's HDF5 (kao info names it)\n"
    KAO_CLI_FORWARD_HELP
    "  --embeddings E.h5  use precomputed embeddings (as `kao embed --out E.h5` writes them) instead of\n"
    "                     images and weights\n"
    "  --layout L         auto|names|folders: identity from the file name or from the folder holding\n"
    "                     the image (default auto: names when all images are in one folder; a pairs\n"
    "                     file names the identities itself)\n"
    "  --same-per-identity N\n"
    "                     at most N same-identity pairs per identity, sampled uniformly among its pairs\n"
    "                     (default 0: all; kao train's validation: verify.same_pairs_per_identity)\n"
    "  --diff-per-same R  R different-identity pairs per same-identity pair, sampled uniformly among all\n"
    "                     different-identity pairs (default 0: all; kao train: verify.diff_pairs_per_same)\n"
    "  --max-pairs N      at most N pairs: the same-identity pairs, and different-identity pairs sampled\n"
    "                     at random up to N (default 1000000; 0: no limit)\n"
    "  --seed S           seed of that sampling (default 0; kao train uses train.seed)\n"
    "  --threshold T      cosine threshold of \"same person\" (default 0.4), or eer or far1e-3: the\n"
    "                     threshold kao train measured on its validation pairs and recorded in the\n"
    "                     weights file (needs --weights; kao info shows them)\n"
    "  --sort KEY         name|score: order of the pair lines; score: ascending (default: as built:\n"
    "                     by image, a folder's images by name and an embeddings file's in its order,\n"
    "                     or the pairs file's order)\n"
    "  --follow-symlinks  follow symbolic links that lead out of DIR or ROOT (default: refused)\n"
    "  --pairs-out F.tsv  write the pair lines to F.tsv (tab-separated, with a header) instead of stdout\n"
    "  --no-pairs         print only the summary\n"
    "  --roc F.png        plot the ROC curve: true-accept rate over false-accept rate on a log axis\n"
    "                     (decades from 1e-4, or lower to the smallest FAR, to 1), the EER point and TAR\n"
    "                     at FAR 1e-3 and 1e-2 marked; 640x480, SVG when F ends in .svg, else PNG\n"
    "  --roc-csv F.csv    the ROC's points for re-plotting: a header far,tar,threshold, then one line per\n"
    "                     distinct score in increasing FAR (scikit-learn's roc_curve(drop_intermediate=\n"
    "                     False), to 17 digits: exact as doubles; the first point's threshold is inf)\n"
    "  --hist F.png       plot histograms of same- and different-identity scores (640x480; SVG when F\n"
    "                     ends in .svg, else PNG)\n"
    "  --quiet            no progress line\n"
    "No output may be one of the inputs (the weights, the embeddings, the pairs file, an image).\n";

typedef struct {
    kao_cli_model_options model;
    kao_cli_forward_options forward;
    const char *embeddings, *pairs_file, *input, *pairs_out, *roc, *roc_csv, *hist;
    kao_layout layout;
    kao_pair_sort sort;
    kao_pair_sampling sampling;
    const char *threshold_name; /* "eer", "far1e-3": from the weights file; NULL: threshold */
    double threshold;
    bool no_pairs, quiet, follow_symlinks;
} options;

/* Returns 0 to go on, else the exit status (help printed: 0; usage error: 2). */
static int parse(options *o, int argc, char **argv) {
    *o = (options){.forward = KAO_CLI_FORWARD_DEFAULTS, .sampling = {.max_pairs = 1000000}, .threshold = 0.4};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = kao_cli_model_option(&o->model, "verify", argc, argv, &i);
        if (r == 0) r = kao_cli_forward_option(&o->forward, "verify", argc, argv, &i);
        if (r < 0) return 2;
        if (r > 0) continue;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(help, stdout);
            return -1;
        }
        bool has_value = i + 1 < argc;
        const char *v = has_value ? argv[i + 1] : NULL;
        if (!strcmp(a, "--quiet")) o->quiet = true;
        else if (!strcmp(a, "--no-pairs")) o->no_pairs = true;
        else if (!strcmp(a, "--follow-symlinks")) o->follow_symlinks = true;
        else if (a[0] == '-' && a[1] == '-' && !has_value)
            return kao_cli_usage_error("verify", "option '%s' needs a value", a);
        else if (!strcmp(a, "--embeddings")) o->embeddings = argv[++i];
        else if (!strcmp(a, "--pairs")) o->pairs_file = argv[++i];
        else if (!strcmp(a, "--pairs-out")) o->pairs_out = argv[++i];
        else if (!strcmp(a, "--roc")) o->roc = argv[++i];
        else if (!strcmp(a, "--roc-csv")) o->roc_csv = argv[++i];
        else if (!strcmp(a, "--hist")) o->hist = argv[++i];
        else if (!strcmp(a, "--max-pairs")) {
            int n;
            if (!kao_cli_parse_int(argv[++i], 0, 2000000000, &n))
                return kao_cli_usage_error("verify", "--max-pairs wants an integer >= 0, got '%s'", v);
            o->sampling.max_pairs = n;
        } else if (!strcmp(a, "--same-per-identity")) {
            if (!kao_cli_parse_int(argv[++i], 0, 100000000, &o->sampling.same_per_identity))
                return kao_cli_usage_error("verify", "--same-per-identity wants an integer >= 0, got '%s'", v);
        } else if (!strcmp(a, "--diff-per-same")) {
            if (!kao_cli_parse_double(argv[++i], 0, 1e6, &o->sampling.diff_per_same))
                return kao_cli_usage_error("verify", "--diff-per-same wants a number in [0, 1e6], got '%s'", v);
        } else if (!strcmp(a, "--seed")) {
            int s;
            if (!kao_cli_parse_int(argv[++i], 0, 2147483647, &s))
                return kao_cli_usage_error("verify", "--seed wants an integer >= 0, got '%s'", v);
            o->sampling.seed = (uint64_t)s;
        } else if (!strcmp(a, "--threshold")) {
            i++;
            if (!strcmp(v, "eer") || !strcmp(v, "far1e-3")) o->threshold_name = v;
            else if (!kao_cli_parse_double(v, -1, 1, &o->threshold))
                return kao_cli_usage_error("verify", "--threshold wants a cosine in [-1, 1], eer or far1e-3, got '%s'", v);
        } else if (!strcmp(a, "--layout")) {
            i++;
            if (!strcmp(v, "auto")) o->layout = KAO_LAYOUT_AUTO;
            else if (!strcmp(v, "names")) o->layout = KAO_LAYOUT_NAMES;
            else if (!strcmp(v, "folders")) o->layout = KAO_LAYOUT_FOLDERS;
            else return kao_cli_usage_error("verify", "--layout wants auto, names or folders, got '%s'", v);
        } else if (!strcmp(a, "--sort")) {
            i++;
            if (!strcmp(v, "name")) o->sort = KAO_SORT_NAME;
            else if (!strcmp(v, "score")) o->sort = KAO_SORT_SCORE;
            else return kao_cli_usage_error("verify", "--sort wants name or score, got '%s'", v);
        } else if (a[0] == '-' && a[1] == '-') {
            return kao_cli_usage_error("verify", "unknown option '%s'", a);
        } else if (o->input) {
            return kao_cli_usage_error("verify", "one folder at a time (got '%s' and '%s')", o->input, a);
        } else {
            o->input = a;
        }
    }
    if (o->embeddings && (o->input || o->model.weights))
        return kao_cli_usage_error("verify", "--embeddings replaces the images and the weights: give no %s",
                                   o->input ? "folder" : "--weights");
    if (!o->embeddings && (!o->model.weights || !o->input))
        return kao_cli_usage_error("verify", "needs --weights and a folder (or --embeddings)");
    if (o->threshold_name && o->embeddings)
        return kao_cli_usage_error("verify", "--threshold %s is read from a weights file: give a number with --embeddings",
                                   o->threshold_name);
    return 0;
}

/* --threshold eer|far1e-3: the value the weights file records (trained_info.h). */
static int recorded_threshold(options *o) {
    kao_trained_info info;
    if (kao_trained_info_read(o->model.weights, &info)) return KAO_ERR;
    if (!info.has_thresholds)
        return kao_fail("%s records no verification thresholds (kao train writes them into best.h5 and last.h5): "
                        "give --threshold a number", o->model.weights);
    o->threshold = strcmp(o->threshold_name, "eer") ? info.threshold_far1e3 : info.threshold_eer;
    return KAO_OK;
}

/* Embeddings and their image paths as `kao embed` writes them (embeddings.h). */
static int load_embeddings(const char *path, float **emb, int *count, int *dim, char ***paths) {
    kao_h5_file f;
    if (kao_h5_open(&f, path)) return KAO_ERR;
    kao_h5_info info;
    int rc = kao_h5_dataset_info_backed(&f, "embeddings", &info);
    if (rc == KAO_OK && (info.ndim != 2 || info.cls != KAO_H5_FLOAT || info.shape[0] < 1 || info.shape[1] < 1)) {
        char shape[64];
        kao_h5_shape_string(shape, sizeof shape, info.ndim, info.shape);
        rc = kao_fail("%s: 'embeddings' should be (images, dimension) floats, found %s %s", path,
                      kao_h5_type_name(&info), shape);
    }
    int n_paths = 0;
    *paths = NULL;
    *emb = NULL;
    if (rc == KAO_OK) rc = kao_h5_read_strings(&f, "paths", paths, &n_paths);
    if (rc == KAO_OK && n_paths != info.shape[0])
        rc = kao_fail("%s: %d paths for %lld embeddings", path, n_paths, (long long)info.shape[0]);
    if (rc == KAO_OK) {
        *emb = kao_malloc((size_t)(info.shape[0] * info.shape[1]) * sizeof **emb, "embeddings");
        rc = kao_h5_read_f32(&f, "embeddings", *emb, 2, info.shape);
    }
    kao_h5_close(&f);
    if (rc) {
        if (*paths) kao_h5_free_names(*paths, n_paths);
        free(*emb);
        *paths = NULL;
        *emb = NULL;
        return KAO_ERR;
    }
    *count = n_paths;
    *dim = (int)info.shape[1];
    return KAO_OK;
}

/* The images and their pairs, before anything is embedded (so bad input fails fast). */
static int make_pairs(const options *o, char ***paths, int *count, kao_pair **pairs, int *num_pairs) {
    if (o->pairs_file) {
        if (o->embeddings) {
            char **images;
            return kao_pairs_from_file(pairs, num_pairs, &images, count, o->pairs_file, NULL, *paths, *count, false);
        }
        if (!kao_is_dir(o->input)) return kao_fail("%s: not a folder (the pairs file's root)", o->input);
        return kao_pairs_from_file(pairs, num_pairs, paths, count, o->pairs_file, o->input, NULL, 0,
                                   o->follow_symlinks);
    }
    const char *where = o->embeddings ? o->embeddings : o->input;
    if (!o->embeddings) {
        if (!kao_is_dir(o->input)) return kao_fail("%s: not a folder", o->input);
        char *inputs[1] = {(char *)o->input};
        if (kao_collect_images(paths, count, inputs, 1, o->follow_symlinks)) return KAO_ERR;
    }
    if (*count < 2) return kao_fail("%s: needs at least two images to make a pair, found %d", where, *count);
    int *labels = kao_malloc((size_t)*count * sizeof *labels, "labels"), identities;
    int rc = kao_identity_labels(labels, &identities, *paths, *count, o->layout);
    if (rc == KAO_OK) rc = kao_pairs_build(pairs, num_pairs, labels, *count, &o->sampling);
    free(labels);
    return rc ? kao_fail_context("%s: ", where) : KAO_OK;
}

enum { OUTPUTS = 4 };

/* The files asked for (NULL: not asked for). */
static void outputs_of(const options *o, const char *out[OUTPUTS]) {
    out[0] = o->pairs_out;
    out[1] = o->roc;
    out[2] = o->roc_csv;
    out[3] = o->hist;
}

/* No output may be an input: the weights, the embeddings, the pairs file or an image. */
static int check_outputs(const options *o, char *const *paths, int count) {
    const char **inputs = kao_malloc((size_t)(count + 3) * sizeof *inputs, "inputs");
    inputs[0] = o->model.weights;
    inputs[1] = o->embeddings;
    inputs[2] = o->pairs_file;
    for (int i = 0; i < count; i++) inputs[3 + i] = paths[i];
    const char *outputs[OUTPUTS];
    outputs_of(o, outputs);
    int rc = KAO_OK;
    for (int k = 0; k < OUTPUTS && rc == KAO_OK; k++)
        if (outputs[k]) rc = kao_check_not_input(outputs[k], inputs, count + 3);
    free(inputs);
    return rc;
}

static int write_outputs(const options *o, const kao_pair *pairs, const float *scores, int n, char *const *paths,
                         const kao_pair_metrics *m) {
    bool *same = kao_malloc((size_t)n * sizeof *same, "same");
    int *order = kao_malloc((size_t)n * sizeof *order, "order");
    for (int k = 0; k < n; k++) same[k] = pairs[k].same;
    kao_pairs_order(order, pairs, scores, n, paths, o->sort);
    int rc = KAO_OK;
    if (o->pairs_out) rc = kao_save_pairs_tsv(o->pairs_out, pairs, scores, order, n, paths, o->threshold);
    else if (!o->no_pairs) {
        kao_print_pairs(stdout, pairs, scores, order, n, paths, o->threshold);
        fputc('\n', stdout);
    }
    if (rc == KAO_OK && (o->roc || o->roc_csv)) {
        kao_roc_point *roc = kao_malloc((size_t)(n + 1) * sizeof *roc, "roc");
        int points = kao_roc_curve(roc, scores, same, n);
        rc = points < 0 ? KAO_ERR : KAO_OK;
        if (rc == KAO_OK && o->roc) rc = kao_plot_roc(o->roc, roc, points, m);
        if (rc == KAO_OK && o->roc_csv) rc = kao_plot_roc_csv(o->roc_csv, roc, points);
        free(roc);
    }
    if (rc == KAO_OK && o->hist) rc = kao_plot_histogram(o->hist, scores, same, n, o->threshold);
    if (rc == KAO_OK) kao_print_summary(stdout, m);
    free(order);
    free(same);
    return rc;
}

int kao_cmd_verify(int argc, char **argv) {
    options o;
    int status = parse(&o, argc, argv);
    if (status) return status < 0 ? 0 : status;
    kao_cli_set_threads(o.forward.threads);

    char **paths = NULL;
    float *emb = NULL;
    int count = 0, dim = 0, num_pairs = 0;
    kao_pair *pairs = NULL;
    kao_model m;
    bool have_model = false;
    const char *outputs[OUTPUTS];
    outputs_of(&o, outputs);
    int rc = KAO_OK;
    for (int i = 0; i < OUTPUTS && rc == KAO_OK; i++)
        if (outputs[i]) rc = kao_check_parent_dir(outputs[i]);
    if (rc == KAO_OK && o.threshold_name) rc = recorded_threshold(&o);
    if (rc == KAO_OK && o.embeddings) rc = load_embeddings(o.embeddings, &emb, &count, &dim, &paths);
    if (rc == KAO_OK) rc = make_pairs(&o, &paths, &count, &pairs, &num_pairs);
    if (rc == KAO_OK) rc = check_outputs(&o, paths, count);
    if (rc == KAO_OK && !o.embeddings) {
        rc = kao_cli_forward_defaults(&o.forward, o.model.weights);
        if (rc == KAO_OK) rc = kao_cli_load_model(&m, &o.model);
        have_model = rc == KAO_OK;
        if (have_model) {
            dim = m.arch.embedding_dim;
            emb = kao_malloc((size_t)count * dim * sizeof *emb, "embeddings");
            rc = kao_cli_embed_images(emb, &m, &o.forward, paths, count, !o.quiet);
        }
    }
    float *scores = kao_malloc((size_t)(num_pairs ? num_pairs : 1) * sizeof *scores, "scores");
    bool *same = kao_malloc((size_t)(num_pairs ? num_pairs : 1) * sizeof *same, "same");
    kao_pair_metrics metrics;
    if (rc == KAO_OK) {
        for (int k = 0; k < num_pairs; k++) same[k] = pairs[k].same;
        rc = kao_pair_scores(scores, pairs, num_pairs, emb, count, dim, paths) ||
                     kao_pair_metrics_compute(&metrics, scores, same, num_pairs, o.threshold)
                 ? KAO_ERR
                 : KAO_OK;
    }
    if (rc == KAO_OK) rc = write_outputs(&o, pairs, scores, num_pairs, paths, &metrics);
    status = rc == KAO_OK ? 0 : kao_cli_report_error();
    free(same);
    free(scores);
    free(pairs);
    free(emb);
    if (paths) kao_free_paths(paths, count);
    if (have_model) kao_model_free(&m);
    return status;
}
