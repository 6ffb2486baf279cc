"""Field case C1: one Linear(16, 16) called twice, ReLU after the first call only.

Right result: both call sites int8; the weight is one int8 tensor with one scale set;
each call site has its own input scale and int32 bias; int8 ONNX and TFLite agree
within ±1 LSB on 100 seeded inputs (and both follow PyTorch's int8 graph).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tinyshare.export.inspect import inspect_model
from tinyshare.export.onnx import export_onnx_int8
from tinyshare.export.tflite import export_tflite_int8
from tinyshare.quantize.ptq import quantize_ptq


class ReusedLinear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.fc(x)))  # ReLU after the first use only


@pytest.fixture(scope="module")
def c1(tmp_path_factory):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = ReusedLinear().eval()
    calib = rng.standard_normal((64, 16)).astype(np.float32)
    qm = quantize_ptq(model, calib)
    d = tmp_path_factory.mktemp("c1")
    return {
        "qm": qm,
        "tflite": export_tflite_int8(qm, d / "c1.tflite"),
        "onnx": export_onnx_int8(qm, d / "c1.onnx"),
        "x": rng.standard_normal((100, 16)).astype(np.float32),
    }


def test_both_call_sites_are_int8_with_one_weight_tensor(c1):
    qm = c1["qm"]
    assert [w.name for w in qm.weights] == ["fc.weight"]
    w = qm.weights[0]
    assert w.call_sites == 2 and w.values.dtype == np.int8 and w.scales.shape == (16,)
    graph = qm.graph.graph
    linears = [n for n in graph.nodes if n.op == "call_function" and "linear" in str(n.target)]
    assert len(linears) == 2
    for n in linears:  # every call site reads a dequantized int8 input and weight
        assert "dequantize" in str(n.args[0].target)
        assert "dequantize" in str(n.args[1].target)


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_files_store_one_weight_and_a_bias_per_call_site(c1, fmt):
    info = inspect_model(c1[fmt])
    int8 = [t for t in info.weight_tensors if t.dtype == "int8"]
    int32 = [t for t in info.weight_tensors if t.dtype == "int32"]
    assert len(int8) == 1 and int8[0].nbytes == 256
    assert len(int32) == 2 and all(t.nbytes == 64 for t in int32)
    (group,) = [g for g in info.sharing_groups if g.nbytes == 256]
    assert len(group.consumer_ops) == 2
    if fmt == "tflite":
        ops = [o.op_code for o in info.ops]
        assert ops.count("FULLY_CONNECTED") == 2
        assert "DEQUANTIZE" not in ops and "QUANTIZE" not in ops  # fully int8
        # Each call site's bias scale = its own input scale x the one weight scale set.
        biases = sorted(int32, key=lambda t: t.scales[0])
        assert biases[0].scales != biases[1].scales


def test_onnx_and_tflite_agree_within_one_lsb(c1):
    from tinyshare.targets.agreement import compare
    from tinyshare.targets.runtimes.litert import run_litert
    from tinyshare.targets.runtimes.onnxruntime import run_onnxruntime

    ref = run_litert(c1["tflite"], c1["x"], reference_kernels=True)
    ort = run_onnxruntime(c1["onnx"], c1["x"], optimization="disable")
    agreement = compare(ref, ort, tolerance_lsb=1)
    assert agreement.within_tolerance, agreement
    # Both follow PyTorch's int8 (Q/DQ) graph to within one output step.
    torch_out = c1["qm"].run(c1["x"])
    step = c1["qm"].output_scale
    assert np.abs(ref.dequantized - torch_out).max() <= step * 1.01
    assert np.abs(ort.dequantized - torch_out).max() <= step * 1.01
