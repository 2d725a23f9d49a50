/* weights_source.h — one way in for every weights file kao reads, whatever wrote it.
 *
 * kao_weights_open tells a file's format by its content (not its name) and gives back an HDF5
 * file in kao's layout (weights.h: timm state_dict keys, PyTorch shapes), so that the name, type
 * and shape checks of weights.c and the attributes of trained_info.h apply to every format alike:
 *
 *   - HDF5 (signature "\x89HDF\r\n\x1a\n" at offset 0, or 512 behind kao's seal): kao's own files
 *     and plain state_dict dumps are the file itself (kao_h5_open: the seal is checked);
 *   - Keras's EfficientNetV2 weights (efficientnetv2-b0.h5 … -l.h5, with or without _notop: HDF5
 *     with a root or "model_weights" attribute layer_names): converted into an HDF5 file in memory
 *     (src/weights_keras.c), with Keras's preprocessing and default input size recorded;
 *   - safetensors (an 8-byte little-endian header length, then a JSON header starting with '{'),
 *     as the Hugging Face hub serves timm's weights: converted into an HDF5 file in memory
 *     (src/weights_safetensors.c), with timm's pretrained_cfg of the variant recorded when its
 *     shapes tell it.
 * Anything else is left to kao_h5_open, whose message says it is not an HDF5 file. Errors name
 * the user's file, in memory or not.
 */
#ifndef KAO_WEIGHTS_SOURCE_H
#define KAO_WEIGHTS_SOURCE_H

#include <stddef.h>

#include "kao/h5io.h"

typedef enum {
    KAO_WEIGHTS_KAO_SEALED, /* HDF5 with kao's seal: written by kao or tools/convert_timm.py */
    KAO_WEIGHTS_HDF5,       /* HDF5 without a seal: a state_dict dump (h5py) */
    KAO_WEIGHTS_SAFETENSORS,
    KAO_WEIGHTS_KERAS,
} kao_weights_kind;

typedef struct {
    kao_weights_kind kind;
    /* For people: "kao weights (sealed)", "HDF5 state_dict (no seal)", "timm safetensors (F16)",
     * "Keras HDF5 (efficientnetv2-b0, no top)". */
    char name[96];
} kao_weights_format;

/* Opens path for reading as described above; format may be NULL. Close f with kao_h5_close. */
int kao_weights_open(kao_h5_file *f, const char *path, kao_weights_format *format);

/* ---- the converters kao_weights_open uses ---------------------------------------------------- */

/* Fills mem (kao_h5_create_memory) from the safetensors file at path; dtypes gets the stored float
 * types for the format's name ("F32", "F16+BF16"). */
int kao_safetensors_import(kao_h5_file *mem, const char *path, char *dtypes, size_t dtypes_size);

/* The group of an HDF5 file that holds Keras weights: "/" (save_weights) or "model_weights"
 * (model.save), or NULL when the file is no Keras file. */
const char *kao_keras_weights_group(const kao_h5_file *f);
/* Fills mem from the Keras weights in group of src; model gets "efficientnetv2-b0, no top" (or the
 * like) for the format's name. */
int kao_keras_import(kao_h5_file *mem, const kao_h5_file *src, const char *group, char *model,
                     size_t model_size);

#endif
