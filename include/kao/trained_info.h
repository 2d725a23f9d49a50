/* trained_info.h — what kao train records beside the weights in best.h5 and last.h5: the input
 * size the network was trained at, the input normalisation it was trained with, how many
 * identities and which train/validation split.
 *
 * kao embed, kao verify and kao export default to that input size (a network trained at 112×112
 * embeds 224×224 faces worse, without a word), and kao export puts the identities and the split
 * into the ONNX metadata (kao.num_identities, kao.split_hash) unless told otherwise.
 *
 * The normalisation, out = (x / 255 - mean) / std per RGB channel, comes with the weights: timm's
 * pretrained configs use the ImageNet mean/std for some variants and 0.5/0.5 for others, and a
 * network fed the wrong one gives poor embeddings without a word. kao train uses what its --init
 * file records and records what it used; kao embed, verify and export use what the weights record.
 *
 * kao train also records two thresholds measured on the validation pairs of the epoch whose
 * weights the file holds (metrics.h): the EER threshold and the threshold at FAR 1e-3, with the
 * number of different-identity pairs they come from (under 1000, the FAR 1e-3 threshold is the
 * threshold of no false accept: it does not measure 1e-3). kao verify --threshold eer|far1e-3 uses
 * them, kao export writes them into the ONNX metadata, kao info shows them.
 *
 * Stored as root attributes input_height, input_width (int64), input_mean, input_std (float64[3],
 * RGB, on the 0..1 scale), split_hash (16 hex digits), threshold_eer, threshold_far1e-3 (float64)
 * and threshold_diff_pairs (int64; the three together or none); the identities are the names in
 * arcface/classes (checkpoint.h). Files without them (files of older kao) read as zero / "" /
 * has_normalisation false: the caller's defaults apply, and for the normalisation that default is
 * the ImageNet mean/std, which kao used before it recorded anything. */
#ifndef KAO_TRAINED_INFO_H
#define KAO_TRAINED_INFO_H

#include <stdbool.h>
#include <stdint.h>

#include "kao/h5io.h"

typedef struct {
    int input_height, input_width; /* 0: not recorded */
    int num_identities;            /* 0: not recorded */
    char split_hash[24];           /* "": not recorded */
    bool has_normalisation;        /* mean and std recorded */
    float mean[3], std[3];         /* RGB, 0..1 scale */
    bool has_thresholds;           /* the three below recorded */
    double threshold_eer, threshold_far1e3;
    int64_t threshold_diff_pairs;  /* validation different-identity pairs they were measured on */
} kao_trained_info;

/* Writes the input size (when not 0), the normalisation (when has_normalisation), the split hash
 * (when not "") and the thresholds (when has_thresholds); the identities are written with arcface/classes. Reading goes through
 * kao_weights_open (weights_source.h): a safetensors or Keras file reads as what its importer
 * records. */
int kao_trained_info_write(kao_h5_file *f, const kao_trained_info *info);
/* Reads what path records; fails only when the file cannot be read or a recorded value is bad. */
int kao_trained_info_read(const char *path, kao_trained_info *info);
/* The normalisation info records, else the ImageNet mean and std. */
void kao_trained_info_normalisation(const kao_trained_info *info, float mean[3], float std[3]);

#endif
