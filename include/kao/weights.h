/* weights.h — a model's tensors in an HDF5 weights file.
 *
 * File layout (the shared contract; tools/convert_timm.py reads and writes the same):
 *   - one dataset per table tensor at the root, named by timm's state_dict key
 *     ("blocks.3.0.se.conv_reduce.bias"), PyTorch shape, float32;
 *   - "<bn>.num_batches_tracked" per BatchNorm: int64 scalar (PyTorch's counter);
 *   - root attributes: format = "kao-weights" (string), format_version = 1 (int64),
 *     architecture = timm variant name (string), width_mult, depth_mult (float64),
 *     embedding_dim (int64, the classifier's out_features; 0 in a backbone, a file without the
 *     classifier, as timm's num_classes=0).
 * Datasets are written in timm's state_dict order and listed in that order.
 *
 * Every function that takes a path reads it through kao_weights_open (weights_source.h), so
 * timm's safetensors and Keras's EfficientNetV2 .h5 files are read as they are downloaded, and
 * pass the same checks as kao's own files.
 *
 * Backbones: Keras's _notop files (and timm's num_classes=0 state_dicts) have no classifier.
 * kao train --init takes them (a fresh head, with a note), kao info describes them and kao convert
 * keeps them backbones; kao_weights_probe, and so embed, verify and export, refuse them with
 * "no classifier: a backbone without an embedding head ...". No command invents a head for a file.
 *
 * Loading checks everything before it reads any data: a missing tensor, an unexpected one, a
 * wrong type or a wrong shape is an error naming the tensor, the expected and the found shape,
 * and (when the file's architecture can be told) "is this a weight file for <variant>?".
 * The one tolerated mismatch, on request, is the classifier: ImageNet weights carry a
 * 1000-class head, which is skipped and replaced by a freshly initialised embedding head.
 */
#ifndef KAO_WEIGHTS_H
#define KAO_WEIGHTS_H

#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>

#include "kao/arch.h"
#include "kao/h5io.h"
#include "kao/model.h"

#define KAO_WEIGHTS_FORMAT "kao-weights"
#define KAO_WEIGHTS_VERSION 1

typedef struct {
    /* Skip a classifier whose shape differs from the model's (or that is absent) and initialise
     * the head with kao_model_init_head(model, head_seed) instead of failing. */
    bool allow_head_mismatch;
    uint64_t head_seed;
} kao_weights_options;

typedef struct {
    int tensors_loaded;          /* float tensors read from the file */
    int counters_loaded;         /* num_batches_tracked values read (absent ones are set to 0) */
    bool head_skipped;           /* the classifier was not loaded but freshly initialised */
    int skipped_head_shape[2];   /* classifier.weight's shape in the file; {0, 0} if absent */
    /* When head_skipped, one line for the user, e.g. "classifier [1000, 1280] skipped:
     * ImageNet head, a fresh 512-d embedding head is initialised". Empty otherwise. */
    char note[256];
} kao_weights_report;

/* Writes every tensor of m, the BN counters and the attributes to path atomically: on failure
 * the previous file at path is untouched and nothing is left behind. */
int kao_weights_save(const kao_model *m, const char *path);

/* Loads path into m, whose architecture (and so its table) is already built. options may be NULL
 * (strict: no head mismatch); report may be NULL. The file's format attribute, when present,
 * must be "kao-weights" with a format_version this kao reads; files without attributes (plain
 * state_dict dumps) are accepted. Also loads num_batches_tracked into m->bn_batches_tracked.
 * On failure m's contents are unspecified only if the file was unreadable midway (all names,
 * types and shapes are checked before any tensor is read). */
int kao_weights_load(kao_model *m, const char *path, const kao_weights_options *options,
                     kao_weights_report *report);

/* Checks every tensor of the file at path against m's table without loading anything and writes
 * one line per mismatch (missing, unexpected, wrong type or shape) to out. Returns how many there
 * are (0: the file fits m), or KAO_ERR when the file cannot be read. kao_weights_load reports the
 * first mismatch and how many more there are. options as for kao_weights_load (NULL: strict). */
int kao_weights_list_mismatches(const kao_model *m, const char *path, const kao_weights_options *options,
                                FILE *out);

/* Tells the architecture of a weights file without loading it: from the root attributes when
 * present, otherwise by matching the tensor shapes (stem, head, blocks per stage) against each
 * variant at its default multipliers, with embedding_dim from classifier.weight's shape. out is
 * built by kao_arch_build (drop_path_rate 0). Fails with a message when nothing matches, and for
 * a backbone (no classifier). */
int kao_weights_probe(const char *path, kao_arch *out);
/* The same for commands that also take a backbone: *has_head false for a file without a
 * classifier (embedding_dim attribute 0, or no classifier.weight), and out then carries a 1-d
 * head that the file does not have, to be skipped (allow_head_mismatch), never written. */
int kao_weights_probe_backbone(const char *path, kao_arch *out, bool *has_head);

/* The same on files opened with h5io, for containers that hold weights among other data (e.g.
 * a checkpoint's "model" group, a reference file's "weights" group). group NULL is the root.
 * write puts the datasets and the attributes into group; read expects exactly the model's
 * datasets directly in group (sub-groups are ignored) and does not look at a format attribute. */
int kao_weights_write(kao_h5_file *f, const char *group, const kao_model *m);
/* kao_weights_write without the classifier, embedding_dim 0: the file of a backbone. */
int kao_weights_write_backbone(kao_h5_file *f, const char *group, const kao_model *m);
int kao_weights_read(kao_model *m, const kao_h5_file *f, const char *group,
                     const kao_weights_options *options, kao_weights_report *report);
int kao_weights_probe_file(const kao_h5_file *f, const char *group, kao_arch *out);
int kao_weights_probe_backbone_file(const kao_h5_file *f, const char *group, kao_arch *out, bool *has_head);

#endif
