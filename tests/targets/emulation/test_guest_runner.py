"""The device-side script on its own: its imports, its quantization rule, its CLI and files.

``guest_runner.py`` runs under the guest's Python in a device image, so it must stay a
standalone script that needs only the standard library, numpy and the runtime. Here it
runs on the host's Python (``subprocess``), with small hand-built ONNX models whose
right outputs are known in numpy. Seed: ``SEED``.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinyshare.targets.emulation.run import GUEST_RUNNER
from tinyshare.targets.runtimes.base import quantize_input

SEED = 20261133
RUNTIME_MODULES = {"numpy", "ai_edge_litert", "onnxruntime", "tflite_runtime"}


@pytest.fixture(scope="module")
def guest():
    """The script loaded as a module (not as tinyshare's: it is not meant to be imported)."""
    spec = importlib.util.spec_from_file_location("_guest_runner_under_test", GUEST_RUNNER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _top_level_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_script_imports_only_stdlib_numpy_and_runtimes():
    imported = _top_level_imports(GUEST_RUNNER)
    outside = imported - set(sys.stdlib_module_names) - RUNTIME_MODULES
    assert outside == set(), f"guest_runner.py imports {sorted(outside)}"
    assert "numpy" in imported  # the check sees the imports at all


def test_quantize_matches_the_host_rule_including_ties(guest):
    rng = np.random.default_rng(SEED)
    scale, zero_point = 0.05, -7
    ties = (np.arange(-20, 21) + 0.5).astype(np.float32) * np.float32(scale)
    x = np.concatenate([rng.normal(scale=3.0, size=2000).astype(np.float32), ties,
                        np.array([0.0, 100.0, -100.0], np.float32)])
    for dtype in (np.int8, np.uint8, np.int16):
        got = guest.quantize(x, scale, zero_point, dtype)
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(got, quantize_input(x, scale, zero_point, dtype))
    exact = np.array([0.5, 1.5, 2.5, -0.5, -2.5, 0.49999997], np.float32)
    assert guest.quantize(exact, 1.0, 0, np.int8).tolist() == [1, 2, 3, -1, -3, 0]


def test_fixed_batch_runs_pad_the_last_chunk_and_drop_the_padding(guest):
    samples = np.arange(10 * 3, dtype=np.float32).reshape(10, 3)
    seen = []

    def invoke(chunk):
        seen.append(chunk.shape[0])
        return chunk[:, None, :] * 2  # (b, 1, 3)

    out = guest._run_batches(samples, 4, 99, invoke)  # fixed batch 4; --batch ignored
    assert seen == [4, 4, 4]
    np.testing.assert_array_equal(out, samples * 2)
    seen.clear()
    out = guest._run_batches(samples, None, 3, invoke)  # dynamic batch: chunks of 3
    assert seen == [3, 3, 3, 1]
    np.testing.assert_array_equal(out, samples * 2)


# ---------------------------------------------------------------- the script as a process


def _save(graph, path: Path) -> Path:
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def float_mm(tmp_path_factory):
    """Float ``y = x @ w`` with a dynamic batch; returns (path, w (4, 3) float32)."""
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(SEED).normal(size=(4, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "float_mm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])],
        initializer=[numpy_helper.from_array(w, "w")],
    )
    return _save(graph, tmp_path_factory.mktemp("guest") / "float_mm.onnx"), w


@pytest.fixture(scope="module")
def int8_identity(tmp_path_factory):
    """int8 (1, 5) input -> DequantizeLinear(0.1, 3) -> QuantizeLinear(0.1, 3) -> int8 output."""
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.array(0.1, np.float32), "s"),
             numpy_helper.from_array(np.array(3, np.int8), "zp")]
    graph = helper.make_graph(
        [helper.make_node("DequantizeLinear", ["x", "s", "zp"], ["xf"]),
         helper.make_node("QuantizeLinear", ["xf", "s", "zp"], ["y"])], "int8_identity",
        [helper.make_tensor_value_info("x", TensorProto.INT8, [1, 5])],
        [helper.make_tensor_value_info("y", TensorProto.INT8, [1, 5])],
        initializer=inits,
    )
    return _save(graph, tmp_path_factory.mktemp("guest") / "int8_identity.onnx")


def _run_guest(tmp_path: Path, model: Path, x: np.ndarray, *extra: str,
               runtime: str = "onnxruntime") -> subprocess.CompletedProcess:
    np.savez(tmp_path / "in.npz", x=x)
    argv = [sys.executable, str(GUEST_RUNNER), "--runtime", runtime, "--model", str(model),
            "--inputs", str(tmp_path / "in.npz"), "--out", str(tmp_path / "out.npz"),
            "--stats", str(tmp_path / "stats.json"), *extra]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env={})


def _outputs(tmp_path: Path) -> tuple[np.ndarray, dict]:
    with np.load(tmp_path / "out.npz") as data:
        y = data["y"]
    return y, json.loads((tmp_path / "stats.json").read_text())


@pytest.mark.parametrize("batch", ["1", "4", "64"])
def test_dynamic_batch_model_runs_in_chunks(float_mm, tmp_path, batch):
    path, w = float_mm
    x = np.random.default_rng(SEED + 1).normal(size=(10, 4)).astype(np.float32)
    proc = _run_guest(tmp_path, path, x, "--batch", batch, "--ort-level", "disable")
    assert proc.returncode == 0, proc.stderr
    y, stats = _outputs(tmp_path)
    assert y.shape == (10, 3) and y.dtype == np.float32
    np.testing.assert_allclose(y, x @ w, rtol=1e-5, atol=1e-5)
    assert stats["runtime"] == "onnxruntime[ORT_DISABLE_ALL]"
    assert stats["n_samples"] == 10 and stats["batch"] == int(batch)
    assert stats["input_scale"] is None and stats["output_scale"] is None


def test_int8_onnx_uses_the_scales_passed_by_the_host(int8_identity, tmp_path):
    x = np.array([[-0.25, -0.05, 0.0, 0.05, 0.15], [12.0, -13.0, 0.31, -0.31, 1.0]], np.float32)
    proc = _run_guest(tmp_path, int8_identity, x, "--input-scale", "0.1",
                      "--input-zero-point", "3", "--output-scale", "0.1",
                      "--output-zero-point", "3")
    assert proc.returncode == 0, proc.stderr
    y, stats = _outputs(tmp_path)
    # the identity graph returns the guest's quantized input: ties away from zero, clipped
    np.testing.assert_array_equal(y, quantize_input(x, 0.1, 3, np.int8))
    assert y.dtype == np.int8 and y[1].tolist() == [123, -127, 6, 0, 13]
    assert (stats["output_scale"], stats["output_zero_point"]) == (0.1, 3)
    assert stats["input_dtype"] == "int8" and stats["output_dtype"] == "int8"


def _error_line(proc: subprocess.CompletedProcess) -> str:
    """The one error line, which must be the last line of stderr."""
    lines = proc.stderr.strip().splitlines()
    errors = [ln for ln in lines if ln.startswith("guest_runner: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], proc.stderr
    return errors[0]


def test_int8_onnx_without_scales_is_an_input_error(int8_identity, tmp_path):
    proc = _run_guest(tmp_path, int8_identity, np.zeros((2, 5), np.float32))
    assert proc.returncode == 4
    assert "--input-scale" in _error_line(proc)
    assert not (tmp_path / "out.npz").exists()


def test_wrong_input_shape_is_an_input_error(float_mm, tmp_path):
    proc = _run_guest(tmp_path, float_mm[0], np.zeros((2, 5), np.float32))
    assert proc.returncode == 4
    assert "do not fit the model input" in _error_line(proc)


def test_missing_and_unloadable_models_are_model_errors(tmp_path):
    x = np.zeros((2, 4), np.float32)
    proc = _run_guest(tmp_path, tmp_path / "absent.onnx", x)
    assert proc.returncode == 3 and "not found" in _error_line(proc)
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"TFL3" * 8)
    proc = _run_guest(tmp_path, junk, x, runtime="litert-ref")
    assert proc.returncode == 3 and "cannot load" in _error_line(proc)
    # the progress line before it says what the guest was doing
    assert f"guest_runner: loading {junk} with litert-ref" in proc.stderr


def test_unknown_runtime_is_rejected_by_argparse(float_mm, tmp_path):
    proc = _run_guest(tmp_path, float_mm[0], np.zeros((1, 4), np.float32), runtime="tflm")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr
