/* ADD, int8 with broadcasting: TFLM's AddFunc arithmetic. Both inputs are moved to a
 * common scale (offset, shifted left by left_shift bits, then each scaled by at most 1/2),
 * summed, and the sum is requantized to the output. */
#include "ts_kernels.h"
#include "ts_quant.h"

static int8_t add_one(const ts_add_params *p, int8_t a, int8_t b)
{
    const int32_t x1 = ((int32_t)a + p->in1_offset) * ((int32_t)1 << p->left_shift);
    const int32_t x2 = ((int32_t)b + p->in2_offset) * ((int32_t)1 << p->left_shift);
    const int32_t s1 = ts_requant(x1, p->in1_mult, p->in1_shift);
    const int32_t s2 = ts_requant(x2, p->in2_mult, p->in2_shift);
    const int32_t out = ts_requant(s1 + s2, p->out_mult, p->out_shift) + p->out_offset;
    return (int8_t)ts_clamp(out, p->act_min, p->act_max);
}

void ts_add(const ts_add_params *p, const int8_t *in1, const int8_t *in2, int8_t *output)
{
    const int *d = p->out_dims;
    const int *s1 = p->in1_strides;
    const int *s2 = p->in2_strides;
    size_t o = 0;
    int i0, i1, i2, i3, i4, i5;
    for (i0 = 0; i0 < d[0]; ++i0)
    for (i1 = 0; i1 < d[1]; ++i1)
    for (i2 = 0; i2 < d[2]; ++i2)
    for (i3 = 0; i3 < d[3]; ++i3)
    for (i4 = 0; i4 < d[4]; ++i4) {
        const int8_t *a = in1 + (size_t)i0 * s1[0] + (size_t)i1 * s1[1] + (size_t)i2 * s1[2]
                          + (size_t)i3 * s1[3] + (size_t)i4 * s1[4];
        const int8_t *b = in2 + (size_t)i0 * s2[0] + (size_t)i1 * s2[1] + (size_t)i2 * s2[2]
                          + (size_t)i3 * s2[3] + (size_t)i4 * s2[4];
        for (i5 = 0; i5 < d[5]; ++i5) {
            output[o++] = add_one(p, a[(size_t)i5 * s1[5]], b[(size_t)i5 * s2[5]]);
        }
    }
}
