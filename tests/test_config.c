/* The config table, INI parsing through inih, overrides, validation, dump/reparse, hashing, and
 * every file in configs/. Expected defaults are the ones stated in the brief of issue 4 (ArcFace
 * margin 28.6 degrees, scale 64, verify threshold 0.4, val fraction 0.1, adamw, cosine). */
#include "check.h"
#include "kao/config.h"
#include "kao/image.h"
#include "kao/util.h"

#include <dirent.h>
#include <string.h>
#include <unistd.h>

static bool error_is(const char *want) {
    bool ok = strcmp(kao_last_error(), want) == 0;
    if (!ok) fprintf(stderr, "  error was: %s\n  expected:  %s\n", kao_last_error(), want);
    return ok;
}

static bool error_has(const char *part) {
    bool ok = strstr(kao_last_error(), part) != NULL;
    if (!ok) fprintf(stderr, "  error was: %s\n  expected it to contain: %s\n", kao_last_error(), part);
    return ok;
}

static int parse(kao_config *c, const char *text) {
    kao_config_defaults(c);
    return kao_config_parse_string(c, text, "test.ini");
}

static void test_defaults(void) {
    kao_config c;
    kao_config_defaults(&c);
    CHECK(strcmp(c.model.name, "tf_efficientnetv2_b0") == 0, "%s", c.model.name);
    CHECK(c.model.embedding_dim == 512 && c.model.input_size == 224, "model");
    CHECK(c.arcface.margin == 28.6 && c.arcface.scale == 64, "arcface %g %g", c.arcface.margin, c.arcface.scale);
    CHECK(c.verify.threshold == 0.4, "threshold %g", c.verify.threshold);
    CHECK(c.data.val_fraction == 0.1 && c.data.strict && c.data.min_images == 1, "data");
    CHECK(c.train.optimizer == KAO_OPTIMIZER_ADAMW && c.train.schedule == KAO_SCHEDULE_COSINE, "train enums");
    CHECK(c.early_stop.metric == KAO_METRIC_VAL_LOSS, "metric");
    CHECK(c.data.root[0] == '\0' && c.augment.hflip == 0.5, "root / hflip");
    CHECK(c.train.workers == KAO_CONFIG_AUTO, "workers %d", c.train.workers);
    CHECK(c.data.max_image_pixels == KAO_IMAGE_DEFAULT_MAX_PIXELS && !c.data.exif_transpose, "image decoding");
    CHECK(kao_config_set(&c, "data.max_image_pixels", "0", "t") == KAO_ERR &&
              error_has("data.max_image_pixels = '0' is not accepted; expected an integer in [1, 2147483647]"),
          "pixel limit 0");
    CHECK(kao_config_validate(&c) == KAO_OK, "defaults invalid: %s", kao_last_error());
    CHECK(kao_config_has_key("train.lr") && !kao_config_has_key("train") && !kao_config_has_key("lr"), "has_key");
    /* W's own optimizer: pytorch-metric-learning's SGD at 0.01; AdamW's eps is torch's */
    CHECK(c.arcface.optimizer == KAO_OPTIMIZER_SGD && c.arcface.lr == 0.01 && c.arcface.momentum == 0 &&
              c.arcface.weight_decay == 0 && c.train.eps == 1e-8,
          "W optimizer %d %g %g %g, eps %g", c.arcface.optimizer, c.arcface.lr, c.arcface.momentum,
          c.arcface.weight_decay, c.train.eps);
    CHECK(!kao_config_given(&c, "model.name") && !kao_config_given(&c, "data.max_image_pixels"),
          "a default or a failed set counts as given");
}

/* kao_config_given: which keys a file or an override set (kao train takes the others' architecture
 * from its start weights). */
static void test_given(void) {
    kao_config c;
    CHECK(parse(&c, "[model]\nname = tf_efficientnetv2_s\nwidth_mult = 0\n") == KAO_OK, "%s", kao_last_error());
    CHECK(kao_config_given(&c, "model.name") && kao_config_given(&c, "model.width_mult") &&
              !kao_config_given(&c, "model.depth_mult") && !kao_config_given(&c, "model.embedding_dim"),
          "given after a file");
    CHECK(kao_config_set(&c, "model.depth_mult", "0.5", "--set") == KAO_OK && kao_config_given(&c, "model.depth_mult"),
          "given after --set");
    char *text = kao_config_dump(&c);
    CHECK(parse(&c, text) == KAO_OK && kao_config_given(&c, "model.embedding_dim"), "a dump gives every key");
    free(text);
}

static void test_parse(void) {
    kao_config c;
    const char *text = "; a comment\n"
                       "# another\n"
                       "[model]\n"
                       "name = tf_efficientnetv2_s\n"
                       "width_mult=0.25   ; inline comment\n"
                       "\n"
                       "[train]\n"
                       "  lr = 0.01\n" /* indented after a section header: an ordinary key */
                       "optimizer = sgd\n"
                       "nesterov = Yes\n"
                       "freeze_bn = 1\n"
                       "schedule = step\n"
                       "[data]\n"
                       "root = /data/顔 画像\n"
                       "strict = off\n"
                       "[arcface]\n"
                       "margin: 30\n"; /* inih also takes ':' */
    CHECK(parse(&c, text) == KAO_OK, "%s", kao_last_error());
    CHECK(strcmp(c.model.name, "tf_efficientnetv2_s") == 0 && c.model.width_mult == 0.25, "model");
    CHECK(c.train.lr == 0.01 && c.train.optimizer == KAO_OPTIMIZER_SGD && c.train.nesterov && c.train.freeze_bn, "train");
    CHECK(c.train.schedule == KAO_SCHEDULE_STEP, "schedule %d", c.train.schedule);
    CHECK(strcmp(c.data.root, "/data/顔 画像") == 0 && !c.data.strict, "data root '%s'", c.data.root);
    CHECK(c.arcface.margin == 30 && c.arcface.scale == 64, "arcface");
    CHECK(c.train.batch_size == 32, "untouched key changed");
    /* "auto" where a key takes it (train.workers), a number otherwise */
    CHECK(parse(&c, "[train]\nworkers = 3\n") == KAO_OK && c.train.workers == 3, "workers 3: %s", kao_last_error());
    CHECK(parse(&c, "[train]\nworkers = auto\n") == KAO_OK && c.train.workers == KAO_CONFIG_AUTO, "workers auto: %s",
          kao_last_error());
    CHECK(parse(&c, "[train]\nworkers = -1\n") == KAO_ERR &&
              error_is("test.ini:2: train.workers = '-1' is not accepted; expected an integer in [0, 64] or auto"),
          "workers -1: %s", kao_last_error());
    CHECK(parse(&c, "[train]\nthreads = auto\n") == KAO_ERR &&
              error_is("test.ini:2: train.threads = 'auto' is not accepted; expected an integer in [0, 1024]"),
          "threads auto: %s", kao_last_error());
}

static void test_parse_errors(void) {
    kao_config c;
    /* Unknown key, with its line number and a guess. */
    CHECK(parse(&c, "[train]\nlr = 0.1\n\n\n\n\n\n\n\n\n\nlr_max = 1\n") == KAO_ERR, "unknown key accepted");
    CHECK(error_is("test.ini:12: unknown key 'train.lr_max' (did you mean 'train.lr'?)"), "unknown key");
    CHECK(parse(&c, "[training]\nepochs = 3\n") == KAO_ERR, "unknown section accepted");
    CHECK(error_is("test.ini:2: unknown key 'training.epochs' (did you mean 'train.epochs'?)"), "unknown section");
    CHECK(parse(&c, "[train]\nzzzzzzzz = 3\n") == KAO_ERR, "far-off key accepted");
    CHECK(error_is("test.ini:2: unknown key 'train.zzzzzzzz' (kao train --help-config lists the keys)"), "no guess");
    CHECK(parse(&c, "lr = 0.1\n") == KAO_ERR, "key outside a section accepted");
    CHECK(error_is("test.ini:1: key 'lr' is outside any [section] (did you mean 'train.lr'?)"), "no section");
    /* A key of earlier versions names what replaced it. */
    CHECK(parse(&c, "[train]\narcface_lr = 0.05\n") == KAO_ERR &&
              error_has("test.ini:2: key 'train.arcface_lr' was replaced by arcface.lr (W now has its own optimizer: "
                        "arcface.optimizer = sgd by default"),
          "old train.arcface_lr: %s", kao_last_error());
    kao_config_defaults(&c);
    CHECK(kao_config_set_assignment(&c, "train.arcface_lr=0.05", "--set") == KAO_ERR &&
              error_has("--set: key 'train.arcface_lr' was replaced by arcface.lr"),
          "--set train.arcface_lr: %s", kao_last_error());
    CHECK(parse(&c, "[verify]\nneg_pairs = 1000\n") == KAO_ERR &&
              error_has("test.ini:2: key 'verify.neg_pairs' was replaced by verify.diff_pairs_per_same"),
          "old verify.neg_pairs: %s", kao_last_error());

    /* Bad values name the key and what is accepted. */
    CHECK(parse(&c, "[train]\noptimizer = adam\n") == KAO_ERR, "bad enum accepted");
    CHECK(error_is("test.ini:2: train.optimizer = 'adam' is not accepted; expected one of adamw|sgd"), "enum");
    CHECK(parse(&c, "[train]\nlr = -0.001\n") == KAO_ERR, "negative lr accepted");
    CHECK(error_is("test.ini:2: train.lr = '-0.001' is not accepted; expected a number in (0, 10]"), "lr");
    CHECK(parse(&c, "[train]\nlr = 0\n") == KAO_ERR, "zero lr accepted");
    CHECK(parse(&c, "[train]\nlr = nan\n") == KAO_ERR && parse(&c, "[train]\nlr = inf\n") == KAO_ERR, "nan/inf");
    CHECK(parse(&c, "[train]\nlr = 0.1x\n") == KAO_ERR && parse(&c, "[train]\nlr =\n") == KAO_ERR, "junk float");
    CHECK(parse(&c, "[train]\nbatch_size = 3.5\n") == KAO_ERR, "fractional int accepted");
    CHECK(error_is("test.ini:2: train.batch_size = '3.5' is not accepted; expected an integer in [1, 65536]"), "int");
    CHECK(parse(&c, "[train]\nbatch_size = 99999999999999999999\n") == KAO_ERR, "overflow accepted");
    CHECK(parse(&c, "[train]\nbatch_size = 0\n") == KAO_ERR, "batch 0 accepted");
    CHECK(parse(&c, "[train]\nnesterov = maybe\n") == KAO_ERR, "bad bool accepted");
    CHECK(error_has("expected true|false (or yes|no, on|off, 1|0)"), "bool");
    CHECK(parse(&c, "[model]\nname = resnet50\n") == KAO_ERR, "unknown model accepted");
    CHECK(error_has("model.name = 'resnet50' is not accepted; expected one of tf_efficientnetv2_b0|"), "model");
    CHECK(parse(&c, "[data]\nroot = \"/x\"\n") == KAO_ERR && error_has("without quotes"), "quotes");

    /* Structure. */
    CHECK(parse(&c, "[train]\nlr = 0.1\nepochs = 3\nlr = 0.2\n") == KAO_ERR, "duplicate accepted");
    CHECK(error_is("test.ini:4: train.lr is already set on line 2"), "duplicate");
    CHECK(parse(&c, "[train]\nlr = 0.1\n  0.2\n") == KAO_ERR, "continuation accepted");
    CHECK(error_has("test.ini:3: indented line continues train.lr"), "continuation");
    CHECK(parse(&c, "[train]\nepochs 3\n") == KAO_ERR, "line without '=' accepted");
    CHECK(error_is("test.ini:2: cannot read 'epochs 3' (expected '[section]' or 'key = value')"), "syntax");
    CHECK(parse(&c, "[train]\nepochs = 3\n[model\nname = x\n") == KAO_ERR, "open section accepted");
    CHECK(error_has("test.ini:3: cannot read '[model'"), "section syntax");
    /* The first error wins, whichever kind it is. */
    CHECK(parse(&c, "[train]\nbogus\nlr = -1\n") == KAO_ERR && error_has("test.ini:2: cannot read"), "order 1");
    CHECK(parse(&c, "[train]\nlr = -1\nbogus\n") == KAO_ERR && error_has("test.ini:2: train.lr"), "order 2");

    /* Text in another encoding: Shift_JIS "顔" (0x8A 0xE7) in a path; UTF-8 Japanese is fine. */
    CHECK(parse(&c, "[train]\nepochs = 3\n[data]\nroot = /data/\x8a\xe7\n") == KAO_ERR &&
              error_is("test.ini:4: not UTF-8 text (save the file as UTF-8)"), "Shift_JIS: %s", kao_last_error());
    CHECK(kao_config_set(&c, "data.root", "/data/caf\xe9", "--set") == KAO_ERR &&
              error_is("--set: data.root is not UTF-8 text (kao's configs and run folders are UTF-8)"),
          "a Latin-1 --set value: %s", kao_last_error());
    CHECK(parse(&c, "[data]\nroot = /データ/顔\n") == KAO_OK && !strcmp(c.data.root, "/データ/顔"), "UTF-8 path: %s",
          kao_last_error());

    char line[400];
    memset(line, 'a', sizeof line);
    memcpy(line, "[data]\nroot = /", 15);
    line[sizeof line - 2] = '\n';
    line[sizeof line - 1] = '\0';
    CHECK(parse(&c, line) == KAO_ERR && error_has("test.ini:2: line is 391 bytes long; at most 198"), "long line");
    /* 198 bytes exactly is fine. */
    memset(line, 'a', sizeof line);
    memcpy(line, "[data]\nroot = /", 15);
    line[7 + 198] = '\0';
    CHECK(parse(&c, line) == KAO_OK && strlen(c.data.root) == 191, "198-byte line: %s", kao_last_error());
}

static void test_overrides(void) {
    kao_config c;
    kao_config_defaults(&c);
    CHECK(kao_config_set_assignment(&c, "train.lr=0.5", "--set") == KAO_OK, "%s", kao_last_error());
    CHECK(c.train.lr == 0.5, "lr %g", c.train.lr);
    CHECK(kao_config_set(&c, "early_stop.metric", "eer", "--early_stop.metric") == KAO_OK && c.early_stop.metric == KAO_METRIC_EER,
          "metric");
    CHECK(kao_config_set_assignment(&c, "data.root=/a=b", "--set") == KAO_OK && strcmp(c.data.root, "/a=b") == 0,
          "'=' in value");
    CHECK(kao_config_set_assignment(&c, "train.lr=-1", "--set") == KAO_ERR, "negative lr accepted");
    CHECK(error_is("--set: train.lr = '-1' is not accepted; expected a number in (0, 10]"), "negative lr");
    CHECK(c.train.lr == 0.5, "failed set changed the value");
    CHECK(kao_config_set_assignment(&c, "train.lrr=1", "--set") == KAO_ERR, "unknown key accepted");
    CHECK(error_is("--set: unknown key 'train.lrr' (did you mean 'train.lr'?)"), "unknown");
    CHECK(kao_config_set_assignment(&c, "train.lr", "--set") == KAO_ERR && error_has("expected section.key=value"),
          "no '='");
    CHECK(kao_config_set_assignment(&c, "data.root=a;b", "--set") == KAO_ERR && error_has("cannot hold ';'"), "';'");
    CHECK(kao_config_set_assignment(&c, "data.root= a", "--set") == KAO_ERR && error_has("leading or trailing"),
          "space");
    char long_value[300];
    memset(long_value, 'x', sizeof long_value);
    memcpy(long_value, "data.root=", 10);
    long_value[sizeof long_value - 1] = '\0';
    CHECK(kao_config_set_assignment(&c, long_value, "--set") == KAO_ERR && error_has("at most 191 are accepted"),
          "long value");
}

static void test_validate(void) {
    kao_config c;
    kao_config_defaults(&c);
    c.augment.crop_scale_min = 0.9;
    c.augment.crop_scale_max = 0.8;
    CHECK(kao_config_validate(&c) == KAO_ERR &&
              error_has("augment.crop_scale_min (0.9) is larger than augment.crop_scale_max"), "scale");
    kao_config_defaults(&c);
    c.augment.crop_ratio_min = 1.5;
    CHECK(kao_config_validate(&c) == KAO_ERR &&
              error_has("augment.crop_ratio_min (1.5) is larger than augment.crop_ratio_max (1.25)"), "ratio");
    kao_config_defaults(&c);
    CHECK(kao_config_parse_string(&c, "[augment]\nscale_min = 0.85\n", "old.ini") == KAO_ERR &&
              error_has("old.ini:2: key 'augment.scale_min' was replaced by augment.crop_scale_min (") &&
              error_has("area fraction"), "old crop key: %s", kao_last_error());
    kao_config_defaults(&c);
    CHECK(kao_config_set(&c, "train.sampler", "m_per_class", "t") == KAO_OK, "sampler");
    c.train.batch_size = 30;
    CHECK(kao_config_validate(&c) == KAO_ERR && error_has("must be a multiple of train.m_per_class (4)"), "m");
    c.train.batch_size = 32;
    CHECK(kao_config_validate(&c) == KAO_OK, "%s", kao_last_error());
    c.data.min_images = 10;
    c.data.max_images = 5;
    CHECK(kao_config_validate(&c) == KAO_ERR && error_has("data.max_images (5) is smaller"), "max < min");
    kao_config_defaults(&c);
    c.train.warmup_epochs = 40;
    CHECK(kao_config_validate(&c) == KAO_ERR && error_has("train.warmup_epochs (40)"), "warmup");
}

static void test_dump(void) {
    kao_config c, d;
    kao_config_defaults(&c);
    const char *sets[] = {"model.name=tf_efficientnetv2_m", "model.width_mult=0.3", "train.lr=0.30000000000000004",
                          "train.weight_decay=1e-07", "train.optimizer=sgd", "train.sampler=m_per_class",
                          "data.root=./データ/顔", "data.strict=no", "augment.hflip=0", "verify.threshold=-0.25",
                          "early_stop.metric=auc", "data.seed=2147483647", "arcface.margin=0.1"};
    for (size_t i = 0; i < sizeof sets / sizeof *sets; i++)
        CHECK(kao_config_set_assignment(&c, sets[i], "--set") == KAO_OK, "%s: %s", sets[i], kao_last_error());
    char *text = kao_config_dump(&c);
    CHECK(strstr(text, "\n[train]\n") && strstr(text, "\nlr = 0.30000000000000004\n"), "dump:\n%s", text);
    CHECK(strstr(text, "\nweight_decay = 1e-07\n") && strstr(text, "\nmargin = 0.1\n"), "shortest floats:\n%s", text);
    CHECK(strstr(text, "\nroot = ./データ/顔\n") && strstr(text, "\nstrict = false\n"), "dump:\n%s", text);
    CHECK(strstr(text, "\nworkers = auto\n"), "workers dumped as auto:\n%s", text);

    kao_config_defaults(&d);
    CHECK(kao_config_parse_string(&d, text, "dump") == KAO_OK, "reparse: %s", kao_last_error());
    char *again = kao_config_dump(&d);
    CHECK(strcmp(text, again) == 0, "dump of the reparsed config differs");
    CHECK(d.train.lr == 0.1 + 0.2 && d.train.weight_decay == 1e-7 && d.arcface.margin == 0.1, "doubles not exact");
    CHECK(d.train.optimizer == KAO_OPTIMIZER_SGD && !d.data.strict && d.augment.hflip == 0, "enums/bools");
    CHECK(strcmp(d.data.root, "./データ/顔") == 0 && d.data.seed == 2147483647, "root/seed");
    CHECK(kao_config_hash(&c) == kao_config_hash(&d), "hash differs after reparse");
    free(again);

    /* Reparsing onto a config whose values differ gives the same result: the dump sets every key. */
    kao_config e;
    kao_config_defaults(&e);
    kao_config_set(&e, "train.epochs", "7", "t");
    kao_config_set(&e, "data.root", "/elsewhere", "t");
    CHECK(kao_config_parse_string(&e, text, "dump") == KAO_OK, "%s", kao_last_error());
    again = kao_config_dump(&e);
    CHECK(strcmp(text, again) == 0, "dump does not pin every key");
    free(again);
    free(text);

    /* Through a file, written atomically. */
    char path[] = "/tmp/kao_test_config_XXXXXX";
    CHECK(mkdtemp(path) != NULL, "mkdtemp");
    char file[64];
    snprintf(file, sizeof file, "%s/config.ini", path);
    CHECK(kao_config_write(&c, file) == KAO_OK, "%s", kao_last_error());
    kao_config_defaults(&d);
    CHECK(kao_config_load(&d, file) == KAO_OK, "%s", kao_last_error());
    CHECK(kao_config_hash(&c) == kao_config_hash(&d) && d.train.lr == c.train.lr, "file round trip");
    unlink(file);
    rmdir(path);
    kao_config_defaults(&d);
    CHECK(kao_config_load(&d, file) == KAO_ERR && error_has("cannot open config"), "missing file");

    /* The hash ignores the keys that may change on resume, and no others. */
    uint64_t h = kao_config_hash(&c);
    kao_config_set(&c, "train.threads", "7", "t");
    kao_config_set(&c, "data.root", "/moved", "t");
    kao_config_set(&c, "checkpoint.keep", "9", "t");
    CHECK(kao_config_hash(&c) == h, "resume-safe keys changed the hash");
    kao_config_set(&c, "train.epochs", "31", "t");
    CHECK(kao_config_hash(&c) != h, "train.epochs did not change the hash");
}

static void test_help(void) {
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    kao_config_print_help(f);
    fclose(f);
    CHECK(strstr(text, "  train.lr                      0.0001                peak learning rate of the backbone\n"
                       "      accepted: a number in (0, 10]\n") != NULL,
          "help:\n%s", text);
    CHECK(strstr(text, "* train.threads ") != NULL && strstr(text, "[arcface]\n") != NULL, "help:\n%s", text);
    CHECK(strstr(text, "  arcface.margin                28.6 ") != NULL, "help:\n%s", text);
    free(text);
}

/* Every file in configs/ loads on top of the defaults and passes validation. */
static void test_config_files(void) {
    const char *src = getenv("KAO_SOURCE_DIR");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/configs", src ? src : ".");
    DIR *d = opendir(dir);
    CHECK(d != NULL, "cannot open %s", dir);
    if (!d) return;
    int loaded = 0, large = 0, small = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!kao_ends_with(e->d_name, ".ini")) continue;
        char path[1400];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        kao_config c;
        kao_config_defaults(&c);
        int rc = kao_config_load(&c, path);
        CHECK(rc == KAO_OK, "%s", kao_last_error());
        CHECK(rc == KAO_OK && kao_config_validate(&c) == KAO_OK, "%s: %s", path, kao_last_error());
        loaded++;
        if (strcmp(e->d_name, "finetune_large.ini") == 0) { /* the original's settings */
            CHECK(!kao_config_given(&c, "model.name") && c.model.input_size == 224, "large: architecture from --init");
            CHECK(c.train.batch_size == 32 && c.train.optimizer == KAO_OPTIMIZER_ADAMW &&
                      c.train.schedule == KAO_SCHEDULE_COSINE, "large train");
            CHECK(c.arcface.margin == 28.6 && c.arcface.scale == 64 && c.early_stop.metric == KAO_METRIC_VAL_LOSS,
                  "large arcface / early stop");
            CHECK(c.arcface.optimizer == KAO_OPTIMIZER_SGD && c.arcface.lr == 0.01, "large W optimizer");
            CHECK(c.data.min_images == 80, "large min_images %d", c.data.min_images);
            large++;
        }
        if (strcmp(e->d_name, "finetune_small.ini") == 0) { /* keeps every identity with a few images */
            CHECK(!kao_config_given(&c, "model.name") && c.data.min_images <= 5 && c.arcface.scale == 30 &&
                      c.arcface.margin < 28.6,
                  "small: min_images %d, scale %g, margin %g", c.data.min_images, c.arcface.scale, c.arcface.margin);
            small++;
        }
        if (strcmp(e->d_name, "demo.ini") == 0) {
            CHECK(c.model.width_mult == 0.25 && c.model.depth_mult == 0.5 && c.model.input_size == 64, "demo model");
            CHECK(c.data.root[0] != '\0', "demo has no data.root");
        }
    }
    closedir(d);
    CHECK(loaded >= 3 && large == 1 && small == 1, "%d configs found in %s", loaded, dir);
}

int main(void) {
    test_defaults();
    test_parse();
    test_parse_errors();
    test_overrides();
    test_given();
    test_validate();
    test_dump();
    test_help();
    test_config_files();
    return check_summary("test_config");
}
