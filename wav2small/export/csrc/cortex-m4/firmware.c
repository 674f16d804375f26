/* The smallest program around the bundle, to measure what a device needs: flash (code and
 * constants) and RAM (state, one chunk buffer, stack) with no C library at all. The chunk buffer
 * stands in for a microphone's DMA buffer; the results go to a volatile output. */
#include <stddef.h>

#include "w2s.h"

/* GCC may call these for loops and structure copies even in freestanding code */
void *memcpy(void *dst, const void *src, size_t n) {
    unsigned char *d = dst;
    const unsigned char *s = src;
    while (n--) *d++ = *s++;
    return dst;
}

void *memset(void *dst, int value, size_t n) {
    unsigned char *d = dst;
    while (n--) *d++ = (unsigned char)value;
    return dst;
}

static w2s_state state;
float w2s_microphone[W2S_CHUNK];
volatile float w2s_output[3];

int main(int argc, char **argv) {
    float adv[3];
    (void)argc, (void)argv;
    w2s_init(&state);
    for (;;) {
        if (w2s_process(&state, w2s_microphone)) {
            w2s_result(&state, adv);
            w2s_output[0] = adv[0], w2s_output[1] = adv[1], w2s_output[2] = adv[2];
        }
    }
}
