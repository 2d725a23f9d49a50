/* The samplers of sampler.h: a shuffled epoch is a permutation cut into batches (the last holds
 * the rest); an m-per-class batch holds batch/m distinct identities with m images each (distinct
 * images when the identity has m, drawn with replacement when it has fewer), as
 * pytorch-metric-learning's MPerClassSampler; orders depend only on (seed, epoch); the errors.
 * Also early stopping's rule (early_stop.h). */
#include "check.h"
#include "kao/early_stop.h"
#include "kao/sampler.h"
#include "kao/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A data set of 13 identities: identity c has sizes[c] images; images are numbered 0.. in order,
 * and the training items are every image except each identity's first (as a split would hold out). */
static const int sizes[13] = {5, 5, 4, 6, 2, 5, 5, 3, 7, 5, 1, 5, 5};
static int labels[64], items[64], num_items, num_images;

static void build(void) {
    num_images = num_items = 0;
    for (int c = 0; c < 13; c++)
        for (int k = 0; k < sizes[c]; k++) {
            if (k > 0) items[num_items++] = num_images;
            labels[num_images++] = c;
        }
}

static void check_shuffle(void) {
    kao_sampler s;
    int B = 8;
    CHECK(kao_sampler_create(&s, KAO_SAMPLE_SHUFFLE, items, num_items, labels, B, 1, 42) == KAO_OK, "%s", kao_last_error());
    CHECK(s.num_batches == (num_items + B - 1) / B, "%d batches for %d items", s.num_batches, num_items);
    int first_epoch[64];
    for (int epoch = 0; epoch < 3; epoch++) {
        kao_sampler_set_epoch(&s, epoch);
        int seen[64] = {0}, total = 0;
        for (int b = 0; b < s.num_batches; b++) {
            const int *batch;
            int n = kao_sampler_batch(&s, b, &batch);
            int want = b + 1 < s.num_batches ? B : num_items - B * (s.num_batches - 1);
            CHECK(n == want, "epoch %d batch %d: %d images, expected %d", epoch, b, n, want);
            for (int k = 0; k < n; k++) seen[batch[k]]++, total++;
        }
        CHECK(total == num_items, "epoch %d: %d images", epoch, total);
        for (int i = 0; i < num_items; i++) CHECK(seen[items[i]] == 1, "epoch %d: item %d seen %d times", epoch, items[i], seen[items[i]]);
        if (epoch == 0) memcpy(first_epoch, s.order, (size_t)num_items * sizeof(int));
        else CHECK(memcmp(first_epoch, s.order, (size_t)num_items * sizeof(int)) != 0, "epoch %d repeats epoch 0", epoch);
    }
    /* A fresh sampler rebuilds epoch 0 exactly (what a resume relies on); another seed does not. */
    kao_sampler t;
    kao_sampler_create(&t, KAO_SAMPLE_SHUFFLE, items, num_items, labels, B, 1, 42);
    kao_sampler_set_epoch(&t, 0);
    CHECK(memcmp(first_epoch, t.order, (size_t)num_items * sizeof(int)) == 0, "epoch 0 differs in a fresh sampler");
    kao_sampler_free(&t);
    kao_sampler_create(&t, KAO_SAMPLE_SHUFFLE, items, num_items, labels, B, 1, 43);
    kao_sampler_set_epoch(&t, 0);
    CHECK(memcmp(first_epoch, t.order, (size_t)num_items * sizeof(int)) != 0, "seed 43 gives seed 42's order");
    kao_sampler_free(&t);
    kao_sampler_free(&s);
}

static void check_m_per_class(void) {
    kao_sampler s;
    int B = 12, m = 4;
    CHECK(kao_sampler_create(&s, KAO_SAMPLE_M_PER_CLASS, items, num_items, labels, B, m, 7) == KAO_OK, "%s", kao_last_error());
    CHECK(s.num_batches == num_items / B, "%d batches", s.num_batches);
    /* identity 10 has one image, held out: 12 identities have training items */
    CHECK(s.num_classes == 12, "%d classes with training images", s.num_classes);
    int class_uses[13] = {0}, repeats_small = 0;
    for (int epoch = 0; epoch < 20; epoch++) {
        kao_sampler_set_epoch(&s, epoch);
        for (int b = 0; b < s.num_batches; b++) {
            const int *batch;
            int n = kao_sampler_batch(&s, b, &batch);
            CHECK(n == B, "batch of %d", n);
            for (int g = 0; g < B / m; g++) {
                const int *grp = batch + g * m;
                int c = labels[grp[0]];
                class_uses[c]++;
                for (int k = 0; k < m; k++) {
                    CHECK(labels[grp[k]] == c, "group %d mixes identities %d and %d", g, c, labels[grp[k]]);
                    bool is_train = false;
                    for (int i = 0; i < num_items; i++) is_train |= items[i] == grp[k];
                    CHECK(is_train, "image %d is not a training item", grp[k]);
                }
                for (int g2 = 0; g2 < g; g2++) CHECK(labels[batch[g2 * m]] != c, "identity %d twice in a batch", c);
                int train_size = sizes[c] - 1;
                int dup = 0;
                for (int k = 0; k < m; k++)
                    for (int j = 0; j < k; j++) dup += grp[k] == grp[j];
                if (train_size >= m) CHECK(dup == 0, "identity %d (%d training images) repeats an image", c, train_size);
                else repeats_small += dup > 0;
            }
        }
    }
    for (int c = 0; c < 13; c++)
        if (c != 10) CHECK(class_uses[c] > 0, "identity %d never drawn in 20 epochs", c);
    CHECK(class_uses[10] == 0, "identity 10 has no training image but was drawn");
    CHECK(repeats_small > 0, "identities smaller than m were never drawn with replacement");
    kao_sampler_free(&s);
}

static bool error_has(const char *part) {
    bool ok = strstr(kao_last_error(), part) != NULL;
    if (!ok) fprintf(stderr, "  error was: %s\n  expected: %s\n", kao_last_error(), part);
    return ok;
}

static void check_errors(void) {
    kao_sampler s;
    CHECK(kao_sampler_create(&s, KAO_SAMPLE_SHUFFLE, items, num_items, labels, num_items + 1, 1, 0) == KAO_ERR &&
              error_has("larger than the training set"), "batch larger than the data");
    CHECK(kao_sampler_create(&s, KAO_SAMPLE_M_PER_CLASS, items, num_items, labels, 10, 4, 0) == KAO_ERR &&
              error_has("multiple of train.m_per_class"), "batch not a multiple of m");
    CHECK(kao_sampler_create(&s, KAO_SAMPLE_M_PER_CLASS, items, num_items, labels, 26, 2, 0) == KAO_ERR &&
              error_has("only 12"), "more identities per batch than exist");
    CHECK(kao_sampler_create(&s, KAO_SAMPLE_SHUFFLE, items, 0, labels, 1, 1, 0) == KAO_ERR, "no items");
}

static void check_early_stop(void) {
    kao_early_stop es;
    kao_early_stop_init(&es, KAO_WATCH_VAL_LOSS, 2, 0.1);
    CHECK(kao_early_stop_update(&es, 1, 5.0), "first epoch improves");
    CHECK(!kao_early_stop_update(&es, 2, 4.95), "a change under min_delta is no improvement");
    CHECK(!kao_early_stop_should_stop(&es), "stopped after 1 bad epoch with patience 2");
    CHECK(kao_early_stop_update(&es, 3, 4.8), "4.8 < 5.0 - 0.1 improves");
    CHECK(es.best == 4.8 && es.best_epoch == 3 && es.bad_epochs == 0, "best %g@%d bad %d", es.best, es.best_epoch, es.bad_epochs);
    CHECK(!kao_early_stop_update(&es, 4, NAN), "NaN counted as an improvement");
    CHECK(!kao_early_stop_update(&es, 5, 4.75), "within min_delta");
    CHECK(kao_early_stop_should_stop(&es), "patience 2 reached");
    kao_early_stop_init(&es, KAO_WATCH_AUC, 1, 0);
    kao_early_stop_update(&es, 1, 0.8);
    CHECK(kao_early_stop_update(&es, 2, 0.9), "AUC: higher is better");
    CHECK(!kao_early_stop_update(&es, 3, 0.85), "AUC went down");
    CHECK(kao_early_stop_should_stop(&es), "patience 1");
    kao_early_stop_init(&es, KAO_WATCH_EER, 0, 0);
    for (int e = 1; e <= 10; e++) kao_early_stop_update(&es, e, 0.3);
    CHECK(!kao_early_stop_should_stop(&es) && es.best_epoch == 1, "patience 0 never stops");
}

int main(void) {
    build();
    check_shuffle();
    check_m_per_class();
    check_errors();
    check_early_stop();
    return check_summary("test_sampler");
}
