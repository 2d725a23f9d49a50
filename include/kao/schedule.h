/* schedule.h — learning-rate schedules as a factor of each group's base learning rate.
 *
 * t is the number of optimizer steps taken before this one (0 for the first update), as torch's
 * schedulers count when scheduler.step() follows every optimizer.step(). kao_optim_step() gets
 * the factor; group lr = base lr × factor.
 *
 *   constant: 1
 *   step:     gamma^floor(t / step_size)                                  (torch StepLR)
 *   cosine:   t < W:       s + (1 − s)·t/W                                 (torch LinearLR)
 *             W <= t < T:  f + (1 − f)·(1 + cos(π·(t − W)/(T − W)))/2     (CosineAnnealingLR)
 *             t >= T:      f
 *   with W = warmup_steps (0: no warmup), s = warmup_start_factor, T = total_steps,
 *   f = min_factor (torch's eta_min = f × base lr). Unlike CosineAnnealingLR, which rises again
 *   after T, the factor stays at f. torch's SequentialLR([LinearLR(s, 1, W),
 *   CosineAnnealingLR(T − W, eta_min)], milestones=[W]) gives the same numbers up to T
 *   (tests/test_optim.c).
 */
#ifndef KAO_SCHEDULE_H
#define KAO_SCHEDULE_H

#include <stdint.h>

typedef enum { KAO_SCHEDULE_CONSTANT = 0, KAO_SCHEDULE_STEP = 1, KAO_SCHEDULE_COSINE = 2 } kao_schedule_type;

typedef struct {
    kao_schedule_type type;
    int64_t step_size;          /* step: steps between decays (> 0) */
    double gamma;               /* step: decay factor (> 0) */
    int64_t warmup_steps;       /* cosine: W >= 0 */
    double warmup_start_factor; /* cosine: s in (0, 1] */
    int64_t total_steps;        /* cosine: T > W */
    double min_factor;          /* cosine: f in [0, 1] */
} kao_schedule;

/* "constant" | "step" | "cosine"; anything else fails naming it. */
int kao_schedule_type_parse(kao_schedule_type *out, const char *name);
/* Fails with a message naming the field and value when it is outside the ranges above. */
int kao_schedule_check(const kao_schedule *s);
double kao_schedule_factor(const kao_schedule *s, int64_t t);

#endif
