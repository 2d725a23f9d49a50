/* verify.h — face verification over pairs of images: who is who, which pairs, their cosine
 * scores, and the report of `kao verify`.
 *
 * Identities (kao_identity_labels), from each image's path:
 *  - KAO_LAYOUT_NAMES: the file name up to its LAST underscore: "taro_yamada_2.png" → "taro_yamada"
 *    (the same for .jpg and .jpeg). A name without an underscore, or starting with one, is an
 *    error ("cannot tell the identity of 'foo.png': expected <identity>_<n>.png (or .jpg, .jpeg)").
 *  - KAO_LAYOUT_FOLDERS: the name of the folder holding the image: "data/s1/3.png" → "s1".
 *  - KAO_LAYOUT_AUTO: NAMES when every image is in the same folder, else FOLDERS.
 * Labels are the identities' ranks in byte order of their names.
 *
 * Pairs (kao_pairs_build, options kao_pair_sampling), each pair (a, b) with a < b, the list sorted
 * by (a, b), a function of the labels and the seed alone (the training loop gets the same list every
 * validation):
 *  - same-identity pairs: an identity's every pair, or, when it has more than same_per_identity,
 *    a uniform sample of that many of them without repetition (kao_rng_seed(seed, 1)). Without
 *    the cap an identity's pairs grow with the square of its images: one with 50 images gives
 *    1225, outweighing 30 identities of 3 images (3 each) in every rate.
 *  - different-identity pairs: round(diff_per_same × the same pairs), at most all of them, drawn
 *    uniformly among all different-identity pairs without repetition (kao_rng_seed(seed, 0)).
 *    Uniform over pairs, not over identity pairs: an identity's share grows only linearly with
 *    its images, and FAR is then the false-accept rate of a random impostor comparison.
 *  - max_pairs: a limit on the whole list; the different pairs are cut to max_pairs minus the
 *    same pairs (an error when the same pairs alone reach it and different pairs are left out).
 * A cap, ratio or limit <= 0 takes everything.
 *
 * Pairs files (kao_pairs_from_file), LFW's pairs.txt format: one pair per line, fields separated
 * by blanks or tabs,
 *     name n1 n2            a same-identity pair
 *     name1 n1 name2 n2     a pair of name1 and name2 (same identity if the names are equal)
 * naming the images "<name>/<name>_<n as 4 digits>" with the first of ".png", ".jpg", ".jpeg"
 * that exists (LFW's own names, "Aaron_Peirsol 1 2" → "Aaron_Peirsol/Aaron_Peirsol_0001.jpg", or
 * PNG copies of them). Empty lines and lines starting with '#' are skipped; a first line of one or
 * two bare integers (LFW's "10 300" header) too.
 *
 * Scores are cosine similarities in double precision, stored as float; the decision "same
 * person" is score >= threshold (the original used 0.4).
 */
#ifndef KAO_VERIFY_H
#define KAO_VERIFY_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "kao/metrics.h"

typedef struct {
    int a, b;  /* image indices, a < b for built pairs; the file's order for a pairs file */
    bool same; /* same identity */
} kao_pair;

typedef enum { KAO_LAYOUT_AUTO, KAO_LAYOUT_NAMES, KAO_LAYOUT_FOLDERS } kao_layout;
typedef enum { KAO_SORT_NONE, KAO_SORT_NAME, KAO_SORT_SCORE } kao_pair_sort;

/* labels (count): identity index of each path (rule above); num_identities: how many. */
int kao_identity_labels(int *labels, int *num_identities, char *const *paths, int count, kao_layout layout);

/* How many same-identity pairs labels (n) give. */
int64_t kao_count_same_pairs(const int *labels, int n);

typedef struct {
    int same_per_identity; /* most same-identity pairs of one identity (<= 0: all) */
    double diff_per_same;  /* different-identity pairs per same-identity pair (<= 0: all) */
    int64_t max_pairs;     /* most pairs in all (<= 0: no limit) */
    uint64_t seed;
} kao_pair_sampling;

/* The pairs of n labelled images (rules above). Free *pairs with free(). Errors: fewer than two
 * images ("needs at least two images"), only one identity (no different-identity pairs), no
 * identity with two images (no same-identity pairs), same pairs that fill max_pairs, more than
 * INT_MAX pairs. */
int kao_pairs_build(kao_pair **pairs, int *count, const int *labels, int n, const kao_pair_sampling *sampling);

/* The pairs of a pairs file (format above), in file order. Exactly one of root and known:
 *  - root: the images are "<root>/<name>/<name>_NNNN" + the first of .png, .jpg, .jpeg whose file
 *    exists (one must); *images gets the distinct paths in order of first mention (free with
 *    kao_free_paths) and pairs index them. A name is a folder name: one with a '/', or "." or
 *    "..", is refused, and so is an image whose path leads out of root through a symbolic link,
 *    unless follow_symlinks;
 *  - known (num_known paths, e.g. an embeddings file's): each image must be one of them, the
 *    one equal to "<name>/<name>_NNNN.png" or ending in "/<name>/<name>_NNNN.png", else the same
 *    with .jpg, else with .jpeg; pairs index known, *images is set to NULL and *num_images to
 *    num_known.
 * The file must be a regular file, its lines at most KAO_MAX_LINE bytes (files.h).
 * Errors name the file and line: a malformed line, a missing image, no pairs, no pair of one kind. */
int kao_pairs_from_file(kao_pair **pairs, int *count, char ***images, int *num_images, const char *path,
                        const char *root, char *const *known, int num_known, bool follow_symlinks);

/* scores (count): cosine similarity of each pair's embeddings; emb (num_images, dim). An
 * embedding of zero length is an error naming its path (paths may be NULL: its index). */
int kao_pair_scores(float *scores, const kao_pair *pairs, int count, const float *emb, int num_images,
                    int dim, char *const *paths);

/* The training loop's validation: the pairs of emb (n, dim) with labels (n) that kao_pairs_build
 * makes with sampling, scored by cosine similarity, measured at threshold. Errors as
 * kao_pairs_build. */
int kao_verify_labeled(kao_pair_metrics *out, const float *emb, const int *labels, int n, int dim,
                       const kao_pair_sampling *sampling, double threshold);

/* ---- the report ------------------------------------------------------------------------------ */

/* order (count): the pairs' printing order. NONE: as given; NAME: by first path, then second
 * (byte order); SCORE: by score ascending (as the original write-up lists them), ties by name. */
void kao_pairs_order(int *order, const kao_pair *pairs, const float *scores, int count, char *const *paths,
                     kao_pair_sort sort);

/* One line per pair in the original inference script's format, extended by two fields:
 *     <path1>, <path2>, <True|False>, <percentage, 2 decimals>%, <cosine, 6 decimals>, <same|different>
 * decision = score >= threshold; percentage = kao_percentage_score(score); the last field is the
 * truth (same identity or not). */
void kao_print_pairs(FILE *out, const kao_pair *pairs, const float *scores, const int *order, int count,
                     char *const *paths, double threshold);

/* The same as a TSV file, written atomically: a header line
 *     image1  image2  decision  percentage  cosine  identity
 * then one tab-separated line per pair (percentage without '%'). */
int kao_save_pairs_tsv(const char *path, const kao_pair *pairs, const float *scores, const int *order,
                       int count, char *const *paths, double threshold);

/* The summary, one "key: value" per line (numbers with 6 decimals; rates as fractions):
 *     pairs, same pairs, different pairs, threshold, accuracy, TP, FP, TN, FN, AUC, EER,
 *     EER threshold, TAR@FAR=1e-2, TAR@FAR=1e-3, threshold at FAR=1e-3 (followed by "(no false
 *     accept: fewer than 1000 different pairs)" when it cannot measure 1e-3), best threshold
 *     (balanced accuracy), best balanced accuracy */
void kao_print_summary(FILE *out, const kao_pair_metrics *m);

#endif
