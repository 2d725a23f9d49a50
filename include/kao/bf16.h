/* bf16.h — bfloat16 values on the host: the upper 16 bits of an IEEE-754 float (sign, 8-bit
 * exponent, 7 stored mantissa bits). Rounding to bf16 is to nearest, ties to even, as CUDA's
 * __float2bfloat16_rn: values past the largest bf16 become ±inf, NaN stays NaN (made quiet). */
#ifndef KAO_BF16_H
#define KAO_BF16_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint16_t kao_bf16_from_float(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* NaN: keep it one */
    u += 0x7fffu + ((u >> 16) & 1u); /* round half to even on the 16 bits dropped */
    return (uint16_t)(u >> 16);
}

static inline float kao_bf16_to_float(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline void kao_bf16_from_floats(uint16_t *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = kao_bf16_from_float(src[i]);
}

static inline void kao_bf16_to_floats(float *dst, const uint16_t *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = kao_bf16_to_float(src[i]);
}

/* x rounded to bf16 and back, in place: the value a bf16 store keeps. */
static inline void kao_bf16_round_floats(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = kao_bf16_to_float(kao_bf16_from_float(x[i]));
}

#endif
