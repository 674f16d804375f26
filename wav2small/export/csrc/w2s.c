/* The streaming engine of the wav2small C bundle (API and state: w2s.h).
 *
 * Per chunk of W2S_FRAMES_PER_CHUNK hops: running input normalisation (prenorm), one log-mel
 * frame per hop, and through the network every row that the new frame completes. A layer's
 * output row t needs its input rows t - 1, t, t + 1, so it is computed, once, when row t + 1
 * arrives ("committed"); rows at negative indices are the zero padding at the start of the
 * stream. The online attention pooling takes the chunk's committed positions at once, as the
 * ONNX graph does. At read-out the rows that still wait for later audio are computed
 * provisionally with the zero padding the offline model has at the end of its input, merged
 * into a copy of the pooling sums, and the head turns the pooled features into A/D/V.
 */
#include <math.h>

#include "w2s.h"
#include "w2s_math.h"

#define C W2S_CHANNELS
#define M W2S_N_MELS
#define M2 W2S_N_MELS2
#define LN10 2.30258512f

/* Indices only matter relative to each other, by their parity and modulo 3 and by their sign (the
 * start of the stream): past W2S_REBASE_FRAMES frames every index moves back by a multiple of 12
 * frames (6 pooled positions), so a stream can run for ever in 32-bit integers. */
#ifndef W2S_REBASE_FRAMES
#define W2S_REBASE_FRAMES (1L << 24) /* 9.3 hours at 500 frames/s */
#endif
#define REBASE_STEP (W2S_REBASE_FRAMES / 24 * 12)

static int slot(int32_t i) { return (int)(i % 3); } /* i >= 0 */

/* the padding rows of the convolutions and the max-pool */
static const int16_t zeros[W2S_ROW > W2S_ROW2 ? W2S_ROW : W2S_ROW2];

static const int16_t *or_zeros(const int16_t *row) { return row ? row : zeros; }

static int floor_half(int32_t i) { return i >= 0 ? i / 2 : -((1 - i) / 2); }

/* stage s: 0 = log-mel frames (l1 input), 1-2 = l2, l3 inputs, 3 = max-pool input,
 * 4-7 = l4 .. l7 inputs */
static int16_t *stage_row(w2s_state *s, int stage, int32_t i) {
    if (stage == 0) return s->frames[slot(i)];
    if (stage < 4) return s->wide[stage - 1][slot(i)];
    return s->narrow[stage - 4][slot(i)];
}

static int stage_width(int stage) { return stage < 4 ? M : M2; }

/* the convolution reading a stage (stage 3 feeds the max-pool) */
static const w2s_conv *stage_conv(int stage) { return &w2s_weights.conv[stage < 3 ? stage : stage - 1]; }

/* committed row i of a stage, or null: zero padding before the stream (and nothing after) */
static const int16_t *committed(w2s_state *s, int stage, int32_t i) {
    return i < 0 || i > s->last[stage] ? 0 : stage_row(s, stage, i);
}

/* lin and sof of one l7 output row into the uint8 values and logits of a position */
static void attention_inputs(const int16_t *l7_row, uint8_t *values, uint8_t *logits) {
    const int16_t *rows[3];
    rows[0] = l7_row, rows[1] = rows[2] = 0;
    w2s_conv_row(&w2s_weights.lin, rows, M2, 0, values);
    w2s_conv_row(&w2s_weights.sof, rows, M2, 0, logits);
}

/* Row i of a stage is stored: compute what it completes (recursively down the network). */
static void commit(w2s_state *s, int stage, int32_t i, int32_t batch_first) {
    const int16_t *rows[3];
    int32_t t;
    s->last[stage] = i;
    if (stage == 3) { /* max-pool window 2u - 1, 2u, 2u + 1 completes at odd i */
        int32_t u;
        if (i % 2 == 0) return;
        u = (i - 1) / 2;
        rows[0] = or_zeros(committed(s, 3, 2 * u - 1));
        rows[1] = or_zeros(committed(s, 3, 2 * u));
        rows[2] = or_zeros(committed(s, 3, 2 * u + 1));
        w2s_maxpool_row(rows, M, C, w2s_weights.pool_zero, w2s_weights.pool_lut, w2s_weights.pool_next_zero,
                        stage_row(s, 4, u));
        commit(s, 4, u, batch_first);
        return;
    }
    t = i - 1;
    if (t < 0) return;
    rows[0] = or_zeros(committed(s, stage, t - 1));
    rows[1] = or_zeros(committed(s, stage, t));
    rows[2] = or_zeros(committed(s, stage, t + 1));
    if (stage < 7) {
        w2s_conv_row(stage_conv(stage), rows, stage_width(stage), stage_row(s, stage + 1, t), 0);
        commit(s, stage + 1, t, batch_first);
    } else { /* l7 output row t: position t - batch_first of this chunk's batch */
        w2s_conv_row(stage_conv(7), rows, M2, s->scratch.rows[0], 0);
        attention_inputs(s->scratch.rows[0], s->values[t - batch_first], s->logits[t - batch_first]);
    }
}

/* Log-mel frame from the normalised samples prev (n_fft - hop) and cur (hop): power spectrum by
 * the windowed DFT, mel filters, 10 log10(max(mel, 1e-10)), quantised and expanded into an l1
 * input row. The windowed basis is symmetric (n and n_fft - n), so x[n] and x[n_fft - n] share the
 * coefficient of n: half the multiplications, a difference from the graph's basis of rounding
 * size only (the float32 basis values of n and n_fft - n can differ in their last bit). */
static void logmel(const float *prev, const float *cur, int16_t *row) {
    const w2s_model *w = &w2s_weights;
    const int half = W2S_N_FFT / 2, width = half + 1;
    float x[W2S_N_FFT], power[W2S_N_BINS];
    int k, n, j;
    for (n = 0; n < W2S_N_FFT - W2S_HOP; n++) x[n] = prev[n];
    for (n = 0; n < W2S_HOP; n++) x[W2S_N_FFT - W2S_HOP + n] = cur[n];
    for (k = 0; k < W2S_N_BINS; k++) {
        const float *re_w = w->dft_real + k * width, *im_w = w->dft_imag + k * width;
        float re = re_w[0] * x[0] + re_w[half] * x[half], im = 0.0f;
        for (n = 1; n < half; n++) {
            re += re_w[n] * (x[n] + x[W2S_N_FFT - n]);
            im += im_w[n] * (x[n] - x[W2S_N_FFT - n]);
        }
        power[k] = re * re + im * im;
    }
    row[0] = row[M + 1] = 0;
    for (j = 0, k = 0; j < M; j++) {
        const int first = w->mel_first[j], count = w->mel_count[j];
        float mel = 0.0f, db;
        for (n = 0; n < count; n++, k++) mel += power[first + n] * w->mel_weight[k];
        if (mel < 1e-10f) mel = 1e-10f;
        db = w2s_log(mel) / LN10 * 10.0f;
        row[j + 1] = (int16_t)(w2s_quantize(db, w->logmel_scale, w->logmel_zero) - w->logmel_zero);
    }
}

/* Online softmax over time, per cell: merge n positions (values v, logits z as uint8) into the
 * running maximum, denominator and numerator. Position j is present when first <= j; it is
 * (n - 1 - j) positions younger than the last one (decay). */
static void merge(const uint8_t (*v)[W2S_CELLS], const uint8_t (*z)[W2S_CELLS], int n, int first, float *att_max,
                  float *att_den, float *att_num) {
    const w2s_model *w = &w2s_weights;
    int cell, j;
    for (cell = 0; cell < W2S_CELLS; cell++) {
        const float m_old = att_max[cell] - w->decay * (float)n;
        float m_new = m_old, den = 0.0f, num = 0.0f, carry;
        float logit[W2S_BATCH];
        for (j = first; j < n; j++) {
            logit[j] = (float)(z[j][cell] - w->sof_zero) * w->sof_scale - w->decay * (float)(n - 1 - j);
            if (logit[j] > m_new) m_new = logit[j];
        }
        for (j = first; j < n; j++) {
            const float e = w2s_exp(logit[j] - m_new);
            den += e;
            num += e * ((float)(v[j][cell] - w->lin_zero) * w->lin_scale);
        }
        carry = w2s_exp(m_old - m_new);
        att_den[cell] = att_den[cell] * carry + den;
        att_num[cell] = att_num[cell] * carry + num;
        att_max[cell] = m_new;
    }
}

/* provisional input row i: committed, one of n rows after the committed ones in buf, or padding */
static const int16_t *pending(w2s_state *s, int stage, int32_t i, const int16_t *buf, int n, int size) {
    const int32_t last = s->last[stage];
    if (i < 0) return 0;
    if (i <= last) return stage_row(s, stage, i);
    if (i <= last + n) return buf + (i - last - 1) * size;
    return 0;
}

/* Read-out: the rows waiting for later audio, with the offline model's end padding, then the
 * pooled features and the head. Nothing here changes the committed state. */
static void read_out(w2s_state *s) {
    const w2s_model *w = &w2s_weights;
    const int16_t *in = 0, *rows[3];
    int16_t *out = s->scratch.rows[0];
    int n_in = 0, stage;
    int c, m, o, i;
    for (stage = 0; stage < 8; stage++) {
        const int size_in = stage == 0 ? W2S_ROW_IN : stage < 4 ? W2S_ROW : W2S_ROW2;
        const int size_out = stage < 3 ? W2S_ROW : W2S_ROW2;
        const int32_t last = s->last[stage], available = last + n_in;
        int32_t first, t;
        int n_out;
        if (stage == 3) { /* max-pool windows with at least one input row */
            first = s->last[4] + 1;
            n_out = (int)(floor_half(available + 1) - first + 1);
            for (t = first; t < first + n_out; t++) {
                rows[0] = or_zeros(pending(s, 3, 2 * t - 1, in, n_in, size_in));
                rows[1] = or_zeros(pending(s, 3, 2 * t, in, n_in, size_in));
                rows[2] = or_zeros(pending(s, 3, 2 * t + 1, in, n_in, size_in));
                w2s_maxpool_row(rows, M, C, w->pool_zero, w->pool_lut, w->pool_next_zero, out + (t - first) * size_out);
            }
        } else { /* committed outputs end at last - 1 */
            first = last > 0 ? last : 0;
            n_out = (int)(available - first + 1);
            for (t = first; t < first + n_out; t++) {
                rows[0] = or_zeros(pending(s, stage, t - 1, in, n_in, size_in));
                rows[1] = or_zeros(pending(s, stage, t, in, n_in, size_in));
                rows[2] = or_zeros(pending(s, stage, t + 1, in, n_in, size_in));
                w2s_conv_row(stage_conv(stage), rows, stage_width(stage), out + (t - first) * size_out, 0);
            }
        }
        in = out, n_in = n_out;
        out = s->scratch.rows[out == s->scratch.rows[0] ? 1 : 0];
    }
    for (i = 0; i < n_in; i++) attention_inputs(in + i * W2S_ROW2, s->values[i], s->logits[i]);
    /* the provisional rows are used up: the scratch now holds the pooling sums and the features */
    {
        float *max = s->scratch.head.max, *den = s->scratch.head.den, *num = s->scratch.head.num;
        float *pooled = s->scratch.head.pooled; /* (channel, mel) */
        uint8_t *features = s->scratch.head.features;
        for (i = 0; i < W2S_CELLS; i++) max[i] = s->att_max[i], den[i] = s->att_den[i], num[i] = s->att_num[i];
        merge((const uint8_t(*)[W2S_CELLS])s->values, (const uint8_t(*)[W2S_CELLS])s->logits, n_in, 0, max, den, num);
        for (c = 0; c < C; c++)
            for (m = 0; m < M2; m++) pooled[c * M2 + m] = num[m * C + c] / den[m * C + c];
        /* [pooled, pooled pooled^T] per channel, quantised for the head */
        for (c = 0; c < C; c++) {
            uint8_t *f = features + c * (M2 + C);
            int c2;
            for (m = 0; m < M2; m++) f[m] = w2s_quantize(pooled[c * M2 + m], w->feature_scale, w->feature_zero);
            for (c2 = 0; c2 < C; c2++) {
                float g = 0.0f;
                for (m = 0; m < M2; m++) g += pooled[c * M2 + m] * pooled[c2 * M2 + m];
                f[M2 + c2] = w2s_quantize(g, w->feature_scale, w->feature_zero);
            }
        }
        for (o = 0; o < 3; o++) {
            int32_t acc = w->head_bias[o];
            const int8_t *row = w->head_weight + o * C * (M2 + C);
            for (i = 0; i < C * (M2 + C); i++) acc += ((int32_t)features[i] - w->feature_zero) * row[i];
            s->adv[o] = (float)((int32_t)w2s_requantize(acc, w->head_scale, w->head_zero) - w->head_zero) * w->out_scale;
        }
    }
}

void w2s_init(w2s_state *s) {
    unsigned char *p = (unsigned char *)s;
    unsigned long i;
    for (i = 0; i < sizeof *s; i++) p[i] = 0;
    s->position = -1;
    for (i = 0; i < 8; i++) s->last[i] = -1;
    for (i = 0; i < W2S_CELLS; i++) s->att_max[i] = -1e30f;
}

int w2s_process(w2s_state *s, const float *chunk) {
    const w2s_model *w = &w2s_weights;
    const int32_t p = s->position, batch_first = floor_half(p - 3) - 4;
    float v[W2S_FRAMES_PER_CHUNK][3], y[W2S_HOP], stats[3];
    int k, j, n, first;
    for (n = 0; n < W2S_CHUNK; n++) /* NaN or infinity: refuse the chunk, keep the state */
        if (!(chunk[n] - chunk[n] == 0.0f)) return -1;
    for (k = 0; k < W2S_FRAMES_PER_CHUNK; k++) {
        const float *x = chunk + k * W2S_HOP;
        float sum = 0.0f, power = 0.0f, mean, var, norm;
        for (n = 0; n < W2S_HOP; n++) sum += x[n], power += x[n] * x[n];
        v[k][0] = 1.0f, v[k][1] = sum / (float)W2S_HOP, v[k][2] = power / (float)W2S_HOP;
        /* s_k = (1 - a) sum_j a^(k-j) v_j + a^(k+1) s_before, the ONNX graph's matrix form of
         * s_k = a s_(k-1) + (1 - a) v_k over the chunk's blocks */
        for (n = 0; n < 3; n++) {
            float mix = 0.0f;
            for (j = 0; j <= k; j++) mix += w->prenorm_mix[k * W2S_FRAMES_PER_CHUNK + j] * v[j][n];
            stats[n] = w->prenorm_gain * mix + w->prenorm_carry[k] * s->prenorm[n];
        }
        mean = stats[1] / stats[0];
        var = stats[2] / stats[0] - mean * mean;
        norm = sqrtf((var > 0.0f ? var : 0.0f) + w->prenorm_eps);
        for (n = 0; n < W2S_HOP; n++) y[n] = (x[n] - mean) / norm;
        if (p + k >= 0) {
            logmel(s->samples, y, stage_row(s, 0, p + k));
            commit(s, 0, p + k, batch_first);
        }
        for (n = 0; n < W2S_HOP; n++) s->samples[n] = y[n];
    }
    for (n = 0; n < 3; n++) s->prenorm[n] = stats[n];
    s->position = p + W2S_FRAMES_PER_CHUNK;
    if (s->position > W2S_REBASE_FRAMES) {
        s->position -= REBASE_STEP;
        for (n = 0; n < 8; n++) s->last[n] -= n < 4 ? REBASE_STEP : REBASE_STEP / 2;
    }
    first = batch_first < 0 ? (int)-batch_first : 0;
    if (first < W2S_BATCH)
        merge((const uint8_t(*)[W2S_CELLS])s->values, (const uint8_t(*)[W2S_CELLS])s->logits, W2S_BATCH, first,
              s->att_max, s->att_den, s->att_num);
    if (++s->chunks < W2S_HOP_CHUNKS) return 0;
    s->chunks = 0;
    read_out(s);
    return 1;
}

void w2s_result(const w2s_state *s, float adv[3]) {
    adv[0] = s->adv[0], adv[1] = s->adv[1], adv[2] = s->adv[2];
}
