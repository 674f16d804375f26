/* Stream an audio file through the wav2small C bundle: one CSV row per result,
 * "seconds,arousal,dominance,valence" (seconds of audio consumed).
 *
 *     w2s_stream INPUT [OUTPUT]
 *
 * INPUT: a WAV file (16 kHz mono, 16-bit PCM or 32-bit float) or raw 16-bit little-endian PCM at
 * 16 kHz; a last partial chunk (under W2S_CHUNK samples) is not processed. OUTPUT: a CSV file
 * (default: standard output). Built for the Cortex-M4 board (W2S_CORTEX_M), the files go through
 * semihosting and the program also prints, as lines starting with '#', the instructions spent in
 * w2s_process (SysTick under qemu -icount shift=0) and its peak stack (painted stack).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "w2s.h"

static w2s_state state;

typedef struct {
    FILE *file;
    int format; /* 1: 16-bit PCM, 3: 32-bit float */
    long left;  /* samples left in the data chunk, -1: raw until end of file */
} audio;

static uint32_t le32(const unsigned char *b) { return b[0] | b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24; }

/* Opens a WAV or raw file; returns an error message or 0. */
static const char *open_audio(audio *a, const char *path) {
    unsigned char head[12], chunk[8], fmt[16];
    a->file = fopen(path, "rb");
    if (!a->file) return "cannot open the input file";
    a->format = 1, a->left = -1;
    if (fread(head, 1, 12, a->file) != 12 || memcmp(head, "RIFF", 4) != 0 || memcmp(head + 8, "WAVE", 4) != 0) {
        rewind(a->file); /* raw 16-bit PCM */
        return 0;
    }
    while (fread(chunk, 1, 8, a->file) == 8) {
        const uint32_t size = le32(chunk + 4);
        if (memcmp(chunk, "fmt ", 4) == 0) {
            if (size < 16 || fread(fmt, 1, 16, a->file) != 16) return "truncated WAV header";
            a->format = fmt[0] | fmt[1] << 8;
            if (a->format == 0xFFFE && size >= 40) { /* WAVE_FORMAT_EXTENSIBLE: the sub-format follows */
                unsigned char ext[24];
                if (fread(ext, 1, 24, a->file) != 24) return "truncated WAV header";
                a->format = ext[8] | ext[9] << 8;
                if (fseek(a->file, (long)(size - 40 + (size & 1)), SEEK_CUR) != 0) return "truncated WAV header";
            } else if (fseek(a->file, (long)(size - 16 + (size & 1)), SEEK_CUR) != 0) {
                return "truncated WAV header";
            }
            if ((fmt[2] | fmt[3] << 8) != 1) return "the WAV file must be mono";
            if (le32(fmt + 4) != 16000) return "the WAV file must be sampled at 16000 Hz";
            if (!((a->format == 1 && fmt[14] == 16) || (a->format == 3 && fmt[14] == 32)))
                return "the WAV samples must be 16-bit PCM or 32-bit float";
        } else if (memcmp(chunk, "data", 4) == 0) {
            a->left = (long)(size / (a->format == 1 ? 2 : 4));
            return 0;
        } else if (fseek(a->file, (long)(size + (size & 1)), SEEK_CUR) != 0) {
            return "truncated WAV file";
        }
    }
    return "no data chunk in the WAV file";
}

/* Reads one chunk of W2S_CHUNK samples as floats; 0 at the end. */
static int read_chunk(audio *a, float *x) {
    unsigned char raw[W2S_CHUNK * 4];
    const size_t width = a->format == 1 ? 2 : 4;
    int i;
    if (a->left >= 0 && a->left < W2S_CHUNK) return 0;
    if (fread(raw, width, W2S_CHUNK, a->file) != W2S_CHUNK) return 0;
    if (a->left >= 0) a->left -= W2S_CHUNK;
    for (i = 0; i < W2S_CHUNK; i++) {
        if (a->format == 1) {
            const int32_t v = raw[2 * i] | raw[2 * i + 1] << 8;
            x[i] = (float)(v >= 32768 ? v - 65536 : v) / 32768.0f;
        } else {
            union { uint32_t u; float f; } v;
            v.u = le32(raw + 4 * i);
            x[i] = v.f;
        }
    }
    return 1;
}

#ifdef W2S_CORTEX_M
/* SysTick counts processor clock ticks; under qemu -icount shift=0 one tick is 40 instructions
 * on the mps2-an386 board (25 MHz tick, 1 ns per instruction). */
#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define INSTRUCTIONS_PER_TICK 40u
#define PAINT_WORDS 4096u /* 16 KB below the caller's stack pointer */
#define PAINT 0xA5C3E1F7u

static uint32_t stack_pointer(void) {
    uint32_t sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    return sp;
}
#endif

int main(int argc, char **argv) {
    static float chunk[W2S_CHUNK];
    audio in;
    FILE *out = stdout;
    const char *error;
    long chunks = 0;
    float adv[3];
#ifdef W2S_CORTEX_M
    uint64_t instructions = 0, readout_instructions = 0;
    uint32_t peak_stack = 0, readouts = 0;
    SYST_RVR = 0xFFFFFFu, SYST_CVR = 0, SYST_CSR = 5; /* processor clock, no interrupt */
#endif
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s INPUT.wav|INPUT.raw [OUTPUT.csv]\n", argv[0]);
        return 2;
    }
    error = open_audio(&in, argv[1]);
    if (error) {
        fprintf(stderr, "%s: %s\n", argv[1], error);
        return 1;
    }
    if (argc == 3 && !(out = fopen(argv[2], "w"))) {
        fprintf(stderr, "%s: cannot open the output file\n", argv[2]);
        return 1;
    }
    w2s_init(&state);
    fprintf(out, "seconds,arousal,dominance,valence\n");
    while (read_chunk(&in, chunk)) {
        int ready;
#ifdef W2S_CORTEX_M
        volatile uint32_t *p;
        const uint32_t sp = stack_pointer();
        uint32_t t0, t1, low;
        for (p = (volatile uint32_t *)(sp - 4 * PAINT_WORDS); p < (volatile uint32_t *)sp; p++) *p = PAINT;
        t0 = SYST_CVR;
        ready = w2s_process(&state, chunk);
        t1 = SYST_CVR;
        for (p = (volatile uint32_t *)(sp - 4 * PAINT_WORDS); p < (volatile uint32_t *)sp && *p == PAINT; p++) {}
        low = (uint32_t)(uintptr_t)p;
        if (sp - low > peak_stack) peak_stack = sp - low;
        instructions += (uint64_t)((t0 - t1) & 0xFFFFFFu) * INSTRUCTIONS_PER_TICK;
        if (ready > 0) readout_instructions += (uint64_t)((t0 - t1) & 0xFFFFFFu) * INSTRUCTIONS_PER_TICK, readouts++;
#else
        ready = w2s_process(&state, chunk);
#endif
        if (ready < 0) {
            fprintf(stderr, "%s: chunk %ld holds a NaN or infinite sample\n", argv[1], chunks + 1);
            return 1;
        }
        chunks++;
        if (ready) {
            w2s_result(&state, adv);
            fprintf(out, "%.6f,%.9g,%.9g,%.9g\n", (double)chunks * W2S_CHUNK / 16000.0, (double)adv[0], (double)adv[1],
                    (double)adv[2]);
        }
    }
    if (out != stdout) fclose(out);
    fclose(in.file);
#ifdef W2S_CORTEX_M
    printf("# chunks %ld\n# instructions %lu %lu\n# readout_instructions %lu %lu\n# readouts %lu\n# peak_stack_bytes %lu\n"
           "# state_bytes %lu\n",
           chunks, (unsigned long)(instructions >> 32), (unsigned long)(instructions & 0xFFFFFFFFu),
           (unsigned long)(readout_instructions >> 32), (unsigned long)(readout_instructions & 0xFFFFFFFFu),
           (unsigned long)readouts, (unsigned long)peak_stack, (unsigned long)sizeof state);
#endif
    return 0;
}
