/* image_resize.c — PIL's bilinear (antialiased) resize on 8-bit RGB, bit for bit.
 *
 * Follows Pillow's src/libImaging/Resample.c (precompute_coeffs, normalize_coeffs_8bpc,
 * ImagingResampleHorizontal_8bpc / Vertical_8bpc, ImagingResampleInner) as of Pillow 13.0: for
 * each output pixel a triangle filter centred on (i + 0.5) * scale in input coordinates, its
 * support widened by the scale when downsampling (antialias), weights normalised in double, then
 * rounded to PRECISION_BITS fixed point; two passes (one per axis), each rounded to uint8. */
#include "kao/image.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kao/util.h"

#define PRECISION_BITS (32 - 8 - 2)

typedef struct {
    int ksize;    /* taps per output pixel */
    int *bounds;  /* (out, 2) first input index, number of taps */
    int32_t *k;   /* (out, ksize) fixed-point weights */
} resample_coeffs;

static double bilinear_filter(double x) {
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

static void coeffs_build(resample_coeffs *c, int in_size, int out_size) {
    /* PIL passes the box edges as floats: in1 - in0 = (float)in_size. */
    double scale = (double)(float)in_size / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * filterscale; /* the bilinear filter's support is 1 */
    int ksize = (int)ceil(support) * 2 + 1;
    double *w = kao_malloc((size_t)ksize * sizeof *w, "resize weights");
    c->ksize = ksize;
    c->bounds = kao_malloc((size_t)out_size * 2 * sizeof *c->bounds, "resize bounds");
    c->k = kao_calloc((size_t)out_size * (size_t)ksize, sizeof *c->k, "resize coefficients");
    for (int i = 0; i < out_size; i++) {
        double center = (i + 0.5) * scale;
        double ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5); /* truncation toward zero, as in PIL */
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        double sum = 0.0;
        for (int x = 0; x < xmax; x++) {
            w[x] = bilinear_filter((x + xmin - center + 0.5) * ss);
            sum += w[x];
        }
        int32_t *k = c->k + (size_t)i * ksize;
        for (int x = 0; x < xmax; x++) {
            double v = sum != 0.0 ? w[x] / sum : w[x];
            k[x] = (int32_t)(v < 0 ? -0.5 + v * (1 << PRECISION_BITS) : 0.5 + v * (1 << PRECISION_BITS));
        }
        c->bounds[2 * i] = xmin;
        c->bounds[2 * i + 1] = xmax;
    }
    free(w);
}

static void coeffs_free(resample_coeffs *c) {
    free(c->bounds);
    free(c->k);
}

static uint8_t clip8(int32_t v) {
    if (v >= (1 << PRECISION_BITS << 8)) return 255;
    if (v <= 0) return 0;
    return (uint8_t)(v >> PRECISION_BITS);
}

/* out (h, out_w, 3) from in (h, in_w, 3), along rows. */
static void resample_horizontal(uint8_t *out, const uint8_t *in, int h, int in_w, int out_w,
                                const resample_coeffs *c) {
    for (int y = 0; y < h; y++) {
        const uint8_t *row = in + (size_t)y * in_w * 3;
        for (int x = 0; x < out_w; x++) {
            int xmin = c->bounds[2 * x], n = c->bounds[2 * x + 1];
            const int32_t *k = c->k + (size_t)x * c->ksize;
            int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
            for (int j = 0; j < n; j++) {
                const uint8_t *p = row + (size_t)(xmin + j) * 3;
                s0 += p[0] * k[j];
                s1 += p[1] * k[j];
                s2 += p[2] * k[j];
            }
            uint8_t *o = out + ((size_t)y * out_w + x) * 3;
            o[0] = clip8(s0);
            o[1] = clip8(s1);
            o[2] = clip8(s2);
        }
    }
}

/* out (out_h, w, 3) from in (rows, w, 3), along columns; bounds are rows of in minus first.
 * Sums are integers, so accumulating a whole row per tap (vectorisable) gives PIL's values. */
static void resample_vertical(uint8_t *out, const uint8_t *in, int w, int out_h, int first,
                              const resample_coeffs *c) {
    size_t stride = (size_t)w * 3;
    int32_t *acc = kao_malloc(stride * sizeof *acc, "resize row"); /* (w, 3) */
    for (int y = 0; y < out_h; y++) {
        int ymin = c->bounds[2 * y] - first, n = c->bounds[2 * y + 1];
        const int32_t *k = c->k + (size_t)y * c->ksize;
        for (size_t i = 0; i < stride; i++) acc[i] = 1 << (PRECISION_BITS - 1);
        for (int j = 0; j < n; j++) {
            const uint8_t *row = in + (size_t)(ymin + j) * stride;
            for (size_t i = 0; i < stride; i++) acc[i] += row[i] * k[j];
        }
        for (size_t i = 0; i < stride; i++) out[(size_t)y * stride + i] = clip8(acc[i]);
    }
    free(acc);
}

void kao_image_resize_rgb(uint8_t *out, const uint8_t *in, int in_h, int in_w, int out_h, int out_w) {
    KAO_ASSERT(in_h >= 1 && in_w >= 1 && out_h >= 1 && out_w >= 1, "%dx%d -> %dx%d", in_w, in_h,
               out_w, out_h);
    resample_coeffs ch = {0}, cv = {0};
    bool need_h = out_w != in_w, need_v = out_h != in_h;
    if (need_h) coeffs_build(&ch, in_w, out_w);
    if (need_v) coeffs_build(&cv, in_h, out_h);
    /* Pillow 13 (PR #9549) runs the vertical pass first when the height shrinks by more than twice
     * as many pixels as the width; Pillow <= 12 always went horizontal first. The order changes
     * the intermediate uint8 rounding, so it decides bit-exactness. */
    bool horizontal_first = !(in_h - out_h > 0 && in_h - out_h > (in_w - out_w) * 2);
    if (need_h && need_v && horizontal_first) {
        /* Only the input rows that the vertical pass reads go through the horizontal pass. */
        int first = cv.bounds[0], last = cv.bounds[2 * out_h - 2] + cv.bounds[2 * out_h - 1];
        uint8_t *tmp = kao_malloc((size_t)(last - first) * out_w * 3, "resize rows"); /* (rows, out_w, 3) */
        resample_horizontal(tmp, in + (size_t)first * in_w * 3, last - first, in_w, out_w, &ch);
        resample_vertical(out, tmp, out_w, out_h, first, &cv);
        free(tmp);
    } else if (need_h && need_v) {
        uint8_t *tmp = kao_malloc((size_t)out_h * in_w * 3, "resize rows"); /* (out_h, in_w, 3) */
        resample_vertical(tmp, in, in_w, out_h, 0, &cv);
        resample_horizontal(out, tmp, out_h, in_w, out_w, &ch);
        free(tmp);
    } else if (need_h) {
        resample_horizontal(out, in, in_h, in_w, out_w, &ch);
    } else if (need_v) {
        resample_vertical(out, in, in_w, out_h, 0, &cv);
    } else {
        memcpy(out, in, (size_t)in_h * in_w * 3);
    }
    coeffs_free(&ch);
    coeffs_free(&cv);
}
