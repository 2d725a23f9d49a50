/* cli.h — the subcommands of the kao program and their shared option parsing.
 * Each kao_cmd_X takes argv starting at the subcommand's name and returns the exit status:
 * 0 success, 1 an error (one "kao: error: ..." line already printed), 2 a usage error. */
#ifndef KAO_CLI_H
#define KAO_CLI_H

#include <stdbool.h>

#include "kao/arch.h"
#include "kao/image.h"
#include "kao/model.h"

int kao_cmd_embed(int argc, char **argv);
int kao_cmd_info(int argc, char **argv);
int kao_cmd_bench(int argc, char **argv);
int kao_cmd_export(int argc, char **argv);
int kao_cmd_verify(int argc, char **argv);
int kao_cmd_train(int argc, char **argv);
int kao_cmd_convert(int argc, char **argv);
int kao_cmd_curate(int argc, char **argv);

/* Prints "kao: error: <kao_last_error()>" and returns 1. */
int kao_cli_report_error(void);
/* Prints "kao <command>: <message>" plus a hint to --help, returns 2. */
int kao_cli_usage_error(const char *command, const char *fmt, ...);

/* Parses "224" or "224x192" (H x W). */
bool kao_cli_parse_size(const char *text, int *height, int *width);
bool kao_cli_parse_int(const char *text, int min, int max, int *out);
bool kao_cli_parse_double(const char *text, double min, double max, double *out);

/* The model options several commands share: --weights, --model, --width-mult, --depth-mult. */
typedef struct {
    const char *weights;
    const char *model;
    double width_mult, depth_mult; /* 0: from the file or the variant */
} kao_cli_model_options;
/* If argv[*i] is one of the shared model options, consumes it (and its value) and returns 1;
 * returns 0 if it is not one, -1 (usage already printed) if its value is bad. */
int kao_cli_model_option(kao_cli_model_options *o, const char *command, int argc, char **argv, int *i);
/* The architecture: --model and the multipliers when given, else the file's attributes or shapes. */
int kao_cli_model_arch(kao_arch *arch, const kao_cli_model_options *o);
/* The same for commands that also take a backbone (info, convert): *has_head false for a file
 * without a classifier, whose arch then has a 1-d head to skip, never to write (weights.h). */
int kao_cli_model_arch_backbone(kao_arch *arch, const kao_cli_model_options *o, bool *has_head);
/* kao_cli_model_arch, then creates m and loads the weights strictly. */
int kao_cli_load_model(kao_model *m, const kao_cli_model_options *o);

/* The forward-pass options of embed and verify: --size H[xW], --batch N, --threads N, --device D,
 * --precision P, and how images are decoded: --max-image-pixels N, --exif-transpose. */
typedef struct {
    int height, width, batch;
    int threads;           /* 0: all cores */
    const char *device;    /* "cpu", "cuda", "cuda:N" */
    const char *precision; /* "fp32", "tf32", "bf16" */
    kao_input_norm norm;   /* filled in by kao_cli_forward_defaults from the weights */
    kao_image_options image;
} kao_cli_forward_options;
/* height, width 0: not given (kao_cli_forward_defaults fills them in) */
#define KAO_CLI_FORWARD_DEFAULTS \
    ((kao_cli_forward_options){.height = 0, .width = 0, .batch = 32, .device = "cpu", .precision = "fp32", \
                               .image = {.max_pixels = KAO_IMAGE_DEFAULT_MAX_PIXELS}})
/* As kao_cli_model_option, for the forward-pass options. */
int kao_cli_forward_option(kao_cli_forward_options *o, const char *command, int argc, char **argv, int *i);
/* --help lines of the model options but --weights, and of the forward-pass options. */
#define KAO_CLI_FORWARD_HELP                                                                              \
    "  --model NAME       architecture, e.g. tf_efficientnetv2_b0 (default: from the file)\n"                 \
    "  --width-mult X     custom channel multiplier (default: the file's or the variant's)\n"                \
    "  --depth-mult Y     custom depth multiplier\n"                                                         \
    "  --size H[xW]       input size; images of another size are resized bilinearly (default: the size\n"   \
    "                     the weights were trained at, as kao train records it; else 224)\n"                \
    "  --batch N          images per forward pass (default 32)\n"                                            \
    "  --threads N        CPU threads (default: all cores)\n"                                            \
    "  --device D         cpu, cuda or cuda:N (a GPU, where kao is built with CUDA; default cpu)\n"            \
    "  --precision P      fp32, or on a GPU tf32 or bf16 (as train.precision; default fp32)\n"            \
    "  --max-image-pixels N\n"                                                                            \
    "                     refuse images whose header claims more than N pixels (default 178956970,\n"   \
    "                     where Pillow raises DecompressionBombError)\n"                                \
    "  --exif-transpose   turn JPEGs upright by their EXIF orientation, as PIL's ImageOps.exif_transpose\n" \
    "                     (default: pixels as stored, as torchvision's PIL loading sees them)\n"

/* What the weights file records (trained_info.h): the input normalisation (else ImageNet's), and
 * the input size when --size was not given (else 224, with a note on stderr that says so). */
int kao_cli_forward_defaults(kao_cli_forward_options *fo, const char *weights);
/* kao_embed_images on the device and in the precision fo names, with fo's size and batch. */
int kao_cli_embed_images(float *out, const kao_model *m, const kao_cli_forward_options *fo, char *const *paths,
                         int count, bool progress);

/* kao bench --mode load (bench_load.c): the loader's images/s on the images of an identity-folder tree. */
typedef struct {
    const char *data, *device;
    int height, width, batch, workers, steps, warmup;
    bool follow_symlinks; /* as data.follow_symlinks */
} kao_cli_bench_load_options;
int kao_cli_bench_load(const kao_cli_bench_load_options *o);

/* Sets the OpenMP and OpenBLAS thread counts (0: leave the defaults). */
void kao_cli_set_threads(int threads);

#endif
