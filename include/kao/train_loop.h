/* train_loop.h — kao train: fine-tuning runs with validation, early stopping, checkpoints and resume.
 *
 * A run, epoch by epoch:
 *   train   the sampler's batches (sampler.h), prepared by the loader's workers (loader.h), one
 *           kao_trainer_step each (train_step.h); the first train.freeze_backbone_epochs epochs
 *           train only the embedding head and the ArcFace centres;
 *   validate the validation images without augmentation (the preprocessing of kao embed): ArcFace
 *           loss and class accuracy, then verification over a balanced pair list, the same every
 *           epoch (verify.h, seeded by train.seed): at most verify.same_pairs_per_identity
 *           same-identity pairs per identity and verify.diff_pairs_per_same different-identity
 *           pairs per same pair; accuracy at verify.threshold, the threshold of best balanced
 *           accuracy, ROC AUC, EER and its threshold, TAR and the threshold at FAR 1e-3;
 *   keep    best.h5 when the watched metric improved (early_stop.h), last.h5, a checkpoint;
 *   stop    when early stopping says so, or after train.epochs; or, with an error and nothing saved
 *           from the diverged state, when the training diverges (src/train_guard.c: the loss, the
 *           gradients or the state not finite, or a step that more than doubles the weights' norm).
 * Checkpoints are also written every checkpoint.every_steps steps, and when SIGINT or SIGTERM
 * arrives: the current step is finished, a checkpoint saved, and the run exits with a message
 * naming the command that resumes it (a second signal kills at once; the checkpoints stay intact).
 *
 * Run folder: kao train writes only into a new folder (created with the parents it needs), an
 * empty one, or a kao run folder: one that holds config.ini and checkpoints/ (both written by kao
 * train, config.ini first), whose run saved no checkpoint yet (a run that saved one is continued
 * with --resume). A folder holding anything else is refused: its files are never overwritten.
 * A start that fails before the run's first checkpoint (bad data, bad start weights, ...) removes
 * what it made in a new or empty folder, the folder too where kao train created it (with the
 * parents it created); a run folder it reused stays as it was. Files written whole go through a
 * temporary "<name>.tmp.XXXXXX" beside them (util.h); --resume removes those a killed run left
 * (only those names, for config.ini, split.tsv, classes.txt, metrics.csv, best.h5, last.h5 and
 * the checkpoints). train.log and metrics.csv are appended to, never through a symbolic link.
 *   config.ini              the effective config (every key; data.root and model.weights made
 *                           absolute), what --resume reads
 *   split.tsv               the train/validation manifest (split.h)
 *   classes.txt             one identity per line, line i = class i = column i of ArcFace W
 *   metrics.csv             one row per step (kind=step) and per epoch (kind=epoch), columns:
 *       kind,epoch,step,batch,images,loss,accuracy,lr,grad_norm,seconds,wait_seconds,images_per_second,
 *       val_loss,val_accuracy,verify_accuracy,best_threshold,best_balanced_accuracy,auc,eer,eer_threshold,
 *       tar_far_1e3,threshold_far_1e3,improved
 *       step rows: the batch's loss and class accuracy, the backbone's learning rate, the gradient
 *       norm (0 without clipping), the step's wall time and the part of it spent waiting for data;
 *       epoch rows: the epoch's mean training loss and accuracy, its training time and data wait,
 *       and the validation results; improved = 1 when best.h5 was updated
 *   tb/events.out.tfevents.*  TensorBoard event files (tb_events.h), one per process: the step
 *                           rows' loss, accuracy, lr and images/s, and the epoch rows' values
 *   train.log               what was printed (without the progress bar), across resumes
 *   train.lock              held (flock) while a kao train works in the folder
 *   checkpoints/ckpt-<step>.h5   the newest checkpoint.keep checkpoints (checkpoint.h), step
 *                           zero-padded to 9 digits
 *   best.h5, last.h5        weights (weights.h layout, for kao embed, verify and export) of the best
 *                           epoch and of the latest epoch end, plus /arcface/W and /arcface/classes
 *                           so that a later run can carry its identities over (--init), and that
 *                           epoch's validation EER threshold and threshold at FAR 1e-3
 *                           (trained_info.h); the end of the run prints best.h5's
 *
 * Resuming (resume = true, run_dir an existing run): the newest checkpoint that reads back is
 * used (an unreadable one is reported and the previous one tried). The config (its hashed keys),
 * the split and the class list must be the run's: otherwise the run is refused with the
 * differences listed, unless allow_changed (then a changed split is rebuilt and written, and the
 * class list must still be the same).
 *
 * Starting from weights (model.weights, or --init): ImageNet weights from tools/convert_timm.py
 * (the 1000-class classifier is replaced by a fresh embedding head), or a previous run's best.h5,
 * last.h5 or checkpoint: its model is loaded, and the ArcFace columns of identities that still exist
 * (matched by name) are kept bit for bit, the new ones initialised; what was kept, added and dropped
 * is reported.
 */
#ifndef KAO_TRAIN_LOOP_H
#define KAO_TRAIN_LOOP_H

#include <stdbool.h>

#include "kao/config.h"

/* kao_train_run's result when a signal stopped it after saving a checkpoint. */
#define KAO_TRAIN_INTERRUPTED 2

typedef struct {
    kao_config config;      /* the effective config (file, then overrides) */
    const char *run_dir;    /* the run folder: created for a new run, read for a resume */
    bool resume;
    bool allow_changed;     /* resume despite a changed config or data set */
    const char *split_path; /* new runs: use this manifest instead of making a split (NULL: make one) */
    int log_every;          /* without a terminal, one progress line per this many steps (>= 1) */
    bool progress_bar;      /* redraw a progress bar on stderr (a terminal) */
    const char *command;    /* how the program was called, for the resume hint ("kao train") */
} kao_train_args;

/* Returns KAO_OK when the run finished (all epochs, or early stopping), KAO_TRAIN_INTERRUPTED
 * after a signal, KAO_ERR on an error (message in kao_last_error()). */
int kao_train_run(const kao_train_args *args);

#endif
