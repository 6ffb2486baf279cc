/* MEAN, int8: TFLM's integer mean (reference_ops::QuantizedMeanOrSum): the sum minus
 * count * input zero point, requantized with a multiplier that already holds 1 / count.
 * The installed TFLM takes this path even when input and output share quantization
 * (measured: its raw-sum division would differ by 1 LSB on some values). */
#include "ts_kernels.h"
#include "ts_quant.h"

/* Advance a row-major index over dims; returns 0 after the last index. */
static int next_index(int *idx, const int *dims)
{
    int axis;
    for (axis = TS_MAX_RANK - 1; axis >= 0; --axis) {
        if (++idx[axis] < dims[axis]) {
            return 1;
        }
        idx[axis] = 0;
    }
    return 0;
}

static size_t offset_of(const int *idx, const int *strides)
{
    size_t off = 0;
    int axis;
    for (axis = 0; axis < TS_MAX_RANK; ++axis) {
        off += (size_t)idx[axis] * strides[axis];
    }
    return off;
}

void ts_mean(const ts_mean_params *p, const int8_t *input, int8_t *output)
{
    int out_idx[TS_MAX_RANK] = {0, 0, 0, 0, 0, 0};
    size_t o = 0;
    do {
        const int8_t *base = input + offset_of(out_idx, p->in_strides);
        int red_idx[TS_MAX_RANK] = {0, 0, 0, 0, 0, 0};
        int32_t sum = 0;
        int32_t out;
        do {
            sum += base[offset_of(red_idx, p->in_strides)];
        } while (next_index(red_idx, p->red_dims));
        out = ts_requant(sum - p->in_zero_point * p->count, p->mult, p->shift) + p->out_zero_point;
        output[o++] = (int8_t)ts_clamp(out, -128, 127);
    } while (next_index(out_idx, p->out_dims));
}
