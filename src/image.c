/* image.c — PNG to 8-bit RGB with libpng, PNG writing, and the model's normalised input.
 * What the decoder keeps and drops, and how it compares with PIL: include/kao/image.h. */
#include "kao/image.h"

#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kao/util.h"

const float kao_imagenet_mean[3] = {0.485f, 0.456f, 0.406f};
const float kao_imagenet_std[3] = {0.229f, 0.224f, 0.225f};

/* Files larger than this are refused before reading (a 2^28-pixel PNG compresses far below it). */
#define MAX_FILE_BYTES (1L << 30)

/* libpng reports errors through these; the error pointer is a message buffer of LIBPNG_MESSAGE. */
#define LIBPNG_MESSAGE 256

static void on_libpng_error(png_structp png, png_const_charp msg) {
    snprintf(png_get_error_ptr(png), LIBPNG_MESSAGE, "%s", msg);
    png_longjmp(png, 1);
}

/* Files from the wild carry harmless warnings (an sRGB profile libpng dislikes, a bad CRC on an
 * ancillary chunk it then skips); PIL ignores them too. */
static void on_libpng_warning(png_structp png, png_const_charp msg) {}

typedef struct {
    const uint8_t *data; /* (size) the whole file */
    size_t size, pos;
    bool truncated;
    char message[LIBPNG_MESSAGE];
    /* Allocated while libpng may still longjmp; the caller frees what is left here. */
    uint8_t *pixels; /* (height, width, 3) */
    png_bytep *rows; /* (height) */
} png_reader;

static void read_bytes(png_structp png, png_bytep out, size_t n) {
    png_reader *r = png_get_io_ptr(png);
    if (n > r->size - r->pos) {
        r->truncated = true;
        png_error(png, "file ends early");
    }
    memcpy(out, r->data + r->pos, n);
    r->pos += n;
}

/* Everything that can longjmp. Returns KAO_OK with img filled, or KAO_ERR with the message set. */
static int decode(kao_image *img, png_reader *r, png_structp png, png_infop info, const char *name) {
    if (setjmp(png_jmpbuf(png))) {
        if (r->truncated) return kao_fail("%s: truncated PNG (file ends after %zu bytes)", name, r->size);
        return kao_fail("%s: corrupt PNG (libpng: %s)", name, r->message);
    }
    png_set_read_fn(png, r, read_bytes);
    /* Our own limits below give the clearer message, so libpng's (1e6 per side) step aside. */
    png_set_user_limits(png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    if (w > KAO_IMAGE_MAX_SIDE || h > KAO_IMAGE_MAX_SIDE || (uint64_t)w * h > (uint64_t)KAO_IMAGE_MAX_PIXELS)
        return kao_fail("%s: PNG claims %u x %u pixels, more than kao accepts (at most %d per side and "
                        "%ld pixels)", name, (unsigned)w, (unsigned)h, KAO_IMAGE_MAX_SIDE, KAO_IMAGE_MAX_PIXELS);
    int color = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16) png_set_strip_16(png); /* keeps the high byte: v >> 8 */
    /* Alpha and tRNS are dropped, not composited (PIL's convert('RGB')). A palette's tRNS becomes
     * an alpha channel in png_set_palette_to_rgb, so it is stripped as well. */
    if ((color & PNG_COLOR_MASK_ALPHA) || png_get_valid(png, info, PNG_INFO_tRNS)) png_set_strip_alpha(png);
    if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    KAO_ASSERT(png_get_channels(png, info) == 3 && png_get_bit_depth(png, info) == 8 &&
                   png_get_rowbytes(png, info) == (size_t)w * 3,
               "%s: libpng gives %d channels of %d bits", name, png_get_channels(png, info),
               png_get_bit_depth(png, info));
    r->pixels = kao_malloc((size_t)w * h * 3, "image pixels");
    r->rows = kao_malloc((size_t)h * sizeof *r->rows, "image rows");
    for (png_uint_32 y = 0; y < h; y++) r->rows[y] = r->pixels + (size_t)y * w * 3;
    png_read_image(png, r->rows);
    /* The image is complete; what follows IDAT (text, IEND) is not read, as PIL does not need it. */
    img->width = (int)w;
    img->height = (int)h;
    img->pixels = r->pixels;
    r->pixels = NULL;
    return KAO_OK;
}

int kao_image_decode_png(kao_image *img, const void *data, size_t size, const char *name) {
    *img = (kao_image){0};
    if (size == 0) return kao_fail("%s: empty file (0 bytes), not a PNG", name);
    if (png_sig_cmp(data, 0, size < 8 ? size : 8) != 0)
        return kao_fail("%s: not a PNG file (signature mismatch)", name);
    if (size < 8) return kao_fail("%s: truncated PNG (file ends after %zu bytes)", name, size);
    png_reader r = {.data = data, .size = size};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, r.message, on_libpng_error,
                                             on_libpng_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) kao_abort(__FILE__, __LINE__, "out of memory creating libpng's reader for %s", name);
    int rc = decode(img, &r, png, info, name);
    png_destroy_read_struct(&png, &info, NULL);
    free(r.pixels);
    free(r.rows);
    return rc;
}

int kao_image_load_rgb(kao_image *img, const char *path) {
    *img = (kao_image){0};
    FILE *f = fopen(path, "rb");
    if (!f) return kao_fail("%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return kao_fail("%s: not a regular file", path);
    }
    if (st.st_size > MAX_FILE_BYTES) {
        fclose(f);
        return kao_fail("%s: file is %lld bytes, more than kao reads as an image (%ld)", path,
                        (long long)st.st_size, MAX_FILE_BYTES);
    }
    size_t size = (size_t)st.st_size;
    uint8_t *data = kao_malloc(size, "PNG file"); /* (size) */
    size_t got = fread(data, 1, size, f);
    int read_failed = ferror(f);
    fclose(f);
    if (got != size || read_failed) {
        free(data);
        return kao_fail("%s: read error (%zu of %zu bytes)", path, got, size);
    }
    int rc = kao_image_decode_png(img, data, size, path);
    free(data);
    return rc;
}

void kao_image_free(kao_image *img) {
    free(img->pixels);
    *img = (kao_image){0};
}

/* Everything that can longjmp; message receives libpng's error. */
static int encode(FILE *f, const kao_image *img, char *message) {
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, message, on_libpng_error,
                                              on_libpng_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) kao_abort(__FILE__, __LINE__, "out of memory creating libpng's writer");
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return KAO_ERR;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)img->width, (png_uint_32)img->height, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < img->height; y++) png_write_row(png, img->pixels + (size_t)y * img->width * 3);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    return KAO_OK;
}

int kao_image_save_png(const kao_image *img, const char *path) {
    KAO_ASSERT(img->width >= 1 && img->height >= 1 && img->pixels, "%dx%d", img->width, img->height);
    if (kao_check_parent_dir(path) != KAO_OK) return KAO_ERR;
    char temp[4096];
    kao_temp_path(temp, sizeof temp, path);
    FILE *f = fopen(temp, "wb");
    if (!f) return kao_fail("%s: cannot create %s: %s", path, temp, strerror(errno));
    char message[LIBPNG_MESSAGE] = "";
    int rc = encode(f, img, message);
    if (fclose(f) != 0 && rc == KAO_OK) {
        snprintf(message, sizeof message, "%s", strerror(errno));
        rc = KAO_ERR;
    }
    if (rc != KAO_OK) {
        kao_discard_file(temp);
        return kao_fail("%s: cannot write PNG: %s", path, message);
    }
    return kao_commit_file(temp, path);
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

int kao_load_input(float *out, const char *path, int H, int W) {
    kao_image img;
    if (kao_image_load_rgb(&img, path) != KAO_OK) return KAO_ERR;
    kao_image_to_input(out, &img, H, W, kao_imagenet_mean, kao_imagenet_std);
    kao_image_free(&img);
    return KAO_OK;
}
