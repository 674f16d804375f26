/* See w2s_math.h. Both reduce the argument with ln 2 split in two parts (the high part has 16
 * significant bits, so k * LN2_HI is exact for |k| < 256) and evaluate a short series. */
#include <stdint.h>

#include "w2s_math.h"

#define LN2_HI 0.693145751953125f      /* 0x3f317200 */
#define LN2_LO 1.428606765330187e-06f  /* ln 2 - LN2_HI */

typedef union { float f; uint32_t u; } bits;

float w2s_log(float x) {
    /* x = 2^e m with m in [sqrt(1/2), sqrt(2)); log(m) = log(1 + f) = 2 atanh(s), s = f / (2 + f),
     * written as f - (f^2/2 - s (f^2/2 + R)) with R = sum_k 2 s^(2k) / (2k + 1), k = 1 .. 5
     * (|s| <= 0.172: the first dropped term is below 1e-10). */
    bits v;
    int32_t e;
    float f, s, z, r, half_f2;
    v.f = x;
    e = (int32_t)(v.u >> 23) - 127;
    v.u = (v.u & 0x007FFFFFu) | 0x3F800000u; /* m in [1, 2) */
    if (v.f > 1.41421356f) {
        v.f *= 0.5f;
        e += 1;
    }
    f = v.f - 1.0f;
    s = f / (2.0f + f);
    z = s * s;
    r = z * (0.66666667f + z * (0.4f + z * (0.28571429f + z * (0.22222222f + z * 0.18181818f))));
    half_f2 = 0.5f * f * f;
    return (float)e * LN2_HI + (f - (half_f2 - (s * (half_f2 + r) + (float)e * LN2_LO)));
}

float w2s_exp(float x) {
    /* e^x = 2^k e^r, k = round(x / ln 2), |r| <= ln 2 / 2; e^r by its Taylor series to r^7
     * (the first dropped term is below 6e-9 relative). */
    bits scale, magic;
    int32_t k;
    float kf, r, p;
    if (x < -87.33654f) return 0.0f;
    if (x > 88.72283f) {
        scale.u = 0x7F800000u;
        return scale.f;
    }
    magic.f = x * 1.44269504f + 12582912.0f; /* round to nearest even, as in w2s_round_even */
    k = (int32_t)magic.u - 0x4B400000;
    kf = (float)k;
    r = (x - kf * LN2_HI) - kf * LN2_LO;
    p = 1.0f + r * (1.0f + r * (0.5f + r * (1.6666667e-1f + r * (4.1666668e-2f + r * (8.3333338e-3f +
        r * (1.3888889e-3f + r * 1.9841270e-4f))))));
    if (k < -126) { /* e^x in [2^-126.5, 2^-126): scale in two steps, the result is subnormal */
        scale.u = 0x00800000u; /* 2^-126 */
        return p * scale.f * 0.5f;
    }
    scale.u = (uint32_t)(k + 127) << 23;
    return p * scale.f;
}
