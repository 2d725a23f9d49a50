/* test_cuda_network.c — the CUDA backend against the CPU backend: the whole network, the training
 * step, checkpoints moving between CPU and GPU, kao embed's path and ArcFace's edges
 * (backend_parity.h says what is checked and within which tolerances).
 *
 * Skips (exit 77, ctest's skip code, never a pass) without CUDA or without a usable GPU. */
#include <stdio.h>

#ifndef KAO_HAVE_CUDA
int main(void) {
    puts("SKIPPED: built without CUDA (configure with -DKAO_CUDA=ON)");
    return 77;
}
#else

#include "backend_parity.h"
#include "kao/cuda.h"

int main(void) {
    char why[256];
    if (!kao_cuda_available(why, sizeof why)) {
        printf("SKIPPED: no GPU (%s)\n", why);
        return 77;
    }
    cpu = kao_backend_cpu();
    gpu = kao_backend_cuda(0);
    printf("test_cuda_network: %s\n", gpu->description);
    kao_rng_seed(&rng, 20261128, 0);

    /* The full-size b0's input size: 224, or KAO_PARITY_B0_SIZE (0: left out). The CPU emulator's
     * run in scripts/test.sh leaves it out (tests/CMakeLists.txt); KAO_PARITY_B0_SIZE=64 there
     * takes about 6 minutes. */
    const char *size = getenv("KAO_PARITY_B0_SIZE");
    int b0_size = size ? atoi(size) : 224;
    KAO_ASSERT(b0_size == 0 || b0_size >= 32, "KAO_PARITY_B0_SIZE=%s: expected 0 or a size of at least 32", size);
    if (b0_size) printf("test_cuda_network: full-size tf_efficientnetv2_b0 at %dx%d\n", b0_size, b0_size);
    else puts("test_cuda_network: full-size tf_efficientnetv2_b0 left out (KAO_PARITY_B0_SIZE=0)");
    run_parity_checks(b0_size, true);
    run_bf16_checks(b0_size);
    kao_backend_free(gpu);
    kao_backend_free(cpu);
    return check_summary("test_cuda_network");
}
#endif
