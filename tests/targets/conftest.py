"""Small seeded models for the runtime tests, built in temporary folders.

* ``tiny_tflite``: an int8 CNN (conv → conv → depthwise → max-pool → linear) made by
  litert-torch's PT2E flow with per-channel weights, once per session (~5 s);
  ``conv_tflite``: the same without the linear head.
* ``qdq_onnx``: a hand-made int8-I/O ONNX MatMul+bias+ReLU in the shape our ONNX pass
  writes (int8 input → DequantizeLinear ... QuantizeLinear → int8 output), with
  power-of-two scales so its right outputs are exact integers computed in numpy.
* ``float_onnx``: the same layer with float I/O and float weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

SEED = 20261129
INPUT_SHAPE = (1, 1, 8, 8)  # NCHW, batch 1


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(SEED)


@dataclass(frozen=True)
class TinyTflite:
    path: Path
    float_model: object  # torch.nn.Module, eval mode
    pt2e_model: object  # the converted PT2E GraphModule (quantize/dequantize in float)
    inputs: np.ndarray  # (100, 1, 8, 8) float32, seeded


def _tiny_net(head: bool):
    import torch

    class TinyNet(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = torch.nn.Conv2d(1, 4, 3, padding=1)
            self.conv = torch.nn.Conv2d(4, 8, 3, padding=1)
            self.dw = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)
            self.fc = torch.nn.Linear(8 * 4 * 4, 10) if head else None

        def forward(self, x):  # x: (N, 1, 8, 8)
            x = torch.relu(self.stem(x))  # (N, 4, 8, 8)
            x = torch.relu(self.conv(x))  # (N, 8, 8, 8)
            x = torch.relu(self.dw(x))  # (N, 8, 8, 8)
            x = torch.nn.functional.max_pool2d(x, 2)  # (N, 8, 4, 4)
            return x if self.fc is None else self.fc(torch.flatten(x, 1))  # (N, 10)

    return TinyNet().eval()


def _build_tflite(tmp_path_factory, name: str, head: bool) -> TinyTflite:
    torch = pytest.importorskip("torch")
    litert_torch = pytest.importorskip("litert_torch")
    from litert_torch.quantize.pt2e_quantizer import (
        PT2EQuantizer,
        get_symmetric_quantization_config,
    )
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    torch.manual_seed(SEED)
    model = _tiny_net(head)
    gen = torch.Generator().manual_seed(SEED + 1)
    calib = torch.randn(32, *INPUT_SHAPE[1:], generator=gen)
    args = (calib[:1],)
    quantizer = PT2EQuantizer().set_global(
        get_symmetric_quantization_config(is_per_channel=True)
    )
    prepared = prepare_pt2e(torch.export.export(model, args).module(), quantizer)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            for i in range(calib.shape[0]):
                prepared(calib[i : i + 1])
    finally:
        torch.set_num_threads(threads)
    converted = convert_pt2e(prepared, fold_quantize=False)
    path = tmp_path_factory.mktemp("tflite") / f"{name}.tflite"
    litert_torch.convert(
        converted, args, quant_config=QuantConfig(pt2e_quantizer=quantizer)
    ).export(str(path))
    inputs = np.random.default_rng(SEED + 2).normal(size=(100, *INPUT_SHAPE[1:]))
    return TinyTflite(path, model, converted, inputs.astype(np.float32))


@pytest.fixture(scope="session")
def tiny_tflite(tmp_path_factory) -> TinyTflite:
    """conv → conv → depthwise → max-pool → FULLY_CONNECTED, (N, 10) int8 outputs."""
    return _build_tflite(tmp_path_factory, "tiny_int8", head=True)


@pytest.fixture(scope="session")
def conv_tflite(tmp_path_factory) -> TinyTflite:
    """The same layers without the FULLY_CONNECTED head, (N, 8, 4, 4) int8 outputs."""
    return _build_tflite(tmp_path_factory, "conv_int8", head=False)


@dataclass(frozen=True)
class QdqOnnx:
    path: Path
    in_scale: float
    in_zero_point: int
    w_q: np.ndarray  # (4, 3) int8
    bias_q: np.ndarray  # (3,) int32, scale in_scale * w_scale
    w_scale: float
    out_scale: float
    out_zero_point: int

    def expected_raw(self, x: np.ndarray) -> np.ndarray:
        """The right int8 outputs for float inputs x (N, 4), in exact integer math."""
        xq = np.clip(np.round(x / self.in_scale) + self.in_zero_point, -128, 127)
        acc = (xq.astype(np.int64) - self.in_zero_point) @ self.w_q.astype(np.int64)
        acc = np.maximum(acc + self.bias_q, 0)  # ReLU
        ratio = self.in_scale * self.w_scale / self.out_scale  # a power of two
        q = np.round(acc * ratio) + self.out_zero_point  # ONNX: ties to even
        return np.clip(q, -128, 127).astype(np.int8)


def _save(graph, path: Path, opset: int = 21) -> Path:
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="session")
def qdq_onnx(tmp_path_factory) -> QdqOnnx:
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    gen = np.random.default_rng(SEED + 3)
    spec = QdqOnnx(
        path=tmp_path_factory.mktemp("onnx") / "qdq_int8.onnx",
        in_scale=2.0**-4,
        in_zero_point=3,
        w_q=gen.integers(-127, 128, size=(4, 3)).astype(np.int8),
        bias_q=gen.integers(-500, 500, size=(3,)).astype(np.int32),
        w_scale=2.0**-5,
        out_scale=2.0**-3,
        out_zero_point=-20,
    )
    inits = [
        numpy_helper.from_array(np.array(spec.in_scale, np.float32), "in_s"),
        numpy_helper.from_array(np.array(spec.in_zero_point, np.int8), "in_zp"),
        numpy_helper.from_array(spec.w_q, "w_q"),
        numpy_helper.from_array(np.array(spec.w_scale, np.float32), "w_s"),
        numpy_helper.from_array(spec.bias_q, "b_q"),
        numpy_helper.from_array(np.array(spec.in_scale * spec.w_scale, np.float32), "b_s"),
        numpy_helper.from_array(np.array(spec.out_scale, np.float32), "out_s"),
        numpy_helper.from_array(np.array(spec.out_zero_point, np.int8), "out_zp"),
    ]
    nodes = [
        helper.make_node("DequantizeLinear", ["x", "in_s", "in_zp"], ["x_f"]),
        helper.make_node("DequantizeLinear", ["w_q", "w_s"], ["w_f"]),
        helper.make_node("DequantizeLinear", ["b_q", "b_s"], ["b_f"]),
        helper.make_node("MatMul", ["x_f", "w_f"], ["mm"]),
        helper.make_node("Add", ["mm", "b_f"], ["pre"]),
        helper.make_node("Relu", ["pre"], ["act"]),
        helper.make_node("QuantizeLinear", ["act", "out_s", "out_zp"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "qdq_int8",
        [helper.make_tensor_value_info("x", TensorProto.INT8, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.INT8, [1, 3])],
        initializer=inits,
    )
    _save(graph, spec.path)
    return spec


@pytest.fixture(scope="session")
def float_onnx(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A float-I/O ONNX ``y = x @ w`` with a dynamic batch; returns (path, w (4, 3) float32)."""
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(SEED + 4).normal(size=(4, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "float_mm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])],
        initializer=[numpy_helper.from_array(w, "w")],
    )
    path = _save(graph, tmp_path_factory.mktemp("onnx_f") / "float_mm.onnx")
    return path, w
