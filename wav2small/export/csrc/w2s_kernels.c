/* Integer kernels of the wav2small C bundle (see w2s_kernels.h for the arithmetic). */
#include "w2s_kernels.h"

void w2s_expand(const uint8_t *src, int n, int32_t zero, int16_t *dst) {
    int i;
    for (i = 0; i < n; i++) dst[i] = (int16_t)(src[i] - zero);
}

/* Four sums (2 output channels x 2 positions) over the taps of a convolution: weight words w (two
 * channels interleaved word by word; each word's bytes stored as w0 w2 w1 w3, so that SXTB16 and
 * SXTB16-ROR8 give the pairs (w0, w1) and (w2, w3) that line up with the int16 input pairs) times
 * runs of run values starting at xa and xb in row 0, then at the same places of rows 1 and 2 (3 taps):
 * jump[0], jump[1] are the distances from the end of a run to the start of the next one. */
typedef struct { int32_t a00, a01, a10, a11; } sums;

#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__)
/* In assembly: the 16 multiply-adds of a group take 19 instructions with all 13 registers busy
 * (gcc's code for the C version spills one, 23 instructions), and the three taps run in one block
 * (the C loop around separate blocks cost about 20 instructions per tap). */
#define W2S_GROUP                                                                                                      \
    "ldrd   %[w0], %[w1], [%[wp]], #8\n\t"                                                                            \
    "ldr    %[x0], [%[xa]], #4\n\t"                                                                                   \
    "ldr    %[x1], [%[xb]], #4\n\t"                                                                                   \
    "sxtb16 %[t], %[w0]\n\t"                                                                                          \
    "smlad  %[a00], %[x0], %[t], %[a00]\n\t"                                                                          \
    "smlad  %[a01], %[x1], %[t], %[a01]\n\t"                                                                          \
    "sxtb16 %[t], %[w1]\n\t"                                                                                          \
    "smlad  %[a10], %[x0], %[t], %[a10]\n\t"                                                                          \
    "smlad  %[a11], %[x1], %[t], %[a11]\n\t"                                                                          \
    "ldr    %[x0], [%[xa]], #4\n\t"                                                                                   \
    "ldr    %[x1], [%[xb]], #4\n\t"                                                                                   \
    "sxtb16 %[t], %[w0], ror #8\n\t"                                                                                  \
    "smlad  %[a00], %[x0], %[t], %[a00]\n\t"                                                                          \
    "smlad  %[a01], %[x1], %[t], %[a01]\n\t"                                                                          \
    "sxtb16 %[t], %[w1], ror #8\n\t"                                                                                  \
    "smlad  %[a10], %[x0], %[t], %[a10]\n\t"                                                                          \
    "smlad  %[a11], %[x1], %[t], %[a11]\n\t"
/* the same for one output channel (an odd last one): 11 instructions per 8 multiply-adds */
#define W2S_GROUP_1                                                                                                    \
    "ldr    %[w0], [%[wp]], #4\n\t"                                                                                   \
    "ldr    %[x0], [%[xa]], #4\n\t"                                                                                   \
    "ldr    %[x1], [%[xb]], #4\n\t"                                                                                   \
    "sxtb16 %[t], %[w0]\n\t"                                                                                          \
    "smlad  %[a00], %[x0], %[t], %[a00]\n\t"                                                                          \
    "smlad  %[a01], %[x1], %[t], %[a01]\n\t"                                                                          \
    "ldr    %[x0], [%[xa]], #4\n\t"                                                                                   \
    "ldr    %[x1], [%[xb]], #4\n\t"                                                                                   \
    "sxtb16 %[t], %[w0], ror #8\n\t"                                                                                  \
    "smlad  %[a00], %[x0], %[t], %[a00]\n\t"                                                                          \
    "smlad  %[a01], %[x1], %[t], %[a01]\n\t"
/* a tap's groups, two per loop iteration when run is a multiple of 8 */
#define W2S_GROUPS(label) label ":\n\t" W2S_GROUP "cmp %[xa], %[end]\n\t" "bne " label "b\n\t"
#define W2S_GROUPS2(label) label ":\n\t" W2S_GROUP W2S_GROUP "cmp %[xa], %[end]\n\t" "bne " label "b\n\t"
#define W2S_GROUPS_1(label) label ":\n\t" W2S_GROUP_1 "cmp %[xa], %[end]\n\t" "bne " label "b\n\t"
/* to the next tap: xa, xb and end move on to the next row */
#define W2S_NEXT_TAP(jump)                                                                                              \
    "ldr    %[t], %[" jump "]\n\t"                                                                                    \
    "add    %[xa], %[xa], %[t]\n\t"                                                                                   \
    "add    %[xb], %[xb], %[t]\n\t"                                                                                   \
    "ldr    %[t], %[runb]\n\t"                                                                                        \
    "add    %[end], %[xa], %[t]\n\t"

static inline void dot_2x2(const int8_t *w, const int16_t *xa, const int16_t *xb, int taps, int run, const int32_t jump[2],
                           sums *s) {
    int32_t a00 = s->a00, a01 = s->a01, a10 = s->a10, a11 = s->a11;
    int32_t geometry[3];
    const int16_t *end = xa + run;
    uint32_t w0, w1, x0, x1, t;
    geometry[0] = 2 * run; /* in bytes */
    geometry[1] = 2 * jump[0];
    geometry[2] = 2 * jump[1];
#define W2S_OPERANDS                                                                                                   \
    : [a00] "+r"(a00), [a01] "+r"(a01), [a10] "+r"(a10), [a11] "+r"(a11), [wp] "+r"(w), [xa] "+r"(xa), [xb] "+r"(xb),    \
      [end] "+r"(end), [w0] "=&r"(w0), [w1] "=&r"(w1), [x0] "=&r"(x0), [x1] "=&r"(x1), [t] "=&r"(t)                       \
    : [runb] "m"(geometry[0]), [jump1] "m"(geometry[1]), [jump2] "m"(geometry[2])                                        \
    : "cc", "memory"
    if (taps == 3 && run % 8 == 0)
        __asm__ volatile(W2S_GROUPS2("1") W2S_NEXT_TAP("jump1") W2S_GROUPS2("2") W2S_NEXT_TAP("jump2") W2S_GROUPS2("3")
                         W2S_OPERANDS);
    else if (taps == 3)
        __asm__ volatile(W2S_GROUPS("1") W2S_NEXT_TAP("jump1") W2S_GROUPS("2") W2S_NEXT_TAP("jump2") W2S_GROUPS("3")
                         W2S_OPERANDS);
    else if (run % 8 == 0)
        __asm__ volatile(W2S_GROUPS2("1") W2S_OPERANDS);
    else
        __asm__ volatile(W2S_GROUPS("1") W2S_OPERANDS);
#undef W2S_OPERANDS
    s->a00 = a00, s->a01 = a01, s->a10 = a10, s->a11 = a11;
}

static inline void dot_1x2(const int8_t *w, const int16_t *xa, const int16_t *xb, int taps, int run, const int32_t jump[2],
                           sums *s) {
    int32_t a00 = s->a00, a01 = s->a01;
    int32_t geometry[3];
    const int16_t *end = xa + run;
    uint32_t w0, x0, x1, t;
    geometry[0] = 2 * run, geometry[1] = 2 * jump[0], geometry[2] = 2 * jump[1];
#define W2S_OPERANDS                                                                                                   \
    : [a00] "+r"(a00), [a01] "+r"(a01), [wp] "+r"(w), [xa] "+r"(xa), [xb] "+r"(xb), [end] "+r"(end), [w0] "=&r"(w0),   \
      [x0] "=&r"(x0), [x1] "=&r"(x1), [t] "=&r"(t)                                                                      \
    : [runb] "m"(geometry[0]), [jump1] "m"(geometry[1]), [jump2] "m"(geometry[2])                                        \
    : "cc", "memory"
    if (taps == 3)
        __asm__ volatile(W2S_GROUPS_1("1") W2S_NEXT_TAP("jump1") W2S_GROUPS_1("2") W2S_NEXT_TAP("jump2")
                         W2S_GROUPS_1("3") W2S_OPERANDS);
    else
        __asm__ volatile(W2S_GROUPS_1("1") W2S_OPERANDS);
#undef W2S_OPERANDS
    s->a00 = a00, s->a01 = a01;
}
#else
static inline void dot_2x2(const int8_t *w, const int16_t *xa, const int16_t *xb, int taps, int run, const int32_t jump[2],
                           sums *s) {
    const uint32_t *wp = (const uint32_t *)(const void *)w;
    int dt, g;
    for (dt = 0; dt < taps; dt++) {
        if (dt > 0) xa += jump[dt - 1], xb += jump[dt - 1];
        for (g = 0; g < run / 4; g++, wp += 2, xa += 4, xb += 4) {
            const uint32_t lo0 = w2s_sxtb16(wp[0]), lo1 = w2s_sxtb16(wp[1]);
            const uint32_t hi0 = w2s_sxtb16_ror8(wp[0]), hi1 = w2s_sxtb16_ror8(wp[1]);
            s->a00 = w2s_smlad(w2s_pair(xa + 2), hi0, w2s_smlad(w2s_pair(xa), lo0, s->a00));
            s->a01 = w2s_smlad(w2s_pair(xb + 2), hi0, w2s_smlad(w2s_pair(xb), lo0, s->a01));
            s->a10 = w2s_smlad(w2s_pair(xa + 2), hi1, w2s_smlad(w2s_pair(xa), lo1, s->a10));
            s->a11 = w2s_smlad(w2s_pair(xb + 2), hi1, w2s_smlad(w2s_pair(xb), lo1, s->a11));
        }
    }
}

static inline void dot_1x2(const int8_t *w, const int16_t *xa, const int16_t *xb, int taps, int run, const int32_t jump[2],
                           sums *s) {
    const uint32_t *wp = (const uint32_t *)(const void *)w;
    int dt, g;
    for (dt = 0; dt < taps; dt++) {
        if (dt > 0) xa += jump[dt - 1], xb += jump[dt - 1];
        for (g = 0; g < run / 4; g++, wp++, xa += 4, xb += 4) {
            const uint32_t lo = w2s_sxtb16(wp[0]), hi = w2s_sxtb16_ror8(wp[0]);
            s->a00 = w2s_smlad(w2s_pair(xa + 2), hi, w2s_smlad(w2s_pair(xa), lo, s->a00));
            s->a01 = w2s_smlad(w2s_pair(xb + 2), hi, w2s_smlad(w2s_pair(xb), lo, s->a01));
        }
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
    const int first = taps == 3 ? 0 : 1; /* expanded position of the first tap of output 0 */
    const int32_t offset = 0x4B400000 - conv->y_zero, next_zero = conv->next_zero;
    const uint8_t *lut = conv->lut;
    int32_t jump[2], acc[2][W2S_MAX_CHANNELS];
    int m, oc;
    if (taps == 3) jump[0] = (int32_t)(rows[1] - rows[0]) - run, jump[1] = (int32_t)(rows[2] - rows[1]) - run;
    else jump[0] = jump[1] = 0;
    for (m = 0; m < width; m += 2) {
        /* an odd last position is computed as a pair with itself (written twice, same value) */
        const int mb = m + 1 < width ? m + 1 : m;
        const int16_t *xa = rows[0] + (m + first) * c_in, *xb = rows[0] + (mb + first) * c_in;
        const int8_t *w = conv->weight;
        for (oc = 0; oc + 1 < c_out; oc += 2, w += 2 * taps * run) {
            sums sum;
            sum.a00 = sum.a01 = conv->bias[oc];
            sum.a10 = sum.a11 = conv->bias[oc + 1];
            dot_2x2(w, xa, xb, taps, run, jump, &sum);
            acc[0][oc] = sum.a00, acc[1][oc] = sum.a01, acc[0][oc + 1] = sum.a10, acc[1][oc + 1] = sum.a11;
        }
        if (oc < c_out) { /* an odd last channel */
            sums sum;
            sum.a00 = sum.a01 = conv->bias[oc];
            dot_1x2(w, xa, xb, taps, run, jump, &sum);
            acc[0][oc] = sum.a00, acc[1][oc] = sum.a01;
        }
        for (oc = 0; oc < c_out; oc++) {
            uint32_t qa = output_stage(acc[0][oc], conv->scale[oc], offset);
            uint32_t qb = output_stage(acc[1][oc], conv->scale[oc], offset);
            if (lut) qa = lut[qa], qb = lut[qb];
            if (out) {
                out[(m + 1) * c_out + oc] = (int16_t)(qa - next_zero);
                out[(mb + 1) * c_out + oc] = (int16_t)(qb - next_zero);
            }
            if (out_q) out_q[m * c_out + oc] = (uint8_t)qa, out_q[mb * c_out + oc] = (uint8_t)qb;
        }
    }
    if (out) { /* zero padding positions of the expanded output row */
        for (oc = 0; oc < c_out; oc++) out[oc] = out[(width + 1) * c_out + oc] = 0;
    }
}

void w2s_maxpool_row(const int16_t *const rows[3], int width, int channels, int32_t zero, const uint8_t *lut,
                     int32_t next_zero, int16_t *out) {
    /* The inputs are ReLU outputs (expanded values >= 0), so the zero padding (the rows of zeros
     * and the zero positions around each row) never wins: it equals the -inf padding. */
    const int width_out = (width + 1) / 2;
    int u, c;
    for (u = 0; u < width_out; u++) {
        const int16_t *r0 = rows[0] + 2 * u * channels, *r1 = rows[1] + 2 * u * channels, *r2 = rows[2] + 2 * u * channels;
        int16_t *dst = out + (u + 1) * channels;
        for (c = 0; c < channels; c++, r0++, r1++, r2++) {
            int32_t best = r0[0], q;
            best = r0[channels] > best ? r0[channels] : best;
            best = r0[2 * channels] > best ? r0[2 * channels] : best;
            best = r1[0] > best ? r1[0] : best;
            best = r1[channels] > best ? r1[channels] : best;
            best = r1[2 * channels] > best ? r1[2 * channels] : best;
            best = r2[0] > best ? r2[0] : best;
            best = r2[channels] > best ? r2[channels] : best;
            best = r2[2 * channels] > best ? r2[2 * channels] : best;
            q = best + zero;
            if (lut) q = lut[q];
            dst[c] = (int16_t)(q - next_zero);
        }
    }
    for (c = 0; c < channels; c++) out[c] = out[(width_out + 1) * channels + c] = 0;
}
