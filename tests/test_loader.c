/* The input pipeline (augment.h, loader.h), on PNG files written here:
 *  - with augmentation off the input equals kao_image_to_input (kao embed's preprocessing) bit for bit;
 *  - a flip is the mirror image; a crop equals the preprocessing of some crop of the drawn size;
 *    colour jitter stays within the normalised range of [0, 255];
 *  - the loader's batches are the same bit for bit with 0, 1 and 3 workers and any depth, also
 *    when a pass starts at a later batch (a resumed epoch) or is abandoned midway;
 *  - undecodable files (zero bytes, a corrupt PNG, a truncated JPEG named .png) are left out of
 *    their batch and listed with a message naming them. */
#include "check.h"
#include "kao/augment.h"
#include "kao/loader.h"
#include "kao/util.h"

#include <ftw.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { H = 12, W = 10 };
static char base[256];

static void random_image(kao_image *img, int h, int w, kao_rng *rng) {
    img->height = h;
    img->width = w;
    img->pixels = malloc((size_t)h * w * 3);
    for (int i = 0; i < h * w * 3; i++) img->pixels[i] = (uint8_t)kao_rng_below(rng, 256);
}

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL, "create %s", path);
    if (!f) return;
    fwrite(data, 1, n, f);
    fclose(f);
}

/* root/s1..s3 with 5 random PNGs each (sizes vary), s2 also holding the bad files. */
static void build_tree(kao_rng *rng) {
    char path[512];
    snprintf(path, sizeof path, "%s/root", base);
    mkdir(path, 0755);
    for (int c = 1; c <= 3; c++) {
        snprintf(path, sizeof path, "%s/root/s%d", base, c);
        mkdir(path, 0755);
        for (int k = 0; k < 5; k++) {
            kao_image img;
            random_image(&img, 14 + 3 * k, 11 + 2 * c, rng);
            snprintf(path, sizeof path, "%s/root/s%d/%d.png", base, c, k);
            CHECK(kao_image_save_png(&img, path) == KAO_OK, "%s", kao_last_error());
            kao_image_free(&img);
        }
    }
    snprintf(path, sizeof path, "%s/root/s2/bad_empty.png", base);
    write_bytes(path, "", 0);
    static const uint8_t corrupt[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R', 1, 2, 3};
    snprintf(path, sizeof path, "%s/root/s2/bad_corrupt.png", base);
    write_bytes(path, corrupt, sizeof corrupt);
    static const uint8_t jpeg[] = {0xff, 0xd8, 0xff, 0xe0, 0, 16, 'J', 'F', 'I', 'F', 0};
    snprintf(path, sizeof path, "%s/root/s2/bad_jpeg.png", base);
    write_bytes(path, jpeg, sizeof jpeg);
}

static void check_augment(kao_rng *rng) {
    kao_image img;
    random_image(&img, 20, 16, rng);
    float *want = malloc(H * W * 3 * sizeof(float)), *got = malloc(H * W * 3 * sizeof(float));
    uint8_t *scratch = malloc(kao_augment_scratch_bytes(&img, H, W));
    kao_augment_cfg none = kao_augment_none();
    const kao_input_norm imagenet = kao_imagenet_norm(), half = {{0.5f, 0.5f, 0.5f}, {0.5f, 0.5f, 0.5f}};
    kao_rng r;
    kao_augment_rng(&r, 1, 0, 0);

    /* off: kao embed's preprocessing, resized and at the image's own size, with either normalisation */
    kao_image_to_input(want, &img, H, W, half.mean, half.std);
    kao_augment_input(got, &img, H, W, &none, &half, &r, scratch);
    CHECK(memcmp(want, got, H * W * 3 * sizeof(float)) == 0, "mean = std = 0.5: differs from kao_image_to_input");
    kao_image_to_input(want, &img, H, W, kao_imagenet_mean, kao_imagenet_std); /* want: the checks below too */
    kao_augment_input(got, &img, H, W, &none, &imagenet, &r, scratch);
    CHECK(memcmp(want, got, H * W * 3 * sizeof(float)) == 0, "no augmentation differs from kao_image_to_input");
    float *own = malloc(20 * 16 * 3 * sizeof(float)), *own_got = malloc(20 * 16 * 3 * sizeof(float));
    uint8_t *scratch2 = malloc(kao_augment_scratch_bytes(&img, 20, 16));
    kao_image_to_input(own, &img, 20, 16, kao_imagenet_mean, kao_imagenet_std);
    kao_augment_input(own_got, &img, 20, 16, &none, &imagenet, &r, scratch2);
    CHECK(memcmp(own, own_got, 20 * 16 * 3 * sizeof(float)) == 0, "no augmentation at the image's size");
    free(own);
    free(own_got);
    free(scratch2);

    /* flip: either untouched or mirrored; both happen */
    kao_augment_cfg flip = none;
    flip.hflip = 0.5;
    int flipped = 0, kept = 0;
    for (int s = 0; s < 16; s++) {
        kao_augment_rng(&r, 2, 0, s);
        kao_augment_input(got, &img, H, W, &flip, &imagenet, &r, scratch);
        bool same = memcmp(want, got, H * W * 3 * sizeof(float)) == 0, mirror = true;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                for (int k = 0; k < 3; k++)
                    mirror &= got[(y * W + x) * 3 + k] == want[(y * W + W - 1 - x) * 3 + k];
        CHECK(same || mirror, "flip sample %d is neither the image nor its mirror", s);
        flipped += mirror && !same;
        kept += same;
    }
    CHECK(flipped > 0 && kept > 0, "16 flips: %d mirrored, %d kept", flipped, kept);

    /* crop of area fraction 0.25 and ratio 0.8 (the image's): 10 × 8 pixels somewhere in the 20 × 16 image */
    kao_augment_cfg crop = none;
    crop.crop_scale_min = crop.crop_scale_max = 0.25;
    crop.crop_ratio_min = crop.crop_ratio_max = 0.8;
    for (int s = 0; s < 4; s++) {
        kao_augment_rng(&r, 3, 1, s);
        kao_augment_input(got, &img, H, W, &crop, &imagenet, &r, scratch);
        bool found = false;
        kao_image part = {.height = 10, .width = 8, .pixels = malloc(10 * 8 * 3)};
        for (int top = 0; top <= 10 && !found; top++)
            for (int left = 0; left <= 8 && !found; left++) {
                for (int y = 0; y < 10; y++) memcpy(part.pixels + y * 8 * 3, img.pixels + ((top + y) * 16 + left) * 3, 8 * 3);
                kao_image_to_input(want, &part, H, W, kao_imagenet_mean, kao_imagenet_std);
                found = memcmp(want, got, H * W * 3 * sizeof(float)) == 0;
            }
        CHECK(found, "crop sample %d is no 10x8 crop of the image", s);
        kao_image_free(&part);
    }

    /* brightness and contrast: within the normalised [0, 255] range, and not all equal to none */
    kao_augment_cfg jitter = none;
    jitter.brightness = jitter.contrast = 0.4;
    kao_image_to_input(want, &img, H, W, kao_imagenet_mean, kao_imagenet_std);
    kao_augment_rng(&r, 4, 0, 0);
    kao_augment_input(got, &img, H, W, &jitter, &imagenet, &r, scratch);
    bool in_range = true;
    for (int i = 0; i < H * W * 3; i++) {
        int k = i % 3;
        float lo = (0.0f - kao_imagenet_mean[k]) / kao_imagenet_std[k], hi = (1.0f - kao_imagenet_mean[k]) / kao_imagenet_std[k];
        in_range &= got[i] >= lo - 1e-6f && got[i] <= hi + 1e-6f;
    }
    CHECK(in_range, "jittered values outside the range of [0, 255]");
    CHECK(memcmp(want, got, H * W * 3 * sizeof(float)) != 0, "jitter changed nothing");
    free(want);
    free(got);
    free(scratch);
    kao_image_free(&img);
}

/* Every batch of a pass, concatenated, for comparisons. */
typedef struct {
    int batches, rows, failed;
    float input[40 * H * W * 3];
    int labels[40], items[40], sizes[20], failed_items[20];
    char messages[20][KAO_LOADER_MESSAGE];
} pass_result;

static void run_pass(pass_result *out, kao_loader *L, const int *items, int n, int batch, int first,
                     const kao_augment_cfg *aug) {
    memset(out, 0, sizeof *out);
    kao_loader_start(L, items, n, batch, first, aug, 77, 3);
    const kao_batch *b;
    while ((b = kao_loader_next(L, NULL))) {
        CHECK(b->index == first + out->batches, "batch %d delivered as %d", first + out->batches, b->index);
        memcpy(out->input + (size_t)out->rows * H * W * 3, b->input, (size_t)b->count * H * W * 3 * sizeof(float));
        memcpy(out->labels + out->rows, b->labels, (size_t)b->count * sizeof(int));
        memcpy(out->items + out->rows, b->items, (size_t)b->count * sizeof(int));
        for (int k = 0; k < b->num_failed; k++) {
            out->failed_items[out->failed] = b->failed[k];
            snprintf(out->messages[out->failed++], KAO_LOADER_MESSAGE, "%s", b->failed_message[k]);
        }
        out->sizes[out->batches++] = b->count;
        out->rows += b->count;
    }
}

static bool same_pass(const pass_result *a, const pass_result *b) {
    return a->batches == b->batches && a->rows == b->rows && a->failed == b->failed &&
           !memcmp(a->input, b->input, (size_t)a->rows * H * W * 3 * sizeof(float)) &&
           !memcmp(a->labels, b->labels, (size_t)a->rows * sizeof(int)) &&
           !memcmp(a->items, b->items, (size_t)a->rows * sizeof(int)) &&
           !memcmp(a->sizes, b->sizes, (size_t)a->batches * sizeof(int)) &&
           !memcmp(a->failed_items, b->failed_items, (size_t)a->failed * sizeof(int)) &&
           !memcmp(a->messages, b->messages, (size_t)a->failed * KAO_LOADER_MESSAGE);
}

static void check_loader(void) {
    char root[512];
    snprintf(root, sizeof root, "%s/root", base);
    kao_dataset ds;
    kao_dataset_options o = {.min_images = 1, .max_images = 0, .strict = true};
    CHECK(kao_dataset_scan(&ds, root, &o) == KAO_OK, "%s", kao_last_error());
    CHECK(ds.num_images == 18, "%d images", ds.num_images);
    /* a fixed shuffled order of every image, bad ones included */
    int items[18];
    for (int i = 0; i < 18; i++) items[i] = i;
    kao_rng r;
    kao_rng_seed(&r, 9, 0);
    kao_rng_shuffle(&r, items, 18);
    kao_augment_cfg aug = {.crop_scale_min = 0.36, .crop_scale_max = 1.0, .crop_ratio_min = 0.75, .crop_ratio_max = 1.25,
                           .hflip = 0.5, .brightness = 0.3, .contrast = 0.3, .saturation = 0.3, .hue = 0.1,
                           .grayscale = 0.2};

    static pass_result ref, got;
    kao_backend *cpu = kao_backend_cpu();
    /* a normalisation of the weights' own (timm's _s: 0.5), which the loader must apply */
    const kao_input_norm half = {{0.5f, 0.5f, 0.5f}, {0.5f, 0.5f, 0.5f}};
    kao_loader *L0 = kao_loader_create(&ds, 0, 1, 5, H, W, &half, &KAO_IMAGE_OPTIONS_DEFAULT, cpu);
    run_pass(&ref, L0, items, 18, 5, 0, &aug);
    CHECK(ref.batches == 4 && ref.rows == 15 && ref.failed == 3, "%d batches, %d rows, %d failed", ref.batches, ref.rows,
          ref.failed);
    for (int k = 0; k < ref.failed; k++) {
        CHECK(strstr(ref.messages[k], "bad_") != NULL, "message does not name the file: %s", ref.messages[k]);
        CHECK(strstr(ds.images[ref.failed_items[k]].rel, "bad_") != NULL, "failed item %s", ds.images[ref.failed_items[k]].rel);
    }
    for (int i = 0; i < ref.rows; i++) CHECK(ref.labels[i] == ds.images[ref.items[i]].label, "row %d label", i);

    int workers[3] = {1, 3, 3}, depths[3] = {1, 2, 6};
    for (int t = 0; t < 3; t++) {
        kao_loader *L = kao_loader_create(&ds, workers[t], depths[t], 5, H, W, &half, &KAO_IMAGE_OPTIONS_DEFAULT, cpu);
        /* abandon a pass midway first: the next pass must not see its batches */
        kao_loader_start(L, items, 18, 5, 0, &aug, 1, 0);
        CHECK(kao_loader_next(L, NULL) != NULL, "first batch");
        run_pass(&got, L, items, 18, 5, 0, &aug);
        CHECK(same_pass(&ref, &got), "%d workers, depth %d: batches differ from the single-threaded ones", workers[t],
              depths[t]);
        /* a resumed pass from batch 2 equals the tail of the full pass */
        run_pass(&got, L, items, 18, 5, 2, &aug);
        int skip = ref.sizes[0] + ref.sizes[1];
        CHECK(got.batches == 2 && got.rows == ref.rows - skip &&
                  !memcmp(got.input, ref.input + (size_t)skip * H * W * 3, (size_t)got.rows * H * W * 3 * sizeof(float)),
              "%d workers: a pass from batch 2 differs from the full pass's tail", workers[t]);
        kao_loader_free(L);
    }
    /* without augmentation: kao_load_input, row for row */
    kao_augment_cfg none = kao_augment_none();
    run_pass(&got, L0, items, 18, 5, 0, &none);
    float want[H * W * 3];
    for (int i = 0; i < got.rows; i++) {
        kao_load_input(want, ds.images[got.items[i]].path, H, W, &half, &KAO_IMAGE_OPTIONS_DEFAULT);
        CHECK(!memcmp(want, got.input + (size_t)i * H * W * 3, sizeof want), "row %d differs from kao_load_input", i);
    }
    kao_loader_free(L0);
    kao_backend_free(cpu);
    kao_dataset_free(&ds);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) { return remove(path); }

int main(void) {
    snprintf(base, sizeof base, "/tmp/kao_test_loader_XXXXXX");
    KAO_ASSERT(mkdtemp(base), "mkdtemp");
    kao_rng rng;
    kao_rng_seed(&rng, 1234, 0);
    build_tree(&rng);
    check_augment(&rng);
    check_loader();
    nftw(base, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return check_summary("test_loader");
}
