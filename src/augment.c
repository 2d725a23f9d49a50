/* augment.c — random resized crop, flip, brightness/contrast, normalisation (augment.h). */
#include "kao/augment.h"

#include <math.h>
#include <string.h>

kao_augment_cfg kao_augment_none(void) {
    return (kao_augment_cfg){.hflip = false, .scale_min = 1, .scale_max = 1, .brightness = 0, .contrast = 0};
}

void kao_augment_rng(kao_rng *rng, uint64_t seed, int epoch, int64_t position) {
    /* One stream per (epoch, position); the constant keeps these streams apart from the others
     * kao derives from the same seed. */
    uint64_t stream = 0xA06E000000000000ull ^ ((uint64_t)(uint32_t)epoch << 32) ^ (uint64_t)position;
    kao_rng_seed(rng, seed, stream);
}

size_t kao_augment_scratch_bytes(const kao_image *img, int H, int W) {
    return (size_t)H * W * 3 + (size_t)img->height * img->width * 3; /* the resized image, the crop */
}

static float uniform(kao_rng *rng, double lo, double hi) { return (float)(lo + (hi - lo) * kao_rng_uniform(rng)); }

static float clip255(float v) { return v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v; }

void kao_augment_input(float *out, const kao_image *img, int H, int W, const kao_augment_cfg *cfg,
                       const kao_input_norm *norm, kao_rng *rng, uint8_t *scratch) {
    /* 1. crop */
    int ch = img->height, cw = img->width, top = 0, left = 0;
    if (cfg->scale_min < 1.0 || cfg->scale_max < 1.0) {
        double s = uniform(rng, cfg->scale_min, cfg->scale_max);
        ch = (int)lround(s * img->height);
        cw = (int)lround(s * img->width);
        ch = ch < 1 ? 1 : ch > img->height ? img->height : ch;
        cw = cw < 1 ? 1 : cw > img->width ? img->width : cw;
        top = (int)kao_rng_below(rng, (uint32_t)(img->height - ch + 1));
        left = (int)kao_rng_below(rng, (uint32_t)(img->width - cw + 1));
    }
    const uint8_t *src;   /* (H, W, 3) */
    uint8_t *resized = scratch;
    if (ch == img->height && cw == img->width) {
        if (H == img->height && W == img->width) {
            src = img->pixels;
        } else {
            kao_image_resize_rgb(resized, img->pixels, img->height, img->width, H, W);
            src = resized;
        }
    } else {
        /* Copy the crop into contiguous rows, then resize. */
        uint8_t *crop = scratch + (size_t)H * W * 3;
        for (int y = 0; y < ch; y++)
            memcpy(crop + (size_t)y * cw * 3, img->pixels + ((size_t)(top + y) * img->width + left) * 3, (size_t)cw * 3);
        kao_image_resize_rgb(resized, crop, ch, cw, H, W);
        src = resized;
    }

    /* 2. flip */
    bool flip = cfg->hflip && kao_rng_uniform(rng) < 0.5f;

    /* 3. brightness, contrast factors */
    float b = cfg->brightness > 0 ? uniform(rng, 1.0 - cfg->brightness, 1.0 + cfg->brightness) : 1.0f;
    float c = cfg->contrast > 0 ? uniform(rng, 1.0 - cfg->contrast, 1.0 + cfg->contrast) : 1.0f;
    float mean = 0.0f; /* luma mean after the brightness change */
    if (cfg->contrast > 0) {
        double sum = 0;
        for (size_t i = 0; i < (size_t)H * W; i++)
            sum += 0.299 * clip255(src[3 * i] * b) + 0.587 * clip255(src[3 * i + 1] * b) +
                   0.114 * clip255(src[3 * i + 2] * b);
        mean = (float)(sum / ((double)H * W));
    }
    bool jitter = cfg->brightness > 0 || cfg->contrast > 0;

    /* 4. normalise, as kao_image_to_input does (the same float operations when nothing changed) */
    for (int y = 0; y < H; y++) {
        for (int x = 0; x < W; x++) {
            const uint8_t *p = src + ((size_t)y * W + (flip ? W - 1 - x : x)) * 3;
            float *o = out + ((size_t)y * W + x) * 3;
            for (int k = 0; k < 3; k++) {
                float v = (float)p[k];
                if (jitter) {
                    if (cfg->brightness > 0) v = clip255(v * b);
                    if (cfg->contrast > 0) v = clip255((v - mean) * c + mean);
                }
                o[k] = (v / 255.0f - norm->mean[k]) / norm->std[k];
            }
        }
    }
}
