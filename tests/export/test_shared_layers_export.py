"""Every shared layer survives int8 export: one stored copy, exact predicted bytes, and
runtimes that agree. Covers SharedConv2d (channel sum as a 1×1 CONV_2D with all-ones
weights, then the shared filters) and SharedLinear (two FULLY_CONNECTED), which the digits
demo model does not use."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tinyshare.export.inspect import inspect_model
from tinyshare.export.onnx import export_onnx_int8
from tinyshare.export.storage import expected_storage
from tinyshare.export.tflite import export_tflite_int8
from tinyshare.models.layers import (
    SharedConv2d,
    SharedDepthwiseConv2d,
    SharedLinear,
    switch_to_deploy,
)
from tinyshare.quantize.ptq import quantize_ptq


class AllShared(nn.Module):
    """(N, 3, 8, 8) → (N, 5): every shared layer kind once."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = SharedConv2d(3, 8, 3, padding=1, activation="relu")
        self.dw = SharedDepthwiseConv2d(8, 3, padding=1, activation="relu")
        self.fc = SharedLinear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dw(self.conv(x))
        x = F.max_pool2d(x, 8).flatten(1)  # (N, 8)
        return self.fc(x)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = switch_to_deploy(AllShared()).eval()
    qm = quantize_ptq(model, rng.random((32, 3, 8, 8), dtype=np.float32))
    d = tmp_path_factory.mktemp("allshared")
    return {"qm": qm, "tflite": export_tflite_int8(qm, d / "m.tflite"),
            "onnx": export_onnx_int8(qm, d / "m.onnx"),
            "x": rng.random((50, 3, 8, 8), dtype=np.float32)}


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_stored_bytes_match_prediction(exported, fmt):
    info = inspect_model(exported[fmt])
    assert info.stored_weight_bytes == expected_storage(exported["qm"], fmt).total_bytes
    shapes = sorted(tuple(w.values.shape) for w in exported["qm"].weights)
    # conv: its channel-sum ones (1, 3, 1, 1) and one 3x3 filter per output channel;
    # dw: one 3x3 filter; fc: v (8,), s (5, 1)
    assert (1, 3, 1, 1) in shapes and (8, 1, 3, 3) in shapes and (1, 1, 3, 3) in shapes
    assert (1, 8) in shapes and (5, 1) in shapes


def test_tflite_graph_is_int8_without_transpose(exported):
    ops = [o.op_code for o in inspect_model(exported["tflite"]).ops]
    assert "TRANSPOSE" not in ops and "DEQUANTIZE" not in ops
    # The channel sum is a CONV_2D, not a SUM: TFLM's int8 SUM and LiteRT's disagreed
    # downstream by up to 4 LSB. The 1-input-channel conv after it becomes a depthwise.
    assert "SUM" not in ops and ops[:2] == ["CONV_2D", "DEPTHWISE_CONV_2D"]
    assert ops.count("FULLY_CONNECTED") == 2


def test_runtimes_follow_the_int8_graph(exported):
    from tinyshare.targets.agreement import compare
    from tinyshare.targets.runtimes.litert import run_litert
    from tinyshare.targets.runtimes.onnxruntime import run_onnxruntime
    from tinyshare.targets.runtimes.tflm import run_tflm

    x = exported["x"]
    ref = run_litert(exported["tflite"], np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
    ort = run_onnxruntime(exported["onnx"], x, optimization="disable")
    assert compare(ref, ort, tolerance_lsb=1).within_tolerance
    tflm = run_tflm(exported["tflite"], np.ascontiguousarray(x.transpose(0, 2, 3, 1)),
                    arena_bytes=1 << 16)
    # Reference kernels on both sides, 1 LSB apart on a few values: this TFLM build
    # requantizes with double rounding (our generated C matches it only that way,
    # tests/codegen); LiteRT's reference kernels round differently somewhere.
    assert compare(ref, tflm, tolerance_lsb=1).within_tolerance
    torch_out = exported["qm"].run(x)
    assert np.abs(ref.dequantized - torch_out).max() <= 1.01 * exported["qm"].output_scale


def test_training_form_is_refused_before_export():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="training form"):
        quantize_ptq(AllShared().eval(), rng.random((2, 3, 8, 8), dtype=np.float32))


class StridedDepthwise(nn.Module):
    """(N, 4, 8, 8) → (N, 3): a stride-2 shared depthwise conv with bias (the reshape
    deploy form), as MobileNet's downsampling blocks use it."""

    def __init__(self) -> None:
        super().__init__()
        self.dw = SharedDepthwiseConv2d(4, 3, stride=2, padding=1, activation="relu")
        self.fc = nn.Linear(4 * 4 * 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dw(x).flatten(1))


def test_stride2_shared_depthwise_with_bias_exports_to_both_formats(tmp_path):
    """The reshape deploy form adds its bias without a view of the parameter, so the int8
    ONNX pass finds it; both files store the filter once and agree within 1 LSB."""
    from tinyshare.targets.agreement import compare
    from tinyshare.targets.runtimes.litert import run_litert
    from tinyshare.targets.runtimes.onnxruntime import run_onnxruntime

    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    model = switch_to_deploy(StridedDepthwise()).eval()
    qm = quantize_ptq(model, rng.random((32, 4, 8, 8), dtype=np.float32))
    tfl = export_tflite_int8(qm, tmp_path / "m.tflite")
    onnx = export_onnx_int8(qm, tmp_path / "m.onnx")
    for path in (tfl, onnx):
        info = inspect_model(path)
        filters = [t for t in info.weight_tensors if t.dtype == "int8" and t.shape is not None
                   and int(np.prod(t.shape)) == 9]
        assert len(filters) == 1, path  # one 3x3 filter for all 4 channels
    x = rng.random((20, 4, 8, 8), dtype=np.float32)
    ref = run_litert(tfl, np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
    ort = run_onnxruntime(onnx, x, optimization="disable")
    assert compare(ref, ort, tolerance_lsb=1).within_tolerance
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    assert np.abs(ref.dequantized - want).max() <= 4 * qm.output_scale + 0.05 * np.abs(want).max()


def _conv_scales(onnx_path):
    """(s_in, s_w per channel) of the first Conv of an int8 ONNX file, float64."""
    from onnx import load, numpy_helper

    m = load(str(onnx_path))
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    dq = {n.output[0]: n for n in m.graph.node if n.op_type == "DequantizeLinear"}
    conv = next(n for n in m.graph.node if n.op_type == "Conv")
    s_in, s_w = (inits[dq[conv.input[k]].input[1]].astype(np.float64) for k in (0, 1))
    return float(np.ravel(s_in)[0]), np.ravel(s_w)


def test_int32_biases_are_the_same_in_onnx_and_tflite_near_a_rounding_boundary(tmp_path):
    """A conv bias whose int32 value differs when divided by the float32-rounded scale
    instead of the float64 product s_in * s_w: both files must store the same int32 value
    (the TFLite converter's, from the float64 product)."""
    from ai_edge_litert.interpreter import Interpreter
    from onnx import load, numpy_helper

    torch.manual_seed(0)
    calib = np.random.default_rng(2).random((16, 2, 4, 4), dtype=np.float32)
    model = nn.Sequential(nn.Conv2d(2, 2, 1), nn.Flatten(), nn.Linear(32, 3)).eval()
    qm = quantize_ptq(model, calib)
    s_in, s_w = _conv_scales(export_onnx_int8(qm, tmp_path / "probe.onnx"))
    s64 = s_in * s_w[0]
    s32 = np.float64(np.float32(s64))
    # find a float32 bias where the two divisions round apart (the bias changes no scale)
    cands = (np.float32((k + 0.5) * s64) for k in range(1, 200_000))
    bias = next(b for b in cands if np.rint(np.float64(b) / s64) != np.rint(np.float64(b) / s32))
    with torch.no_grad():
        model[0].bias[0] = float(bias)
    qm = quantize_ptq(model, calib)
    tfl = export_tflite_int8(qm, tmp_path / "edge.tflite")
    onnx_path = export_onnx_int8(qm, tmp_path / "edge.onnx")
    assert _conv_scales(onnx_path)[0] == s_in  # same input scale as the probe
    want = int(np.rint(np.float64(bias) / s64))
    onnx_bias = next(numpy_helper.to_array(i) for i in load(str(onnx_path)).graph.initializer
                     if i.name.startswith("0.bias.int32") and i.name.count(".") == 3)
    interp = Interpreter(str(tfl))
    tfl_biases = [interp.get_tensor(d["index"]) for d in interp.get_tensor_details()
                  if d["dtype"] == np.int32 and tuple(d["shape"]) == (2,)]
    assert int(onnx_bias[0]) == want
    assert any(int(b[0]) == want for b in tfl_biases)
