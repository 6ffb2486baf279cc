"""The per-layer table of an exported model: one row per op, in graph order.

Built from a model read back by ``tinyshare.export.inspect.inspect_model``, so it describes
the file as stored, not the PyTorch model. For each op:

* op code and op version, input and output shapes (as stored: NHWC in .tflite, NCHW in .onnx);
* MACs, from the shapes (``macs_of``); ops without multiply-accumulates count 0;
* unique parameters and stored weight bytes: each stored weight (TFLite buffer, ONNX
  initializer) is attributed once, to the first op that reads it; later readers list it in
  ``shared`` (with the op it was first counted at) and add nothing, so the column sums to the
  file's stored weight bytes;
* activation bytes: the bytes of the op's non-constant outputs;
* for TFLite, the lifetime of its output: ``[first, last]`` op index during which the output
  must stay in memory (``ModelInfo.lifetimes``); this is what the arena planner packs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tinyshare.export.inspect import ModelInfo, OpInfo, TensorInfo

__all__ = ["LayerRow", "LayerTable", "SharedRead", "layer_table", "macs_of"]

@dataclass(frozen=True)
class SharedRead:
    """A shared weight storage an op reads.

    Attributes:
        storage: TFLite ``"buffer <i>"`` or the ONNX initializer name.
        first_op: index of the op where its bytes are counted.
        bytes: its stored bytes (counted once, at ``first_op``).
    """

    storage: str
    first_op: int
    bytes: int


@dataclass(frozen=True)
class LayerRow:
    """One op of the table (see the module docstring for each column's meaning).

    Attributes:
        index: position in the graph.
        name: the op's first output tensor name.
        op: op code, e.g. ``"CONV_2D"``.
        version: op version (TFLite) or opset (ONNX).
        input_shapes: one shape per input (None where unknown or the input is omitted).
        output_shapes: one shape per output.
        macs: multiply-accumulates for one inference.
        unique_params: weight elements first counted at this op.
        weight_bytes: stored weight bytes first counted at this op.
        shared: the shared storages this op reads.
        activation_bytes: bytes of the op's non-constant outputs.
        lifetime: ``(first, last)`` op indices while the output is live (TFLite), else None.
    """

    index: int
    name: str
    op: str
    version: int | None
    input_shapes: tuple[tuple[int, ...] | None, ...]
    output_shapes: tuple[tuple[int, ...] | None, ...]
    macs: int
    unique_params: int
    weight_bytes: int
    shared: tuple[SharedRead, ...]
    activation_bytes: int
    lifetime: tuple[int, int] | None

    def as_dict(self) -> dict:
        """Plain JSON-ready dict (shapes as lists)."""
        d = asdict(self)
        d["input_shapes"] = [None if s is None else list(s) for s in self.input_shapes]
        d["output_shapes"] = [None if s is None else list(s) for s in self.output_shapes]
        d["lifetime"] = None if self.lifetime is None else list(self.lifetime)
        return d


@dataclass(frozen=True)
class LayerTable:
    """All ops of one model file with the totals.

    Attributes:
        file: the model file's name.
        format: ``"tflite"`` or ``"onnx"``.
        rows: one per op, in graph order.
        peak_live_activation_bytes: the largest sum of live activation bytes at any op
            (TFLite lifetimes, unaligned and unpacked); None for ONNX.
    """

    file: str
    format: str
    rows: tuple[LayerRow, ...]
    peak_live_activation_bytes: int | None

    @property
    def macs(self) -> int:
        return sum(r.macs for r in self.rows)

    @property
    def unique_params(self) -> int:
        return sum(r.unique_params for r in self.rows)

    @property
    def weight_bytes(self) -> int:
        return sum(r.weight_bytes for r in self.rows)

    def as_dict(self) -> dict:
        """The report's ``per_layer.<model>`` entry."""
        return {
            "file": self.file,
            "rows": [r.as_dict() for r in self.rows],
            "totals": {"macs": self.macs, "unique_params": self.unique_params,
                       "weight_bytes": self.weight_bytes,
                       "peak_live_activation_bytes": self.peak_live_activation_bytes},
        }


def macs_of(op: OpInfo, tensors: Mapping[str, TensorInfo]) -> int:
    """Multiply-accumulates of one op for one inference, from its stored shapes.

    * TFLite ``CONV_2D`` (filter ``[C_out, K_h, K_w, C_in]``): output elements × K_h·K_w·C_in;
      ``DEPTHWISE_CONV_2D`` (``[1, K_h, K_w, C_out]``): output elements × K_h·K_w;
      ``FULLY_CONNECTED`` (``[out, in]``): output elements × in; ``TRANSPOSE_CONV``
      (``[C_out, K_h, K_w, C_in]``): input elements × K_h·K_w·C_out.
    * ONNX ``Conv`` (``[C_out, C_in/groups, K_h, K_w]``): output elements × C_in/groups·K_h·K_w;
      ``Gemm`` / ``MatMul``: output elements × the reduced dimension.
    * Everything else (element-wise, pooling, reshapes, (de)quantize): 0.

    Returns 0 when a shape it needs is unknown.
    """
    def shape(slot_names: Sequence[str], k: int) -> tuple[int, ...] | None:
        if k >= len(slot_names) or not slot_names[k] or slot_names[k] not in tensors:
            return None
        s = tensors[slot_names[k]].shape
        return None if s is None or any(d < 0 for d in s) else s

    out, x, w = shape(op.outputs, 0), shape(op.inputs, 0), shape(op.inputs, 1)
    code = op.op_code
    if code in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "Conv") and out and w:
        n_out = math.prod(out)
        if code == "CONV_2D":
            return n_out * math.prod(w[1:])
        if code == "DEPTHWISE_CONV_2D":
            return n_out * w[1] * w[2]
        if code == "FULLY_CONNECTED":
            return n_out * w[-1]
        return n_out * math.prod(w[1:])  # ONNX Conv: C_in/groups · K_h · K_w
    if code == "TRANSPOSE_CONV":
        w, x = shape(op.inputs, 1), shape(op.inputs, 2)  # inputs: output_shape, weights, input
        return math.prod(x) * w[0] * w[1] * w[2] if w and x else 0
    if code in ("Gemm", "MatMul") and out and x:
        return math.prod(out) * x[-1]
    return 0


def _storage_label(fmt: str, storage: str) -> str:
    return f"buffer {storage}" if fmt == "tflite" else storage


def layer_table(info: ModelInfo) -> LayerTable:
    """Build the per-layer table of ``info`` (see the module docstring).

    Args:
        info: a model read back by ``inspect_model``.

    Returns:
        ``LayerTable`` whose ``weight_bytes`` equals ``info.stored_weight_bytes``.
    """
    tensors = {t.name: t for t in info.tensors}
    first_reader = {s.storage: s.consumer_ops[0] for s in info.weight_storages}
    reads: dict[int, list] = {}
    for s in info.weight_storages:
        for op_index in s.consumer_ops:
            reads.setdefault(op_index, []).append(s)
    lifetimes = info.lifetimes() if info.format == "tflite" else {}

    def shape_of(name: str) -> tuple[int, ...] | None:
        t = tensors.get(name) if name else None
        return None if t is None else t.shape

    rows = []
    for op in info.ops:
        mine = [s for s in reads.get(op.index, ()) if first_reader[s.storage] == op.index]
        shared = tuple(SharedRead(_storage_label(info.format, s.storage),
                                  first_reader[s.storage], s.nbytes)
                       for s in reads.get(op.index, ()) if s.shared)
        outputs = [tensors[n] for n in op.outputs if n in tensors and not tensors[n].is_constant]
        out_name = op.outputs[0] if op.outputs else ""
        rows.append(LayerRow(
            index=op.index, name=out_name, op=op.op_code, version=op.version,
            input_shapes=tuple(shape_of(n) for n in op.inputs),
            output_shapes=tuple(shape_of(n) for n in op.outputs),
            macs=macs_of(op, tensors),
            unique_params=sum(s.numel for s in mine),
            weight_bytes=sum(s.nbytes for s in mine),
            shared=shared,
            activation_bytes=sum(t.data_bytes for t in outputs),
            lifetime=lifetimes.get(out_name) if info.format == "tflite" else None,
        ))
    peak = None
    if info.format == "tflite" and info.ops:
        sizes = {n: tensors[n].data_bytes for n in lifetimes}
        peak = max(sum(b for n, b in sizes.items() if lifetimes[n][0] <= k <= lifetimes[n][1])
                   for k in range(len(info.ops)))
    return LayerTable(file=info.path.name, format=info.format, rows=tuple(rows),
                      peak_live_activation_bytes=peak)
