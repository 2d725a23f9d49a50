/* device_memory.h — the emulator's device memory: each cudaMalloc block on pages of its own that
 * the host cannot touch except while queued device work runs, as a GPU's memory is out of the
 * host's reach: host code that reads or writes device memory faults at once (SIGSEGV) instead of
 * working here and failing on a GPU. A block ends within 256 bytes of an unmapped guard page
 * (cudaMalloc's 256-byte alignment kept), so a kernel running past its end faults too; the bytes
 * around it hold NaNs. New blocks are NaN-filled (float and bf16), as memory nothing wrote. */
#ifndef KAO_CUDA_EMU_DEVICE_MEMORY_H
#define KAO_CUDA_EMU_DEVICE_MEMORY_H

#include <stddef.h>

namespace kao_emu {

/* A block of size bytes (256-aligned), or NULL when the emulated card's memory is used up. */
void *device_alloc(size_t size);
/* Frees a block device_alloc returned; false for any other pointer. */
bool device_free(void *p);
/* Bytes allocated and the card's total. */
void device_usage(size_t *used, size_t *total);
/* Opens every block to the host thread running device work, or closes them again. */
void device_access(bool open);

} // namespace kao_emu

#endif
