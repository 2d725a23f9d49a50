/* kao curate: find the images of an identity-folder tree that should not be trained on (another
 * person, a near-duplicate, no face), identities too small, and the same person under two names;
 * report them, and move them aside (--apply) or back (--undo). The analysis is in
 * src/curate_*.c (curate_analysis.h), the moves in src/curate_apply.c (curate.h). */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "kao/curate.h"
#include "kao/curate_analysis.h"
#include "kao/dataset.h"
#include "kao/rng.h"
#include "kao/trained_info.h"
#include "kao/util.h"

static const char *help =
    "usage: kao curate --weights W.h5 DATA_ROOT [options]\n"
    "       kao curate --undo JOURNAL\n"
    "       kao curate --bench N [--dim D]\n"
    "\n"
    "Embeds every image of the identity-folder tree DATA_ROOT (DATA_ROOT/<identity>/<image>.png|.jpg)\n"
    "and judges each against its identity's reference:\n"
    "  reference   the images whose file name contains the marker (--reference-marker, default\n"
    "              'default'); without one, the identity's medoid: the image most similar to all the\n"
    "              others. A medoid, not a trimmed mean: it is a real photo (the contact sheet shows it),\n"
    "              needs no trim fraction, stays in the majority while under half the images are wrong,\n"
    "              and image-vs-medoid is an image pair, what the weights' thresholds were measured on.\n"
    "  no_face     best similarity to every identity's reference below --no-face: not a usable face\n"
    "  not_me      similarity to its own reference below --not-me: another person\n"
    "  same_face   near-duplicates (similarity >= --same-face) of an image kept: one per group is kept,\n"
    "              a reference when one is in the group\n"
    "  too small   identities with fewer than --min-images images left\n"
    "Across identities (reported, never moved): identities whose centres (normalised mean of the kept\n"
    "images) are at least --same-person similar, and near-duplicate images of different identities.\n"
    "\n"
    "A dry run by default: prints a summary and writes the report folder (images.tsv: path, identity,\n"
    "verdict, similarity, reason; identities.tsv; identity_pairs.tsv; duplicates.tsv; thresholds.tsv;\n"
    "sheets/<identity>.png: the reference (blue) beside the flagged images: not_me red, same_face orange,\n"
    "no_face grey). Images and folders are left alone; only the cache and the report are written.\n"
    "Embeddings are cached (--cache) by path, size and modification time, and by the weights' content\n"
    "and input options: a rerun embeds only new or changed images.\n"
    "\n"
    "options:\n"
    "  --weights W.h5     weights: any file kao embed reads\n"
    KAO_CLI_FORWARD_HELP
    "  --report DIR       the report folder (default: curate_report)\n"
    "  --cache FILE       the embedding cache (default: DATA_ROOT/.kao_curate_cache.h5; hidden files are\n"
    "                     not part of the data set)\n"
    "  --apply JOURNAL    move the flagged images into <identity>/not_me/, same_face/, no_face/ and the\n"
    "                     too-small identities into _small/ beside DATA_ROOT, recording every move in\n"
    "                     JOURNAL (a new file) first; if JOURNAL exists (an --apply that was killed),\n"
    "                     its moves are finished, without a new analysis\n"
    "  --undo JOURNAL     put back everything JOURNAL records as moved\n"
    "  --reference-marker TEXT\n"
    "                     reference images: file names containing TEXT (default 'default'; '' for none)\n"
    "  --not-me T         default: the weights' recorded EER threshold (threshold_eer), else 0.4 (the\n"
    "                     original's verification threshold)\n"
    "  --no-face T        default: half of --not-me's default\n"
    "  --same-face T      default 0.95\n"
    "  --same-person T    default: the weights' recorded FAR 1e-3 threshold (threshold_far1e-3), else 0.6\n"
    "  --min-images N     default 2\n"
    "  --follow-symlinks  follow symbolic links that lead out of DATA_ROOT\n"
    "  --quiet            no progress line\n"
    "  --bench N          time the cross-identity search on N random unit vectors (--dim D, default 512)\n"
    "                     and exit\n";

typedef struct {
    kao_cli_model_options model;
    kao_cli_forward_options forward;
    const char *root, *report, *cache, *apply, *undo;
    kao_curate_settings settings;
    double given[4];  /* thresholds given on the command line; NAN: the default */
    int min_images, bench, dim;
    bool quiet, follow_symlinks, marker_given;
} options;

static const char *const threshold_options[4] = {"--not-me", "--no-face", "--same-face", "--same-person"};

static int parse(options *o, int argc, char **argv) {
    *o = (options){.forward = KAO_CLI_FORWARD_DEFAULTS, .report = "curate_report", .min_images = 2, .dim = 512,
                   .given = {NAN, NAN, NAN, NAN}};
    o->settings.values.marker = "default";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = kao_cli_model_option(&o->model, "curate", argc, argv, &i);
        if (r == 0) r = kao_cli_forward_option(&o->forward, "curate", argc, argv, &i);
        if (r < 0) return 2;
        if (r > 0) continue;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(help, stdout);
            return 0;
        }
        bool has_value = i + 1 < argc;
        int t = -1;
        for (int k = 0; k < 4; k++)
            if (!strcmp(a, threshold_options[k])) t = k;
        if (!strcmp(a, "--quiet")) o->quiet = true;
        else if (!strcmp(a, "--follow-symlinks")) o->follow_symlinks = true;
        else if (t >= 0 && has_value) {
            if (!kao_cli_parse_double(argv[++i], -1, 1, &o->given[t]))
                return kao_cli_usage_error("curate", "%s wants a cosine in [-1, 1], got '%s'", a, argv[i]);
        } else if (!strcmp(a, "--min-images") && has_value) {
            if (!kao_cli_parse_int(argv[++i], 1, 1 << 30, &o->min_images))
                return kao_cli_usage_error("curate", "--min-images wants a positive integer, got '%s'", argv[i]);
        } else if ((!strcmp(a, "--bench") || !strcmp(a, "--dim")) && has_value) {
            if (!kao_cli_parse_int(argv[++i], 2, 1 << 24, !strcmp(a, "--bench") ? &o->bench : &o->dim))
                return kao_cli_usage_error("curate", "%s wants an integer of at least 2, got '%s'", a, argv[i]);
        } else if (!strcmp(a, "--reference-marker") && has_value) o->settings.values.marker = argv[++i];
        else if (!strcmp(a, "--report") && has_value) o->report = argv[++i];
        else if (!strcmp(a, "--cache") && has_value) o->cache = argv[++i];
        else if (!strcmp(a, "--apply") && has_value) o->apply = argv[++i];
        else if (!strcmp(a, "--undo") && has_value) o->undo = argv[++i];
        else if (a[0] == '-' && a[1] == '-')
            return kao_cli_usage_error("curate", has_value ? "unknown option '%s'" : "option '%s' needs a value", a);
        else if (o->root) return kao_cli_usage_error("curate", "one DATA_ROOT only, got '%s' and '%s'", o->root, a);
        else o->root = a;
    }
    if (o->apply && o->undo) return kao_cli_usage_error("curate", "--apply and --undo exclude each other");
    if (o->undo || o->bench) return -1;
    if (!o->model.weights || !o->root) return kao_cli_usage_error("curate", "needs --weights and DATA_ROOT");
    return -1; /* go on */
}

/* The thresholds: given, else from the weights' recorded verification thresholds, else stated. */
static int settle_thresholds(options *o) {
    kao_trained_info info;
    if (kao_trained_info_read(o->model.weights, &info)) return KAO_ERR;
    kao_curate_settings *s = &o->settings;
    bool rec = info.has_thresholds;
    double defaults[4] = {rec ? info.threshold_eer : 0.4, 0, 0.95, rec ? info.threshold_far1e3 : 0.6};
    defaults[1] = defaults[0] / 2;
    const char *sources[4] = {rec ? "the weights' threshold_eer" : "default: the original's 0.4",
                              rec ? "half the weights' threshold_eer" : "default: half of 0.4",
                              "default", rec ? "the weights' threshold_far1e-3" : "default"};
    double *v[4] = {&s->values.not_me, &s->values.no_face, &s->values.same_face, &s->values.same_person};
    for (int k = 0; k < 4; k++) {
        bool given = !isnan(o->given[k]);
        *v[k] = given ? o->given[k] : defaults[k];
        s->source[k] = given ? "given" : sources[k];
    }
    s->values.min_images = o->min_images;
    s->source[4] = "given or default 2";
    return KAO_OK;
}

/* emb (ds->num_images × dim) ← the cached embeddings, and the rest computed; the cache rewritten. */
static int embeddings(float *emb, const options *o, const kao_dataset *ds, const kao_model *m, const char *cache) {
    int n = ds->num_images, dim = m->arch.embedding_dim, cached = 0, todo = 0;
    char key[1024];
    kao_curate_stamp *stamps = kao_malloc((size_t)n * sizeof *stamps, "stamps");
    bool *have = kao_malloc((size_t)n * sizeof *have, "cache");
    int rc = kao_curate_cache_key(key, sizeof key, o->model.weights, o->forward.height, o->forward.width,
                                  o->forward.norm.mean, o->forward.norm.std, o->forward.image.exif_transpose) ||
             kao_curate_stamps(stamps, ds) || kao_curate_cache_load(cache, key, ds, stamps, dim, emb, have, &cached);
    char **paths = kao_malloc((size_t)n * sizeof *paths, "paths");
    int *rows = kao_malloc((size_t)n * sizeof *rows, "paths");
    for (int i = 0; rc == KAO_OK && i < n; i++)
        if (!have[i]) {
            rows[todo] = i;
            paths[todo++] = ds->images[i].path;
        }
    if (rc == KAO_OK && !o->quiet) fprintf(stderr, "cache: %d of %d embeddings reused, %d to embed\n", cached, n, todo);
    printf("embedded: %d images (%d from the cache %s)\n", todo, cached, cache);
    if (rc == KAO_OK && todo > 0) {
        float *fresh = kao_malloc((size_t)todo * dim * sizeof *fresh, "embeddings");
        rc = kao_cli_embed_images(fresh, m, &o->forward, paths, todo, !o->quiet);
        for (int j = 0; rc == KAO_OK && j < todo; j++)
            memcpy(emb + (size_t)rows[j] * dim, fresh + (size_t)j * dim, (size_t)dim * sizeof *emb);
        free(fresh);
    }
    if (rc == KAO_OK && todo > 0) rc = kao_curate_cache_save(cache, key, ds, stamps, dim, emb);
    free(rows);
    free(paths);
    free(have);
    free(stamps);
    return rc;
}

/* --apply: the flagged images and the too-small identities to kao_curate_apply. */
static int apply(const options *o, const kao_dataset *ds, const kao_curate_result *r) {
    kao_curate_move *moves = kao_malloc((size_t)ds->num_images * sizeof *moves, "moves");
    char **small = kao_malloc((size_t)ds->num_classes * sizeof *small, "identities");
    int n = 0, k = 0;
    for (int i = 0; i < ds->num_images; i++)
        if (r->images[i].verdict != KAO_VERDICT_KEEP) moves[n++] = (kao_curate_move){ds->images[i].rel, r->images[i].verdict};
    for (int c = 0; c < ds->num_classes; c++)
        if (r->small[c]) small[k++] = ds->classes[c].name;
    int rc = kao_curate_apply(ds->root, moves, n, small, k, o->apply);
    if (rc == KAO_OK)
        printf("applied: moved %d images and %d identities (journal %s; kao curate --undo %s puts them back)\n", n, k,
               o->apply, o->apply);
    free(small);
    free(moves);
    return rc;
}

static int curate(options *o) {
    kao_dataset_options dopt = {.min_images = 1, .strict = false, .follow_symlinks = o->follow_symlinks};
    kao_dataset ds = {0};
    kao_model m;
    char cache[4200];
    snprintf(cache, sizeof cache, "%s/.kao_curate_cache.h5", o->root);
    if (o->cache) snprintf(cache, sizeof cache, "%s", o->cache);
    if (kao_dataset_scan(&ds, o->root, &dopt) || kao_cli_forward_defaults(&o->forward, o->model.weights) ||
        settle_thresholds(o) || kao_check_parent_dir(cache)) {
        kao_dataset_free(&ds);
        return KAO_ERR;
    }
    if (kao_cli_load_model(&m, &o->model)) {
        kao_dataset_free(&ds);
        return KAO_ERR;
    }
    int dim = m.arch.embedding_dim;
    float *emb = kao_malloc((size_t)ds.num_images * dim * sizeof *emb, "embeddings");
    double t0 = kao_now_seconds();
    int rc = embeddings(emb, o, &ds, &m, cache);
    kao_curate_result r = {0};
    if (rc == KAO_OK) {
        double t1 = kao_now_seconds();
        kao_normalize_rows(emb, ds.num_images, dim);
        kao_curate_judge(&r, &ds, emb, dim, &o->settings.values);
        double t2 = kao_now_seconds();
        kao_curate_print_summary(stdout, &ds, &r, &o->settings);
        rc = kao_curate_write_report(o->report, &ds, &r, &o->settings) || kao_curate_write_sheets(o->report, &ds, &r);
        if (rc == KAO_OK) printf("report: %s (images.tsv, identities.tsv, identity_pairs.tsv, duplicates.tsv, sheets/)\n", o->report);
        printf("time: embedding %.1f s (cache included), judging and search %.1f s, report %.1f s\n", t1 - t0, t2 - t1,
               kao_now_seconds() - t2);
    }
    if (rc == KAO_OK && o->apply) rc = apply(o, &ds, &r);
    else if (rc == KAO_OK) printf("dry run: nothing moved (--apply JOURNAL moves the flagged images)\n");
    kao_curate_result_free(&r);
    free(emb);
    kao_model_free(&m);
    kao_dataset_free(&ds);
    return rc;
}

/* --bench: the cross-identity search (top-8 per row, labels of 10 images each) on n random unit
 * vectors, with its GEMM's floating-point operations per second. */
static int bench(const options *o) {
    int n = o->bench, dim = o->dim, k = 8;
    if (kao_check_memory((double)n * dim * 4 + (double)n * k * 8, "--bench", "lower N")) return KAO_ERR;
    float *X = kao_malloc((size_t)n * dim * sizeof *X, "vectors");
    int *labels = kao_malloc((size_t)n * sizeof *labels, "labels"), *index = kao_malloc((size_t)n * k * sizeof *index, "top-k");
    float *sim = kao_malloc((size_t)n * k * sizeof *sim, "top-k");
    kao_rng rng;
    kao_rng_seed(&rng, 1, 0);
    for (size_t i = 0; i < (size_t)n * dim; i++) X[i] = kao_rng_normal(&rng);
    for (int i = 0; i < n; i++) labels[i] = i / 10;
    kao_normalize_rows(X, n, dim);
    double start = kao_now_seconds();
    kao_sim_topk(index, sim, k, X, n, X, n, dim, labels, labels, false);
    double seconds = kao_now_seconds() - start, flops = 2.0 * n * (double)n * dim;
    printf("curate search: %d x %d-d vectors, top-%d per row: %.2f s, %.1f GFLOP/s (GEMM flops 2*n*n*d = %.3g)\n", n,
           dim, k, seconds, flops / seconds / 1e9, flops);
    free(sim);
    free(index);
    free(labels);
    free(X);
    return KAO_OK;
}

/* An --apply whose journal exists: a killed one, finished from its journal (a new analysis would
 * see the half-moved tree). */
static bool resuming(const options *o) { return o->apply && access(o->apply, F_OK) == 0; }

static int finish(const options *o) {
    if (kao_curate_apply(o->root, NULL, 0, NULL, 0, o->apply)) return KAO_ERR;
    printf("applied: finished the moves %s records (kao curate --undo %s puts them back)\n", o->apply, o->apply);
    return KAO_OK;
}

int kao_cmd_curate(int argc, char **argv) {
    options o;
    int status = parse(&o, argc, argv);
    if (status >= 0) return status;
    kao_cli_set_threads(o.forward.threads);
    int rc = o.undo ? kao_curate_undo(o.undo) : o.bench ? bench(&o) : resuming(&o) ? finish(&o) : curate(&o);
    return rc ? kao_cli_report_error() : 0;
}
