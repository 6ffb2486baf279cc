/* tinyshare Cortex-M startup (written by tinyshare): vector table, reset handler, faults.
 *
 * Reset: enable the FPU (and MVE) through CPACR when the build uses them, copy .data from
 * its load address, zero .bss and the model arena, paint the free stack, call main() and
 * leave through newlib's exit() (semihosting SYS_EXIT). A fault prints its name over
 * semihosting and stops the emulator with a non-zero status.
 */
#include <stdint.h>
#include <stdlib.h>

#include "ts_cortex_m.h"

extern uint32_t __data_load[], __data_start[], __data_end[];
extern uint32_t __bss_start[], __bss_end[];
extern uint32_t __arena_start[], __arena_end[];
extern uint32_t __stack_limit[], __stack_top[];

int main(void);
void Reset_Handler(void);

/* librdimon's sbrk stops the heap at this address; the reset handler sets the bottom of
 * the stack (it also stops at the current stack pointer). */
extern char *__heap_limit;

/* newlib's exit() calls the fini hooks; C needs none (we link without crti/crtn). */
void _init(void);
void _fini(void);
void _init(void) {}
void _fini(void) {}

#define TS_CPACR (*(volatile uint32_t *)0xE000ED88u)
#define TS_SH_WRITE0 0x04u
#define TS_SH_EXIT 0x18u
#define TS_ADP_RUNTIME_ERROR 0x20023u

static uint32_t ts_semihost(uint32_t op, const void *arg)
{
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

static void ts_fault(const char *what)
{
    ts_semihost(TS_SH_WRITE0, what);
    ts_semihost(TS_SH_EXIT, (const void *)TS_ADP_RUNTIME_ERROR);
    for (;;) {
    }
}

void Reset_Handler(void)
{
    uint32_t *src = __data_load;
    uint32_t *dst;
#if defined(__ARM_FP) || defined(__ARM_FEATURE_MVE)
    TS_CPACR |= 0xFu << 20; /* CP10 and CP11: full access */
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
    for (dst = __data_start; dst < __data_end;) {
        *dst++ = *src++;
    }
    for (dst = __bss_start; dst < __bss_end;) {
        *dst++ = 0;
    }
    for (dst = __arena_start; dst < __arena_end;) {
        *dst++ = 0;
    }
    __heap_limit = (char *)__stack_limit;
    ts_stack_repaint();
    exit(main());
}

uint32_t ts_stack_used(void)
{
    const volatile uint32_t *p = __stack_limit;
    while (p < __stack_top && *p == TS_STACK_PATTERN) {
        ++p;
    }
    return (uint32_t)((uintptr_t)__stack_top - (uintptr_t)p);
}

/* Naked, in assembly: the stack pointer read is exactly the caller's (a C body may read it
 * before its own prologue pushes, and then paint over its saved registers). */
__attribute__((naked)) void ts_stack_repaint(void)
{
    __asm__ volatile(
        "movw r0, #:lower16:__stack_limit\n\t"
        "movt r0, #:upper16:__stack_limit\n\t"
        "movw r1, #0xA5A5\n\t" /* TS_STACK_PATTERN */
        "movt r1, #0xA5A5\n\t"
        "mov r2, sp\n"
        "1:\n\t"
        "cmp r0, r2\n\t"
        "bhs 2f\n\t"
        "str r1, [r0], #4\n\t"
        "b 1b\n"
        "2:\n\t"
        "bx lr\n");
}

__attribute__((naked)) uint32_t ts_stack_depth(void)
{
    __asm__ volatile(
        "movw r0, #:lower16:__stack_top\n\t"
        "movt r0, #:upper16:__stack_top\n\t"
        "mov r1, sp\n\t"
        "subs r0, r0, r1\n\t"
        "bx lr\n");
}

uint32_t ts_stack_size(void)
{
    return (uint32_t)((uintptr_t)__stack_top - (uintptr_t)__stack_limit);
}

static void NMI_Handler(void) { ts_fault("tinyshare: NMI\n"); }
static void HardFault_Handler(void) { ts_fault("tinyshare: HardFault\n"); }
static void MemManage_Handler(void) { ts_fault("tinyshare: MemManage fault\n"); }
static void BusFault_Handler(void) { ts_fault("tinyshare: BusFault\n"); }
static void UsageFault_Handler(void) { ts_fault("tinyshare: UsageFault\n"); }
static void SecureFault_Handler(void) { ts_fault("tinyshare: SecureFault\n"); }
static void Unexpected_Handler(void) { ts_fault("tinyshare: unexpected exception\n"); }
void SysTick_Handler(void) __attribute__((weak, alias("Unexpected_Handler")));

typedef void (*ts_vector)(void);

__attribute__((section(".vectors"), used)) static const ts_vector ts_vectors[16] = {
    (ts_vector)(uintptr_t)__stack_top, /* initial main stack pointer */
    Reset_Handler,
    NMI_Handler,
    HardFault_Handler,
    MemManage_Handler,
    BusFault_Handler,
    UsageFault_Handler,
    SecureFault_Handler, /* Armv8-M; reserved on Armv7-M */
    0, 0, 0,
    Unexpected_Handler, /* SVCall */
    Unexpected_Handler, /* DebugMonitor */
    0,
    Unexpected_Handler, /* PendSV */
    SysTick_Handler,
};
