/* augment.c — the draws of one augmentation sample and their application: random resized crop,
 * flip, colour jitter, grayscale, normalisation (augment.h; the colour operations are in
 * augment_color.c). */
#include "kao/augment.h"

#include <math.h>
#include <string.h>

kao_augment_cfg kao_augment_none(void) {
    return (kao_augment_cfg){.crop_scale_min = 1, .crop_scale_max = 1, .crop_ratio_min = 1, .crop_ratio_max = 1};
}

void kao_augment_rng(kao_rng *rng, uint64_t seed, int epoch, int64_t position) {
    /* One stream per (epoch, position); the constant keeps these streams apart from the others
     * kao derives from the same seed. */
    uint64_t stream = 0xA06E000000000000ull ^ ((uint64_t)(uint32_t)epoch << 32) ^ (uint64_t)position;
    kao_rng_seed(rng, seed, stream);
}

static double uniform(kao_rng *rng, double lo, double hi) { return lo + (hi - lo) * kao_rng_uniform(rng); }

/* RandomResizedCrop.get_params. rint rounds half to even, as Python's round. */
static void sample_crop(kao_augment_params *p, const kao_augment_cfg *cfg, int height, int width, kao_rng *rng) {
    double area = (double)height * width, log_lo = log(cfg->crop_ratio_min), log_hi = log(cfg->crop_ratio_max);
    for (int attempt = 0; attempt < 10; attempt++) {
        double target = area * uniform(rng, cfg->crop_scale_min, cfg->crop_scale_max);
        double ratio = exp(uniform(rng, log_lo, log_hi));
        double w = rint(sqrt(target * ratio)), h = rint(sqrt(target / ratio));
        if (w > 0 && w <= width && h > 0 && h <= height) {
            p->height = (int)h;
            p->width = (int)w;
            p->top = (int)kao_rng_below(rng, (uint32_t)(height - p->height + 1));
            p->left = (int)kao_rng_below(rng, (uint32_t)(width - p->width + 1));
            return;
        }
    }
    double in_ratio = (double)width / height;
    p->height = height;
    p->width = width;
    if (in_ratio < cfg->crop_ratio_min) p->height = (int)rint(width / cfg->crop_ratio_min);
    else if (in_ratio > cfg->crop_ratio_max) p->width = (int)rint(height * cfg->crop_ratio_max);
    p->top = (height - p->height) / 2;
    p->left = (width - p->width) / 2;
}

void kao_augment_sample(kao_augment_params *p, const kao_augment_cfg *cfg, int height, int width, kao_rng *rng) {
    *p = (kao_augment_params){.height = height, .width = width, .factor = {1, 1, 1, 0}};
    if (cfg->crop_scale_min < 1.0 || cfg->crop_scale_max < 1.0) sample_crop(p, cfg, height, width, rng);
    p->flip = cfg->hflip > 0 && kao_rng_uniform(rng) < cfg->hflip;
    double amplitude[KAO_JITTER_OPS] = {cfg->brightness, cfg->contrast, cfg->saturation, cfg->hue};
    bool any = false;
    for (int k = 0; k < KAO_JITTER_OPS; k++) {
        p->order[k] = k;
        p->jitter[k] = amplitude[k] > 0;
        any |= p->jitter[k];
    }
    if (any) kao_rng_shuffle(rng, p->order, KAO_JITTER_OPS); /* torch.randperm(4): uniform */
    for (int k = 0; k < KAO_JITTER_OPS; k++) {
        if (!p->jitter[k]) continue;
        double centre = k == KAO_JITTER_HUE ? 0 : 1, lo = centre - amplitude[k];
        p->factor[k] = uniform(rng, k == KAO_JITTER_HUE || lo > 0 ? lo : 0, centre + amplitude[k]);
    }
    p->grayscale = cfg->grayscale > 0 && kao_rng_uniform(rng) < cfg->grayscale;
}

size_t kao_augment_scratch_bytes(const kao_image *img, int H, int W) {
    return (size_t)H * W * 3 + (size_t)img->height * img->width * 3; /* the resized image, the crop */
}

/* The crop resized to (H, W): img's own pixels when nothing changes them, else in scratch. */
static const uint8_t *crop_resize(const kao_image *img, int H, int W, const kao_augment_params *p, bool colour,
                                  uint8_t *scratch) {
    bool whole = p->height == img->height && p->width == img->width;
    if (whole && H == img->height && W == img->width) {
        if (!colour) return img->pixels;
        memcpy(scratch, img->pixels, (size_t)H * W * 3);
    } else if (whole) {
        kao_image_resize_rgb(scratch, img->pixels, img->height, img->width, H, W);
    } else {
        /* Copy the crop into contiguous rows, then resize. */
        uint8_t *crop = scratch + (size_t)H * W * 3;
        for (int y = 0; y < p->height; y++)
            memcpy(crop + (size_t)y * p->width * 3, img->pixels + ((size_t)(p->top + y) * img->width + p->left) * 3,
                   (size_t)p->width * 3);
        kao_image_resize_rgb(scratch, crop, p->height, p->width, H, W);
    }
    return scratch;
}

void kao_augment_apply(float *out, const kao_image *img, int H, int W, const kao_augment_params *p,
                       const kao_input_norm *norm, uint8_t *scratch) {
    bool colour = p->grayscale;
    for (int k = 0; k < KAO_JITTER_OPS; k++) colour |= p->jitter[k];
    const uint8_t *src = crop_resize(img, H, W, p, colour, scratch);
    size_t n = (size_t)H * W;
    for (int i = 0; i < KAO_JITTER_OPS; i++) {
        int k = p->order[i];
        if (!p->jitter[k]) continue;
        if (k == KAO_JITTER_BRIGHTNESS) kao_pil_brightness(scratch, n, p->factor[k]);
        else if (k == KAO_JITTER_CONTRAST) kao_pil_contrast(scratch, n, p->factor[k]);
        else if (k == KAO_JITTER_SATURATION) kao_pil_saturation(scratch, n, p->factor[k]);
        else kao_pil_hue(scratch, n, p->factor[k]);
    }
    if (p->grayscale) kao_pil_grayscale(scratch, n);

    /* flip and normalise, as kao_image_to_input does (the same float operations) */
    for (int y = 0; y < H; y++) {
        for (int x = 0; x < W; x++) {
            const uint8_t *s = src + ((size_t)y * W + (p->flip ? W - 1 - x : x)) * 3;
            float *o = out + ((size_t)y * W + x) * 3;
            for (int k = 0; k < 3; k++) o[k] = ((float)s[k] / 255.0f - norm->mean[k]) / norm->std[k];
        }
    }
}

void kao_augment_input(float *out, const kao_image *img, int H, int W, const kao_augment_cfg *cfg,
                       const kao_input_norm *norm, kao_rng *rng, uint8_t *scratch) {
    kao_augment_params p;
    kao_augment_sample(&p, cfg, img->height, img->width, rng);
    kao_augment_apply(out, img, H, W, &p, norm, scratch);
}
