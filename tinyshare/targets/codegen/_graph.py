"""The main subgraph of an int8 ``.tflite`` file as the code generator needs it.

``tinyshare.export.inspect`` gives names, shapes, quantization and lifetimes but not the
stored values or the builtin options, so this module reads the flatbuffer once more with
the schema shipped in ``ai_edge_litert`` (the same one ``inspect_tflite`` uses) and keeps,
per tensor, its constant data as a numpy array and, per op, its parsed options.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyshare.errors import ModelFileError
from tinyshare.export.inspect import ModelInfo, inspect_model

_NP_DTYPES = {"int8": np.int8, "uint8": np.uint8, "int16": np.int16, "int32": np.int32,
              "int64": np.int64, "float32": np.float32}


@dataclass(frozen=True)
class Tensor:
    """One tensor of subgraph 0.

    Attributes:
        index: tensor index in the subgraph.
        name: unique name (as ``inspect_model`` spells it).
        shape: dimensions.
        dtype: "int8", "int32", ...
        buffer: the TFLite buffer index it points at.
        data: its stored values reshaped to ``shape`` (constants), else None.
        scales: quantization scales as float32 values (one per channel when per-channel).
        zero_points: quantization zero points.
    """

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    buffer: int
    data: np.ndarray | None
    scales: tuple[float, ...]
    zero_points: tuple[int, ...]

    @property
    def numel(self) -> int:
        """Number of elements."""
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def scale(self) -> float:
        """The per-tensor scale (the first one); 0.0 when the tensor is not quantized."""
        return self.scales[0] if self.scales else 0.0

    @property
    def zero_point(self) -> int:
        """The per-tensor zero point (the first one); 0 when not quantized."""
        return self.zero_points[0] if self.zero_points else 0


@dataclass(frozen=True)
class Op:
    """One operator of subgraph 0, in execution order.

    Attributes:
        index: position in the op list.
        code: builtin name, e.g. "CONV_2D".
        inputs: tensor indices; -1 marks an omitted optional input.
        outputs: tensor indices.
        options: the schema's parsed builtin options object (``Conv2DOptionsT``...), or None.
    """

    index: int
    code: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: object | None


@dataclass(frozen=True)
class Graph:
    """Subgraph 0 of a ``.tflite`` file with constant values and op options.

    Attributes:
        path: the file read.
        info: the file as ``inspect_model`` reads it (weight storages, lifetimes).
        tensors: every tensor, by index.
        ops: the ops in execution order.
        inputs: graph input tensor indices.
        outputs: graph output tensor indices.
    """

    path: Path
    info: ModelInfo
    tensors: tuple[Tensor, ...]
    ops: tuple[Op, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]

    def readers(self, tensor: int) -> list[int]:
        """Indices of the ops that read tensor ``tensor``."""
        return [op.index for op in self.ops if tensor in op.inputs]


def read_graph(path: str | Path) -> Graph:
    """Read ``path`` (an int8 ``.tflite``) into a ``Graph``.

    Raises:
        ModelFileError: the file is missing, not a ``.tflite``, or corrupt.
    """
    from ai_edge_litert import schema_py_generated as schema

    path = Path(path)
    info = inspect_model(path)  # checks the file and names the tensors
    if info.format != "tflite":
        raise ModelFileError(f"{path}: the C generator reads .tflite files only")
    raw = path.read_bytes()
    model = schema.ModelT.InitFromPackedBuf(raw, 0)
    sg = model.subgraphs[0]
    buffers = model.buffers or []
    tensors = []
    for i, (t, ti) in enumerate(zip(sg.tensors or [], info.tensors, strict=True)):
        data = None
        if ti.is_constant:
            blob = _buffer_bytes(raw, buffers[t.buffer])
            if ti.dtype not in _NP_DTYPES:
                raise ModelFileError(f"{path}: constant {ti.name!r} has type {ti.dtype}")
            data = np.frombuffer(blob, dtype=np.dtype(_NP_DTYPES[ti.dtype]).newbyteorder("<"))
            data = data.astype(_NP_DTYPES[ti.dtype]).reshape(ti.shape or ())
        q = t.quantization
        scales = tuple(float(np.float32(s)) for s in q.scale) if q is not None and q.scale is not None else ()
        zps = tuple(int(z) for z in q.zeroPoint) if q is not None and q.zeroPoint is not None else ()
        tensors.append(Tensor(index=i, name=ti.name, shape=tuple(int(d) for d in t.shape),
                              dtype=ti.dtype, buffer=int(t.buffer), data=data,
                              scales=scales, zero_points=zps))
    ops = tuple(Op(index=k, code=oi.op_code, inputs=tuple(int(j) for j in op.inputs),
                   outputs=tuple(int(j) for j in op.outputs), options=op.builtinOptions)
                for k, (op, oi) in enumerate(zip(sg.operators or [], info.ops, strict=True)))
    return Graph(path=path, info=info, tensors=tuple(tensors), ops=ops,
                 inputs=tuple(int(j) for j in sg.inputs), outputs=tuple(int(j) for j in sg.outputs))


def _buffer_bytes(raw: bytes, buffer) -> bytes:
    if buffer.data is not None and len(buffer.data):
        return np.asarray(buffer.data, dtype=np.uint8).tobytes()
    return raw[buffer.offset:buffer.offset + buffer.size]
