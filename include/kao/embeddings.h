/* embeddings.h — computing embeddings of image files and writing them out.
 *
 * Output formats (chosen by the caller, usually from the file extension):
 *  - HDF5: dataset "embeddings" (N, E) float32, dataset "paths" (N) UTF-8 strings, root attributes
 *    architecture, input_height, input_width, normalized = 0 (embeddings are raw, not L2-normalised).
 *  - .npy: the (N, E) float32 matrix in NumPy's format; the paths go to "<file>.paths.txt", one per
 *    line (so a path with a line break is refused: kao_embeddings_check_paths).
 *  - .csv: a header "path,e0,...,e{E-1}" and one row per image (paths quoted when they hold a comma
 *    or quote).
 * Every file is written atomically: an error leaves no partial output.
 */
#ifndef KAO_EMBEDDINGS_H
#define KAO_EMBEDDINGS_H

#include "kao/backend.h"
#include "kao/image.h"
#include "kao/model.h"

typedef enum { KAO_EMB_HDF5, KAO_EMB_NPY, KAO_EMB_CSV } kao_embedding_format;

/* The format of an output file by its extension, in any letter case: .h5 or .hdf5 → HDF5, .npy,
 * .csv; any other fails naming the accepted ones. */
int kao_embedding_format_for(const char *path, kao_embedding_format *format);
/* Fails, naming the path, when one of paths cannot be written in format (a line break in a .npy's
 * path list). */
int kao_embeddings_check_paths(const char *out, kao_embedding_format format, char *const *paths, int count);

/* Lists the image files among inputs: files as given, folders searched recursively with their
 * entries in byte order for names kao_is_image_name takes (*.png, *.jpg, *.jpeg). Symbolic links
 * inside a folder are followed where they stay inside it; one that leads out of it is an error
 * unless follow_symlinks. Fails on a missing input, on a file whose name is none of those, on a
 * folder that links back to one of its ancestors, or when no image is found ("no PNG or JPEG
 * images found in ..."). Free with kao_free_paths. */
int kao_collect_images(char ***paths, int *count, char *const *inputs, int num_inputs, bool follow_symlinks);
void kao_free_paths(char **paths, int count);

/* Embeds every image (decoded with image's options, resized to height×width if needed, normalised
 * with norm as kao_load_input)
 * with m in eval mode on backend be, batch images at a time. On the CPU each batch is decoded by
 * all the threads and then run; on a device with memory of its own (a GPU) worker threads decode
 * the next batches while the device runs this one. out: (count, E) host. progress: print
 * a line per batch to stderr when true. A bad image stops with an error naming it. */
int kao_embed_images(float *out, const kao_model *m, kao_backend *be, char *const *paths, int count, int height,
                     int width, const kao_input_norm *norm, const kao_image_options *image, int batch,
                     bool progress);

int kao_embeddings_save(const char *path, kao_embedding_format format, const float *emb, int count,
                        int dim, char *const *paths, const kao_model *m, int height, int width);

#endif
