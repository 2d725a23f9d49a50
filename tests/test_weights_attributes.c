/* A weights file's architecture attributes are checked against its tensors before a model is built
 * from them (kao_weights_probe): a file of a few KB claiming tf_efficientnetv2_l at width 8 made
 * kao embed abort allocating 51 GB (found by tests/fuzz/fuzz_weights.c). */
#include "check.h"
#include "kao/model.h"
#include "kao/weights.h"

#include <string.h>
#include <unistd.h>

static char dir[64];

typedef struct {
    const char *variant;
    double width, depth;
    int64_t embedding_dim;
} claim;

/* m's tensors (all, or none) with attributes that claim c. */
static void write_file(const char *path, const kao_model *m, bool tensors, claim c) {
    kao_h5_file f;
    CHECK(kao_h5_create(&f, path) == KAO_OK, "%s", kao_last_error());
    int rc = kao_h5_write_attr_str(&f, NULL, "format", KAO_WEIGHTS_FORMAT) ||
             kao_h5_write_attr_str(&f, NULL, "architecture", c.variant) ||
             kao_h5_write_attr_f64(&f, NULL, "width_mult", c.width) ||
             kao_h5_write_attr_f64(&f, NULL, "depth_mult", c.depth) ||
             kao_h5_write_attr_i64(&f, NULL, "embedding_dim", c.embedding_dim);
    for (int i = 0; tensors && i < m->num_tensors; i++) {
        const kao_tensor *t = &m->tensors[i];
        int64_t shape[4] = {t->shape[0], t->shape[1], t->shape[2], t->shape[3]};
        rc = rc || kao_h5_write_f32(&f, t->name, kao_tensor_data(m, i), t->ndim, shape);
    }
    CHECK(rc == KAO_OK && kao_h5_commit(&f) == KAO_OK, "write %s: %s", path, kao_last_error());
    kao_h5_close(&f);
}

static void expect_refused(const char *what, const kao_model *m, bool tensors, claim c, const char *part) {
    char path[128];
    snprintf(path, sizeof path, "%s/claim.h5", dir);
    write_file(path, m, tensors, c);
    kao_arch arch;
    kao_clear_error();
    CHECK(kao_weights_probe(path, &arch) == KAO_ERR && strstr(kao_last_error(), part), "%s: probe gave '%s'", what,
          kao_last_error());
    unlink(path);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/kao_test_weights_attributes_XXXXXX");
    if (!mkdtemp(dir)) return 1;
    kao_arch a;
    CHECK(kao_arch_build(&a, "tf_efficientnetv2_b0", 0.25, 0.5, 16, 0) == KAO_OK, "%s", kao_last_error());
    kao_model m;
    kao_model_create(&m, &a);
    claim own = {"tf_efficientnetv2_b0", 0.25, 0.5, 16};

    char path[128];
    snprintf(path, sizeof path, "%s/own.h5", dir);
    write_file(path, &m, true, own);
    kao_arch probed;
    CHECK(kao_weights_probe(path, &probed) == KAO_OK && probed.embedding_dim == 16 && probed.width_mult == 0.25,
          "attributes that fit: %s", kao_last_error());
    unlink(path);

    expect_refused("no tensors, L at width 8", &m, false, (claim){"tf_efficientnetv2_l", 8, 1.5, 65536},
                   "conv_stem.weight");
    expect_refused("L at width 8", &m, true, (claim){"tf_efficientnetv2_l", 8, 1.5, 65536}, "do not fit");
    expect_refused("deeper", &m, true, (claim){"tf_efficientnetv2_b0", 0.25, 2, 16}, "do not fit");
    expect_refused("wider", &m, true, (claim){"tf_efficientnetv2_b0", 2, 0.5, 16}, "do not fit");
    expect_refused("a million outputs", &m, true, (claim){"tf_efficientnetv2_b0", 0.25, 0.5, 1000000},
                   "classifier 16 rows");
    expect_refused("a backbone with a classifier", &m, true, (claim){"tf_efficientnetv2_b0", 0.25, 0.5, 0},
                   "embedding_dim 0");

    kao_model_free(&m);
    rmdir(dir);
    return check_summary("test_weights_attributes");
}
