/* loader.h — batches of decoded, augmented, normalised images, prepared on worker threads.
 *
 * A pass is a list of dataset images cut into batches (an epoch's training order from the
 * sampler, or the validation images). kao_loader_start() hands the list to the workers, which
 * prepare up to `depth` batches ahead of the one the caller is using while the model computes;
 * kao_loader_next() returns them in order. Each image is decoded (image.h) and turned into the
 * model's input by kao_augment_input() with the generator kao_augment_rng(seed, epoch, position),
 * position = its place in the pass; so a batch's content is the same whichever worker prepares it,
 * and with workers = 0 (everything on the caller's thread).
 *
 * Images that fail to decode (zero-byte, corrupt, unreadable, neither PNG nor JPEG inside, over
 * the pixel limit) are left out of their batch, which is then smaller; the batch lists them with
 * the decoder's message and the caller decides (warn and count, or stop). A batch can be empty.
 *
 * Threads: workers are pthreads and each works on one whole batch at a time; nothing they call
 * uses OpenMP, so the model keeps every core it was given.
 */
#ifndef KAO_LOADER_H
#define KAO_LOADER_H

#include <stdint.h>

#include "kao/augment.h"
#include "kao/backend.h"
#include "kao/dataset.h"

#define KAO_LOADER_MESSAGE 2048 /* as long as any kao error message */

typedef struct {
    int index;                  /* batch number in the pass */
    int count;                  /* rows: images that decoded */
    float *input;               /* (count, H, W, 3) NHWC */
    int *labels;                /* (count) */
    int *items;                 /* (count) dataset image of each row */
    int num_failed;
    int *failed;                /* (num_failed) dataset images that did not decode */
    char (*failed_message)[KAO_LOADER_MESSAGE]; /* (num_failed) the decoder's message for each */
    double seconds;             /* worker time spent preparing this batch */
} kao_batch;

typedef struct kao_loader kao_loader;

/* The workers that feed a device (a GPU) best: all the cores this process may use but the one that
 * launches the device's work, at most 16, at least 1. */
int kao_loader_device_workers(void);

/* workers: 0 prepares batches on the caller's thread inside kao_loader_next. depth: batches
 * prepared ahead (>= 1; ignored without workers). max_batch: the largest batch of any pass.
 * norm: the input normalisation; image: how images are decoded (both copied).
 * ds is borrowed (only paths and labels are read) and must outlive the loader. be: the backend the
 * batches go to, whose host memory they are prepared in (page-locked for a GPU, so the copy is a
 * fast DMA). */
kao_loader *kao_loader_create(const kao_dataset *ds, int workers, int depth, int max_batch, int height, int width,
                              const kao_input_norm *norm, const kao_image_options *image, kao_backend *be);
void kao_loader_free(kao_loader *L);

/* Starts a pass over items (n) in batches of batch_size (the last one holds the rest), from batch
 * first_batch on (a resumed epoch). Any pass in progress is abandoned first. aug is copied. */
void kao_loader_start(kao_loader *L, const int *items, int n, int batch_size, int first_batch,
                      const kao_augment_cfg *aug, uint64_t seed, int epoch);
/* The next batch of the pass, or NULL when the pass is over. The batch stays valid until the next
 * call to kao_loader_next, kao_loader_stop or kao_loader_start. *waited (if non-NULL) gets the
 * seconds this call spent blocked waiting for the batch to be ready. */
const kao_batch *kao_loader_next(kao_loader *L, double *waited);
/* Abandons the pass: returns once no worker is touching it. */
void kao_loader_stop(kao_loader *L);

#endif
