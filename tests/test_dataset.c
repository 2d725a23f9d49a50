/* Scanning identity-folder trees built here in a temp folder: byte order of UTF-8 names, hidden
 * entries, PNG and JPEG names, other files, empty folders (strict and not), min/max images, and each error. The scan
 * does not decode, so zero-byte files stand in for images. */
#include "check.h"
#include "kao/dataset.h"
#include "kao/util.h"

#include <ftw.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char base[256];

static void make_dir(const char *rel) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", base, rel);
    CHECK(mkdir(path, 0755) == 0, "mkdir %s", path);
}

static void make_file(const char *rel) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", base, rel);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL, "create %s", path);
    if (f) fclose(f);
}

static const char *at(const char *rel) {
    static char path[1024];
    snprintf(path, sizeof path, "%s/%s", base, rel);
    return path;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) { return remove(path); }

static bool error_has(const char *part) {
    bool ok = strstr(kao_last_error(), part) != NULL;
    if (!ok) fprintf(stderr, "  error was: %s\n  expected it to contain: %s\n", kao_last_error(), part);
    return ok;
}

/* root/
 *   README.txt            ignored (file at root level)
 *   .hidden/x.png         skipped (hidden)
 *   empty/                no image: error when strict, else dropped
 *   few/1.png             one image
 *   s1/1.png 2.jpg 3.JPEG
 *   山田太郎/a.png b.PNG c.png notes.txt sub/ .DS_Store
 *   佐藤花子/1.png 2.png
 */
static void build_tree(void) {
    make_dir("root");
    make_file("root/README.txt");
    make_dir("root/.hidden");
    make_file("root/.hidden/x.png");
    make_dir("root/empty");
    make_dir("root/few");
    make_file("root/few/1.png");
    make_dir("root/s1");
    make_file("root/s1/1.png");
    make_file("root/s1/2.jpg");
    make_file("root/s1/3.JPEG");
    make_dir("root/山田太郎");
    make_file("root/山田太郎/c.png");
    make_file("root/山田太郎/a.png");
    make_file("root/山田太郎/b.PNG");
    make_file("root/山田太郎/notes.txt");
    make_file("root/山田太郎/.DS_Store");
    make_dir("root/山田太郎/sub");
    make_dir("root/佐藤花子");
    make_file("root/佐藤花子/1.png");
    make_file("root/佐藤花子/2.png");
}

static void test_scan(void) {
    kao_dataset ds;
    kao_dataset_options opt = {.min_images = 1, .max_images = 0, .strict = false};
    char root[1100];
    snprintf(root, sizeof root, "%s/", at("root")); /* a trailing '/' is dropped */
    CHECK(kao_dataset_scan(&ds, root, &opt) == KAO_OK, "%s", kao_last_error());
    CHECK(strcmp(ds.root, at("root")) == 0, "root %s", ds.root);
    /* Byte order: ASCII first, then 佐 (E4 BD 90) before 山 (E5 B1 B1). */
    const char *names[] = {"few", "s1", "佐藤花子", "山田太郎"};
    const int counts[] = {1, 3, 2, 3};
    CHECK(ds.num_classes == 4, "%d classes", ds.num_classes);
    for (int c = 0; c < 4 && c < ds.num_classes; c++) {
        CHECK(strcmp(ds.classes[c].name, names[c]) == 0, "class %d is %s", c, ds.classes[c].name);
        CHECK(ds.classes[c].num_images == counts[c], "class %d has %d", c, ds.classes[c].num_images);
        for (int k = 0; k < ds.classes[c].num_images; k++) {
            const kao_sample *img = &ds.images[ds.classes[c].images[k]];
            CHECK(img->label == c, "label %d", img->label);
            CHECK(strncmp(img->rel, names[c], strlen(names[c])) == 0, "rel %s", img->rel);
            CHECK(strcmp(img->path + strlen(ds.root) + 1, img->rel) == 0, "path %s", img->path);
        }
    }
    CHECK(ds.num_images == 9, "%d images", ds.num_images);
    const char *rels[] = {"few/1.png", "s1/1.png", "s1/2.jpg", "s1/3.JPEG", "佐藤花子/1.png", "佐藤花子/2.png",
                          "山田太郎/a.png", "山田太郎/b.PNG", "山田太郎/c.png"};
    for (int i = 0; i < 9 && i < ds.num_images; i++)
        CHECK(strcmp(ds.images[i].rel, rels[i]) == 0, "image %d is %s, expected %s", i, ds.images[i].rel, rels[i]);
    CHECK(ds.num_dropped == 1 && strcmp(ds.dropped[0].name, "empty") == 0 && ds.dropped[0].num_images == 0,
          "dropped %d", ds.num_dropped);
    CHECK(ds.ignored_files == 3, "ignored %d (README.txt, notes.txt, sub)", ds.ignored_files);
    CHECK(ds.ignored_example && strcmp(ds.ignored_example, "README.txt") == 0, "example %s", ds.ignored_example);

    for (int i = 0; i < ds.num_images; i++) CHECK(kao_dataset_find(&ds, rels[i]) == i, "find %s", rels[i]);
    CHECK(kao_dataset_find(&ds, "山田太郎/notes.txt") == -1, "non-image found");
    CHECK(kao_dataset_find(&ds, "empty/1.png") == -1, "dropped found");
    CHECK(kao_dataset_find(&ds, "s/1.png") == -1 && kao_dataset_find(&ds, "s10/1.png") == -1, "prefix found");
    CHECK(kao_dataset_find(&ds, "s1") == -1 && kao_dataset_find(&ds, "s1/") == -1, "bare identity found");

    CHECK(kao_dataset_mark_skipped(&ds, 2), "first mark");
    CHECK(!kao_dataset_mark_skipped(&ds, 2), "second mark");
    CHECK(ds.skipped_images == 1 && ds.images[2].skipped, "skipped %d", ds.skipped_images);

    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    kao_dataset_print_summary(f, &ds);
    fclose(f);
    CHECK(strstr(text, "identities: 4 (images per identity: min 1, median 2.5, max 3)") != NULL, "%s", text);
    CHECK(strstr(text, "images:     9 (7 .png, 2 .jpg or .jpeg)") != NULL, "%s", text);
    CHECK(strstr(text, "1 empty identity folder: empty") != NULL, "%s", text);
    CHECK(strstr(text, "3 entries are neither an identity folder nor a PNG or JPEG image (e.g. README.txt)") != NULL, "%s",
          text);
    CHECK(strstr(text, "skipped:    1 image that failed to decode") != NULL, "%s", text);
    free(text);
    kao_dataset_free(&ds);

    /* strict: the empty folder is an error naming it. */
    opt.strict = true;
    CHECK(kao_dataset_scan(&ds, at("root"), &opt) == KAO_ERR, "strict accepted an empty folder");
    CHECK(error_has(at("root/empty")) && error_has("no PNG or JPEG images"), "message");
    kao_dataset_free(&ds);

    /* min_images drops the small identities and reports them. */
    opt = (kao_dataset_options){.min_images = 3, .strict = false};
    CHECK(kao_dataset_scan(&ds, at("root"), &opt) == KAO_OK, "%s", kao_last_error());
    CHECK(ds.num_classes == 2 && strcmp(ds.classes[0].name, "s1") == 0 && strcmp(ds.classes[1].name, "山田太郎") == 0,
          "%d classes", ds.num_classes);
    CHECK(ds.num_dropped == 3, "dropped %d", ds.num_dropped);
    f = open_memstream(&text, &size);
    kao_dataset_print_summary(f, &ds);
    fclose(f);
    CHECK(strstr(text, "2 identities with fewer than 3 images: few (1), 佐藤花子 (2)") != NULL, "%s", text);
    free(text);
    kao_dataset_free(&ds);

    /* max_images keeps the first images in name order. */
    opt = (kao_dataset_options){.min_images = 1, .max_images = 2, .strict = false};
    CHECK(kao_dataset_scan(&ds, at("root"), &opt) == KAO_OK, "%s", kao_last_error());
    CHECK(ds.num_images == 7 && ds.num_capped == 2, "%d images, %d capped", ds.num_images, ds.num_capped);
    CHECK(kao_dataset_find(&ds, "山田太郎/b.PNG") >= 0 && kao_dataset_find(&ds, "山田太郎/c.png") < 0, "cap order");
    kao_dataset_free(&ds);

    /* Every identity below the minimum. */
    opt = (kao_dataset_options){.min_images = 80, .strict = false};
    CHECK(kao_dataset_scan(&ds, at("root"), &opt) == KAO_ERR, "all dropped accepted");
    CHECK(error_has("all 5 identities have fewer than 80 images (the largest has 3)"), "message");
    kao_dataset_free(&ds);
}

static void test_errors(void) {
    kao_dataset ds;
    kao_dataset_options opt = {.min_images = 1, .strict = true};

    CHECK(kao_dataset_scan(&ds, at("missing"), &opt) == KAO_ERR, "missing root accepted");
    CHECK(error_has(at("missing")) && error_has("does not exist"), "message");
    kao_dataset_free(&ds);

    CHECK(kao_dataset_scan(&ds, "", &opt) == KAO_ERR && error_has("data.root"), "empty root name");
    kao_dataset_free(&ds);

    make_file("plain.txt");
    CHECK(kao_dataset_scan(&ds, at("plain.txt"), &opt) == KAO_ERR, "file as root accepted");
    CHECK(error_has("not a folder"), "message");
    kao_dataset_free(&ds);

    make_dir("bare");
    CHECK(kao_dataset_scan(&ds, at("bare"), &opt) == KAO_ERR, "empty root accepted");
    CHECK(error_has(at("bare")) && error_has("no identity folders"), "message");
    kao_dataset_free(&ds);

    make_file("bare/loose.png"); /* images without identity folders */
    make_dir("bare/.git");
    CHECK(kao_dataset_scan(&ds, at("bare"), &opt) == KAO_ERR && error_has("no identity folders"), "loose files");
    kao_dataset_free(&ds);

    make_dir("allempty");
    make_dir("allempty/a");
    make_dir("allempty/b");
    opt.strict = false;
    CHECK(kao_dataset_scan(&ds, at("allempty"), &opt) == KAO_ERR, "all-empty accepted");
    CHECK(error_has("none of the 2 identity folders holds a PNG or JPEG image"), "message");
    kao_dataset_free(&ds);

    make_dir("badname");
    make_dir("badname/\xff\xfe");
    make_file("badname/\xff\xfe/1.png");
    CHECK(kao_dataset_scan(&ds, at("badname"), &opt) == KAO_ERR && error_has("not valid UTF-8"), "invalid UTF-8");
    kao_dataset_free(&ds);

    make_dir("tabname");
    make_dir("tabname/a");
    make_file("tabname/a/x\ty.png");
    CHECK(kao_dataset_scan(&ds, at("tabname"), &opt) == KAO_ERR && error_has("tab or line break"), "tab in name");
    kao_dataset_free(&ds);

    /* Permissions cannot stop root, so these run only for an ordinary user. */
    if (geteuid() != 0) {
        make_dir("locked");
        make_dir("locked/a");
        make_file("locked/a/1.png");
        chmod(at("locked/a"), 0);
        CHECK(kao_dataset_scan(&ds, at("locked"), &opt) == KAO_ERR && error_has(at("locked/a")), "unreadable identity");
        kao_dataset_free(&ds);
        chmod(at("locked/a"), 0755);
        chmod(at("locked"), 0);
        CHECK(kao_dataset_scan(&ds, at("locked"), &opt) == KAO_ERR && error_has("cannot read data root"),
              "unreadable root");
        kao_dataset_free(&ds);
        chmod(at("locked"), 0755);
    } else {
        printf("test_dataset: running as root, permission checks skipped\n");
    }
}

/* The real ORL tree, when this machine has it: 40 identities of 10, README_ORL.txt ignored. */
static void test_orl(void) {
    const char *orl = "/work/shared/data/orl";
    if (!kao_is_dir(orl)) {
        printf("test_dataset: %s not present, ORL scan skipped\n", orl);
        return;
    }
    kao_dataset ds;
    kao_dataset_options opt = {.min_images = 1, .strict = true};
    CHECK(kao_dataset_scan(&ds, orl, &opt) == KAO_OK, "%s", kao_last_error());
    CHECK(ds.num_classes == 40 && ds.num_images == 400, "%d classes %d images", ds.num_classes, ds.num_images);
    CHECK(ds.num_classes == 40 && strcmp(ds.classes[0].name, "s1") == 0 && strcmp(ds.classes[1].name, "s10") == 0,
          "order");
    CHECK(ds.ignored_files == 1, "ignored %d", ds.ignored_files);
    kao_dataset_free(&ds);
}

int main(void) {
    snprintf(base, sizeof base, "/tmp/kao_test_dataset_XXXXXX");
    if (!mkdtemp(base)) {
        perror("mkdtemp");
        return 1;
    }
    build_tree();
    test_scan();
    test_errors();
    test_orl();
    nftw(base, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return check_summary("test_dataset");
}
