/* Integer kernels of the wav2small C bundle (see w2s_kernels.h for the arithmetic). */
#include "w2s_kernels.h"

void w2s_expand(const uint8_t *src, int n, int32_t zero, int16_t *dst) {
    int i;
    for (i = 0; i < n; i++) dst[i] = (int16_t)(src[i] - zero);
}

/* Four sums (2 output channels x 2 positions) over one tap: weight words w (two channels
 * interleaved word by word; each word's bytes stored as w0 w2 w1 w3, so that SXTB16 and
 * SXTB16-ROR8 give the pairs (w0, w1) and (w2, w3) that line up with the int16 input pairs) times
 * the runs at xa and xb, groups x 4 values long. */
typedef struct { int32_t a00, a01, a10, a11; } sums;

#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__)
/* The loop in assembly, 19 instructions per 16 multiply-adds: gcc's code for the C below needs 13
 * registers at once and spills one (23 instructions). */
static inline void dot_2x2(const int8_t *w, const int16_t *xa, const int16_t *xb, int groups, sums *s) {
    const int16_t *end = xa + 4 * groups;
    int32_t a00 = s->a00, a01 = s->a01, a10 = s->a10, a11 = s->a11;
    uint32_t w0, w1, x0, x1, t;
    __asm__ volatile("1:\n\t"
                     "ldrd   %[w0], %[w1], [%[wp]], #8\n\t"
                     "ldr    %[x0], [%[xa]], #4\n\t"
                     "ldr    %[x1], [%[xb]], #4\n\t"
                     "sxtb16 %[t], %[w0]\n\t"
                     "smlad  %[a00], %[x0], %[t], %[a00]\n\t"
                     "smlad  %[a01], %[x1], %[t], %[a01]\n\t"
                     "sxtb16 %[t], %[w1]\n\t"
                     "smlad  %[a10], %[x0], %[t], %[a10]\n\t"
                     "smlad  %[a11], %[x1], %[t], %[a11]\n\t"
                     "ldr    %[x0], [%[xa]], #4\n\t"
                     "ldr    %[x1], [%[xb]], #4\n\t"
                     "sxtb16 %[t], %[w0], ror #8\n\t"
                     "smlad  %[a00], %[x0], %[t], %[a00]\n\t"
                     "smlad  %[a01], %[x1], %[t], %[a01]\n\t"
                     "sxtb16 %[t], %[w1], ror #8\n\t"
                     "smlad  %[a10], %[x0], %[t], %[a10]\n\t"
                     "smlad  %[a11], %[x1], %[t], %[a11]\n\t"
                     "cmp    %[xa], %[end]\n\t"
                     "bne    1b\n\t"
                     : [a00] "+r"(a00), [a01] "+r"(a01), [a10] "+r"(a10), [a11] "+r"(a11), [wp] "+r"(w), [xa] "+r"(xa),
                       [xb] "+r"(xb), [w0] "=&r"(w0), [w1] "=&r"(w1), [x0] "=&r"(x0), [x1] "=&r"(x1), [t] "=&r"(t)
                     : [end] "r"(end)
                     : "cc", "memory");
    s->a00 = a00, s->a01 = a01, s->a10 = a10, s->a11 = a11;
}
#else
static inline void dot_2x2(const int8_t *w, const int16_t *xa, const int16_t *xb, int groups, sums *s) {
    const uint32_t *wp = (const uint32_t *)(const void *)w;
    int g;
    for (g = 0; g < groups; g++, wp += 2, xa += 4, xb += 4) {
        uint32_t lo0 = w2s_sxtb16(wp[0]), lo1 = w2s_sxtb16(wp[1]);
        uint32_t hi0 = w2s_sxtb16_ror8(wp[0]), hi1 = w2s_sxtb16_ror8(wp[1]);
        s->a00 = w2s_smlad(w2s_pair(xa + 2), hi0, w2s_smlad(w2s_pair(xa), lo0, s->a00));
        s->a01 = w2s_smlad(w2s_pair(xb + 2), hi0, w2s_smlad(w2s_pair(xb), lo0, s->a01));
        s->a10 = w2s_smlad(w2s_pair(xa + 2), hi1, w2s_smlad(w2s_pair(xa), lo1, s->a10));
        s->a11 = w2s_smlad(w2s_pair(xb + 2), hi1, w2s_smlad(w2s_pair(xb), lo1, s->a11));
    }
}
#endif

/* QLinearConv's output stage without float compares: round(acc * scale) by the 1.5 * 2^23 trick
 * with the zero point folded into the constant, then saturate to 0 .. 255 (USAT). Saturating after
 * rounding equals onnxruntime's clamp-then-round because the bounds are integers; the trick is exact
 * while |acc * scale| < 2^22, which the generator checks for every layer. */
static inline uint32_t output_stage(int32_t acc, float scale, int32_t offset) {
    union { float f; int32_t i; } u;
    int32_t q;
    u.f = (float)acc * scale + 12582912.0f;
    q = u.i - offset;
#if defined(__ARM_FEATURE_SAT) && defined(__GNUC__)
    __asm__("usat %0, #8, %1" : "=r"(q) : "r"(q));
    return (uint32_t)q;
#else
    return (uint32_t)(q < 0 ? 0 : q > 255 ? 255 : q);
#endif
}

void w2s_conv_row(const w2s_conv *conv, const int16_t *const rows[3], int width, int16_t *out, uint8_t *out_q) {
    const int c_in = conv->c_in, c_out = conv->c_out, taps = conv->taps, run = conv->run;
    const int groups = run / 4, block = 2 * taps * run;
    const int first = taps == 3 ? 0 : 1; /* expanded position of the first tap of output 0 */
    const int32_t offset = 0x4B400000 - conv->y_zero, next_zero = conv->next_zero;
    const uint8_t *lut = conv->lut;
    int m, oc, dt;
    for (m = 0; m < width; m += 2) {
        /* an odd last position is computed as a pair with itself (written twice, same value) */
        const int mb = m + 1 < width ? m + 1 : m;
        for (oc = 0; oc < c_out; oc += 2) {
            /* an odd last channel has a partner with zero weights whose results are dropped */
            const int8_t *w = conv->weight + (oc / 2) * block;
            const int two = oc + 1 < c_out;
            uint32_t q00, q01, q10 = 0, q11 = 0;
            sums sum;
            sum.a00 = sum.a01 = conv->bias[oc];
            sum.a10 = sum.a11 = conv->bias[oc + 1];
            for (dt = 0; dt < taps; dt++) {
                const int16_t *row = rows[dt];
                if (row) /* a null row is zero padding: it contributes nothing */
                    dot_2x2(w + dt * 2 * run, row + (m + first) * c_in, row + (mb + first) * c_in, groups, &sum);
            }
            q00 = output_stage(sum.a00, conv->scale[oc], offset);
            q01 = output_stage(sum.a01, conv->scale[oc], offset);
            if (two) {
                q10 = output_stage(sum.a10, conv->scale[oc + 1], offset);
                q11 = output_stage(sum.a11, conv->scale[oc + 1], offset);
            }
            if (lut) q00 = lut[q00], q01 = lut[q01], q10 = lut[q10], q11 = lut[q11];
            if (out) {
                int16_t *pa = out + (m + 1) * c_out + oc, *pb = out + (mb + 1) * c_out + oc;
                pa[0] = (int16_t)(q00 - next_zero);
                pb[0] = (int16_t)(q01 - next_zero);
                if (two) pa[1] = (int16_t)(q10 - next_zero), pb[1] = (int16_t)(q11 - next_zero);
            }
            if (out_q) {
                uint8_t *pa = out_q + m * c_out + oc, *pb = out_q + mb * c_out + oc;
                pa[0] = (uint8_t)q00;
                pb[0] = (uint8_t)q01;
                if (two) pa[1] = (uint8_t)q10, pb[1] = (uint8_t)q11;
            }
        }
    }
    if (out) { /* zero padding positions of the expanded output row */
        for (oc = 0; oc < c_out; oc++) out[oc] = out[(width + 1) * c_out + oc] = 0;
    }
}

void w2s_maxpool_row(const int16_t *const rows[3], int width, int channels, int32_t zero, const uint8_t *lut,
                     int32_t next_zero, int16_t *out) {
    const int width_out = (width + 1) / 2;
    int u, c, dt, dm;
    for (u = 0; u < width_out; u++) {
        for (c = 0; c < channels; c++) {
            int32_t best = -32768, q;
            for (dt = 0; dt < 3; dt++) {
                if (!rows[dt]) continue;
                for (dm = -1; dm <= 1; dm++) {
                    const int m = 2 * u + dm;
                    if (m >= 0 && m < width) {
                        const int32_t v = rows[dt][(m + 1) * channels + c];
                        if (v > best) best = v;
                    }
                }
            }
            q = best + zero;
            if (lut) q = lut[q];
            out[(u + 1) * channels + c] = (int16_t)(q - next_zero);
        }
    }
    for (c = 0; c < channels; c++) out[c] = out[(width_out + 1) * channels + c] = 0;
}
