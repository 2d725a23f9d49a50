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

    /* KAO_PARITY_FULL_SIZE=0 (the CPU emulator's run, tests/CMakeLists.txt): tiny models only. */
    const char *full = getenv("KAO_PARITY_FULL_SIZE");
    bool full_size = !(full && strcmp(full, "0") == 0);
    if (!full_size) puts("test_cuda_network: full-size tf_efficientnetv2_b0 left out (KAO_PARITY_FULL_SIZE=0)");
    run_parity_checks(full_size);
    run_bf16_checks(full_size);
    kao_backend_free(gpu);
    kao_backend_free(cpu);
    return check_summary("test_cuda_network");
}
#endif
