/* files.h and util.h's temporary files: regular files only (a FIFO or a device is refused at once,
 * never read), bounded lines, an output that is an input (through symbolic and hard links), paths
 * kept inside a root, and temporary files that never write through what is already at their name.
 * Files go to a fresh folder under $TMPDIR, removed at the end. */
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "kao/files.h"
#include "kao/util.h"

static char tmp_root[512];

#define CHECK_ERROR(rc, want)                                                                      \
    CHECK((rc) == KAO_ERR && strstr(kao_last_error(), (want)), "rc %d, message '%s' lacks '%s'",  \
          (rc), kao_last_error(), (want))

static const char *at(const char *name) {
    static char paths[8][600];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, sizeof paths[0], "%s/%s", tmp_root, name);
    return p;
}

static void write_text(const char *path, const char *text, size_t size) {
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(text, 1, size, f);
        fclose(f);
    }
}

static int open_status(const char *path) {
    int fd = kao_open_regular(path, "test file");
    if (fd >= 0) close(fd);
    return fd >= 0 ? KAO_OK : KAO_ERR;
}

static void test_regular_only(void) {
    write_text(at("plain.txt"), "x\n", 2);
    CHECK(open_status(at("plain.txt")) == KAO_OK, "%s", kao_last_error());
    CHECK(mkfifo(at("fifo.png"), 0600) == 0, "mkfifo");
    /* Without O_NONBLOCK this open would wait for a writer for ever. */
    CHECK_ERROR(open_status(at("fifo.png")), "not a regular file (a FIFO)");
    CHECK_ERROR(kao_check_regular(at("fifo.png"), "image"), "not a regular file (a FIFO)");
    CHECK_ERROR(open_status("/dev/zero"), "not a regular file (a character device)");
    CHECK_ERROR(open_status(tmp_root), "not a regular file (a folder)");
    CHECK_ERROR(open_status(at("absent")), "cannot open test file: No such file");
    FILE *f = kao_fopen_regular(at("plain.txt"), "test file");
    CHECK(f && fgetc(f) == 'x', "reading a regular file");
    if (f) fclose(f);
}

static void test_lines(void) {
    char text[300];
    memset(text, 'a', sizeof text);
    memcpy(text, "one\ntwo\r\n\n", 10);
    memcpy(text + 10, "n\0l\n", 4); /* a NUL byte inside a line */
    write_text(at("lines.txt"), text, sizeof text); /* then 286 bytes without a line end */
    FILE *f = fopen(at("lines.txt"), "rb");
    char buf[100];
    CHECK(kao_read_line(f, buf, sizeof buf) == 3 && !strcmp(buf, "one"), "line 1: '%s'", buf);
    CHECK(kao_read_line(f, buf, sizeof buf) == 4 && !strcmp(buf, "two\r"), "line 2 keeps its CR");
    CHECK(kao_read_line(f, buf, sizeof buf) == 0 && !buf[0], "an empty line");
    long n = kao_read_line(f, buf, sizeof buf);
    CHECK(n == 3 && strlen(buf) == 1, "a NUL byte shows as strlen < length: %ld", n);
    CHECK(kao_read_line(f, buf, sizeof buf) == -2, "a line longer than the buffer");
    fclose(f);
    write_text(at("last.txt"), "end", 3);
    f = fopen(at("last.txt"), "rb");
    CHECK(kao_read_line(f, buf, sizeof buf) == 3 && !strcmp(buf, "end"), "a last line without '\\n'");
    CHECK(kao_read_line(f, buf, sizeof buf) == -1, "then the end of the file");
    fclose(f);
}

static void test_outputs_not_inputs(void) {
    write_text(at("in.h5"), "weights", 7);
    write_text(at("other.h5"), "other", 5);
    CHECK(symlink(at("in.h5"), at("link.h5")) == 0 && link(at("in.h5"), at("hard.h5")) == 0, "links");
    const char *inputs[3] = {at("other.h5"), NULL, at("in.h5")};
    CHECK(kao_check_not_input(at("new.h5"), inputs, 3) == KAO_OK, "a new output");
    CHECK(kao_check_not_input(at("plain.txt"), inputs, 3) == KAO_OK, "another file");
    CHECK_ERROR(kao_check_not_input(at("in.h5"), inputs, 3), "in.h5: is the same file as the input");
    CHECK_ERROR(kao_check_not_input(at("link.h5"), inputs, 3), "link.h5: is the same file as the input");
    CHECK_ERROR(kao_check_not_input(at("hard.h5"), inputs, 3), "in.h5; write the output elsewhere");
}

static void test_roots(void) {
    CHECK(kao_rel_path_contained("a/b.png") && kao_rel_path_contained("..a/b..png") &&
              kao_rel_path_contained("a/./b.png"),
          "inside");
    CHECK(!kao_rel_path_contained("/etc/passwd") && !kao_rel_path_contained("../a.png") &&
              !kao_rel_path_contained("a/../../b.png") && !kao_rel_path_contained("a/.."),
          "outside");
    CHECK(mkdir(at("root"), 0700) == 0 && mkdir(at("root/x"), 0700) == 0, "mkdir");
    CHECK(symlink("x", at("root/in")) == 0 && symlink(at("plain.txt"), at("root/out")) == 0, "links");
    char *real = realpath(at("root"), NULL);
    CHECK(kao_path_inside(real, at("root/x")) && kao_path_inside(real, at("root/in")) &&
              kao_path_inside(real, at("root")),
          "inside the root");
    CHECK(!kao_path_inside(real, at("root/out")) && !kao_path_inside(real, at("root/missing")) &&
              !kao_path_inside(real, tmp_root),
          "out of the root");
    free(real);
}

/* How many entries of the folder are temporary files of final_name. */
static int temp_files_of(const char *final_name) {
    int n = 0;
    DIR *d = opendir(tmp_root);
    for (struct dirent *e; d && (e = readdir(d));) n += kao_is_temp_name(e->d_name, final_name);
    if (d) closedir(d);
    return n;
}

static void test_temporary_files(void) {
    CHECK(kao_is_temp_name("best.h5.tmp.aZ09bY", "best.h5"), "six letters or digits");
    CHECK(!kao_is_temp_name("best.h5.tmp.12345", "best.h5") && !kao_is_temp_name("best.h5.tmp.1234567", "best.h5") &&
              !kao_is_temp_name("best.h5.tmp.abc-ef", "best.h5") && !kao_is_temp_name("last.h5.tmp.abcdef", "best.h5") &&
              !kao_is_temp_name("best.h5", "best.h5"),
          "other names");
    char a[700], b[700];
    int fa = kao_temp_create(a, sizeof a, at("out.csv")), fb = kao_temp_create(b, sizeof b, at("out.csv"));
    const char *slash = strrchr(a, '/');
    CHECK(fa >= 0 && fb >= 0 && strcmp(a, b) != 0 && slash && kao_is_temp_name(slash + 1, "out.csv"),
          "two temporary files: %s, %s", a, b);
    if (fa >= 0) close(fa);
    if (fb >= 0) close(fb);
    unlink(a);
    unlink(b);
    CHECK(kao_temp_create(a, sizeof a, at("missing/out.csv")) < 0 && strstr(kao_last_error(), "missing/out.csv"),
          "%s", kao_last_error());

    /* A whole file through the temporary file: what was at the name (a link) is replaced, never
     * written through; nothing is left behind. */
    CHECK(symlink(at("in.h5"), at("victim.csv")) == 0, "symlink");
    char temp[700];
    FILE *f = kao_atomic_fopen(temp, sizeof temp, at("victim.csv"));
    CHECK(f != NULL, "%s", kao_last_error());
    if (f) {
        fputs("new\n", f);
        CHECK(kao_atomic_fclose(f, temp, at("victim.csv")) == KAO_OK, "%s", kao_last_error());
    }
    struct stat st;
    CHECK(lstat(at("victim.csv"), &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 4, "replaced by the file");
    CHECK(stat(at("in.h5"), &st) == 0 && st.st_size == 7, "the link's target is untouched");
    CHECK(temp_files_of("victim.csv") == 0, "temporary file left behind");

    /* Files written in place never go through a link, and a new one never over an existing file. */
    CHECK(symlink(at("in.h5"), at("train.log")) == 0, "symlink");
    CHECK(kao_fopen_write(at("train.log"), true) == NULL && strstr(kao_last_error(), "train.log: cannot open"),
          "appending through a link: %s", kao_last_error());
    CHECK(kao_fopen_write(at("plain.txt"), false) == NULL, "a new file over an existing one");
    f = kao_fopen_write(at("metrics.csv"), true);
    CHECK(f != NULL, "%s", kao_last_error());
    if (f) fclose(f);
    CHECK(stat(at("in.h5"), &st) == 0 && st.st_size == 7, "the link's target is untouched");
}

static void remove_tree(void) {
    static const char *const names[] = {"plain.txt", "fifo.png",   "lines.txt", "last.txt", "in.h5",
                                        "other.h5",  "link.h5",    "hard.h5",   "root/in",  "root/out",
                                        "victim.csv", "train.log", "metrics.csv"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) unlink(at(names[i]));
    rmdir(at("root/x"));
    rmdir(at("root"));
    rmdir(tmp_root);
}

int main(void) {
    const char *tmp = getenv("TMPDIR");
    snprintf(tmp_root, sizeof tmp_root, "%s/kao_test_files_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(tmp_root)) {
        perror(tmp_root);
        return 1;
    }
    test_regular_only();
    test_lines();
    test_outputs_not_inputs();
    test_roots();
    test_temporary_files();
    remove_tree();
    return check_summary("test_files");
}
