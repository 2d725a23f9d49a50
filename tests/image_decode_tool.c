/* image_decode_tool [--max-pixels N] [--exif-transpose] FILE... — kao's side of
 * test_image_jpeg.py: decodes each file with kao_image_load_rgb and writes, per file, either
 * "ok WIDTH HEIGHT\n" followed by its WIDTH x HEIGHT x 3 RGB bytes, or "error MESSAGE\n", to stdout.
 * Exit status 0 when every file decoded, 1 when any failed, 2 on a usage error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kao/image.h"
#include "kao/util.h"

int main(int argc, char **argv) {
    kao_image_options opt = KAO_IMAGE_OPTIONS_DEFAULT;
    int first = 1;
    for (; first < argc && !strncmp(argv[first], "--", 2); first++) {
        if (!strcmp(argv[first], "--exif-transpose")) opt.exif_transpose = true;
        else if (!strcmp(argv[first], "--max-pixels") && first + 1 < argc) opt.max_pixels = atol(argv[++first]);
        else break;
    }
    if (first >= argc || opt.max_pixels < 1) {
        fprintf(stderr, "usage: image_decode_tool [--max-pixels N] [--exif-transpose] FILE...\n");
        return 2;
    }
    int status = 0;
    for (int i = first; i < argc; i++) {
        kao_image img;
        if (kao_image_load_rgb(&img, argv[i], &opt) != KAO_OK) {
            printf("error %s\n", kao_last_error());
            status = 1;
            continue;
        }
        printf("ok %d %d\n", img.width, img.height);
        fwrite(img.pixels, 1, (size_t)img.width * img.height * 3, stdout);
        kao_image_free(&img);
    }
    return status;
}
