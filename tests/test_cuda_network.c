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

    test_forward(&tiny_b0, 3, 35, 33, 1e-4);
    test_forward(&tiny_s, 2, 41, 35, 1e-4);
    test_forward(&full_b0, 2, 224, 224, 1e-4);
    /* TF32 tensor-core math (train.precision = tf32), then back to fp32 for the rest. */
    gpu->set_precision(gpu, KAO_PRECISION_TF32);
    test_forward(&full_b0, 2, 224, 224, 2e-2);
    gpu->set_precision(gpu, KAO_PRECISION_FP32);
    kao_train_options plain = {0}, frozen_bn = {.freeze_bn = true}, late_units = {.frozen_units = 3};
    test_training(&tiny_b0, "all units", plain, 6, 35, 33, 9);
    test_training(&tiny_b0, "frozen BN", frozen_bn, 6, 35, 33, 9);
    test_training(&tiny_b0, "first 3 units frozen", late_units, 6, 35, 33, 9);
    test_training(&tiny_s, "all units", plain, 4, 41, 35, 7);
    test_training(&full_b0, "all units", plain, 8, 224, 224, 100);
    test_checkpoint_interchange();
    test_embed_images();
    test_arcface_edges();

    kao_backend_free(gpu);
    kao_backend_free(cpu);
    return check_summary("test_cuda_network");
}
#endif
