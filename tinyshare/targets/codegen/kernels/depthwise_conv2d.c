/* DEPTHWISE_CONV_2D, int8 per-channel: TFLM reference_integer_ops::DepthwiseConvPerChannel
 * arithmetic. Output channel ic * depth_multiplier + m reads input channel ic. */
#include "ts_kernels.h"
#include "ts_quant.h"

void ts_depthwise_conv2d(const ts_conv_params *p, const int8_t *input, const int8_t *filter,
                         const int32_t *bias, int8_t *output)
{
    int b, oy, ox, ic, m, ky, kx;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *in_b = input + (size_t)b * p->in_h * p->in_w * p->in_c;
        for (oy = 0; oy < p->out_h; ++oy) {
            const int y0 = oy * p->stride_h - p->pad_h;
            for (ox = 0; ox < p->out_w; ++ox) {
                const int x0 = ox * p->stride_w - p->pad_w;
                for (ic = 0; ic < p->in_c; ++ic) {
                    for (m = 0; m < p->depth_multiplier; ++m) {
                        const int oc = ic * p->depth_multiplier + m;
                        const int k = p->rq.per_channel ? oc : 0;
                        int32_t acc = 0;
                        for (ky = 0; ky < p->k_h; ++ky) {
                            const int y = y0 + ky * p->dilation_h;
                            if (y < 0 || y >= p->in_h) {
                                continue;
                            }
                            for (kx = 0; kx < p->k_w; ++kx) {
                                const int x = x0 + kx * p->dilation_w;
                                int32_t v, w;
                                if (x < 0 || x >= p->in_w) {
                                    continue;
                                }
                                v = in_b[((size_t)y * p->in_w + x) * p->in_c + ic];
                                w = filter[((size_t)ky * p->k_w + kx) * p->out_c + oc];
                                acc += w * (v + p->in_offset);
                            }
                        }
                        if (bias) {
                            acc += bias[oc];
                        }
                        acc = ts_requant(acc, p->rq.mult[k], p->rq.shift[k]) + p->out_offset;
                        output[(((size_t)b * p->out_h + oy) * p->out_w + ox) * p->out_c + oc] =
                            (int8_t)ts_clamp(acc, p->act_min, p->act_max);
                    }
                }
            }
        }
    }
}
