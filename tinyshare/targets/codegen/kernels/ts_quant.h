/* Integer requantization shared by the tinyshare kernels.
 *
 * ts_requant(x, m, s) returns round(x * m * 2^(s - 31)) the way TFLite Micro's
 * MultiplyByQuantizedMultiplier does: m is a Q31 multiplier in [2^30, 2^31), s a
 * power-of-two exponent (negative: a right shift). TS_SINGLE_ROUNDING (set by the
 * generator in ts_config.h) selects the arithmetic:
 *   0: gemmlowp double rounding: a saturating rounding doubling high multiply, then a
 *      rounding right shift. The tflite-micro Python package (our TFLM reference) is
 *      built this way (measured: bit-exact on every test model; single rounding is not).
 *   1: TFLITE_SINGLE_ROUNDING builds: one round-half-up from the 64-bit product.
 *
 * Assumes >> on a negative signed integer shifts arithmetically, as every compiler we
 * target (gcc, clang, armclang) does.
 */
#ifndef TS_QUANT_H
#define TS_QUANT_H

#include <stdint.h>

#include "ts_config.h"

#ifndef TS_SINGLE_ROUNDING
#define TS_SINGLE_ROUNDING 0
#endif

#if TS_SINGLE_ROUNDING

static inline int32_t ts_requant(int32_t x, int32_t mult, int shift)
{
    const int total_shift = 31 - shift; /* in [1, 62] for shift in [-31, 30] */
    const int64_t round = (int64_t)1 << (total_shift - 1);
    return (int32_t)(((int64_t)x * mult + round) >> total_shift);
}

#else /* gemmlowp double rounding */

static inline int32_t ts_doubling_high_mul(int32_t a, int32_t b)
{
    const int64_t ab = (int64_t)a * b;
    const int64_t nudge = ab >= 0 ? ((int64_t)1 << 30) : 1 - ((int64_t)1 << 30);
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

static inline int32_t ts_rounding_shift_right(int32_t x, int exponent)
{
    const int32_t mask = (int32_t)((((int64_t)1) << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

static inline int32_t ts_requant(int32_t x, int32_t mult, int shift)
{
    const int left = shift > 0 ? shift : 0;
    const int right = shift > 0 ? 0 : -shift;
    const int32_t shifted = (int32_t)((uint32_t)x << left);
    return ts_rounding_shift_right(ts_doubling_high_mul(shifted, mult), right);
}

#endif

static inline int32_t ts_clamp(int32_t x, int32_t lo, int32_t hi)
{
    return x < lo ? lo : (x > hi ? hi : x);
}

#endif /* TS_QUANT_H */
