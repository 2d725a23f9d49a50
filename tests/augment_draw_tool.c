/* augment_draw_tool — kao's side of test_augment_distribution.py.
 *
 *   augment_draw_tool sample N HEIGHT WIDTH SEED [augment.KEY=VALUE ...]
 * draws the parameters of N samples for a HEIGHT × WIDTH image with kao_augment_sample and the
 * generators kao_augment_rng(SEED, 0, i), i = 0 … N−1, under kao's default [augment] config with
 * the given keys set (through the config table and kao_config_validate, as kao train does). One
 * line per sample:
 *   top left height width flip order0 order1 order2 order3 jitter0..3 factor0..3 grayscale
 * (the jitter operations numbered as torchvision's ColorJitter: brightness, contrast, saturation,
 * hue; factors with 17 digits).
 *
 *   augment_draw_tool apply IMAGE H W < PARAMS
 * reads such lines and writes, per line, kao_augment_apply's (H, W, 3) float32 output for IMAGE
 * with mean 0 and std 1 (ToTensor's values) to stdout.
 * Exit status 0, 1 on a bad config or image, 2 on a usage error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kao/augment.h"
#include "kao/config.h"
#include "kao/util.h"

static int sample(int argc, char **argv) {
    int n = atoi(argv[2]), height = atoi(argv[3]), width = atoi(argv[4]);
    uint64_t seed = strtoull(argv[5], NULL, 10);
    kao_config c;
    kao_config_defaults(&c);
    for (int i = 6; i < argc; i++)
        if (kao_config_set_assignment(&c, argv[i], "augment_draw_tool") != KAO_OK) return 1;
    if (kao_config_validate(&c) != KAO_OK) return 1;
    kao_augment_cfg cfg = kao_config_augment(&c);
    for (int i = 0; i < n; i++) {
        kao_rng rng;
        kao_augment_params p;
        kao_augment_rng(&rng, seed, 0, i);
        kao_augment_sample(&p, &cfg, height, width, &rng);
        printf("%d %d %d %d %d", p.top, p.left, p.height, p.width, p.flip);
        for (int k = 0; k < KAO_JITTER_OPS; k++) printf(" %d", p.order[k]);
        for (int k = 0; k < KAO_JITTER_OPS; k++) printf(" %d", p.jitter[k]);
        for (int k = 0; k < KAO_JITTER_OPS; k++) printf(" %.17g", p.factor[k]);
        printf(" %d\n", p.grayscale);
    }
    return 0;
}

static bool read_params(kao_augment_params *p) {
    int flip, gray, on[KAO_JITTER_OPS];
    if (scanf("%d %d %d %d %d", &p->top, &p->left, &p->height, &p->width, &flip) != 5) return false;
    for (int k = 0; k < KAO_JITTER_OPS; k++)
        if (scanf("%d", &p->order[k]) != 1) return false;
    for (int k = 0; k < KAO_JITTER_OPS; k++)
        if (scanf("%d", &on[k]) != 1) return false;
    for (int k = 0; k < KAO_JITTER_OPS; k++)
        if (scanf("%lf", &p->factor[k]) != 1) return false;
    if (scanf("%d", &gray) != 1) return false;
    p->flip = flip;
    p->grayscale = gray;
    for (int k = 0; k < KAO_JITTER_OPS; k++) p->jitter[k] = on[k];
    return true;
}

static int apply(char **argv) {
    int H = atoi(argv[3]), W = atoi(argv[4]);
    kao_image img;
    kao_image_options opt = KAO_IMAGE_OPTIONS_DEFAULT;
    if (kao_image_load_rgb(&img, argv[2], &opt) != KAO_OK) {
        fprintf(stderr, "%s\n", kao_last_error());
        return 1;
    }
    const kao_input_norm unit = {{0, 0, 0}, {1, 1, 1}};
    float *out = kao_malloc((size_t)H * W * 3 * sizeof *out, "output");
    uint8_t *scratch = kao_malloc(kao_augment_scratch_bytes(&img, H, W), "scratch");
    kao_augment_params p;
    while (read_params(&p)) {
        kao_augment_apply(out, &img, H, W, &p, &unit, scratch);
        fwrite(out, sizeof *out, (size_t)H * W * 3, stdout);
    }
    free(out);
    free(scratch);
    kao_image_free(&img);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 6 && !strcmp(argv[1], "sample")) {
        int rc = sample(argc, argv);
        if (rc) fprintf(stderr, "%s\n", kao_last_error());
        return rc;
    }
    if (argc == 5 && !strcmp(argv[1], "apply")) return apply(argv);
    fprintf(stderr, "usage: augment_draw_tool sample N HEIGHT WIDTH SEED [augment.KEY=VALUE ...]\n"
                    "       augment_draw_tool apply IMAGE H W < PARAMS\n");
    return 2;
}
