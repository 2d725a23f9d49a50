/* train_internal.h — the state of one kao train run, shared by the files that make up
 * kao_train_run (train_loop.h): train_folder.c (the run folder), train_setup.c (data, model,
 * resume), train_loop.c (epochs and steps), train_validate.c (validation) and train_log.c
 * (progress, train.log, metrics.csv). */
#ifndef KAO_TRAIN_INTERNAL_H
#define KAO_TRAIN_INTERNAL_H

#include <stdio.h>

#include "kao/checkpoint.h"
#include "kao/config.h"
#include "kao/dataset.h"
#include "kao/early_stop.h"
#include "kao/loader.h"
#include "kao/metrics.h"
#include "kao/sampler.h"
#include "kao/split.h"
#include "kao/tb_events.h"
#include "kao/train_loop.h"
#include "kao/train_step.h"
#include "kao/util.h"

typedef struct {
    double loss, accuracy;      /* ArcFace loss and nearest-class accuracy of the validation images */
    kao_pair_metrics pairs;     /* verification */
    int images;                 /* validation images that decoded */
    double seconds;
} kao_val_result;

typedef struct {
    FILE *log;                  /* train.log (append) */
    FILE *csv;                  /* metrics.csv */
    kao_tb_writer tb;           /* tb/events.out.tfevents.* */
    bool bar;                   /* progress bar on stderr */
    int every;                  /* plain progress line every this many steps */
    bool bar_drawn;             /* a bar line is on screen (a message must start a new line) */
} kao_train_output;

typedef struct {
    kao_train_args args;
    kao_config cfg;
    char *dir;                  /* the run folder */
    char *made_dir;             /* new runs: the topmost folder kao train created for it (NULL: none) */
    bool owns_dir;              /* new runs: the folder was new or empty, so a failed start removes what
                                   it made (train_loop.h) */
    bool started;               /* the first checkpoint is saved: a failure leaves the folder as it is */
    char *config_text;          /* kao_config_dump(cfg) */
    uint64_t config_hash;
    kao_dataset ds;
    kao_split split;
    int *labels;                /* (ds.num_images) class of each image */
    char **classes;             /* (ds.num_classes) the identity names, borrowed from ds */
    kao_backend *backend;       /* where the training steps and validation run */
    kao_model model;
    bool has_model;
    kao_trainer trainer;
    bool has_trainer;
    kao_sampler sampler;
    kao_loader *loader;
    int workers;                /* its worker threads (train.workers, auto resolved) */
    kao_input_norm norm;        /* model.input_mean / input_std, resolved */
    kao_early_stop early_stop;
    bool can_verify;            /* validation holds a same-identity pair and two identities */
    bool has_thresholds;        /* the latest validation's verification thresholds (metrics.h), for
                                   best.h5 and last.h5 (trained_info.h); false until one ran */
    double threshold_eer, threshold_far1e3;
    int threshold_diff_pairs;
    int epoch;                  /* epochs completed */
    int batch_in_epoch;         /* batches of the next epoch done */
    double epoch_loss_sum;      /* over the current epoch: sum of loss × rows */
    int64_t epoch_correct, epoch_images;
    float weight_norm;          /* of the network's weights after the latest step (kao_guard_step) */
    kao_train_output out;
} kao_run;

/* train_folder.c: the run folder (train_loop.h). */
/* A new run: the folder made or checked (new, empty, or a run folder; else refused), its
 * checkpoints/ made, the folder locked. */
int kao_run_folder_new(kao_run *r);
/* A resume: the folder locked, the temporary files a killed run left removed. */
int kao_run_folder_resume(kao_run *r);
/* After a start that failed before the first checkpoint in a folder it owns (new or empty): removes
 * what it made, and the folder and parents it created. */
void kao_run_folder_remove_failed_start(const kao_run *r);

/* train_setup.c */
int kao_run_setup(kao_run *r, const kao_train_args *args);
void kao_run_free(kao_run *r);
/* The trainer's and the run's state as a checkpoint at the current position; prunes old ones. */
int kao_run_save_checkpoint(kao_run *r);
/* best.h5 / last.h5: the weights plus /arcface. */
int kao_run_save_weights(kao_run *r, const char *name);
/* "<dir>/<name>" (malloc'd) */
char *kao_run_path(const kao_run *r, const char *name);

/* train_validate.c */
int kao_run_validate(kao_run *r, kao_val_result *out);

/* train_guard.c: divergence. Each fails with one message naming the step, the epoch, the cause and
 * the settings to change. */
/* The start weights file (model.weights / --init) holds only finite numbers; before the folder is made. */
int kao_guard_start_file(const char *path);
/* The state restored from the checkpoint at path is finite. */
int kao_guard_resumed(kao_run *r, const char *path);
/* After a step: the loss, gradient norm and weights are finite, and the weights' norm at most
 * doubled (r->weight_norm holds the norm before the step, and gets the one after). */
int kao_guard_step(kao_run *r, const kao_step_stats *s);
/* The trainer's state (weights, BN statistics, ArcFace W, optimizer moments) is finite: before
 * validation and before every save. */
int kao_guard_state(kao_run *r);
/* The validation embeddings (n floats) are finite. */
int kao_guard_outputs(kao_run *r, const float *embeddings, size_t n);

/* train_log.c */
/* Opens train.log and metrics.csv. On a resume, metrics.csv keeps only the rows up to the
 * checkpoint (step rows with step <= keep_step, epoch rows with epoch <= keep_epochs). */
int kao_output_open(kao_run *r, bool resumed, int64_t keep_step, int keep_epochs);
/* Once the run is set up: a new TensorBoard event file in tb/, which on a resume starts with a
 * session start at the checkpoint's step. */
int kao_output_events(kao_run *r, bool resumed);
void kao_output_close(kao_train_output *o);
/* Puts the rows and events written so far on disk (before a checkpoint). */
void kao_output_flush(kao_train_output *o);
/* A message line: stderr and train.log. */
void kao_say(kao_run *r, const char *fmt, ...) KAO_PRINTF(2, 3);
typedef struct {
    int epoch, batch, num_batches, rows;
    kao_step_stats stats;
    double lr, seconds, wait_seconds;
    double epoch_seconds, epoch_wait, epoch_rows;  /* so far in this epoch (this process) */
} kao_step_report;
void kao_report_step(kao_run *r, const kao_step_report *s);
typedef struct {
    int epoch;
    double train_loss, train_accuracy, seconds, wait_seconds, images_per_second;
    const kao_val_result *val;
    bool improved;
} kao_epoch_report;
void kao_report_epoch(kao_run *r, const kao_epoch_report *e);

#endif
