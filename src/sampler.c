/* sampler.c — shuffled and m-per-class batch orders (sampler.h). */
#include "kao/sampler.h"

#include <stdlib.h>
#include <string.h>

#include "kao/rng.h"
#include "kao/util.h"

/* Groups the items by label (ascending, stable) into class_items/class_start. */
static void group_by_class(kao_sampler *s, const int *labels) {
    int max_label = -1;
    for (int i = 0; i < s->num_items; i++)
        if (labels[s->items[i]] > max_label) max_label = labels[s->items[i]];
    int *count = kao_calloc((size_t)max_label + 2, sizeof *count, "class counts");
    for (int i = 0; i < s->num_items; i++) count[labels[s->items[i]] + 1]++;
    for (int c = 0; c <= max_label; c++) count[c + 1] += count[c];
    s->class_items = kao_malloc((size_t)s->num_items * sizeof *s->class_items, "class items");
    int *fill = kao_malloc(((size_t)max_label + 1) * sizeof *fill, "class fill");
    memcpy(fill, count, ((size_t)max_label + 1) * sizeof *fill);
    for (int i = 0; i < s->num_items; i++) s->class_items[fill[labels[s->items[i]]]++] = s->items[i];
    free(fill);
    /* Keep only the labels that have items. */
    s->class_start = kao_malloc(((size_t)max_label + 2) * sizeof *s->class_start, "class starts");
    s->num_classes = 0;
    int largest = 0;
    for (int c = 0; c <= max_label; c++) {
        if (count[c + 1] == count[c]) continue;
        s->class_start[s->num_classes++] = count[c];
        if (count[c + 1] - count[c] > largest) largest = count[c + 1] - count[c];
    }
    s->class_start[s->num_classes] = s->num_items;
    free(count);
    s->scratch_len = s->num_classes > largest ? s->num_classes : largest;
    s->scratch = kao_malloc((size_t)s->scratch_len * sizeof *s->scratch, "sampler scratch");
}

int kao_sampler_create(kao_sampler *s, kao_sampler_type type, const int *items, int n, const int *labels,
                       int batch_size, int m, uint64_t seed) {
    memset(s, 0, sizeof *s);
    if (n <= 0) return kao_fail("no training images to sample from");
    if (batch_size > n)
        return kao_fail("train.batch_size (%d) is larger than the training set (%d images); lower it", batch_size, n);
    s->type = type;
    s->batch_size = batch_size;
    s->m = m;
    s->seed = seed;
    s->num_items = n;
    s->items = kao_malloc((size_t)n * sizeof *s->items, "sampler items");
    memcpy(s->items, items, (size_t)n * sizeof *items);
    group_by_class(s, labels);
    if (type == KAO_SAMPLE_M_PER_CLASS) {
        if (m < 1 || batch_size % m != 0) {
            int rc = kao_fail("train.batch_size (%d) must be a multiple of train.m_per_class (%d)", batch_size, m);
            kao_sampler_free(s);
            return rc;
        }
        if (batch_size / m > s->num_classes) {
            int rc = kao_fail("train.batch_size / train.m_per_class = %d identities per batch, but the training set has "
                              "only %d; lower train.batch_size or raise train.m_per_class",
                              batch_size / m, s->num_classes);
            kao_sampler_free(s);
            return rc;
        }
        s->num_batches = n / batch_size;
        s->epoch_len = s->num_batches * batch_size;
    } else {
        s->num_batches = (n + batch_size - 1) / batch_size;
        s->epoch_len = n;
    }
    s->order = kao_malloc((size_t)s->epoch_len * sizeof *s->order, "sampler order");
    s->epoch = -1;
    return KAO_OK;
}

void kao_sampler_free(kao_sampler *s) {
    free(s->items);
    free(s->class_start);
    free(s->class_items);
    free(s->order);
    free(s->scratch);
    memset(s, 0, sizeof *s);
}

/* m images of class c: a random subset (without replacement) when the class has m or more,
 * else m independent draws. */
static void draw_class(kao_sampler *s, int *out, int c, kao_rng *rng) {
    int first = s->class_start[c], size = s->class_start[c + 1] - first;
    const int *members = s->class_items + first;
    if (size < s->m) {
        for (int k = 0; k < s->m; k++) out[k] = members[kao_rng_below(rng, (uint32_t)size)];
        return;
    }
    /* Partial Fisher–Yates: the first m of a shuffle. */
    memcpy(s->scratch, members, (size_t)size * sizeof *members);
    for (int k = 0; k < s->m; k++) {
        int j = k + (int)kao_rng_below(rng, (uint32_t)(size - k));
        int t = s->scratch[k];
        s->scratch[k] = s->scratch[j];
        s->scratch[j] = t;
        out[k] = s->scratch[k];
    }
}

void kao_sampler_set_epoch(kao_sampler *s, int epoch) {
    if (s->epoch == epoch) return;
    s->epoch = epoch;
    kao_rng rng;
    kao_rng_seed(&rng, s->seed, KAO_SAMPLER_STREAM + (uint64_t)epoch);
    if (s->type == KAO_SAMPLE_SHUFFLE) {
        memcpy(s->order, s->items, (size_t)s->num_items * sizeof *s->order);
        kao_rng_shuffle(&rng, s->order, s->num_items);
        return;
    }
    int per_batch = s->batch_size / s->m;
    int *classes = kao_malloc((size_t)s->num_classes * sizeof *classes, "class order");
    for (int c = 0; c < s->num_classes; c++) classes[c] = c;
    int *out = s->order;
    for (int b = 0; b < s->num_batches; b++) {
        kao_rng_shuffle(&rng, classes, s->num_classes);
        for (int k = 0; k < per_batch; k++, out += s->m) draw_class(s, out, classes[k], &rng);
    }
    free(classes);
}

int kao_sampler_batch(const kao_sampler *s, int b, const int **out) {
    KAO_ASSERT(s->epoch >= 0 && b >= 0 && b < s->num_batches, "batch %d of %d (epoch %d)", b, s->num_batches, s->epoch);
    int first = b * s->batch_size;
    int n = s->epoch_len - first < s->batch_size ? s->epoch_len - first : s->batch_size;
    *out = s->order + first;
    return n;
}
