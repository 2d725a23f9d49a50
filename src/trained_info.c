#include "kao/trained_info.h"

#include <inttypes.h>
#include <string.h>

#include "kao/util.h"

int kao_trained_info_write(kao_h5_file *f, const kao_trained_info *info) {
    if (kao_h5_write_attr_i64(f, NULL, "input_height", info->input_height) ||
        kao_h5_write_attr_i64(f, NULL, "input_width", info->input_width))
        return KAO_ERR;
    return info->split_hash[0] ? kao_h5_write_attr_str(f, NULL, "split_hash", info->split_hash) : KAO_OK;
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
    if (kao_h5_open(&f, path)) return KAO_ERR;
    int rc = KAO_OK;
    if (kao_h5_has_attr(&f, NULL, "input_height") || kao_h5_has_attr(&f, NULL, "input_width"))
        rc = read_size(&f, "input_height", &info->input_height) || read_size(&f, "input_width", &info->input_width)
                 ? KAO_ERR
                 : KAO_OK;
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
