"""Each C kernel against TFLM, through hand-built single-op int8 models: 0 LSB.

Every case runs 32 int8 samples: uniform ones plus all -128, all 127 and alternating
extremes. Cases cover zero points at -128 / 127, saturation at -128 / 127 (checked to
happen), padding at borders (SAME with odd and even sizes, VALID), stride 2, dilation 2,
depth multipliers, per-tensor and per-channel filters, an all-zero weight channel, RELU /
RELU6 clamping and broadcasting.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest

from codegen_single_op import ACT, PADDING, T, conv_options, out_size, random_filter, write_model
from tinyshare.errors import UnsupportedOpError


def _conv(path: Path, rng, *, depthwise=False, x=(1, 7, 7, 3), out_c=4, k=(3, 3), stride=(1, 1),
          dilation=(1, 1), padding="SAME", act="NONE", in_q=(0.02, 5), out_q=(0.05, -3),
          per_tensor=False, zero_channel=None, bias=True) -> Path:
    oh = out_size(x[1], k[0], stride[0], dilation[0], padding)
    ow = out_size(x[2], k[1], stride[1], dilation[1], padding)
    wshape = (1, *k, out_c) if depthwise else (out_c, *k, x[3])
    w = random_filter(rng, wshape)
    scales = [float(v) for v in rng.uniform(0.002, 0.01, out_c)]
    if zero_channel is not None:
        (w[..., zero_channel] if depthwise else w[zero_channel])[...] = 0
        scales[zero_channel] = 1e-12  # an all-zero channel: the converter's tiny scale
    if per_tensor:
        scales = scales[0]
    b_scale = [in_q[0] * s for s in (scales if isinstance(scales, list) else [scales])]
    inputs = [T(x, scale=in_q[0], zero_point=in_q[1]),
              T(wshape, scale=scales, qdim=3 if depthwise else 0, data=w)]
    inputs.append(T((out_c,), "int32", scale=b_scale, data=rng.integers(-3000, 3000, out_c))
                  if bias else None)
    options = conv_options(padding, stride, dilation, act)
    if depthwise:
        options["depthMultiplier"] = out_c // x[3]
    return write_model(path, "DEPTHWISE_CONV_2D" if depthwise else "CONV_2D", inputs,
                       T((x[0], oh, ow, out_c), scale=out_q[0], zero_point=out_q[1]),
                       "DepthwiseConv2DOptions" if depthwise else "Conv2DOptions", options)


def _fc(path: Path, rng, *, n_in=32, n_out=10, per_tensor=False, bias=True, act="NONE",
        in_q=(0.03, -7), out_q=(0.2, 4)) -> Path:
    w = random_filter(rng, (n_out, n_in))
    scales = [float(v) for v in rng.uniform(0.002, 0.01, n_out)]
    if per_tensor:
        scales = scales[0]
    b_scale = [in_q[0] * s for s in (scales if isinstance(scales, list) else [scales])]
    return write_model(
        path, "FULLY_CONNECTED",
        [T((1, n_in), scale=in_q[0], zero_point=in_q[1]), T((n_out, n_in), scale=scales, data=w),
         T((n_out,), "int32", scale=b_scale, data=rng.integers(-5000, 5000, n_out)) if bias else None],
        T((1, n_out), scale=out_q[0], zero_point=out_q[1]), "FullyConnectedOptions",
        {"fusedActivationFunction": ACT[act]})


def _add(path: Path, rng, *, x=(1, 4, 5, 6), other=(6,), qa=(0.05, 3), qb=(0.02, -10),
         qy=(0.06, 0), act="NONE", self_add=False) -> Path:
    b = 0 if self_add else T(other, scale=qb[0], zero_point=qb[1],
                             data=rng.integers(-128, 128, other))
    return write_model(path, "ADD", [T(x, scale=qa[0], zero_point=qa[1]), b],
                       T(x, scale=qy[0], zero_point=qy[1]), "AddOptions",
                       {"fusedActivationFunction": ACT[act]})


def _mean(path: Path, rng, *, x=(1, 5, 7, 6), axes=(1, 2), keep=True, qx=(0.05, -20),
          qy=(0.02, 10)) -> Path:
    rank = len(x)
    reduced = {a % rank for a in axes}
    out = tuple(1 if i in reduced else d for i, d in enumerate(x)) if keep else \
        tuple(d for i, d in enumerate(x) if i not in reduced)
    return write_model(path, "MEAN", [T(x, scale=qx[0], zero_point=qx[1]),
                                      T((len(axes),), "int32", data=np.array(axes))],
                       T(out, scale=qy[0], zero_point=qy[1]), "ReducerOptions", {"keepDims": keep})


def _max_pool(path: Path, rng, *, x=(1, 7, 9, 3), k=(3, 3), stride=(2, 2), padding="SAME",
              act="NONE", q=(0.05, 10)) -> Path:
    oh = out_size(x[1], k[0], stride[0], 1, padding)
    ow = out_size(x[2], k[1], stride[1], 1, padding)
    return write_model(path, "MAX_POOL_2D", [T(x, scale=q[0], zero_point=q[1])],
                       T((x[0], oh, ow, x[3]), scale=q[0], zero_point=q[1]), "Pool2DOptions",
                       {"padding": PADDING[padding], "strideH": stride[0], "strideW": stride[1],
                        "filterHeight": k[0], "filterWidth": k[1],
                        "fusedActivationFunction": ACT[act]})


def _pad(path: Path, rng, *, x=(1, 5, 4, 2), pads=((0, 0), (2, 3), (1, 0), (0, 1)),
         q=(0.1, -5), value=None) -> Path:
    out = tuple(d + a + b for d, (a, b) in zip(x, pads, strict=True))
    inputs = [T(x, scale=q[0], zero_point=q[1]), T((len(x), 2), "int32", data=np.array(pads))]
    if value is not None:
        inputs.append(T((1,), scale=q[0], zero_point=q[1], data=np.array([value])))
    return write_model(path, "PADV2" if value is not None else "PAD", inputs,
                       T(out, scale=q[0], zero_point=q[1]))


def _transpose(path: Path, rng, *, x=(1, 4, 5, 6), perm=(0, 3, 1, 2), q=(0.1, 7)) -> Path:
    return write_model(path, "TRANSPOSE", [T(x, scale=q[0], zero_point=q[1]),
                                           T((len(perm),), "int32", data=np.array(perm))],
                       T(tuple(x[p] for p in perm), scale=q[0], zero_point=q[1]))


def _reshape(path: Path, rng, *, x=(1, 4, 6, 2), out=(1, 48), q=(0.1, 7)) -> Path:
    return write_model(path, "RESHAPE", [T(x, scale=q[0], zero_point=q[1]),
                                         T((len(out),), "int32", data=np.array(out))],
                       T(out, scale=q[0], zero_point=q[1]))


# id -> (builder, kwargs, the output must saturate at both -128 and 127)
CASES = {
    "conv-3x3-same": (_conv, {}, False),
    "conv-stride2-valid-relu6-zp-128": (_conv, dict(x=(1, 9, 8, 2), stride=(2, 2), padding="VALID",
                                                    act="RELU6", in_q=(0.02, -128)), False),
    "conv-dilation2-same-even-zp127": (_conv, dict(x=(1, 8, 9, 3), dilation=(2, 2),
                                                   in_q=(0.02, 127)), False),
    "conv-saturating-zero-channel": (_conv, dict(out_q=(0.004, 0), zero_channel=1), True),
    "conv-1x1-per-tensor-stride2-relu": (_conv, dict(k=(1, 1), stride=(2, 2), per_tensor=True,
                                                     act="RELU", out_c=5), False),
    "conv-5x3-stride2-same-odd-no-bias": (_conv, dict(x=(1, 7, 6, 2), k=(5, 3), stride=(2, 2),
                                                      bias=False), False),
    "dw-mult8-1ch-relu": (_conv, dict(depthwise=True, x=(1, 8, 8, 1), out_c=8, act="RELU"), False),
    "dw-stride2-same": (_conv, dict(depthwise=True, x=(1, 10, 9, 4), out_c=4, stride=(2, 2)), False),
    "dw-dilation2-valid-mult2-per-tensor-zp-128": (
        _conv, dict(depthwise=True, x=(1, 9, 9, 3), out_c=6, dilation=(2, 2), padding="VALID",
                    per_tensor=True, in_q=(0.02, -128)), False),
    "dw-saturating-zero-channel-zp127": (_conv, dict(depthwise=True, x=(1, 6, 6, 4), out_c=4,
                                                     out_q=(0.002, 0), zero_channel=2,
                                                     in_q=(0.02, 127)), True),
    "dw-10x4-mult16-stride2-valid": (_conv, dict(depthwise=True, x=(1, 19, 12, 1), k=(10, 4),
                                                 out_c=16, stride=(2, 2), padding="VALID"), False),
    "fc-per-channel": (_fc, {}, False),
    "fc-per-tensor-no-bias-relu": (_fc, dict(n_in=24, n_out=7, per_tensor=True, bias=False,
                                             act="RELU"), False),
    "fc-saturating": (_fc, dict(out_q=(0.01, 0)), True),
    "add-broadcast-relu": (_add, dict(act="RELU"), False),
    "add-same-shape-const-zp127": (_add, dict(x=(1, 3, 4, 5), other=(1, 3, 4, 5), qa=(0.03, 127),
                                              qy=(0.05, -128)), False),
    "add-self-saturating": (_add, dict(self_add=True, qa=(0.05, 0), qy=(0.05, 0)), True),
    "mean-hw-keepdims": (_mean, {}, False),
    "mean-last-two-axes": (_mean, dict(x=(1, 6, 5, 4), axes=(2, 3), keep=False), False),
    "mean-negative-axis": (_mean, dict(x=(1, 3, 4, 10), axes=(-1,), keep=False,
                                       qx=(0.05, 127), qy=(0.03, -128)), False),
    "mean-same-quantization": (_mean, dict(x=(1, 4, 4, 3), qx=(0.05, -3), qy=(0.05, -3)), False),
    "maxpool-3x3-stride2-same-odd": (_max_pool, {}, False),
    "maxpool-2x2-valid-relu": (_max_pool, dict(x=(1, 6, 8, 4), k=(2, 2), padding="VALID",
                                               act="RELU", q=(0.05, -10)), False),
    "pad-4d": (_pad, {}, False),
    "padv2-constant": (_pad, dict(value=-77), False),
    "transpose-0312": (_transpose, {}, False),
    "reshape": (_reshape, {}, False),
}


@pytest.mark.parametrize("case", list(CASES))
def test_kernel_is_bit_exact_with_tflm(case, tmp_path, check_bit_exact):
    build, kwargs, saturates = CASES[case]
    rng = np.random.default_rng(zlib.crc32(case.encode()))
    path = build(tmp_path / f"{case}.tflite", rng, **kwargs)
    _, y = check_bit_exact(path)
    if saturates:
        assert y.min() == -128 and y.max() == 127, "the case must saturate both ways"


def test_unsupported_op_names_the_op_and_node(tmp_path):
    from tinyshare.targets.codegen import generate_c

    path = write_model(tmp_path / "logistic.tflite", "LOGISTIC", [T((1, 4), scale=0.1)],
                       T((1, 4), scale=1 / 256, zero_point=-128))
    with pytest.raises(UnsupportedOpError, match=r"LOGISTIC \(node 0\).*supported ops: ADD"):
        generate_c(path, tmp_path / "c")


def test_float_conv_is_refused(tmp_path):
    from tinyshare.targets.codegen import generate_c

    rng = np.random.default_rng(0)
    path = write_model(tmp_path / "float.tflite", "CONV_2D",
                       [T((1, 4, 4, 1), "float32"), T((2, 3, 3, 1), "float32",
                                                     data=rng.random((2, 3, 3, 1)))],
                       T((1, 4, 4, 2), "float32"), "Conv2DOptions", conv_options())
    with pytest.raises(UnsupportedOpError, match="int8"):
        generate_c(path, tmp_path / "c")
