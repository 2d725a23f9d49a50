/* train_validate.c — the validation pass after each epoch (train_loop.h): embeddings of the
 * validation images in eval mode (on the trainer's backend, with its current weights), their
 * ArcFace loss and class accuracy (on the host, with the host copy of W), and pair verification. */
#include "train_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kao/arcface.h"
#include "kao/embedder.h"
#include "kao/verify.h"

int kao_run_validate(kao_run *r, kao_val_result *out) {
    memset(out, 0, sizeof *out);
    double t0 = kao_now_seconds();
    kao_trainer_to_host(&r->trainer); /* the host W scores the embeddings */
    const kao_config *c = &r->cfg;
    int n = r->split.num_val, E = r->model.arch.embedding_dim, C = r->ds.num_classes;
    int size = c->model.input_size, batch = c->train.batch_size;
    float *emb = kao_malloc((size_t)n * E * sizeof(float), "validation embeddings"); /* (n, E) */
    int *labels = kao_malloc((size_t)n * sizeof *labels, "validation labels");
    kao_embedder embedder;
    kao_embedder_init(&embedder, &r->model, &r->trainer.weights, size, size);
    kao_augment_cfg none = kao_augment_none();
    kao_loader_start(r->loader, r->split.val, n, batch, 0, &none, 0, 0);
    const kao_batch *b;
    int rows = 0, rc = KAO_OK;
    while ((b = kao_loader_next(r->loader, NULL))) {
        for (int k = 0; k < b->num_failed && rc == KAO_OK; k++) {
            if (c->data.stop_on_bad_image)
                rc = kao_fail("%s (data.stop_on_bad_image = true; set it to false to skip such images)",
                              b->failed_message[k]);
            else if (kao_dataset_mark_skipped(&r->ds, b->failed[k]))
                kao_say(r, "warning: skipping an image that does not decode: %s", b->failed_message[k]);
        }
        if (rc) break;
        if (b->count == 0) continue;
        kao_embedder_run(&embedder, emb + (size_t)rows * E, b->input, b->count);
        memcpy(labels + rows, b->labels, (size_t)b->count * sizeof *labels);
        rows += b->count;
    }
    kao_loader_stop(r->loader);
    kao_embedder_free(&embedder);
    if (rc == KAO_OK && rows < 2) rc = kao_fail("validation: fewer than two validation images decode");
    if (rc == KAO_OK) rc = kao_guard_outputs(r, emb, (size_t)rows * E);
    if (rc == KAO_OK) {
        kao_arcface_acts aa;
        kao_arcface_acts_create(&aa, rows, E, C);
        out->loss = kao_arcface_forward(&aa, emb, r->trainer.arcface_W, labels, rows, E, C, &r->trainer.cfg.arcface);
        out->accuracy = (double)kao_arcface_correct(aa.cosine, labels, rows, C) / rows;
        kao_arcface_acts_free(&aa);
        out->images = rows;
        kao_pair_metrics *p = &out->pairs;
        p->accuracy = p->best_threshold = p->best_balanced_accuracy = p->auc = p->eer = p->eer_threshold = NAN;
        p->tar_at_far_1e3 = p->far_1e3_threshold = NAN;
        p->threshold = c->verify.threshold;
        if (r->can_verify) {
            /* Seeded by the run's seed alone: the same pairs every epoch. */
            kao_pair_sampling sampling = {.same_per_identity = c->verify.same_pairs_per_identity,
                                          .diff_per_same = c->verify.diff_pairs_per_same,
                                          .seed = (uint64_t)c->train.seed};
            rc = kao_verify_labeled(p, emb, labels, rows, E, &sampling, c->verify.threshold);
            if (rc) kao_fail_context("validation: ");
            r->has_thresholds = rc == KAO_OK;
            r->threshold_eer = p->eer_threshold;
            r->threshold_far1e3 = p->far_1e3_threshold;
            r->threshold_diff_pairs = p->diff_pairs;
        }
    }
    free(emb);
    free(labels);
    out->seconds = kao_now_seconds() - t0;
    return rc;
}
