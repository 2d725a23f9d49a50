/* image_exif.c — a JPEG's EXIF orientation, read as PIL's ImageOps.exif_transpose reads it, and
 * the transposition that turns the image upright.
 *
 * A small bounded reader rather than libexif: kao needs one tag, read the way Pillow reads it
 * (libexif has its own rules for damaged data), without allocating, every offset checked against
 * the segment it points into; a library that parses every tag and maker note would be a new
 * dependency and more code facing untrusted files, for one number.
 *
 * What Pillow 13 does (JpegImagePlugin's marker loop, Image.getexif and Exif.load,
 * TiffImagePlugin's ImageFileDirectory_v2.load, ImageOps.exif_transpose), and so kao:
 *  - the markers from SOI up to the first SOS are read (fill bytes and junk between them skipped);
 *  - EXIF: the first APP1 segment that starts "Exif\0\0" (one more such prefix is skipped too).
 *    Empty: no tags. A TIFF header other than II*\0, MM\0*, II\0*, MM*\0 or MM\0+, or fewer than
 *    8 bytes: Pillow cannot read the EXIF (its getexif, which JpegImageFile already calls while
 *    opening, gives up before looking at XMP), so no orientation at all. Else IFD0 at the offset
 *    the header gives, 12-byte entries:
 *      - types Pillow cannot read (0, 14, 15, above 16) and empty entries are skipped;
 *      - values of more than 4 bytes lie at an offset: their sizes are summed (Pillow leaves out
 *        a tag's repeated entries; kao does not), and an entry that takes the sum past the
 *        segment's size is skipped; one whose values run past the end stops the reading
 *        (Pillow's read fails), as does an entry table cut short;
 *      - the first Orientation entry (tag 0x0112) that is not skipped is the tag (Pillow keeps
 *        the first entry of a tag). Its first value is looked up among 2-8: a whole number of any
 *        numeric type matches (SHORT 6, LONG 6, RATIONAL 6/1, DOUBLE 6.0); a BYTE, ASCII or
 *        UNDEFINED value never does (Pillow keeps those as bytes or text);
 *  - XMP, only when the EXIF has no Orientation tag: the last APP1 segment that starts
 *    "http://ns.adobe.com/xap/1.0/\0", its first "tiff:Orientation" followed by '="' or '>' and a
 *    digit (Pillow's regular expression);
 *  - 2-8 transpose the image (Image.transpose with FLIP_LEFT_RIGHT, ROTATE_180, FLIP_TOP_BOTTOM,
 *    TRANSPOSE, ROTATE_270, TRANSVERSE, ROTATE_90); any other value leaves it as stored. (When
 *    another tag has a type Pillow cannot write back, exif_transpose raises after transposing,
 *    while rewriting the EXIF without the orientation; kao keeps the transposed image.)
 * Left out, as rare: EXIF continued in a second APP1 segment (Pillow appends it to the first, so
 * an entry may point into it; here such an entry runs past the end). A BigTIFF header (II+\0) is
 * unreadable to both: Pillow looks for its 8-byte IFD offset past the 8 header bytes it read. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "image_internal.h"
#include "kao/util.h"

#define ORIENTATION_TAG 0x0112

/* A run of bytes, its byte order (TIFF data only). */
typedef struct {
    const uint8_t *p;
    size_t n;
    bool big_endian;
} span;

static uint64_t read_u(const span *s, size_t at, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v |= (uint64_t)s->p[at + (s->big_endian ? bytes - 1 - i : i)] << (8 * i);
    return v;
}

/* TIFF types 1-13 and 16 (Pillow's readable ones): bytes per value; 0 for the others. */
static int type_size(uint32_t type) {
    static const int sizes[17] = {0, 1, 1, 2, 4, 8, 1, 1, 2, 4, 8, 4, 8, 4, 0, 0, 8};
    return type < 17 ? sizes[type] : 0;
}

/* The first value of an entry (type, values at `at`) as Pillow's dictionary lookup sees it: the
 * number for the numeric types (a rational as a quotient; n/0 is NaN, as Pillow makes it), NaN
 * for BYTE, ASCII and UNDEFINED, which Pillow keeps as bytes or text. */
static double first_value(const span *tiff, uint32_t type, size_t at) {
    switch (type) {
    case 3: return (double)read_u(tiff, at, 2);
    case 4: case 13: return (double)read_u(tiff, at, 4);
    case 16: return (double)read_u(tiff, at, 8);
    case 6: return (double)(int8_t)read_u(tiff, at, 1);
    case 8: return (double)(int16_t)read_u(tiff, at, 2);
    case 9: return (double)(int32_t)read_u(tiff, at, 4);
    case 5: return read_u(tiff, at + 4, 4) ? (double)read_u(tiff, at, 4) / (double)read_u(tiff, at + 4, 4) : NAN;
    case 10: {
        int32_t num = (int32_t)read_u(tiff, at, 4), den = (int32_t)read_u(tiff, at + 4, 4);
        return den ? (double)num / den : NAN;
    }
    case 11: {
        uint32_t bits = (uint32_t)read_u(tiff, at, 4);
        float f;
        memcpy(&f, &bits, sizeof f);
        return f;
    }
    case 12: {
        uint64_t bits = read_u(tiff, at, 8);
        double d;
        memcpy(&d, &bits, sizeof d);
        return d;
    }
    default: return NAN;
    }
}

/* Pillow's TIFF headers: II and MM with 42 in either byte order, and MM\0+ (BigTIFF, which
 * Pillow then reads as a classic TIFF: it tests the third byte for 43). */
static bool readable_header(const uint8_t *p) {
    static const char headers[5][4] = {"II*\0", "MM\0*", "II\0*", "MM*\0", "MM\0+"};
    for (int i = 0; i < 5; i++)
        if (memcmp(p, headers[i], 4) == 0) return true;
    return false;
}

/* IFD0's orientation in an EXIF segment's data (the rules above): -1 when Pillow cannot read the
 * EXIF, 0 when it has no Orientation tag, 1 with the tag's first value in *value. */
static int tiff_orientation(span t, double *value) {
    if (t.n >= 6 && memcmp(t.p, "Exif\0\0", 6) == 0) t.p += 6, t.n -= 6;
    if (t.n == 0) return 0;
    if (t.n < 8 || !readable_header(t.p)) return -1;
    t.big_endian = t.p[0] == 'M';
    uint64_t ifd = read_u(&t, 4, 4), out_of_line = 0;
    if (ifd > t.n || t.n - ifd < 2) return 0;
    uint64_t entries = read_u(&t, ifd, 2);
    for (uint64_t e = 0, at = ifd + 2; e < entries && t.n - at >= 12; e++, at += 12) {
        uint32_t tag = (uint32_t)read_u(&t, at, 2), type = (uint32_t)read_u(&t, at + 2, 2);
        uint64_t bytes = read_u(&t, at + 4, 4) * (uint64_t)type_size(type), where = at + 8;
        if (type_size(type) == 0) continue;
        if (bytes > 4) {
            out_of_line += bytes;
            if (out_of_line > t.n) continue; /* "Tag data larger than file": skipped */
            where = read_u(&t, at + 8, 4);
            if (where > t.n || t.n - where < bytes) return 0; /* the read fails: no further entries */
        }
        if (bytes == 0 || tag != ORIENTATION_TAG) continue;
        *value = first_value(&t, type, where);
        return 1;
    }
    return 0;
}

/* Pillow's re.search(rb'tiff:Orientation(="|>)([0-9])', xmp): the digit, or -1. */
static int xmp_orientation(const span *xmp) {
    static const char key[] = "tiff:Orientation";
    size_t k = sizeof key - 1;
    for (size_t i = 0; i + k < xmp->n; i++) {
        if (memcmp(xmp->p + i, key, k) != 0) continue;
        const uint8_t *after = xmp->p + i + k;
        size_t left = xmp->n - i - k;
        size_t skip = after[0] == '>' ? 1 : left >= 2 && after[0] == '=' && after[1] == '"' ? 2 : 0;
        if (skip && left > skip && after[skip] >= '0' && after[skip] <= '9') return after[skip] - '0';
    }
    return -1;
}

/* The APP1 segments PIL reads: the first EXIF one, the last XMP one (empty spans when absent). */
static void find_segments(const uint8_t *data, size_t size, span *exif, span *xmp) {
    static const char exif_id[6] = "Exif\0", xmp_id[] = "http://ns.adobe.com/xap/1.0/";
    *exif = *xmp = (span){0};
    size_t pos = 2; /* after SOI */
    while (pos + 1 < size) {
        if (data[pos] != 0xff || data[pos + 1] == 0xff || data[pos + 1] == 0x00) { /* junk, fill or stuffing */
            pos++;
            continue;
        }
        uint8_t marker = data[pos + 1];
        if (marker == 0xda || marker == 0xd9) return; /* SOS, EOI: the header ends */
        if (marker == 0x01 || (marker >= 0xd0 && marker <= 0xd8)) { /* markers without a length */
            pos += 2;
            continue;
        }
        if (size - pos < 4) return;
        size_t length = (size_t)data[pos + 2] << 8 | data[pos + 3];
        if (length < 2 || length > size - pos - 2) return;
        span body = {data + pos + 4, length - 2, false};
        if (marker == 0xe1 && body.n >= 6 && memcmp(body.p, exif_id, 6) == 0 && !exif->p)
            *exif = (span){body.p + 6, body.n - 6, false}; /* the first one */
        else if (marker == 0xe1 && body.n >= sizeof xmp_id && memcmp(body.p, xmp_id, sizeof xmp_id) == 0)
            *xmp = (span){body.p + sizeof xmp_id, body.n - sizeof xmp_id, false}; /* the last one */
        pos += 2 + length;
    }
}

int kao_jpeg_orientation(const uint8_t *data, size_t size) {
    span exif, xmp;
    find_segments(data, size, &exif, &xmp);
    double value = NAN;
    int found = exif.p ? tiff_orientation(exif, &value) : 0;
    if (found < 0) return 1;
    if (!found && xmp.p) value = xmp_orientation(&xmp);
    for (int o = 2; o <= 8; o++) /* Pillow looks the value up among 2-8: 6, 6.0 and 6/1 all match */
        if (value == o) return o;
    return 1;
}

/* Where output pixel (y, x) comes from in an h x w image, for orientations 2-8. */
static void source_pixel(int orientation, int y, int x, int h, int w, int *sy, int *sx) {
    switch (orientation) {
    case 2: *sy = y, *sx = w - 1 - x; break;         /* FLIP_LEFT_RIGHT */
    case 3: *sy = h - 1 - y, *sx = w - 1 - x; break; /* ROTATE_180 */
    case 4: *sy = h - 1 - y, *sx = x; break;         /* FLIP_TOP_BOTTOM */
    case 5: *sy = x, *sx = y; break;                 /* TRANSPOSE */
    case 6: *sy = h - 1 - x, *sx = y; break;         /* ROTATE_270: a quarter turn clockwise */
    case 7: *sy = h - 1 - x, *sx = w - 1 - y; break; /* TRANSVERSE */
    default: *sy = x, *sx = w - 1 - y; break;        /* 8, ROTATE_90: a quarter turn anticlockwise */
    }
}

void kao_image_apply_orientation(kao_image *img, int orientation) {
    if (orientation < 2 || orientation > 8) return;
    int h = img->height, w = img->width;
    bool swap = orientation >= 5; /* the transposing ones exchange width and height */
    int out_h = swap ? w : h, out_w = swap ? h : w;
    uint8_t *out = kao_malloc((size_t)h * w * 3, "oriented image"); /* (out_h, out_w, 3) */
    for (int y = 0; y < out_h; y++)
        for (int x = 0; x < out_w; x++) {
            int sy, sx;
            source_pixel(orientation, y, x, h, w, &sy, &sx);
            memcpy(out + ((size_t)y * out_w + x) * 3, img->pixels + ((size_t)sy * w + sx) * 3, 3);
        }
    free(img->pixels);
    *img = (kao_image){.width = out_w, .height = out_h, .pixels = out};
}
