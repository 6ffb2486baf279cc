"""Per-module weight quantization settings (``quantize.layers``) and their sharing check:
a shared weight read by two modules with different settings is refused, never resolved."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tinyshare.errors import ConfigError
from tinyshare.quantize.ptq import quantize_ptq
from tinyshare.quantize.settings import per_channel_by_module


class Tied(nn.Module):
    """(N, 8) → (N, 8): two Linear modules tied to one weight, each with its own bias."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(8, 8)
        self.b = nn.Linear(8, 8)
        self.b.weight = self.a.weight
        self.head = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.b(torch.relu(self.a(x))))


def _calib() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((16, 8)).astype(np.float32)


def test_tied_modules_with_different_settings_are_refused():
    with pytest.raises(ConfigError) as err:
        per_channel_by_module(Tied(), True, {"b": False})
    msg = str(err.value)
    assert "\n" not in msg
    assert "shared weight 'a.weight'" in msg
    assert "module 'a' (per_channel = true)" in msg and "module 'b' (per_channel = false)" in msg


def test_quantize_ptq_refuses_the_conflict_before_calibrating():
    with pytest.raises(ConfigError, match="shared weight 'a.weight'"):
        quantize_ptq(Tied().eval(), _calib(), layers={"a": False})


def test_tied_modules_with_the_same_setting_quantize_once():
    torch.manual_seed(0)
    qm = quantize_ptq(Tied().eval(), _calib(), layers={"a": False, "b": False})
    tied = [w for w in qm.weights if w.name in ("a.weight", "b.weight")]  # export's alias
    assert len(tied) == 1 and tied[0].call_sites == 2 and tied[0].scales.shape == (1,)
    head = next(w for w in qm.weights if w.name == "head.weight")
    assert head.scales.shape == (8,)  # the global per-channel setting


def test_override_changes_only_its_module():
    assert per_channel_by_module(Tied(), True, {"head": False}) == {
        "a": True, "b": True, "head": False}


def test_unknown_module_names_the_field_and_the_choices():
    with pytest.raises(ConfigError, match=r"quantize.layers: 'fc' is not a module with "
                                          r"weights in this model; expected one of: a, b, head"):
        per_channel_by_module(Tied(), True, {"fc": False})


def test_per_tensor_weights_get_one_bias_scale_in_both_files(tmp_path):
    """A per-tensor weight's int32 bias has one scale in the .onnx, as in the .tflite (it
    had one per channel, all equal: the same numbers, not the same tensor)."""
    import onnx
    from onnx import numpy_helper

    from tinyshare.export.onnx import export_onnx_int8
    from tinyshare.export.tflite import export_tflite_int8
    from tinyshare.targets.runtimes.litert import tensor_quant_params

    torch.manual_seed(0)
    qm = quantize_ptq(Tied().eval(), _calib(), layers={"a": False, "b": False})
    model = onnx.load(str(export_onnx_int8(qm, tmp_path / "m.onnx")))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    bias_scales = {n.input[0]: inits[n.input[1]].shape for n in model.graph.node
                   if n.op_type == "DequantizeLinear" and n.input[0] in inits
                   and inits[n.input[0]].dtype == np.int32}
    assert sorted(bias_scales.values()) == [(), (), (8,)]  # a, b per-tensor; head per-channel
    tfl = export_tflite_int8(qm, tmp_path / "m.tflite")
    int32 = [p for p in tensor_quant_params(tfl) if p.dtype == "int32"]
    assert sorted(p.scales.size for p in int32) == [1, 1, 8]
