/* Pair construction for verification (verify.h): identities from names and folders, all pairs
 * against a brute-force list, the sample of different-identity pairs (exact count, distinct,
 * seeded, uniform: a chi-square-style bound on 20000 draws), the balanced sample (same pairs capped
 * per identity, uniformly; different pairs in proportion; the same list for the same seed), the
 * pairs file parser, and errors. */
#include "check.h"
#include "kao/util.h"
#include "kao/verify.h"

#include <stdint.h>
#include <string.h>
#include <unistd.h>

static bool error_has(const char *part) {
    bool ok = strstr(kao_last_error(), part) != NULL;
    if (!ok) fprintf(stderr, "  error was: %s\n  expected it to contain: %s\n", kao_last_error(), part);
    return ok;
}

static void check_identities(void) {
    char *names[] = {"d/taro_yamada_2.png", "d/ann_1.png", "d/taro_yamada_10.png", "d/bob_x_1.png"};
    int labels[4], n;
    CHECK(kao_identity_labels(labels, &n, names, 4, KAO_LAYOUT_AUTO) == KAO_OK, "%s", kao_last_error());
    /* identities in byte order: ann, bob_x, taro_yamada */
    CHECK(n == 3 && labels[0] == 2 && labels[1] == 0 && labels[2] == 2 && labels[3] == 1, "names: %d %d %d %d (%d)",
          labels[0], labels[1], labels[2], labels[3], n);
    char *folders[] = {"r/s2/1.png", "r/s10/1.png", "r/s2/2.png", "x/s2/3.png"};
    CHECK(kao_identity_labels(labels, &n, folders, 4, KAO_LAYOUT_AUTO) == KAO_OK, "%s", kao_last_error());
    CHECK(n == 2 && labels[0] == 1 && labels[1] == 0 && labels[2] == 1 && labels[3] == 1, "folders (same name, any parent)");
    char *bare[] = {"a_1.png", "b_1.png"};
    CHECK(kao_identity_labels(labels, &n, bare, 2, KAO_LAYOUT_FOLDERS) == KAO_OK && n == 1, "bare names: one folder");
    char *bad[] = {"d/ok_1.png", "d/foo.png"};
    CHECK(kao_identity_labels(labels, &n, bad, 2, KAO_LAYOUT_NAMES) == KAO_ERR &&
              error_has("cannot tell the identity of 'foo.png': expected <identity>_<n>.png"), "no underscore");
    char *leading[] = {"d/_1.png", "d/a_1.png"};
    CHECK(kao_identity_labels(labels, &n, leading, 2, KAO_LAYOUT_NAMES) == KAO_ERR && error_has("'_1.png'"), "empty identity");
}

static int64_t key(int a, int b) { return (int64_t)a * 100000 + b; }

static bool same_pairs(const kao_pair *p, const kao_pair *q, int n) {
    for (int k = 0; k < n; k++)
        if (p[k].a != q[k].a || p[k].b != q[k].b || p[k].same != q[k].same) return false;
    return true;
}

/* pairs are sorted by (a, b), a < b, distinct, with the right same flags and all same pairs. */
static void check_pair_list(const kao_pair *p, int count, const int *labels, int n, int want_diff, const char *what) {
    int same = 0, diff = 0;
    bool ok = true;
    for (int k = 0; k < count; k++) {
        ok &= p[k].a < p[k].b && p[k].b < n && p[k].same == (labels[p[k].a] == labels[p[k].b]);
        if (k) ok &= key(p[k - 1].a, p[k - 1].b) < key(p[k].a, p[k].b);
        same += p[k].same;
        diff += !p[k].same;
    }
    CHECK(ok, "%s: pairs sorted, distinct, a < b, flags right", what);
    CHECK(same == (int)kao_count_same_pairs(labels, n) && diff == want_diff, "%s: %d same, %d diff (want %d)", what,
          same, diff, want_diff);
}

static void check_pairs(void) {
    enum { N = 50 };
    int labels[N];
    for (int i = 0; i < N; i++) labels[i] = (i * 7) % 9; /* 9 identities of 5 or 6 images */
    int64_t same = 0;
    for (int a = 0; a < N; a++)
        for (int b = a + 1; b < N; b++) same += labels[a] == labels[b];
    CHECK(kao_count_same_pairs(labels, N) == same, "same pair count");
    int diff = N * (N - 1) / 2 - (int)same;
    kao_pair *p;
    int count;
    kao_pair_sampling all = {0};
    CHECK(kao_pairs_build(&p, &count, labels, N, &all) == KAO_OK && count == N * (N - 1) / 2, "all pairs");
    check_pair_list(p, count, labels, N, diff, "all");
    free(p);
    /* Sampled (50 of ~1000) and enumerated (all but 5): the two paths of kao_pairs_build. */
    int takes[2] = {50, diff - 5};
    for (int t = 0; t < 2; t++) {
        kao_pair_sampling s3 = {.max_pairs = same + takes[t], .seed = 3}, s4 = {.max_pairs = same + takes[t], .seed = 4};
        kao_pair *q, *r;
        int nq, nr;
        CHECK(kao_pairs_build(&p, &count, labels, N, &s3) == KAO_OK, "%s", kao_last_error());
        check_pair_list(p, count, labels, N, takes[t], t ? "enumerated" : "sampled");
        CHECK(kao_pairs_build(&q, &nq, labels, N, &s3) == KAO_OK && nq == count &&
                  same_pairs(p, q, count), "same seed, same pairs");
        CHECK(kao_pairs_build(&r, &nr, labels, N, &s4) == KAO_OK && nr == count &&
                  !same_pairs(p, r, count), "another seed, other pairs");
        free(p);
        free(q);
        free(r);
    }
    /* Uniformity: labels {0,0,1,2,2,2} have 11 different pairs; samples of 3 (the rejection
     * path) over 20000 seeds should hit each 20000·3/11 ≈ 5455 times (sd ≈ 63); allow 5 sd. */
    int small[6] = {0, 0, 1, 2, 2, 2}, hits[6][6] = {{0}};
    for (uint64_t seed = 0; seed < 20000; seed++) {
        kao_pairs_build(&p, &count, small, 6, &(kao_pair_sampling){.max_pairs = 4 + 3, .seed = seed});
        for (int k = 0; k < count; k++)
            if (!p[k].same) hits[p[k].a][p[k].b]++;
        free(p);
    }
    double expect = 20000.0 * 3 / 11, worst = 0;
    int seen = 0;
    for (int a = 0; a < 6; a++)
        for (int b = a + 1; b < 6; b++)
            if (small[a] != small[b]) {
                seen++;
                worst = fmax(worst, fabs(hits[a][b] - expect));
            }
    CHECK(seen == 11 && worst < 5 * 63, "uniform sample: worst deviation %.0f of %.0f", worst, expect);

    int one[3] = {4, 4, 4}, singles[3] = {0, 1, 2};
    CHECK(kao_pairs_build(&p, &count, one, 1, &all) == KAO_ERR && error_has("needs at least two images"), "one image");
    CHECK(kao_pairs_build(&p, &count, one, 3, &all) == KAO_ERR && error_has("only one identity"), "one identity");
    CHECK(kao_pairs_build(&p, &count, singles, 3, &all) == KAO_ERR && error_has("no same-identity pairs"), "singletons");
    int negative[2] = {0, -1};
    CHECK(kao_pairs_build(&p, &count, negative, 2, &all) == KAO_ERR && error_has("negative"), "negative label");
}

/* The balanced sample (verify.h): one identity of 50 images and 30 of 3. Without a cap the big
 * one's 1225 same pairs outnumber the others' 90 by 13 to 1; capped at 10 it gives 10 of 100. The
 * different pairs are diff_per_same times the same pairs, the list is the same for the same seed
 * (each validation of a run), and an identity's pairs are sampled uniformly. */
static void check_balanced(void) {
    enum { BIG = 50, SMALL = 30, N = BIG + 3 * SMALL };
    int labels[N];
    for (int i = 0; i < N; i++) labels[i] = i < BIG ? 0 : 1 + (i - BIG) / 3;
    kao_pair_sampling s = {.same_per_identity = 10, .diff_per_same = 1.5, .seed = 9};
    kao_pair *p, *q, *r;
    int count, nq, nr;
    CHECK(kao_pairs_build(&p, &count, labels, N, &s) == KAO_OK, "%s", kao_last_error());
    int per[1 + SMALL] = {0}, diff = 0;
    bool ok = true;
    for (int k = 0; k < count; k++) {
        ok &= p[k].a < p[k].b && p[k].same == (labels[p[k].a] == labels[p[k].b]);
        if (k) ok &= key(p[k - 1].a, p[k - 1].b) < key(p[k].a, p[k].b);
        if (p[k].same) per[labels[p[k].a]]++;
        else diff++;
    }
    bool each_small = true;
    for (int l = 1; l <= SMALL; l++) each_small &= per[l] == 3;
    CHECK(ok, "balanced: pairs sorted, distinct, a < b, flags right");
    CHECK(per[0] == 10 && each_small, "balanced: the big identity gives %d same pairs (want 10), each small 3", per[0]);
    CHECK(diff == 150, "balanced: %d different pairs, want 1.5 x 100", diff);
    s.seed = 9;
    CHECK(kao_pairs_build(&q, &nq, labels, N, &s) == KAO_OK && nq == count && same_pairs(p, q, count),
          "balanced: the same seed gives the same list");
    s.seed = 10;
    CHECK(kao_pairs_build(&r, &nr, labels, N, &s) == KAO_OK && nr == count && !same_pairs(p, r, count),
          "balanced: another seed, other pairs");
    free(p);
    free(q);
    free(r);

    /* No room for a different pair under max_pairs: an error, not a list of one kind. */
    s = (kao_pair_sampling){.same_per_identity = 10, .max_pairs = 100};
    CHECK(kao_pairs_build(&p, &count, labels, N, &s) == KAO_ERR && error_has("100 same-identity pairs leave no room"),
          "max_pairs filled by same pairs");

    /* Uniform among an identity's pairs: 5 images (10 pairs) capped at 3, over 20000 seeds, hit each
     * pair 20000·3/10 = 6000 times (sd ≈ 65); allow 5 sd. */
    int small[7] = {0, 0, 0, 0, 0, 1, 1}, hits[7][7] = {{0}};
    for (uint64_t seed = 0; seed < 20000; seed++) {
        kao_pairs_build(&p, &count, small, 7, &(kao_pair_sampling){.same_per_identity = 3, .diff_per_same = 1, .seed = seed});
        for (int k = 0; k < count; k++)
            if (p[k].same && small[p[k].a] == 0) hits[p[k].a][p[k].b]++;
        free(p);
    }
    double worst = 0;
    for (int a = 0; a < 5; a++)
        for (int b = a + 1; b < 5; b++) worst = fmax(worst, fabs(hits[a][b] - 6000.0));
    CHECK(worst < 5 * 65, "uniform same-pair sample: worst deviation %.0f of 6000", worst);
}

static void check_scores(void) {
    float emb[3 * 2] = {3, 4, -4, 3, 6, 8}; /* (3, 2) */
    kao_pair pairs[3] = {{0, 1, false}, {0, 2, true}, {1, 2, false}};
    float s[3];
    CHECK(kao_pair_scores(s, pairs, 3, emb, 3, 2, NULL) == KAO_OK && s[0] == 0.0f && s[1] == 1.0f && s[2] == 0.0f,
          "cosines %g %g %g", s[0], s[1], s[2]);
    emb[2] = emb[3] = 0;
    char *paths[3] = {"a.png", "b.png", "c.png"};
    CHECK(kao_pair_scores(s, pairs, 3, emb, 3, 2, paths) == KAO_ERR && error_has("b.png: its embedding is all zeros"), "zero");
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static void check_pairs_file(void) {
    char file[64];
    snprintf(file, sizeof file, "/tmp/kao_pairs_%d.txt", (int)getpid());
    char *known[] = {"lfw/Ann_Lee/Ann_Lee_0001.png", "lfw/Ann_Lee/Ann_Lee_0002.png", "x/Bob/Bob_0011.png",
                     "Bob/Bob_0001.png", "lfw/Ann/Ann_0001.png"};
    kao_pair *p;
    int count, num;
    char **images;
    write_text(file, "10\t300\n# comment\n\nAnn_Lee\t1\t2\nAnn_Lee 2 Bob 11\r\nBob 1 Ann 1\n");
    CHECK(kao_pairs_from_file(&p, &count, &images, &num, file, NULL, known, 5, false) == KAO_OK, "%s", kao_last_error());
    CHECK(count == 3 && images == NULL && p[0].a == 0 && p[0].b == 1 && p[0].same && p[1].a == 1 && p[1].b == 2 &&
              !p[1].same && p[2].a == 3 && p[2].b == 4 && !p[2].same,
          "pairs file resolved against known paths");
    free(p);
    /* JPEG names: .png first, then .jpg, then .jpeg (the letter case as written) */
    char *jpegs[] = {"lfw/Cy/Cy_0001.jpg", "lfw/Cy/Cy_0002.jpeg", "lfw/Cy/Cy_0003.JPG", "Dee/Dee_0001.png",
                     "Dee/Dee_0001.jpg"};
    write_text(file, "Cy 1 2\nCy 1 Dee 1\n");
    CHECK(kao_pairs_from_file(&p, &count, &images, &num, file, NULL, jpegs, 5, false) == KAO_OK, "%s", kao_last_error());
    CHECK(count == 2 && p[0].a == 0 && p[0].b == 1 && p[1].a == 0 && p[1].b == 3, "JPEG names resolved");
    free(p);
    write_text(file, "Cy 1 3\nCy 1 Dee 1\n");
    CHECK(kao_pairs_from_file(&p, &count, &images, &num, file, NULL, jpegs, 5, false) == KAO_ERR &&
              error_has(":1: no embedding for Cy/Cy_0003.png (or .jpg, .jpeg)"), "%s", kao_last_error());
    write_text(file, "Ann_Lee 1 3\nBob 1 Ann 1\n");
    CHECK(kao_pairs_from_file(&p, &count, &images, &num, file, NULL, known, 5, false) == KAO_ERR &&
              error_has(":1: no embedding for Ann_Lee/Ann_Lee_0003.png"), "missing entry");
    write_text(file, "Ann_Lee 1 2\n5\n");
    CHECK(kao_pairs_from_file(&p, &count, &images, &num, file, NULL, known, 5, false) == KAO_ERR &&
              error_has(":2: expected 'name n1 n2' or 'name1 n1 name2 n2', got '5'"), "a bare number after line 1");
    write_text(file, "10 300\n");
    CHECK(kao_pairs_from_file(&p, &count, &images, &num, file, NULL, known, 5, false) == KAO_ERR && error_has("no pairs"), "empty");
    write_text(file, "Ann_Lee 1 2\nBob 1 \x8a\xe7 1\n"); /* Shift_JIS */
    CHECK(kao_pairs_from_file(&p, &count, &images, &num, file, NULL, known, 5, false) == KAO_ERR &&
              error_has(":2: not UTF-8 text (save the file as UTF-8)"), "Shift_JIS: %s", kao_last_error());
    /* A UTF-8 line too long for the message (but within KAO_MAX_LINE): cut at a character, never
     * inside one. */
    char *long_line = kao_malloc(2000 * 3 + 16, "long line");
    size_t at = (size_t)sprintf(long_line, "Ann_Lee 1 2\n");
    for (int i = 0; i < 2000; i++) at += (size_t)sprintf(long_line + at, "顔");
    sprintf(long_line + at, "\n");
    write_text(file, long_line);
    free(long_line);
    CHECK(kao_pairs_from_file(&p, &count, &images, &num, file, NULL, known, 5, false) == KAO_ERR &&
              error_has(":2: expected 'name n1 n2'") && kao_valid_utf8(kao_last_error()),
          "a long line's message is cut inside a character");
    FILE *f = fopen(file, "wb");
    static const char with_nul[] = "Ann_Lee 1 2\nBob 1\0 Ann 1\n"; /* a NUL would cut the line short */
    fwrite(with_nul, 1, sizeof with_nul - 1, f);
    fclose(f);
    CHECK(kao_pairs_from_file(&p, &count, &images, &num, file, NULL, known, 5, false) == KAO_ERR &&
              error_has(":2: not UTF-8 text"), "NUL byte: %s", kao_last_error());
    write_text(file, "Bob 1 Ann 1\n");
    CHECK(kao_pairs_from_file(&p, &count, &images, &num, file, NULL, known, 5, false) == KAO_ERR &&
              error_has("no same-identity pairs"), "one kind");
    remove(file);
}

int main(void) {
    check_identities();
    check_pairs();
    check_balanced();
    check_scores();
    check_pairs_file();
    return check_summary("test_verify_pairs");
}
