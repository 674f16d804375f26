/* Integer kernels and float helpers of the wav2small C bundle.
 *
 * The arithmetic follows onnxruntime's int8 operators exactly:
 *   convolution   acc = bias_q + sum((x - x_zero) * w)       (int32, weights symmetric)
 *                 y   = saturate(round_half_even(float(acc) * scale) + y_zero),
 *                       scale = float(x_scale * w_scale / y_scale) per output channel
 *   requantise    y = saturate(round_half_even(float(q - z1) * s1 / s2) + z2)
 *                 (DequantizeLinear then QuantizeLinear): a 256-entry table made at export
 *   quantise      y = saturate(round_half_even(x / scale) + zero)
 * Float code uses only + - * / and sqrt, in a fixed order, so the host and a Cortex-M4F give
 * identical results (build without floating-point contraction: -ffp-contract=off, the default
 * of -std=c99).
 */
#ifndef W2S_KERNELS_H
#define W2S_KERNELS_H

#include <stdint.h>

/* Dual 16-bit multiply-accumulate (SMLAD) and byte unpacking (SXTB16): single instructions on a
 * core with the DSP extension (Cortex-M4/M7/M33/M55), plain C with identical results elsewhere. */
#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__)
static inline int32_t w2s_smlad(uint32_t x, uint32_t y, int32_t acc) {
    int32_t r;
    __asm__("smlad %0, %1, %2, %3" : "=r"(r) : "r"(x), "r"(y), "r"(acc));
    return r;
}
static inline uint32_t w2s_sxtb16(uint32_t v) {
    uint32_t r;
    __asm__("sxtb16 %0, %1" : "=r"(r) : "r"(v));
    return r;
}
static inline uint32_t w2s_sxtb16_ror8(uint32_t v) {
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
}
static inline uint32_t w2s_pair(const int16_t *p) { /* unaligned LDR is allowed on v7-M */
    uint32_t v;
    __builtin_memcpy(&v, p, 4);
    return v;
}
#else
static inline int32_t w2s_lo16(uint32_t v) { return (int32_t)((v & 0xFFFFu) ^ 0x8000u) - 0x8000; }
static inline int32_t w2s_smlad(uint32_t x, uint32_t y, int32_t acc) {
    return acc + w2s_lo16(x) * w2s_lo16(y) + w2s_lo16(x >> 16) * w2s_lo16(y >> 16);
}
static inline uint32_t w2s_sxtb16(uint32_t v) {
    uint32_t lo = (uint32_t)(((v & 0xFFu) ^ 0x80u) - 0x80u) & 0xFFFFu;
    uint32_t hi = (uint32_t)((((v >> 16) & 0xFFu) ^ 0x80u) - 0x80u) & 0xFFFFu;
    return lo | hi << 16;
}
static inline uint32_t w2s_sxtb16_ror8(uint32_t v) { return w2s_sxtb16(v >> 8 | v << 24); }
static inline uint32_t w2s_pair(const int16_t *p) { return (uint32_t)(uint16_t)p[0] | (uint32_t)(uint16_t)p[1] << 16; }
#endif

/* round half to even of |x| < 2^22 by the 1.5 * 2^23 trick (exact in IEEE single precision) */
static inline int32_t w2s_round_even(float x) {
    union { float f; int32_t i; } u;
    u.f = x + 12582912.0f;
    return u.i - 0x4B400000;
}

/* float -> uint8 as QuantizeLinear: saturate(round_half_even(x / scale) + zero) */
static inline uint8_t w2s_quantize(float x, float scale, int32_t zero) {
    float v = x / scale;
    float lo = (float)(0 - zero), hi = (float)(255 - zero);
    v = v < lo ? lo : (v > hi ? hi : v); /* also maps NaN to hi: never met with finite input */
    return (uint8_t)(w2s_round_even(v) + zero);
}

/* int32 accumulator -> uint8 as QLinearConv's output stage */
static inline uint8_t w2s_requantize(int32_t acc, float scale, int32_t zero) {
    float v = (float)acc * scale;
    float lo = (float)(0 - zero), hi = (float)(255 - zero);
    v = v < lo ? lo : (v > hi ? hi : v);
    return (uint8_t)(w2s_round_even(v) + zero);
}

/* most output channels of a convolution (the kernels' stack buffers); the generator checks it */
#define W2S_MAX_CHANNELS 64

/* A quantised convolution over (time, mel) images stored one time row at a time.
 * Input rows are "expanded": int16 values x - x_zero, channels last, one padding position of
 * zeros on each side of the mel axis and at least 4 spare values at the end: position p of a row
 * (p = -1 .. width) starts at (p + 1) * c_in. */
typedef struct {
    int16_t c_in, c_out;      /* channels */
    int16_t taps;             /* kernel size along time and mel: 3 (padding 1) or 1 */
    int16_t run;              /* weights per (output channel, time tap): taps * c_in rounded up to 4 */
    const int8_t *weight;     /* pairs of output channels interleaved per 4 bytes (see the generator) */
    const int32_t *bias;      /* (c_out) int32 at scale x_scale * w_scale */
    const float *scale;       /* (c_out) x_scale * w_scale / y_scale */
    int32_t y_zero;           /* zero point of the convolution's output */
    const uint8_t *lut;       /* 256-entry requantisation after the output stage, or 0 */
    int32_t next_zero;        /* zero point subtracted when writing the expanded output */
} w2s_conv;

/* One output time row. rows: the expanded input rows t - 1, t, t + 1 (3 taps) or rows[0] = row t
 * (1 tap); padding rows are rows of zeros. Writes the expanded output row (width positions,
 * out + (p + 1) * c_out, zero padding around it) and, if out_q is not null, the uint8 values
 * (width x c_out) as well. */
void w2s_conv_row(const w2s_conv *conv, const int16_t *const rows[3], int width, int16_t *out, uint8_t *out_q);

/* Expand uint8 values to int16 x - zero (n values). */
void w2s_expand(const uint8_t *src, int n, int32_t zero, int16_t *dst);

/* One output row of the 3x3 stride-2 max-pool with padding 1 (time and mel): rows[0..2] are the
 * expanded input rows 2u - 1, 2u, 2u + 1 (rows of zeros: padding), width in, (width + 1) / 2 out,
 * written expanded (values - zero of the input, zero padding around it). The inputs must be ReLU
 * outputs (values - zero >= 0): then zero padding equals the -inf padding of MaxPool. lut (or
 * null) maps the uint8 maximum to the next layer's quantisation, whose zero point is next_zero. */
void w2s_maxpool_row(const int16_t *const rows[3], int width, int channels, int32_t zero, const uint8_t *lut,
                     int32_t next_zero, int16_t *out);


#endif
