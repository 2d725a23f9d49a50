/* dataset.h — an identity-folder tree of face images: ROOT/<identity>/<image>.png (or .jpg, .jpeg).
 *
 * kao_dataset_scan() lists the tree without decoding anything. Its rules:
 *  - Identities are the sub-folders of ROOT; their names may be any UTF-8 (Japanese names are the
 *    normal case). Names are compared as bytes, so the order, and with it every class index, is the
 *    same on every machine: class index = position in the byte-sorted list of kept identities.
 *  - Images are the regular files whose name ends in ".png", ".jpg" or ".jpeg" in any letter case
 *    (kao_is_image_name; the decoder then goes by the content), sorted by byte order within their
 *    identity, PNG and JPEG files mixed.
 *  - Symbolic links (identity folders or images) are followed while they stay inside ROOT. One that
 *    leads out of ROOT is skipped, counted and reported in the summary ("outside:"), unless
 *    options.follow_symlinks (data.follow_symlinks = true, --follow-symlinks), which follows it
 *    (and the summary says so).
 *  - Names beginning with '.' (hidden files and folders) are skipped silently.
 *  - Any other entry (a file at ROOT level, another kind of file or a sub-folder inside an identity
 *    folder) is ignored, counted and reported in the summary; it is not an error. The quarantine
 *    folders of kao curate (not_me/, same_face/, no_face/: curate.h) are counted on their own.
 *  - An identity folder without a single image is an error when options.strict is set (the default in
 *    kao's config, data.strict = true: an empty folder is usually a failed copy). Without strict it
 *    is dropped and reported.
 *  - options.max_images > 0 keeps only the first max_images images (in byte order) of each identity.
 *  - Identities with fewer than options.min_images images are dropped and reported.
 * Errors (KAO_ERR, the message names the path): ROOT missing, not a folder or unreadable; an
 * unreadable identity folder; no identity folders; a name the split manifest cannot hold (an
 * identity that is not valid UTF-8, a tab or line break in a name); every identity dropped.
 *
 * Images that fail to decode are found later by the loader, which records them here with
 * kao_dataset_mark_skipped(); the summary reports their count.
 */
#ifndef KAO_DATASET_H
#define KAO_DATASET_H

#include <stdbool.h>
#include <stdio.h>

typedef struct {
    int min_images; /* identities with fewer images are dropped (the original pipeline used 80); >= 1 */
    int max_images; /* > 0: keep only the first max_images images of each identity; 0: all */
    bool strict;    /* an identity folder with no image is an error (false: dropped with a warning) */
    bool follow_symlinks; /* follow symbolic links that lead out of ROOT (false: skip them) */
} kao_dataset_options;

typedef struct {
    char *path;      /* "ROOT/identity/file.png": the path to open */
    const char *rel; /* points into path: "identity/file.png", as written in split manifests */
    int label;       /* class index */
    bool skipped;    /* failed to decode (set by kao_dataset_mark_skipped) */
} kao_sample;

typedef struct {
    char *name;      /* identity folder name (UTF-8) */
    int *images;     /* (num_images) indices into kao_dataset.images, in file-name order */
    int num_images;
} kao_class;

typedef struct {
    char *name;
    int num_images;  /* 0: an empty folder dropped because strict was off; else below min_images */
} kao_dropped_identity;

typedef struct {
    char *root;                    /* as given, without trailing '/' */
    kao_dataset_options options;   /* as used by the scan */
    kao_class *classes;            /* (num_classes) sorted by name */
    int num_classes;
    kao_sample *images;            /* (num_images) grouped by class, classes in order */
    int num_images;
    kao_dropped_identity *dropped; /* (num_dropped) in name order */
    int num_dropped;
    int num_capped;                /* identities cut down to options.max_images */
    int quarantine_folders;        /* not_me/, same_face/, no_face/ inside identities (kao curate --apply):
                                      left out, counted apart from ignored_files */
    int ignored_files;             /* entries that are neither identity folders nor images */
    char *ignored_example;         /* the first of them (relative to root), NULL when none */
    int outside_links;             /* symbolic links out of root: skipped, or followed (follow_symlinks) */
    char *outside_example;         /* the first of them (relative to root), NULL when none */
    int skipped_images;            /* images the loader could not decode */
} kao_dataset;

/* Fills ds (free with kao_dataset_free); after an error ds holds nothing (freeing it is harmless). */
int kao_dataset_scan(kao_dataset *ds, const char *root, const kao_dataset_options *options);
void kao_dataset_free(kao_dataset *ds);

/* The image whose manifest path is rel ("identity/file.png"), or -1. */
int kao_dataset_find(const kao_dataset *ds, const char *rel);

/* Records that image i failed to decode; returns true the first time for that image.
 * Not thread-safe: loader threads must serialise their calls. */
bool kao_dataset_mark_skipped(kao_dataset *ds, int i);

/* Prints identities, images, per-identity min/median/max, dropped identities, ignored and skipped
 * files, a few lines in all; the image count says how many are named *.png and how many
 * *.jpg or *.jpeg. */
void kao_dataset_print_summary(FILE *f, const kao_dataset *ds);

#endif
