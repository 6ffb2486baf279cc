"""Write .onnx files (float and int8) from the same models the TFLite exporter reads.

``torch.onnx.export(dynamo=True)`` of the PT2E graph yields QuantizeLinear /
DequantizeLinear with the very scales of the TFLite file, but keeps weights float
(Q→Clip→DQ at run time), biases float and I/O float (docs/toolchain.md). ``to_int8_storage``
turns that into what a deployed int8 model stores: int8 weight initializers (one per
unique weight, the exact ``QuantizedModel`` tensors), int32 biases (one per call site,
since bias scale = input scale × weight scale), and int8 graph I/O.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import numpy as np

from tinyshare.artifacts.models import QuantizedModel, require_deploy_form
from tinyshare.errors import ExportError

OPSET = 21


def _quiet_export(module, args):
    import torch

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return torch.onnx.export(module, args, dynamo=True, opset_version=OPSET,
                                 verbose=False).model_proto


def _strip_metadata(model) -> None:
    """Drop per-node metadata (exporter stack traces with local paths): smaller, reproducible."""
    for node in model.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""


def _save(model, path: Path) -> Path:
    import onnx

    _strip_metadata(model)
    onnx.checker.check_model(model, full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    onnx.save(model, str(tmp))
    os.replace(tmp, path)
    return path


def export_onnx_float(model, example, path: str | Path) -> Path:
    """Export a float model whose shared layers are in deploy form; input NCHW float32."""
    require_deploy_form(model)
    return _save(_quiet_export(model.eval(), (example,)), Path(path))


def export_onnx_int8(qm: QuantizedModel, path: str | Path) -> Path:
    """Export the int8 model: int8 weights, int32 biases, int8 I/O; input (1, C, H, W) NCHW.

    The input is consumed by a DequantizeLinear holding ``qm.input_scale`` /
    ``qm.input_zero_point``; the output is produced by a QuantizeLinear holding the
    output's scale and zero point.
    """
    proto = _quiet_export(qm.graph, (qm.example_input,))
    return _save(to_int8_storage(proto, {w.name: w for w in qm.weights}), Path(path))


class _Graph:
    """Index of an ONNX graph: producers, consumers and initializers by name."""

    def __init__(self, graph) -> None:
        from onnx import numpy_helper

        self.g = graph
        self.inits = {i.name: i for i in graph.initializer}
        self.producer = {o: n for n in graph.node for o in n.output}
        self.consumers: dict[str, list] = {}
        for n in graph.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self._np = numpy_helper

    def array(self, name: str) -> np.ndarray:
        return self._np.to_array(self.inits[name])

    def add_init(self, arr: np.ndarray, name: str) -> str:
        t = self._np.from_array(arr, name)
        if name in self.inits:
            self.g.initializer.remove(self.inits[name])
        self.g.initializer.append(t)
        self.inits[name] = t
        return name

    def drop_init(self, name: str) -> None:
        if name in self.inits:
            self.g.initializer.remove(self.inits.pop(name))


def _qparams_key(gx: _Graph, q) -> bytes:
    return gx.array(q.input[1]).tobytes() + gx.array(q.input[2]).tobytes()


def _int8_weights(gx: _Graph, weights: dict) -> list:
    """Replace every Q(→Clip)→DQ on a float initializer by an int8 initializer → DQ.

    Each initializer is converted once; a second QuantizeLinear on the same initializer
    must carry the same scale and zero point (one int8 tensor, one scale set).

    Raises:
        ExportError: a weight is missing from ``weights``, or one initializer is
            quantized with two different scale sets.
    """
    removed, converted = [], {}
    for q in [n for n in gx.g.node if n.op_type == "QuantizeLinear" and n.input[0] in gx.inits]:
        name = q.input[0]
        chain_end, clip = q.output[0], None
        nxt = gx.consumers.get(chain_end, [])
        if len(nxt) == 1 and nxt[0].op_type == "Clip":
            clip = nxt[0]
            chain_end = clip.output[0]
        if name in converted:
            if converted[name] != _qparams_key(gx, q):
                raise ExportError(f"ONNX export: {name!r} is quantized with two different "
                                  "scale sets; a shared weight must have one")
        elif name in weights:
            converted[name] = _qparams_key(gx, q)
            gx.drop_init(name)
            gx.add_init(np.ascontiguousarray(weights[name].values, dtype=np.int8), name)
        else:
            raise ExportError(f"ONNX export: constant {name!r} is quantized in the graph but "
                              "has no int8 tensor in the QuantizedModel")
        for dq in gx.consumers.get(chain_end, []):
            for k, inp in enumerate(dq.input):
                if inp == chain_end:
                    dq.input[k] = name
        removed += [q] + ([clip] if clip else [])
    return removed


def _dq_scale(gx: _Graph, tensor: str) -> np.ndarray:
    dq = gx.producer.get(tensor)
    if dq is None or dq.op_type != "DequantizeLinear":
        raise ExportError(f"ONNX export: expected a DequantizeLinear to produce {tensor!r}")
    return gx.array(dq.input[1])


def _int32_biases(gx: _Graph) -> None:
    """Give every Conv/Gemm call site an int32 bias with scale = s_in × s_w, via DQ."""
    from onnx import helper

    seen: dict[tuple, str] = {}
    for node in [n for n in gx.g.node if n.op_type in ("Conv", "Gemm")]:
        if len(node.input) < 3 or node.input[2] not in gx.inits:
            continue
        bias_name = node.input[2]
        bias = gx.array(bias_name).astype(np.float64)
        s_in = _dq_scale(gx, node.input[0]).astype(np.float64)
        s_w = _dq_scale(gx, node.input[1]).astype(np.float64)
        per_tensor = s_w.size == 1  # per-tensor weight: one bias scale, as in the .tflite
        scale64 = (s_in * s_w).reshape(()) if per_tensor else np.broadcast_to(s_in * s_w,
                                                                               bias.shape)
        scale = scale64.astype(np.float32)
        # Divide by the float64 product, as the TFLite converter does: dividing by the
        # float32-rounded scale moves some values by 1 and the two int8 files would differ.
        q = np.clip(np.rint(bias / scale64), -(2**31), 2**31 - 1).astype(np.int32)
        key = (bias_name, q.tobytes(), scale.tobytes())
        if key not in seen:
            k = sum(1 for kk in seen if kk[0] == bias_name)
            base = f"{bias_name}.int32.{k}"
            gx.add_init(q, base)
            gx.add_init(scale, base + ".scale")
            gx.add_init(np.zeros(scale.shape, np.int32), base + ".zero_point")
            out = base + ".dequantized"
            gx.g.node.insert(
                list(gx.g.node).index(node),
                helper.make_node("DequantizeLinear", [base, base + ".scale", base + ".zero_point"],
                                 [out], name=out, **({} if per_tensor else {"axis": 0})),
            )
            seen[key] = out
        node.input[2] = seen[key]
    for name in {k[0] for k in seen}:
        if not any(name in n.input for n in gx.g.node):
            gx.drop_init(name)


def _int8_io(gx: _Graph) -> None:
    """Make the graph input and output int8: drop the input's Q and the output's DQ."""
    from onnx import TensorProto

    removed = []
    for inp in gx.g.input:
        qs = gx.consumers.get(inp.name, [])
        if len(qs) != 1 or qs[0].op_type != "QuantizeLinear":
            continue
        q = qs[0]
        for dq in gx.consumers.get(q.output[0], []):
            for k, i in enumerate(dq.input):
                if i == q.output[0]:
                    dq.input[k] = inp.name
        inp.type.tensor_type.elem_type = TensorProto.INT8
        removed.append(q)
    for out in gx.g.output:
        dq = gx.producer.get(out.name)
        if dq is None or dq.op_type != "DequantizeLinear":
            continue
        q = gx.producer.get(dq.input[0])
        if q is None or q.op_type != "QuantizeLinear" or len(gx.consumers[dq.input[0]]) != 1:
            continue
        q.output[0] = out.name
        out.type.tensor_type.elem_type = TensorProto.INT8
        removed.append(dq)
    for n in removed:
        gx.g.node.remove(n)


def to_int8_storage(model, weights: dict):
    """Rewrite a dynamo QDQ export in place into int8 storage form; returns ``model``.

    Args:
        model: ``onnx.ModelProto`` from ``torch.onnx.export(pt2e_graph, dynamo=True)``.
        weights: ``{parameter name: QuantizedWeight}``; these int8 values are stored
            as they are, so ONNX and TFLite hold the same tensors.
    """
    gx = _Graph(model.graph)
    for n in _int8_weights(gx, weights):
        model.graph.node.remove(n)
    gx = _Graph(model.graph)
    _int32_biases(gx)
    gx = _Graph(model.graph)
    _int8_io(gx)
    used = {i for n in model.graph.node for i in n.input}
    for init in [i for i in model.graph.initializer if i.name not in used]:
        model.graph.initializer.remove(init)
    del model.graph.value_info[:]
    return model
