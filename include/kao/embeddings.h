/* embeddings.h — computing embeddings of image files and writing them out.
 *
 * Output formats (chosen by the caller, usually from the file extension):
 *  - HDF5: dataset "embeddings" (N, E) float32, dataset "paths" (N) UTF-8 strings, root attributes
 *    architecture, input_height, input_width, normalized = 0 (embeddings are raw, not L2-normalised).
 *  - .npy: the (N, E) float32 matrix in NumPy's format; the paths go to "<file>.paths.txt", one per line.
 *  - .csv: a header "path,e0,...,e{E-1}" and one row per image (paths quoted when they hold a comma
 *    or quote).
 * Every file is written atomically: an error leaves no partial output.
 */
#ifndef KAO_EMBEDDINGS_H
#define KAO_EMBEDDINGS_H

#include "kao/backend.h"
#include "kao/model.h"

typedef enum { KAO_EMB_HDF5, KAO_EMB_NPY, KAO_EMB_CSV } kao_embedding_format;

/* .npy → NPY, .csv → CSV, anything else → HDF5. */
kao_embedding_format kao_embedding_format_for(const char *path);

/* Lists the PNG files among inputs: files as given, folders searched recursively with their
 * entries in byte order (following symbolic links). Fails on a missing input, on a file that is
 * not *.png, on a folder that links back to one of its ancestors, or when no image is found. Free with kao_free_paths. */
int kao_collect_images(char ***paths, int *count, char *const *inputs, int num_inputs);
void kao_free_paths(char **paths, int count);

/* Embeds every image (decoded, resized to height×width if needed, normalised as kao_load_input)
 * with m in eval mode on backend be, batch images at a time. On the CPU each batch is decoded by
 * all the threads and then run; on a device with memory of its own (a GPU) worker threads decode
 * the next batches while the device runs this one. out: (count, E) host. progress: print
 * a line per batch to stderr when true. A bad image stops with an error naming it. */
int kao_embed_images(float *out, const kao_model *m, kao_backend *be, char *const *paths, int count, int height,
                     int width, int batch, bool progress);

int kao_embeddings_save(const char *path, kao_embedding_format format, const float *emb, int count,
                        int dim, char *const *paths, const kao_model *m, int height, int width);

#endif
