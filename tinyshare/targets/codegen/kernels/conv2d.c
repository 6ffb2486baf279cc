/* CONV_2D, int8 per-channel: TFLM reference_integer_ops::ConvPerChannel arithmetic.
 * Taps that fall outside the input are skipped (zero padding in real terms). */
#include "ts_kernels.h"
#include "ts_quant.h"

void ts_conv2d(const ts_conv_params *p, const int8_t *input, const int8_t *filter,
               const int32_t *bias, int8_t *output)
{
    const int groups = p->in_c / p->filter_in_c;
    const int per_group = p->out_c / groups;
    int b, oy, ox, oc, ky, kx, ic;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *in_b = input + (size_t)b * p->in_h * p->in_w * p->in_c;
        for (oy = 0; oy < p->out_h; ++oy) {
            const int y0 = oy * p->stride_h - p->pad_h;
            for (ox = 0; ox < p->out_w; ++ox) {
                const int x0 = ox * p->stride_w - p->pad_w;
                for (oc = 0; oc < p->out_c; ++oc) {
                    const int c0 = (oc / per_group) * p->filter_in_c;
                    const int k = p->rq.per_channel ? oc : 0;
                    int32_t acc = 0;
                    for (ky = 0; ky < p->k_h; ++ky) {
                        const int y = y0 + ky * p->dilation_h;
                        if (y < 0 || y >= p->in_h) {
                            continue;
                        }
                        for (kx = 0; kx < p->k_w; ++kx) {
                            const int x = x0 + kx * p->dilation_w;
                            const int8_t *px;
                            const int8_t *w;
                            if (x < 0 || x >= p->in_w) {
                                continue;
                            }
                            px = in_b + ((size_t)y * p->in_w + x) * p->in_c + c0;
                            w = filter + (((size_t)oc * p->k_h + ky) * p->k_w + kx) * p->filter_in_c;
                            for (ic = 0; ic < p->filter_in_c; ++ic) {
                                acc += (int32_t)w[ic] * ((int32_t)px[ic] + p->in_offset);
                            }
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
