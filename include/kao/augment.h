/* augment.h — training-time image augmentation: torchvision's
 *     Compose([RandomResizedCrop((H, W), scale, ratio), RandomHorizontalFlip(hflip),
 *              ColorJitter(brightness, contrast, saturation, hue), RandomGrayscale(grayscale),
 *              ToTensor(), Normalize(mean, std)])
 * on a PIL RGB image, equal in distribution (the draws) and pixel for pixel (the operations, given
 * the draws). docs/augmentation.md maps each config key onto torchvision's argument.
 *
 * kao_augment_sample draws one sample's parameters, in torchvision's order:
 *  1. crop box (RandomResizedCrop.get_params): up to 10 attempts, each an area fraction
 *     a ~ U[crop_scale_min, crop_scale_max] and an aspect ratio r = exp(U[ln crop_ratio_min,
 *     ln crop_ratio_max]), w = round(sqrt(a·area·r)), h = round(sqrt(a·area/r)) (round half to
 *     even, as Python's round); the first with 0 < w <= width and 0 < h <= height is placed at
 *     top ~ U{0..height-h}, left ~ U{0..width-w}. After 10 failures: the central crop of the whole
 *     image clamped to the ratio range (w = width, h = round(width / crop_ratio_min) when the image
 *     is narrower than crop_ratio_min; h = height, w = round(height · crop_ratio_max) when wider
 *     than crop_ratio_max; else the whole image). crop_scale_min = crop_scale_max = 1 turns the
 *     crop off: the whole image, nothing drawn (torchvision would still take the fallback's central
 *     crop of an image whose own ratio lies outside the range);
 *  2. flip: u < hflip, u ~ U[0, 1);
 *  3. jitter: an order, uniform over the 24 permutations of (brightness, contrast, saturation,
 *     hue) (torch.randperm(4)); then factors b ~ U[max(0, 1 − brightness), 1 + brightness], c and
 *     s likewise, hue h ~ U[−hue, hue]; an amplitude of 0 switches its operation off;
 *  4. grayscale: u < grayscale.
 * kao_augment_apply applies them, with PIL's uint8 arithmetic (Pillow 13's libImaging, bit for
 * bit; tests/test_augment_distribution.py holds it to torchvision's functional ops):
 *  - crop, then resize to H × W by PIL's bilinear filter (kao_image_resize_rgb);
 *  - brightness: blend with black; contrast: blend with the grey level int(mean(L) + 0.5), L the
 *    image's PIL "L" conversion ((19595 R + 38470 G + 7471 B + 2^15) >> 16); saturation: blend with
 *    L per pixel. PIL's blend of a (the grey) towards x (the image) by f computes a + f·(x − a) in
 *    float, clips to [0, 255] and truncates to uint8 (so each blend loses half a level on average,
 *    in torchvision as here);
 *  - hue: PIL's RGB → HSV (uint8 channels), H += int(h·255) modulo 256, HSV → RGB;
 *  - grayscale: L replicated to the three channels;
 *  - flip: x → W − 1 − x, done while normalising (every colour operation is per pixel or uses the
 *    image's mean, so it commutes with the flip);
 *  - normalisation (v / 255 − mean) / std, as kao_image_to_input.
 * Every operation that is off leaves the pixels alone, so with everything off the result equals
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
    double crop_scale_min, crop_scale_max; /* area fraction, in (0, 1] */
    double crop_ratio_min, crop_ratio_max; /* crop width / height, > 0 */
    double hflip;                          /* probability */
    double brightness, contrast, saturation; /* jitter amplitudes, >= 0 */
    double hue;                            /* in [0, 0.5] */
    double grayscale;                      /* probability */
} kao_augment_cfg;

/* The colour operations, in the order of torchvision's ColorJitter (its fn_idx numbers). */
enum { KAO_JITTER_BRIGHTNESS, KAO_JITTER_CONTRAST, KAO_JITTER_SATURATION, KAO_JITTER_HUE, KAO_JITTER_OPS };

/* One sample's draws. */
typedef struct {
    int top, left, height, width;    /* crop box in the image */
    bool flip;
    int order[KAO_JITTER_OPS];       /* the jitter operations in the order applied */
    bool jitter[KAO_JITTER_OPS];     /* which are on */
    double factor[KAO_JITTER_OPS];   /* b, c, s factors; the hue shift h */
    bool grayscale;
} kao_augment_params;

/* Everything off: validation. */
kao_augment_cfg kao_augment_none(void);

/* The generator of one sample: a function of the run's seed, the epoch and the sample's position
 * in the epoch only, so the result does not depend on which thread prepares it or when. */
void kao_augment_rng(kao_rng *rng, uint64_t seed, int epoch, int64_t position);

/* The draws for an image of height × width pixels. */
void kao_augment_sample(kao_augment_params *p, const kao_augment_cfg *cfg, int height, int width, kao_rng *rng);

/* out (H, W, 3) float NHWC. scratch: at least kao_augment_scratch_bytes(img, H, W) bytes
 * (room for the resized image and the crop). */
size_t kao_augment_scratch_bytes(const kao_image *img, int H, int W);
void kao_augment_apply(float *out, const kao_image *img, int H, int W, const kao_augment_params *p,
                       const kao_input_norm *norm, uint8_t *scratch);
/* kao_augment_sample, then kao_augment_apply. */
void kao_augment_input(float *out, const kao_image *img, int H, int W, const kao_augment_cfg *cfg,
                       const kao_input_norm *norm, kao_rng *rng, uint8_t *scratch);

/* PIL's colour operations on n RGB pixels in place (augment_color.c). */
void kao_pil_brightness(uint8_t *rgb, size_t n, double factor);
void kao_pil_contrast(uint8_t *rgb, size_t n, double factor);
void kao_pil_saturation(uint8_t *rgb, size_t n, double factor);
void kao_pil_hue(uint8_t *rgb, size_t n, double hue);
void kao_pil_grayscale(uint8_t *rgb, size_t n);

#endif
