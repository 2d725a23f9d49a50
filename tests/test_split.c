/* The stratified split and its manifest, on identity trees built here in a temp folder (zero-byte
 * files: nothing is decoded). Checks the rule of split.h per identity, seeding, stability when an
 * identity is added, the manifest round trip and each error the reader reports. */
#include "check.h"
#include "kao/split.h"
#include "kao/util.h"

#include <ftw.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char base[256];

static const char *at(const char *rel) {
    static char path[1024];
    snprintf(path, sizeof path, "%s/%s", base, rel);
    return path;
}

static void make_identity(const char *name, int images) {
    char path[1024];
    snprintf(path, sizeof path, "%s/root/%s", base, name);
    mkdir(path, 0755);
    for (int i = 0; i < images; i++) {
        snprintf(path, sizeof path, "%s/root/%s/%02d.png", base, name, i);
        FILE *f = fopen(path, "w");
        CHECK(f != NULL, "create %s", path);
        if (f) fclose(f);
    }
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) { return remove(path); }

static bool error_has(const char *part) {
    bool ok = strstr(kao_last_error(), part) != NULL;
    if (!ok) fprintf(stderr, "  error was: %s\n  expected it to contain: %s\n", kao_last_error(), part);
    return ok;
}

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return kao_strdup("");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = kao_malloc((size_t)n + 1, "file");
    text[fread(text, 1, (size_t)n, f)] = '\0';
    fclose(f);
    return text;
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
}

static int scan(kao_dataset *ds) {
    kao_dataset_options opt = {.min_images = 1, .strict = true};
    int rc = kao_dataset_scan(ds, at("root"), &opt);
    CHECK(rc == KAO_OK, "%s", kao_last_error());
    return rc;
}

/* Validation images per identity of n (the rule stated in split.h, written out independently). */
static int expected_val(int n, double fraction, int count) {
    if (n < 2) return 0;
    int k = count > 0 ? count : (int)(fraction * n + 0.5);
    return k < 1 ? 1 : k > n - 1 ? n - 1 : k;
}

static void check_stratified(const kao_split *s, const kao_dataset *ds, double fraction, int count) {
    int seen = 0;
    for (int c = 0; c < ds->num_classes; c++) {
        const kao_class *cls = &ds->classes[c];
        int val = 0;
        for (int k = 0; k < cls->num_images; k++) val += s->is_val[cls->images[k]];
        int want = expected_val(cls->num_images, fraction, count);
        CHECK(val == want, "%s: %d of %d in val, expected %d", cls->name, val, cls->num_images, want);
        if (cls->num_images >= 2) CHECK(val >= 1 && val <= cls->num_images - 1, "%s: a side is empty", cls->name);
    }
    /* train and val lists: ascending, disjoint, together every image once. */
    int *count_of = kao_calloc((size_t)ds->num_images, sizeof *count_of, "counts");
    for (int j = 0; j < s->num_train; j++) {
        count_of[s->train[j]]++;
        CHECK(!s->is_val[s->train[j]], "train image %d marked val", s->train[j]);
        if (j) CHECK(s->train[j] > s->train[j - 1], "train order");
    }
    for (int j = 0; j < s->num_val; j++) {
        count_of[s->val[j]]++;
        CHECK(s->is_val[s->val[j]], "val image %d marked train", s->val[j]);
        if (j) CHECK(s->val[j] > s->val[j - 1], "val order");
    }
    for (int i = 0; i < ds->num_images; i++) seen += count_of[i] == 1;
    CHECK(seen == ds->num_images, "%d of %d images on exactly one side", seen, ds->num_images);
    free(count_of);
}

static void test_create(void) {
    kao_dataset ds;
    kao_split s, t;
    if (scan(&ds) != KAO_OK) return;
    kao_split_options opt = {.seed = 42, .val_fraction = 0.1, .val_count = 0};
    CHECK(kao_split_create(&s, &ds, &opt) == KAO_OK, "%s", kao_last_error());
    check_stratified(&s, &ds, 0.1, 0);
    CHECK(s.num_train_only == 1, "train-only %d (the 1-image identity)", s.num_train_only);
    CHECK(s.hash == kao_split_hash(&s, &ds), "hash");

    /* Same seed: identical manifest bytes. Another seed: a different one. */
    CHECK(kao_split_write(&s, &ds, at("a.tsv")) == KAO_OK, "%s", kao_last_error());
    CHECK(kao_split_create(&t, &ds, &opt) == KAO_OK, "%s", kao_last_error());
    CHECK(kao_split_write(&t, &ds, at("b.tsv")) == KAO_OK, "%s", kao_last_error());
    char *a = read_text(at("a.tsv")), *b = read_text(at("b.tsv"));
    CHECK(strcmp(a, b) == 0 && strlen(a) > 0, "same seed, different manifests");
    free(b);
    kao_split_free(&t);
    opt.seed = 43;
    CHECK(kao_split_create(&t, &ds, &opt) == KAO_OK, "%s", kao_last_error());
    CHECK(kao_split_write(&t, &ds, at("c.tsv")) == KAO_OK, "%s", kao_last_error());
    b = read_text(at("c.tsv"));
    CHECK(strcmp(a, b) != 0 && t.hash != s.hash, "seeds 42 and 43 gave the same split");
    check_stratified(&t, &ds, 0.1, 0);
    free(a);
    free(b);
    kao_split_free(&t);

    /* val_count instead of a fraction. */
    opt = (kao_split_options){.seed = 42, .val_fraction = 0.1, .val_count = 3};
    CHECK(kao_split_create(&t, &ds, &opt) == KAO_OK, "%s", kao_last_error());
    check_stratified(&t, &ds, 0.1, 3);
    kao_split_free(&t);

    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    kao_split_print_summary(f, &s, &ds);
    fclose(f);
    char want[128];
    snprintf(want, sizeof want, "split: %d train, %d val images (seed 42, val_fraction 0.1), hash %016llx",
             s.num_train, s.num_val, (unsigned long long)s.hash);
    CHECK(strstr(text, want) != NULL, "summary:\n%s", text);
    CHECK(strstr(text, "train only: 1 identity with fewer than 2 images: solo") != NULL, "summary:\n%s", text);
    free(text);

    /* Adding an identity leaves every other identity's split as it was. */
    make_identity("aaa_new", 12);
    make_identity("中村", 7);
    kao_dataset ds2;
    kao_split s2;
    opt = (kao_split_options){.seed = 42, .val_fraction = 0.1};
    if (scan(&ds2) == KAO_OK) {
        CHECK(ds2.num_classes == ds.num_classes + 2, "classes %d", ds2.num_classes);
        CHECK(kao_split_create(&s2, &ds2, &opt) == KAO_OK, "%s", kao_last_error());
        int same = 0;
        for (int i = 0; i < ds.num_images; i++) {
            int j = kao_dataset_find(&ds2, ds.images[i].rel);
            same += j >= 0 && s2.is_val[j] == s.is_val[i];
        }
        CHECK(same == ds.num_images, "%d of %d images kept their side", same, ds.num_images);
        kao_split_free(&s2);
        kao_dataset_free(&ds2);
    }
    char path[1024];
    snprintf(path, sizeof path, "rm -r '%s/root/aaa_new' '%s/root/中村'", base, base);
    CHECK(system(path) == 0, "cleanup");

    kao_split_free(&s);
    kao_dataset_free(&ds);
}

static void test_create_errors(void) {
    kao_dataset ds;
    kao_split s;
    if (scan(&ds) != KAO_OK) return;
    kao_split_options opt = {.seed = 1, .val_fraction = 0};
    CHECK(kao_split_create(&s, &ds, &opt) == KAO_ERR && error_has("val_fraction"), "fraction 0 accepted");
    kao_split_free(&s);
    opt.val_fraction = 1;
    CHECK(kao_split_create(&s, &ds, &opt) == KAO_ERR && error_has("val_fraction"), "fraction 1 accepted");
    kao_split_free(&s);
    kao_dataset_free(&ds);

    /* Only single-image identities: nothing can go to validation. */
    mkdir(at("singles"), 0755);
    mkdir(at("singles/a"), 0755);
    mkdir(at("singles/b"), 0755);
    write_text(at("singles/a/1.png"), "");
    write_text(at("singles/b/1.png"), "");
    kao_dataset_options dopt = {.min_images = 1, .strict = true};
    CHECK(kao_dataset_scan(&ds, at("singles"), &dopt) == KAO_OK, "%s", kao_last_error());
    opt.val_fraction = 0.5;
    CHECK(kao_split_create(&s, &ds, &opt) == KAO_ERR && error_has("validation set would be empty"), "empty val");
    kao_split_free(&s);
    kao_dataset_free(&ds);
}

/* Writes `text` as manifest m.tsv, reads it against ds, expects an error containing `part`. */
static void expect_read_error(const kao_dataset *ds, const char *text, const char *part, const char *what) {
    kao_split s;
    write_text(at("m.tsv"), text);
    int rc = kao_split_read(&s, ds, at("m.tsv"));
    CHECK(rc == KAO_ERR && error_has(part), "%s: read gave %d", what, rc);
    kao_split_free(&s);
}

/* The manifest text with line `lineno` (1-based) replaced by `line` (NULL: removed). */
static char *replace_line(const char *text, int lineno, const char *line) {
    size_t n = strlen(text) + (line ? strlen(line) : 0) + 2;
    char *out = kao_malloc(n, "text");
    const char *p = text;
    size_t o = 0;
    for (int i = 1; *p; i++) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p + 1) : strlen(p);
        if (i == lineno) {
            if (line) o += (size_t)sprintf(out + o, "%s\n", line);
        } else {
            memcpy(out + o, p, len);
            o += len;
        }
        p += len;
    }
    out[o] = '\0';
    return out;
}

/* Line `lineno` of text, without its newline. */
static void get_line(char *out, size_t size, const char *text, int lineno) {
    const char *p = text;
    for (int i = 1; i < lineno; i++) p = strchr(p, '\n') + 1;
    snprintf(out, size, "%.*s", (int)strcspn(p, "\n"), p);
}

static void test_manifest(void) {
    kao_dataset ds;
    kao_split s, r;
    if (scan(&ds) != KAO_OK) return;
    kao_split_options opt = {.seed = 7, .val_fraction = 0.25};
    CHECK(kao_split_create(&s, &ds, &opt) == KAO_OK, "%s", kao_last_error());
    CHECK(kao_split_write(&s, &ds, at("m0.tsv")) == KAO_OK, "%s", kao_last_error());
    char *text = read_text(at("m0.tsv"));

    /* Round trip. */
    CHECK(kao_split_read(&r, &ds, at("m0.tsv")) == KAO_OK, "%s", kao_last_error());
    CHECK(memcmp(r.is_val, s.is_val, (size_t)ds.num_images) == 0, "sides differ after reading");
    CHECK(r.hash == s.hash && r.num_train == s.num_train && r.num_val == s.num_val, "hash or counts differ");
    CHECK(r.options.seed == 7 && r.options.val_fraction == 0.25 && r.options.val_count == 0, "header options");
    CHECK(r.num_train_only == s.num_train_only, "train-only %d vs %d", r.num_train_only, s.num_train_only);
    kao_split_free(&r);

    /* Format: header, then one line per image in data-set order. */
    char line[512], want[512];
    snprintf(want, sizeof want, "# kao-split v1 seed=7 val_fraction=0.25 val_count=0 train=%d val=%d hash=%016llx",
             s.num_train, s.num_val, (unsigned long long)s.hash);
    get_line(line, sizeof line, text, 1);
    CHECK(strcmp(line, want) == 0, "header '%s'", line);
    get_line(line, sizeof line, text, 2);
    snprintf(want, sizeof want, "%s\t%s\t%s", s.is_val[0] ? "val" : "train", ds.classes[0].name, ds.images[0].rel);
    CHECK(strcmp(line, want) == 0, "line 2 '%s', expected '%s'", line, want);

    /* The hash ignores line order; comments and blank lines are skipped. */
    char *moved = replace_line(text, 2, NULL);
    get_line(line, sizeof line, text, 2);
    size_t n = strlen(moved);
    moved = kao_realloc(moved, n + strlen(line) + 32, "text");
    sprintf(moved + n, "# note\n\n%s\n", line);
    write_text(at("m1.tsv"), moved);
    CHECK(kao_split_read(&r, &ds, at("m1.tsv")) == KAO_OK, "reordered: %s", kao_last_error());
    CHECK(r.hash == s.hash, "hash depends on line order");
    kao_split_free(&r);
    free(moved);

    /* Errors, each naming file and line. */
    char *bad;
    char where[1300];
    get_line(line, sizeof line, text, 3);
    char *rest = strchr(line, '\t');
    snprintf(want, sizeof want, "test%s", rest);
    bad = replace_line(text, 3, want);
    snprintf(where, sizeof where, "%s:3: unknown split 'test'", at("m.tsv"));
    expect_read_error(&ds, bad, where, "unknown split word");
    free(bad);

    bad = replace_line(text, 4, "train\tonly-two-fields");
    expect_read_error(&ds, bad, ":4: expected 'train|val<TAB>identity<TAB>identity/file.png'", "two fields");
    free(bad);

    bad = replace_line(text, 1, "# something else");
    expect_read_error(&ds, bad, ":1: not a kao split manifest header", "bad header");
    free(bad);

    get_line(line, sizeof line, text, 5);
    bad = replace_line(text, 6, line);
    expect_read_error(&ds, bad, ":6: '", "duplicate");
    CHECK(error_has("is listed twice (also on line 5)"), "duplicate message");
    free(bad);

    /* Identity column that does not own the path. */
    get_line(line, sizeof line, text, 2);
    rest = strchr(strchr(line, '\t') + 1, '\t');
    snprintf(want, sizeof want, "train\tother%s", rest);
    bad = replace_line(text, 2, want);
    expect_read_error(&ds, bad, ":2: '", "wrong identity");
    CHECK(error_has("belongs to identity"), "wrong identity message");
    free(bad);

    /* A side flipped by hand: the content no longer matches the header's hash. */
    get_line(line, sizeof line, text, 2);
    snprintf(want, sizeof want, "%s%s", line[0] == 't' ? "val" : "train", strchr(line, '\t'));
    bad = replace_line(text, 2, want);
    expect_read_error(&ds, bad, "does not match the header's", "edited side");
    free(bad);

    expect_read_error(&ds, "", "empty split manifest", "empty file");
    kao_split r2;
    CHECK(kao_split_read(&r2, &ds, at("nonexistent.tsv")) == KAO_ERR && error_has("cannot open split manifest"),
          "missing manifest");
    kao_split_free(&r2);

    /* The data set changes after the manifest was written: an image deleted... */
    const char *victim = ds.images[ds.num_images - 1].rel;
    char victim_path[1100];
    snprintf(victim_path, sizeof victim_path, "%s/root/%s", base, victim);
    int victim_line = ds.num_images + 1;
    CHECK(unlink(victim_path) == 0, "unlink %s", victim_path);
    kao_dataset ds2;
    if (scan(&ds2) == KAO_OK) {
        snprintf(where, sizeof where, "m0.tsv:%d: %s does not exist", victim_line, victim_path);
        CHECK(kao_split_read(&r, &ds2, at("m0.tsv")) == KAO_ERR && error_has(where), "deleted image");
        kao_split_free(&r);
        kao_dataset_free(&ds2);
    }
    write_text(victim_path, "");
    /* ...or one added. */
    write_text(at("root/solo/new.png"), "");
    if (scan(&ds2) == KAO_OK) {
        CHECK(kao_split_read(&r, &ds2, at("m0.tsv")) == KAO_ERR && error_has("1 image of") &&
                  error_has("is not listed (first: solo/new.png)"),
              "added image");
        kao_split_free(&r);
        kao_dataset_free(&ds2);
    }
    unlink(at("root/solo/new.png"));
    /* ...or an identity dropped by a higher minimum. */
    kao_dataset_options dopt = {.min_images = 3, .strict = true};
    if (kao_dataset_scan(&ds2, at("root"), &dopt) == KAO_OK) {
        CHECK(kao_split_read(&r, &ds2, at("m0.tsv")) == KAO_ERR && error_has("is not part of the data set"),
              "dropped identity");
        kao_split_free(&r);
    }
    kao_dataset_free(&ds2);

    free(text);
    kao_split_free(&s);
    kao_dataset_free(&ds);
}

int main(void) {
    snprintf(base, sizeof base, "/tmp/kao_test_split_XXXXXX");
    if (!mkdtemp(base)) {
        perror("mkdtemp");
        return 1;
    }
    mkdir(at("root"), 0755);
    /* Sizes chosen to hit every branch of the rule: 1 (train only), 2, 3, 5 (round 0.5 up), 10, 20. */
    make_identity("solo", 1);
    make_identity("pair", 2);
    make_identity("s3", 3);
    make_identity("s5", 5);
    make_identity("山田太郎", 10);
    make_identity("佐藤花子", 20);
    test_create();
    test_create_errors();
    test_manifest();
    nftw(base, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return check_summary("test_split");
}
