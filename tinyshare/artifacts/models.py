"""The in-memory artifacts that cross stage boundaries, and the facts stages share.

Stages never import each other: the quantizer produces a ``QuantizedModel`` and the
exporters read it, both through this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from tinyshare.artifacts.threads import torch_threads
from tinyshare.errors import QuantizationError

if TYPE_CHECKING:
    import torch
    import torchao

# aten ops that carry a weight (args[1]) and an optional bias (args[2]).
COMPUTE_OPS = ("aten.conv2d.default", "aten.linear.default", "aten.convolution.default")


def is_compute_op(target) -> bool:
    """Whether an FX node target is a weight-carrying compute op (conv / linear)."""
    return str(target) in COMPUTE_OPS


def require_deploy_form(model) -> None:
    """Refuse a model whose weight-shared layers are still in their training form.

    Shared layers expose ``deploy``; their training forms (e.g. ``expand`` + ``groups``)
    must not be exported (docs/toolchain.md: the expand form breaks per-channel int8).

    Raises:
        ValueError: a module has ``deploy == False``.
    """
    for name, m in model.named_modules():
        if getattr(m, "deploy", None) is False:
            raise ValueError(
                f"module {name!r} ({type(m).__name__}) is in its training form; call "
                "tinyshare.models.layers.switch_to_deploy on a copy first")


@dataclass(frozen=True)
class QuantizedWeight:
    """One stored weight after quantization: one int8 tensor with one scale set.

    Attributes:
        name: the parameter's qualified name in the model (e.g. ``stem.weight``).
        values: int8 array with the parameter's PyTorch shape.
        scales: (C_out,) float32 for per-channel, (1,) for per-tensor.
        zero_points: same shape as ``scales``, int64: 0 for conv / linear weights
            (symmetric); an int8 constant operand of ADD (the per-channel bias of the
            shared depthwise deploy form) is per-tensor affine and may have any.
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
            as float parameters with their quantize ops, ``fold_quantize=False``); None
            when the model was loaded back from a run folder's ``quantize/`` stage
            (``tinyshare.pipeline.reload``): only the exporters and ``run`` need it.
        quantizer: the quantizer that annotated it (the TFLite converter needs it); None
            with ``graph``.
        example_input: (1, C, H, W) float32 tensor the graph was exported with; None
            with ``graph``.
        weights: every quantized weight, one entry per unique parameter.
        input_scale / input_zero_point / output_scale / output_zero_point: the graph's
            int8 I/O quantization.
    """

    graph: torch.fx.GraphModule | None
    quantizer: torchao.quantization.pt2e.quantizer.Quantizer | None
    example_input: torch.Tensor | None
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

        Raises:
            QuantizationError: the model was loaded back without its graph.
        """
        import torch

        if self.graph is None:
            raise QuantizationError("this QuantizedModel was loaded from a run folder without its "
                             "PT2E graph; run the quantize stage again to execute it")

        with torch.no_grad(), torch_threads(1):  # batch 1, op by op: see torch_threads
            outs = [self.graph(torch.from_numpy(x[i : i + 1])).numpy() for i in range(len(x))]
        return np.concatenate(outs).astype(np.float32)


def graph_attr(gm, target: str):
    obj = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


