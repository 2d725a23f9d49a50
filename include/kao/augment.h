/* augment.h — training-time image augmentation, then the same preprocessing as kao embed.
 *
 * From a decoded image to the model's input (H, W, 3), in this order:
 *  1. random resized crop (scale jitter): a side fraction s ~ U[scale_min, scale_max] is drawn and
 *     a crop of round(s·h) × round(s·w) pixels (the image's aspect ratio kept, at least 1 pixel) is
 *     taken at a uniformly drawn position; it is resized to H × W by PIL's bilinear resampling
 *     (image.h), as the untouched image is;
 *  2. horizontal flip with probability 1/2 (hflip);
 *  3. brightness then contrast, as torchvision's ColorJitter computes them on a PIL image but in
 *     float without PIL's intermediate rounding: brightness x·b, contrast (x − μ)·c + μ with μ the
 *     mean luma (0.299 R + 0.587 G + 0.114 B, PIL's "L") after the brightness change, b ~ U[1 − brightness,
 *     1 + brightness], c ~ U[1 − contrast, 1 + contrast], clipped to [0, 255] after each;
 *  4. normalisation with the weights' mean and std (kao_input_norm), as kao_image_to_input.
 * A step whose setting is off (scale_min = scale_max = 1, hflip false, brightness or contrast 0)
 * draws nothing and changes nothing, so with everything off the result equals
 * kao_image_to_input(..., norm->mean, norm->std) bit for bit: validation and kao embed see the
 * same input.
 */
#ifndef KAO_AUGMENT_H
#define KAO_AUGMENT_H

#include <stdbool.h>
#include <stdint.h>

#include "kao/image.h"
#include "kao/rng.h"

typedef struct {
    bool hflip;
    double scale_min, scale_max; /* crop side fraction, in (0, 1] */
    double brightness, contrast; /* jitter amplitudes in [0, 1] */
} kao_augment_cfg;

/* Everything off: validation. */
kao_augment_cfg kao_augment_none(void);

/* The generator of one sample: a function of the run's seed, the epoch and the sample's position
 * in the epoch only, so the result does not depend on which thread prepares it or when. */
void kao_augment_rng(kao_rng *rng, uint64_t seed, int epoch, int64_t position);

/* out (H, W, 3) float NHWC. scratch: at least kao_augment_scratch_bytes(img, H, W) bytes
 * (room for the resized image and the crop). */
size_t kao_augment_scratch_bytes(const kao_image *img, int H, int W);
void kao_augment_input(float *out, const kao_image *img, int H, int W, const kao_augment_cfg *cfg,
                       const kao_input_norm *norm, kao_rng *rng, uint8_t *scratch);

#endif
