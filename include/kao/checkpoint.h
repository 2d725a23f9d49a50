/* checkpoint.h — everything a training run needs to continue, in one HDF5 file.
 *
 * A checkpoint is written atomically (h5io.h: a temporary file beside the target, fsync, rename,
 * fsync of the folder), so killing the process at any moment, SIGKILL during a save included,
 * leaves every earlier checkpoint intact; at worst a "<name>.tmp.XXXXXX" file is left behind
 * (util.h), which kao train --resume deletes. Continuing from a checkpoint gives the same numbers as never
 * stopping (on the CPU with the same thread count): it holds every piece of state a step reads.
 *
 * File layout (all readable with h5py; E = embedding_dim, C = classes):
 *
 *   /                           root attributes:
 *       format          string  "kao-checkpoint"
 *       format_version  int64   1
 *       kao_version     string  the kao that wrote it
 *       step            int64   optimizer steps taken (= the schedule's position t)
 *       epoch           int64   epochs completed
 *       batch_in_epoch  int64   batches of the next epoch already trained (0 at an epoch end):
 *                               the sampler's position (its order is a function of seed and epoch)
 *       config_hash     string  kao_config_hash of the run's config, 16 hex digits
 *       split_hash      string  kao_split_hash of the run's split, 16 hex digits
 *       early_stop_metric       string  "val_loss" | "eer" | "auc"
 *       early_stop_best         float64 best value so far (meaningless while best_epoch is 0)
 *       early_stop_best_epoch   int64   1-based epoch of the best value, 0: none yet
 *       early_stop_bad_epochs   int64   epochs since the last improvement
 *       epoch_loss_sum  float64 sum over the current epoch's trained images of loss × batch size
 *       epoch_correct   int64   of those, rows whose nearest class was their label
 *       epoch_images    int64   images trained so far in the current epoch
 *   /config                     string [1]    the effective config as INI text (config.ini)
 *   /model/<timm key>           float32       every parameter and BN running statistic, PyTorch
 *                                             shapes, plus <bn>.num_batches_tracked int64 scalars
 *                                             and the weights attributes: the weights layout of
 *                                             weights.h inside group "model"
 *   /arcface/W                  float32 [E, C] the ArcFace class centres (pytorch-metric-learning's W)
 *   /arcface/classes            string [C]    identity name of each column (the class list)
 *   /optimizer/model/<timm key>.<state>  float32, the tensor's shape: for each parameter, each of
 *                                             the optimizer's state blocks (optim.h: "exp_avg" and
 *                                             "exp_avg_sq" for AdamW, "momentum_buffer" for SGD with
 *                                             momentum; none for plain SGD)
 *   /optimizer/model/steps      int64 [num_tensors]  torch's state["step"] per table tensor (0 for
 *                                             BN buffers and never-updated tensors)
 *   /optimizer/arcface/W.<state>  float32 [E, C]  the ArcFace optimizer's state
 *   /optimizer/arcface/steps    int64 [1]
 *   /rng/drop_path              int64 [4]     the trainer's xoshiro256** state (uint64 bit patterns)
 * The other generators need no state: the split, the sampler's order and each sample's
 * augmentation are drawn from generators seeded by (seed, epoch, position) (sampler.h, augment.h).
 * Optimizer attributes on /optimizer/model and /optimizer/arcface: type ("adamw" | "sgd").
 *
 * Test hook: with the environment variable KAO_TEST_KILL_DURING_CHECKPOINT=N the process sends
 * itself SIGKILL in the middle of its N-th checkpoint save (after the model is written, before the
 * file is committed), so a test can check that an interrupted save leaves the earlier checkpoints
 * intact. KAO_TEST_SIGINT_DURING_CHECKPOINT=N sends SIGINT there instead (kao train's Ctrl-C at a
 * known moment).
 */
#ifndef KAO_CHECKPOINT_H
#define KAO_CHECKPOINT_H

#include <stdint.h>

#include "kao/early_stop.h"
#include "kao/h5io.h"
#include "kao/train_step.h"
#include "kao/trained_info.h"

#define KAO_CHECKPOINT_FORMAT "kao-checkpoint"
#define KAO_CHECKPOINT_VERSION 1

/* Everything in a checkpoint besides the trainer's arrays. */
typedef struct {
    int64_t step;
    int epoch;                 /* epochs completed */
    int batch_in_epoch;        /* batches of the next epoch done */
    uint64_t config_hash, split_hash;
    kao_early_stop early_stop;
    double epoch_loss_sum;
    int64_t epoch_correct, epoch_images;
    char *config_text;         /* owned after kao_checkpoint_read_info */
    char **classes;            /* (num_classes) owned after kao_checkpoint_read_info */
    int num_classes;
    /* Saving: the input size and normalisation (trained_info.h) as root attributes, so --init
     * from a checkpoint reads them as from best.h5; NULL: none. Not set by kao_checkpoint_read_info. */
    const kao_trained_info *trained;
} kao_checkpoint_info;

/* Writes the trainer's state and info to path atomically (bringing its host copies up to date
 * first: kao_trainer_to_host). */
int kao_checkpoint_save(const char *path, kao_trainer *t, const kao_checkpoint_info *info);

/* Reads the attributes, the config text and the class list; checks the format. */
int kao_checkpoint_read_info(kao_checkpoint_info *info, const char *path);
void kao_checkpoint_info_free(kao_checkpoint_info *info);

/* Restores the model, W, both optimizers' state, the step and the generator into t, which was
 * created for the same architecture, class count and optimizer types (every shape is checked),
 * on whatever backend t runs (a run may move between CPU and GPU through a checkpoint). */
int kao_checkpoint_restore(kao_trainer *t, const char *path);

/* The class list and W of a checkpoint or a best.h5/last.h5 (both keep them under /arcface), for
 * carrying identities over to a new run. Fails when the file has none. Free both with free() /
 * kao_h5_free_names. */
int kao_checkpoint_read_arcface(const kao_h5_file *f, float **W, int *E, char ***classes, int *C);

/* Writes /arcface/W and /arcface/classes into an open file (best.h5 and last.h5 carry them beside
 * the weights so that a later run can keep its identities; kao embed ignores the group). */
int kao_checkpoint_write_arcface(kao_h5_file *f, const float *W, int E, char *const *classes, int C);

#endif
