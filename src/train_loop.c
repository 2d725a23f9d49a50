/* train_loop.c — kao train's epochs: steps, validation, early stopping, best/last weights,
 * checkpoints and signals (train_loop.h). */
#include "train_internal.h"

#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "kao/trained_info.h"

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) { stop_signal = sig; }

/* SIGINT/SIGTERM set a flag checked after every step; SA_RESETHAND: a second signal kills. */
static void catch_signals(struct sigaction *old_int, struct sigaction *old_term) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    stop_signal = 0;
    sigaction(SIGINT, &sa, old_int);
    sigaction(SIGTERM, &sa, old_term);
}

static void release_signals(const struct sigaction *old_int, const struct sigaction *old_term) {
    sigaction(SIGINT, old_int, NULL);
    sigaction(SIGTERM, old_term, NULL);
}

/* The head-only warm-up freezes every unit but the classifier (network.h: stem, stages, conv_head). */
static int frozen_units(const kao_run *r, int epoch) {
    return epoch < r->cfg.train.freeze_backbone_epochs ? r->model.arch.num_stages + 2 : 0;
}

/* Warn-and-count or stop, for the images of a batch that did not decode. */
static int handle_failures(kao_run *r, const kao_batch *b) {
    for (int k = 0; k < b->num_failed; k++) {
        if (r->cfg.data.stop_on_bad_image)
            return kao_fail("%s (data.stop_on_bad_image = true; set it to false to skip such images)",
                            b->failed_message[k]);
        if (kao_dataset_mark_skipped(&r->ds, b->failed[k]))
            kao_say(r, "warning: skipping an image that does not decode: %s", b->failed_message[k]);
    }
    return KAO_OK;
}

static int save_checkpoint(kao_run *r) {
    kao_output_flush(&r->out); /* the rows up to the checkpoint are on disk with it */
    if (kao_run_save_checkpoint(r)) return kao_fail_context("saving a checkpoint: ");
    return KAO_OK;
}

typedef struct {
    double seconds, wait, rows; /* this process's training time, data wait and images */
} throughput;

/* The training part of the current epoch, from r->batch_in_epoch on. Returns KAO_OK,
 * KAO_TRAIN_INTERRUPTED or KAO_ERR. */
static int train_epoch(kao_run *r, throughput *total, throughput *epoch_tp) {
    int epoch = r->epoch, nb = r->sampler.num_batches;
    kao_sampler_set_epoch(&r->sampler, epoch);
    kao_trainer_set_frozen(&r->trainer, frozen_units(r, epoch));
    kao_augment_cfg aug = kao_config_augment(&r->cfg);
    kao_loader_start(r->loader, r->sampler.order, r->sampler.epoch_len, r->cfg.train.batch_size, r->batch_in_epoch,
                     &aug, (uint64_t)r->cfg.train.seed, epoch);
    int rc = KAO_OK;
    for (;;) {
        double t0 = kao_now_seconds(), waited;
        const kao_batch *b = kao_loader_next(r->loader, &waited);
        if (!b) break;
        if ((rc = handle_failures(r, b)) != KAO_OK) break;
        kao_step_stats stats = {0};
        if (b->count > 0) kao_trainer_step(&r->trainer, &stats, b->input, b->labels, b->count);
        double seconds = kao_now_seconds() - t0;
        r->batch_in_epoch = b->index + 1;
        r->epoch_loss_sum += (double)stats.loss * b->count;
        r->epoch_correct += stats.correct;
        r->epoch_images += b->count;
        epoch_tp->seconds += seconds;
        epoch_tp->wait += waited;
        epoch_tp->rows += b->count;
        kao_step_report s = {.epoch = epoch, .batch = b->index, .num_batches = nb, .rows = b->count, .stats = stats,
                             .lr = r->cfg.train.lr * stats.lr_factor, .seconds = seconds, .wait_seconds = waited,
                             .epoch_seconds = epoch_tp->seconds, .epoch_wait = epoch_tp->wait,
                             .epoch_rows = epoch_tp->rows};
        if (b->count > 0) kao_report_step(r, &s);
        /* The step's row is on record; a diverging run stops before anything is saved from it. */
        if (b->count > 0 && (rc = kao_guard_step(r, &stats)) != KAO_OK) break;
        bool last = r->batch_in_epoch == nb;
        int every = r->cfg.checkpoint.every_steps;
        if (stop_signal) {
            kao_loader_stop(r->loader);
            rc = save_checkpoint(r);
            if (rc == KAO_OK) rc = KAO_TRAIN_INTERRUPTED;
            break;
        }
        /* The epoch's own checkpoint follows its last batch. */
        if (every > 0 && b->count > 0 && r->trainer.step % every == 0 && !last && (rc = save_checkpoint(r)) != KAO_OK)
            break;
    }
    kao_loader_stop(r->loader);
    total->seconds += epoch_tp->seconds;
    total->wait += epoch_tp->wait;
    total->rows += epoch_tp->rows;
    return rc;
}

/* Validation, early stopping, best/last weights, the epoch row and checkpoint. Sets *stop. */
static int finish_epoch(kao_run *r, const throughput *tp, bool *stop) {
    kao_val_result val;
    if (kao_guard_state(r) || kao_run_validate(r, &val)) return KAO_ERR;
    int epoch = r->epoch + 1; /* 1-based: the epoch just completed */
    double watched = r->early_stop.metric == KAO_WATCH_EER   ? val.pairs.eer
                     : r->early_stop.metric == KAO_WATCH_AUC ? val.pairs.auc
                                                             : val.loss;
    bool improved = kao_early_stop_update(&r->early_stop, epoch, watched);
    if (improved && kao_run_save_weights(r, "best.h5")) return kao_fail_context("saving best.h5: ");
    if (kao_run_save_weights(r, "last.h5")) return kao_fail_context("saving last.h5: ");
    double images = (double)r->epoch_images;
    kao_epoch_report e = {.epoch = epoch,
                          .train_loss = images > 0 ? r->epoch_loss_sum / images : NAN,
                          .train_accuracy = images > 0 ? (double)r->epoch_correct / images : NAN,
                          .seconds = tp->seconds,
                          .wait_seconds = tp->wait,
                          .images_per_second = tp->seconds > 0 ? tp->rows / tp->seconds : 0,
                          .val = &val,
                          .improved = improved};
    kao_report_epoch(r, &e);
    r->epoch = epoch;
    r->batch_in_epoch = 0;
    r->epoch_loss_sum = 0;
    r->epoch_correct = r->epoch_images = 0;
    if (save_checkpoint(r)) return KAO_ERR;
    *stop = kao_early_stop_should_stop(&r->early_stop);
    if (*stop && epoch < r->cfg.train.epochs) /* after the last epoch the run ends anyway */
        kao_say(r, "early stopping: %s has not improved by more than %g for %d epochs (best %.6g at epoch %d)",
                kao_watch_name(r->early_stop.metric), r->early_stop.min_delta, r->early_stop.bad_epochs,
                r->early_stop.best, r->early_stop.best_epoch);
    return KAO_OK;
}

/* The end of a run: the verification thresholds best.h5 records (from its epoch's validation,
 * perhaps of an earlier process of a resumed run), as kao verify --threshold eer|far1e-3 uses them. */
static void say_thresholds(kao_run *r) {
    char *path = kao_run_path(r, "best.h5");
    kao_trained_info info;
    if (!kao_file_exists(path)) info.has_thresholds = false;
    else if (kao_trained_info_read(path, &info)) {
        kao_say(r, "warning: cannot read the thresholds of %s: %s", path, kao_last_error());
        info.has_thresholds = false;
    }
    if (info.has_thresholds) {
        kao_say(r, "best.h5 thresholds (validation pairs of epoch %d): EER threshold %.6f, FAR 1e-3 threshold %.6f "
                   "(%" PRId64 " different pairs)",
                r->early_stop.best_epoch, info.threshold_eer, info.threshold_far1e3, info.threshold_diff_pairs);
        if (info.threshold_diff_pairs < KAO_FAR_1E3_MIN_PAIRS)
            kao_say(r, "warning: %" PRId64 " different-identity validation pairs cannot measure a FAR of 1e-3 "
                       "(that takes %d): the FAR 1e-3 threshold is the threshold of no false accept on them",
                    info.threshold_diff_pairs, KAO_FAR_1E3_MIN_PAIRS);
    }
    free(path);
}

int kao_train_run(const kao_train_args *args) {
    kao_run *r = kao_calloc(1, sizeof *r, "run");
    int rc = kao_run_setup(r, args);
    if (rc == KAO_OK) rc = kao_output_events(r, args->resume);
    if (rc) {
        kao_run_free(r);
        free(r);
        return KAO_ERR;
    }
    r->weight_norm = kao_trainer_weight_norm(&r->trainer); /* the first step's reference (kao_guard_step) */
    struct sigaction old_int, old_term;
    catch_signals(&old_int, &old_term);
    throughput total = {0};
    bool stop = kao_early_stop_should_stop(&r->early_stop);
    if (stop && r->epoch < r->cfg.train.epochs)
        kao_say(r, "this run already stopped early at epoch %d", r->epoch);
    else if (stop || r->epoch >= r->cfg.train.epochs)
        kao_say(r, "this run is already complete: %d epochs", r->epoch);
    else
        kao_say(r, "training: %d epochs of %d batches of %d (%s sampler), %d training and %d validation images, "
                   "%d identities, %d loader worker%s",
            r->cfg.train.epochs, r->sampler.num_batches, r->cfg.train.batch_size,
            r->sampler.type == KAO_SAMPLE_M_PER_CLASS ? "m_per_class" : "shuffle", r->split.num_train,
            r->split.num_val, r->ds.num_classes, r->workers, r->workers == 1 ? "" : "s");
    /* A new run's starting point is its first checkpoint: resumable from the start, and a record of
     * the initial weights and ArcFace centres (carried-over identities included). */
    if (!args->resume) rc = save_checkpoint(r);
    while (rc == KAO_OK && !stop && r->epoch < r->cfg.train.epochs) {
        throughput epoch_tp = {0};
        rc = train_epoch(r, &total, &epoch_tp);
        if (rc == KAO_OK) rc = finish_epoch(r, &epoch_tp, &stop);
        /* Arrived during validation: the epoch's checkpoint is saved. After the last epoch there is
         * nothing left to resume: the run is done. */
        if (rc == KAO_OK && stop_signal && !stop && r->epoch < r->cfg.train.epochs) rc = KAO_TRAIN_INTERRUPTED;
    }
    double wait = total.seconds > 0 ? total.wait / total.seconds : 0;
    if (rc == KAO_TRAIN_INTERRUPTED) {
        kao_say(r, "interrupted by signal %d at epoch %d, step %" PRId64 "; checkpoint saved. Resume with:\n  %s --resume %s",
                (int)stop_signal, r->epoch + 1, r->trainer.step, args->command ? args->command : "kao train", r->dir);
    } else if (rc == KAO_OK) {
        char speed[96] = ""; /* none when this process trained no step (a resumed run that was done) */
        if (total.seconds > 0)
            snprintf(speed, sizeof speed, ", %.1f images/s, waited for data %.1f%% of step time",
                     total.rows / total.seconds, 100 * wait);
        kao_say(r, "done: %d epochs, %" PRId64 " steps%s; best %s %.6g at epoch %d: %s/best.h5", r->epoch,
                r->trainer.step, speed, kao_watch_name(r->early_stop.metric), r->early_stop.best,
                r->early_stop.best_epoch, r->dir);
        say_thresholds(r);
        if (r->ds.skipped_images)
            kao_say(r, "skipped %d %s that failed to decode (listed above)", r->ds.skipped_images,
                    r->ds.skipped_images == 1 ? "image" : "images");
    }
    release_signals(&old_int, &old_term); /* caught until here: a signal during the last messages changes nothing */
    kao_run_free(r);
    free(r);
    return rc;
}
