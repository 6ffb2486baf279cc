/* tinyshare Cortex-M test image: startup services the harness uses (written by tinyshare).
 *
 * The stack is the linker's .stack section [__stack_limit, __stack_top). The reset handler
 * paints it with TS_STACK_PATTERN; a scan from the bottom finds the deepest word written.
 */
#ifndef TS_CORTEX_M_H
#define TS_CORTEX_M_H

#include <stdint.h>

#define TS_STACK_PATTERN 0xA5A5A5A5u

/* Bytes from the top of the stack down to the deepest word that lost the pattern. */
uint32_t ts_stack_used(void);

/* Paint the free stack again: every word below the caller's frame. */
void ts_stack_repaint(void);

/* Bytes between the top of the stack and the caller's stack pointer. */
uint32_t ts_stack_depth(void);

/* Reserved stack, bytes (the .stack section). */
uint32_t ts_stack_size(void);

#endif /* TS_CORTEX_M_H */
