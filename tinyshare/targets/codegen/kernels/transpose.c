/* TRANSPOSE, int8: the output is written in order; each element reads the input through
 * the permuted strides. */
#include "ts_kernels.h"

void ts_transpose(const ts_transpose_params *p, const int8_t *input, int8_t *output)
{
    const int *d = p->out_dims;
    const int *s = p->in_strides;
    size_t o = 0;
    int i0, i1, i2, i3, i4, i5;
    for (i0 = 0; i0 < d[0]; ++i0)
    for (i1 = 0; i1 < d[1]; ++i1)
    for (i2 = 0; i2 < d[2]; ++i2)
    for (i3 = 0; i3 < d[3]; ++i3)
    for (i4 = 0; i4 < d[4]; ++i4) {
        const int8_t *src = input + (size_t)i0 * s[0] + (size_t)i1 * s[1] + (size_t)i2 * s[2]
                            + (size_t)i3 * s[3] + (size_t)i4 * s[4];
        for (i5 = 0; i5 < d[5]; ++i5) {
            output[o++] = src[(size_t)i5 * s[5]];
        }
    }
}
