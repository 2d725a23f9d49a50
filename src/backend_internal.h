/* backend_internal.h — what the CPU backend's files share. */
#ifndef KAO_BACKEND_INTERNAL_H
#define KAO_BACKEND_INTERNAL_H

#include "kao/backend.h"

/* Puts the bf16 emulation's map ops (backend_bf16.c) into be, a detached CPU backend, and sets
 * map_bytes to 2; set_precision(fp32) puts the float ones back. */
void kao_backend_bf16_install(kao_backend *be);

#endif
