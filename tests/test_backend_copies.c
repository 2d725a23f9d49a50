/* test_backend_copies.c — the device paths of the network, the trainer and the embedder (weights
 * mirrored into a backend's memory, batches and labels copied over, results, checkpoints and
 * optimizer state copied back) on any machine: the CPU backend with memory of its own
 * (kao_backend_cpu_detached) is driven exactly as a GPU is and must give what the plain CPU
 * backend gives, bit for bit (the same ops run). The GPU's own kernels are test_cuda_ops.c's and
 * test_cuda_network.c's. The checks: backend_parity.h; then bf16 mixed precision, which the
 * detached backend emulates (backend_bf16.c), against the CPU in fp32. */
#include <stdio.h>

#include "backend_parity.h"

int main(void) {
    cpu = kao_backend_cpu();
    gpu = kao_backend_cpu_detached();
    expect_exact = true;
    kao_rng_seed(&rng, 20261128, 0);
    run_parity_checks(0, false); /* TF32 is a GPU mode: the CPU backends compute in fp32 only */
    run_bf16_checks(0);
    kao_backend_free(gpu);
    kao_backend_free(cpu);
    return check_summary("test_backend_copies");
}
