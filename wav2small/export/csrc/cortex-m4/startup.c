/* Bare-metal start-up for a Cortex-M4F, as QEMU's mps2-an386 board runs it: vector table, FPU
 * on, then either newlib's semihosting start-up (W2S_SEMIHOSTING: .bss, argv, stdio through the
 * debugger interface, exit code) or a plain start (zero .bss, call main). */
#include <stdint.h>

extern int main(int argc, char **argv);
extern uint32_t __stack_top, __bss_start__, __bss_end__;
#ifdef W2S_SEMIHOSTING
extern void _start(void);
#endif

void Reset_Handler(void);
void Default_Handler(void);

__attribute__((section(".vectors"), used)) void (*const w2s_vectors[16])(void) = {
    (void (*)(void))(uintptr_t)&__stack_top, Reset_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, 0, 0, 0, 0, Default_Handler, Default_Handler, 0, Default_Handler, Default_Handler,
};

void Reset_Handler(void) {
    /* CPACR: full access to CP10 and CP11 (the FPU) before any float instruction, or the core
     * faults silently */
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb");
#ifdef W2S_SEMIHOSTING
    _start();
#else
    {
        uint32_t *p;
        for (p = &__bss_start__; p < &__bss_end__; p++) *p = 0;
        main(0, 0);
    }
#endif
    for (;;) {}
}

void Default_Handler(void) {
    for (;;) {}
}
