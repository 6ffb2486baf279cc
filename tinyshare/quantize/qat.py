"""PT2E quantization-aware training (QAT): fake-quantized fine-tuning, then the same int8
``QuantizedModel`` PTQ gives, so both exporters and every later stage read it unchanged.

Steps, on a copy of the trained float model in its deploy form:

1. ``torch.export`` with a dynamic batch dimension (training needs batches, the exporters
   batch 1);
2. BatchNorm folded into the conv before it, with the running statistics frozen (the
   "freeze BN" QAT recipe; PTQ folds the same way, so both start from the same weights);
3. every call site annotated by our node-by-node annotator (``annotate.py``) with
   litert-torch's QAT specs (``FakeQuantize`` with moving-average observers), one weight
   observer per call site of a shared weight, all reading the one Parameter;
4. fine-tuning by the caller's ``fit`` (the pipeline's Adam loop), fake quantization in
   the forward pass, straight-through gradients, the gradients of every call site summing
   into the one shared Parameter;
5. ``convert_pt2e`` and the same weight extraction as PTQ, which refuses a shared weight
   whose call sites ended with different scales.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping

import numpy as np

from tinyshare.artifacts.models import QuantizedModel, require_deploy_form

__all__ = ["quantize_qat"]


def quantize_qat(
    model,
    example_x: np.ndarray,
    fit: Callable[[object], object],
    *,
    per_channel: bool = True,
    layers: Mapping[str, bool] | None = None,
) -> QuantizedModel:
    """Fine-tune ``model`` with fake int8 quantization and convert it to int8.

    Args:
        model: a trained float ``torch.nn.Module`` with its shared layers in deploy form;
            it is not changed.
        example_x: (B, C, H, W) (or (B, F)) float32 with B ≥ 2, to trace the graph with a
            dynamic batch dimension.
        fit: trains the fake-quantized module it is given in place (it switches modes with
            ``.train()`` / ``.eval()`` and takes batches of any size), e.g. the pipeline's
            ``train_model`` with the QAT schedule.
        per_channel: per-channel (True) or per-tensor weight scales.
        layers: per-module overrides of ``per_channel``, as for ``quantize_ptq``.

    Returns:
        The ``QuantizedModel`` both exporters read (exported at batch 1).

    Raises:
        ValueError: a shared layer is still in its training form, or ``example_x`` has
            fewer than 2 samples.
        ConfigError: ``layers`` names no module with weights, or gives a shared weight
            two settings.
        SharingError: a shared weight ended with two different scale sets.
    """
    import torch
    from torchao.quantization.pt2e import (
        allow_exported_model_train_eval,
        move_exported_model_to_eval,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_qat_pt2e
    from torchao.quantization.pt2e.utils import _fuse_conv_bn_

    from tinyshare.quantize.annotate import untie_shared_uses
    from tinyshare.quantize.settings import per_channel_by_module
    from tinyshare.quantize.ptq import extract_weights, io_qparams, make_quantizer

    if len(example_x) < 2:
        raise ValueError(f"example_x needs at least 2 samples to trace a dynamic batch, "
                         f"got {len(example_x)}")
    require_deploy_form(model)
    deploy = copy.deepcopy(model).eval()
    trace = torch.from_numpy(np.ascontiguousarray(example_x[:2]))
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    gm = torch.export.export(deploy, (trace,), dynamic_shapes=({0: batch},)).module()
    _fuse_conv_bn_(gm)
    shared = untie_shared_uses(gm)
    quantizer = make_quantizer(
        per_channel, qat=True, per_module=per_channel_by_module(model, per_channel, layers or {}))
    prepared = prepare_qat_pt2e(gm, quantizer)
    allow_exported_model_train_eval(prepared)  # .train() / .eval() switch the fake quant
    fit(prepared)
    converted = convert_pt2e(prepared, fold_quantize=False)
    move_exported_model_to_eval(converted)
    converted.training = False
    weights = extract_weights(converted, shared)
    in_q, out_q = io_qparams(converted)
    return QuantizedModel(
        graph=converted, quantizer=quantizer, example_input=trace[:1].clone(), weights=weights,
        input_scale=in_q[0], input_zero_point=in_q[1],
        output_scale=out_q[0], output_zero_point=out_q[1],
        per_channel=per_channel, shared_call_sites=shared,
    )
