/* image.c — the decode seam (a file's first bytes pick the PNG or the JPEG decoder), the size
 * limits, and the model's normalised input. Rules and comparisons with PIL: include/kao/image.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "image_internal.h"
#include "kao/files.h"
#include "kao/util.h"

const float kao_imagenet_mean[3] = {0.485f, 0.456f, 0.406f};
const float kao_imagenet_std[3] = {0.229f, 0.224f, 0.225f};

/* Files larger than this are refused before reading (an image at the default pixel limit
 * compresses far below it). */
#define MAX_FILE_BYTES (1L << 30)

bool kao_is_image_name(const char *name) {
    static const char *const suffixes[] = {".png", ".jpg", ".jpeg"};
    size_t n = strlen(name);
    for (int i = 0; i < 3; i++) {
        size_t len = strlen(suffixes[i]);
        if (n > len && strcasecmp(name + n - len, suffixes[i]) == 0) return true;
    }
    return false;
}

int kao_image_check_size(const char *name, const char *format, uint64_t width, uint64_t height,
                         const kao_image_options *opt) {
    if (width <= KAO_IMAGE_MAX_SIDE && height <= KAO_IMAGE_MAX_SIDE && width * height <= (uint64_t)opt->max_pixels)
        return KAO_OK;
    return kao_fail("%s: %s claims %llu x %llu pixels, more than kao accepts (at most %d per side and %ld pixels; "
                    "data.max_image_pixels or --max-image-pixels sets the pixel limit)", name, format,
                    (unsigned long long)width, (unsigned long long)height, KAO_IMAGE_MAX_SIDE, opt->max_pixels);
}

/* Whether data starts with sig, or is a shorter file that is a prefix of it (a truncated copy). */
static bool starts_with(const uint8_t *data, size_t size, const uint8_t *sig, size_t sig_size) {
    return memcmp(data, sig, size < sig_size ? size : sig_size) == 0;
}

int kao_image_decode(kao_image *img, const void *data, size_t size, const char *name, const kao_image_options *opt) {
    static const uint8_t png[4] = {0x89, 'P', 'N', 'G'}, jpeg[3] = {0xff, 0xd8, 0xff};
    *img = (kao_image){0};
    const uint8_t *bytes = data;
    if (size == 0) return kao_fail("%s: empty file (0 bytes), not a PNG or JPEG image", name);
    if (starts_with(bytes, size, png, sizeof png)) return kao_image_decode_png(img, bytes, size, name, opt);
    if (starts_with(bytes, size, jpeg, sizeof jpeg)) return kao_image_decode_jpeg(img, bytes, size, name, opt);
    return kao_fail("%s: not a PNG or JPEG file (it starts with neither signature)", name);
}

int kao_image_load_rgb(kao_image *img, const char *path, const kao_image_options *opt) {
    *img = (kao_image){0};
    FILE *f = kao_fopen_regular(path, "image");
    if (!f) return KAO_ERR;
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        fclose(f);
        return kao_fail("%s: cannot open image: %s", path, strerror(errno));
    }
    if (st.st_size > MAX_FILE_BYTES) {
        fclose(f);
        return kao_fail("%s: file is %lld bytes, more than kao reads as an image (%ld)", path,
                        (long long)st.st_size, MAX_FILE_BYTES);
    }
    size_t size = (size_t)st.st_size;
    uint8_t *data = kao_malloc(size ? size : 1, "image file"); /* (size) */
    size_t got = fread(data, 1, size, f);
    int read_failed = ferror(f);
    fclose(f);
    if (got != size || read_failed) {
        free(data);
        return kao_fail("%s: read error (%zu of %zu bytes)", path, got, size);
    }
    int rc = kao_image_decode(img, data, size, path, opt);
    free(data);
    return rc;
}

void kao_image_free(kao_image *img) {
    free(img->pixels);
    *img = (kao_image){0};
}

void kao_image_to_input(float *out, const kao_image *img, int H, int W, const float mean[3],
                        const float std[3]) {
    const uint8_t *src = img->pixels; /* (H, W, 3) once resized */
    uint8_t *resized = NULL;          /* (H, W, 3) */
    if (img->height != H || img->width != W) {
        resized = kao_malloc((size_t)H * W * 3, "resized image");
        kao_image_resize_rgb(resized, img->pixels, img->height, img->width, H, W);
        src = resized;
    }
    /* ToTensor divides by 255, Normalize subtracts then divides: the same float32 operations in the
     * same order give torchvision's values bit for bit. */
    size_t n = (size_t)H * W;
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < 3; c++) out[3 * i + c] = ((float)src[3 * i + c] / 255.0f - mean[c]) / std[c];
    free(resized);
}

kao_input_norm kao_imagenet_norm(void) {
    kao_input_norm n;
    memcpy(n.mean, kao_imagenet_mean, sizeof n.mean);
    memcpy(n.std, kao_imagenet_std, sizeof n.std);
    return n;
}

int kao_load_input(float *out, const char *path, int H, int W, const kao_input_norm *norm,
                   const kao_image_options *opt) {
    kao_image img;
    if (kao_image_load_rgb(&img, path, opt) != KAO_OK) return KAO_ERR;
    kao_image_to_input(out, &img, H, W, norm->mean, norm->std);
    kao_image_free(&img);
    return KAO_OK;
}
