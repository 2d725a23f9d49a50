/* kao curate --apply / --undo (curate.h, src/curate_apply.c): on trees of identity folders with
 * Japanese (and other UTF-8) names, PNG and JPEG files of arbitrary bytes, a quarantine folder
 * already there and a hidden file,
 *  - apply puts every flagged image in <identity>/not_me|same_face|no_face and every small identity
 *    in _small beside the root; undo gives back the tree byte for byte (every path, mode, size and
 *    content hashed), removing exactly the folders apply created; a second undo says it was undone;
 *  - bad moves, taken destinations, a badly placed journal are refused before anything moves and
 *    before any journal is written; damaged journals are refused naming the file and line; a tree
 *    changed behind the journal's back is refused before anything moves back;
 *  - SIGKILL at random points of an apply of a few hundred moves (30 kills): undo gives back the
 *    tree as it was, or applying again gives the tree of an uninterrupted apply; no file lost or
 *    duplicated;
 *  - the time of an apply and an undo of 1,000 moves (the journal's fsync and the final syncfs).
 * Files go to a fresh folder under $TMPDIR, removed at the end. */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "kao/curate.h"
#include "kao/util.h"

static char tmp_root[512];

#define CHECK_ERROR(rc, want)                                                                                          \
    CHECK((rc) == KAO_ERR && strstr(kao_last_error(), (want)), "rc %d, message '%s' lacks '%s'", (rc),                 \
          kao_last_error(), (want))

static const char *at(const char *fmt, ...) KAO_PRINTF(1, 2);
static const char *at(const char *fmt, ...) {
    static char paths[8][PATH_MAX];
    static int next;
    char *p = paths[next++ % 8], name[PATH_MAX - 600];
    va_list args;
    va_start(args, fmt);
    vsnprintf(name, sizeof name, fmt, args);
    va_end(args);
    snprintf(p, PATH_MAX, "%s/%s", tmp_root, name);
    return p;
}

static uint32_t lcg(uint32_t *state) {
    *state = *state * 1664525u + 1013904223u;
    return *state >> 8;
}

static void write_file(const char *path, const void *bytes, size_t size, mode_t mode) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL, "cannot create %s", path);
    if (!f) return;
    fwrite(bytes, 1, size, f);
    fclose(f);
    chmod(path, mode);
}

/* ---- the tree and its print --------------------------------------------------------------- */

static char **print_lines;
static int print_count, print_files;
static bool print_hashes = true; /* false: sizes only (counting files, not comparing them) */
static size_t print_base;

static uint64_t hash_file(const char *path) {
    uint64_t h = 0xcbf29ce484222325ull;
    FILE *f = fopen(path, "rb");
    for (int c; f && (c = getc(f)) != EOF;) h = (h ^ (uint64_t)c) * 0x100000001b3ull;
    if (f) fclose(f);
    return h;
}

static int print_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
    if (ftw->level == 0) return 0;
    char line[PATH_MAX + 80];
    const char *rel = path + print_base;
    print_files += S_ISREG(st->st_mode) != 0;
    if (S_ISREG(st->st_mode))
        snprintf(line, sizeof line, "%s %o %lld %016llx", rel, (unsigned)(st->st_mode & 07777), (long long)st->st_size,
                 (unsigned long long)(print_hashes ? hash_file(path) : 0));
    else
        snprintf(line, sizeof line, "%s %o %s", rel, (unsigned)(st->st_mode & 07777),
                 S_ISDIR(st->st_mode) ? "dir" : "other");
    print_lines = kao_realloc(print_lines, (size_t)(print_count + 1) * sizeof *print_lines, "tree print");
    print_lines[print_count++] = kao_strdup(line);
    return 0;
}

static int compare_lines(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Every entry under dir, one sorted line each: relative path, mode, and a regular file's size and
 * content hash. *files: the number of regular files. */
static char *tree_print(const char *dir, int *files) {
    print_lines = NULL;
    print_count = print_files = 0;
    print_base = strlen(dir) + 1;
    nftw(dir, print_entry, 16, FTW_PHYS);
    qsort(print_lines, (size_t)print_count, sizeof *print_lines, compare_lines);
    size_t size = 1;
    for (int i = 0; i < print_count; i++) size += strlen(print_lines[i]) + 1;
    char *out = kao_malloc(size, "tree print");
    out[0] = '\0';
    if (files) *files = print_files;
    for (int i = 0; i < print_count; i++) {
        strcat(strcat(out, print_lines[i]), "\n");
        free(print_lines[i]);
    }
    free(print_lines);
    return out;
}

/* Fails naming the first line where two prints differ. */
static void check_same_tree(const char *got, const char *want, const char *what) {
    size_t i = 0;
    while (got[i] && got[i] == want[i]) i++;
    while (i > 0 && got[i - 1] != '\n') i--;
    CHECK(strcmp(got, want) == 0, "%s: the trees differ from '%.200s' (expected '%.200s')", what, got + i, want + i);
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
    return remove(path) == 0 ? 0 : (perror(path), 0);
}
static void remove_all(const char *dir) { nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS); }

static const char *const identity_patterns[] = {"山田 太郎%02d", "さくら%02d", "José%02d", "😀顔%02d", "alice%02d"};
static const char *const file_patterns[] = {"顔%03d.png", "写真 %03d.JPG", "img_%03d.jpeg"};

static void identity_name(char *out, size_t size, int i) { snprintf(out, size, identity_patterns[i % 5], i); }

/* parent/faces with num_ids identity folders of per_id images each (bytes: a PNG or JPEG signature
 * and random bytes), identity 0 with a not_me/ of an earlier curation, identity 1 a hidden file. */
static void make_tree(const char *parent, int num_ids, int per_id, uint32_t seed) {
    char dir[PATH_MAX], name[128], path[PATH_MAX + 200];
    snprintf(dir, sizeof dir, "%s/faces", parent);
    mkdir(parent, 0755);
    mkdir(dir, 0755);
    for (int i = 0; i < num_ids; i++) {
        identity_name(name, sizeof name, i);
        snprintf(path, sizeof path, "%s/%s", dir, name);
        mkdir(path, i % 2 ? 0750 : 0755);
        for (int j = 0; j < per_id; j++) {
            unsigned char bytes[600] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
            size_t size = 40 + lcg(&seed) % 500;
            for (size_t k = 8; k < size; k++) bytes[k] = (unsigned char)lcg(&seed);
            if (j % 3) memcpy(bytes, "\xff\xd8\xff\xe0", 4);
            char file[64];
            snprintf(file, sizeof file, file_patterns[j % 3], j);
            snprintf(path, sizeof path, "%s/%s/%s", dir, name, file);
            write_file(path, bytes, size, j % 4 ? 0644 : 0600);
        }
    }
    identity_name(name, sizeof name, 0);
    snprintf(path, sizeof path, "%s/%s/not_me", dir, name);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/%s/not_me/古い.png", dir, name);
    write_file(path, "old", 3, 0644);
    identity_name(name, sizeof name, 1);
    snprintf(path, sizeof path, "%s/%s/.DS_Store", dir, name);
    write_file(path, "hidden", 6, 0644);
}

/* The analysis's output for make_tree's tree: about a third of the images flagged, identities
 * 3, 10, 17, ... too small. */
typedef struct {
    kao_curate_move *moves;
    int num_moves;
    char *small[64];
    int num_small;
} move_set;

static move_set make_moves(int num_ids, int per_id, uint32_t seed) {
    move_set m = {kao_malloc((size_t)num_ids * per_id * sizeof *m.moves, "moves"), 0, {0}, 0};
    char name[128], rel[256];
    for (int i = 0; i < num_ids; i++) {
        identity_name(name, sizeof name, i);
        if (i % 7 == 3 && m.num_small < 64) m.small[m.num_small++] = kao_strdup(name);
        for (int j = 0; j < per_id; j++) {
            uint32_t r = lcg(&seed) % 100;
            kao_verdict v = r < 20   ? KAO_VERDICT_NOT_ME
                            : r < 30 ? KAO_VERDICT_SAME_FACE
                            : r < 36 ? KAO_VERDICT_NO_FACE
                                     : KAO_VERDICT_KEEP;
            char file[64];
            snprintf(file, sizeof file, file_patterns[j % 3], j);
            snprintf(rel, sizeof rel, "%s/%s", name, file);
            m.moves[m.num_moves++] = (kao_curate_move){kao_strdup(rel), v};
        }
    }
    return m;
}

static int count_flagged(const move_set *m) {
    int n = 0;
    for (int i = 0; i < m->num_moves; i++) n += m->moves[i].verdict != KAO_VERDICT_KEEP;
    return n;
}

static void free_moves(move_set *m) {
    for (int i = 0; i < m->num_moves; i++) free((char *)m->moves[i].rel);
    for (int i = 0; i < m->num_small; i++) free(m->small[i]);
    free(m->moves);
}

static int apply(const char *parent, const move_set *m, const char *journal) {
    char root[PATH_MAX + 8];
    snprintf(root, sizeof root, "%s/faces", parent);
    return kao_curate_apply(root, m->moves, m->num_moves, m->small, m->num_small, journal);
}

static bool exists(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0;
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_verdict_folders(void) {
    CHECK(!strcmp(kao_verdict_folder(KAO_VERDICT_NOT_ME), "not_me") &&
              !strcmp(kao_verdict_folder(KAO_VERDICT_SAME_FACE), "same_face") &&
              !strcmp(kao_verdict_folder(KAO_VERDICT_NO_FACE), "no_face") && !kao_verdict_folder(KAO_VERDICT_KEEP) &&
              !kao_verdict_folder((kao_verdict)9),
          "the quarantine folders");
}

/* Where apply put things: flagged images in their quarantine folder (inside _small for a small
 * identity), small identities whole in _small, kept images in place. */
static void check_applied(const char *parent, const move_set *m) {
    int wrong = 0;
    for (int i = 0; i < m->num_moves; i++) {
        const char *rel = m->moves[i].rel, *folder = kao_verdict_folder(m->moves[i].verdict);
        char identity[128];
        snprintf(identity, sizeof identity, "%.*s", (int)(strchr(rel, '/') - rel), rel);
        bool small = false;
        for (int k = 0; k < m->num_small; k++) small |= !strcmp(m->small[k], identity);
        const char *base =
            small ? at("%s/_small", parent + strlen(tmp_root) + 1) : at("%s/faces", parent + strlen(tmp_root) + 1);
        char path[PATH_MAX * 2];
        if (folder)
            snprintf(path, sizeof path, "%s/%s/%s%s", base, identity, folder, strchr(rel, '/'));
        else
            snprintf(path, sizeof path, "%s/%s", base, rel);
        wrong += !exists(path);
    }
    CHECK(wrong == 0, "%d of %d images are not where apply should have put them", wrong, m->num_moves);
}

static void test_round_trip(void) {
    char parent[PATH_MAX], journal[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", at("round"));
    snprintf(journal, sizeof journal, "%s", at("journals/round.journal"));
    make_tree(parent, 12, 15, 1);
    move_set m = make_moves(12, 15, 2);
    int files_before;
    char *before = tree_print(parent, &files_before);

    CHECK(apply(parent, &m, journal) == KAO_OK, "%s", kao_last_error());
    check_applied(parent, &m);
    int files;
    free(tree_print(parent, &files));
    CHECK(files == files_before, "%d files after apply, %d before", files, files_before);
    CHECK(exists(at("round/faces/%s/not_me/古い.png", "山田 太郎00")), "the earlier not_me/ keeps its file");
    FILE *f = fopen(journal, "r");
    char line[256] = "";
    if (f) {
        CHECK(fgets(line, sizeof line, f) && !strcmp(line, "kao curate journal 1\n"), "journal header: %s", line);
        fclose(f);
    }

    /* The same moves again: nothing left to do; no moves: the same; other moves: refused. */
    char *applied = tree_print(parent, NULL);
    CHECK(apply(parent, &m, journal) == KAO_OK, "%s", kao_last_error());
    CHECK(kao_curate_apply(at("round/faces"), NULL, 0, NULL, 0, journal) == KAO_OK, "%s", kao_last_error());
    m.moves[0].verdict = m.moves[0].verdict == KAO_VERDICT_NOT_ME ? KAO_VERDICT_NO_FACE : KAO_VERDICT_NOT_ME;
    CHECK_ERROR(apply(parent, &m, journal), "exists already, with other moves");
    m.moves[0].verdict = m.moves[0].verdict == KAO_VERDICT_NOT_ME ? KAO_VERDICT_NO_FACE : KAO_VERDICT_NOT_ME;
    CHECK_ERROR(kao_curate_apply(at("journals"), NULL, 0, NULL, 0, journal), "the journal of");
    char *again = tree_print(parent, NULL);
    check_same_tree(again, applied, "applying a finished journal again");
    free(again);
    free(applied);

    CHECK(kao_curate_undo(journal) == KAO_OK, "%s", kao_last_error());
    char *after = tree_print(parent, NULL);
    check_same_tree(after, before, "apply then undo");
    free(after);
    CHECK(!exists(journal) && exists(at("journals/round.journal.undone")), "the journal is set aside as .undone");
    CHECK_ERROR(kao_curate_undo(journal), "undone already");

    /* Apply and undo again with the same journal path: the second record is .undone.2. */
    CHECK(apply(parent, &m, journal) == KAO_OK, "%s", kao_last_error());
    CHECK(kao_curate_undo(journal) == KAO_OK, "%s", kao_last_error());
    CHECK(exists(at("journals/round.journal.undone.2")), "the second undone journal");
    after = tree_print(parent, NULL);
    check_same_tree(after, before, "apply then undo, twice");
    free(after);
    free(before);
    free_moves(&m);
}

/* Every refusal before anything moves: the tree as it was, no journal. */
static void check_refused(int rc, const char *want, const char *parent, const char *before, const char *journal) {
    CHECK_ERROR(rc, want);
    char *now = tree_print(parent, NULL);
    check_same_tree(now, before, want);
    free(now);
    CHECK(!exists(journal), "%s: a journal was written", want);
}

static void test_refusals(void) {
    char parent[PATH_MAX], journal[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", at("refuse"));
    snprintf(journal, sizeof journal, "%s", at("journals/refused.journal"));
    make_tree(parent, 8, 6, 3);
    const char *id0 = "山田 太郎00", *id3 = "山田 太郎05";
    kao_curate_move taken[] = {{"さくら01/写真 001.JPG", KAO_VERDICT_SAME_FACE},
                               {"山田 太郎00/顔000.png", KAO_VERDICT_NOT_ME}};
    write_file(at("refuse/faces/%s/not_me/顔000.png", id0), "x", 1, 0644);
    char *before = tree_print(parent, NULL);
    char *root = kao_strdup(at("refuse/faces"));

    check_refused(kao_curate_apply(root, taken, 2, NULL, 0, journal), "not_me/顔000.png: exists already", parent,
                  before, journal);
    char *small[] = {(char *)id3, "José02"};
    mkdir(at("refuse/_small"), 0755);
    mkdir(at("refuse/_small/José02"), 0755);
    free(before);
    before = tree_print(parent, NULL);
    check_refused(kao_curate_apply(root, taken, 1, small, 2, journal), "_small/José02: exists already", parent, before,
                  journal);
    kao_curate_move twice[] = {{"さくら01/写真 001.JPG", KAO_VERDICT_SAME_FACE},
                               {"さくら01/写真 001.JPG", KAO_VERDICT_NOT_ME}};
    check_refused(kao_curate_apply(root, twice, 2, NULL, 0, journal), "写真 001.JPG is listed twice", parent, before,
                  journal);
    char *twice_small[] = {(char *)id3, (char *)id3};
    check_refused(kao_curate_apply(root, taken, 1, twice_small, 2, journal), "is listed twice", parent, before,
                  journal);

    static const struct {
        const char *rel, *want;
    } bad[] = {
        {"../faces/x.png", "not a single file or folder name"},
        {"a/b/c.png", "not a single file or folder name"},
        {"noslash.png", "expected <identity>/<file>"},
        {"/abs/x.png", "not a single file or folder name"},
        {"さくら01/a\tb.png", "tab or line break"},
        {"さくら01/a\nb.png", "tab or line break"},
        {"さくら01/\xff.png", "not UTF-8"},
        {"さくら01/missing.png", "missing.png: cannot be moved: No such file"},
        {"さくら01/.", "not a single file or folder name"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        kao_curate_move one = {bad[i].rel, KAO_VERDICT_NO_FACE};
        check_refused(kao_curate_apply(root, &one, 1, NULL, 0, journal), bad[i].want, parent, before, journal);
    }
    kao_curate_move unknown = {"さくら01/写真 001.JPG", (kao_verdict)7};
    check_refused(kao_curate_apply(root, &unknown, 1, NULL, 0, journal), "unknown verdict", parent, before, journal);
    char *missing[] = {"nobody"};
    check_refused(kao_curate_apply(root, NULL, 0, missing, 1, journal), "nobody: cannot be moved: No such file", parent,
                  before, journal);
    char *file_as_identity[] = {"さくら01/写真 001.JPG"};
    check_refused(kao_curate_apply(root, NULL, 0, file_as_identity, 1, journal), "not a single file or folder", parent,
                  before, journal);

    /* A file where a quarantine folder must go; a journal inside an identity folder; no root. */
    write_file(at("refuse/faces/José02/no_face"), "f", 1, 0644);
    free(before);
    before = tree_print(parent, NULL);
    kao_curate_move into_file = {"José02/img_002.jpeg", KAO_VERDICT_NO_FACE};
    check_refused(kao_curate_apply(root, &into_file, 1, NULL, 0, journal), "no_face: exists and is not a folder",
                  parent, before, journal);
    const char *inside = at("refuse/faces/José02/curate.journal");
    check_refused(kao_curate_apply(root, taken, 1, NULL, 0, inside), "cannot be inside an identity folder", parent,
                  before, inside);
    check_refused(kao_curate_apply(at("refuse/none"), taken, 1, NULL, 0, journal), "refuse/none: cannot open", parent,
                  before, journal);
    check_refused(kao_curate_apply(root, taken, 1, NULL, 0, at("refuse/nofolder/j")), "does not exist", parent, before,
                  journal);
    mkdir(at("small_root"), 0755);
    mkdir(at("small_root/_small"), 0755);
    CHECK_ERROR(kao_curate_apply(at("small_root/_small"), NULL, 0, NULL, 0, journal), "would be its own quarantine");
    CHECK(!exists(journal), "a journal was written");
    free(root);
    free(before);
}

static void write_journal(const char *path, const char *text) { write_file(path, text, strlen(text), 0644); }

static void test_bad_journals(void) {
    char j[PATH_MAX];
    snprintf(j, sizeof j, "%s", at("journals/bad.journal"));
    char root_line[PATH_MAX + 16];
    snprintf(root_line, sizeof root_line, "kao curate journal 1\nroot\t%s\n", at("refuse/faces"));
    static const struct {
        const char *body, *want;
    } bad[] = {
        {"", "no end line"},
        {"move\tさくら01/写真 001.JPG\tnot_me\n", "no end line"},
        {"move\t../x/y.png\tnot_me\nend\n", ":3: not a single file or folder name"},
        {"move\tさくら01/y.png\tnot_me\textra\nend\n", ":3: expected a step"},
        {"move\tさくら01/y.png\ttrash\nend\n", ":3: expected a step"},
        {"rm\t-rf\nend\n", ":3: expected a step"},
        {"move-identity\t..\nend\n", ":3: not a single file or folder name"},
        {"mkdir\tさくら01\tnot_me\nmkdir-small\nend\nmove-identity\tJosé02\n", ":6: text after the end line"},
        {"move-identity\tJosé02\nmove-identity\tJosé02\nend\n", "is listed twice"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char text[PATH_MAX + 400];
        snprintf(text, sizeof text, "%s%s", root_line, bad[i].body);
        write_journal(j, text);
        CHECK_ERROR(kao_curate_undo(j), bad[i].want);
        CHECK_ERROR(kao_curate_apply(at("refuse/faces"), NULL, 0, NULL, 0, j), bad[i].want);
        unlink(j);
    }
    write_journal(j, "kao curate journal 2\nroot\t/x\nend\n");
    CHECK_ERROR(kao_curate_undo(j), "a curate journal of format 'kao curate journal 2'");
    write_journal(j, "pairs\n");
    CHECK_ERROR(kao_curate_undo(j), "not a kao curate journal");
    write_journal(j, "kao curate journal 1\nroot\tfaces\nend\n");
    CHECK_ERROR(kao_curate_undo(j), "bad.journal:2: expected an absolute folder");
    write_journal(j, "kao curate journal 1\nroot\t/a/../b\nend\n");
    CHECK_ERROR(kao_curate_undo(j), "bad.journal:2: not a single file or folder name");
    unlink(j);
    CHECK_ERROR(kao_curate_undo(j), "bad.journal: cannot open curate journal");
}

/* A tree changed behind the journal's back: refused before anything moves back. */
static void test_changed_tree(void) {
    char parent[PATH_MAX], journal[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", at("changed"));
    snprintf(journal, sizeof journal, "%s", at("journals/changed.journal"));
    make_tree(parent, 8, 10, 5);
    move_set m = make_moves(8, 10, 6);
    char *before = tree_print(parent, NULL);
    CHECK(apply(parent, &m, journal) == KAO_OK, "%s", kao_last_error());
    int first = 0;
    while (first + 1 < m.num_moves &&
           (m.moves[first].verdict == KAO_VERDICT_KEEP || strncmp(m.moves[first].rel, "さくら", 9) != 0))
        first++;
    char source[PATH_MAX];
    snprintf(source, sizeof source, "%s", at("changed/faces/%s", m.moves[first].rel));
    write_file(source, "new", 3, 0644);
    char *applied = tree_print(parent, NULL);
    CHECK_ERROR(kao_curate_undo(journal), "the tree changed since the journal was written");
    char *now = tree_print(parent, NULL);
    check_same_tree(now, applied, "a refused undo");
    free(now);
    unlink(source);
    CHECK(kao_curate_undo(journal) == KAO_OK, "%s", kao_last_error());
    now = tree_print(parent, NULL);
    check_same_tree(now, before, "undo once the tree is put right");
    free(now);
    free(applied);
    free(before);
    free_moves(&m);
}

/* ---- kills -------------------------------------------------------------------------------- */

#define KILL_IDS 30
#define KILL_PER_ID 20

static double seconds_since(const struct timespec *t0) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + 1e-9 * (double)(t.tv_nsec - t0->tv_nsec);
}

/* Applies in a child process, SIGKILLed after delay seconds (never when delay < 0); whether it was
 * killed before it finished. */
static bool apply_killed(const char *parent, const move_set *m, const char *journal, double delay, double *took) {
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid == 0) _exit(apply(parent, m, journal) == KAO_OK ? 0 : 1);
    if (delay >= 0) {
        struct timespec d = {(time_t)delay, (long)((delay - (double)(time_t)delay) * 1e9)};
        nanosleep(&d, NULL);
        kill(pid, SIGKILL);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (took) *took = seconds_since(&t0);
    if (WIFEXITED(status)) CHECK(WEXITSTATUS(status) == 0, "the apply in the child failed");
    return WIFSIGNALED(status);
}

/* Moves made so far: files in quarantine folders and _small, less what was there before. */
static int moved_files(const char *parent) {
    int n = 0;
    print_hashes = false;
    char *print = tree_print(parent, NULL);
    print_hashes = true;
    for (char *line = print, *end; (end = strchr(line, '\n')); line = end + 1) {
        *end = '\0';
        bool file = !strstr(line, " dir"), earlier = strstr(line, "古い") != NULL;
        n += file && !earlier &&
             (strstr(line, "/not_me/") || strstr(line, "/same_face/") || strstr(line, "/no_face/") ||
              !strncmp(line, "_small/", 7));
    }
    free(print);
    return n;
}

static void test_kills(void) {
    move_set m = make_moves(KILL_IDS, KILL_PER_ID, 8);
    char ref_parent[PATH_MAX];
    snprintf(ref_parent, sizeof ref_parent, "%s", at("kill_ref"));
    make_tree(ref_parent, KILL_IDS, KILL_PER_ID, 7);
    int files_before, files;
    char *before = tree_print(ref_parent, &files_before);
    double full = 0;
    apply_killed(ref_parent, &m, at("journals/kill_ref.journal"), -1, &full);
    char *applied = tree_print(ref_parent, &files);
    CHECK(files == files_before, "an uninterrupted apply: %d files, %d before", files, files_before);
    check_applied(ref_parent, &m);
    int total = moved_files(ref_parent);

    /* The kill times are drawn between the latest that came before the journal was in place and
     * the earliest that came after the last move, so that most land among the moves. */
    enum { TRIALS = 30 };
    int before_journal = 0, during = 0, after = 0, fewest = total, most = 0;
    double lo = 0, hi = full;
    uint32_t seed = 99;
    for (int t = 0; t < TRIALS; t++) {
        char parent[PATH_MAX], journal[PATH_MAX];
        snprintf(parent, sizeof parent, "%s", at("kill_%02d", t));
        snprintf(journal, sizeof journal, "%s", at("journals/kill_%02d.journal", t));
        make_tree(parent, KILL_IDS, KILL_PER_ID, 7);
        double delay = lo + (hi - lo) * (double)(lcg(&seed) % 1000) / 1000.0;
        bool killed = apply_killed(parent, &m, journal, delay, NULL);
        int moved = moved_files(parent);
        if (!exists(journal))
            before_journal++, lo = delay;
        else if (killed && moved < total)
            during++;
        else
            after++, hi = delay;
        if (exists(journal) && killed && moved < total) fewest = moved < fewest ? moved : fewest;
        if (exists(journal) && killed && moved < total) most = moved > most ? moved : most;
        if (hi - lo < full / 50) lo = lo > full / 10 ? lo - full / 10 : 0, hi += full / 10;
        free(tree_print(parent, &files));
        CHECK(files == files_before, "kill %d after %.4f s: %d files, %d before", t, delay, files, files_before);
        /* Even kills are undone, odd ones finished. */
        int rc = t % 2 ? apply(parent, &m, journal) : exists(journal) ? kao_curate_undo(journal) : KAO_OK;
        CHECK(rc == KAO_OK, "kill %d (%d of %d moves made): %s", t, moved, total, kao_last_error());
        char *now = tree_print(parent, &files);
        check_same_tree(now, t % 2 ? applied : before, t % 2 ? "killed apply, applied again" : "killed apply, undone");
        free(now);
        remove_all(parent);
    }
    printf("kills: %d before the journal was in place, %d among the %d moves (after %d to %d of them), %d after "
           "the last (an uninterrupted apply: %.1f ms)\n",
           before_journal, during, total, fewest, most, after, full * 1e3);
    CHECK(during >= TRIALS / 3, "only %d of %d kills came among the moves", during, TRIALS);
    free(before);
    free(applied);
    free_moves(&m);
}

static void test_cost(void) {
    char parent[PATH_MAX], journal[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", at("cost"));
    snprintf(journal, sizeof journal, "%s", at("journals/cost.journal"));
    make_tree(parent, 50, 60, 11);
    move_set m = make_moves(50, 60, 12);
    for (int i = 0; i < m.num_small; i++) free(m.small[i]);
    m.num_small = 0;
    for (int i = 0; i < m.num_moves; i++) m.moves[i].verdict = i % 3 ? KAO_VERDICT_KEEP : KAO_VERDICT_NOT_ME;
    int n = count_flagged(&m);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK(apply(parent, &m, journal) == KAO_OK, "%s", kao_last_error());
    double t_apply = seconds_since(&t0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK(kao_curate_undo(journal) == KAO_OK, "%s", kao_last_error());
    double t_undo = seconds_since(&t0);
    printf("%d moves: apply %.1f ms (%.1f us a move), undo %.1f ms\n", n, t_apply * 1e3, t_apply * 1e6 / n,
           t_undo * 1e3);
    free_moves(&m);
}

int main(void) {
    const char *tmp = getenv("TMPDIR");
    snprintf(tmp_root, sizeof tmp_root, "%s/kao_test_curate_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(tmp_root)) {
        perror(tmp_root);
        return 1;
    }
    mkdir(at("journals"), 0755);
    test_verdict_folders();
    test_round_trip();
    test_refusals();
    test_bad_journals();
    test_changed_tree();
    test_kills();
    test_cost();
    remove_all(tmp_root);
    return check_summary("test_curate_apply");
}
