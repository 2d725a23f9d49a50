/* kao bench --mode load: how fast the loader turns a folder of identity images (PNG or JPEG) into
 * training batches (decode, random resized crop, flip, colour jitter, normalisation — kao train's
 * default augmentation) with N worker threads, into the device's host memory (page-locked for a
 * GPU). This is what has to keep up with a GPU's training steps; tools/bench_loader_torch.py times
 * PyTorch's DataLoader with the torchvision equivalent on the same images. */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "kao/config.h"
#include "kao/dataset.h"
#include "kao/loader.h"
#include "kao/util.h"

int kao_cli_bench_load(const kao_cli_bench_load_options *o) {
    kao_dataset ds;
    kao_dataset_options dso = {.min_images = 1, .max_images = 0, .strict = false,
                               .follow_symlinks = o->follow_symlinks};
    /* The loader's queue holds workers + 2 batches. */
    double bytes = (double)(o->workers + 2) * o->batch * o->height * o->width * 3 * sizeof(float);
    char what[128];
    snprintf(what, sizeof what, "%d batches of %d images at %dx%d", o->workers + 2, o->batch, o->height, o->width);
    if (kao_check_memory(bytes, what, "lower --batch, --size or --workers") ||
        kao_dataset_scan(&ds, o->data, &dso))
        return kao_cli_report_error();
    kao_backend *be;
    if (kao_backend_open(&be, o->device)) {
        kao_dataset_free(&ds);
        return kao_cli_report_error();
    }
    /* The data set's images in order, over and over, for every batch of the run. */
    int batches = o->warmup + o->steps, n = batches * o->batch;
    int *items = kao_malloc((size_t)n * sizeof(int), "load order");
    for (int i = 0; i < n; i++) items[i] = i % ds.num_images;
    kao_config defaults;
    kao_config_defaults(&defaults);
    kao_augment_cfg aug = kao_config_augment(&defaults);
    kao_input_norm norm = kao_imagenet_norm();
    kao_loader *L = kao_loader_create(&ds, o->workers, o->workers + 2, o->batch, o->height, o->width, &norm,
                                      &KAO_IMAGE_OPTIONS_DEFAULT, be);
    kao_loader_start(L, items, n, o->batch, 0, &aug, 1, 0);

    /* Timed from the last warm-up batch (or the start) to the last batch: the steady rate. */
    double start = kao_now_seconds(), worker_seconds = 0;
    int images = 0, failed = 0;
    for (int b = 0; b < batches; b++) {
        const kao_batch *batch = kao_loader_next(L, NULL);
        if (!batch) break;
        failed += batch->num_failed;
        if (b < o->warmup) {
            start = kao_now_seconds();
            continue;
        }
        images += batch->count;
        worker_seconds += batch->seconds;
    }
    double seconds = kao_now_seconds() - start;
    kao_loader_stop(L);
    printf("{\"engine\": \"kao %s\", \"mode\": \"load\", \"size\": %d, \"batch\": %d, \"workers\": %d, "
           "\"device\": \"%s\", \"images\": %d, \"failed_images\": %d, \"images_per_s\": %.1f, "
           "\"worker_ms_per_image\": %.3f, \"peak_rss_mib\": %.1f}\n",
           KAO_VERSION, o->height, o->batch, o->workers, be->description, images, failed,
           seconds > 0 ? images / seconds : 0.0, images ? 1e3 * worker_seconds / images : 0.0, kao_peak_rss_mib());
    kao_loader_free(L);
    kao_backend_free(be);
    free(items);
    kao_dataset_free(&ds);
    return 0;
}
