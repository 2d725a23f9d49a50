/* image.h — PNG and JPEG decoding, PNG writing, resizing, and the model's input normalisation.
 *
 * kao_image_load_rgb is the one decode seam: it picks the decoder by the file's first bytes, not
 * by its name (PNG: 89 50 4E 47, JPEG: FF D8 FF; anything else is "not a PNG or JPEG file"), so a
 * JPEG named .png decodes. Both decoders give 8-bit RGB whatever the file holds, meant to equal
 * PIL's Image.open(path).convert('RGB').
 *
 * PNG (libpng):
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
 * JPEG (libjpeg-turbo's TurboJPEG API, src/image_jpeg.c), decoded as Pillow decodes it: the
 * accurate integer IDCT (islow), fancy upsampling, and libjpeg's own reading of the colour space
 * (YCbCr; RGB by an Adobe marker or the component ids; grey; CMYK or YCCK), so that
 *  - YCbCr in any subsampling TurboJPEG 2.1 names (4:4:4, 4:2:2, 4:2:0, 4:4:0, 4:1:1), baseline
 *    or progressive, with or without restart intervals, gives libjpeg's RGB; grey is copied to R,
 *    G and B;
 *  - CMYK and YCCK (libjpeg turns YCCK into CMYK) are converted as Pillow does: Pillow takes every
 *    4-component JPEG to hold Adobe's inverted CMYK (rawmode CMYK;I: each sample 255 - v), then
 *    its convert('RGB') gives, per channel, nk - MULDIV255(x, nk) with nk = 255 - K (Convert.c's
 *    cmyk2rgb; equal to Pillow's on all 65536 (x, K) pairs);
 *  - ICC profiles are ignored, as PIL's convert('RGB') ignores them;
 *  - anything libjpeg-turbo reports fails with "truncated or corrupt JPEG (libjpeg-turbo:
 *    <message>)", and a file that ends before its frame header (or holds only tables) with
 *    "truncated or corrupt JPEG (no image header ...)". TJFLAG_STOPONWARNING makes each of libjpeg's
 *    warnings (data ending early, corrupt entropy data, extraneous bytes before a marker) an error;
 *    Pillow (ImageFile.LOAD_TRUNCATED_IMAGES = False, its default) also raises on a truncated
 *    file but lets libjpeg's other warnings pass, so kao is the stricter of the two there.
 *    TJFLAG_LIMITSCANS refuses progressive files of more than 500 scans (a denial-of-service
 *    pattern). What libjpeg-turbo 2.1 cannot decode gets the same message, its part naming the
 *    reason: 12-bit samples (Pillow refuses them too), lossless JPEG, sides over 65500, and chroma
 *    sampling factors TurboJPEG 2.1 cannot name ("Could not determine subsampling type"; Pillow
 *    decodes those, but common encoders do not write them).
 * Measured against Pillow 13.0 (its bundled libjpeg-turbo 3.2.0) with Debian's libjpeg-turbo 2.1.5:
 * 0 levels of difference on the 225 JPEGs tests/test_image_jpeg.py writes with Pillow (qualities
 * 30-100, 4:4:4, 4:2:2, 4:2:0, progressive, optimised, restart intervals, Adobe RGB, grey, CMYK,
 * 1x1 to 223x97), and in a one-off check on YCCK, 4:4:0 and 4:1:1 files written by TurboJPEG.
 *
 * Size limit (kao_image_options.max_pixels, like Pillow's Image.MAX_IMAGE_PIXELS): a file whose
 * header claims more than max_pixels pixels (width x height), or more than KAO_IMAGE_MAX_SIDE on a
 * side, is refused from its header, before any pixel memory is taken, with a message naming the
 * file and its size. The default, KAO_IMAGE_DEFAULT_MAX_PIXELS = 178,956,970, is where Pillow
 * raises DecompressionBombError (2 x MAX_IMAGE_PIXELS = 2 x 89,478,485); Pillow only warns
 * between the two, and kao says nothing there. kao train sets it with data.max_image_pixels,
 * kao embed and verify with --max-image-pixels.
 *
 * EXIF orientation (kao_image_options.exif_transpose): off by default, because the original
 * pipeline (torchvision on PIL's Image.open) ignores it: pixels are used as stored. On
 * (data.exif_transpose, --exif-transpose), a JPEG is turned upright as PIL's
 * ImageOps.exif_transpose does (all 8 orientations; see src/image_exif.c for which tags are read).
 * PNG files are left as stored either way (their eXIf chunk is not read).
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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest side kao decodes, whatever max_pixels says. */
#define KAO_IMAGE_MAX_SIDE 65535
/* Pillow's DecompressionBombError limit: 2 x Image.MAX_IMAGE_PIXELS (89,478,485). */
#define KAO_IMAGE_DEFAULT_MAX_PIXELS 178956970L

/* How images are decoded (see above). */
typedef struct {
    long max_pixels;     /* files claiming more pixels (width x height) are refused; >= 1 */
    bool exif_transpose; /* turn JPEGs upright by their EXIF orientation */
} kao_image_options;
#define KAO_IMAGE_OPTIONS_DEFAULT \
    ((kao_image_options){.max_pixels = KAO_IMAGE_DEFAULT_MAX_PIXELS, .exif_transpose = false})

typedef struct {
    int width, height;
    uint8_t *pixels; /* (height, width, 3) RGB, rows top to bottom; owned */
} kao_image;

/* ImageNet mean and std (torchvision's IMAGENET_DEFAULT; docs/numerics.md, 'Input normalisation'),
 * RGB order. */
extern const float kao_imagenet_mean[3];
extern const float kao_imagenet_std[3];

/* The model's input normalisation: (x / 255 - mean[c]) / std[c], RGB. It comes with the weights
 * (trained_info.h). */
typedef struct {
    float mean[3], std[3];
} kao_input_norm;
kao_input_norm kao_imagenet_norm(void);

/* Whether a file name is one kao takes as an image: it ends in .png, .jpg or .jpeg, in any
 * letter case. (The content decides the decoder; the name only picks files out of folders.) */
bool kao_is_image_name(const char *name);

/* Decodes a PNG or JPEG file into img (which the caller frees with kao_image_free). On failure
 * img is left empty and the error names the file: cannot open, not a regular file, empty file,
 * not a PNG or JPEG file, truncated PNG, corrupt PNG (libpng: <message>), truncated or corrupt
 * JPEG (libjpeg-turbo: <message>), or dimensions over the limits. */
int kao_image_load_rgb(kao_image *img, const char *path, const kao_image_options *opt);
/* The same from a file held in memory; name is used in the error messages. */
int kao_image_decode(kao_image *img, const void *data, size_t size, const char *name, const kao_image_options *opt);
void kao_image_free(kao_image *img);

/* Writes img as an 8-bit RGB PNG, atomically (a temp file renamed over path). */
int kao_image_save_png(const kao_image *img, const char *path);

/* PIL's bilinear resize (see above): out (out_h, out_w, 3) from in (in_h, in_w, 3). Sizes >= 1. */
void kao_image_resize_rgb(uint8_t *out, const uint8_t *in, int in_h, int in_w, int out_h, int out_w);

/* The model's input from an image: resized to (H, W) when its size differs, then normalised.
 * out (H, W, 3) float32 NHWC; mean and std per RGB channel. */
void kao_image_to_input(float *out, const kao_image *img, int H, int W, const float mean[3],
                        const float std[3]);

/* Load + kao_image_to_input with norm's mean and std: out (H, W, 3). */
int kao_load_input(float *out, const char *path, int H, int W, const kao_input_norm *norm,
                   const kao_image_options *opt);

#endif
