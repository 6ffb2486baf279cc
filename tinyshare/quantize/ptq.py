"""PT2E post-training int8 quantization that quantizes every shared weight once.

TFLite int8 spec: per-channel symmetric int8 weights (axis 0, [-127, 127]),
per-tensor affine int8 activations, int32 biases (derived by the converters as
input_scale × weight_scale).
"""

from __future__ import annotations

import dataclasses
import copy
import logging
from collections.abc import Callable, Mapping

import numpy as np

from tinyshare.artifacts.models import (
    QuantizedModel,
    QuantizedWeight,
    graph_attr,
    require_deploy_form,
)
from tinyshare.artifacts.threads import torch_threads
from tinyshare.errors import QuantizationError, RuntimeUnavailableError, SharingError

log = logging.getLogger(__name__)


def make_quantizer(per_channel: bool, qat: bool = False,
                   per_module: Mapping[str, bool] | None = None):
    """litert-torch's ``PT2EQuantizer`` with our node-by-node annotation (``annotate.py``).

    Args:
        per_channel: the global weight granularity (int8 symmetric; per-channel on axis 0
            or per-tensor); activations are always per-tensor affine int8.
        qat: give fake-quantize specs (moving-average observers) for QAT.
        per_module: ``{module fqn: per_channel}`` overrides, already checked against
            sharing (``settings.per_channel_by_module``).

    Returns:
        A quantizer for ``prepare_pt2e`` / ``prepare_qat_pt2e``.

    Raises:
        RuntimeUnavailableError: litert-torch cannot be imported.
    """
    try:
        from litert_torch.quantize.pt2e_quantizer import (
            PT2EQuantizer,
            get_symmetric_quantization_config,
        )
    except ImportError as exc:  # pragma: no cover - a pinned dependency
        raise RuntimeUnavailableError(f"int8 quantization needs litert-torch: {exc}; "
                                      "reinstall with `make install`") from exc

    from tinyshare.quantize.annotate import annotate_graph

    def config(pc: bool):
        return get_symmetric_quantization_config(is_per_channel=pc, is_qat=qat)

    module_configs = {name: config(pc) for name, pc in (per_module or {}).items()
                      if pc != per_channel}

    class SharingAwareQuantizer(PT2EQuantizer):
        """litert-torch's quantizer with our node-by-node annotation."""

        def annotate(self, model):
            return annotate_graph(model, self.global_config, module_configs)

    return SharingAwareQuantizer().set_global(config(per_channel))


def quantize_ptq(
    model,
    calib_x: np.ndarray,
    *,
    per_channel: bool = True,
    layers: Mapping[str, bool] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> QuantizedModel:
    """Quantize a float model to int8 with PT2E post-training quantization.

    Args:
        model: a float ``torch.nn.Module`` with its shared layers in deploy form
            (``tinyshare.models.layers.switch_to_deploy``); it is not changed.
        calib_x: (N, C, H, W) (or (N, F)) float32 calibration inputs; the graph is
            exported with batch 1 and calibrated one sample at a time.
        per_channel: per-channel (True) or per-tensor weight scales.
        layers: per-module overrides of ``per_channel`` (``{module fqn: bool}``), checked
            against sharing first (``settings.per_channel_by_module``).
        progress: called as ``progress("calibrate", i, N)``.

    Returns:
        The ``QuantizedModel`` both exporters read.

    Raises:
        ValueError: a shared layer is still in its training form.
        ConfigError: ``layers`` names no module with weights, or gives a shared weight
            two settings.
        SharingError: a shared weight would get two different scale sets.
    """
    import torch
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from tinyshare.quantize.annotate import untie_shared_uses
    from tinyshare.quantize.settings import per_channel_by_module

    require_deploy_form(model)
    deploy = copy.deepcopy(model).eval()
    example = torch.from_numpy(calib_x[:1].copy())
    gm = torch.export.export(deploy, (example,)).module()
    shared = untie_shared_uses(gm)
    quantizer = make_quantizer(
        per_channel, per_module=per_channel_by_module(model, per_channel, layers or {}))
    prepared = prepare_pt2e(gm, quantizer)
    with torch.no_grad(), torch_threads(1):  # histogram observers: ~30x slower on 2 threads
        for i in range(len(calib_x)):
            prepared(torch.from_numpy(calib_x[i : i + 1]))
            if progress:
                progress("calibrate", i + 1, len(calib_x))
    converted = convert_pt2e(prepared, fold_quantize=False)
    move_exported_model_to_eval(converted)
    converted.training = False  # exported graphs refuse .eval(); the flag is all that is left
    weights = extract_weights(converted, shared)
    in_q, out_q = io_qparams(converted)
    return QuantizedModel(
        graph=converted, quantizer=quantizer, example_input=example, weights=weights,
        input_scale=in_q[0], input_zero_point=in_q[1],
        output_scale=out_q[0], output_zero_point=out_q[1],
        per_channel=per_channel, shared_call_sites=shared,
    )


_Q_PER_CHANNEL = "quantized_decomposed.quantize_per_channel.default"
_Q_PER_TENSOR = "quantized_decomposed.quantize_per_tensor.default"


def _const(gm, node) -> np.ndarray:
    if hasattr(node, "op") and node.op == "get_attr":
        return graph_attr(gm, node.target).detach().numpy()
    return np.asarray(node)


def extract_weights(gm, shared: dict[str, int]) -> tuple[QuantizedWeight, ...]:
    """Collect one int8 tensor per quantized parameter from a converted PT2E graph.

    Raises:
        SharingError: two call sites of one parameter were given different scales.
    """
    import torch

    found: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, int | None]] = {}
    for node in gm.graph.nodes:
        if node.op != "call_function" or str(node.target) not in (_Q_PER_CHANNEL, _Q_PER_TENSOR):
            continue
        src = node.args[0]
        if getattr(src, "op", None) != "get_attr":
            continue
        per_channel = str(node.target) == _Q_PER_CHANNEL
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
    return _merge_identical_constants(gm, tuple(
        QuantizedWeight(name=k, values=v[0], scales=v[1], zero_points=v[2], axis=v[3],
                        call_sites=shared.get(k, 1))
        for k, v in found.items()
    ))


def _merge_identical_constants(gm, weights: tuple[QuantizedWeight, ...]
                               ) -> tuple[QuantizedWeight, ...]:
    """Merge quantized buffers (constants, not Parameters) with identical int8 values, scales
    and zero points into one entry read by all their call sites, the first name kept.

    Both exporters store a constant once however many ops read it (litert-torch and
    torch.onnx dedupe identical constants), e.g. the all-ones channel-sum filters of two
    ``SharedConv2d`` layers with the same C_in. Parameters are never merged: equal values
    there are a coincidence of training, not one tensor.
    """
    params = {name for name, _ in gm.named_parameters()}
    kept: list[QuantizedWeight] = []
    for w in weights:
        twin = next((k for k in kept if w.name not in params and k.name not in params
                     and k.values.shape == w.values.shape and np.array_equal(k.values, w.values)
                     and np.array_equal(k.scales, w.scales)
                     and np.array_equal(k.zero_points, w.zero_points)), None)
        if twin is None:
            kept.append(w)
        else:
            kept[kept.index(twin)] = dataclasses.replace(
                twin, call_sites=twin.call_sites + w.call_sites)
    return tuple(kept)


_DQ_PER_TENSOR = "quantized_decomposed.dequantize_per_tensor.default"


def io_qparams(gm) -> tuple[tuple[float, int], tuple[float, int]]:
    """(scale, zero_point) of the quantize that reads the graph input and of the
    dequantize that feeds the graph output.

    Raises:
        QuantizationError: the input or output is not quantized (not fully int8).
    """
    placeholder = next(n for n in gm.graph.nodes if n.op == "placeholder")
    first = next((u for u in placeholder.users if str(u.target) == _Q_PER_TENSOR), None)
    output = next(n for n in gm.graph.nodes if n.op == "output")
    result = output.args[0][0] if isinstance(output.args[0], (tuple, list)) else output.args[0]
    if first is None or str(getattr(result, "target", "")) != _DQ_PER_TENSOR:
        raise QuantizationError("the quantized graph's input or output is not int8; every op on "
                           "the path must be one the annotator supports")

    def qp(n):
        return float(_const(gm, n.args[1])), int(_const(gm, n.args[2]))

    return qp(first), qp(result)
