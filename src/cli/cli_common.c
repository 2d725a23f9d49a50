#include <cblas.h>
#include <limits.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "kao/embeddings.h"
#include "kao/network.h"
#include "kao/trained_info.h"
#include "kao/util.h"
#include "kao/weights.h"

int kao_cli_report_error(void) {
    fprintf(stderr, "kao: error: %s\n", kao_last_error());
    return 1;
}

int kao_cli_usage_error(const char *command, const char *fmt, ...) {
    fprintf(stderr, "kao %s: ", command);
    va_list args;
    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);
    fprintf(stderr, " (see kao %s --help)\n", command);
    return 2;
}

bool kao_cli_parse_int(const char *text, int min, int max, int *out) {
    char *end;
    long v = strtol(text, &end, 10);
    if (end == text || *end || v < min || v > max) return false;
    *out = (int)v;
    return true;
}

bool kao_cli_parse_double(const char *text, double min, double max, double *out) {
    char *end;
    double v = strtod(text, &end);
    if (end == text || *end || !(v >= min && v <= max)) return false;
    *out = v;
    return true;
}

bool kao_cli_parse_size(const char *text, int *height, int *width) {
    char buf[64];
    snprintf(buf, sizeof buf, "%s", text);
    char *x = strchr(buf, 'x');
    if (x) *x = '\0';
    if (!kao_cli_parse_int(buf, 8, 4096, height)) return false;
    if (!x) {
        *width = *height;
        return true;
    }
    return kao_cli_parse_int(x + 1, 8, 4096, width);
}

int kao_cli_model_option(kao_cli_model_options *o, const char *command, int argc, char **argv, int *i) {
    const char *opt = argv[*i];
    bool known = !strcmp(opt, "--weights") || !strcmp(opt, "--model") || !strcmp(opt, "--width-mult") ||
                 !strcmp(opt, "--depth-mult");
    if (!known) return 0;
    if (*i + 1 >= argc) {
        kao_cli_usage_error(command, "%s needs a value", opt);
        return -1;
    }
    const char *value = argv[++*i];
    if (!strcmp(opt, "--weights")) o->weights = value;
    else if (!strcmp(opt, "--model")) o->model = value;
    else {
        double *target = !strcmp(opt, "--width-mult") ? &o->width_mult : &o->depth_mult;
        if (!kao_cli_parse_double(value, 0.01, 8.0, target)) {
            kao_cli_usage_error(command, "%s must be a number in (0, 8], got '%s'", opt, value);
            return -1;
        }
    }
    return 1;
}

int kao_cli_forward_option(kao_cli_forward_options *o, const char *command, int argc, char **argv, int *i) {
    const char *opt = argv[*i];
    if (!strcmp(opt, "--exif-transpose")) {
        o->image.exif_transpose = true;
        return 1;
    }
    bool known = !strcmp(opt, "--size") || !strcmp(opt, "--batch") || !strcmp(opt, "--threads") ||
                 !strcmp(opt, "--device") || !strcmp(opt, "--precision") || !strcmp(opt, "--max-image-pixels");
    if (!known) return 0;
    if (*i + 1 >= argc) {
        kao_cli_usage_error(command, "%s needs a value", opt);
        return -1;
    }
    const char *value = argv[++*i];
    if (!strcmp(opt, "--device")) {
        o->device = value; /* checked when it is opened: the error can then say why a GPU is missing */
    } else if (!strcmp(opt, "--precision")) {
        kao_precision unused;
        if (kao_precision_parse(&unused, value)) {
            kao_cli_usage_error(command, "%s", kao_last_error());
            return -1;
        }
        o->precision = value;
    } else if (!strcmp(opt, "--max-image-pixels")) {
        int n; /* the range of data.max_image_pixels */
        if (!kao_cli_parse_int(value, 1, INT_MAX, &n)) {
            kao_cli_usage_error(command, "--max-image-pixels wants a positive integer up to %d, got '%s'", INT_MAX,
                                value);
            return -1;
        }
        o->image.max_pixels = n;
    } else if (!strcmp(opt, "--size")) {
        if (!kao_cli_parse_size(value, &o->height, &o->width)) {
            kao_cli_usage_error(command, "--size wants H or HxW between 8 and 4096, got '%s'", value);
            return -1;
        }
    } else if (!kao_cli_parse_int(value, 1, 4096, !strcmp(opt, "--batch") ? &o->batch : &o->threads)) {
        kao_cli_usage_error(command, "%s wants a positive integer, got '%s'", opt, value);
        return -1;
    }
    return 1;
}

/* --model and the multipliers over what the file told. */
static int apply_model_options(kao_arch *arch, const kao_cli_model_options *o) {
    if (o->model || o->width_mult > 0 || o->depth_mult > 0) {
        const char *variant = o->model ? o->model : arch->variant;
        double wm = o->width_mult > 0 ? o->width_mult : (o->model ? 0 : arch->width_mult);
        double dm = o->depth_mult > 0 ? o->depth_mult : (o->model ? 0 : arch->depth_mult);
        char name[64];
        snprintf(name, sizeof name, "%s", variant);
        if (kao_arch_build(arch, name, wm, dm, arch->embedding_dim, 0.0f)) return KAO_ERR;
    }
    return KAO_OK;
}

int kao_cli_model_arch(kao_arch *arch, const kao_cli_model_options *o) {
    if (kao_weights_probe(o->weights, arch)) {
        if (!o->model) return KAO_ERR;
        /* The file's architecture cannot be told: build what the user named and let the strict
         * load name every mismatching tensor. */
        arch->embedding_dim = 512;
    }
    return apply_model_options(arch, o);
}

int kao_cli_model_arch_backbone(kao_arch *arch, const kao_cli_model_options *o, bool *has_head) {
    if (kao_weights_probe_backbone(o->weights, arch, has_head)) {
        if (!o->model) return KAO_ERR;
        *has_head = true; /* as kao_cli_model_arch: the strict check names a missing classifier */
        arch->embedding_dim = 512;
    }
    return apply_model_options(arch, o);
}

int kao_cli_load_model(kao_model *m, const kao_cli_model_options *o) {
    kao_arch arch;
    if (kao_cli_model_arch(&arch, o)) return KAO_ERR;
    kao_model_create(m, &arch);
    if (kao_weights_load(m, o->weights, NULL, NULL)) {
        kao_model_free(m);
        return KAO_ERR;
    }
    return KAO_OK;
}

void kao_cli_set_threads(int threads) {
    if (threads <= 0) return;
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
}

int kao_cli_forward_defaults(kao_cli_forward_options *fo, const char *weights) {
    kao_trained_info info;
    if (kao_trained_info_read(weights, &info)) return KAO_ERR;
    kao_trained_info_normalisation(&info, fo->norm.mean, fo->norm.std);
    if (fo->height > 0) return KAO_OK;
    fo->height = info.input_height > 0 ? info.input_height : 224;
    fo->width = info.input_width > 0 ? info.input_width : 224;
    if (info.input_height <= 0)
        fprintf(stderr, "note: %s records no input size; using %dx%d (--size chooses another)\n", weights,
                fo->height, fo->width);
    return KAO_OK;
}

int kao_cli_embed_images(float *out, const kao_model *m, const kao_cli_forward_options *fo, char *const *paths,
                         int count, bool progress) {
    kao_backend *be;
    kao_precision precision;
    if (kao_precision_parse(&precision, fo->precision) || kao_backend_open(&be, fo->device)) return KAO_ERR;
    int batch = fo->batch < count ? fo->batch : count;
    if (be->set_precision(be, precision) ||
        kao_acts_check_memory(m, be, batch, fo->height, fo->width, false, "lower --batch or --size")) {
        kao_backend_free(be);
        return KAO_ERR;
    }
    int rc = kao_embed_images(out, m, be, paths, count, fo->height, fo->width, &fo->norm, &fo->image, fo->batch,
                              progress);
    kao_backend_free(be);
    return rc;
}
