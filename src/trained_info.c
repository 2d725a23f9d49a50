#include "kao/trained_info.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "kao/image.h"
#include "kao/util.h"
#include "kao/weights_source.h"

int kao_trained_info_write(kao_h5_file *f, const kao_trained_info *info) {
    if (info->input_height > 0 && (kao_h5_write_attr_i64(f, NULL, "input_height", info->input_height) ||
                                   kao_h5_write_attr_i64(f, NULL, "input_width", info->input_width)))
        return KAO_ERR; /* 0 is "not recorded": nothing to write */
    if (info->has_normalisation) {
        double mean[3], std[3];
        for (int c = 0; c < 3; c++) {
            mean[c] = info->mean[c];
            std[c] = info->std[c];
        }
        if (kao_h5_write_attr_f64_array(f, NULL, "input_mean", mean, 3) ||
            kao_h5_write_attr_f64_array(f, NULL, "input_std", std, 3))
            return KAO_ERR;
    }
    if (info->has_thresholds &&
        (kao_h5_write_attr_f64(f, NULL, "threshold_eer", info->threshold_eer) ||
         kao_h5_write_attr_f64(f, NULL, "threshold_far1e-3", info->threshold_far1e3) ||
         kao_h5_write_attr_i64(f, NULL, "threshold_diff_pairs", info->threshold_diff_pairs)))
        return KAO_ERR;
    return info->split_hash[0] ? kao_h5_write_attr_str(f, NULL, "split_hash", info->split_hash) : KAO_OK;
}

/* threshold_eer, threshold_far1e-3, threshold_diff_pairs: all or none; cosines (the FAR threshold
 * may lie a float step above 1: accepting nothing), at least one pair. */
static int read_thresholds(const kao_h5_file *f, kao_trained_info *info) {
    if (kao_h5_read_attr_f64(f, NULL, "threshold_eer", &info->threshold_eer) ||
        kao_h5_read_attr_f64(f, NULL, "threshold_far1e-3", &info->threshold_far1e3) ||
        kao_h5_read_attr_i64(f, NULL, "threshold_diff_pairs", &info->threshold_diff_pairs))
        return KAO_ERR;
    double eer = info->threshold_eer, far = info->threshold_far1e3;
    if (!(fabs(eer) <= 1) || !(fabs(far) <= 1.001) || info->threshold_diff_pairs < 1)
        return kao_fail("%s: attributes threshold_eer = %g, threshold_far1e-3 = %g, threshold_diff_pairs = %" PRId64
                        " are not thresholds (cosines, from at least one pair)", f->path, eer, far,
                        info->threshold_diff_pairs);
    info->has_thresholds = true;
    return KAO_OK;
}

/* input_mean and input_std: both or neither; finite, std > 0. */
static int read_normalisation(const kao_h5_file *f, kao_trained_info *info) {
    double mean[3], std[3];
    if (kao_h5_read_attr_f64_array(f, NULL, "input_mean", mean, 3) ||
        kao_h5_read_attr_f64_array(f, NULL, "input_std", std, 3))
        return KAO_ERR;
    for (int c = 0; c < 3; c++) {
        if (!isfinite(mean[c]) || !isfinite(std[c]) || !(std[c] > 0) || fabs(mean[c]) > 1e3 || std[c] > 1e3)
            return kao_fail("%s: attributes input_mean/input_std [%g, %g, %g] / [%g, %g, %g] are not a "
                            "normalisation (finite, std > 0)", f->path, mean[0], mean[1], mean[2], std[0],
                            std[1], std[2]);
        info->mean[c] = (float)mean[c];
        info->std[c] = (float)std[c];
    }
    info->has_normalisation = true;
    return KAO_OK;
}

void kao_trained_info_normalisation(const kao_trained_info *info, float mean[3], float std[3]) {
    for (int c = 0; c < 3; c++) {
        mean[c] = info->has_normalisation ? info->mean[c] : kao_imagenet_mean[c];
        std[c] = info->has_normalisation ? info->std[c] : kao_imagenet_std[c];
    }
}

static int read_size(const kao_h5_file *f, const char *name, int *out) {
    int64_t v;
    if (kao_h5_read_attr_i64(f, NULL, name, &v)) return KAO_ERR;
    if (v < 8 || v > 4096) return kao_fail("%s: attribute %s = %" PRId64 " is not an input size (8..4096)", f->path, name, v);
    *out = (int)v;
    return KAO_OK;
}

int kao_trained_info_read(const char *path, kao_trained_info *info) {
    memset(info, 0, sizeof *info);
    kao_h5_file f;
    if (kao_weights_open(&f, path, NULL)) return KAO_ERR; /* a foreign file's importer records its own */
    int rc = KAO_OK;
    if (kao_h5_has_attr(&f, NULL, "input_height") || kao_h5_has_attr(&f, NULL, "input_width"))
        rc = read_size(&f, "input_height", &info->input_height) || read_size(&f, "input_width", &info->input_width)
                 ? KAO_ERR
                 : KAO_OK;
    if (rc == KAO_OK && (kao_h5_has_attr(&f, NULL, "input_mean") || kao_h5_has_attr(&f, NULL, "input_std")))
        rc = read_normalisation(&f, info);
    if (rc == KAO_OK && (kao_h5_has_attr(&f, NULL, "threshold_eer") || kao_h5_has_attr(&f, NULL, "threshold_far1e-3") ||
                         kao_h5_has_attr(&f, NULL, "threshold_diff_pairs")))
        rc = read_thresholds(&f, info);
    if (rc == KAO_OK && kao_h5_has_attr(&f, NULL, "split_hash"))
        rc = kao_h5_read_attr_str(&f, NULL, "split_hash", info->split_hash, sizeof info->split_hash);
    if (rc == KAO_OK && kao_h5_exists(&f, "arcface/classes")) {
        kao_h5_info d;
        rc = kao_h5_dataset_info(&f, "arcface/classes", &d);
        if (rc == KAO_OK && (d.ndim != 1 || d.cls != KAO_H5_STRING))
            rc = kao_fail("%s: arcface/classes is not a list of names", path);
        if (rc == KAO_OK) info->num_identities = (int)d.shape[0];
    }
    kao_h5_close(&f);
    return rc;
}
