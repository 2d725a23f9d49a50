/* weights_source.c — kao_weights_open: tells a weights file's format by its content and gives back
 * an HDF5 file in kao's layout (weights_source.h). */
#include "kao/weights_source.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "kao/util.h"

typedef enum { SNIFF_HDF5, SNIFF_SAFETENSORS } sniffed;

/* HDF5 where its signature is at 0 or 512 (behind kao's seal); safetensors where the JSON header
 * starts after the 8-byte length. Anything else goes to HDF5, whose open reports it. */
static sniffed sniff(const char *path) {
    static const char hdf5_signature[8] = "\x89HDF\r\n\x1a\n";
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return SNIFF_HDF5; /* kao_h5_open says why */
    FILE *in = fopen(path, "rb");
    if (!in) return SNIFF_HDF5;
    unsigned char head[520];
    size_t n = fread(head, 1, sizeof head, in);
    fclose(in);
    if (n >= 8 && memcmp(head, hdf5_signature, 8) == 0) return SNIFF_HDF5;
    if (n >= 520 && memcmp(head + 512, hdf5_signature, 8) == 0) return SNIFF_HDF5;
    if (n >= 9 && head[8] == '{') return SNIFF_SAFETENSORS;
    return SNIFF_HDF5;
}

static void set_format(kao_weights_format *format, kao_weights_kind kind, const char *name) {
    if (!format) return;
    format->kind = kind;
    snprintf(format->name, sizeof format->name, "%s", name);
}

static int open_safetensors(kao_h5_file *f, const char *path, kao_weights_format *format) {
    if (kao_h5_create_memory(f, path)) return KAO_ERR;
    char dtypes[32], name[96];
    if (kao_safetensors_import(f, path, dtypes, sizeof dtypes)) {
        kao_h5_close(f);
        return KAO_ERR;
    }
    snprintf(name, sizeof name, "timm safetensors (%s)", dtypes);
    set_format(format, KAO_WEIGHTS_SAFETENSORS, name);
    return KAO_OK;
}

/* Replaces the opened Keras file src by its conversion in memory. */
static int convert_keras(kao_h5_file *f, kao_h5_file *src, const char *group, kao_weights_format *format) {
    char model[64], name[96];
    int rc = kao_h5_create_memory(f, src->path);
    if (rc == KAO_OK) rc = kao_keras_import(f, src, group, model, sizeof model);
    kao_h5_close(src);
    if (rc != KAO_OK) {
        kao_h5_close(f);
        return KAO_ERR;
    }
    snprintf(name, sizeof name, "Keras HDF5 (%s)", model);
    set_format(format, KAO_WEIGHTS_KERAS, name);
    return KAO_OK;
}

int kao_weights_open(kao_h5_file *f, const char *path, kao_weights_format *format) {
    if (sniff(path) == SNIFF_SAFETENSORS) return open_safetensors(f, path, format);
    kao_h5_file file;
    if (kao_h5_open(&file, path)) return KAO_ERR;
    const char *keras = kao_keras_weights_group(&file);
    if (keras) return convert_keras(f, &file, keras, format);
    kao_h5_seal_state seal;
    if (kao_h5_check_seal(path, &seal)) { /* passed in kao_h5_open: remembered, not read again */
        kao_h5_close(&file);
        return KAO_ERR;
    }
    set_format(format, seal == KAO_H5_SEALED ? KAO_WEIGHTS_KAO_SEALED : KAO_WEIGHTS_HDF5,
               seal == KAO_H5_SEALED ? "kao weights (sealed)" : "HDF5 state_dict (no seal)");
    *f = file;
    return KAO_OK;
}
