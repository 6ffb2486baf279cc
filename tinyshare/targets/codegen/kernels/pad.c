/* PAD / PADV2, int8: copy the input into the middle of an output filled with pad_value
 * (the output zero point for PAD, the constant operand for PADV2). */
#include <string.h>

#include "ts_kernels.h"

void ts_pad(const ts_pad_params *p, const int8_t *input, int8_t *output)
{
    int out_strides[TS_MAX_RANK];
    int idx[TS_MAX_RANK] = {0, 0, 0, 0, 0, 0};
    size_t total = 1;
    const int row = p->in_dims[TS_MAX_RANK - 1];
    int axis;
    for (axis = TS_MAX_RANK - 1; axis >= 0; --axis) {
        out_strides[axis] = (int)total;
        total *= (size_t)p->out_dims[axis];
    }
    memset(output, p->pad_value, total);
    for (axis = 0; axis < TS_MAX_RANK; ++axis) {
        if (p->in_dims[axis] == 0) {
            return;
        }
    }
    /* Walk the input row by row (all axes but the last). */
    for (;;) {
        size_t o = (size_t)p->before[TS_MAX_RANK - 1];
        for (axis = 0; axis < TS_MAX_RANK - 1; ++axis) {
            o += (size_t)(idx[axis] + p->before[axis]) * out_strides[axis];
        }
        memcpy(output + o, input, (size_t)row);
        input += row;
        for (axis = TS_MAX_RANK - 2; axis >= 0; --axis) {
            if (++idx[axis] < p->in_dims[axis]) {
                break;
            }
            idx[axis] = 0;
        }
        if (axis < 0) {
            return;
        }
    }
}
