"""PT2E post-training int8 quantization that quantizes every shared weight once.

TFLite int8 spec: per-channel symmetric int8 weights (axis 0, [-127, 127]),
per-tensor affine int8 activations, int32 biases (derived by the converters as
input_scale × weight_scale).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tinyshare.errors import SharingError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QuantizedWeight:
    """One stored weight after quantization: one int8 tensor with one scale set.

    Attributes:
        name: the parameter's qualified name in the model (e.g. ``stem.weight``).
        values: int8 array with the parameter's PyTorch shape.
        scales: (C_out,) float32 for per-channel, (1,) for per-tensor.
        zero_points: same shape as ``scales``, int64 (all 0: symmetric).
        axis: quantized dimension (0) or None for per-tensor.
        call_sites: how many ops read this weight.
    """

    name: str
    values: np.ndarray
    scales: np.ndarray
    zero_points: np.ndarray
    axis: int | None
    call_sites: int


@dataclass(frozen=True)
class QuantizedModel:
    """The one int8 model that both exporters read.

    Attributes:
        graph: the PT2E-converted ``torch.fx.GraphModule`` (Q/DQ nodes, weights kept
            as float parameters with their quantize ops, ``fold_quantize=False``).
        quantizer: the quantizer that annotated it (the TFLite converter needs it).
        example_input: (1, C, H, W) float32 tensor the graph was exported with.
        weights: every quantized weight, one entry per unique parameter.
        input_scale / input_zero_point / output_scale / output_zero_point: the graph's
            int8 I/O quantization.
    """

    graph: object
    quantizer: object
    example_input: object
    weights: tuple[QuantizedWeight, ...]
    input_scale: float
    input_zero_point: int
    output_scale: float
    output_zero_point: int
    per_channel: bool = True
    shared_call_sites: dict[str, int] = field(default_factory=dict)

    def run(self, x: np.ndarray) -> np.ndarray:
        """Run the PT2E graph (float with fake-quant steps) on ``x: (N, C, H, W)``.

        Returns:
            (N, K) float32 outputs, dequantized.
        """
        import torch

        with torch.no_grad():
            outs = [self.graph(torch.from_numpy(x[i : i + 1])).numpy() for i in range(len(x))]
        return np.concatenate(outs).astype(np.float32)


def _make_quantizer(per_channel: bool):
    from litert_torch.quantize.pt2e_quantizer import (
        PT2EQuantizer,
        get_symmetric_quantization_config,
    )

    from tinyshare.quantize.annotate import annotate_graph

    class SharingAwareQuantizer(PT2EQuantizer):
        """litert-torch's quantizer with our node-by-node annotation."""

        def annotate(self, model):
            return annotate_graph(model, self.global_config)

    return SharingAwareQuantizer().set_global(
        get_symmetric_quantization_config(is_per_channel=per_channel)
    )


def quantize_ptq(
    model,
    calib_x: np.ndarray,
    *,
    per_channel: bool = True,
    progress: Callable[[str, int, int], None] | None = None,
) -> QuantizedModel:
    """Quantize a float model to int8 with PT2E post-training quantization.

    Args:
        model: a float ``torch.nn.Module`` (its shared layers are switched to their
            deploy form on a copy; the caller's model is not changed).
        calib_x: (N, C, H, W) float32 calibration inputs.
        per_channel: per-channel (True) or per-tensor weight scales.
        progress: called as ``progress("calibrate", i, N)``.

    Raises:
        SharingError: a shared weight would get two different scale sets.
    """
    import torch
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from tinyshare.models.layers import switch_to_deploy
    from tinyshare.quantize.annotate import untie_shared_uses

    deploy = switch_to_deploy(copy.deepcopy(model).eval())
    example = torch.from_numpy(calib_x[:1].copy())
    gm = torch.export.export(deploy, (example,)).module()
    shared = untie_shared_uses(gm)
    quantizer = _make_quantizer(per_channel)
    prepared = prepare_pt2e(gm, quantizer)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # histogram observers are ~30x slower with 2 threads
    try:
        with torch.no_grad():
            for i in range(len(calib_x)):
                prepared(torch.from_numpy(calib_x[i : i + 1]))
                if progress:
                    progress("calibrate", i + 1, len(calib_x))
    finally:
        torch.set_num_threads(threads)
    converted = convert_pt2e(prepared, fold_quantize=False)
    move_exported_model_to_eval(converted)
    converted.training = False  # exported graphs refuse .eval(); the flag is all that is left
    weights = extract_weights(converted, shared)
    in_q, out_q = _io_qparams(converted)
    return QuantizedModel(
        graph=converted, quantizer=quantizer, example_input=example, weights=weights,
        input_scale=in_q[0], input_zero_point=in_q[1],
        output_scale=out_q[0], output_zero_point=out_q[1],
        per_channel=per_channel, shared_call_sites=shared,
    )


_Q_OPS = ("quantize_per_channel", "quantize_per_tensor")


def _const(gm, node) -> np.ndarray:
    if hasattr(node, "op") and node.op == "get_attr":
        return graph_attr(gm, node.target).detach().numpy()
    return np.asarray(node)


def graph_attr(gm, target: str):
    obj = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def extract_weights(gm, shared: dict[str, int]) -> tuple[QuantizedWeight, ...]:
    """Collect one int8 tensor per quantized parameter from a converted PT2E graph.

    Raises:
        SharingError: two call sites of one parameter were given different scales.
    """
    import torch

    found: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, int | None]] = {}
    for node in gm.graph.nodes:
        if node.op != "call_function" or not any(k in str(node.target) for k in _Q_OPS):
            continue
        src = node.args[0]
        if getattr(src, "op", None) != "get_attr":
            continue
        per_channel = "per_channel" in str(node.target)
        scales = np.atleast_1d(_const(gm, node.args[1])).astype(np.float32)
        zps = np.atleast_1d(_const(gm, node.args[2])).astype(np.int64)
        axis = int(node.args[3]) if per_channel else None
        qmin, qmax = (node.args[4], node.args[5]) if per_channel else (node.args[3], node.args[4])
        w = graph_attr(gm, src.target).detach()
        if per_channel:
            q = torch.ops.quantized_decomposed.quantize_per_channel(
                w, torch.from_numpy(scales.astype(np.float64)), torch.from_numpy(zps),
                axis, qmin, qmax, torch.int8)
        else:
            q = torch.ops.quantized_decomposed.quantize_per_tensor(
                w, float(scales[0]), int(zps[0]), qmin, qmax, torch.int8)
        entry = (q.numpy(), scales, zps, axis)
        prev = found.get(src.target)
        if prev is not None and not (
            np.array_equal(prev[0], entry[0]) and np.array_equal(prev[1], entry[1])
        ):
            raise SharingError(
                f"shared weight {src.target!r} got different int8 values or scales at "
                "two call sites; a shared weight must have one scale set"
            )
        found[src.target] = entry
    return tuple(
        QuantizedWeight(name=k, values=v[0], scales=v[1], zero_points=v[2], axis=v[3],
                        call_sites=shared.get(k, 1))
        for k, v in found.items()
    )


def _io_qparams(gm) -> tuple[tuple[float, int], tuple[float, int]]:
    """(scale, zero_point) of the first quantize after the input and the last one."""
    nodes = [n for n in gm.graph.nodes
             if n.op == "call_function" and "quantize_per_tensor" in str(n.target)
             and "dequantize" not in str(n.target)]
    placeholder = next(n for n in gm.graph.nodes if n.op == "placeholder")
    first = next(n for n in nodes if n.args[0] is placeholder)
    last = nodes[-1]

    def qp(n):
        return float(_const(gm, n.args[1])), int(_const(gm, n.args[2]))

    return qp(first), qp(last)
