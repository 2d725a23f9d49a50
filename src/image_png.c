/* image_png.c — PNG to 8-bit RGB with libpng, and PNG writing.
 * What the decoder keeps and drops, and how it compares with PIL: include/kao/image.h. */
#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include "image_internal.h"
#include "kao/util.h"

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
static int decode(kao_image *img, png_reader *r, png_structp png, png_infop info, const char *name,
                  const kao_image_options *opt) {
    if (setjmp(png_jmpbuf(png))) {
        if (r->truncated) return kao_fail("%s: truncated PNG (file ends after %zu bytes)", name, r->size);
        return kao_fail("%s: corrupt PNG (libpng: %s)", name, r->message);
    }
    png_set_read_fn(png, r, read_bytes);
    /* Our own limits below give the clearer message, so libpng's (1e6 per side) step aside. */
    png_set_user_limits(png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    if (kao_image_check_size(name, "PNG", w, h, opt) != KAO_OK) return KAO_ERR;
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

int kao_image_decode_png(kao_image *img, const uint8_t *data, size_t size, const char *name,
                         const kao_image_options *opt) {
    *img = (kao_image){0};
    if (png_sig_cmp(data, 0, size < 8 ? size : 8) != 0)
        return kao_fail("%s: corrupt PNG (its 8-byte signature is damaged)", name);
    if (size < 8) return kao_fail("%s: truncated PNG (file ends after %zu bytes)", name, size);
    png_reader r = {.data = data, .size = size};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, r.message, on_libpng_error,
                                             on_libpng_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) kao_abort(__FILE__, __LINE__, "out of memory creating libpng's reader for %s", name);
    int rc = decode(img, &r, png, info, name, opt);
    png_destroy_read_struct(&png, &info, NULL);
    free(r.pixels);
    free(r.rows);
    return rc;
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
    char temp[4200];
    FILE *f = kao_atomic_fopen(temp, sizeof temp, path);
    if (!f) return KAO_ERR;
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
