/* HDF5 weights: save/load round trip (bit-identical, attributes, timm's order), every rejected
 * file (missing, empty, truncated, text, a folder, another variant, a missing / unexpected /
 * mistyped tensor, a foreign format), the ImageNet-head skip, a Japanese file name, an atomic
 * save into a missing folder, probing every variant, and the generic h5io helpers.
 * Files go to a fresh folder under $TMPDIR (default /tmp), removed at the end. */
#include <dirent.h>
#include <ftw.h>
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "kao/h5io.h"
#include "kao/checkpoint.h"
#include "kao/rng.h"
#include "kao/trained_info.h"
#include "kao/util.h"
#include "kao/weights.h"

static char tmp_root[512];

static void tmp_path(char *out, size_t size, const char *name) {
    snprintf(out, size, "%s/%s", tmp_root, name);
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* Entries of tmp_root whose name contains ".tmp." (abandoned temporary files). */
static int count_temp_files(void) {
    DIR *d = opendir(tmp_root);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += strstr(e->d_name, ".tmp.") != NULL;
    if (d) closedir(d);
    return n;
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* Copies the first `keep` bytes of src to dst; returns the size of src. */
static long copy_prefix(const char *dst, const char *src, double keep) {
    FILE *in = fopen(src, "rb");
    if (!in) return -1;
    fseek(in, 0, SEEK_END);
    long size = ftell(in);
    fseek(in, 0, SEEK_SET);
    long n = (long)(size * keep);
    char *buf = kao_malloc((size_t)size, "file copy");
    size_t got = fread(buf, 1, (size_t)size, in);
    fclose(in);
    FILE *out = fopen(dst, "wb");
    if (out) {
        fwrite(buf, 1, (size_t)n < got ? (size_t)n : got, out);
        fclose(out);
    }
    free(buf);
    return size;
}

#define CHECK_ERROR(rc, want)                                                                      \
    CHECK((rc) == KAO_ERR && strstr(kao_last_error(), (want)), "rc %d, message '%s' lacks '%s'",  \
          (rc), kao_last_error(), (want))

/* ---- models and hand-made files ---------------------------------------------------------- */

static void build(kao_model *m, const char *variant, double wm, double dm, int emb) {
    kao_arch a;
    int rc = kao_arch_build(&a, variant, wm, dm, emb, 0);
    KAO_ASSERT(rc == KAO_OK, "%s", kao_last_error());
    kao_model_create(m, &a);
}

/* The tiny b0 that timm builds too (HELPER_CONTEXT), with non-trivial BN buffers and counters. */
static void tiny(kao_model *m, int emb, uint64_t seed) {
    build(m, "tf_efficientnetv2_b0", 0.25, 0.5, emb);
    kao_model_init(m, seed);
    kao_rng rng;
    kao_rng_seed(&rng, seed, 99);
    for (size_t i = 0; i < m->num_buffers; i++) m->buffers[i] += 0.5f * kao_rng_uniform(&rng);
    for (int k = 0; k < m->num_bn; k++) m->bn_batches_tracked[k] = 3 * k + 1;
}

typedef struct {
    const char *skip[2];      /* tensors left out */
    const char *extra;        /* one more float tensor, [4] */
    const char *as_int;       /* a tensor stored as int64 */
    bool counters;            /* write the num_batches_tracked scalars */
    bool counter_as_float;    /* ... as float32 instead */
    bool shapes_only;         /* declare the datasets, write no data (metadata-only file) */
    const char *format;       /* root attribute "format"; NULL: no attributes */
    int64_t version;
} bare_spec;

/* A dataset of the given file type and shape; with zeros written unless shapes_only (kao refuses
 * to read data a file declares but does not store). */
static void declare(kao_h5_file *f, const char *name, hid_t type, int ndim, const int *shape, bool shapes_only) {
    hsize_t dims[4], numel = 1;
    for (int i = 0; i < ndim; i++) numel *= dims[i] = (hsize_t)shape[i];
    hid_t space = ndim ? H5Screate_simple(ndim, dims, NULL) : H5Screate(H5S_SCALAR);
    hid_t d = H5Dcreate2((hid_t)f->id, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(d >= 0, "declare %s", name);
    if (!shapes_only) {
        void *zeros = calloc(numel, 8);
        CHECK(H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, zeros) >= 0, "write %s", name);
        free(zeros);
    }
    H5Dclose(d);
    H5Sclose(space);
}

/* A weights file written without kao_weights_save, to the spec's liking. */
static void write_bare(const char *path, const kao_model *m, const bare_spec *s) {
    kao_h5_file f;
    int rc = kao_h5_create(&f, path);
    CHECK(rc == KAO_OK, "%s", kao_last_error());
    if (rc) return;
    if (s->format) {
        rc |= kao_h5_write_attr_str(&f, NULL, "format", s->format);
        rc |= kao_h5_write_attr_i64(&f, NULL, "format_version", s->version);
    }
    for (int i = 0; i < m->num_tensors; i++) {
        const kao_tensor *t = &m->tensors[i];
        if ((s->skip[0] && !strcmp(t->name, s->skip[0])) || (s->skip[1] && !strcmp(t->name, s->skip[1])))
            continue;
        if (s->as_int && !strcmp(t->name, s->as_int)) {
            declare(&f, t->name, H5T_STD_I64LE, t->ndim, t->shape, s->shapes_only);
        } else if (s->shapes_only) {
            declare(&f, t->name, H5T_IEEE_F32LE, t->ndim, t->shape, true);
        } else {
            int64_t shape[4] = {t->shape[0], t->shape[1], t->shape[2], t->shape[3]};
            rc |= kao_h5_write_f32(&f, t->name, kao_tensor_data(m, i), t->ndim, shape);
        }
        if (s->counters && kao_ends_with(t->name, ".running_var")) {
            char name[128];
            snprintf(name, sizeof name, "%.*s.num_batches_tracked",
                     (int)(strlen(t->name) - strlen(".running_var")), t->name);
            declare(&f, name, s->counter_as_float ? H5T_IEEE_F32LE : H5T_STD_I64LE, 0, NULL, s->shapes_only);
        }
    }
    if (s->extra) rc |= kao_h5_write_f32(&f, s->extra, (float[4]){0}, 1, (int64_t[]){4});
    rc |= kao_h5_commit(&f);
    kao_h5_close(&f);
    CHECK(rc == KAO_OK, "writing %s: %s", path, kao_last_error());
}

static bool all_zero(const kao_model *m) {
    for (size_t i = 0; i < m->num_params; i++)
        if (m->params[i] != 0.0f) return false;
    return true;
}

/* ---- tests ------------------------------------------------------------------------------- */

static void test_round_trip(void) {
    char path[600];
    tmp_path(path, sizeof path, "tiny.h5");
    kao_model a, b;
    tiny(&a, 16, 1);
    CHECK(kao_weights_save(&a, path) == KAO_OK, "save: %s", kao_last_error());
    CHECK(count_temp_files() == 0, "a temporary file was left behind");

    build(&b, "tf_efficientnetv2_b0", 0.25, 0.5, 16);
    kao_weights_report r;
    CHECK(kao_weights_load(&b, path, NULL, &r) == KAO_OK, "load: %s", kao_last_error());
    CHECK(memcmp(a.params, b.params, a.num_params * sizeof(float)) == 0, "parameters differ");
    CHECK(memcmp(a.buffers, b.buffers, a.num_buffers * sizeof(float)) == 0, "BN buffers differ");
    CHECK(memcmp(a.bn_batches_tracked, b.bn_batches_tracked, (size_t)a.num_bn * sizeof(int64_t)) == 0,
          "num_batches_tracked differ");
    CHECK(r.tensors_loaded == a.num_tensors && r.counters_loaded == a.num_bn && !r.head_skipped,
          "report: %d tensors, %d counters", r.tensors_loaded, r.counters_loaded);

    kao_h5_file f;
    CHECK(kao_h5_open(&f, path) == KAO_OK, "%s", kao_last_error());
    char s[64] = "", variant[64] = "";
    int64_t version = 0, emb = 0;
    double wm = 0, dm = 0;
    CHECK(kao_h5_read_attr_str(&f, NULL, "format", s, sizeof s) == 0 && !strcmp(s, "kao-weights"), "format '%s'", s);
    CHECK(kao_h5_read_attr_i64(&f, NULL, "format_version", &version) == 0 && version == 1, "version %lld", (long long)version);
    CHECK(kao_h5_read_attr_str(&f, NULL, "architecture", variant, sizeof variant) == 0 &&
              !strcmp(variant, "tf_efficientnetv2_b0"), "architecture '%s'", variant);
    CHECK(kao_h5_read_attr_f64(&f, NULL, "width_mult", &wm) == 0 && wm == 0.25, "width %g", wm);
    CHECK(kao_h5_read_attr_f64(&f, NULL, "depth_mult", &dm) == 0 && dm == 0.5, "depth %g", dm);
    CHECK(kao_h5_read_attr_i64(&f, NULL, "embedding_dim", &emb) == 0 && emb == 16, "embedding_dim %lld", (long long)emb);
    /* timm's state_dict order: each BN's counter right after its running_var */
    char **names;
    int count;
    CHECK(kao_h5_list(&f, NULL, &names, &count) == KAO_OK, "%s", kao_last_error());
    CHECK(count == a.num_tensors + a.num_bn, "%d datasets", count);
    int j = 0;
    for (int i = 0; i < a.num_tensors && j < count; i++) {
        CHECK(!strcmp(names[j], a.tensors[i].name), "dataset %d is %s, expected %s", j, names[j], a.tensors[i].name);
        j++;
        if (kao_ends_with(a.tensors[i].name, ".running_var") && j < count) {
            CHECK(kao_ends_with(names[j], ".num_batches_tracked"), "dataset %d is %s", j, names[j]);
            j++;
        }
    }
    kao_h5_free_names(names, count);
    kao_h5_info info;
    CHECK(kao_h5_dataset_info(&f, "bn2.num_batches_tracked", &info) == 0 && info.ndim == 0 &&
              info.cls == KAO_H5_INT && info.bytes == 8, "counter stored as %s", kao_h5_type_name(&info));
    kao_h5_close(&f);

    /* Saving over an existing file replaces it. */
    a.params[0] = 42.0f;
    CHECK(kao_weights_save(&a, path) == KAO_OK, "second save: %s", kao_last_error());
    CHECK(kao_weights_load(&b, path, NULL, NULL) == KAO_OK && b.params[0] == 42.0f, "file not replaced");
    CHECK(count_temp_files() == 0, "a temporary file was left behind");

    kao_arch probed;
    CHECK(kao_weights_probe(path, &probed) == KAO_OK, "probe: %s", kao_last_error());
    CHECK(!strcmp(probed.variant, "tf_efficientnetv2_b0") && probed.width_mult == 0.25 &&
              probed.depth_mult == 0.5 && probed.embedding_dim == 16 && probed.num_blocks == a.arch.num_blocks,
          "probe from attributes: %s %g %g %d", probed.variant, probed.width_mult, probed.depth_mult,
          probed.embedding_dim);
    kao_model_free(&a);
    kao_model_free(&b);
}

static void test_unreadable_files(void) {
    char good[600], path[600];
    tmp_path(good, sizeof good, "tiny.h5"); /* from test_round_trip */
    kao_model m;
    build(&m, "tf_efficientnetv2_b0", 0.25, 0.5, 16);
    kao_arch a;

    tmp_path(path, sizeof path, "absent.h5");
    CHECK_ERROR(kao_weights_load(&m, path, NULL, NULL), "absent.h5: No such file or directory");
    CHECK_ERROR(kao_weights_probe(path, &a), "No such file or directory");

    tmp_path(path, sizeof path, "empty.h5");
    write_text(path, "");
    CHECK_ERROR(kao_weights_load(&m, path, NULL, NULL), "empty.h5: not an HDF5 file (or truncated/corrupt)");

    tmp_path(path, sizeof path, "text.h5");
    write_text(path, "conv_stem.weight = [1, 2, 3]\n");
    CHECK_ERROR(kao_weights_load(&m, path, NULL, NULL), "text.h5: not an HDF5 file (or truncated/corrupt)");
    CHECK_ERROR(kao_weights_probe(path, &a), "not an HDF5 file");

    tmp_path(path, sizeof path, "half.h5");
    long size = copy_prefix(path, good, 0.5);
    CHECK(size > 1000, "tiny.h5 has %ld bytes", size);
    CHECK_ERROR(kao_weights_load(&m, path, NULL, NULL), "half.h5: truncated: "); /* the seal: test_h5seal.c */
    tmp_path(path, sizeof path, "short.h5");
    copy_prefix(path, good, (size - 16.0) / size);
    CHECK_ERROR(kao_weights_load(&m, path, NULL, NULL), "short.h5: truncated: ");

    CHECK_ERROR(kao_weights_load(&m, tmp_root, NULL, NULL), "is a folder, not a file");
    CHECK(all_zero(&m), "a failed load changed the model");
    kao_model_free(&m);
}

static void test_wrong_architecture(void) {
    char tiny_path[600], b1_path[600], b0_path[600];
    tmp_path(tiny_path, sizeof tiny_path, "tiny.h5");
    kao_model m;
    /* Same variant, wider: the stem has 16 channels instead of 8. */
    build(&m, "tf_efficientnetv2_b0", 0.5, 0.5, 16);
    CHECK_ERROR(kao_weights_load(&m, tiny_path, NULL, NULL),
                "tiny.h5: tensor 'conv_stem.weight' has shape [8, 3, 3, 3], expected [16, 3, 3, 3]"
                " — is this a weight file for tf_efficientnetv2_b0 (width 0.25, depth 0.5)?");
    CHECK(all_zero(&m), "a rejected file changed the model");
    kao_model_free(&m);

    /* b1 has the same channels as b0 and more blocks; files without attributes are told apart
     * by their shapes. Metadata-only files: the checks run before any data is read. */
    kao_model b0, b1;
    build(&b0, "tf_efficientnetv2_b0", 0, 0, 512);
    build(&b1, "tf_efficientnetv2_b1", 0, 0, 512);
    tmp_path(b1_path, sizeof b1_path, "b1_shapes.h5");
    tmp_path(b0_path, sizeof b0_path, "b0_shapes.h5");
    write_bare(b1_path, &b1, &(bare_spec){.counters = true, .shapes_only = true});
    write_bare(b0_path, &b0, &(bare_spec){.counters = true, .shapes_only = true});
    CHECK_ERROR(kao_weights_load(&b0, b1_path, NULL, NULL),
                "b1_shapes.h5: unexpected tensor 'blocks.0.1.conv.weight' — is this a weight file for tf_efficientnetv2_b1?");
    CHECK_ERROR(kao_weights_load(&b1, b0_path, NULL, NULL),
                "b0_shapes.h5: missing tensor 'blocks.0.1.conv.weight' — is this a weight file for tf_efficientnetv2_b0?");
    kao_model_free(&b0);
    kao_model_free(&b1);
}

static void test_bad_tensors(void) {
    char path[600], want[900];
    kao_model src, m;
    tiny(&src, 16, 2);
    build(&m, "tf_efficientnetv2_b0", 0.25, 0.5, 16);

    tmp_path(path, sizeof path, "missing.h5");
    write_bare(path, &src, &(bare_spec){.skip = {"bn2.running_var"}, .counters = true});
    CHECK(kao_weights_load(&m, path, NULL, NULL) == KAO_ERR, "missing tensor accepted");
    snprintf(want, sizeof want, "%s: missing tensor 'bn2.running_var'", path);
    CHECK(!strcmp(kao_last_error(), want), "message '%s', expected '%s'", kao_last_error(), want);

    tmp_path(path, sizeof path, "unexpected.h5");
    write_bare(path, &src, &(bare_spec){.extra = "foo", .counters = true});
    CHECK(kao_weights_load(&m, path, NULL, NULL) == KAO_ERR, "unexpected tensor accepted");
    snprintf(want, sizeof want, "%s: unexpected tensor 'foo'", path);
    CHECK(!strcmp(kao_last_error(), want), "message '%s', expected '%s'", kao_last_error(), want);

    tmp_path(path, sizeof path, "int.h5");
    write_bare(path, &src, &(bare_spec){.as_int = "conv_stem.weight", .counters = true});
    CHECK_ERROR(kao_weights_load(&m, path, NULL, NULL), "tensor 'conv_stem.weight' is int64, expected float32");

    tmp_path(path, sizeof path, "float_counter.h5");
    write_bare(path, &src, &(bare_spec){.counters = true, .counter_as_float = true});
    CHECK_ERROR(kao_weights_load(&m, path, NULL, NULL),
                "tensor 'bn1.num_batches_tracked' is float32 [], expected an int64 scalar");
    CHECK(all_zero(&m), "a rejected file changed the model");

    tmp_path(path, sizeof path, "embeddings.h5");
    write_bare(path, &src, &(bare_spec){.format = "kao-embeddings", .version = 1});
    CHECK_ERROR(kao_weights_load(&m, path, NULL, NULL), "embeddings.h5: a 'kao-embeddings' file, not a weights file");
    tmp_path(path, sizeof path, "future.h5");
    write_bare(path, &src, &(bare_spec){.format = "kao-weights", .version = 2});
    CHECK_ERROR(kao_weights_load(&m, path, NULL, NULL), "future.h5: format_version 2; this kao reads version 1");

    /* A plain state_dict dump without counters or attributes loads; counters become 0. */
    tmp_path(path, sizeof path, "plain.h5");
    write_bare(path, &src, &(bare_spec){0});
    for (int k = 0; k < m.num_bn; k++) m.bn_batches_tracked[k] = 5;
    kao_weights_report r;
    CHECK(kao_weights_load(&m, path, NULL, &r) == KAO_OK, "plain file: %s", kao_last_error());
    CHECK(memcmp(src.params, m.params, src.num_params * sizeof(float)) == 0, "plain file: parameters differ");
    CHECK(r.counters_loaded == 0 && m.bn_batches_tracked[0] == 0 && m.bn_batches_tracked[m.num_bn - 1] == 0,
          "counters not reset");
    /* Without attributes the tiny multipliers cannot be told. */
    kao_arch a;
    CHECK_ERROR(kao_weights_probe(path, &a), "match no variant at its default multipliers");
    kao_model_free(&src);
    kao_model_free(&m);
}

static void test_head_skip(void) {
    char path[600], headless[600];
    tmp_path(path, sizeof path, "imagenet.h5");
    kao_model src, m, ref;
    tiny(&src, 1000, 3);
    CHECK(kao_weights_save(&src, path) == KAO_OK, "%s", kao_last_error());
    build(&m, "tf_efficientnetv2_b0", 0.25, 0.5, 16);

    CHECK_ERROR(kao_weights_load(&m, path, NULL, NULL),
                "imagenet.h5: tensor 'classifier.weight' has shape [1000, 320], expected [16, 320]"
                " — the file's classifier has 1000 outputs, the model's 16");

    kao_weights_options opt = {.allow_head_mismatch = true, .head_seed = 77};
    kao_weights_report r;
    CHECK(kao_weights_load(&m, path, &opt, &r) == KAO_OK, "%s", kao_last_error());
    CHECK(r.head_skipped && r.skipped_head_shape[0] == 1000 && r.skipped_head_shape[1] == 320 &&
              r.tensors_loaded == m.num_tensors - 2, "report: skipped %d, [%d, %d], %d tensors",
          r.head_skipped, r.skipped_head_shape[0], r.skipped_head_shape[1], r.tensors_loaded);
    CHECK(!strcmp(r.note, "classifier [1000, 320] skipped: ImageNet head, a fresh 16-d embedding head is initialised"),
          "note '%s'", r.note);
    for (int i = 0; i < m.num_tensors; i++) {
        if (m.tensors[i].is_head) continue;
        int j = kao_model_find(&src, m.tensors[i].name);
        CHECK(!memcmp(kao_tensor_data(&m, i), kao_tensor_data(&src, j), m.tensors[i].numel * sizeof(float)),
              "%s not loaded", m.tensors[i].name);
    }
    build(&ref, "tf_efficientnetv2_b0", 0.25, 0.5, 16);
    kao_model_init_head(&ref, 77);
    CHECK(!memcmp(kao_tensor_data(&m, m.classifier_weight), kao_tensor_data(&ref, ref.classifier_weight),
                  m.tensors[m.classifier_weight].numel * sizeof(float)) &&
              kao_tensor_data(&m, m.classifier_weight)[0] != 0.0f,
          "head is not kao_model_init_head(77)");

    /* A file without a classifier (timm num_classes=0) also gets a fresh head. */
    tmp_path(headless, sizeof headless, "headless.h5");
    write_bare(headless, &src, &(bare_spec){.skip = {"classifier.weight", "classifier.bias"}, .counters = true});
    CHECK_ERROR(kao_weights_load(&m, headless, NULL, NULL), "missing tensor 'classifier.weight'");
    CHECK(kao_weights_load(&m, headless, &opt, &r) == KAO_OK && r.head_skipped &&
              !strcmp(r.note, "no classifier in the file: a fresh 16-d embedding head is initialised"),
          "headless: %s / note '%s'", kao_last_error(), r.note);

    /* A matching head is loaded even when a mismatch would be allowed. */
    kao_model_free(&src);
    tiny(&src, 16, 4);
    CHECK(kao_weights_save(&src, path) == KAO_OK, "%s", kao_last_error());
    CHECK(kao_weights_load(&m, path, &opt, &r) == KAO_OK && !r.head_skipped && !r.note[0] &&
              !memcmp(m.params, src.params, m.num_params * sizeof(float)), "matching head not loaded");
    kao_model_free(&src);
    kao_model_free(&m);
    kao_model_free(&ref);
}

static void test_paths(void) {
    char dir[600], path[700], missing[700];
    kao_model a, b;
    tiny(&a, 16, 5);
    build(&b, "tf_efficientnetv2_b0", 0.25, 0.5, 16);

    tmp_path(dir, sizeof dir, "テスト");
    CHECK(mkdir(dir, 0777) == 0, "mkdir %s", dir);
    snprintf(path, sizeof path, "%s/重み.h5", dir);
    CHECK(kao_weights_save(&a, path) == KAO_OK, "save %s: %s", path, kao_last_error());
    CHECK(kao_weights_load(&b, path, NULL, NULL) == KAO_OK, "load %s: %s", path, kao_last_error());
    CHECK(!memcmp(a.params, b.params, a.num_params * sizeof(float)), "Japanese path: parameters differ");
    kao_arch arch;
    CHECK(kao_weights_probe(path, &arch) == KAO_OK && !strcmp(arch.variant, "tf_efficientnetv2_b0"),
          "probe %s: %s", path, kao_last_error());
    snprintf(missing, sizeof missing, "%s/無い.h5", dir);
    CHECK_ERROR(kao_weights_load(&b, missing, NULL, NULL), "テスト/無い.h5: No such file or directory");

    /* Saving into a folder that does not exist: a clear error and nothing written anywhere. */
    snprintf(path, sizeof path, "%s/no_such_folder/w.h5", tmp_root);
    CHECK_ERROR(kao_weights_save(&a, path), "no_such_folder' does not exist");
    snprintf(dir, sizeof dir, "%s/no_such_folder", tmp_root);
    CHECK(!kao_file_exists(dir) && !kao_file_exists(path), "something was created");
    CHECK(count_temp_files() == 0, "a temporary file was left behind");
    kao_model_free(&a);
    kao_model_free(&b);
}

static void test_probe_variants(void) {
    char path[600];
    tmp_path(path, sizeof path, "variant.h5");
    for (int v = 0; kao_variant_names[v]; v++) {
        kao_model m;
        build(&m, kao_variant_names[v], 0, 0, 512);
        write_bare(path, &m, &(bare_spec){.counters = true, .shapes_only = true});
        kao_arch a;
        int rc = kao_weights_probe(path, &a);
        CHECK(rc == KAO_OK && !strcmp(a.variant, kao_variant_names[v]) && a.width_mult == m.arch.width_mult &&
                  a.depth_mult == m.arch.depth_mult && a.embedding_dim == 512 && a.num_blocks == m.arch.num_blocks,
              "%s probed as %s (%s)", kao_variant_names[v], rc ? "nothing" : a.variant, rc ? kao_last_error() : "");
        kao_model_free(&m);
        unlink(path);
    }
}

/* Weights inside a group of a bigger file, as a checkpoint holds them. */
static void test_group(void) {
    char path[600];
    tmp_path(path, sizeof path, "container.h5");
    kao_model a, b, wide;
    tiny(&a, 16, 6);
    build(&b, "tf_efficientnetv2_b0", 0.25, 0.5, 16);
    build(&wide, "tf_efficientnetv2_b0", 0.5, 0.5, 16);
    kao_h5_file f;
    int64_t step = 12;
    int rc = kao_h5_create(&f, path);
    rc |= kao_h5_write_i64(&f, "step", &step, 0, NULL);
    rc |= kao_weights_write(&f, "model", &a);
    rc |= kao_h5_commit(&f);
    kao_h5_close(&f);
    CHECK(rc == KAO_OK, "%s", kao_last_error());

    CHECK(kao_h5_open(&f, path) == KAO_OK, "%s", kao_last_error());
    kao_arch arch;
    CHECK(kao_weights_probe_file(&f, "model", &arch) == KAO_OK && arch.width_mult == 0.25 &&
              !strcmp(arch.variant, "tf_efficientnetv2_b0"), "probe group: %s", kao_last_error());
    CHECK(kao_weights_read(&b, &f, "model", NULL, NULL) == KAO_OK, "read group: %s", kao_last_error());
    CHECK(!memcmp(a.params, b.params, a.num_params * sizeof(float)) &&
              !memcmp(a.buffers, b.buffers, a.num_buffers * sizeof(float)) &&
              !memcmp(a.bn_batches_tracked, b.bn_batches_tracked, (size_t)a.num_bn * sizeof(int64_t)),
          "group round trip differs");
    CHECK_ERROR(kao_weights_read(&b, &f, NULL, NULL, NULL), "container.h5: missing tensor 'conv_stem.weight'");
    CHECK_ERROR(kao_weights_read(&wide, &f, "model", NULL, NULL),
                "container.h5: tensor 'model/conv_stem.weight' has shape [8, 3, 3, 3], expected [16, 3, 3, 3]"
                " — is this a weight file for tf_efficientnetv2_b0 (width 0.25, depth 0.5)?");
    kao_h5_close(&f);
    kao_model_free(&a);
    kao_model_free(&b);
    kao_model_free(&wide);
}

static void test_h5io(void) {
    char path[600];
    tmp_path(path, sizeof path, "generic.h5");
    float x[6] = {1, 2, 3, 4, 5, 6.5f};
    int64_t n[3] = {-1, 0, (int64_t)1 << 40};
    const char *words[3] = {"s1/1.png", "", "顔.png"};
    kao_h5_file f;
    int rc = kao_h5_create(&f, path);
    rc |= kao_h5_write_f32(&f, "group/x", x, 2, (int64_t[]){2, 3});
    rc |= kao_h5_write_i64(&f, "n", n, 1, (int64_t[]){3});
    rc |= kao_h5_write_strings(&f, "paths", words, 3);
    rc |= kao_h5_write_attr_str(&f, "group/x", "units", "metres");
    rc |= kao_h5_write_attr_str(&f, NULL, "sjis", "\x8a\xe7"); /* Shift_JIS, as a foreign file may hold */
    rc |= kao_h5_write_strings(&f, "latin1", (const char *const[]){"ok", "caf\xe9"}, 2);
    rc |= kao_h5_write_f32(&f, "odd/caf\xe9", x, 1, (int64_t[]){6});
    rc |= kao_h5_write_attr_i64(&f, NULL, "count", 7);
    rc |= kao_h5_write_attr_i64(&f, NULL, "count", 8); /* replaces */
    CHECK(rc == KAO_OK, "writing: %s", kao_last_error());
    CHECK_ERROR(kao_h5_write_i64(&f, "n", n, 1, (int64_t[]){3}), "dataset 'n' written twice");
    /* Fixed-length strings, as numpy's bytes_ arrays are stored by h5py. */
    hid_t fixed = H5Tcopy(H5T_C_S1);
    H5Tset_size(fixed, 4);
    H5Tset_strpad(fixed, H5T_STR_NULLPAD);
    hid_t space = H5Screate_simple(1, (hsize_t[]){2}, NULL), scalar = H5Screate(H5S_SCALAR);
    hid_t ds = H5Dcreate2((hid_t)f.id, "fixed", fixed, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t at = H5Acreate2((hid_t)f.id, "fixed", fixed, scalar, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(H5Dwrite(ds, fixed, H5S_ALL, H5S_ALL, H5P_DEFAULT, "abcdxy\0\0") >= 0 && H5Awrite(at, fixed, "ab\0\0") >= 0,
          "fixed-length strings written");
    H5Aclose(at);
    H5Dclose(ds);
    H5Sclose(space);
    H5Sclose(scalar);
    H5Tclose(fixed);
    /* float64, as h5py stores numpy's default floats; 0.1 and 1e-300 have no float32 twin. */
    const double wide[3] = {0.1, 1e-300, -2.5};
    space = H5Screate_simple(1, (hsize_t[]){3}, NULL);
    ds = H5Dcreate2((hid_t)f.id, "wide", H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, wide) >= 0, "float64 written");
    H5Dclose(ds);
    H5Sclose(space);
    CHECK(!kao_file_exists(path), "visible before the commit");
    CHECK(kao_h5_commit(&f) == KAO_OK, "%s", kao_last_error());
    kao_h5_close(&f);

    CHECK(kao_h5_open(&f, path) == KAO_OK, "%s", kao_last_error());
    float y[6];
    int64_t m[3];
    CHECK(kao_h5_read_f32(&f, "group/x", y, 2, (int64_t[]){2, 3}) == 0 && !memcmp(x, y, sizeof x), "f32");
    CHECK(kao_h5_read_i64(&f, "n", m, 1, (int64_t[]){3}) == 0 && !memcmp(n, m, sizeof n), "i64");
    CHECK_ERROR(kao_h5_read_f32(&f, "group/x", y, 2, (int64_t[]){3, 2}), "dataset 'group/x' has shape [2, 3], expected [3, 2]");
    CHECK_ERROR(kao_h5_read_f32(&f, "n", y, 1, (int64_t[]){3}), "dataset 'n' is int64, expected float");
    CHECK_ERROR(kao_h5_read_f32(&f, "nothing", y, 1, (int64_t[]){3}), "missing dataset 'nothing'");
    double w[6];
    CHECK(kao_h5_read_f64(&f, "wide", w, 1, (int64_t[]){3}) == 0 && !memcmp(w, wide, sizeof wide), "f64 exact");
    CHECK(kao_h5_read_f64(&f, "group/x", w, 2, (int64_t[]){2, 3}) == 0 && w[0] == 1.0 && w[5] == 6.5, "f32 read as f64");
    CHECK_ERROR(kao_h5_read_f64(&f, "n", w, 1, (int64_t[]){3}), "dataset 'n' is int64, expected float");
    CHECK_ERROR(kao_h5_read_f64(&f, "wide", w, 1, (int64_t[]){4}), "dataset 'wide' has shape [3], expected [4]");
    char **strings;
    int count;
    CHECK(kao_h5_read_strings(&f, "paths", &strings, &count) == 0 && count == 3 &&
              !strcmp(strings[0], words[0]) && !strcmp(strings[1], "") && !strcmp(strings[2], words[2]),
          "strings");
    if (count) kao_h5_free_names(strings, count);
    CHECK(kao_h5_read_strings(&f, "fixed", &strings, &count) == 0 && count == 2 && !strcmp(strings[0], "abcd") &&
              !strcmp(strings[1], "xy"), "fixed-length strings");
    if (count) kao_h5_free_names(strings, count);
    char s[16];
    CHECK(kao_h5_read_attr_str(&f, NULL, "fixed", s, sizeof s) == 0 && !strcmp(s, "ab"), "fixed-length attribute '%s'", s);
    int64_t c = 0;
    double d = 0;
    CHECK(kao_h5_read_attr_str(&f, "group/x", "units", s, sizeof s) == 0 && !strcmp(s, "metres"), "attr str");
    CHECK(kao_h5_read_attr_i64(&f, NULL, "count", &c) == 0 && c == 8, "attr i64 %lld", (long long)c);
    CHECK(kao_h5_read_attr_f64(&f, NULL, "count", &d) == 0 && d == 8.0, "int attribute read as f64");
    CHECK_ERROR(kao_h5_read_attr_i64(&f, "group/x", "units", &c), "attribute 'units' on 'group/x' is string, expected an integer");
    CHECK_ERROR(kao_h5_read_attr_str(&f, NULL, "units", s, sizeof s), "missing attribute 'units'");
    CHECK_ERROR(kao_h5_read_attr_str(&f, "group/x", "units", s, 4), "is longer than 3 bytes");
    CHECK_ERROR(kao_h5_read_attr_str(&f, NULL, "sjis", s, sizeof s), "attribute 'sjis' is not UTF-8 text (damaged?)");
    CHECK_ERROR(kao_h5_read_strings(&f, "latin1", &strings, &count), "entry 1 of dataset 'latin1' is not UTF-8 text");
    CHECK_ERROR(kao_h5_list(&f, "odd", &strings, &count), "a dataset name in group 'odd' is not UTF-8 text");
    CHECK(kao_h5_list(&f, NULL, &strings, &count) == 0 && count == 5 && !strcmp(strings[0], "n") &&
              !strcmp(strings[1], "paths") && !strcmp(strings[2], "latin1") && !strcmp(strings[3], "fixed") &&
              !strcmp(strings[4], "wide"),
          "root lists the datasets in creation order, not the group");
    if (count) kao_h5_free_names(strings, count);
    CHECK(kao_h5_list(&f, "group", &strings, &count) == 0 && count == 1 && !strcmp(strings[0], "x"), "group list");
    if (count) kao_h5_free_names(strings, count);
    kao_h5_close(&f);

    /* An abandoned writer leaves nothing. */
    tmp_path(path, sizeof path, "abandoned.h5");
    CHECK(kao_h5_create(&f, path) == KAO_OK, "%s", kao_last_error());
    kao_h5_write_f32(&f, "x", x, 1, (int64_t[]){6});
    kao_h5_close(&f);
    CHECK(!kao_file_exists(path) && count_temp_files() == 0, "abandoned writer left a file");
}

/* What kao train records beside the weights (trained_info.h): read back; absent reads as zero; a
 * recorded size out of range is refused by name. */
static void test_trained_info(void) {
    char path[600];
    tmp_path(path, sizeof path, "trained.h5");
    kao_trained_info in = {.input_height = 112, .input_width = 96, .split_hash = "0e856ce49b931cfb"}, out;
    kao_h5_file f;
    const char *classes[] = {"山田", "鈴木", "佐藤"};
    float W[2 * 3] = {0};
    int rc = kao_h5_create(&f, path);
    rc |= kao_trained_info_write(&f, &in);
    rc |= kao_checkpoint_write_arcface(&f, W, 2, (char *const *)classes, 3);
    rc |= kao_h5_commit(&f);
    CHECK(rc == KAO_OK, "write: %s", kao_last_error());
    CHECK(kao_trained_info_read(path, &out) == KAO_OK && out.input_height == 112 && out.input_width == 96 &&
              out.num_identities == 3 && !strcmp(out.split_hash, in.split_hash),
          "read back: %dx%d, %d identities, split '%s'", out.input_height, out.input_width, out.num_identities,
          out.split_hash);

    tmp_path(path, sizeof path, "tiny.h5"); /* kao_weights_save: no training record */
    CHECK(kao_trained_info_read(path, &out) == KAO_OK && out.input_height == 0 && out.num_identities == 0 &&
              !out.split_hash[0], "a file without a record: %s", kao_last_error());

    tmp_path(path, sizeof path, "bad_size.h5");
    rc = kao_h5_create(&f, path);
    rc |= kao_trained_info_write(&f, &(kao_trained_info){.input_height = 5, .input_width = 48});
    rc |= kao_h5_commit(&f);
    CHECK(rc == KAO_OK, "write: %s", kao_last_error());
    CHECK_ERROR(kao_trained_info_read(path, &out), "bad_size.h5: attribute input_height = 5 is not an input size");
}

int main(void) {
    const char *tmp = getenv("TMPDIR");
    snprintf(tmp_root, sizeof tmp_root, "%s/kao_test_weights_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(tmp_root)) {
        perror(tmp_root);
        return 1;
    }
    double t0 = kao_now_seconds();
    test_round_trip();
    test_unreadable_files();
    test_wrong_architecture();
    test_bad_tensors();
    test_head_skip();
    test_paths();
    test_probe_variants();
    test_group();
    test_h5io();
    test_trained_info();
    printf("test_weights: %.2f s\n", kao_now_seconds() - t0);
    nftw(tmp_root, remove_one, 16, FTW_DEPTH | FTW_PHYS);
    return check_summary("test_weights");
}
