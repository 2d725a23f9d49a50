/* trained_info.h — what kao train records beside the weights in best.h5 and last.h5: the input
 * size the network was trained at, how many identities and which train/validation split.
 *
 * kao embed, kao verify and kao export default to that input size (a network trained at 112×112
 * embeds 224×224 faces worse, without a word), and kao export puts the identities and the split
 * into the ONNX metadata (kao.num_identities, kao.split_hash) unless told otherwise.
 *
 * Stored as root attributes input_height, input_width (int64) and split_hash (16 hex digits);
 * the identities are the names in arcface/classes (checkpoint.h). Files without them (timm
 * conversions, files of older kao) read as zero / "": the caller's defaults apply. */
#ifndef KAO_TRAINED_INFO_H
#define KAO_TRAINED_INFO_H

#include "kao/h5io.h"

typedef struct {
    int input_height, input_width; /* 0: not recorded */
    int num_identities;            /* 0: not recorded */
    char split_hash[24];           /* "": not recorded */
} kao_trained_info;

/* Writes the input size and the split hash (the identities are written with arcface/classes). */
int kao_trained_info_write(kao_h5_file *f, const kao_trained_info *info);
/* Reads what path records; fails only when the file cannot be read or a recorded value is bad. */
int kao_trained_info_read(const char *path, kao_trained_info *info);

#endif
