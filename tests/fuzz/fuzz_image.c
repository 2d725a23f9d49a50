/* fuzz_image.c — kao_image_decode (PNG through libpng, JPEG through TurboJPEG, EXIF orientation),
 * with and without exif_transpose, at the default size limit; a decoded image is then resized and
 * normalised as the model's input (kao_image_to_input) is. */
#include <stdint.h>
#include <stdlib.h>

#include "kao/image.h"
#include "kao/util.h"

enum { SIDE = 24 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    for (int exif = 0; exif < 2; exif++) {
        kao_clear_error();
        kao_image_options opt = KAO_IMAGE_OPTIONS_DEFAULT;
        opt.exif_transpose = exif;
        kao_image img;
        if (kao_image_decode(&img, data, size, "fuzz", &opt) != KAO_OK) continue;
        static float input[SIDE * SIDE * 3];
        kao_image_to_input(input, &img, SIDE, SIDE, kao_imagenet_mean, kao_imagenet_std);
        kao_image_free(&img);
    }
    return 0;
}
