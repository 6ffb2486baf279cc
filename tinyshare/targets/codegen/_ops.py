"""Lowering of each supported TFLite op to one call of a C kernel (``kernels/<name>.c``).

A lowering reads the op's tensors and options from the ``Graph``, computes every constant
TFLM computes in its Prepare step (multipliers, shifts, padding, activation range) and
returns the kernel's parameter struct with the call. ``LOWERINGS`` is the table of
supported op codes; anything else raises ``UnsupportedOpError`` naming the op and node.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from tinyshare.errors import UnsupportedOpError
from tinyshare.targets.codegen import _quant as q
from tinyshare.targets.codegen._graph import Graph, Op, Tensor

MAX_RANK = 6
_PADDING_NAMES = {0: "SAME", 1: "VALID"}


class Context(Protocol):
    """What a lowering needs from the emitter."""

    single_rounding: bool  # the kernels are built with TS_SINGLE_ROUNDING=1

    def ptr(self, tensor: int) -> str:
        """C expression of the tensor's data: an arena slice or a constant array."""

    def table(self, mults: Sequence[int], shifts: Sequence[int]) -> str:
        """A requantization table (deduplicated); returns its ``ts_requant_table`` initializer."""

    def aliased(self, op: Op) -> bool:
        """True when the op's output shares its input's arena bytes (RESHAPE)."""


@dataclass(frozen=True)
class Lowered:
    """One op as C.

    Attributes:
        kernel: the kernel source it needs (``kernels/<kernel>.c``); None when it needs none.
        params_type: C type of its parameter struct; None when it has none.
        params: field -> C initializer text, in the struct's order.
        call: the C statement; ``{p}`` stands for the address of the parameter struct.
    """

    kernel: str | None
    params_type: str | None
    params: Mapping[str, str]
    call: str


def _fail(op: Op, why: str) -> UnsupportedOpError:
    return UnsupportedOpError(f"{op.code} (node {op.index}): {why}")


def _tensors(g: Graph, op: Op, n_in: int) -> tuple[list[Tensor | None], Tensor]:
    ins = [g.tensors[i] if i >= 0 else None for i in op.inputs]
    ins += [None] * (n_in - len(ins))
    return ins, g.tensors[op.outputs[0]]


def _require(op: Op, t: Tensor | None, dtype: str, what: str, *, constant: bool = False) -> Tensor:
    if t is None:
        raise _fail(op, f"{what} is missing")
    if t.dtype != dtype:
        raise _fail(op, f"{what} {t.name!r} is {t.dtype}; the C generator needs {dtype}")
    if constant and t.data is None:
        raise _fail(op, f"{what} {t.name!r} must be a constant")
    return t


def _arr(values: Sequence[int]) -> str:
    return "{" + ", ".join(str(int(v)) for v in values) + "}"


def _dims6(shape: Sequence[int], op: Op) -> list[int]:
    if len(shape) > MAX_RANK:
        raise _fail(op, f"rank {len(shape)} > {MAX_RANK}")
    return [1] * (MAX_RANK - len(shape)) + [int(d) for d in shape]


def _strides(dims: Sequence[int]) -> list[int]:
    out, s = [], 1
    for d in reversed(dims):
        out.append(s)
        s *= d
    return out[::-1]


def _activation(op: Op, out: Tensor) -> tuple[int, int]:
    act = getattr(op.options, "fusedActivationFunction", 0)
    try:
        return q.activation_range(act, out.scale, out.zero_point)
    except ValueError as exc:
        raise _fail(op, str(exc)) from None


def _window(op: Op, axis: str, in_size: int, kernel: int, out_size: int) -> int:
    o = op.options
    stride = getattr(o, f"stride{axis}")
    dilation = getattr(o, f"dilation{axis}Factor", 1) or 1
    want, pad = q.window_padding(o.padding, stride, dilation, in_size, kernel)
    if want != out_size:
        raise _fail(op, f"output size {out_size} along {axis} != {want} for "
                        f"{_PADDING_NAMES.get(o.padding, o.padding)} padding")
    return pad


def _conv_like(g: Graph, op: Op, ctx: Context, depthwise: bool) -> Lowered:
    (x, w, b), y = _tensors(g, op, 3)
    _require(op, x, "int8", "input")
    _require(op, w, "int8", "filter", constant=True)
    _require(op, y, "int8", "output")
    if b is not None:
        _require(op, b, "int32", "bias", constant=True)
    if any(w.zero_points):
        raise _fail(op, "filter zero points must be 0 (symmetric int8 weights)")
    if len(x.shape) != 4 or len(y.shape) != 4 or len(w.shape) != 4:
        raise _fail(op, f"needs 4-D input, filter and output, got {x.shape}, {w.shape}, {y.shape}")
    n, ih, iw, ic = x.shape
    _, oh, ow, oc = y.shape
    kh, kw = w.shape[1], w.shape[2]
    if depthwise and (w.shape[0] != 1 or w.shape[3] != oc or oc % ic):
        raise _fail(op, f"filter {w.shape} does not fit {ic} -> {oc} channels")
    if not depthwise and (w.shape[0] != oc or ic % w.shape[3] or oc % (ic // w.shape[3])):
        raise _fail(op, f"filter {w.shape} does not fit {ic} -> {oc} channels")
    if len(w.scales) not in (1, oc):
        raise _fail(op, f"{len(w.scales)} filter scales for {oc} output channels")
    mults, shifts = zip(*(q.conv_multiplier(x.scale, s, y.scale, ctx.single_rounding)
                          for s in w.scales), strict=True)
    o = op.options
    act_min, act_max = _activation(op, y)
    params = {
        "batches": n, "in_h": ih, "in_w": iw, "in_c": ic, "out_h": oh, "out_w": ow, "out_c": oc,
        "k_h": kh, "k_w": kw, "filter_in_c": 0 if depthwise else w.shape[3],
        "depth_multiplier": oc // ic if depthwise else 0,
        "stride_h": o.strideH, "stride_w": o.strideW,
        "dilation_h": o.dilationHFactor or 1, "dilation_w": o.dilationWFactor or 1,
        "pad_h": _window(op, "H", ih, kh, oh), "pad_w": _window(op, "W", iw, kw, ow),
        "in_offset": -x.zero_point, "out_offset": y.zero_point,
        "act_min": act_min, "act_max": act_max, "rq": ctx.table(mults, shifts),
    }
    kernel = "depthwise_conv2d" if depthwise else "conv2d"
    bias = ctx.ptr(b.index) if b is not None else "NULL"
    call = f"ts_{kernel}({{p}}, {ctx.ptr(x.index)}, {ctx.ptr(w.index)}, {bias}, {ctx.ptr(y.index)});"
    return Lowered(kernel, "ts_conv_params", {k: str(v) for k, v in params.items()}, call)


def _conv2d(g: Graph, op: Op, ctx: Context) -> Lowered:
    return _conv_like(g, op, ctx, depthwise=False)


def _depthwise(g: Graph, op: Op, ctx: Context) -> Lowered:
    return _conv_like(g, op, ctx, depthwise=True)


def _fully_connected(g: Graph, op: Op, ctx: Context) -> Lowered:
    (x, w, b), y = _tensors(g, op, 3)
    _require(op, x, "int8", "input")
    _require(op, w, "int8", "filter", constant=True)
    _require(op, y, "int8", "output")
    if b is not None:
        _require(op, b, "int32", "bias", constant=True)
    if getattr(op.options, "weightsFormat", 0) != 0:
        raise _fail(op, "only the DEFAULT weights format is supported")
    if len(w.shape) != 2:
        raise _fail(op, f"filter shape {w.shape} is not 2-D")
    out_depth, accum = w.shape
    if x.numel % accum or y.numel != (x.numel // accum) * out_depth:
        raise _fail(op, f"input {x.shape} and output {y.shape} do not fit filter {w.shape}")
    per_channel = len(w.scales) > 1
    if per_channel:
        if len(w.scales) != out_depth:
            raise _fail(op, f"{len(w.scales)} filter scales for {out_depth} outputs")
        pairs = [q.conv_multiplier(x.scale, s, y.scale, ctx.single_rounding) for s in w.scales]
        filter_offset = 0
    else:
        pairs = [q.fc_per_tensor_multiplier(x.scale, w.scale, y.scale, ctx.single_rounding)]
        filter_offset = -w.zero_point
    mults, shifts = zip(*pairs, strict=True)
    act_min, act_max = _activation(op, y)
    params = {"batches": x.numel // accum, "accum_depth": accum, "out_depth": out_depth,
              "in_offset": -x.zero_point, "filter_offset": filter_offset,
              "out_offset": y.zero_point, "act_min": act_min, "act_max": act_max,
              "rq": ctx.table(mults, shifts)}
    bias = ctx.ptr(b.index) if b is not None else "NULL"
    call = f"ts_fully_connected({{p}}, {ctx.ptr(x.index)}, {ctx.ptr(w.index)}, {bias}, {ctx.ptr(y.index)});"
    return Lowered("fully_connected", "ts_fc_params", {k: str(v) for k, v in params.items()}, call)


def _broadcast_strides(shape: Sequence[int], out6: Sequence[int], op: Op) -> list[int]:
    dims = _dims6(shape, op)
    return [0 if d == 1 and o != 1 else s for d, o, s in zip(dims, out6, _strides(dims), strict=True)]


def _add(g: Graph, op: Op, ctx: Context) -> Lowered:
    (a, b), y = _tensors(g, op, 2)
    for t, what in ((a, "input 1"), (b, "input 2"), (y, "output")):
        _require(op, t, "int8", what)
    try:
        out_shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise _fail(op, f"shapes {a.shape} and {b.shape} do not broadcast") from None
    if int(np.prod(out_shape)) != y.numel:
        raise _fail(op, f"output {y.shape} is not the broadcast shape {out_shape}")
    out6 = _dims6(out_shape, op)
    (m1, s1), (m2, s2), (mo, so) = q.add_multipliers(a.scale, b.scale, y.scale,
                                                         single_rounding=ctx.single_rounding)
    act_min, act_max = _activation(op, y)
    params = {"out_dims": _arr(out6), "in1_strides": _arr(_broadcast_strides(a.shape, out6, op)),
              "in2_strides": _arr(_broadcast_strides(b.shape, out6, op)),
              "in1_offset": -a.zero_point, "in2_offset": -b.zero_point,
              "out_offset": y.zero_point, "left_shift": 20,
              "in1_mult": m1, "in2_mult": m2, "out_mult": mo,
              "in1_shift": s1, "in2_shift": s2, "out_shift": so,
              "act_min": act_min, "act_max": act_max}
    call = f"ts_add({{p}}, {ctx.ptr(a.index)}, {ctx.ptr(b.index)}, {ctx.ptr(y.index)});"
    return Lowered("add", "ts_add_params", {k: str(v) for k, v in params.items()}, call)


def _mean(g: Graph, op: Op, ctx: Context) -> Lowered:
    (x, axes_t), y = _tensors(g, op, 2)
    _require(op, x, "int8", "input")
    _require(op, y, "int8", "output")
    if axes_t is None or axes_t.data is None:
        raise _fail(op, "the axes must be a constant")
    rank = len(x.shape)
    axes = sorted({int(a) % rank for a in np.ravel(axes_t.data)})
    dims = _dims6(x.shape, op)
    lead = MAX_RANK - rank
    reduced = {lead + a for a in axes}
    out_dims = [1 if i in reduced else d for i, d in enumerate(dims)]
    red_dims = [d if i in reduced else 1 for i, d in enumerate(dims)]
    count = int(np.prod(red_dims))
    mult, shift = q.mean_multiplier(x.scale, y.scale, count, ctx.single_rounding)
    params = {"out_dims": _arr(out_dims), "red_dims": _arr(red_dims), "in_strides": _arr(_strides(dims)),
              "count": count, "in_zero_point": x.zero_point,
              "out_zero_point": y.zero_point, "mult": mult, "shift": shift}
    call = f"ts_mean({{p}}, {ctx.ptr(x.index)}, {ctx.ptr(y.index)});"
    return Lowered("mean", "ts_mean_params", {k: str(v) for k, v in params.items()}, call)


def _max_pool(g: Graph, op: Op, ctx: Context) -> Lowered:
    (x,), y = _tensors(g, op, 1)
    _require(op, x, "int8", "input")
    _require(op, y, "int8", "output")
    if x.scale != y.scale or x.zero_point != y.zero_point:
        raise _fail(op, "input and output quantization must match")
    o = op.options
    n, ih, iw, c = x.shape
    _, oh, ow, _ = y.shape
    act_min, act_max = _activation(op, y)
    params = {"batches": n, "in_h": ih, "in_w": iw, "channels": c, "out_h": oh, "out_w": ow,
              "k_h": o.filterHeight, "k_w": o.filterWidth, "stride_h": o.strideH,
              "stride_w": o.strideW, "pad_h": _window(op, "H", ih, o.filterHeight, oh),
              "pad_w": _window(op, "W", iw, o.filterWidth, ow),
              "act_min": act_min, "act_max": act_max}
    call = f"ts_max_pool2d({{p}}, {ctx.ptr(x.index)}, {ctx.ptr(y.index)});"
    return Lowered("max_pool2d", "ts_pool_params", {k: str(v) for k, v in params.items()}, call)


def _pad(g: Graph, op: Op, ctx: Context) -> Lowered:
    (x, pads, value), y = _tensors(g, op, 3)
    _require(op, x, "int8", "input")
    _require(op, y, "int8", "output")
    if pads is None or pads.data is None:
        raise _fail(op, "the paddings must be a constant")
    if x.scale != y.scale or x.zero_point != y.zero_point:
        raise _fail(op, "input and output quantization must match")
    if value is not None:
        _require(op, value, "int8", "constant value", constant=True)
    pad_value = int(np.ravel(value.data)[0]) if value is not None else y.zero_point
    p = np.asarray(pads.data, dtype=np.int64).reshape(-1, 2)
    lead = [0] * (MAX_RANK - len(x.shape))
    params = {"in_dims": _arr(_dims6(x.shape, op)), "before": _arr(lead + list(p[:, 0])),
              "out_dims": _arr(_dims6(y.shape, op)), "pad_value": pad_value}
    call = f"ts_pad({{p}}, {ctx.ptr(x.index)}, {ctx.ptr(y.index)});"
    return Lowered("pad", "ts_pad_params", {k: str(v) for k, v in params.items()}, call)


def _transpose(g: Graph, op: Op, ctx: Context) -> Lowered:
    (x, perm_t), y = _tensors(g, op, 2)
    _require(op, x, "int8", "input")
    _require(op, y, "int8", "output")
    if perm_t is None or perm_t.data is None:
        raise _fail(op, "the permutation must be a constant")
    perm = [int(v) for v in np.ravel(perm_t.data)]
    in_strides = _strides(x.shape)
    lead = MAX_RANK - len(perm)
    params = {"out_dims": _arr(_dims6(y.shape, op)),
              "in_strides": _arr([0] * lead + [in_strides[a] for a in perm])}
    call = f"ts_transpose({{p}}, {ctx.ptr(x.index)}, {ctx.ptr(y.index)});"
    return Lowered("transpose", "ts_transpose_params", {k: str(v) for k, v in params.items()}, call)


def _reshape(g: Graph, op: Op, ctx: Context) -> Lowered:
    x, y = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    if x.numel != y.numel or x.dtype != y.dtype:
        raise _fail(op, f"{x.shape} {x.dtype} -> {y.shape} {y.dtype} is not a reshape")
    if ctx.aliased(op):
        return Lowered(None, None, {}, "/* aliased: the output reuses the input's bytes */")
    call = f"ts_reshape({ctx.ptr(x.index)}, {ctx.ptr(y.index)}, {x.numel});"
    return Lowered("reshape", None, {}, call)


LOWERINGS: Mapping[str, Callable[[Graph, Op, Context], Lowered]] = {
    "ADD": _add,
    "CONV_2D": _conv2d,
    "DEPTHWISE_CONV_2D": _depthwise,
    "FULLY_CONNECTED": _fully_connected,
    "MAX_POOL_2D": _max_pool,
    "MEAN": _mean,
    "PAD": _pad,
    "PADV2": _pad,
    "RESHAPE": _reshape,
    "TRANSPOSE": _transpose,
}


def lower(g: Graph, op: Op, ctx: Context) -> Lowered:
    """Lower ``op`` to a kernel call.

    Raises:
        UnsupportedOpError: the op code has no kernel, or its tensors/options are outside
            what the kernel implements (the message names the op, the node and why).
    """
    fn = LOWERINGS.get(op.code)
    if fn is None:
        raise _fail(op, f"no C kernel; supported ops: {', '.join(sorted(LOWERINGS))}")
    return fn(g, op, ctx)
