"""Requantization constants exactly as TFLite Micro computes them in its Prepare step.

Scales in a ``.tflite`` are float32; TFLM widens them to double at the points named in
each function below, and the products and quotients here keep that order, so the integer
multipliers and shifts are the ones TFLM runs with (bit for bit).
"""

from __future__ import annotations

import math

import numpy as np

INT8_MIN, INT8_MAX = -128, 127

# ActivationFunctionType values of the TFLite schema.
_ACT_NONE, _ACT_RELU, _ACT_RELU_N1_TO_1, _ACT_RELU6 = 0, 1, 2, 3


def round_half_away(x: float) -> int:
    """``std::round``: ties away from zero (exact for float32 and double inputs)."""
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def quantize_multiplier(real: float, single_rounding: bool = False) -> tuple[int, int]:
    """TFLM ``QuantizeMultiplier``: ``real ≈ m * 2^(shift - 31)``.

    Args:
        real: a non-negative real multiplier (double).
        single_rounding: a ``TFLITE_SINGLE_ROUNDING`` build, which caps ``shift`` at 30.

    Returns:
        ``(m, shift)`` with ``m`` in [2^30, 2^31) (0 for tiny or zero multipliers) and
        ``shift`` >= -31 (<= 30 with ``single_rounding``).
    """
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = round_half_away(q * (1 << 31))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if single_rounding and shift > 30:  # the single-rounding multiply cannot shift further left
        return (1 << 31) - 1, 30
    return q_fixed, shift


def conv_multiplier(input_scale: float, filter_scale: float, output_scale: float,
                    single_rounding: bool = False) -> tuple[int, int]:
    """Per-channel conv / depthwise / FC multiplier (``PopulateConvolutionQuantizationParams``):
    ``double(s_in) * double(s_w) / double(s_out)``."""
    return quantize_multiplier(input_scale * filter_scale / output_scale, single_rounding)


def fc_per_tensor_multiplier(input_scale: float, filter_scale: float, output_scale: float,
                             single_rounding: bool = False) -> tuple[int, int]:
    """Per-tensor FULLY_CONNECTED (``GetQuantizedConvolutionMultipler``): the product
    ``s_in * s_w`` is taken in float32, then divided by ``s_out`` in double."""
    product = float(np.float32(input_scale) * np.float32(filter_scale))
    return quantize_multiplier(product / output_scale, single_rounding)


def add_multipliers(s1: float, s2: float, s_out: float, left_shift: int = 20,
                    single_rounding: bool = False,
                    ) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """ADD's three multipliers (``CalculateOpDataAdd``, int8: left shift 20).

    Returns:
        ``((m1, shift1), (m2, shift2), (m_out, shift_out))``.
    """
    twice_max = 2.0 * max(s1, s2)
    return (quantize_multiplier(s1 / twice_max, single_rounding),
            quantize_multiplier(s2 / twice_max, single_rounding),
            quantize_multiplier(twice_max / ((1 << left_shift) * s_out), single_rounding))


def mean_multiplier(input_scale: float, output_scale: float, count: int,
                    single_rounding: bool = False) -> tuple[int, int]:
    """MEAN's multiplier with ``1 / count`` folded in (``QuantizedMeanOrSum``): first
    ``QuantizeMultiplier(s_in / s_out)``, then ``m << k // count`` and ``shift - k`` with
    ``k = min(floor(log2(count)), 32, 31 + shift)``."""
    mult, shift = quantize_multiplier(input_scale / output_scale, single_rounding)
    k = min(count.bit_length() - 1, 32, 31 + shift)
    return (mult << k) // count, shift - k


def activation_range(activation: int, scale: float, zero_point: int) -> tuple[int, int]:
    """int8 output range after a fused activation (``CalculateActivationRangeQuantized``).

    The real bounds 0, 6, -1, 1 are quantized in float32 (``round(f / scale)`` rounded half
    away from zero, plus the zero point) and intersected with [-128, 127].

    Raises:
        ValueError: an activation other than NONE, RELU, RELU_N1_TO_1, RELU6.
    """
    def q(f: float) -> int:
        return zero_point + round_half_away(float(np.float32(f) / np.float32(scale)))

    if activation == _ACT_NONE:
        return INT8_MIN, INT8_MAX
    if activation == _ACT_RELU:
        return max(INT8_MIN, q(0.0)), INT8_MAX
    if activation == _ACT_RELU6:
        return max(INT8_MIN, q(0.0)), min(INT8_MAX, q(6.0))
    if activation == _ACT_RELU_N1_TO_1:
        return max(INT8_MIN, q(-1.0)), min(INT8_MAX, q(1.0))
    raise ValueError(f"fused activation {activation} is not supported")


def window_padding(padding: int, stride: int, dilation: int, in_size: int,
                   kernel: int) -> tuple[int, int]:
    """Output size and leading padding of one spatial axis (TFLite ``ComputePaddingHeightWidth``).

    Args:
        padding: the schema's Padding (0 SAME, 1 VALID).
        stride, dilation, in_size, kernel: the axis' parameters.

    Returns:
        ``(out_size, pad_before)``; an odd total pad puts the extra row/column after.
    """
    effective = (kernel - 1) * dilation + 1
    out = (in_size + stride - 1) // stride if padding == 0 else (in_size + stride - effective) // stride
    total = max(0, (out - 1) * stride + effective - in_size)
    return out, total // 2
