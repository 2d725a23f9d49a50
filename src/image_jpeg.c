/* image_jpeg.c — JPEG to 8-bit RGB with libjpeg-turbo's TurboJPEG API, as Pillow decodes it.
 * Colour spaces, CMYK, what is refused, and the comparison with Pillow: include/kao/image.h. */
#include <stdlib.h>
#include <turbojpeg.h>

#include "image_internal.h"
#include "kao/util.h"

/* Pillow's decoding: the accurate integer IDCT (islow) and fancy upsampling (no
 * TJFLAG_FASTUPSAMPLE). Any libjpeg warning (data ending early, corrupt entropy data) stops the
 * decode instead of leaving grey blocks, and a progressive file of more than 500 scans is refused
 * (each scan may rewrite every coefficient: a denial-of-service pattern). */
#define DECODE_FLAGS (TJFLAG_ACCURATEDCT | TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS)

static int fail_decode(tjhandle tj, const char *name) {
    return kao_fail("%s: truncated or corrupt JPEG (libjpeg-turbo: %s)", name, tjGetErrorStr2(tj));
}

/* Pillow's two steps for a 4-component JPEG: rawmode "CMYK;I" (each sample inverted: Adobe's
 * convention, which Pillow assumes for every CMYK JPEG), then Convert.c's cmyk2rgb: per channel
 * nk - MULDIV255(x, nk) with nk = 255 - K, MULDIV255(a, b) = (t + (t >> 8)) >> 8 for
 * t = a * b + 128 (a * b / 255 rounded; never above nk, so no clipping is needed). */
static void cmyk_to_rgb(uint8_t *rgb, const uint8_t *cmyk, size_t n) {
    for (size_t i = 0; i < n; i++, rgb += 3, cmyk += 4) {
        int k = 255 - cmyk[3], nk = 255 - k; /* K as Pillow holds it, inverted */
        for (int c = 0; c < 3; c++) {
            int x = 255 - cmyk[c], t = x * nk + 128;
            rgb[c] = (uint8_t)(nk - ((t + (t >> 8)) >> 8));
        }
    }
}

static int decode(kao_image *img, tjhandle tj, const uint8_t *data, size_t size, const char *name,
                  const kao_image_options *opt) {
    int width = 0, height = 0, subsampling, colorspace;
    if (tjDecompressHeader3(tj, data, size, &width, &height, &subsampling, &colorspace) != 0)
        return fail_decode(tj, name);
    /* libjpeg reads a header that ends early (or a tables-only stream) as one without a frame. */
    if (width < 1 || height < 1)
        return kao_fail("%s: truncated or corrupt JPEG (no image header in its %zu bytes)", name, size);
    if (kao_image_check_size(name, "JPEG", (uint64_t)width, (uint64_t)height, opt) != KAO_OK) return KAO_ERR;
    bool cmyk = colorspace == TJCS_CMYK || colorspace == TJCS_YCCK; /* libjpeg turns YCCK into CMYK */
    size_t n = (size_t)width * height;
    uint8_t *pixels = kao_malloc(n * 3, "image pixels");          /* (height, width, 3) */
    uint8_t *raw = cmyk ? kao_malloc(n * 4, "CMYK pixels") : pixels; /* (height, width, 4) for CMYK */
    int rc = tjDecompress2(tj, data, size, raw, width, 0, height, cmyk ? TJPF_CMYK : TJPF_RGB, DECODE_FLAGS);
    if (rc == 0 && cmyk) cmyk_to_rgb(pixels, raw, n);
    if (cmyk) free(raw);
    if (rc != 0) {
        free(pixels);
        return fail_decode(tj, name);
    }
    *img = (kao_image){.width = width, .height = height, .pixels = pixels};
    if (opt->exif_transpose) kao_image_apply_orientation(img, kao_jpeg_orientation(data, size));
    return KAO_OK;
}

int kao_image_decode_jpeg(kao_image *img, const uint8_t *data, size_t size, const char *name,
                          const kao_image_options *opt) {
    *img = (kao_image){0};
    /* A handle per image: cheap next to the decode, and the loader's threads share nothing. */
    tjhandle tj = tjInitDecompress();
    if (!tj) kao_abort(__FILE__, __LINE__, "out of memory creating TurboJPEG's decompressor for %s", name);
    int rc = decode(img, tj, data, size, name, opt);
    tjDestroy(tj);
    return rc;
}
