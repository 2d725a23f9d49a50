/* kao_h5_read_strings on a list that a file declares but never wrote: an 8 KB checkpoint declaring
 * 3,000,000,000 class names made kao abort ("out of memory allocating 18446744072414584320 x 8
 * bytes": the count overflowed an int), and 200,000,000 took gigabytes for empty names (found by
 * tests/fuzz/fuzz_weights.c through kao_checkpoint_read_info). Such lists are refused by name. */
#include "check.h"

#include <hdf5.h>
#include <string.h>
#include <unistd.h>

/* A file whose dataset "names" is a list of `count` variable-length strings, `written` of them
 * written (0: storage never allocated). */
static void write_file(const char *path, hsize_t count, bool written) {
    kao_h5_file f;
    CHECK(kao_h5_create(&f, path) == KAO_OK, "%s", kao_last_error());
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, H5T_VARIABLE);
    hid_t space = H5Screate_simple(1, &count, NULL);
    hid_t d = H5Dcreate2((hid_t)f.id, "names", type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    const char *names[2] = {"a", "b"};
    CHECK(d >= 0 && (!written || H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, names) >= 0), "write");
    H5Dclose(d);
    H5Sclose(space);
    H5Tclose(type);
    CHECK(kao_h5_commit(&f) == KAO_OK, "%s", kao_last_error());
    kao_h5_close(&f);
}

static void expect(const char *path, hsize_t count, bool written, const char *error) {
    write_file(path, count, written);
    kao_h5_file f;
    CHECK(kao_h5_open(&f, path) == KAO_OK, "%s", kao_last_error());
    char **names;
    int n;
    kao_clear_error();
    int rc = kao_h5_read_strings(&f, "names", &names, &n);
    if (error) {
        CHECK(rc == KAO_ERR && strstr(kao_last_error(), error), "%llu declared: %s", (unsigned long long)count,
              kao_last_error());
    } else {
        CHECK(rc == KAO_OK && n == 2 && !strcmp(names[1], "b"), "written: %s", kao_last_error());
        if (rc == KAO_OK) kao_h5_free_names(names, n);
    }
    kao_h5_close(&f);
    unlink(path);
}

int main(void) {
    char dir[] = "/tmp/kao_test_h5_declared_XXXXXX", path[64];
    if (!mkdtemp(dir)) return 1;
    snprintf(path, sizeof path, "%s/f.h5", dir);
    expect(path, 2, true, NULL);
    expect(path, 3000000000ull, false, "declares 3000000000 strings but kao reads at most");
    expect(path, 200000000, false, "declares 200000000 strings but holds none");
    expect(path, 2, false, "declares 2 strings but holds none");
    rmdir(dir);
    return check_summary("test_h5_declared_strings");
}
