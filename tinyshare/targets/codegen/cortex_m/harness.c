/* tinyshare Cortex-M test harness (written by tinyshare), run under qemu-system-arm.
 *
 * Reads N int8 input vectors from "in.bin" and writes N int8 output vectors to "out.bin"
 * through semihosting (files in the emulator's working directory), the same format as
 * the host harness. Then prints one line:
 *
 *   ts-stats samples=N invoke_ticks=T calib_ticks=C calib_instructions=I
 *            stack_bytes=S stack_peak=P invoke_stack=Q
 *
 * Timing: SysTick on the processor clock, 24-bit down-counter with an interrupt per wrap.
 * Under qemu -icount shift=0 virtual time advances 1 ns per executed instruction, so
 * ticks convert to instructions with the calibration loop (C ticks for I instructions).
 * Stack: the reset handler paints the stack; before each model_invoke the free part is
 * painted again and a scan after it gives the deepest use, minus the caller's depth.
 */
#include <stdint.h>
#include <stdio.h>

#include "model.h"
#include "ts_cortex_m.h"

#define TS_CALIB_LOOPS 1000000u /* two instructions each: subs, bne */

#define TS_SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define TS_SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define TS_SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define TS_SYST_MAX 0x00FFFFFFu

void initialise_monitor_handles(void); /* librdimon: opens the semihosting stdio */

static int8_t in_buf[MODEL_INPUT_BYTES];
static int8_t out_buf[MODEL_OUTPUT_BYTES];
static volatile uint32_t systick_wraps;

void SysTick_Handler(void)
{
    ++systick_wraps;
}

static void ticks_start(void)
{
    TS_SYST_CSR = 0;
    TS_SYST_RVR = TS_SYST_MAX;
    TS_SYST_CVR = 0;
    TS_SYST_CSR = 7u; /* processor clock, interrupt on wrap, enable */
    while (TS_SYST_CVR == 0) {
        /* the first tick loads RVR; that load is not a wrap */
    }
    systick_wraps = 0;
}

static uint64_t ticks_now(void)
{
    uint32_t wraps, count;
    do {
        wraps = systick_wraps;
        count = TS_SYST_CVR;
    } while (wraps != systick_wraps);
    return (uint64_t)wraps * (TS_SYST_MAX + 1u) + (TS_SYST_MAX - count);
}

static uint64_t calibrate(void)
{
    uint32_t n = TS_CALIB_LOOPS;
    uint64_t t0 = ticks_now();
    __asm__ volatile("1:\n\tsubs %0, %0, #1\n\tbne 1b" : "+r"(n) : : "cc");
    return ticks_now() - t0;
}

static uint32_t max_u32(uint32_t a, uint32_t b)
{
    return a > b ? a : b;
}

int main(void)
{
    FILE *fin, *fout;
    size_t got;
    unsigned long samples = 0;
    uint64_t invoke_ticks = 0, calib_ticks, t0;
    uint32_t stack_peak = 0, invoke_stack = 0, depth;

    initialise_monitor_handles();
    ticks_start();
    calib_ticks = calibrate();
    fin = fopen("in.bin", "rb");
    fout = fopen("out.bin", "wb");
    if (fin == NULL || fout == NULL) {
        fprintf(stderr, "tinyshare: cannot open in.bin or out.bin\n");
        return 2;
    }
    while ((got = fread(in_buf, 1, sizeof in_buf, fin)) == sizeof in_buf) {
        stack_peak = max_u32(stack_peak, ts_stack_used());
        depth = ts_stack_depth();
        ts_stack_repaint();
        t0 = ticks_now();
        if (model_invoke(in_buf, out_buf) != 0) {
            fprintf(stderr, "tinyshare: model_invoke failed\n");
            return 1;
        }
        invoke_ticks += ticks_now() - t0;
        invoke_stack = max_u32(invoke_stack, ts_stack_used() - depth);
        if (fwrite(out_buf, 1, sizeof out_buf, fout) != sizeof out_buf) {
            fprintf(stderr, "tinyshare: write failed\n");
            return 1;
        }
        ++samples;
    }
    if (got != 0 || ferror(fin)) {
        fprintf(stderr, "tinyshare: input is not a whole number of %d-byte samples\n",
                MODEL_INPUT_BYTES);
        return 1;
    }
    fclose(fin);
    if (fclose(fout) != 0) {
        return 1;
    }
    stack_peak = max_u32(stack_peak, ts_stack_used());
    printf("ts-stats samples=%lu invoke_ticks=%llu calib_ticks=%llu calib_instructions=%lu "
           "stack_bytes=%lu stack_peak=%lu invoke_stack=%lu\n",
           samples, (unsigned long long)invoke_ticks, (unsigned long long)calib_ticks,
           (unsigned long)(2u * TS_CALIB_LOOPS), (unsigned long)ts_stack_size(),
           (unsigned long)stack_peak, (unsigned long)invoke_stack);
    return 0;
}
