/* h5sandbox.h — opening an HDF5 file through a child process
 * (src/h5sandbox.c says why and how). Internal to h5io.c. */
#ifndef KAO_H5SANDBOX_H
#define KAO_H5SANDBOX_H

#include <stdint.h>

/* An HDF5 id (hid_t) of a read-only in-memory copy of the file at path, made by libhdf5 in a
 * child process; KAO_ERR naming path when the child fails, crashes or hangs. *image is the
 * copy's memory: give it to kao_h5_sandbox_release once the id is closed. */
int kao_h5_sandbox_open(const char *path, int64_t *id, void **image);
void kao_h5_sandbox_release(void *image);

#endif
