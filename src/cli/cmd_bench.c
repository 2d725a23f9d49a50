/* kao bench: images/s of inference or of full training steps, on random data and weights. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "kao/network.h"
#include "kao/rng.h"
#include "kao/train_step.h"
#include "kao/util.h"

static const char *help =
    "usage: kao bench [--mode infer|train] [--model NAME] [--width-mult X] [--depth-mult Y]\n"
    "                 [--size H[xW]] [--batch N] [--steps N] [--warmup N] [--classes N]\n"
    "                 [--embedding N] [--threads N] [--device D] [--precision fp32|tf32|bf16] [--profile]\n"
    "       kao bench --mode load --data ROOT [--workers N] [--size H[xW]] [--batch N] [--steps N]\n"
    "                 [--warmup N] [--device D] [--follow-symlinks]\n"
    "\n"
    "Times kao's forward pass (infer) or a full training step (train: forward, ArcFace over --classes\n"
    "classes, backward, AdamW on the network, SGD on the ArcFace W) on random inputs with a freshly\n"
    "initialised model, and prints one JSON line: images/s, median ms per batch, peak RSS (MiB).\n"
    "tools/bench_torch.py runs the same workloads in PyTorch; scripts/bench.sh runs both.\n"
    "--device cpu (default), cuda or cuda:N. Inference times the forward pass on an input already in\n"
    "the device's memory; a training step includes copying its batch over, as in kao train. --threads\n"
    "takes 1 to 4096, --workers 0 to 64; a batch that cannot fit in memory is refused. On a GPU\n"
    "peak_device_mib is the most device memory kao held at once (tensors, workspaces, optimizer\n"
    "state; not the CUDA context), as PyTorch's max_memory_allocated counts its own.\n"
    "--profile adds a table of time per kind of op (forward and backward; each convolution's row\n"
    "includes its BatchNorm in the forward). On a GPU the ops run asynchronously: set KAO_CUDA_SYNC=1\n"
    "for a profile (every op then waits for its kernels).\n"
    "--mode load times the training data loader instead: --workers threads (default 2) decode the\n"
    "images (PNG or JPEG) of the identity folders under --data and augment them as kao train does by\n"
    "default, into --batch batches in the device's host memory; it prints images/s and the worker time\n"
    "per image. Symbolic links that lead out of --data are followed only with --follow-symlinks.\n";

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int kao_cmd_bench(int argc, char **argv) {
    const char *mode = "infer", *model = "tf_efficientnetv2_b0", *device = "cpu", *precision_name = "fp32";
    const char *data = NULL;
    int workers = 2;
    double wm = 0, dm = 0;
    int height = 224, width = 224, batch = 32, steps = 5, warmup = 2, classes = 1000, emb = 512, threads = 0;
    bool profile = false, follow_symlinks = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool v = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(help, stdout);
            return 0;
        }
        if (!strcmp(a, "--profile")) profile = true;
        else if (!strcmp(a, "--follow-symlinks")) follow_symlinks = true;
        else if (!strcmp(a, "--mode") && v) mode = argv[++i];
        else if (!strcmp(a, "--model") && v) model = argv[++i];
        else if (!strcmp(a, "--device") && v) device = argv[++i];
        else if (!strcmp(a, "--precision") && v) precision_name = argv[++i];
        else if (!strcmp(a, "--data") && v) data = argv[++i];
        else if (!strcmp(a, "--size") && v) {
            if (!kao_cli_parse_size(argv[++i], &height, &width))
                return kao_cli_usage_error("bench", "--size wants H or HxW, got '%s'", argv[i]);
        } else if ((!strcmp(a, "--width-mult") || !strcmp(a, "--depth-mult")) && v) {
            if (!kao_cli_parse_double(argv[++i], 0.01, 8, !strcmp(a, "--width-mult") ? &wm : &dm))
                return kao_cli_usage_error("bench", "%s wants a number in (0, 8], got '%s'", a, argv[i]);
        } else if (v && (!strcmp(a, "--batch") || !strcmp(a, "--steps") || !strcmp(a, "--warmup") ||
                         !strcmp(a, "--classes") || !strcmp(a, "--embedding") || !strcmp(a, "--threads") ||
                         !strcmp(a, "--workers"))) {
            int *t = !strcmp(a, "--batch") ? &batch : !strcmp(a, "--steps") ? &steps : !strcmp(a, "--warmup") ? &warmup
                     : !strcmp(a, "--classes") ? &classes : !strcmp(a, "--embedding") ? &emb
                     : !strcmp(a, "--workers") ? &workers : &threads;
            bool zero_ok = !strcmp(a, "--warmup") || !strcmp(a, "--workers");
            /* Threads as embed and verify take them, workers as train.workers: libgomp overflows
             * a stack with 100000 threads. */
            int max = t == &threads ? 4096 : t == &workers ? 64 : 1 << 20;
            if (!kao_cli_parse_int(argv[++i], zero_ok ? 0 : 1, max, t))
                return kao_cli_usage_error("bench", "%s wants an integer from %d to %d, got '%s'", a, zero_ok ? 0 : 1,
                                           max, argv[i]);
        } else {
            return kao_cli_usage_error("bench", "unknown option or missing value '%s'", a);
        }
    }
    if (!strcmp(mode, "load")) {
        if (!data) return kao_cli_usage_error("bench", "--mode load needs --data ROOT (identity folders of PNG or JPEG images)");
        kao_cli_bench_load_options o = {.data = data, .device = device, .height = height, .width = width,
                                        .batch = batch, .workers = workers, .steps = steps, .warmup = warmup,
                                        .follow_symlinks = follow_symlinks};
        return kao_cli_bench_load(&o);
    }
    bool train = !strcmp(mode, "train");
    if (!train && strcmp(mode, "infer"))
        return kao_cli_usage_error("bench", "--mode is infer, train or load, got '%s'", mode);
    kao_cli_set_threads(threads);

    kao_arch arch;
    kao_backend *be;
    kao_precision precision;
    if (kao_arch_build(&arch, model, wm, dm, emb, 0.0f) || kao_precision_parse(&precision, precision_name) ||
        kao_backend_open(&be, device))
        return kao_cli_report_error();
    if (be->set_precision(be, precision)) {
        kao_backend_free(be);
        return kao_cli_report_error();
    }
    kao_model m;
    kao_model_create(&m, &arch);
    kao_model_init(&m, 1);
    if (kao_acts_check_memory(&m, be, batch, height, width, train, "lower --batch or --size")) {
        kao_model_free(&m);
        kao_backend_free(be);
        return kao_cli_report_error();
    }
    size_t image = (size_t)height * width * 3;
    float *input = be->host_alloc(be, (size_t)batch * image * sizeof(float), "input");
    kao_rng rng;
    kao_rng_seed(&rng, 7, 0);
    for (size_t i = 0; i < (size_t)batch * image; i++) input[i] = kao_rng_normal(&rng);
    int *labels = kao_malloc((size_t)batch * sizeof(int), "labels");
    for (int i = 0; i < batch; i++) labels[i] = (int)kao_rng_below(&rng, (uint32_t)classes);

    kao_profile prof;
    memset(&prof, 0, sizeof prof);
    double *times = kao_malloc((size_t)(steps + warmup) * sizeof(double), "times");
    kao_acts acts;
    kao_net_weights weights;
    float *device_input = NULL; /* inference: the batch in the device's memory */
    kao_trainer trainer;
    kao_step_stats stats;
    double seconds_loss = 0, seconds_update = 0; /* training: summed over the timed steps */
    if (train) {
        kao_trainer_cfg cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.model_optim = kao_optim_default_cfg(KAO_OPTIM_ADAMW, 1e-3);
        cfg.arcface_optim = kao_optim_default_cfg(KAO_OPTIM_SGD, 0.01);
        cfg.arcface_optim.groups[0].weight_decay = 0;
        cfg.arcface = kao_arcface_default_cfg();
        cfg.schedule.type = KAO_SCHEDULE_CONSTANT;
        cfg.seed = 1;
        if (kao_trainer_create(&trainer, &m, be, classes, &cfg, batch, height, width)) return kao_cli_report_error();
    } else {
        kao_net_weights_create(&weights, &m, be);
        kao_acts_create(&acts, &m, batch, height, width, false, be);
        device_input = be->host_memory ? input : be->alloc(be, (size_t)batch * image * sizeof(float), "input");
        be->to_backend(be, device_input, input, (size_t)batch * image * sizeof(float));
    }
    for (int s = 0; s < warmup + steps; s++) {
        bool timed = s >= warmup;
        kao_acts *a = train ? &trainer.acts : &acts;
        a->profile = timed && profile ? &prof : NULL;
        double t0 = kao_now_seconds();
        if (train) kao_trainer_step(&trainer, &stats, input, labels, batch);
        else kao_forward_eval(&m, &weights, &acts, device_input);
        be->sync(be);
        times[s] = kao_now_seconds() - t0;
        if (timed && train) {
            seconds_loss += stats.seconds_loss;
            seconds_update += stats.seconds_update;
        }
    }
    qsort(times + warmup, (size_t)steps, sizeof(double), cmp_double);
    double median = times[warmup + steps / 2];
    printf("{\"engine\": \"kao %s\", \"mode\": \"%s\", \"model\": \"%s\", \"size\": %d, \"batch\": %d, "
           "\"threads\": %d, \"device\": \"%s\", \"precision\": \"%s\", \"ms_per_batch\": %.2f, "
           "\"images_per_s\": %.2f, \"peak_rss_mib\": %.1f",
           KAO_VERSION, mode, model, height, batch, threads, be->description, precision_name, 1e3 * median,
           batch / median, kao_peak_rss_mib());
    if (be->peak_memory_mib) printf(", \"peak_device_mib\": %.1f", be->peak_memory_mib(be));
    printf("}\n");
    if (profile) {
        kao_profile_print(stdout, &prof, steps);
        if (train)
            printf("%-16s %12.2f ms\n%-16s %12.2f ms\n", "arcface", 1e3 * seconds_loss / steps, "optimizer",
                   1e3 * seconds_update / steps);
    }
    if (train) {
        kao_trainer_free(&trainer);
    } else {
        kao_acts_free(&acts);
        kao_net_weights_free(&weights);
        if (device_input != input) be->release(be, device_input);
    }
    kao_model_free(&m);
    free(times);
    free(labels);
    be->host_release(be, input);
    kao_backend_free(be);
    return 0;
}
