/* split.h — the stratified train/validation split and its manifest.
 *
 * Rule, per identity with n images (n counted after the data set's min/max options):
 *  - n < 2: every image goes to train; the identity is counted in num_train_only and reported.
 *  - otherwise k = val_count (when > 0) or round(val_fraction · n) images go to validation,
 *    k clamped to [1, n-1], so each side holds at least one image of the identity.
 * Which k images: the identity's images (in file-name order) are shuffled by kao's RNG seeded with
 * kao_rng_seed(seed, FNV-1a-64(identity name)), and the first k are taken. The choice for one
 * identity depends only on the seed, its name and its own images, so adding or removing another
 * identity changes no other identity's split.
 *
 * Manifest (plain UTF-8 text, written atomically into the run folder):
 *   # kao-split v1 seed=42 val_fraction=0.1 val_count=0 train=360 val=40 hash=1f0c...(16 hex digits)
 *   train<TAB>s1<TAB>s1/1.png
 *   val<TAB>s1<TAB>s1/10.png
 *   ...
 * one line per image, in the data set's order (identity, then file name, byte order); paths are
 * relative to the data root. Further lines beginning with '#' and empty lines are ignored on reading.
 * The hash is FNV-1a 64 over the image lines ("side\tidentity\tpath\n"), sorted bytewise first, so it
 * names the content whatever the line order. Checkpoints record it to refuse resuming on a changed
 * data set; ONNX export writes it as metadata.
 */
#ifndef KAO_SPLIT_H
#define KAO_SPLIT_H

#include "kao/dataset.h"

#include <stdint.h>
#include <stdio.h>

typedef struct {
    uint64_t seed;
    double val_fraction; /* share of each identity's images for validation, used when val_count == 0 */
    int val_count;       /* > 0: this many images per identity instead (still at most n-1) */
} kao_split_options;

typedef struct {
    unsigned char *is_val;     /* (num_images of the data set) 1: validation, 0: train */
    int *train;                /* (num_train) image indices, ascending */
    int num_train;
    int *val;                  /* (num_val) image indices, ascending */
    int num_val;
    int num_train_only;        /* identities with no validation image (fewer than 2 images) */
    kao_split_options options; /* as created, or as read from the manifest's header */
    uint64_t hash;             /* kao_split_hash() of this split */
} kao_split;

/* Fails when no identity has 2 images (the validation set would be empty) or on bad options
 * (val_fraction outside (0, 1) with val_count == 0, negative val_count). */
int kao_split_create(kao_split *s, const kao_dataset *ds, const kao_split_options *options);

/* Writes the manifest atomically (kao_atomic_fopen + kao_atomic_fclose). */
int kao_split_write(const kao_split *s, const kao_dataset *ds, const char *path);

/* Reads a manifest written for the same data set (--split FILE, or a resume) and checks it line by
 * line. Errors name the file and line: a file that is not a regular file, a line longer than
 * KAO_MAX_LINE (files.h), a malformed header or line, an unknown split word, an image path that
 * leads out of the data root (absolute, or with a ".." component), a file missing on disk, an image the data set does not hold (dropped identity, wrong identity column),
 * an image listed twice, a header hash that does not match the content; and, naming the first,
 * images of the data set that the manifest does not list. */
int kao_split_read(kao_split *s, const kao_dataset *ds, const char *path);

/* FNV-1a 64 over the sorted lines, as described above. */
uint64_t kao_split_hash(const kao_split *s, const kao_dataset *ds);

/* One or two lines: train/val counts, seed, fraction, train-only identities, hash. */
void kao_split_print_summary(FILE *f, const kao_split *s, const kao_dataset *ds);

void kao_split_free(kao_split *s);

#endif
