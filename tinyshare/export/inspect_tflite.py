"""Read a ``.tflite`` flatbuffer back with the schema shipped in ``ai_edge_litert`` (no TensorFlow).

Only the main subgraph (index 0) is read; op indices and tensors refer to it. This is the one
reader of a tensor's quantization from the file (``quantization.scale`` / ``zeroPoint`` /
``quantizedDimension``: per-channel where there is more than one scale); LiteRT's own view
(``tinyshare.targets.runtimes.litert.tensor_quant_params``) is kept only to cross-check it.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Sequence
from pathlib import Path

from tinyshare.errors import ModelFileError
from tinyshare.export.inspect import (
    ModelInfo,
    OpInfo,
    TensorInfo,
    WeightRules,
    _find_weights,
    _first_line,
)

logger = logging.getLogger(__name__)

TFLITE_RULES = WeightRules(
    weight_slots={
        "CONV_2D": (1, 2), "DEPTHWISE_CONV_2D": (1, 2), "FULLY_CONNECTED": (1, 2),
        "TRANSPOSE_CONV": (1, 3), "CONV_3D": (1, 2), "CONV_3D_TRANSPOSE": (1, 3),
        "BATCH_MATMUL": (0, 1), "PRELU": (1,),
    },
    elementwise=frozenset({"ADD", "SUB", "MUL"}),
    passthrough=frozenset({"QUANTIZE", "DEQUANTIZE"}),
)

_CUSTOM_CODE = 32  # BuiltinOperator.CUSTOM

# What the flatbuffers runtime raises on out-of-range offsets and garbage data.
_PARSE_ERRORS = (
    struct.error, IndexError, ValueError, TypeError, OverflowError, KeyError,
    AttributeError, RecursionError, MemoryError,
)


def read_tflite(path: Path, data: bytes) -> ModelInfo:
    """Parse TFLite flatbuffer bytes into a ``ModelInfo``.

    Every table of the file is unpacked (the schema's object API), so an object cut off by
    truncation fails to read rather than being skipped.

    Args:
        path: the file the bytes came from (for messages and ``ModelInfo.path``).
        data: the whole file, already checked by ``require_model_file`` (``inspect_model``
            does that), so it carries the ``TFL3`` identifier.

    Raises:
        ModelFileError: a truncated or corrupt flatbuffer.
    """
    from ai_edge_litert import schema_py_generated as schema

    try:
        model = schema.ModelT.InitFromPackedBuf(data, 0)
        return _model_info(path, data, model, schema)
    except _PARSE_ERRORS as exc:
        raise ModelFileError(
            f"{path}: truncated or corrupt TFLite flatbuffer ({_first_line(exc)})"
        ) from exc


def _enum_names(enum_cls) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


def _model_info(path: Path, data: bytes, model, schema) -> ModelInfo:
    if not model.subgraphs:
        raise ModelFileError(f"{path}: TFLite model has no subgraph")
    if len(model.subgraphs) > 1:
        logger.info("%s: %d subgraphs; reading subgraph 0 only", path, len(model.subgraphs))
    sg = model.subgraphs[0]
    buffers = model.buffers or []
    raw = sg.tensors or []
    names = _unique_names([_text(t.name, path, f"tensor {i} name") for i, t in enumerate(raw)])
    dtype_names = _enum_names(schema.TensorType)

    tensors = []
    for i, t in enumerate(raw):
        if not 0 <= t.buffer < max(len(buffers), 1):
            raise ModelFileError(
                f"{path}: tensor {i} points at buffer {t.buffer} of {len(buffers)}")
        nbytes = _buffer_bytes(path, data, buffers[t.buffer]) if buffers else 0
        scales, zero_points, qdim = _quantization(t.quantization)
        signature = t.shapeSignature  # holds -1 for dynamic dims; absent in static models
        shape = signature if signature is not None and len(signature) else t.shape
        tensors.append(TensorInfo(
            name=names[i],
            shape=tuple(int(d) for d in shape) if shape is not None else (),
            dtype=dtype_names.get(t.type, f"type_{t.type}").lower(),
            is_constant=nbytes > 0,
            buffer_index=int(t.buffer),
            nbytes=nbytes,
            scales=scales,
            zero_points=zero_points,
            quantized_dimension=qdim,
        ))

    def name_of(index: int, where: str) -> str:
        if index == -1:
            return ""  # an omitted optional input
        if not 0 <= index < len(names):
            raise ModelFileError(f"{path}: {where} refers to tensor {index} of {len(names)}")
        return names[index]

    builtin_names = _enum_names(schema.BuiltinOperator)
    op_codes = [_op_code(c, builtin_names, path) for c in model.operatorCodes or []]
    ops = []
    for k, op in enumerate(sg.operators or []):
        if not 0 <= op.opcodeIndex < len(op_codes):
            raise ModelFileError(f"{path}: operator {k} has opcode index {op.opcodeIndex}")
        code, version = op_codes[op.opcodeIndex]
        ops.append(OpInfo(
            index=k,
            op_code=code,
            version=version,
            inputs=tuple(name_of(int(j), f"operator {k}") for j in _ints(op.inputs)),
            outputs=tuple(name_of(int(j), f"operator {k}") for j in _ints(op.outputs)),
        ))

    inputs = tuple(name_of(int(j), "subgraph inputs") for j in _ints(sg.inputs))
    variables = {names[i] for i, t in enumerate(raw) if t.isVariable}
    _require_defined_inputs(path, ops, tensors, {*inputs, *variables})
    storage = {t.name: str(t.buffer_index) for t in tensors if t.is_constant}
    total, weights, storages = _find_weights(ops, tensors, storage, TFLITE_RULES)
    return ModelInfo(
        path=path,
        format="tflite",
        file_bytes=len(data),
        ops=tuple(ops),
        tensors=tuple(tensors),
        inputs=inputs,
        outputs=tuple(name_of(int(j), "subgraph outputs") for j in _ints(sg.outputs)),
        stored_weight_bytes=total,
        weight_tensors=weights,
        sharing_groups=tuple(g for g in storages if g.shared),
        weight_storages=storages,
    )


def _require_defined_inputs(path: Path, ops: Sequence[OpInfo], tensors: Sequence[TensorInfo],
                            given: set[str]) -> None:
    """Every op input must be a graph input or variable, an earlier op's output, or stored data.

    A tensor that is none of these has no value when the op runs (LiteRT: "Input tensor
    lacks data"), e.g. a weight whose buffer index was corrupted to an empty buffer. Empty
    tensors (a 0 dimension) need no data; custom ops are not checked (Vela's ``ethos-u`` op
    reads scratch tensors the runtime allocates in the arena).

    Raises:
        ModelFileError: an op reads such a tensor (naming the op and the tensor).
    """
    by_name = {t.name: t for t in tensors}
    defined = set(given)
    for op in ops:
        for name in () if op.op_code.startswith("CUSTOM:") else op.inputs:
            t = by_name[name] if name else None
            if t is None or name in defined or t.is_constant or (t.shape and 0 in t.shape):
                continue
            raise ModelFileError(f"{path}: operator {op.index} ({op.op_code}) reads tensor "
                                 f"{name!r}, which is no graph input, no earlier op's output "
                                 "and holds no data")
        defined.update(op.outputs)


def _op_code(code, builtin_names: dict[int, str], path: Path) -> tuple[str, int]:
    """Return ``(name, version)`` of an OperatorCode (builtin_code or deprecated_builtin_code)."""
    builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
    if builtin == _CUSTOM_CODE:
        return f"CUSTOM:{_text(code.customCode, path, 'a custom op code')}", int(code.version)
    return builtin_names.get(builtin, f"BUILTIN_{builtin}"), int(code.version)


def _buffer_bytes(path: Path, data: bytes, buffer) -> int:
    """Stored bytes of a buffer: its inline data, or ``size`` when it lives at a file offset."""
    if buffer.data is not None and len(buffer.data):
        return len(buffer.data)
    if buffer.offset > 1:  # large models keep buffers after the flatbuffer, at offset/size
        if buffer.offset + buffer.size > len(data):
            raise ModelFileError(f"{path}: buffer data at offset {buffer.offset} lies past the end")
        return int(buffer.size)
    return 0


def _quantization(q) -> tuple[tuple[float, ...], tuple[int, ...], int | None]:
    """Per-tensor or per-channel scales, zero points and channel axis of a tensor."""
    if q is None or q.scale is None or len(q.scale) == 0:
        return (), (), None
    scales = tuple(float(s) for s in q.scale)
    zero_points = tuple(int(z) for z in q.zeroPoint) if q.zeroPoint is not None else ()
    return scales, zero_points, int(q.quantizedDimension) if len(scales) > 1 else None


def _ints(values) -> list[int]:
    return [] if values is None else [int(v) for v in values]


def _text(value, path: Path | None, what: str) -> str:
    """A flatbuffer string as text; the schema's strings are UTF-8, anything else is corrupt."""
    if value is None:
        return ""
    if not isinstance(value, bytes):
        return str(value)
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        where = f"{path}: " if path is not None else ""
        raise ModelFileError(f"{where}{what} is not UTF-8 text ({value[:16]!r})") from None


def _unique_names(raw: Sequence[str]) -> list[str]:
    """Make tensor names unique: empty -> ``tensor_<i>``, a repeat -> ``<name>#<i>``."""
    seen: set[str] = set()
    out = []
    for i, name in enumerate(raw):
        name = name or f"tensor_{i}"
        if name in seen:
            name = f"{name}#{i}"
        seen.add(name)
        out.append(name)
    return out
