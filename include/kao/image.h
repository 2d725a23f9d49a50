/* image.h — PNG decoding and writing, resizing, and the model's input normalisation.
 *
 * Decoding (libpng) gives 8-bit RGB whatever the file holds, meant to equal PIL's
 * Image.open(path).convert('RGB'):
 *  - grey (1, 2, 4, 8 bit) is scaled to 8 bits (2-bit 3 -> 255) and copied to R, G and B;
 *  - palette images are looked up in the palette;
 *  - alpha (grey+alpha, RGBA, a palette's or a colour key's tRNS) is ignored, not composited:
 *    the colour samples are kept as they are, as PIL's convert('RGB') does;
 *  - 16-bit samples keep their high byte (v >> 8, libpng's png_set_strip_16), as PIL does for
 *    16-bit RGB, RGBA and grey+alpha. One known difference: PIL opens 16-bit grey as mode I;16
 *    and convert('RGB') clips each sample to 255 (so 300 -> 255 and the picture turns white);
 *    kao gives 300 >> 8 = 1 instead;
 *  - interlaced (Adam7) files are de-interlaced; gAMA, sBIT, iCCP are ignored (as PIL does).
 * Tested bit-exact against PIL on every colour type and bit depth (tests/test_image.c).
 *
 * Resizing is PIL's bilinear resampling with antialias, which is what torchvision's
 * transforms.Resize((H, W)) does to a PIL image: separable (one pass per axis), a triangle filter
 * whose support grows with the downscale factor, coefficients rounded to 22-bit fixed point and
 * every pass rounded to uint8, exactly as Pillow's Resample.c does. The pass order follows
 * Pillow 13: vertical first when the height loses more than twice as many pixels as the width,
 * else horizontal first. Pillow <= 12 always went horizontal first: in the vertical-first cases
 * its results differ from Pillow 13's (measured on 109 random images: 1 level in about 20% of
 * the values, never more). Against torchvision 0.20.1 on Pillow 13.0 kao agrees bit for bit:
 * 0 uint8 levels in tests/test_image.c, and in a one-off check of 1505 random resizes (sides
 * 1-79, and 92x112, 640x480, 3000x2000 to 224x224). It does NOT match
 * torch.nn.functional.interpolate or torchvision's tensor Resize (different rounding, no
 * intermediate uint8).
 *
 * Normalisation: out = (x / 255 - mean[c]) / std[c] in float32, in the order torchvision's
 * ToTensor and Normalize compute it, into NHWC (H, W, 3).
 */
#ifndef KAO_IMAGE_H
#define KAO_IMAGE_H

#include <stddef.h>
#include <stdint.h>

/* Largest image kao decodes: files claiming more are refused before any pixel memory is taken. */
#define KAO_IMAGE_MAX_SIDE 65535
#define KAO_IMAGE_MAX_PIXELS (1L << 28)

typedef struct {
    int width, height;
    uint8_t *pixels; /* (height, width, 3) RGB, rows top to bottom; owned */
} kao_image;

/* ImageNet mean and std (torchvision's IMAGENET_DEFAULT, REFERENCE.md §3), RGB order. */
extern const float kao_imagenet_mean[3];
extern const float kao_imagenet_std[3];

/* Decodes a PNG file into img (which the caller frees with kao_image_free). On failure img is
 * left empty and the error names the file: cannot open, empty file, not a PNG file (signature
 * mismatch), truncated PNG, corrupt PNG (libpng: <message>), or dimensions over the limits. */
int kao_image_load_rgb(kao_image *img, const char *path);
/* The same from a PNG held in memory; name is used in the error messages. */
int kao_image_decode_png(kao_image *img, const void *data, size_t size, const char *name);
void kao_image_free(kao_image *img);

/* Writes img as an 8-bit RGB PNG, atomically (a temp file renamed over path). */
int kao_image_save_png(const kao_image *img, const char *path);

/* PIL's bilinear resize (see above): out (out_h, out_w, 3) from in (in_h, in_w, 3). Sizes >= 1. */
void kao_image_resize_rgb(uint8_t *out, const uint8_t *in, int in_h, int in_w, int out_h, int out_w);

/* The model's input from an image: resized to (H, W) when its size differs, then normalised.
 * out (H, W, 3) float32 NHWC; mean and std per RGB channel. */
void kao_image_to_input(float *out, const kao_image *img, int H, int W, const float mean[3],
                        const float std[3]);

/* Load + kao_image_to_input with the ImageNet mean and std: out (H, W, 3). */
int kao_load_input(float *out, const char *path, int H, int W);

#endif
