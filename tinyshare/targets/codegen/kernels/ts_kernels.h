/* tinyshare int8 kernels: plain C99, TFLite Micro reference arithmetic.
 *
 * Tensors are dense, row-major, NHWC for images. Every parameter struct is filled by the
 * generator (model.c) from the .tflite file; the kernels never allocate and never fail.
 * Offsets follow TFLite: in_offset = -input zero point, out_offset = output zero point.
 * act_min / act_max is the output range after the fused activation (RELU, RELU6, none).
 */
#ifndef TS_KERNELS_H
#define TS_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#define TS_MAX_RANK 6

/* Requantization of one op: mult[c] * 2^(shift[c] - 31) for channel c, or entry 0 for
 * every channel when per_channel is 0. */
typedef struct {
    const int32_t *mult;
    const int8_t *shift;
    int per_channel;
} ts_requant_table;

/* CONV_2D and DEPTHWISE_CONV_2D. Conv filters are (out_c, k_h, k_w, filter_in_c), with
 * in_c / filter_in_c groups; depthwise filters are (1, k_h, k_w, in_c * depth_multiplier). */
typedef struct {
    int batches;
    int in_h, in_w, in_c;
    int out_h, out_w, out_c;
    int k_h, k_w;
    int filter_in_c;      /* conv only */
    int depth_multiplier; /* depthwise only */
    int stride_h, stride_w;
    int dilation_h, dilation_w;
    int pad_h, pad_w; /* top / left padding, as TFLite computes it */
    int32_t in_offset, out_offset;
    int32_t act_min, act_max;
    ts_requant_table rq;
} ts_conv_params;

/* FULLY_CONNECTED: filter (out_depth, accum_depth); filter_offset is -filter zero point
 * (0 for per-channel filters). */
typedef struct {
    int batches, accum_depth, out_depth;
    int32_t in_offset, filter_offset, out_offset;
    int32_t act_min, act_max;
    ts_requant_table rq;
} ts_fc_params;

/* ADD with broadcasting: both inputs are walked with their own strides (0 on a broadcast
 * dimension) over out_dims, padded to TS_MAX_RANK with leading 1s. */
typedef struct {
    int out_dims[TS_MAX_RANK];
    int in1_strides[TS_MAX_RANK], in2_strides[TS_MAX_RANK];
    int32_t in1_offset, in2_offset, out_offset;
    int left_shift;
    int32_t in1_mult, in2_mult, out_mult;
    int in1_shift, in2_shift, out_shift;
    int32_t act_min, act_max;
} ts_add_params;

/* MEAN: the output walks out_dims (kept axes, reduced ones set to 1) and each output sums
 * the input region red_dims (reduced axes, kept ones set to 1); in_strides serve both.
 * The sum minus count * input zero point is requantized with mult / shift, which already
 * fold in 1 / count (TFLM does this even when input and output share quantization). */
typedef struct {
    int out_dims[TS_MAX_RANK], red_dims[TS_MAX_RANK], in_strides[TS_MAX_RANK];
    int32_t count;
    int32_t in_zero_point, out_zero_point;
    int32_t mult;
    int shift;
} ts_mean_params;

/* MAX_POOL_2D over NHWC. */
typedef struct {
    int batches, in_h, in_w, channels, out_h, out_w;
    int k_h, k_w, stride_h, stride_w, pad_h, pad_w;
    int32_t act_min, act_max;
} ts_pool_params;

/* PAD: out_dims = in_dims + before + after per axis; new elements hold pad_value. */
typedef struct {
    int in_dims[TS_MAX_RANK], before[TS_MAX_RANK], out_dims[TS_MAX_RANK];
    int8_t pad_value;
} ts_pad_params;

/* TRANSPOSE: output index i reads input index perm(i); in_strides are the input strides
 * permuted into output order. */
typedef struct {
    int out_dims[TS_MAX_RANK], in_strides[TS_MAX_RANK];
} ts_transpose_params;

void ts_conv2d(const ts_conv_params *p, const int8_t *input, const int8_t *filter,
               const int32_t *bias, int8_t *output);
void ts_depthwise_conv2d(const ts_conv_params *p, const int8_t *input, const int8_t *filter,
                         const int32_t *bias, int8_t *output);
void ts_fully_connected(const ts_fc_params *p, const int8_t *input, const int8_t *filter,
                        const int32_t *bias, int8_t *output);
void ts_add(const ts_add_params *p, const int8_t *in1, const int8_t *in2, int8_t *output);
void ts_mean(const ts_mean_params *p, const int8_t *input, int8_t *output);
void ts_max_pool2d(const ts_pool_params *p, const int8_t *input, int8_t *output);
void ts_pad(const ts_pad_params *p, const int8_t *input, int8_t *output);
void ts_transpose(const ts_transpose_params *p, const int8_t *input, int8_t *output);
void ts_reshape(const int8_t *input, int8_t *output, size_t nbytes);

/* Codebook (clustered) weights: writes numel int8 values to output, element i being
 * table[c * 2^bits + k] with c = (i / inner) % channels and k the bits-wide index at bit
 * i * bits of indices (the first element in the low bits of byte 0); bits is 1, 2 or 4. */
void ts_unpack_codebook(const uint8_t *indices, const int8_t *table, int bits, int channels,
                        size_t inner, size_t numel, int8_t *output);

#endif /* TS_KERNELS_H */
