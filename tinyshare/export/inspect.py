"""Read an exported model file (.tflite / .onnx) back: ops, versions, tensors, weights, sharing.

No TensorFlow is needed: ``.tflite`` files are read with the flatbuffer schema shipped in
``ai_edge_litert`` and ``.onnx`` files with ``onnx``; both are imported lazily.

Stored weights (``ModelInfo.stored_weight_bytes``): a constant with stored data (non-empty
TFLite buffer; ONNX initializer or ``Constant`` output) is a weight or bias when it reaches,
directly or through pass-through ops on their input 0 (TFLite QUANTIZE/DEQUANTIZE; ONNX
QuantizeLinear/DequantizeLinear/Clip/Cast/Identity), either

* a weight/bias slot of a compute op (``TFLITE_RULES`` / ``ONNX_RULES`` in the readers), e.g.
  CONV_2D/DEPTHWISE_CONV_2D/FULLY_CONNECTED inputs 1-2, ONNX Conv inputs 1-2, Gemm inputs 0-2; or
* an operand of ADD/SUB/MUL (ONNX Add/Sub/Mul), if it has more than one element and came
  through a pass-through chain or is float/int8/uint8/int16 data.

Everything else is metadata: RESHAPE/MEAN/TRANSPOSE shape and axis constants, int64 ONNX shape
initializers, scale / zero-point operands of (De)QuantizeLinear (slots 1-2). Each storage
(TFLite buffer index, ONNX initializer name) counts once, however many tensors or ops use it.
A *sharing group* is a stored weight read by more than one op, counted past the pass-through
chain: an initializer feeding two DequantizeLinear->Conv chains, or one DequantizeLinear
feeding two Conv, names the two Conv ops.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tinyshare.artifacts.files import (  # noqa: F401  (re-exported)
    _SUFFIX_FORMATS,
    TFLITE_FILE_IDENTIFIER,
    require_model_file,
)
from tinyshare.errors import ModelFileError

DTYPE_BYTES: Mapping[str, int] = {
    "int8": 1, "uint8": 1, "bool": 1, "int16": 2, "uint16": 2, "float16": 2, "bfloat16": 2,
    "int32": 4, "uint32": 4, "float32": 4, "int64": 8, "uint64": 8, "float64": 8,
}

__all__ = ["DTYPE_BYTES", "TFLITE_FILE_IDENTIFIER", "ModelInfo", "OpInfo", "SharingGroup", "TensorInfo",
           "WeightRules", "inspect_model", "require_model_file", "summary_rows"]



@dataclass(frozen=True)
class OpInfo:
    """One op of the model's main graph, in execution order.

    Attributes:
        index: position in the graph's op list (TFLite subgraph 0 operators; ONNX graph nodes).
        op_code: builtin name ("CONV_2D", "CUSTOM:<code>") or ONNX op type ("Conv"; ops outside
            the default domain read "<domain>.<op_type>").
        version: TFLite op version from the operator code; for ONNX, the opset of the op's domain.
        inputs: tensor names; "" marks an omitted optional input.
        outputs: tensor names.
    """

    index: int
    op_code: str
    version: int | None
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of the main graph.

    Attributes:
        name: unique within the model (empty TFLite names read "tensor_<i>", repeats get "#<i>").
        shape: dimensions (-1 where unknown or dynamic); None where even the rank is unknown.
        dtype: "int8", "int32", "float32", ...
        is_constant: it holds stored data (weights, biases, shape constants, scales).
        buffer_index: the TFLite buffer it points to; None for ONNX.
        nbytes: stored bytes of its data, 0 for activations.
        scales: quantization scales (one per channel when per-channel); () when not quantized.
        zero_points: quantization zero points, same length as ``scales``.
        quantized_dimension: the channel axis for per-channel tensors (more than one scale);
            None for per-tensor or unquantized tensors.
    """

    name: str
    shape: tuple[int, ...] | None
    dtype: str
    is_constant: bool
    buffer_index: int | None
    nbytes: int
    scales: tuple[float, ...] = ()
    zero_points: tuple[int, ...] = ()
    quantized_dimension: int | None = None

    @property
    def data_bytes(self) -> int:
        """Bytes of the tensor's data in memory: elements × element size; 0 when the shape
        is unknown. For an activation this is its buffer size; see ``nbytes`` for stored data.

        Raises:
            ModelFileError: an element type with no known size (not in ``DTYPE_BYTES``).
        """
        if self.shape is None or any(d < 0 for d in self.shape):
            return 0
        if self.dtype not in DTYPE_BYTES:
            raise ModelFileError(f"tensor {self.name!r}: element type {self.dtype!r} has no "
                                 f"known size; expected one of {sorted(DTYPE_BYTES)}")
        return math.prod(self.shape) * DTYPE_BYTES[self.dtype]


@dataclass(frozen=True)
class SharingGroup:
    """A stored weight and the ops that read it; *shared* when more than one op reads it.

    ``ModelInfo.weight_storages`` holds one per stored weight; ``ModelInfo.sharing_groups``
    only those read by more than one op.

    Attributes:
        storage: the TFLite buffer index (as a decimal string) or the ONNX initializer name.
        tensor_names: the constant tensors that point at this storage.
        consumer_ops: sorted indices of the ops that read it as a weight or bias.
        nbytes: stored bytes, counted once.
        numel: elements stored (the first tensor's shape).
    """

    storage: str
    tensor_names: tuple[str, ...]
    consumer_ops: tuple[int, ...]
    nbytes: int
    numel: int = 0

    @property
    def shared(self) -> bool:
        """True when more than one op reads this storage."""
        return len(self.consumer_ops) > 1


@dataclass(frozen=True)
class ModelInfo:
    """What an exported model file holds, as read back from the file.

    Attributes:
        path: the file read.
        format: "tflite" or "onnx".
        file_bytes: size of the file.
        ops: the main graph's ops in order.
        tensors: the main graph's tensors (TFLite: in tensor-index order).
        inputs: graph input tensor names (ONNX: initializers excluded).
        outputs: graph output tensor names.
        stored_weight_bytes: bytes of the distinct storages holding weights and biases.
        weight_tensors: one tensor per distinct weight storage, in tensor order.
        sharing_groups: the weight storages read by more than one op.
        weight_storages: every weight storage with the ops that read it, in tensor order.
    """

    path: Path
    format: str
    file_bytes: int
    ops: tuple[OpInfo, ...]
    tensors: tuple[TensorInfo, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    stored_weight_bytes: int
    weight_tensors: tuple[TensorInfo, ...]
    sharing_groups: tuple[SharingGroup, ...]
    weight_storages: tuple[SharingGroup, ...] = ()

    def op_versions(self) -> set[tuple[str, int | None]]:
        """Return the distinct ``(op_code, version)`` pairs, e.g. ``{("CONV_2D", 3)}``."""
        return {(op.op_code, op.version) for op in self.ops}

    def lifetimes(self) -> dict[str, tuple[int, int]]:
        """When each non-constant tensor must be in memory, as TFLM's planner sees it
        (``AllocationInfoBuilder::MarkAllocationLifetimes``).

        A tensor is live from the op that produces it to the last op that reads it, both
        inclusive. Graph inputs are live from op 0 and graph outputs stay live to the last
        op. Constants are left out: they stay in flash. (Checked against the installed
        tflite-micro's arena head on the zoo models: its plan starts graph outputs at their
        producer, not at op 0.)

        Returns:
            ``{tensor name: (first op index, last op index)}``, in tensor order.
        """
        constant = {t.name for t in self.tensors if t.is_constant}
        first: dict[str, int] = {name: 0 for name in self.inputs}
        last: dict[str, int] = {}
        for op in self.ops:
            for name in (*op.inputs, *op.outputs):
                if name and name not in constant:
                    first.setdefault(name, op.index)
                    last[name] = op.index
        for name in self.outputs:
            last[name] = max(len(self.ops) - 1, 0)
        return {t.name: (first[t.name], max(first[t.name], last.get(t.name, first[t.name])))
                for t in self.tensors if t.name in first and t.name not in constant}

    def tensor(self, name: str) -> TensorInfo:
        """Return the tensor called ``name``.

        Raises:
            KeyError: no tensor has that name.
        """
        for t in self.tensors:
            if t.name == name:
                return t
        raise KeyError(f"{self.path.name}: no tensor named {name!r}")


@dataclass(frozen=True)
class WeightRules:
    """Which op input slots read weights; data for ``_find_weights`` (see module docstring).

    Attributes:
        weight_slots: op code -> input indices that are weights or biases.
        elementwise: op codes whose constant operands (of more than one element) are weights.
        passthrough: op codes whose input 0 is followed through to the real consumer.
        data_dtypes: dtypes a constant fed *directly* to an elementwise op must have.
    """

    weight_slots: Mapping[str, tuple[int, ...]]
    elementwise: frozenset[str]
    passthrough: frozenset[str]
    data_dtypes: frozenset[str] = frozenset(
        {"float16", "bfloat16", "float32", "float64", "int8", "uint8", "int16"}
    )


def inspect_model(path: str | Path) -> ModelInfo:
    """Read a ``.tflite`` or ``.onnx`` file back, dispatching on its suffix.

    Args:
        path: the model file.

    Returns:
        The file's ops, tensors, stored weight bytes and sharing groups.

    Raises:
        ModelFileError: the file is missing, empty, truncated, unparsable or has another suffix.
    """
    path = Path(path)
    require_model_file(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read ({type(exc).__name__}: {exc.strerror})") from exc
    if path.suffix.lower() == ".tflite":
        from tinyshare.export.inspect_tflite import read_tflite

        return read_tflite(path, data)
    from tinyshare.export.inspect_onnx import read_onnx

    return read_onnx(path, data)


def summary_rows(info: ModelInfo) -> list[dict]:
    """Return a plain per-op table for reports (JSON-serializable).

    Args:
        info: a model read by ``inspect_model``.

    Returns:
        One dict per op: ``index``, ``op``, ``version``, ``input_shapes`` and ``output_shapes``
        (lists of dimension lists, None for an unknown shape; omitted optional inputs skipped).
    """
    by_name = {t.name: t for t in info.tensors}

    def shapes(names: Sequence[str]) -> list[list[int] | None]:
        found = [by_name.get(n) for n in names if n]
        return [None if t is None or t.shape is None else list(t.shape) for t in found]

    return [
        {"index": op.index, "op": op.op_code, "version": op.version,
         "input_shapes": shapes(op.inputs), "output_shapes": shapes(op.outputs)}
        for op in info.ops
    ]


def _first_line(exc: BaseException, limit: int = 160) -> str:
    """Return ``exc``'s type and the first line of its message, for one-line errors."""
    text = str(exc).strip().splitlines()
    msg = text[0][:limit] if text else ""
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def _find_weights(
    ops: Sequence[OpInfo],
    tensors: Sequence[TensorInfo],
    storage: Mapping[str, str],
    rules: WeightRules,
) -> tuple[int, tuple[TensorInfo, ...], tuple[SharingGroup, ...]]:
    """Classify stored constants as weights and group them by storage.

    ``storage`` maps each constant with stored data to its storage key (buffer index or
    initializer name). Returns ``(stored_weight_bytes, weight_tensors, weight_storages)``;
    the sharing groups are the storages with ``shared`` set.
    """
    by_name = {t.name: t for t in tensors}
    readers: dict[str, list[tuple[OpInfo, int]]] = {}
    for op in ops:
        for slot, name in enumerate(op.inputs):
            if name:
                readers.setdefault(name, []).append((op, slot))

    consumers_by_key: dict[str, set[int]] = {}
    names_by_key: dict[str, list[str]] = {}
    for t in tensors:
        key = storage.get(t.name)
        if key is None:
            continue
        names_by_key.setdefault(key, []).append(t.name)
        found = _weight_consumers(t, readers, by_name, rules)
        if found:
            consumers_by_key.setdefault(key, set()).update(found)

    weight_tensors, storages, total = [], [], 0
    for key, names in names_by_key.items():
        if key not in consumers_by_key:
            continue
        nbytes = max(by_name[n].nbytes for n in names)
        total += nbytes
        first = by_name[names[0]]
        weight_tensors.append(first)
        numel = math.prod(first.shape) if first.shape else 1
        storages.append(SharingGroup(key, tuple(names), tuple(sorted(consumers_by_key[key])),
                                     nbytes, numel))
    return total, tuple(weight_tensors), tuple(storages)


def _weight_consumers(
    const: TensorInfo,
    readers: Mapping[str, list[tuple[OpInfo, int]]],
    by_name: Mapping[str, TensorInfo],
    rules: WeightRules,
) -> set[int]:
    """Return the indices of ops that read ``const`` in a weight slot (through pass-throughs)."""
    numel = math.prod(const.shape) if const.shape else 1
    found: set[int] = set()
    frontier, seen = [(const.name, False)], {const.name}
    while frontier:
        name, via_passthrough = frontier.pop()
        for op, slot in readers.get(name, ()):
            if op.op_code in rules.passthrough and slot == 0:
                for out in op.outputs:
                    if out and out not in seen:
                        seen.add(out)
                        frontier.append((out, True))
            elif slot in rules.weight_slots.get(op.op_code, ()):
                found.add(op.index)
            elif op.op_code in rules.elementwise and numel > 1:
                dtype = by_name[name].dtype if name in by_name else const.dtype
                if via_passthrough or dtype in rules.data_dtypes:
                    found.add(op.index)
    return found
