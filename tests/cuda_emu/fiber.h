/* fiber.h — the stack switching under the emulator's CUDA threads: a fiber runs a function on a
 * stack of its own until it yields back to the scheduler (at a barrier) or its function returns.
 * A switch is a few register moves (x86-64 assembly) — no system call, unlike swapcontext, whose
 * signal-mask calls and AddressSanitizer's stack clearing on each call made barrier kernels
 * the emulator's main cost. AddressSanitizer is told of every switch (its fiber API). */
#ifndef KAO_CUDA_EMU_FIBER_H
#define KAO_CUDA_EMU_FIBER_H

#include <stddef.h>

namespace kao_emu {

struct fiber {
    void *stack;       /* FIBER_STACK_BYTES above a guard page, mapped once and reused */
    void (*entry)();   /* what it runs */
    void *saved_sp;    /* where the fiber's registers were saved when it last yielded */
    void *asan_fake_stack;
    bool finished;
};

/* Makes f ready to run entry() from the top of its stack (mapping the stack the first time). */
void fiber_prepare(fiber *f, void (*entry)());
/* From the scheduler: runs f until it yields or its entry returns (then f->finished). */
void fiber_resume(fiber *f);
/* From inside f: back to the scheduler; returns when the scheduler resumes f. */
void fiber_yield(fiber *f);

} // namespace kao_emu

#endif
