/* sampler.h — the order in which training images are drawn, epoch by epoch.
 *
 * An epoch's order is a pure function of (seed, epoch, the training images and their labels):
 * nothing is carried from one epoch to the next, so a sampler's whole state is the epoch number
 * and the position (batches already taken) inside it. A resumed run rebuilds the epoch's order
 * and skips the batches it has done.
 *
 *  - shuffle: a Fisher–Yates permutation of the training images, cut into batches of
 *    batch_size; the last batch holds the remainder (PyTorch's DataLoader(shuffle=True),
 *    drop_last=False).
 *  - m_per_class: pytorch-metric-learning's MPerClassSampler(labels, m, batch_size,
 *    length_before_new_iter = number of training images): floor(n / batch_size) batches; for each,
 *    the class list is shuffled and the first batch_size/m classes are taken, and for each class m of
 *    its images are drawn without replacement (with replacement when the class has fewer than m,
 *    as its safe_random_choice does). Every batch is full.
 *
 * Generator: kao_rng_seed(seed, KAO_SAMPLER_STREAM + epoch); both kinds draw only from it.
 */
#ifndef KAO_SAMPLER_H
#define KAO_SAMPLER_H

#include <stdint.h>

#define KAO_SAMPLER_STREAM 0x5A3B1E0000000000ull

typedef enum { KAO_SAMPLE_SHUFFLE = 0, KAO_SAMPLE_M_PER_CLASS = 1 } kao_sampler_type;

typedef struct {
    kao_sampler_type type;
    int batch_size, m;       /* m: images per class (m_per_class only) */
    uint64_t seed;
    int num_items;           /* training images */
    int *items;              /* (num_items) dataset image indices, as given */
    int num_classes;         /* classes that have at least one training image */
    int *class_start;        /* (num_classes + 1) each class's run in class_items */
    int *class_items;        /* (num_items) items grouped by class, classes in label order */
    int num_batches;         /* per epoch */
    int epoch_len;           /* images per epoch: num_items (shuffle) or num_batches·batch_size */
    int *order;              /* (epoch_len) the current epoch's images */
    int epoch;               /* epoch whose order is in `order`; -1 before the first */
    int scratch_len;
    int *scratch;            /* (max(num_classes, largest class)) */
} kao_sampler;

/* items (n): the dataset indices of the training images; labels: class of each dataset image
 * (indexed by item value). Errors (naming the numbers): no items; batch_size larger than the
 * number of training images; m_per_class with batch_size not a multiple of m, or with fewer
 * classes than batch_size/m. */
int kao_sampler_create(kao_sampler *s, kao_sampler_type type, const int *items, int n, const int *labels,
                       int batch_size, int m, uint64_t seed);
void kao_sampler_free(kao_sampler *s);

/* Builds epoch's order (a no-op when it is already built). */
void kao_sampler_set_epoch(kao_sampler *s, int epoch);
/* Batch b (0 <= b < num_batches) of the current epoch: returns its size and points *out at its
 * images (inside s->order, valid until the next set_epoch). */
int kao_sampler_batch(const kao_sampler *s, int b, const int **out);

#endif
