/* The architecture table against timm: parameter counts of all seven variants (timm's published
 * counts, docs/architecture.md, 'Variants', with the 1000-class classifier), the resolved b0 block table
 * (docs/architecture.md, 'Blocks') and timm's rounding helper. */
#include <string.h>

#include "check.h"
#include "kao/arch.h"
#include "kao/model.h"

static size_t count_params(const char *variant, double wm, double dm, int classes) {
    kao_arch arch;
    if (kao_arch_build(&arch, variant, wm, dm, classes, 0.0f) != 0) return 0;
    kao_model m;
    kao_model_create(&m, &arch);
    size_t n = kao_model_param_count(&m);
    kao_model_free(&m);
    return n;
}

int main(void) {
    static const struct { const char *name; size_t params; } timm_counts[] = {
        {"tf_efficientnetv2_b0", 7139704},  {"tf_efficientnetv2_b1", 8141052},
        {"tf_efficientnetv2_b2", 10096086}, {"tf_efficientnetv2_b3", 14358406},
        {"tf_efficientnetv2_s", 21458488},  {"tf_efficientnetv2_m", 54139356},
        {"tf_efficientnetv2_l", 118515272},
    };
    for (size_t i = 0; i < sizeof timm_counts / sizeof timm_counts[0]; i++) {
        size_t n = count_params(timm_counts[i].name, 0, 0, 1000);
        CHECK(n == timm_counts[i].params, "%s: %zu parameters, timm has %zu", timm_counts[i].name, n,
              timm_counts[i].params);
    }

    kao_arch a;
    CHECK(kao_arch_build(&a, "tf_efficientnetv2_b0", 0, 0, 512, 0.2f) == 0, "b0 builds");
    CHECK(a.num_blocks == 21 && a.stem_ch == 32 && a.num_features == 1280, "b0: %d blocks", a.num_blocks);
    /* docs/architecture.md, 'Blocks': in, out, mid, rd, stride, skip */
    static const int b0[][6] = {
        {32, 16, 16, 0, 1, 0},   {16, 32, 64, 0, 2, 0},   {32, 32, 128, 0, 1, 1},
        {32, 48, 128, 0, 2, 0},  {48, 48, 192, 0, 1, 1},  {48, 96, 192, 12, 2, 0},
        {96, 96, 384, 24, 1, 1}, {96, 96, 384, 24, 1, 1}, {96, 112, 576, 24, 1, 0},
    };
    for (int i = 0; i < 9; i++) {
        const kao_block_arch *b = &a.blocks[i];
        CHECK(b->in_ch == b0[i][0] && b->out_ch == b0[i][1] && b->mid_ch == b0[i][2] &&
                  b->se_ch == b0[i][3] && b->stride == b0[i][4] && b->has_skip == b0[i][5],
              "b0 block %d: in %d out %d mid %d rd %d stride %d skip %d", i, b->in_ch, b->out_ch,
              b->mid_ch, b->se_ch, b->stride, b->has_skip);
    }
    CHECK(fabsf(a.blocks[20].drop_path_rate - 0.2f * 20 / 21) < 1e-7f, "drop path of the last block");

    kao_model m;
    kao_model_create(&m, &a);
    int idx = kao_model_find(&m, "blocks.3.0.se.conv_reduce.weight");
    CHECK(idx >= 0 && m.tensors[idx].shape[0] == 12 && m.tensors[idx].shape[1] == 192, "se shape");
    CHECK(m.num_bn == 59, "b0 has 59 BN layers, found %d", m.num_bn);
    /* 243 parameters + 59·2 running statistics (num_batches_tracked is kept beside the table) */
    CHECK(m.num_tensors == 243 + 118, "b0 table has %d tensors", m.num_tensors);
    kao_model_free(&m);

    CHECK(kao_arch_build(&a, "resnet50", 0, 0, 512, 0) != 0, "unknown model rejected");
    CHECK(kao_make_divisible(15.2, 8, 0.9) == 16 && kao_make_divisible(3, 8, 0.9) == 8, "make_divisible");
    return check_summary("test_arch");
}
