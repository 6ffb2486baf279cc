"""Read an ``.onnx`` file back with ``onnx``: nodes, opsets, initializers, QDQ scales, sharing.

Only the main graph is read (not If/Loop bodies or model-local functions). External data is
not loaded; its size comes from the ``length`` entry (or the data file's size).
"""

from __future__ import annotations

import logging
import math
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

ONNX_RULES = WeightRules(
    weight_slots={
        "Conv": (1, 2), "ConvTranspose": (1, 2), "Gemm": (0, 1, 2), "MatMul": (0, 1),
        "QLinearConv": (3, 8), "QLinearMatMul": (0, 3), "ConvInteger": (1,),
        "MatMulInteger": (0, 1), "BatchNormalization": (1, 2, 3, 4), "PRelu": (1,),
    },
    elementwise=frozenset({"Add", "Sub", "Mul"}),
    passthrough=frozenset({"QuantizeLinear", "DequantizeLinear", "Clip", "Cast", "Identity"}),
)

# (scales, zero_points, channel axis or None) of one tensor.
QuantParams = tuple[tuple[float, ...], tuple[int, ...], int | None]

_FLOAT_NAMES = {"FLOAT": "float32", "DOUBLE": "float64", "FLOAT16": "float16"}
_ELEMENT_BITS = {
    "bool": 8, "int8": 8, "uint8": 8, "int16": 16, "uint16": 16, "int32": 32, "uint32": 32,
    "int64": 64, "uint64": 64, "float16": 16, "bfloat16": 16, "float32": 32, "float64": 64,
    "complex64": 64, "complex128": 128, "int4": 4, "uint4": 4, "float4e2m1": 4,
}


def read_onnx(path: Path, data: bytes) -> ModelInfo:
    """Parse ONNX protobuf bytes into a ``ModelInfo``.

    Args:
        path: the file the bytes came from (for messages, external data and ``ModelInfo.path``).
        data: the whole file.

    Raises:
        ModelFileError: undecodable bytes, no graph or no nodes, a node whose domain has no
            opset import, a model the ONNX checker rejects, or missing external data.
    """
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load_model_from_string(data)
    except (DecodeError, ValueError, RuntimeError, TypeError) as exc:
        raise ModelFileError(f"{path}: not a readable ONNX model ({_first_line(exc)})") from exc
    if not model.HasField("graph") or not model.graph.node:
        raise ModelFileError(f"{path}: ONNX model has no graph nodes (truncated or not ONNX)")
    opsets = {(o.domain or "ai.onnx"): int(o.version) for o in model.opset_import}
    for k, node in enumerate(model.graph.node):
        if (node.domain or "ai.onnx") not in opsets:
            raise ModelFileError(
                f"{path}: node {k} ({node.op_type}) uses domain {node.domain!r}, "
                "which has no opset import"
            )
    external = any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    try:  # with external data the checker must see the path, to look beside the file
        onnx.checker.check_model(str(path) if external else model)
    except (onnx.checker.ValidationError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"{path}: fails the ONNX checker ({_first_line(exc)})") from exc
    try:
        model = onnx.shape_inference.infer_shapes(model)
    except (onnx.shape_inference.InferenceError, ValueError, RuntimeError) as exc:
        logger.debug("%s: shape inference failed (%s); shapes from value_info only", path, exc)
    try:
        return _model_info(path, data, model, opsets)
    except (ValueError, TypeError, KeyError, IndexError) as exc:  # e.g. raw_data vs dims
        raise ModelFileError(f"{path}: inconsistent ONNX tensor data ({_first_line(exc)})") from exc


def qdq_params(graph) -> dict[str, QuantParams]:
    """Quantization of the integer tensors entering DequantizeLinear or leaving QuantizeLinear.

    Read from the nodes' constant scale / zero-point inputs (initializers or ``Constant``
    outputs); a node whose scale is not a constant is skipped. Where several Q/DQ nodes
    touch one tensor, the first in node order wins. Cheap: one pass over the nodes.

    Args:
        graph: an ``onnx.GraphProto`` (the main graph).

    Returns:
        ``{tensor name: (scales, zero_points, axis)}``; ``axis`` is the channel axis for
        per-channel parameters (more than one scale), else None. A missing zero point reads 0.
    """
    return _quant_params(graph, _constants(graph))


def _constants(g) -> dict[str, object]:
    """Initializers and default-domain ``Constant`` outputs of a graph, name -> TensorProto."""
    consts: dict[str, object] = {t.name: t for t in g.initializer}
    for node in g.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and node.output:
            consts[node.output[0]] = _constant_value(node)
    return consts


def _model_info(path: Path, data: bytes, model, opsets: dict[str, int]) -> ModelInfo:
    g = model.graph
    consts = _constants(g)
    typed = {v.name: v.type for v in [*g.input, *g.value_info, *g.output]}
    quant = _quant_params(g, consts)

    names = [*(i.name for i in g.input), *consts, *(o for n in g.node for o in n.output),
             *(o.name for o in g.output), *(i for n in g.node for i in n.input)]
    order = [n for n in dict.fromkeys(names) if n]

    tensors = []
    for name in order:
        scales, zero_points, qdim = quant.get(name, ((), (), None))
        proto = consts.get(name)
        if proto is not None:
            shape, dtype = tuple(int(d) for d in proto.dims), _dtype(proto.data_type)
            nbytes = _tensor_bytes(path, proto, dtype)
        else:
            shape, dtype = _value_type(typed.get(name))
            nbytes = 0
        tensors.append(TensorInfo(
            name=name, shape=shape, dtype=dtype, is_constant=proto is not None,
            buffer_index=None, nbytes=nbytes, scales=scales, zero_points=zero_points,
            quantized_dimension=qdim,
        ))

    ops = []
    for k, node in enumerate(g.node):
        domain = node.domain or "ai.onnx"
        code = node.op_type if domain == "ai.onnx" else f"{node.domain}.{node.op_type}"
        ops.append(OpInfo(index=k, op_code=code, version=opsets.get(domain),
                          inputs=tuple(node.input), outputs=tuple(node.output)))

    storage = {t.name: t.name for t in tensors if t.is_constant and t.nbytes > 0}
    total, weights, storages = _find_weights(ops, tensors, storage, ONNX_RULES)
    return ModelInfo(
        path=path,
        format="onnx",
        file_bytes=len(data),
        ops=tuple(ops),
        tensors=tuple(tensors),
        inputs=tuple(i.name for i in g.input if i.name not in consts),
        outputs=tuple(o.name for o in g.output),
        stored_weight_bytes=total,
        weight_tensors=weights,
        sharing_groups=tuple(g for g in storages if g.shared),
        weight_storages=storages,
    )


def _dtype(data_type: int) -> str:
    """ONNX element type -> numpy-style name ("float32", "int8", ...)."""
    from onnx import TensorProto

    try:
        name = TensorProto.DataType.Name(data_type)
    except ValueError:
        return f"type_{data_type}"
    return _FLOAT_NAMES.get(name, name.lower())


def _value_type(type_proto) -> tuple[tuple[int, ...] | None, str]:
    """Shape (-1 for symbolic dims, None for unknown rank) and dtype of a ValueInfo type."""
    if type_proto is None or not type_proto.HasField("tensor_type"):
        return None, "undefined"
    tt = type_proto.tensor_type
    dtype = _dtype(tt.elem_type) if tt.elem_type else "undefined"
    if not tt.HasField("shape"):
        return None, dtype
    return tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim), dtype


def _tensor_bytes(path: Path, proto, dtype: str) -> int:
    """Stored bytes of a TensorProto: raw data, external ``length``, or elements x width."""
    from onnx import TensorProto

    if proto.data_location == TensorProto.EXTERNAL:
        info = {e.key: e.value for e in proto.external_data}
        location = path.parent / info.get("location", "")
        if not info.get("location") or not location.is_file():
            raise ModelFileError(f"{path}: external data {info.get('location')!r} of "
                                 f"{proto.name!r} is missing")
        if "length" in info:
            return int(info["length"])
        return location.stat().st_size - int(info.get("offset", 0))
    if proto.raw_data:
        return len(proto.raw_data)
    if dtype == "string":
        return sum(len(s) for s in proto.string_data)
    numel = math.prod(proto.dims) if proto.dims else 1
    return math.ceil(numel * _ELEMENT_BITS.get(dtype, 8) / 8)


def _constant_value(node):
    """The TensorProto a ``Constant`` node produces (the checker ensures one value attribute)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    attr = node.attribute[0]
    if attr.name in ("value", "sparse_value"):
        out = TensorProto()
        out.CopyFrom(attr.t if attr.name == "value" else attr.sparse_tensor.values)
    else:  # value_float(s), value_int(s), value_string(s)
        out = numpy_helper.from_array(np.asarray(helper.get_attribute_value(attr)))
    out.name = node.output[0]
    return out


def _quant_params(graph, consts) -> dict[str, QuantParams]:
    """Scales, zero points and axis of the integer tensors entering DQ / leaving Q nodes."""
    from onnx import helper, numpy_helper

    def values(name: str) -> list:
        proto = consts.get(name) if name else None
        if proto is None or proto.data_location == proto.EXTERNAL:
            return []
        return numpy_helper.to_array(proto).reshape(-1).tolist()

    out: dict[str, QuantParams] = {}
    for node in graph.node:
        if node.domain not in ("", "ai.onnx"):
            continue
        if node.op_type == "DequantizeLinear" and node.input:
            target = node.input[0]
        elif node.op_type == "QuantizeLinear" and node.output:
            target = node.output[0]
        else:
            continue
        scales = tuple(float(s) for s in values(node.input[1] if len(node.input) > 1 else ""))
        if not scales or target in out:
            continue
        zps = tuple(int(z) for z in values(node.input[2] if len(node.input) > 2 else ""))
        zps = zps or (0,) * len(scales)
        axis = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"), 1)
        if axis < 0 and target in consts:
            axis += len(consts[target].dims)
        out[target] = (scales, zps, int(axis) if len(scales) > 1 else None)
    return out
