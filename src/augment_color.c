/* augment_color.c — torchvision's colour operations on a PIL RGB image, with Pillow 13's uint8
 * arithmetic bit for bit (augment.h): ImageEnhance's Brightness, Contrast and Color (blends,
 * libImaging/Blend.c), the RGB ↔ HSV conversions of libImaging/Convert.c (for adjust_hue) and its
 * "L" conversion. The float and double types below are Pillow's own: they decide the roundings.
 * (kao builds as ISO C, so GCC contracts nothing into fused multiply-adds, as Pillow's builds.) */
#include "kao/augment.h"

#include <math.h>

static uint8_t clip8(int v) { return v <= 0 ? 0 : v < 256 ? (uint8_t)v : 255; }

/* PIL's "L": ITU-R 601-2 luma in 16-bit fixed point, rounded. */
static uint8_t luma(const uint8_t *p) { return (uint8_t)((p[0] * 19595 + p[1] * 38470 + p[2] * 7471 + 0x8000) >> 16); }

/* Image.blend(grey, image, f) for one value: grey + f·(x − grey) in float, clipped, truncated. */
static uint8_t blend(int grey, int x, float f) {
    float t = (float)grey + f * (float)(x - grey);
    return t <= 0.0f ? 0 : t >= 255.0f ? 255 : (uint8_t)t;
}

void kao_pil_brightness(uint8_t *rgb, size_t n, double factor) {
    float f = (float)factor; /* Image.blend takes the factor as a C float */
    for (size_t i = 0; i < 3 * n; i++) rgb[i] = blend(0, rgb[i], f);
}

void kao_pil_contrast(uint8_t *rgb, size_t n, double factor) {
    double sum = 0; /* ImageStat's mean of the L image, then int(mean + 0.5) */
    for (size_t i = 0; i < n; i++) sum += luma(rgb + 3 * i);
    int grey = (int)(sum / (double)n + 0.5);
    float f = (float)factor;
    for (size_t i = 0; i < 3 * n; i++) rgb[i] = blend(grey, rgb[i], f);
}

void kao_pil_saturation(uint8_t *rgb, size_t n, double factor) {
    float f = (float)factor;
    for (size_t i = 0; i < n; i++) {
        uint8_t *p = rgb + 3 * i;
        int grey = luma(p);
        for (int k = 0; k < 3; k++) p[k] = blend(grey, p[k], f);
    }
}

static void rgb_to_hsv(uint8_t *p) {
    uint8_t r = p[0], g = p[1], b = p[2];
    uint8_t maxc = r > g ? (r > b ? r : b) : (g > b ? g : b), minc = r < g ? (r < b ? r : b) : (g < b ? g : b);
    uint8_t h8 = 0, s8 = 0;
    if (minc != maxc) {
        float cr = (float)(maxc - minc), s = cr / (float)maxc;
        float rc = (float)(maxc - r) / cr, gc = (float)(maxc - g) / cr, bc = (float)(maxc - b) / cr, h;
        if (r == maxc) h = bc - gc;
        else if (g == maxc) h = (float)(2.0 + rc - bc);
        else h = (float)(4.0 + gc - rc);
        h = (float)fmod(h / 6.0 + 1.0, 1.0);
        h8 = clip8((int)(h * 255.0));
        s8 = clip8((int)(s * 255.0));
    }
    p[0] = h8;
    p[1] = s8;
    p[2] = maxc;
}

static void hsv_to_rgb(uint8_t *p) {
    uint8_t h = p[0], s = p[1], v = p[2];
    if (s == 0) {
        p[0] = p[1] = v;
        return;
    }
    int i = (int)floor((float)h * 6.0 / 255.0);
    float f = (float)((float)h * 6.0 / 255.0 - (float)i), fs = (float)((float)s / 255.0);
    uint8_t lo = clip8((int)round((float)v * (1.0 - fs)));
    uint8_t down = clip8((int)round((float)v * (1.0 - fs * f)));
    uint8_t up = clip8((int)round((float)v * (1.0 - fs * (1.0 - f))));
    const uint8_t sextant[6][3] = {{v, up, lo}, {down, v, lo}, {lo, v, up}, {lo, down, v}, {up, lo, v}, {v, lo, down}};
    for (int k = 0; k < 3; k++) p[k] = sextant[i % 6][k];
}

void kao_pil_hue(uint8_t *rgb, size_t n, double hue) {
    /* torchvision adds np.array(hue * 255).astype(np.uint8) to the H channel: truncated towards 0,
     * then taken modulo 256 (so the shift wraps around the hue circle). */
    unsigned shift = (unsigned)(int)(hue * 255.0);
    for (size_t i = 0; i < n; i++) {
        uint8_t *p = rgb + 3 * i;
        rgb_to_hsv(p);
        p[0] = (uint8_t)((p[0] + shift) & 255u);
        hsv_to_rgb(p);
    }
}

void kao_pil_grayscale(uint8_t *rgb, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint8_t *p = rgb + 3 * i;
        p[0] = p[1] = p[2] = luma(p);
    }
}
