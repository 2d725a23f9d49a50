/* fiber.cpp — fibers on x86-64 (fiber.h). */
#include "fiber.h"

#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#include "emu_runtime.h"

#if !defined(__x86_64__)
#error "the CUDA emulator's fibers switch stacks in x86-64 assembly"
#endif

/* switch_stacks(save, to): pushes the System V callee-saved registers, stores the stack pointer in
 * *save, loads `to` and pops the registers saved there: returns on the other stack. */
extern "C" void kao_emu_switch_stacks(void **save, void *to);
asm(".text\n"
    ".globl kao_emu_switch_stacks\n"
    ".type kao_emu_switch_stacks, @function\n"
    "kao_emu_switch_stacks:\n"
    "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
    "  movq %rsp, (%rdi)\n"
    "  movq %rsi, %rsp\n"
    "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
    "  ret\n"
    ".size kao_emu_switch_stacks, .-kao_emu_switch_stacks\n");

namespace kao_emu {

static const size_t FIBER_STACK_BYTES = (size_t)64 << 10;

static void *scheduler_sp;                /* the scheduler's saved stack pointer */
static const void *scheduler_stack_bottom; /* its stack, for AddressSanitizer */
static size_t scheduler_stack_size;
static fiber *running;                    /* the fiber now running */

/* AddressSanitizer's fiber API around each switch; no-ops otherwise. */
static void before_switch(void **fake_stack, const void *bottom, size_t size) {
#if defined(__SANITIZE_ADDRESS__)
    __sanitizer_start_switch_fiber(fake_stack, bottom, size);
#else
    (void)fake_stack, (void)bottom, (void)size;
#endif
}
static void after_switch(void *fake_stack, const void **old_bottom, size_t *old_size) {
#if defined(__SANITIZE_ADDRESS__)
    __sanitizer_finish_switch_fiber(fake_stack, old_bottom, old_size);
#else
    (void)fake_stack, (void)old_bottom, (void)old_size;
#endif
}

/* Where a prepared fiber starts: its entry, then the last switch (this stack is never resumed). */
static void fiber_start() {
    after_switch(nullptr, &scheduler_stack_bottom, &scheduler_stack_size);
    fiber *f = running;
    f->entry();
    f->finished = true;
#if defined(__SANITIZE_ADDRESS__)
    __asan_handle_no_return(); /* this frame never returns: clear its poison for the stack's next fiber */
#endif
    before_switch(nullptr, scheduler_stack_bottom, scheduler_stack_size);
    void *unused;
    kao_emu_switch_stacks(&unused, scheduler_sp);
    __builtin_unreachable();
}

void fiber_prepare(fiber *f, void (*entry)()) {
    if (!f->stack) { /* below the stack, a page nothing may touch: an overflow faults */
        size_t page = (size_t)sysconf(_SC_PAGESIZE);
        char *map = (char *)mmap(nullptr, FIBER_STACK_BYTES + page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (map == MAP_FAILED || mprotect(map + page, FIBER_STACK_BYTES, PROT_READ | PROT_WRITE) != 0)
            fail("no memory for a fiber stack");
        f->stack = map + page;
    }
    /* From the top: a zero return address for fiber_start (entered as if called: the stack
     * pointer is 8 mod 16), fiber_start's address for the switch's ret, six zero registers. */
    uintptr_t *top = (uintptr_t *)((char *)f->stack + FIBER_STACK_BYTES);
    uintptr_t *sp = top - 8;
    memset(sp, 0, 8 * sizeof *sp);
    sp[6] = (uintptr_t)fiber_start;
    f->saved_sp = sp;
    f->finished = false;
    f->entry = entry;
}

void fiber_resume(fiber *f) {
    running = f;
    void *fake_stack = nullptr;
    before_switch(&fake_stack, f->stack, FIBER_STACK_BYTES);
    kao_emu_switch_stacks(&scheduler_sp, f->saved_sp);
    after_switch(fake_stack, nullptr, nullptr);
    running = nullptr;
}

void fiber_yield(fiber *f) {
    before_switch(&f->asan_fake_stack, scheduler_stack_bottom, scheduler_stack_size);
    kao_emu_switch_stacks(&f->saved_sp, scheduler_sp);
    after_switch(f->asan_fake_stack, &scheduler_stack_bottom, &scheduler_stack_size);
}

} // namespace kao_emu
