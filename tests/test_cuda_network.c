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

    run_parity_checks(true);
    run_bf16_checks(true);
    kao_backend_free(gpu);
    kao_backend_free(cpu);
    return check_summary("test_cuda_network");
}
#endif
