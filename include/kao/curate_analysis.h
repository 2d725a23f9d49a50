/* curate_analysis.h — the analysis half of kao curate (curate.h has the verdicts and the moves).
 *
 * Everything works on L2-normalised embeddings, where a dot product is the cosine similarity that
 * kao verify and the original pipeline threshold:
 *  - src/curate_search.c: similarities by blocked GEMM (OpenBLAS cblas_sgemm over blocks of rows and
 *    columns, never a scalar loop over all pairs), reduced block by block to a top-k per row or to
 *    row sums;
 *  - src/curate_cache.c: the embeddings of an identity-folder tree cached in a sealed HDF5 file,
 *    keyed by each image's path, size and modification time and by the weights and input options;
 *  - src/curate_judge.c: one verdict per image and the too-small identities (below);
 *  - src/curate_report.c and src/curate_sheet.c: the report folder (TSV files, contact sheets).
 *
 * The judgement, identity by identity (classes of a kao_dataset):
 *  1. Reference: the images whose file name contains the marker ("default", as the original
 *     pipeline named its reference photo); without one, the identity's medoid: the image with the
 *     largest sum of similarities to the identity's other images. A medoid is a real photo (the
 *     contact sheet shows it), needs no trim fraction, and stays inside the majority while fewer
 *     than half the images are wrong; and an image compared with it is an image pair, the kind of
 *     pair the weights' recorded thresholds were measured on.
 *  2. NO_FACE: the image's best similarity to every identity's reference images (its own
 *     included) is below thresholds.no_face.
 *  3. NOT_ME: its best similarity to its own identity's reference images is below
 *     thresholds.not_me (the reason names the identity it resembles most).
 *  4. SAME_FACE: among the images still kept, pairs at or above thresholds.same_face are joined
 *     into groups; each group keeps one image (a reference image when one is in it, else the
 *     first by name) and the others are SAME_FACE.
 *  5. Too small: identities with fewer than min_images images still kept.
 * Across identities (reported, never moved): pairs of identities whose centres (the normalised
 * mean of their kept images) are at or above thresholds.same_person, and pairs of images of
 * different identities at or above thresholds.same_face (NO_FACE images left out: flat or noise
 * images all look alike).
 */
#ifndef KAO_CURATE_ANALYSIS_H
#define KAO_CURATE_ANALYSIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "kao/curate.h"
#include "kao/dataset.h"

/* ---- similarity search (curate_search.c) --------------------------------------------------- */

/* Scales each row of x (n × dim) to unit length (a zero row stays zero). */
void kao_normalize_rows(float *x, int n, int dim);

/* For each row i of A (na × dim), the k rows j of B (nb × dim) of largest dot product, best first
 * (ties: the lower j first): index[i·k + r] and sim[i·k + r]; -1 and -INFINITY where fewer than k
 * qualify. A pair is skipped when label_a and label_b are given and label_a[i] == label_b[j], and
 * when skip_self and i == j (A and B the same matrix). Blocked cblas_sgemm; deterministic. */
void kao_sim_topk(int *index, float *sim, int k, const float *A, int na, const float *B, int nb, int dim,
                  const int *label_a, const int *label_b, bool skip_self);

/* sums[i] = Σ_j A_i · B_j, by the same blocks. */
void kao_sim_row_sums(double *sums, const float *A, int na, const float *B, int nb, int dim);

/* ---- the judgement (curate_judge.c) -------------------------------------------------------- */

typedef struct {
    double not_me;      /* image vs its identity's reference below this: NOT_ME */
    double no_face;     /* best similarity to every identity's reference below this: NO_FACE */
    double same_face;   /* two images at or above this: near-duplicates */
    double same_person; /* two identity centres at or above this: one person under two names */
    int min_images;     /* identities with fewer kept images are too small */
    const char *marker; /* reference images: file names containing it ("" or NULL: medoid only) */
} kao_curate_thresholds;

typedef struct {
    kao_verdict verdict;
    float similarity;  /* KEEP, NOT_ME: to its reference; NO_FACE: to the closest identity's reference;
                          SAME_FACE: to the image kept of its group */
    int other;         /* SAME_FACE: the image kept; NOT_ME, NO_FACE: the closest other identity (-1) */
    bool reference;    /* one of its identity's reference images */
} kao_curate_image;

typedef struct {
    int a, b;          /* identities (identity pairs) or images (cross-identity duplicates), a < b */
    float similarity;
} kao_curate_pair;

typedef struct {
    int num_images, num_classes;
    kao_curate_image *images;       /* (num_images) as the dataset's images */
    bool *by_marker;                /* (num_classes) the reference came from the marker (else medoid) */
    int *kept;                      /* (num_classes) images still KEEP */
    bool *small;                    /* (num_classes) kept < min_images */
    kao_curate_pair *identity_pairs;/* centres at or above same_person, most similar first */
    int num_identity_pairs;
    kao_curate_pair *duplicates;    /* cross-identity images at or above same_face, most similar first */
    int num_duplicates;
} kao_curate_result;

/* Judges ds's images from their L2-normalised embeddings emb (num_images × dim, as ds->images). */
void kao_curate_judge(kao_curate_result *r, const kao_dataset *ds, const float *emb, int dim,
                      const kao_curate_thresholds *t);
void kao_curate_result_free(kao_curate_result *r);

/* ---- the embedding cache (curate_cache.c) -------------------------------------------------- */

/* What makes two embeddings of one file equal: the weights file's content (its CRC-32 and size)
 * and the forward options (input size, normalisation, EXIF handling), as one text. */
int kao_curate_cache_key(char *key, size_t size, const char *weights, int height, int width, const float mean[3],
                         const float std[3], bool exif_transpose);

/* What tells that an image file is unchanged: its size and modification time (nanoseconds). */
typedef struct {
    long long size, mtime_ns;
} kao_curate_stamp;
/* The stamps of ds's images now; fails naming an image that cannot be read. */
int kao_curate_stamps(kao_curate_stamp *stamps, const kao_dataset *ds);

/* Fills emb (ds->num_images × dim, raw) with the rows of the cache whose path (relative to the
 * root) and stamp match the image's now, when the cache's key is key; have[i] says which, *cached
 * how many. A missing cache, or one of another key or dimension, fills nothing (OK); a damaged one
 * is an error naming it. */
int kao_curate_cache_load(const char *cache_path, const char *key, const kao_dataset *ds,
                          const kao_curate_stamp *stamps, int dim, float *emb, bool *have, int *cached);
/* Writes the cache (atomically, sealed) for every image of ds. */
int kao_curate_cache_save(const char *cache_path, const char *key, const kao_dataset *ds,
                          const kao_curate_stamp *stamps, int dim, const float *emb);

/* ---- the report (curate_report.c, curate_sheet.c) ----------------------------------------- */

/* The thresholds as printed, each with where it came from. */
typedef struct {
    kao_curate_thresholds values;
    const char *source[5]; /* where each came from: not_me, no_face, same_face, same_person, min_images */
} kao_curate_settings;

/* Writes DIR/images.tsv (path, identity, verdict, similarity, reason), DIR/identities.tsv,
 * DIR/identity_pairs.tsv, DIR/duplicates.tsv and DIR/thresholds.tsv; creates DIR if needed. */
int kao_curate_write_report(const char *dir, const kao_dataset *ds, const kao_curate_result *r,
                            const kao_curate_settings *s);
/* Prints the summary: thresholds, counts per verdict, the too-small identities, the identity
 * pairs and cross-identity duplicates (a few of each). */
void kao_curate_print_summary(FILE *f, const kao_dataset *ds, const kao_curate_result *r,
                              const kao_curate_settings *s);
/* One contact sheet per identity with a flagged image: DIR/sheets/<index>.png, its reference
 * images then its flagged images, each tile framed in its verdict's colour. */
int kao_curate_write_sheets(const char *dir, const kao_dataset *ds, const kao_curate_result *r);

#endif
