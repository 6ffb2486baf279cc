"""Hand-built single-op int8 ``.tflite`` files, for checking each C kernel against TFLM.

Built with the flatbuffer schema shipped in ``ai_edge_litert`` (object API), so every
quantization parameter, padding mode, stride, dilation and activation is set exactly,
including the edge cases an exported model rarely shows (zero points at -128 / 127,
saturating scales, an all-zero weight channel). Each graph has one int8 input and one int8
output; every other operand is a constant.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

# schema enums
ACT = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3}
PADDING = {"SAME": 0, "VALID": 1}


@dataclass
class T:
    """One tensor: shape, dtype, quantization (per-channel when ``scale`` is a list) and,
    for constants, data."""

    shape: tuple[int, ...]
    dtype: str = "int8"
    scale: float | list[float] | None = None
    zero_point: int | list[int] = 0
    qdim: int = 0
    data: np.ndarray | None = None
    name: str = ""


def write_model(path: Path, op_name: str, inputs: list[T | int | None], output: T,
                options_name: str | None = None, options: dict | None = None) -> Path:
    """Write a one-op model ``op_name(inputs) -> output``; inputs[0] is the graph input.

    An ``int`` in ``inputs`` reads the tensor already listed at that position (e.g. ADD of
    the input with itself); ``None`` is an omitted optional input (index -1).
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    types = {"int8": s.TensorType.INT8, "int32": s.TensorType.INT32, "float32": s.TensorType.FLOAT32}
    model, code = s.ModelT(), s.OperatorCodeT()
    builtin = getattr(s.BuiltinOperator, op_name)
    code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), 1
    model.version, model.operatorCodes, model.buffers = 3, [code], [s.BufferT()]
    model.description = b"tinyshare codegen test"
    graph = s.SubGraphT()
    graph.tensors, op_inputs = [], []
    for spec in inputs:
        op_inputs.append(-1 if spec is None else spec if isinstance(spec, int) else len(graph.tensors))
        if isinstance(spec, T):
            graph.tensors.append(_tensor(s, model, types, spec, len(graph.tensors)))
    graph.tensors.append(_tensor(s, model, types, output, len(graph.tensors)))
    out_index = len(graph.tensors) - 1
    op = s.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, op_inputs, [out_index]
    if options_name is not None:
        op.builtinOptionsType = getattr(s.BuiltinOptions, options_name)
        opts = getattr(s, f"{options_name}T")()
        for key, value in (options or {}).items():
            setattr(opts, key, value)
        op.builtinOptions = opts
    graph.operators, graph.inputs, graph.outputs = [op], [0], [out_index]
    model.subgraphs = [graph]
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    path.write_bytes(bytes(b.Output()))
    return path


def _tensor(s, model, types, spec: T, k: int):
    t = s.TensorT()
    t.shape, t.type, t.name = list(spec.shape), types[spec.dtype], (spec.name or f"t{k}").encode()
    t.buffer = 0
    if spec.data is not None:
        buf = s.BufferT()
        buf.data = np.ascontiguousarray(spec.data.astype(spec.dtype)).view(np.uint8).ravel()
        model.buffers.append(buf)
        t.buffer = len(model.buffers) - 1
    if spec.scale is not None:
        qp = s.QuantizationParametersT()
        scales = spec.scale if isinstance(spec.scale, list) else [spec.scale]
        zps = spec.zero_point if isinstance(spec.zero_point, list) else [spec.zero_point] * len(scales)
        qp.scale, qp.zeroPoint = [float(v) for v in scales], list(zps)
        qp.quantizedDimension = spec.qdim
        t.quantization = qp
    return t


def conv_options(padding="SAME", stride=(1, 1), dilation=(1, 1), act="NONE", **extra) -> dict:
    return {"padding": PADDING[padding], "strideH": stride[0], "strideW": stride[1],
            "dilationHFactor": dilation[0], "dilationWFactor": dilation[1],
            "fusedActivationFunction": ACT[act], **extra}


def out_size(n: int, k: int, stride: int, dilation: int, padding: str) -> int:
    eff = (k - 1) * dilation + 1
    return -(-n // stride) if padding == "SAME" else (n - eff) // stride + 1


def random_filter(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(-127, 128, size=shape).astype(np.int8)
