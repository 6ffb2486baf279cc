"""Seeded model files for the export tests, built once per session.

* ``twice_conv``: a float torch model whose ``shared`` ``nn.Conv2d`` is called twice.
* ``twice_conv_tflite``: that model through our own int8 pipeline
  (``tinyshare.quantize.ptq.quantize_ptq`` -> ``tinyshare.export.tflite.export_tflite_int8``).
* ``twice_conv_onnx``: that model in float through ``torch.onnx.export(dynamo=True)``.
* ``qdq_onnx``: a hand-built int8 QDQ ONNX graph (``onnx.helper``) with shared initializers.

Heavy packages are imported inside the fixtures so collecting the tests stays fast.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from types import SimpleNamespace

import pytest

TORCH_SEED = 1234  # model init
CALIB_SEED = 5678  # calibration inputs
ONNX_SEED = 91011  # hand-built QDQ graph arrays
ONNX_OPSET = 21


def pytest_report_header(config):
    return f"tests/export seeds: torch={TORCH_SEED} calib={CALIB_SEED} onnx={ONNX_SEED}"


def _twice_conv_module():
    import torch
    from torch import nn

    class TwiceConv(nn.Module):
        """stem conv -> one shared 3x3 conv called twice -> global mean -> linear."""

        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Conv2d(1, 4, 3, padding=1)
            self.shared = nn.Conv2d(4, 4, 3, padding=1)
            self.fc = nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = torch.relu(self.stem(x))  # (N, 4, H, W)
            x = torch.relu(self.shared(x))  # same weights ...
            x = torch.relu(self.shared(x))  # ... second call site
            return self.fc(x.mean((2, 3)))  # (N, 3)

    return TwiceConv


@pytest.fixture(scope="session")
def twice_conv():
    """The float model, an example input and how often each parametrized module is called."""
    import torch

    torch.manual_seed(TORCH_SEED)
    model = _twice_conv_module()().eval()
    example = torch.randn(1, 1, 8, 8)
    calls: dict[str, int] = {}
    hooks = [
        m.register_forward_hook(lambda mod, args, out, name=name: calls.__setitem__(
            name, calls.get(name, 0) + 1))
        for name, m in model.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))
    ]
    with torch.no_grad():
        model(example)
    for h in hooks:
        h.remove()
    return SimpleNamespace(model=model, example=example, calls=calls)


@pytest.fixture(scope="session")
def twice_conv_tflite(twice_conv, tmp_path_factory) -> Path:
    """``twice_conv`` as a per-channel int8 .tflite made by our pipeline (NHWC int8 I/O).

    ``quantize_ptq`` unties the shared conv's uses (``untie_shared_uses``) so each call
    site is quantized while the weight stays one tensor. ``nn.Conv2d`` has no deploy
    form, so the model goes in as it is.
    """
    import numpy as np

    from tinyshare.export.tflite import export_tflite_int8
    from tinyshare.quantize.ptq import quantize_ptq

    calib = np.random.default_rng(CALIB_SEED).normal(size=(16, 1, 8, 8)).astype(np.float32)
    qm = quantize_ptq(twice_conv.model, calib, per_channel=True)
    path = tmp_path_factory.mktemp("tflite") / "twice_conv_int8.tflite"
    return export_tflite_int8(qm, path)


@pytest.fixture(scope="session")
def twice_conv_onnx(twice_conv, tmp_path_factory) -> Path:
    """``twice_conv`` in float as .onnx (dynamo exporter; it may write a .data file beside it)."""
    import torch

    path = tmp_path_factory.mktemp("onnx_float") / "twice_conv.onnx"
    with contextlib.redirect_stdout(io.StringIO()):
        torch.onnx.export(twice_conv.model, (twice_conv.example,), str(path), dynamo=True)
    return path


@pytest.fixture(scope="session")
def qdq_onnx(tmp_path_factory):
    """An int8 QDQ graph with weight sharing, built with ``onnx.helper``.

    x -Q-DQ-> Conv1(W1 via DQ_a, B1 via DQ) -> Relu -> Conv2(W1 via DQ_b, B2 via DQ) -> Relu
      -> Conv3(W2 via DQ_w2) -> Conv4(W2 via the same DQ_w2) -> Add(D via Q-DQ) -> Mul(0.5)
      -> Reshape(int64 shape) -> y

    W1 is shared through two DequantizeLinear chains, W2 through one DequantizeLinear read by
    two Convs. Scales, zero points, the scalar 0.5 and the int64 shape are metadata.
    """
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(ONNX_SEED)
    x_scale = np.float32(0.02)
    w1_scale = rng.uniform(0.005, 0.02, 2).astype(np.float32)
    weights = {  # the stored weights and biases
        "W1": rng.integers(-127, 128, (2, 2, 3, 3), dtype=np.int8),
        "W2": rng.integers(-127, 128, (2, 2, 1, 1), dtype=np.int8),
        "B1": rng.integers(-500, 500, 2, dtype=np.int32),
        "B2": rng.integers(-500, 500, 2, dtype=np.int32),
        "D": rng.normal(size=(1, 2, 1, 1)).astype(np.float32),
    }
    metadata = {
        "x_scale": x_scale, "x_zp": np.int8(0),
        "w1_scale": w1_scale, "w1_zp": np.zeros(2, np.int8),
        "w2_scale": np.float32(0.01), "w2_zp": np.int8(0),
        "b1_scale": (x_scale * w1_scale).astype(np.float32),
        "b2_scale": (np.float32(0.03) * w1_scale).astype(np.float32),
        "d_scale": np.float32(0.05), "d_zp": np.int8(0),
        "half": np.float32(0.5), "out_shape": np.array([1, 2, 36], np.int64),
    }
    inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in {**weights, **metadata}.items()]
    conv = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zp"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "x_scale", "x_zp"], ["xa"]),
        helper.make_node("DequantizeLinear", ["W1", "w1_scale", "w1_zp"], ["w1a"], axis=0),
        helper.make_node("DequantizeLinear", ["B1", "b1_scale"], ["b1"], axis=0),
        helper.make_node("Conv", ["xa", "w1a", "b1"], ["c1"], **conv),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("DequantizeLinear", ["W1", "w1_scale", "w1_zp"], ["w1b"], axis=0),
        helper.make_node("DequantizeLinear", ["B2", "b2_scale"], ["b2"], axis=0),
        helper.make_node("Conv", ["r1", "w1b", "b2"], ["c2"], **conv),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("DequantizeLinear", ["W2", "w2_scale", "w2_zp"], ["w2"]),
        helper.make_node("Conv", ["r2", "w2"], ["c3"], kernel_shape=[1, 1]),
        helper.make_node("Conv", ["c3", "w2"], ["c4"], kernel_shape=[1, 1]),
        helper.make_node("QuantizeLinear", ["D", "d_scale", "d_zp"], ["dq"]),
        helper.make_node("DequantizeLinear", ["dq", "d_scale", "d_zp"], ["d"]),
        helper.make_node("Add", ["c4", "d"], ["a"]),
        helper.make_node("Mul", ["a", "half"], ["m"]),
        helper.make_node("Reshape", ["m", "out_shape"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "qdq_shared",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 36])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)])
    model.ir_version = 10
    onnx.checker.check_model(model, full_check=True)
    path = tmp_path_factory.mktemp("onnx_qdq") / "qdq_shared.onnx"
    onnx.save(model, str(path))
    # The fixture must be a model a runtime accepts, not just one the reader accepts.
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {"x": rng.normal(size=(1, 2, 6, 6)).astype(np.float32)})
    assert y.shape == (1, 2, 36)
    conv_ops = tuple(i for i, n in enumerate(nodes) if n.op_type == "Conv")
    return SimpleNamespace(path=path, weights=weights, metadata=metadata, conv_ops=conv_ops,
                           opset=ONNX_OPSET)
