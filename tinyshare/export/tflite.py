"""Write .tflite files (float and int8) with litert-torch, NHWC at the graph's I/O."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

from tinyshare.artifacts.models import QuantizedModel, require_deploy_form


@contextlib.contextmanager
def _quiet_litert():
    """Silence litert-torch's own progress lines; our CLI shows its own progress."""
    import litert_torch

    old = litert_torch.config.show_progress
    litert_torch.config.show_progress = False
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield litert_torch
    finally:
        litert_torch.config.show_progress = old


def _channel_last(lt, module, example):
    """Wrap a (1, C, H, W) model so the graph takes (1, H, W, C); other ranks pass as is."""
    if example.dim() != 4:
        return module, example
    wrapped = lt.to_channel_last_io(module, args=[0])
    wrapped.training = False  # PT2E graphs refuse .eval(); both inputs are in eval mode
    return wrapped, example.permute(0, 2, 3, 1).contiguous()


def _write(edge_model, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with _quiet_litert():
        edge_model.export(str(tmp))
    os.replace(tmp, path)
    return path


def export_tflite_int8(qm: QuantizedModel, path: str | Path) -> Path:
    """Convert the PT2E int8 graph to a fully int8 ``.tflite`` (int8 I/O).

    Input tensor: (1, H, W, C) int8 for image models ((1, F) for vectors), with
    ``qm.input_scale`` / ``qm.input_zero_point``.
    """
    from litert_torch.quantize.quant_config import QuantConfig

    with _quiet_litert() as lt:
        module, example = _channel_last(lt, qm.graph, qm.example_input)
        edge = lt.convert(module, (example,),
                          quant_config=QuantConfig(pt2e_quantizer=qm.quantizer))
    return _write(edge, Path(path))


def export_tflite_float(model, example, path: str | Path) -> Path:
    """Convert a float model whose shared layers are in deploy form to float32 ``.tflite``.

    Args:
        model: ``torch.nn.Module`` taking (1, C, H, W) (or (1, F)) float32.
        example: an input of that shape; 4-D models get an NHWC graph input.
    """
    require_deploy_form(model)
    with _quiet_litert() as lt:
        module, nhwc = _channel_last(lt, model.eval(), example)
        edge = lt.convert(module, (nhwc,))
    return _write(edge, Path(path))
