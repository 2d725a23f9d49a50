/* config.h — kao's run configuration: one table of keys, INI files, command-line overrides.
 *
 * Files are INI, read with inih (github.com/benhoyt/inih, BSD-3, Debian's libinih; a small,
 * long-maintained parser):
 *     [train]
 *     lr = 0.0001        ; a comment after whitespace + ';'
 *     # or ';' at the start of a line
 * Every key is "section.key" and lives in one table in src/config.c with its type (int, float,
 * bool, string, or enum with its accepted words), default, accepted range and a one-line description;
 * `kao train --help-config` prints it (kao_config_print_help). Rules:
 *  - An unknown key, a key outside any [section], a key given twice in one file, an indented
 *    continuation line, a line over 198 bytes (inih's line buffer), or a value the key does not accept
 *    is an error naming the file, line and key, and what is accepted (with a "did you mean" guess for
 *    unknown keys, and the replacement for keys of earlier versions, e.g. train.arcface_lr).
 *  - kao_config_given tells which keys a file or an override set: kao train takes the architecture
 *    keys a config leaves unset from its start weights.
 *  - Values are taken literally (no quotes; inih strips surrounding whitespace and "  ; comments").
 *    So a string value may not start or end with whitespace or quotes, nor contain ';' or a line break.
 *  - bool accepts true|false, yes|no, on|off, 1|0 (any case); written back as true|false.
 *  - Relative paths (data.root, model.weights) are relative to the current folder, as on the command line.
 *  - Command-line overrides go through kao_config_set with the same checks, after the file. The CLI
 *    takes `--set section.key=value` (kao_config_set_assignment); kao_config_has_key lets it also
 *    accept `--section.key value`.
 *  - kao_config_validate checks what spans keys (crop_scale_min <= crop_scale_max, ...) once all are set.
 *  - model.input_mean / model.input_std are "auto" until kao train resolves them from the start
 *    weights (kao_config_resolve_normalisation), so a run folder's config.ini holds the numbers used.
 *  - kao_config_dump writes every key, so a run folder's config.ini is the exact effective config;
 *    parsing the dump gives back an identical struct.
 *  - kao_config_hash covers every key except those that may change on a resume without changing
 *    the result (data.root, train.threads, train.workers, data.stop_on_bad_image, checkpoint.*), and
 *    data.follow_symlinks (the split's hash covers the images it lets in); --help-config marks them
 *    with '*'.
 */
#ifndef KAO_CONFIG_H
#define KAO_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "kao/augment.h"
#include "kao/schedule.h"

/* String keys hold at most this many bytes with their terminator (a config line is at most 198). */
#define KAO_CONFIG_STRING 200
/* The table's size is checked against this (src/config.c). */
#define KAO_CONFIG_MAX_KEYS 96
/* An integer key set to "auto" (train.workers): the program decides (train_setup.c). */
#define KAO_CONFIG_AUTO (-1)

/* Enum keys are stored as int; the accepted words are in this order. */
enum kao_optimizer { KAO_OPTIMIZER_ADAMW, KAO_OPTIMIZER_SGD };
/* train.schedule holds schedule.h's kao_schedule_type (constant|step|cosine, the same order). */
enum kao_sampler { KAO_SAMPLER_SHUFFLE, KAO_SAMPLER_M_PER_CLASS };
enum kao_metric { KAO_METRIC_VAL_LOSS, KAO_METRIC_EER, KAO_METRIC_AUC };

typedef struct {
    struct {
        char name[64];                   /* timm variant, e.g. "tf_efficientnetv2_b0" */
        double width_mult, depth_mult;   /* 0: the variant's own */
        int embedding_dim;
        int input_size;                  /* square input side in pixels */
        char weights[KAO_CONFIG_STRING]; /* HDF5 weights to start from; "" = random init */
        char input_mean[64], input_std[64]; /* "auto" or "r,g,b" on the 0..1 scale */
    } model;
    struct {
        char root[KAO_CONFIG_STRING];
        int min_images, max_images;
        bool strict;
        bool follow_symlinks;            /* kao_dataset_options.follow_symlinks */
        bool stop_on_bad_image;
        int max_image_pixels;            /* kao_image_options.max_pixels */
        bool exif_transpose;
        double val_fraction;
        int val_count;
        int seed;
    } data;
    struct {
        int epochs, batch_size;
        double lr, head_lr, weight_decay;
        int optimizer;                   /* enum kao_optimizer */
        double eps;                      /* AdamW's epsilon (the network's, and W's with arcface.optimizer = adamw) */
        double momentum;
        bool nesterov;
        int schedule;                    /* kao_schedule_type */
        int step_epochs;
        double step_gamma;
        int warmup_epochs, freeze_backbone_epochs;
        bool freeze_bn;
        double grad_clip, drop_path_rate;
        int sampler;                     /* enum kao_sampler */
        int m_per_class;
        int threads, workers;            /* workers: KAO_CONFIG_AUTO allowed */
        int seed;
        char device[64];                 /* "cpu", "cuda", "cuda:N" */
        int precision;                   /* kao_precision (backend.h): fp32|tf32|bf16 */
    } train;
    struct {
        double margin; /* degrees */
        double scale;
        int optimizer; /* enum kao_optimizer: W's own optimizer */
        double lr, weight_decay, momentum;
    } arcface;
    struct {
        int metric;    /* enum kao_metric */
        int patience;  /* 0: off */
        double min_delta;
    } early_stop;
    struct {
        int every_steps; /* 0: only at the end of each epoch */
        int keep;
    } checkpoint;
    struct {
        double crop_scale_min, crop_scale_max, crop_ratio_min, crop_ratio_max; /* kao_augment_cfg */
        double hflip, brightness, contrast, saturation, hue, grayscale;
    } augment;
    struct {
        double threshold;
        int same_pairs_per_identity; /* 0: all */
        double diff_pairs_per_same;  /* 0: all */
    } verify;
    /* Which keys a file or an override set, by table index (kao_config_given); not a key itself. */
    bool given[KAO_CONFIG_MAX_KEYS];
} kao_config;

/* The [augment] section as the loader takes it. */
kao_augment_cfg kao_config_augment(const kao_config *c);
/* Every key at its default. */
void kao_config_defaults(kao_config *c);

/* Applies the keys of an INI file on top of c (call kao_config_defaults first). Messages name
 * "path:line". */
int kao_config_load(kao_config *c, const char *path);
/* The same for INI text in memory; origin stands in for the file name in messages. */
int kao_config_parse_string(kao_config *c, const char *text, const char *origin);

/* Sets one key from its text form, with the table's checks. origin prefixes messages ("--set"). */
int kao_config_set(kao_config *c, const char *key, const char *value, const char *origin);
/* "section.key=value" (the argument of --set). */
int kao_config_set_assignment(kao_config *c, const char *assignment, const char *origin);
bool kao_config_has_key(const char *key);
/* Whether a file or kao_config_set gave key a value (false: its default), so that kao train can
 * take what the config leaves open from the start weights (model.name, ...). */
bool kao_config_given(const kao_config *c, const char *key);

/* The normalisation model.input_mean / model.input_std name; fails while either is "auto". */
int kao_config_normalisation(const kao_config *c, float mean[3], float std[3]);
/* Sets whichever of model.input_mean and model.input_std is "auto" to these numbers (written so
 * that they read back exactly). */
void kao_config_resolve_normalisation(kao_config *c, const float mean[3], const float std[3]);

/* Checks between keys; call after the file and overrides. */
int kao_config_validate(const kao_config *c);

/* The whole effective config as INI text (malloc'd; free it). */
char *kao_config_dump(const kao_config *c);
/* kao_config_dump into path, atomically. */
int kao_config_write(const kao_config *c, const char *path);
/* FNV-1a 64 of "section.key=value\n" over the hashed keys, in table order. */
uint64_t kao_config_hash(const kao_config *c);

/* Every key with type, default, accepted values and description (kao train --help-config). */
void kao_config_print_help(FILE *f);

#endif
