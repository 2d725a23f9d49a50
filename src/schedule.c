/* schedule.c — learning-rate factors (schedule.h has the formulas). */
#include "kao/schedule.h"

#include <math.h>
#include <string.h>

#include "kao/util.h"

int kao_schedule_type_parse(kao_schedule_type *out, const char *name) {
    if (strcmp(name, "constant") == 0) {
        *out = KAO_SCHEDULE_CONSTANT;
    } else if (strcmp(name, "step") == 0) {
        *out = KAO_SCHEDULE_STEP;
    } else if (strcmp(name, "cosine") == 0) {
        *out = KAO_SCHEDULE_COSINE;
    } else {
        return kao_fail("schedule \"%s\": expected \"constant\", \"step\" or \"cosine\"", name);
    }
    return KAO_OK;
}

int kao_schedule_check(const kao_schedule *s) {
    switch (s->type) {
    case KAO_SCHEDULE_CONSTANT:
        return KAO_OK;
    case KAO_SCHEDULE_STEP:
        if (s->step_size <= 0) return kao_fail("step schedule: step_size %lld must be > 0", (long long)s->step_size);
        if (!(s->gamma > 0)) return kao_fail("step schedule: gamma %g must be > 0", s->gamma);
        return KAO_OK;
    case KAO_SCHEDULE_COSINE:
        if (s->warmup_steps < 0)
            return kao_fail("cosine schedule: warmup_steps %lld is negative", (long long)s->warmup_steps);
        if (!(s->warmup_start_factor > 0 && s->warmup_start_factor <= 1))
            return kao_fail("cosine schedule: warmup_start_factor %g outside (0, 1]", s->warmup_start_factor);
        if (s->total_steps <= s->warmup_steps)
            return kao_fail("cosine schedule: total_steps %lld must exceed warmup_steps %lld",
                            (long long)s->total_steps, (long long)s->warmup_steps);
        if (!(s->min_factor >= 0 && s->min_factor <= 1))
            return kao_fail("cosine schedule: min_factor %g outside [0, 1]", s->min_factor);
        return KAO_OK;
    }
    return kao_fail("schedule: unknown type %d", (int)s->type);
}

double kao_schedule_factor(const kao_schedule *s, int64_t t) {
    KAO_ASSERT(t >= 0, "step %lld", (long long)t);
    switch (s->type) {
    case KAO_SCHEDULE_CONSTANT:
        return 1.0;
    case KAO_SCHEDULE_STEP:
        return pow(s->gamma, (double)(t / s->step_size));
    case KAO_SCHEDULE_COSINE: {
        const int64_t W = s->warmup_steps, T = s->total_steps;
        const double f = s->min_factor;
        if (t < W) return s->warmup_start_factor + (1.0 - s->warmup_start_factor) * (double)t / (double)W;
        if (t >= T) return f;
        return f + (1.0 - f) * 0.5 * (1.0 + cos(M_PI * (double)(t - W) / (double)(T - W)));
    }
    }
    KAO_ASSERT(0, "schedule type %d", (int)s->type);
    return 0;
}
