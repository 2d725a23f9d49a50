#include "kao/config.h"

#include "kao/arch.h"
#include "kao/files.h"
#include "kao/util.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef enum { T_INT, T_FLOAT, T_BOOL, T_STRING, T_ENUM } key_type;

enum {
    F_MIN_OPEN = 1, /* the minimum itself is not accepted */
    F_NO_HASH = 2,  /* may change on a resume: left out of kao_config_hash */
    F_VARIANT = 4,  /* string that must name a kao_arch variant */
    F_AUTO = 8,     /* int that also takes "auto", stored as KAO_CONFIG_AUTO */
    F_RGB = 16,     /* string: "auto" or three numbers "r,g,b" */
};

typedef struct {
    const char *name; /* "section.key" */
    key_type type;
    size_t offset, size;
    const char *def;    /* default, in the same text form a file uses */
    double min, max;    /* int and float */
    const char *values; /* enum: accepted words, '|'-separated, in the C enum's order */
    unsigned flags;
    const char *desc;
} key_def;

#define AT(field) offsetof(kao_config, field), sizeof(((kao_config *)0)->field)
#define INT(name, field, def, lo, hi, flags, desc) {name, T_INT, AT(field), def, lo, hi, NULL, flags, desc}
#define FLT(name, field, def, lo, hi, flags, desc) {name, T_FLOAT, AT(field), def, lo, hi, NULL, flags, desc}
#define BOOL(name, field, def, flags, desc) {name, T_BOOL, AT(field), def, 0, 0, NULL, flags, desc}
#define STR(name, field, def, flags, desc) {name, T_STRING, AT(field), def, 0, 0, NULL, flags, desc}
#define ENUM(name, field, def, values, flags, desc) {name, T_ENUM, AT(field), def, 0, 0, values, flags, desc}

/* The one table: every key kao reads, grouped by section in output order. */
static const key_def keys[] = {
    STR("model.name", model.name, "tf_efficientnetv2_b0", F_VARIANT, "backbone: timm EfficientNetV2 variant"),
    FLT("model.width_mult", model.width_mult, "0", 0, 8, 0, "channel multiplier (0: the variant's own)"),
    FLT("model.depth_mult", model.depth_mult, "0", 0, 8, 0, "block-count multiplier (0: the variant's own)"),
    INT("model.embedding_dim", model.embedding_dim, "512", 1, 65536, 0, "embedding size (classifier outputs)"),
    INT("model.input_size", model.input_size, "224", 32, 1024, 0, "input images are resized to this square side"),
    STR("model.input_mean", model.input_mean, "auto", F_RGB,
        "input normalisation mean per RGB channel, 0..1 scale (auto: what the start weights record, "
        "else ImageNet's 0.485,0.456,0.406)"),
    STR("model.input_std", model.input_std, "auto", F_RGB,
        "input normalisation std per RGB channel (auto: what the start weights record, else ImageNet's "
        "0.229,0.224,0.225)"),
    STR("model.weights", model.weights, "", 0,
        "HDF5 weights to start from (timm names; empty: random init)"),

    STR("data.root", data.root, "", F_NO_HASH, "identity-folder tree ROOT/<identity>/<image>.png|.jpg|.jpeg"),
    INT("data.min_images", data.min_images, "1", 1, 1e9, 0, "identities with fewer images are dropped"),
    INT("data.max_images", data.max_images, "0", 0, 1e9, 0,
        "use at most this many images per identity, first in name order (0: all)"),
    BOOL("data.strict", data.strict, "true", 0,
         "an identity folder with no PNG or JPEG image is an error (false: drop it with a warning)"),
    BOOL("data.follow_symlinks", data.follow_symlinks, "false", F_NO_HASH,
         "follow symbolic links that lead out of data.root (false: skip them, as the data summary reports)"),
    BOOL("data.stop_on_bad_image", data.stop_on_bad_image, "false", F_NO_HASH,
         "stop at the first image that fails to decode (false: skip it, warn and count)"),
    INT("data.max_image_pixels", data.max_image_pixels, "178956970", 1, INT_MAX, 0,
        "images whose header claims more pixels are refused before decoding (default: where Pillow "
        "raises DecompressionBombError)"),
    BOOL("data.exif_transpose", data.exif_transpose, "false", 0,
         "turn JPEGs upright by their EXIF orientation, as PIL's ImageOps.exif_transpose (false: as "
         "stored, as the original pipeline)"),
    FLT("data.val_fraction", data.val_fraction, "0.1", 0, 0.9, F_MIN_OPEN,
        "share of each identity's images for validation (at least 1, and 1 left for training)"),
    INT("data.val_count", data.val_count, "0", 0, 1e9, 0,
        "validation images per identity instead of val_fraction (0: use val_fraction)"),
    INT("data.seed", data.seed, "0", 0, INT_MAX, 0, "seed of the train/validation split"),

    INT("train.epochs", train.epochs, "30", 1, 1e6, 0, "passes over the training images"),
    INT("train.batch_size", train.batch_size, "32", 1, 65536, 0, "images per optimizer step"),
    FLT("train.lr", train.lr, "0.0001", 0, 10, F_MIN_OPEN, "peak learning rate of the backbone"),
    FLT("train.head_lr", train.head_lr, "0.001", 0, 10, F_MIN_OPEN,
        "peak learning rate of the embedding head (classifier)"),
    FLT("train.weight_decay", train.weight_decay, "0.01", 0, 1, 0, "weight decay (decoupled for adamw, L2 for sgd)"),
    ENUM("train.optimizer", train.optimizer, "adamw", "adamw|sgd", 0, "optimizer of the network"),
    FLT("train.eps", train.eps, "1e-08", 0, 1, 0,
        "adamw's epsilon (torch's default; also W's with arcface.optimizer = adamw)"),
    FLT("train.momentum", train.momentum, "0.9", 0, 0.999, 0, "sgd momentum of the network"),
    BOOL("train.nesterov", train.nesterov, "false", 0, "sgd: Nesterov momentum"),
    ENUM("train.schedule", train.schedule, "cosine", "constant|step|cosine", 0, "learning-rate schedule after warm-up"),
    INT("train.step_epochs", train.step_epochs, "10", 1, 1e6, 0,
        "step schedule: multiply the rates by step_gamma every this many epochs"),
    FLT("train.step_gamma", train.step_gamma, "0.1", 0, 1, F_MIN_OPEN, "step schedule: rate factor per step"),
    INT("train.warmup_epochs", train.warmup_epochs, "1", 0, 1e6, 0, "epochs of linear warm-up from 0"),
    INT("train.freeze_backbone_epochs", train.freeze_backbone_epochs, "0", 0, 1e6, 0,
        "first epochs train only the head and ArcFace centres"),
    BOOL("train.freeze_bn", train.freeze_bn, "false", 0, "keep BatchNorm statistics fixed (eval-mode BN)"),
    FLT("train.grad_clip", train.grad_clip, "0", 0, 1e6, 0, "clip the global gradient norm to this (0: off)"),
    FLT("train.drop_path_rate", train.drop_path_rate, "0", 0, 0.9, 0,
        "stochastic depth rate of the last block (timm's rule)"),
    ENUM("train.sampler", train.sampler, "shuffle", "shuffle|m_per_class", 0,
         "batches: shuffled images, or m_per_class images of batch_size/m_per_class identities"),
    INT("train.m_per_class", train.m_per_class, "4", 1, 1024, 0, "images per identity in an m_per_class batch"),
    INT("train.threads", train.threads, "0", 0, 1024, F_NO_HASH, "compute threads (0: all cores)"),
    INT("train.workers", train.workers, "auto", 0, 64, F_NO_HASH | F_AUTO,
        "image decoding threads (0: decode on the training thread; auto: 2 on the CPU, whose cores "
        "compute, and all cores but one (at most 16) for a GPU)"),
    INT("train.seed", train.seed, "0", 0, INT_MAX, 0, "seed of initialisation, sampling and augmentation"),
    STR("train.device", train.device, "cpu", F_NO_HASH,
        "where the steps and validation run: cpu, cuda or cuda:N (a run may resume on another device)"),
    ENUM("train.precision", train.precision, "fp32", "fp32|tf32|bf16", F_NO_HASH,
         "GPU arithmetic: fp32; tf32 tensor cores (fp32 data, 10-bit mantissa products); or bf16 mixed "
         "precision (bf16 activations and convolution operands, fp32 weights, statistics and loss)"),

    FLT("arcface.margin", arcface.margin, "28.6", 0, 90, 0, "additive angular margin in degrees"),
    FLT("arcface.scale", arcface.scale, "64", 0, 1024, F_MIN_OPEN, "logit scale"),
    /* Default: pytorch-metric-learning's own recipe for a loss with weights, which the original
     * pipeline followed: torch.optim.SGD(loss.parameters(), lr=0.01), no momentum, no decay. */
    ENUM("arcface.optimizer", arcface.optimizer, "sgd", "adamw|sgd", 0,
         "optimizer of the ArcFace class centres W, their own as in pytorch-metric-learning (adamw: "
         "torch's betas and train.eps)"),
    FLT("arcface.lr", arcface.lr, "0.01", 0, 10, F_MIN_OPEN,
        "peak learning rate of W (the schedule and warm-up of train.* apply)"),
    FLT("arcface.weight_decay", arcface.weight_decay, "0", 0, 1, 0,
        "weight decay of W (decoupled for adamw, L2 for sgd; W is normalised in the loss, so decay only "
        "shrinks it and enlarges its steps)"),
    FLT("arcface.momentum", arcface.momentum, "0", 0, 0.999, 0, "sgd momentum of W"),

    ENUM("early_stop.metric", early_stop.metric, "val_loss", "val_loss|eer|auc", 0,
         "validation metric watched for early stopping and the best checkpoint"),
    INT("early_stop.patience", early_stop.patience, "5", 0, 1e6, 0,
        "epochs without improvement before stopping (0: never stop early)"),
    FLT("early_stop.min_delta", early_stop.min_delta, "0", 0, 1e9, 0, "smallest change that counts as improvement"),

    INT("checkpoint.every_steps", checkpoint.every_steps, "0", 0, 1e9, F_NO_HASH,
        "also checkpoint every this many steps (0: only at epoch ends)"),
    INT("checkpoint.keep", checkpoint.keep, "3", 1, 1e6, F_NO_HASH, "newest checkpoints kept"),

    FLT("augment.crop_scale_min", augment.crop_scale_min, "0.7", 0, 1, F_MIN_OPEN,
        "RandomResizedCrop scale: smallest crop area as a fraction of the image's (0.7, a side of 0.84: "
        "a face crop keeps eyes, nose and mouth; min = max = 1: no crop)"),
    FLT("augment.crop_scale_max", augment.crop_scale_max, "1", 0, 1, F_MIN_OPEN,
        "RandomResizedCrop scale: largest crop area fraction"),
    FLT("augment.crop_ratio_min", augment.crop_ratio_min, "0.8", 0, 10, F_MIN_OPEN,
        "RandomResizedCrop ratio: smallest crop width/height, drawn log-uniformly (0.8..1.25: square and "
        "the usual face-crop formats, 92x112 = 0.82, 96x112 = 0.86, at most 25% stretch)"),
    FLT("augment.crop_ratio_max", augment.crop_ratio_max, "1.25", 0, 10, F_MIN_OPEN,
        "RandomResizedCrop ratio: largest crop width/height"),
    FLT("augment.hflip", augment.hflip, "0.5", 0, 1, 0,
        "RandomHorizontalFlip: probability of the mirror image (faces are left-right symmetric)"),
    FLT("augment.brightness", augment.brightness, "0.2", 0, 1, 0,
        "ColorJitter brightness: factor drawn from [1 - this, 1 + this] (0: off)"),
    FLT("augment.contrast", augment.contrast, "0.2", 0, 1, 0,
        "ColorJitter contrast: factor drawn from [1 - this, 1 + this] (0: off)"),
    FLT("augment.saturation", augment.saturation, "0.2", 0, 1, 0,
        "ColorJitter saturation: factor drawn from [1 - this, 1 + this] (0: off; cameras differ in colour)"),
    FLT("augment.hue", augment.hue, "0", 0, 0.5, 0,
        "ColorJitter hue: shift drawn from [-this, this] of the hue circle (0: off; skin keeps its hue)"),
    FLT("augment.grayscale", augment.grayscale, "0.1", 0, 1, 0,
        "RandomGrayscale: probability of a grey (PIL L) image (face sets mix grey and colour photos)"),

    FLT("verify.threshold", verify.threshold, "0.4", -1, 1, 0,
        "cosine similarity at or above which two faces are the same person"),
    INT("verify.same_pairs_per_identity", verify.same_pairs_per_identity, "10", 0, 1e8, 0,
        "validation: most same-identity pairs of one identity, a seeded uniform sample of its pairs "
        "(0: all; 10: every pair of an identity with up to 5 images)"),
    FLT("verify.diff_pairs_per_same", verify.diff_pairs_per_same, "10", 0, 1e6, 0,
        "validation: different-identity pairs per same-identity pair, a seeded uniform sample of all "
        "different-identity pairs (0: all)"),
};
#define NUM_KEYS ((int)(sizeof keys / sizeof keys[0]))
_Static_assert(NUM_KEYS <= KAO_CONFIG_MAX_KEYS, "raise KAO_CONFIG_MAX_KEYS");

/* An INI line is at most this many bytes: inih reads lines into a 200-byte buffer with the
 * line break and the terminator. */
#define MAX_LINE 198

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

static uint64_t fnv1a64(uint64_t h, const char *s) {
    for (; *s; s++) h = (h ^ (unsigned char)*s) * FNV_PRIME;
    return h;
}

static const key_def *find_key(const char *name) {
    for (int i = 0; i < NUM_KEYS; i++)
        if (strcmp(keys[i].name, name) == 0) return &keys[i];
    return NULL;
}

bool kao_config_has_key(const char *key) { return find_key(key) != NULL; }

bool kao_config_given(const kao_config *c, const char *key) {
    const key_def *k = find_key(key);
    KAO_ASSERT(k, "unknown key %s", key);
    return c->given[k - keys];
}

static const char *short_name(const key_def *k) { return strchr(k->name, '.') + 1; }

static size_t section_len(const key_def *k) { return (size_t)(short_name(k) - 1 - k->name); }

static size_t edit_distance(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    size_t *row = kao_malloc((nb + 1) * sizeof *row, "edit distance");
    for (size_t j = 0; j <= nb; j++) row[j] = j;
    for (size_t i = 1; i <= na; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= nb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    size_t d = row[nb];
    free(row);
    return d;
}

/* The key an unknown name most likely meant, or NULL: a key with the same name in another
 * section, else the nearest by edit distance within max(2, length/3). */
static const char *suggest(const char *name) {
    const char *dot = strchr(name, '.');
    const char *bare = dot ? dot + 1 : name;
    for (int i = 0; i < NUM_KEYS; i++)
        if (strcmp(short_name(&keys[i]), bare) == 0) return keys[i].name;
    size_t limit = strlen(name) / 3 > 2 ? strlen(name) / 3 : 2, best = limit + 1;
    const char *guess = NULL;
    for (int i = 0; i < NUM_KEYS; i++) {
        size_t d = edit_distance(name, keys[i].name);
        if (d < best) best = d, guess = keys[i].name;
    }
    return guess;
}

/* Keys of earlier versions, with what replaced them: an old config gets told what to write. */
#define CROP_NOW_AREA "(the crop is torchvision's RandomResizedCrop: an area fraction, side s is area s*s; " \
                      "with augment.crop_ratio_min/crop_ratio_max; docs/augmentation.md)"
static const struct {
    const char *old, *now;
} renamed[] = {
    {"train.arcface_lr", "arcface.lr (W now has its own optimizer: arcface.optimizer = sgd by default, "
                         "arcface.lr, arcface.weight_decay, arcface.momentum; set arcface.optimizer = adamw "
                         "and arcface.lr to the old value to train as before)"},
    {"augment.scale_min", "augment.crop_scale_min " CROP_NOW_AREA},
    {"augment.scale_max", "augment.crop_scale_max " CROP_NOW_AREA},
    {"verify.neg_pairs", "verify.diff_pairs_per_same (different-identity pairs per same-identity pair, with "
                         "verify.same_pairs_per_identity capping each identity's same pairs)"},
};

static int fail_unknown(const char *origin, const char *name) {
    for (size_t i = 0; i < sizeof renamed / sizeof renamed[0]; i++)
        if (strcmp(name, renamed[i].old) == 0)
            return kao_fail("%s: key '%s' was replaced by %s", origin, name, renamed[i].now);
    const char *guess = suggest(name);
    if (guess) return kao_fail("%s: unknown key '%s' (did you mean '%s'?)", origin, name, guess);
    return kao_fail("%s: unknown key '%s' (kao train --help-config lists the keys)", origin, name);
}

/* v as text that reads back as the same double: "%.15g" (which writes 10 as "10", not "1e+01")
 * when that suffices, else 16 or 17 digits. */
static void format_double(char *out, size_t size, double v) {
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, size, "%.*g", prec, v);
        if (strtod(out, NULL) == v) return;
    }
}

static void describe_accepted(char *out, size_t size, const key_def *k) {
    char lo[32], hi[32];
    format_double(lo, sizeof lo, k->min);
    format_double(hi, sizeof hi, k->max);
    switch (k->type) {
    case T_INT: snprintf(out, size, "an integer in [%s, %s]%s", lo, hi, k->flags & F_AUTO ? " or auto" : ""); break;
    case T_FLOAT: snprintf(out, size, "a number in %s%s, %s]", k->flags & F_MIN_OPEN ? "(" : "[", lo, hi); break;
    case T_BOOL: snprintf(out, size, "true|false (or yes|no, on|off, 1|0)"); break;
    case T_ENUM: snprintf(out, size, "one of %s", k->values); break;
    case T_STRING:
        if (k->flags & F_VARIANT) {
            size_t n = (size_t)snprintf(out, size, "one of ");
            for (int i = 0; kao_variant_names[i] && n < size; i++)
                n += (size_t)snprintf(out + n, size - n, "%s%s", i ? "|" : "", kao_variant_names[i]);
        } else {
            snprintf(out, size, "text");
        }
        break;
    }
}

static int fail_value(const char *origin, const key_def *k, const char *value) {
    char accepted[512];
    describe_accepted(accepted, sizeof accepted, k);
    return kao_fail("%s: %s = '%s' is not accepted; expected %s", origin, k->name, value, accepted);
}

static bool in_range(const key_def *k, double v) {
    return (k->flags & F_MIN_OPEN ? v > k->min : v >= k->min) && v <= k->max;
}

static int word_index(const char *words, const char *value) {
    size_t n = strlen(value);
    int index = 0;
    for (const char *w = words; *w; index++) {
        size_t len = strcspn(w, "|");
        if (len == n && strncmp(w, value, n) == 0) return index;
        w += len + (w[len] == '|');
    }
    return -1;
}

static bool is_variant(const char *value) {
    for (int i = 0; kao_variant_names[i]; i++)
        if (strcmp(kao_variant_names[i], value) == 0) return true;
    return false;
}

/* "r,g,b": three finite numbers separated by commas. */
static bool parse_rgb(const char *text, float out[3]) {
    const char *p = text;
    for (int c = 0; c < 3; c++) {
        char *end;
        errno = 0;
        double v = isspace((unsigned char)*p) ? NAN : strtod(p, &end);
        if (errno || !isfinite(v) || end == p || fabs(v) > 1e3 || *end != (c < 2 ? ',' : '\0')) return false;
        out[c] = (float)v;
        p = end + 1;
    }
    return true;
}

static int set_string(char *field, const key_def *k, const char *value, const char *origin) {
    size_t n = strlen(value);
    float rgb[3];
    if (k->flags & F_RGB && strcmp(value, "auto") != 0 && !parse_rgb(value, rgb))
        return kao_fail("%s: %s = '%s': expected auto or three numbers r,g,b (e.g. 0.5,0.5,0.5)", origin, k->name,
                        value);
    if (!kao_valid_utf8(value)) /* config.ini must read back (and resume) as it was written */
        return kao_fail("%s: %s is not UTF-8 text (kao's configs and run folders are UTF-8)", origin, k->name);
    if (k->flags & F_VARIANT) {
        if (!is_variant(value)) return fail_value(origin, k, value);
    } else if (strpbrk(value, ";\n\r") ||
               (n && (isspace((unsigned char)value[0]) || isspace((unsigned char)value[n - 1])))) {
        return kao_fail("%s: %s = '%s': a value in a config file cannot hold ';', a line break, or leading or "
                        "trailing spaces", origin, k->name, value);
    } else if (n && (value[0] == '"' || value[0] == '\'')) {
        return kao_fail("%s: %s = %s: values are taken literally, without quotes", origin, k->name, value);
    }
    size_t max = MAX_LINE - 3 - strlen(short_name(k)); /* "key = value" on one line */
    if (max > k->size - 1) max = k->size - 1;
    if (n > max) return kao_fail("%s: %s is %zu bytes long; at most %zu are accepted", origin, k->name, n, max);
    memcpy(field, value, n + 1);
    return KAO_OK;
}

static int set_value(kao_config *c, const key_def *k, const char *value, const char *origin) {
    char *field = (char *)c + k->offset;
    char *end = NULL;
    bool bad_start = !value[0] || isspace((unsigned char)value[0]);
    switch (k->type) {
    case T_INT: {
        if (k->flags & F_AUTO && strcmp(value, "auto") == 0) {
            *(int *)field = KAO_CONFIG_AUTO;
            return KAO_OK;
        }
        errno = 0;
        long v = bad_start ? 0 : strtol(value, &end, 10);
        if (bad_start || *end || errno || !in_range(k, (double)v)) return fail_value(origin, k, value);
        *(int *)field = (int)v;
        return KAO_OK;
    }
    case T_FLOAT: {
        errno = 0;
        double v = bad_start ? 0 : strtod(value, &end);
        if (bad_start || *end || errno || !isfinite(v) || !in_range(k, v)) return fail_value(origin, k, value);
        *(double *)field = v;
        return KAO_OK;
    }
    case T_BOOL: {
        static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {"false", "no", "off", "0"};
        for (int i = 0; i < 4; i++) {
            if (strcasecmp(value, yes[i]) == 0 || strcasecmp(value, no[i]) == 0) {
                *(bool *)field = strcasecmp(value, yes[i]) == 0;
                return KAO_OK;
            }
        }
        return fail_value(origin, k, value);
    }
    case T_ENUM: {
        int index = word_index(k->values, value);
        if (index < 0) return fail_value(origin, k, value);
        *(int *)field = index;
        return KAO_OK;
    }
    case T_STRING: return set_string(field, k, value, origin);
    }
    KAO_ASSERT(0, "key type %d", (int)k->type);
    return KAO_ERR;
}

/* The value of key k in c, in the form a file uses. */
static void format_value(char *out, size_t size, const kao_config *c, const key_def *k) {
    const char *field = (const char *)c + k->offset;
    switch (k->type) {
    case T_INT:
        if (*(const int *)field == KAO_CONFIG_AUTO) snprintf(out, size, "auto");
        else snprintf(out, size, "%d", *(const int *)field);
        break;
    case T_FLOAT: format_double(out, size, *(const double *)field); break;
    case T_BOOL: snprintf(out, size, "%s", *(const bool *)field ? "true" : "false"); break;
    case T_ENUM: {
        const char *w = k->values;
        for (int i = *(const int *)field; i > 0; i--) w += strcspn(w, "|") + 1;
        snprintf(out, size, "%.*s", (int)strcspn(w, "|"), w);
        break;
    }
    case T_STRING: snprintf(out, size, "%s", field); break;
    }
}

kao_augment_cfg kao_config_augment(const kao_config *c) {
    return (kao_augment_cfg){.crop_scale_min = c->augment.crop_scale_min, .crop_scale_max = c->augment.crop_scale_max,
                             .crop_ratio_min = c->augment.crop_ratio_min, .crop_ratio_max = c->augment.crop_ratio_max,
                             .hflip = c->augment.hflip, .brightness = c->augment.brightness,
                             .contrast = c->augment.contrast, .saturation = c->augment.saturation,
                             .hue = c->augment.hue, .grayscale = c->augment.grayscale};
}

void kao_config_defaults(kao_config *c) {
    memset(c, 0, sizeof *c);
    for (int i = 0; i < NUM_KEYS; i++) {
        int rc = set_value(c, &keys[i], keys[i].def, "default");
        KAO_ASSERT(rc == KAO_OK, "default of %s: %s", keys[i].name, kao_last_error());
    }
}

int kao_config_set(kao_config *c, const char *key, const char *value, const char *origin) {
    const key_def *k = find_key(key);
    if (!k) return fail_unknown(origin, key);
    if (set_value(c, k, value, origin)) return KAO_ERR;
    c->given[k - keys] = true;
    return KAO_OK;
}

int kao_config_set_assignment(kao_config *c, const char *assignment, const char *origin) {
    const char *eq = strchr(assignment, '=');
    if (!eq) return kao_fail("%s: expected section.key=value, got '%s'", origin, assignment);
    size_t n = (size_t)(eq - assignment);
    char key[128];
    if (n >= sizeof key) return kao_fail("%s: unknown key '%.*s'", origin, (int)n, assignment);
    memcpy(key, assignment, n);
    key[n] = '\0';
    return kao_config_set(c, key, eq + 1, origin);
}

/* State of one inih pass: the reader hands out lines itself so that the handler knows the line
 * number and the raw text (libinih's handler gets no line number). */
typedef struct {
    kao_config *c;
    const char *origin;
    const char *pos;     /* reader position in the text */
    const char *line;    /* raw text of the current line (not terminated) */
    int lineno;
    int error_line;      /* line of the first error, 0 while none */
    int set_on[NUM_KEYS];/* line where each key was set, 0: not yet */
    char prev_section[64];
    char prev_name[64];
} parse_state;

static char *read_line(char *buf, int size, void *stream) {
    parse_state *p = stream;
    if (!*p->pos || p->error_line) return NULL;
    const char *nl = strchr(p->pos, '\n');
    size_t len = nl ? (size_t)(nl - p->pos) : strlen(p->pos);
    p->lineno++;
    KAO_ASSERT(size >= MAX_LINE + 2, "inih line buffer %d", size);
    if (len > MAX_LINE) {
        p->error_line = p->lineno;
        kao_fail("%s:%d: line is %zu bytes long; at most %d are accepted", p->origin, p->lineno, len, MAX_LINE);
        return NULL;
    }
    memcpy(buf, p->pos, len);
    buf[len] = '\n';
    buf[len + 1] = '\0';
    if (!kao_valid_utf8(buf)) {
        p->error_line = p->lineno;
        kao_fail("%s:%d: not UTF-8 text (save the file as UTF-8)", p->origin, p->lineno);
        return NULL;
    }
    p->line = p->pos;
    p->pos += len + (nl != NULL);
    return buf;
}

static int handle_pair(void *user, const char *section, const char *name, const char *value) {
    parse_state *p = user;
    if (p->error_line) return 1;
    char where[300], full[256];
    snprintf(where, sizeof where, "%s:%d", p->origin, p->lineno);
    snprintf(full, sizeof full, "%s%s%s", section, section[0] ? "." : "", name);
    int rc = KAO_OK;
    bool indented = p->line[0] == ' ' || p->line[0] == '\t';
    if (indented && strcmp(section, p->prev_section) == 0 && strcmp(name, p->prev_name) == 0) {
        rc = kao_fail("%s: indented line continues %s; continuation lines are not supported (remove the "
                      "indentation)", where, full);
    } else if (!section[0]) {
        const char *guess = suggest(name);
        rc = guess ? kao_fail("%s: key '%s' is outside any [section] (did you mean '%s'?)", where, name, guess)
                   : kao_fail("%s: key '%s' is outside any [section]", where, name);
    } else {
        const key_def *k = find_key(full);
        if (!k) rc = fail_unknown(where, full);
        else if (p->set_on[k - keys])
            rc = kao_fail("%s: %s is already set on line %d", where, full, p->set_on[k - keys]);
        else if ((rc = set_value(p->c, k, value, where)) == KAO_OK) {
            p->set_on[k - keys] = p->lineno;
            p->c->given[k - keys] = true;
        }
    }
    snprintf(p->prev_section, sizeof p->prev_section, "%s", section);
    snprintf(p->prev_name, sizeof p->prev_name, "%s", name);
    if (rc != KAO_OK) p->error_line = p->lineno;
    return rc == KAO_OK;
}

int kao_config_parse_string(kao_config *c, const char *text, const char *origin) {
    parse_state *p = kao_calloc(1, sizeof *p, "config parser");
    p->c = c;
    p->origin = origin;
    p->pos = text;
    int rc = ini_parse_stream(read_line, p, handle_pair, p);
    int error_line = p->error_line;
    free(p);
    if (rc > 0 && (error_line == 0 || rc < error_line)) {
        const char *line = text;
        for (int i = 1; i < rc && line; i++) line = strchr(line, '\n'), line = line ? line + 1 : NULL;
        int len = line ? (int)strcspn(line, "\r\n") : 0;
        return kao_fail("%s:%d: cannot read '%.*s' (expected '[section]' or 'key = value')", origin, rc, len,
                        line ? line : "");
    }
    if (rc < 0) return kao_fail("%s: out of memory while parsing", origin);
    return error_line ? KAO_ERR : KAO_OK;
}

int kao_config_load(kao_config *c, const char *path) {
    FILE *f = kao_fopen_regular(path, "config");
    if (!f) return KAO_ERR;
    size_t cap = 4096, n = 0;
    char *text = kao_malloc(cap, "config text");
    size_t got;
    while ((got = fread(text + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n + 1 == cap) text = kao_realloc(text, cap *= 2, "config text");
    }
    bool failed = ferror(f) != 0;
    fclose(f);
    text[n] = '\0';
    int rc;
    if (failed) rc = kao_fail("%s: cannot read config", path);
    else if (memchr(text, '\0', n)) rc = kao_fail("%s: not a text file (it holds a zero byte)", path);
    else rc = kao_config_parse_string(c, text, path);
    free(text);
    return rc;
}

int kao_config_normalisation(const kao_config *c, float mean[3], float std[3]) {
    if (!parse_rgb(c->model.input_mean, mean) || !parse_rgb(c->model.input_std, std))
        return kao_fail("config: model.input_mean = %s, model.input_std = %s: not resolved to numbers",
                        c->model.input_mean, c->model.input_std);
    return KAO_OK;
}

void kao_config_resolve_normalisation(kao_config *c, const float mean[3], const float std[3]) {
    if (!strcmp(c->model.input_mean, "auto")) kao_format_floats(c->model.input_mean, sizeof c->model.input_mean, mean, 3);
    if (!strcmp(c->model.input_std, "auto")) kao_format_floats(c->model.input_std, sizeof c->model.input_std, std, 3);
}

int kao_config_validate(const kao_config *c) {
    float std[3];
    if (parse_rgb(c->model.input_std, std) && !(std[0] > 0 && std[1] > 0 && std[2] > 0))
        return kao_fail("config: model.input_std = %s: every std must be positive", c->model.input_std);
    if (c->augment.crop_scale_min > c->augment.crop_scale_max)
        return kao_fail("config: augment.crop_scale_min (%g) is larger than augment.crop_scale_max (%g)",
                        c->augment.crop_scale_min, c->augment.crop_scale_max);
    if (c->augment.crop_ratio_min > c->augment.crop_ratio_max)
        return kao_fail("config: augment.crop_ratio_min (%g) is larger than augment.crop_ratio_max (%g)",
                        c->augment.crop_ratio_min, c->augment.crop_ratio_max);
    if (c->data.max_images > 0 && c->data.max_images < c->data.min_images)
        return kao_fail("config: data.max_images (%d) is smaller than data.min_images (%d)", c->data.max_images,
                        c->data.min_images);
    if (c->train.sampler == KAO_SAMPLER_M_PER_CLASS && c->train.batch_size % c->train.m_per_class != 0)
        return kao_fail("config: train.batch_size (%d) must be a multiple of train.m_per_class (%d) with "
                        "train.sampler = m_per_class", c->train.batch_size, c->train.m_per_class);
    if (c->train.warmup_epochs > c->train.epochs)
        return kao_fail("config: train.warmup_epochs (%d) is larger than train.epochs (%d)", c->train.warmup_epochs,
                        c->train.epochs);
    return KAO_OK;
}

char *kao_config_dump(const kao_config *c) {
    size_t cap = 8192, n = 0;
    char *out = kao_malloc(cap, "config dump");
    n += (size_t)snprintf(out, cap, "# kao config: every key (kao train --help-config describes them)\n");
    for (int i = 0; i < NUM_KEYS; i++) {
        const key_def *k = &keys[i];
        char value[KAO_CONFIG_STRING + 64], line[KAO_CONFIG_STRING + 256];
        format_value(value, sizeof value, c, k);
        int len = 0;
        bool new_section = i == 0 || strncmp(k->name, keys[i - 1].name, section_len(k) + 1) != 0;
        if (new_section) len = snprintf(line, sizeof line, "\n[%.*s]\n", (int)section_len(k), k->name);
        len += snprintf(line + len, sizeof line - (size_t)len, "%s =%s%s\n", short_name(k), value[0] ? " " : "",
                        value);
        if (n + (size_t)len + 1 > cap) out = kao_realloc(out, cap *= 2, "config dump");
        memcpy(out + n, line, (size_t)len + 1);
        n += (size_t)len;
    }
    return out;
}

int kao_config_write(const kao_config *c, const char *path) {
    char temp[4200];
    FILE *f = kao_atomic_fopen(temp, sizeof temp, path);
    if (!f) return KAO_ERR;
    char *text = kao_config_dump(c);
    fputs(text, f);
    free(text);
    return kao_atomic_fclose(f, temp, path);
}

uint64_t kao_config_hash(const kao_config *c) {
    uint64_t h = FNV_OFFSET;
    for (int i = 0; i < NUM_KEYS; i++) {
        if (keys[i].flags & F_NO_HASH) continue;
        char value[KAO_CONFIG_STRING + 64];
        format_value(value, sizeof value, c, &keys[i]);
        h = fnv1a64(h, keys[i].name);
        h = fnv1a64(h, "=");
        h = fnv1a64(h, value);
        h = fnv1a64(h, "\n");
    }
    return h;
}

void kao_config_print_help(FILE *f) {
    fprintf(f, "Config keys: set in an INI file as [section] key = value, or with --set section.key=value.\n"
               "Keys marked * may change when resuming a run.\n");
    kao_config defaults;
    kao_config_defaults(&defaults);
    for (int i = 0; i < NUM_KEYS; i++) {
        const key_def *k = &keys[i];
        if (i == 0 || strncmp(k->name, keys[i - 1].name, section_len(k) + 1) != 0)
            fprintf(f, "\n[%.*s]\n", (int)section_len(k), k->name);
        char value[KAO_CONFIG_STRING + 64], accepted[512];
        format_value(value, sizeof value, &defaults, k);
        describe_accepted(accepted, sizeof accepted, k);
        fprintf(f, "%c %-29s %-21s %s\n      accepted: %s\n", k->flags & F_NO_HASH ? '*' : ' ', k->name,
                value[0] ? value : "\"\"", k->desc, accepted);
    }
}
