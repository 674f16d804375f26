/* wav2small on a microcontroller: the streaming int8 speech-emotion model as plain C99.
 *
 * Feed 16 kHz mono audio in chunks of W2S_CHUNK float samples (any gain); every W2S_HOP_CHUNKS
 * chunks w2s_process returns 1 and w2s_result gives [arousal, dominance, valence] (nominally 0..1)
 * for all the audio received so far, as the offline model would answer for it. State: one
 * w2s_state (sizeof is a compile-time constant, no heap); weights: const arrays (flash).
 *
 *     static w2s_state s;
 *     float adv[3];
 *     w2s_init(&s);
 *     while (read_chunk(chunk))
 *         if (w2s_process(&s, chunk)) w2s_result(&s, adv);
 *
 * The network body (convolutions, max-pool, attention logits and values, head) runs on int8
 * weights and uint8 activations with int32 sums, as onnxruntime runs the streaming int8 ONNX
 * graph; the input normalisation, the log-mel front-end and the attention pooling sums are single
 * precision float (a core with an FPU: Cortex-M4F and up).
 */
#ifndef W2S_H
#define W2S_H

#include <stdint.h>

#include "w2s_config.h"
#include "w2s_kernels.h"

/* expanded row sizes (int16 values): positions -1 .. width, 4 spare values read past the end */
#define W2S_ROW_IN (W2S_N_MELS + 2 + 4)
#define W2S_ROW (W2S_CHANNELS * (W2S_N_MELS + 2) + 4)
#define W2S_ROW2 (W2S_CHANNELS * (W2S_N_MELS2 + 2) + 4)
#define W2S_CELLS (W2S_CHANNELS * W2S_N_MELS2) /* attention cells: channel x pooled mel */
#define W2S_BATCH (W2S_FRAMES_PER_CHUNK / 2)    /* pooled positions committed per chunk */
/* provisional rows at read-out: at most 3 wide rows (l3) or 6 narrow ones (l7) at once */
#define W2S_SCRATCH (3 * W2S_ROW > 6 * W2S_ROW2 ? 3 * W2S_ROW : 6 * W2S_ROW2)

/* what w2s_config.h / w2s_model.c give the engine */
typedef struct {
    const float *prenorm_carry;  /* (blocks) a^(k+1): weight of the statistics before the chunk */
    const float *prenorm_mix;    /* (blocks, blocks) a^(k-j), zero above the diagonal */
    float prenorm_gain;          /* 1 - a */
    float prenorm_eps;           /* added to the variance before the square root (the model's prenorm_eps) */
    const float *dft_real;       /* (bins, n_fft/2 + 1) windowed DFT basis, Re, samples 0 .. n_fft/2 */
    const float *dft_imag;       /* the same, Im */
    const uint8_t *mel_first;    /* (n_mels) first bin of each mel filter */
    const uint8_t *mel_count;    /* (n_mels) its number of bins */
    const float *mel_weight;     /* the filters' weights, filter after filter */
    float logmel_scale;          /* quantisation of the log-mel image (the input of l1) */
    int32_t logmel_zero;
    w2s_conv conv[7];            /* l1 .. l7 (BatchNorm folded, ReLU in the requantisation) */
    int32_t pool_zero;           /* the max-pool's input zero point, table to l4's input */
    const uint8_t *pool_lut;
    int32_t pool_next_zero;
    w2s_conv lin, sof;           /* attention values and logits (1x1) */
    float lin_scale, sof_scale;  /* their dequantisation */
    int32_t lin_zero, sof_zero;
    float decay;                 /* logit decrement per pooled position of age (0: whole stream) */
    float feature_scale;         /* quantisation of [pooled, Gram] before the head */
    int32_t feature_zero;
    const int8_t *head_weight;   /* (3, features) */
    const int32_t *head_bias;    /* (3) */
    float head_scale;            /* x_scale * w_scale / y_scale */
    int32_t head_zero;           /* output zero point */
    float out_scale;             /* dequantisation of the output */
} w2s_model;

extern const w2s_model w2s_weights;

typedef struct {
    float prenorm[3];                         /* running [weight, mean, power] */
    float samples[W2S_N_FFT - W2S_HOP];       /* last normalised samples */
    int32_t position;                         /* index of the next frame (-1 at the start) */
    int32_t chunks;                           /* chunks since the last output */
    /* last committed index of each stage and 3 expanded rows (slot = index mod 3) */
    int32_t last[8];
    int16_t frames[3][W2S_ROW_IN];            /* stage 0: log-mel frames, l1's input */
    int16_t wide[3][3][W2S_ROW];              /* stages 1-3: l2, l3, max-pool inputs */
    int16_t narrow[4][3][W2S_ROW2];           /* stages 4-7: l4 .. l7 inputs */
    uint8_t values[W2S_BATCH][W2S_CELLS];     /* lin and sof outputs of this chunk's positions */
    uint8_t logits[W2S_BATCH][W2S_CELLS];
    float att_max[W2S_CELLS], att_den[W2S_CELLS], att_num[W2S_CELLS];
    union {                                   /* read-out only: */
        int16_t rows[2][W2S_SCRATCH];         /* provisional rows, then */
        struct {                              /* the pooling sums with them, the features */
            float max[W2S_CELLS], den[W2S_CELLS], num[W2S_CELLS], pooled[W2S_CELLS];
            uint8_t features[W2S_CHANNELS * (W2S_N_MELS2 + W2S_CHANNELS)];
        } head;
    } scratch;
    float adv[3];
} w2s_state;

void w2s_init(w2s_state *s);

/* Process W2S_CHUNK samples; returns 1 when a new result is ready (every W2S_HOP_CHUNKS chunks),
 * 0 otherwise, and -1 (the chunk refused, the state unchanged) if a sample is NaN or infinite. */
int w2s_process(w2s_state *s, const float *chunk);

/* [arousal, dominance, valence] of the audio so far, as of the last ready chunk. */
void w2s_result(const w2s_state *s, float adv[3]);

#endif
