"""PT2E QAT: fake-quantized fine-tuning that yields the same int8 artifacts as PTQ, with
every call site of a reused module quantized and each shared weight stored once."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tinyshare.export.inspect import inspect_model
from tinyshare.export.onnx import export_onnx_int8
from tinyshare.export.tflite import export_tflite_int8
from tinyshare.quantize.qat import quantize_qat


class ReusedLinear(nn.Module):
    """Field case C1's model: one Linear(16, 16) called twice, ReLU after the first only."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.fc(x)))


def _fit_regression(x: np.ndarray, target: np.ndarray, steps: int = 30):
    def fit(module) -> None:
        opt = torch.optim.Adam(module.parameters(), lr=1e-2)
        module.train()
        xt, yt = torch.from_numpy(x), torch.from_numpy(target)
        for _ in range(steps):
            loss = F.mse_loss(module(xt), yt)
            opt.zero_grad()
            loss.backward()
            opt.step()
        module.eval()
    return fit


@pytest.fixture(scope="module")
def c1_qat(tmp_path_factory):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = ReusedLinear().eval()
    x = rng.standard_normal((128, 16)).astype(np.float32)
    target = np.tanh(x[:, ::-1].copy())
    before = model.fc.weight.detach().clone()
    qm = quantize_qat(model, x, _fit_regression(x, target))
    d = tmp_path_factory.mktemp("c1qat")
    return {"qm": qm, "model": model, "before": before,
            "tflite": export_tflite_int8(qm, d / "m.tflite"),
            "onnx": export_onnx_int8(qm, d / "m.onnx"),
            "x": rng.standard_normal((100, 16)).astype(np.float32)}


def test_qat_fine_tunes_a_copy_and_leaves_the_model_alone(c1_qat):
    assert torch.equal(c1_qat["model"].fc.weight, c1_qat["before"])
    w = c1_qat["qm"].weights[0]
    dequantized = w.values.astype(np.float32) * w.scales[:, None]
    assert np.abs(dequantized - c1_qat["before"].numpy()).max() > 0.01  # it did train


def test_every_call_site_is_int8_and_the_weight_is_one_tensor(c1_qat):
    qm = c1_qat["qm"]
    assert [w.name for w in qm.weights] == ["fc.weight"]
    w = qm.weights[0]
    assert w.call_sites == 2 and w.values.dtype == np.int8 and w.scales.shape == (16,)
    linears = [n for n in qm.graph.graph.nodes
               if n.op == "call_function" and "linear" in str(n.target)]
    assert len(linears) == 2
    for n in linears:
        assert "dequantize" in str(n.args[0].target) and "dequantize" in str(n.args[1].target)


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_files_store_the_weight_once(c1_qat, fmt):
    info = inspect_model(c1_qat[fmt])
    int8 = [t for t in info.weight_tensors if t.dtype == "int8"]
    assert len(int8) == 1 and int8[0].shape in ((16, 16),)
    assert [len(g.consumer_ops) for g in info.sharing_groups
            if info.tensor(g.tensor_names[0]).dtype == "int8"] == [2]


def test_both_files_and_pytorch_agree(c1_qat):
    from tinyshare.targets.agreement import compare
    from tinyshare.targets.runtimes.litert import run_litert
    from tinyshare.targets.runtimes.onnxruntime import run_onnxruntime

    x, qm = c1_qat["x"], c1_qat["qm"]
    ref = run_litert(c1_qat["tflite"], x)
    ort = run_onnxruntime(c1_qat["onnx"], x, optimization="disable")
    assert compare(ref, ort, tolerance_lsb=1).within_tolerance
    assert np.abs(ref.dequantized - qm.run(x)).max() <= 1.01 * qm.output_scale


def test_bn_is_folded_and_shared_weights_keep_one_scale_set():
    """A BN after an ordinary conv folds before fine-tuning (frozen statistics); the
    shared depthwise filter of the reused block keeps one tensor and one scale set."""
    from tinyshare.models.layers import switch_to_deploy
    from tinyshare.models.zoo import build_model

    torch.manual_seed(0)
    model = build_model("ds_cnn", input_shape=(1, 12, 8), num_classes=4, width=8)
    rng = np.random.default_rng(0)
    x = rng.random((64, 1, 12, 8), dtype=np.float32)
    y = rng.integers(0, 4, 64)
    model.train()
    model(torch.from_numpy(x))  # BN running statistics that are not the identity
    model = switch_to_deploy(model).eval()

    def fit(module) -> None:
        opt = torch.optim.Adam(module.parameters(), lr=1e-3)
        module.train()
        loss = F.cross_entropy(module(torch.from_numpy(x)), torch.from_numpy(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        module.eval()

    qm = quantize_qat(model, x, fit)
    ops = {str(n.target) for n in qm.graph.graph.nodes if n.op == "call_function"}
    assert not any("batch_norm" in o for o in ops)
    by_name = {w.name: w for w in qm.weights}
    dw = by_name["blocks.block.dw.weight"]
    assert dw.values.shape == (1, 1, 3, 3) and dw.call_sites == 4 and dw.scales.shape == (1,)
    assert set(by_name) == {"stem.weight", "blocks.block.dw.weight", "blocks.block.dw.bias",
                            "blocks.block.pw.weight", "head.weight"}


def test_too_few_trace_samples_are_refused():
    with pytest.raises(ValueError, match="at least 2 samples"):
        quantize_qat(ReusedLinear().eval(), np.zeros((1, 16), np.float32), lambda m: None)
