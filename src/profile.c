#include "kao/profile.h"

static const char *const names[KAO_PROF_COUNT] = {
    "conv k×k", "conv 1×1", "depthwise conv", "batchnorm+silu", "squeeze-excite", "residual", "pool+linear",
};

const char *kao_prof_op_name(kao_prof_op op) { return names[op]; }

void kao_profile_print(FILE *out, const kao_profile *p, int runs) {
    double total = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int op = 0; op < KAO_PROF_COUNT; op++) total += p->seconds[pass][op];
    if (total <= 0 || runs <= 0) return;
    fprintf(out, "%-16s %12s %7s %12s %7s\n", "op", "forward ms", "share", "backward ms", "share");
    for (int op = 0; op < KAO_PROF_COUNT; op++) {
        double f = p->seconds[0][op], b = p->seconds[1][op];
        fprintf(out, "%-16s %12.2f %6.1f%% %12.2f %6.1f%%\n", names[op], 1e3 * f / runs, 100 * f / total,
                1e3 * b / runs, 100 * b / total);
    }
}
