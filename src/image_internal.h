/* image_internal.h — what the image decoders (image_png.c, image_jpeg.c, image_exif.c) share with
 * the decode seam in image.c. Rules and comparisons with PIL: include/kao/image.h. */
#ifndef KAO_IMAGE_INTERNAL_H
#define KAO_IMAGE_INTERNAL_H

#include "kao/image.h"

/* Each decodes a whole file held in memory (data, size >= 1, starting with its format's
 * signature or a prefix of it) into img; on failure img stays empty and the message names name. */
int kao_image_decode_png(kao_image *img, const uint8_t *data, size_t size, const char *name,
                         const kao_image_options *opt);
int kao_image_decode_jpeg(kao_image *img, const uint8_t *data, size_t size, const char *name,
                          const kao_image_options *opt);

/* Fails, naming the file and its format, when a header's width x height is over the limits. */
int kao_image_check_size(const char *name, const char *format, uint64_t width, uint64_t height,
                         const kao_image_options *opt);

/* The EXIF orientation (1-8) PIL's ImageOps.exif_transpose would act on in a JPEG's markers, or 1
 * when there is none it would use. */
int kao_jpeg_orientation(const uint8_t *data, size_t size);
/* Turns img upright for an EXIF orientation, as PIL's Image.transpose with exif_transpose's
 * method does (2-8; 1 and anything else leave it as it is). */
void kao_image_apply_orientation(kao_image *img, int orientation);

#endif
