/* profile.h — where the time of a forward/backward pass goes, by kind of op.
 * Off unless a kao_profile is attached to the activations (kao_acts.profile); then every op call
 * of the network is timed with the monotonic clock. */
#ifndef KAO_PROFILE_H
#define KAO_PROFILE_H

#include <stdio.h>

typedef enum {
    KAO_PROF_CONV_KXK,   /* stem and FusedMBConv/ConvBnAct k×k convolutions */
    KAO_PROF_CONV_1X1,   /* pointwise convolutions (expansion, projection, head) */
    KAO_PROF_DWCONV,     /* depthwise convolutions */
    KAO_PROF_BN,         /* BatchNorm (+ fused SiLU) */
    KAO_PROF_SE,         /* squeeze-excite */
    KAO_PROF_RESIDUAL,   /* skip additions, drop path */
    KAO_PROF_HEAD,       /* pooling and the embedding Linear */
    KAO_PROF_COUNT
} kao_prof_op;

typedef enum { KAO_PROF_FORWARD = 0, KAO_PROF_BACKWARD = 1 } kao_prof_pass;

typedef struct {
    double seconds[2][KAO_PROF_COUNT];
    long calls[2][KAO_PROF_COUNT];
} kao_profile;

const char *kao_prof_op_name(kao_prof_op op);
/* A table of seconds per op and pass, with shares of the total, divided by `runs`. */
void kao_profile_print(FILE *out, const kao_profile *p, int runs);

/* Times `call` into profile (which may be NULL: then it only runs the call). */
#define KAO_TIMED(profile, pass, op, call)                                                        \
    do {                                                                                          \
        double kao_t0_ = (profile) ? kao_now_seconds() : 0;                                       \
        call;                                                                                     \
        if (profile) {                                                                            \
            (profile)->seconds[pass][op] += kao_now_seconds() - kao_t0_;                          \
            (profile)->calls[pass][op]++;                                                         \
        }                                                                                         \
    } while (0)

#endif
