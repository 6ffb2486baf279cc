/* MAX_POOL_2D, int8: TFLM reference_integer_ops::MaxPool. The window is clipped to the
 * input, so padding never contributes a value. */
#include "ts_kernels.h"
#include "ts_quant.h"

void ts_max_pool2d(const ts_pool_params *p, const int8_t *input, int8_t *output)
{
    int b, oy, ox, c, y, x;
    size_t o = 0;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *in_b = input + (size_t)b * p->in_h * p->in_w * p->channels;
        for (oy = 0; oy < p->out_h; ++oy) {
            const int y0 = oy * p->stride_h - p->pad_h;
            const int y_lo = y0 < 0 ? 0 : y0;
            const int y_hi = y0 + p->k_h < p->in_h ? y0 + p->k_h : p->in_h;
            for (ox = 0; ox < p->out_w; ++ox) {
                const int x0 = ox * p->stride_w - p->pad_w;
                const int x_lo = x0 < 0 ? 0 : x0;
                const int x_hi = x0 + p->k_w < p->in_w ? x0 + p->k_w : p->in_w;
                for (c = 0; c < p->channels; ++c) {
                    int32_t best = -128;
                    for (y = y_lo; y < y_hi; ++y) {
                        for (x = x_lo; x < x_hi; ++x) {
                            const int32_t v = in_b[((size_t)y * p->in_w + x) * p->channels + c];
                            best = v > best ? v : best;
                        }
                    }
                    output[o++] = (int8_t)ts_clamp(best, p->act_min, p->act_max);
                }
            }
        }
    }
}
