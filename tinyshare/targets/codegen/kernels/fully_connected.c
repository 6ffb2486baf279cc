/* FULLY_CONNECTED, int8: TFLM reference_integer_ops::FullyConnected (per-tensor, with the
 * filter offset) and FullyConnectedPerChannel (filter offset 0) arithmetic. */
#include "ts_kernels.h"
#include "ts_quant.h"

void ts_fully_connected(const ts_fc_params *p, const int8_t *input, const int8_t *filter,
                        const int32_t *bias, int8_t *output)
{
    int b, o, d;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *x = input + (size_t)b * p->accum_depth;
        for (o = 0; o < p->out_depth; ++o) {
            const int8_t *w = filter + (size_t)o * p->accum_depth;
            const int k = p->rq.per_channel ? o : 0;
            int32_t acc = 0;
            for (d = 0; d < p->accum_depth; ++d) {
                acc += ((int32_t)w[d] + p->filter_offset) * ((int32_t)x[d] + p->in_offset);
            }
            if (bias) {
                acc += bias[o];
            }
            acc = ts_requant(acc, p->rq.mult[k], p->rq.shift[k]) + p->out_offset;
            output[(size_t)b * p->out_depth + o] = (int8_t)ts_clamp(acc, p->act_min, p->act_max);
        }
    }
}
