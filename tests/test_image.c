/* PNG decoding, resizing and normalisation against PIL and torchvision, and the error cases.
 *
 * Reference: tests/data/images/reference.h5 from tools/gen_image_reference.py (Pillow 13,
 * torchvision 0.20.1): for every test PNG, PIL's convert('RGB') (16-bit grey: the high byte,
 * see include/kao/image.h), torchvision's Resize((H, W)) as uint8 and with ToTensor + Normalize.
 * Tolerances: decoding and resizing exact (0 uint8 levels), the normalised input exact (0.0). */
#include <dirent.h>
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "kao/image.h"
#include "kao/util.h"

#define DATA_DIR "tests/data/images"
#define MAX_NAMES 64

typedef struct {
    int count;
    char names[MAX_NAMES][64];
} name_list;

static herr_t collect_name(hid_t loc, const char *name, const H5L_info_t *info, void *data) {
    name_list *list = data;
    if (list->count < MAX_NAMES) snprintf(list->names[list->count++], sizeof list->names[0], "%s", name);
    return 0;
}

static void list_names(name_list *list, hid_t loc) {
    list->count = 0;
    H5Literate(loc, H5_INDEX_NAME, H5_ITER_INC, NULL, collect_name, list);
}

/* Reads a dataset of n elements of the given memory type; returns false on a shape mismatch. */
static bool read_dataset(void *out, hid_t group, const char *name, hid_t type, size_t n) {
    hid_t d = H5Dopen2(group, name, H5P_DEFAULT);
    if (d < 0) return false;
    hid_t space = H5Dget_space(d);
    bool ok = (size_t)H5Sget_simple_extent_npoints(space) == n &&
              H5Dread(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) >= 0;
    H5Sclose(space);
    H5Dclose(d);
    return ok;
}

static int max_abs_diff_u8(const uint8_t *a, const uint8_t *b, size_t n) {
    int max = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)a[i] - (int)b[i]);
        if (d > max) max = d;
    }
    return max;
}

static double max_abs_diff_f32(const float *a, const float *b, size_t n) {
    double max = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= max)) max = isnan(d) ? INFINITY : d;
    }
    return max;
}

static struct {
    int images, resizes, inputs, resize_max_levels;
    double input_max_abs;
} seen;

/* One group of reference.h5: decode the PNG, then every resize_HxW and input_HxW. */
static void check_reference_image(hid_t file, const char *name) {
    char path[512];
    snprintf(path, sizeof path, DATA_DIR "/%s.png", name);
    kao_image img;
    if (kao_image_load_rgb(&img, path, &KAO_IMAGE_OPTIONS_DEFAULT) != KAO_OK) {
        CHECK(false, "%s", kao_last_error());
        return;
    }
    seen.images++;
    hid_t g = H5Gopen2(file, name, H5P_DEFAULT);
    size_t n = (size_t)img.width * img.height * 3;
    uint8_t *want = malloc(n);
    CHECK(read_dataset(want, g, "rgb", H5T_NATIVE_UINT8, n), "%s: rgb is not %dx%d", name, img.width, img.height);
    int diff = max_abs_diff_u8(img.pixels, want, n);
    CHECK(diff == 0, "%s: decoded RGB differs from PIL by up to %d levels", name, diff);
    free(want);

    name_list targets;
    list_names(&targets, g);
    for (int t = 0; t < targets.count; t++) {
        int H, W;
        const char *ds = targets.names[t];
        bool is_resize = sscanf(ds, "resize_%dx%d", &H, &W) == 2;
        bool is_input = !is_resize && sscanf(ds, "input_%dx%d", &H, &W) == 2;
        if (!is_resize && !is_input) continue;
        size_t m = (size_t)H * W * 3;
        if (is_resize) {
            uint8_t *got = malloc(m), *ref = malloc(m); /* (H, W, 3) */
            CHECK(read_dataset(ref, g, ds, H5T_NATIVE_UINT8, m), "%s/%s", name, ds);
            kao_image_resize_rgb(got, img.pixels, img.height, img.width, H, W);
            int d = max_abs_diff_u8(got, ref, m);
            CHECK(d == 0, "%s: %dx%d -> %dx%d differs from torchvision by up to %d levels", name,
                  img.width, img.height, W, H, d);
            if (d > seen.resize_max_levels) seen.resize_max_levels = d;
            seen.resizes++;
            free(got);
            free(ref);
        } else {
            float *got = malloc(m * sizeof *got), *ref = malloc(m * sizeof *ref); /* (H, W, 3) */
            CHECK(read_dataset(ref, g, ds, H5T_NATIVE_FLOAT, m), "%s/%s", name, ds);
            kao_image_to_input(got, &img, H, W, kao_imagenet_mean, kao_imagenet_std);
            double d = max_abs_diff_f32(got, ref, m);
            CHECK(d == 0.0, "%s: %s differs from torchvision by up to %g", name, ds, d);
            if (d > seen.input_max_abs) seen.input_max_abs = d;
            seen.inputs++;
            free(got);
            free(ref);
        }
    }
    H5Gclose(g);
    kao_image_free(&img);
}

static void check_against_reference(void) {
    hid_t file = H5Fopen(DATA_DIR "/reference.h5", H5F_ACC_RDONLY, H5P_DEFAULT);
    CHECK(file >= 0, "cannot open " DATA_DIR "/reference.h5 (run tools/gen_image_reference.py)");
    if (file < 0) return;
    name_list images;
    list_names(&images, file);
    for (int i = 0; i < images.count; i++) check_reference_image(file, images.names[i]);
    H5Fclose(file);
    /* Every colour type and bit depth the generator writes, and its resize targets, were seen. */
    CHECK(seen.images >= 26, "only %d reference images", seen.images);
    CHECK(seen.resizes >= 21 && seen.inputs >= 21, "only %d resizes, %d inputs", seen.resizes, seen.inputs);
    printf("test_image: %d PNGs decoded as PIL does; %d resizes, max %d uint8 levels from torchvision; "
           "%d inputs, max |diff| %g\n", seen.images, seen.resizes, seen.resize_max_levels, seen.inputs,
           seen.input_max_abs);
}

/* ---- error cases, in a temporary folder ---- */

static char tmp_dir[256];

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    KAO_ASSERT(f, "%s", path);
    KAO_ASSERT(fwrite(data, 1, n, f) == n, "%s", path);
    fclose(f);
}

static uint8_t *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    KAO_ASSERT(f, "%s", path);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *data = malloc(*n);
    KAO_ASSERT(fread(data, 1, *n, f) == *n, "%s", path);
    fclose(f);
    return data;
}

/* Loading path must fail, leave the image empty, and say what (needle) about which file. */
static void check_load_fails(const char *path, const char *needle) {
    kao_image img = {.width = 7, .height = 7};
    kao_clear_error();
    int rc = kao_image_load_rgb(&img, path, &KAO_IMAGE_OPTIONS_DEFAULT);
    const char *msg = kao_last_error();
    CHECK(rc == KAO_ERR, "%s loaded", path);
    CHECK(img.pixels == NULL && img.width == 0 && img.height == 0, "%s: image not left empty", path);
    CHECK(strstr(msg, path) != NULL, "message does not name %s: %s", path, msg);
    CHECK(strstr(msg, needle) != NULL, "message for %s lacks '%s': %s", path, needle, msg);
    kao_image_free(&img);
}

static void check_errors(const uint8_t *png, size_t size) {
    char path[512];
    snprintf(path, sizeof path, "%s/missing.png", tmp_dir);
    check_load_fails(path, "cannot open");
    snprintf(path, sizeof path, "%s/empty.png", tmp_dir);
    write_bytes(path, png, 0);
    check_load_fails(path, "empty file");
    snprintf(path, sizeof path, "%s/half.png", tmp_dir);
    write_bytes(path, png, size / 2);
    check_load_fails(path, "truncated PNG");
    snprintf(path, sizeof path, "%s/no_iend.png", tmp_dir); /* cut inside the last IDAT's CRC */
    write_bytes(path, png, size - 14);
    check_load_fails(path, "truncated PNG");
    snprintf(path, sizeof path, "%s/four.png", tmp_dir);
    write_bytes(path, png, 4);
    check_load_fails(path, "truncated PNG");
    snprintf(path, sizeof path, "%s/text.png", tmp_dir);
    write_bytes(path, "name,label\nyamada,1\n", 20);
    check_load_fails(path, "not a PNG or JPEG file");
    snprintf(path, sizeof path, "%s/bad_crc.png", tmp_dir);
    uint8_t *copy = malloc(size);
    memcpy(copy, png, size);
    copy[size - 20] ^= 0x55; /* a byte of IDAT's compressed data */
    write_bytes(path, copy, size);
    check_load_fails(path, "corrupt PNG (libpng: ");
    memcpy(copy, png, size);
    copy[16] = 0x80; /* width's top byte: over 2^31 is invalid in IHDR */
    snprintf(path, sizeof path, "%s/bad_ihdr.png", tmp_dir);
    write_bytes(path, copy, size);
    check_load_fails(path, "corrupt PNG (libpng: ");
    free(copy);
    check_load_fails(DATA_DIR "/huge_side.png", "100000 x 8 pixels, more than kao accepts");
    check_load_fails(DATA_DIR "/huge_area.png", "60000 x 60000 pixels, more than kao accepts");
    check_load_fails(tmp_dir, "not a regular file");

    kao_image img;
    kao_clear_error();
    CHECK(kao_image_decode(&img, png, size / 3, "buffer#1", &KAO_IMAGE_OPTIONS_DEFAULT) == KAO_ERR &&
              strstr(kao_last_error(), "buffer#1: truncated PNG"),
          "truncated buffer: %s", kao_last_error());
}

/* A Japanese folder and file name; decoding from memory; writing and reading back. */
static void check_paths_and_writing(const uint8_t *png, size_t size, const kao_image *ref) {
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/顔", tmp_dir);
    CHECK(mkdir(dir, 0755) == 0, "mkdir %s", dir);
    snprintf(path, sizeof path, "%s/山田.png", dir);
    write_bytes(path, png, size);
    kao_image img;
    CHECK(kao_image_load_rgb(&img, path, &KAO_IMAGE_OPTIONS_DEFAULT) == KAO_OK, "%s", kao_last_error());
    CHECK(img.width == ref->width && img.height == ref->height &&
              memcmp(img.pixels, ref->pixels, (size_t)img.width * img.height * 3) == 0,
          "%s decodes differently", path);
    kao_image_free(&img);
    snprintf(path, sizeof path, "%s/佐藤.png", dir);
    check_load_fails(path, "cannot open");

    CHECK(kao_image_decode(&img, png, size, "memory", &KAO_IMAGE_OPTIONS_DEFAULT) == KAO_OK, "%s", kao_last_error());
    CHECK(img.width == ref->width && img.height == ref->height &&
              memcmp(img.pixels, ref->pixels, (size_t)img.width * img.height * 3) == 0,
          "decoding from memory differs");
    kao_image_free(&img);

    snprintf(path, sizeof path, "%s/written.png", dir);
    CHECK(kao_image_save_png(ref, path) == KAO_OK, "%s", kao_last_error());
    CHECK(kao_image_load_rgb(&img, path, &KAO_IMAGE_OPTIONS_DEFAULT) == KAO_OK, "%s", kao_last_error());
    CHECK(img.width == ref->width && img.height == ref->height &&
              memcmp(img.pixels, ref->pixels, (size_t)img.width * img.height * 3) == 0,
          "written PNG reads back differently");
    kao_image_free(&img);
    DIR *folder = opendir(dir);
    for (struct dirent *e; folder && (e = readdir(folder));)
        CHECK(!kao_is_temp_name(e->d_name, "written.png"), "temp file %s left behind", e->d_name);
    if (folder) closedir(folder);
    unlink(path);
    snprintf(path, sizeof path, "%s/顔/山田.png", tmp_dir);
    unlink(path);
    rmdir(dir);

    snprintf(path, sizeof path, "%s/no_such_folder/plot.png", tmp_dir);
    CHECK(kao_image_save_png(ref, path) == KAO_ERR && strstr(kao_last_error(), "no_such_folder"),
          "writing into a missing folder: %s", kao_last_error());
}

/* kao_load_input = load + Resize((H, W)) + ToTensor + Normalize with the ImageNet defaults. */
static void check_load_input(void) {
    hid_t file = H5Fopen(DATA_DIR "/reference.h5", H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) return;
    hid_t g = H5Gopen2(file, "rgb8", H5P_DEFAULT);
    enum { H = 23, W = 31 };
    static float got[H * W * 3], ref[H * W * 3]; /* (H, W, 3) */
    CHECK(read_dataset(ref, g, "input_23x31", H5T_NATIVE_FLOAT, H * W * 3), "rgb8/input_23x31");
    const kao_input_norm imagenet = kao_imagenet_norm();
    CHECK(kao_load_input(got, DATA_DIR "/rgb8.png", H, W, &imagenet, &KAO_IMAGE_OPTIONS_DEFAULT) == KAO_OK, "%s",
          kao_last_error());
    CHECK(max_abs_diff_f32(got, ref, (size_t)H * W * 3) == 0.0, "kao_load_input rgb8 23x31 differs");
    CHECK(kao_load_input(got, DATA_DIR "/nothing.png", H, W, &imagenet, &KAO_IMAGE_OPTIONS_DEFAULT) == KAO_ERR &&
              strstr(kao_last_error(), "nothing.png"), "%s", kao_last_error());
    H5Gclose(g);
    H5Fclose(file);
}

static void remove_temp_files(void) {
    static const char *names[] = {"empty.png", "half.png", "no_iend.png", "four.png",
                                  "text.png",  "bad_crc.png", "bad_ihdr.png"};
    char path[512];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", tmp_dir, names[i]);
        unlink(path);
    }
    CHECK(rmdir(tmp_dir) == 0, "temporary folder %s not empty", tmp_dir);
}

int main(void) {
    check_against_reference();

    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/kao_test_image_XXXXXX");
    KAO_ASSERT(mkdtemp(tmp_dir), "mkdtemp");
    size_t size;
    uint8_t *png = read_all(DATA_DIR "/rgb8.png", &size);
    kao_image ref;
    KAO_ASSERT(kao_image_load_rgb(&ref, DATA_DIR "/face_like.png", &KAO_IMAGE_OPTIONS_DEFAULT) == KAO_OK, "%s",
               kao_last_error());
    check_errors(png, size);
    free(png);
    png = read_all(DATA_DIR "/face_like.png", &size);
    check_paths_and_writing(png, size, &ref);
    free(png);
    kao_image_free(&ref);
    remove_temp_files();

    check_load_input();
    return check_summary("test_image");
}
