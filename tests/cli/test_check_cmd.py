"""``tinyshare check MODEL --board NAME [--data NPZ] [--out DIR]`` on small real models.

The models are built here, seeded: one-op int8 ``.tflite`` files with the flatbuffer schema
(``tests/codegen/single_op.py``) and an int8 QDQ ``.onnx`` graph with ``onnx.helper``. The
figures in ``check.json`` are compared with the library functions run directly.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from tinyshare.cli import main

CHECK_SEED = 2024
N_IN, N_OUT, N_SAMPLES = 16, 4, 24
TFLM_BOARD, LINUX_BOARD = "nano33-ble-sense", "rpi4b"


def _single_op():
    """``tests/codegen/single_op.py``, registered under the name the codegen tests use."""
    name = "codegen_single_op"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, Path(__file__).resolve().parents[1] / "codegen" / "single_op.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # before exec: its dataclasses look it up
        spec.loader.exec_module(module)
    return sys.modules[name]


def fc_tflite(path: Path, n_in: int = N_IN, n_out: int = N_OUT, seed: int = CHECK_SEED) -> Path:
    """x (1, n_in) int8 -> FULLY_CONNECTED (int8 weights, int32 bias) -> (1, n_out) int8."""
    so = _single_op()
    rng = np.random.default_rng(seed)
    w = rng.integers(-127, 128, (n_out, n_in)).astype(np.int8)
    b = rng.integers(-300, 300, n_out).astype(np.int32)
    return so.write_model(path, "FULLY_CONNECTED", [
        so.T((1, n_in), scale=0.05, zero_point=0),
        so.T((n_out, n_in), scale=0.01, data=w),
        so.T((n_out,), "int32", scale=0.0005, data=b),
    ], so.T((1, n_out), scale=0.1, zero_point=3), "FullyConnectedOptions", {})


def gelu_tflite(path: Path) -> Path:
    """One int8 GELU: LiteRT has it, this TFLM build's op resolver does not."""
    so = _single_op()
    return so.write_model(path, "GELU", [so.T((1, N_IN), scale=0.05)], so.T((1, N_IN), scale=0.05),
                          "GeluOptions", {})


def custom_op_tflite(path: Path) -> Path:
    """One custom op ``tinyshare_nope`` that no runtime registers."""
    from ai_edge_litert import schema_py_generated as s

    import flatbuffers

    so = _single_op()
    so.write_model(path, "CUSTOM", [so.T((1, N_IN), scale=0.05)], so.T((1, N_IN), scale=0.05))
    model = s.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    model.operatorCodes[0].customCode = b"tinyshare_nope"
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    path.write_bytes(bytes(b.Output()))
    return path


def fc_onnx(path: Path, seed: int = CHECK_SEED) -> Path:
    """x (1, 16) int8 -DQ-> Gemm(DQ(W int8), B float) -Q-> y (1, 4) int8, opset 21."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    arrays = {"W": rng.integers(-127, 128, (N_IN, N_OUT)).astype(np.int8),
              "B": rng.normal(size=N_OUT).astype(np.float32),
              "x_scale": np.float32(0.05), "x_zp": np.int8(0), "w_scale": np.float32(0.01),
              "w_zp": np.int8(0), "y_scale": np.float32(0.1), "y_zp": np.int8(3)}
    nodes = [helper.make_node("DequantizeLinear", ["x", "x_scale", "x_zp"], ["xf"]),
             helper.make_node("DequantizeLinear", ["W", "w_scale", "w_zp"], ["wf"]),
             helper.make_node("Gemm", ["xf", "wf", "B"], ["yf"]),
             helper.make_node("QuantizeLinear", ["yf", "y_scale", "y_zp"], ["y"])]
    graph = helper.make_graph(
        nodes, "fc", [helper.make_tensor_value_info("x", TensorProto.INT8, [1, N_IN])],
        [helper.make_tensor_value_info("y", TensorProto.INT8, [1, N_OUT])],
        initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in arrays.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def samples_npz(path: Path, n: int = N_SAMPLES, labels: bool = True, seed: int = CHECK_SEED) -> Path:
    rng = np.random.default_rng(seed + 1)
    arrays = {"x": rng.normal(size=(n, N_IN)).astype(np.float32)}
    if labels:
        arrays["y"] = rng.integers(0, N_OUT, n).astype(np.int64)
    np.savez(path, **arrays)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("check_models")
    return {"tflite": fc_tflite(d / "fc.tflite"), "onnx": fc_onnx(d / "fc.onnx"),
            "gelu": gelu_tflite(d / "gelu.tflite"), "custom": custom_op_tflite(d / "custom.tflite"),
            "big": fc_tflite(d / "big.tflite", n_in=1024, n_out=1024),
            "data": samples_npz(d / "data.npz"), "unlabelled": samples_npz(d / "x_only.npz", labels=False)}


def _check(capsys, *argv: str) -> tuple[int, str, list[str]]:
    code = main(["check", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err.strip().splitlines()


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def _top1(outputs, y) -> float:
    return float(np.mean(outputs.dequantized.argmax(axis=1) == y))


def test_tflite_on_a_tflm_board(models, tmp_path, capsys, monkeypatch):
    """Default output folder, measured arena, code estimate, every op listed, nothing else."""
    from tinyshare.export.inspect import inspect_model
    from tinyshare.targets.runtime_code import tflm_code_estimate
    from tinyshare.targets.runtimes.tflm import find_arena_bytes

    monkeypatch.chdir(tmp_path)
    code, out, err = _check(capsys, models["tflite"], "--board", TFLM_BOARD)
    assert (code, err) == (0, [])
    assert "PASS" in out
    assert _files(tmp_path) == {"runs/check-fc/check.json", "runs/check-fc/check.md"}
    j = json.loads((tmp_path / "runs/check-fc/check.json").read_text())
    info = inspect_model(models["tflite"])
    assert j["verdict"] == "PASS" and j["reasons"] == [] and j["validation"] is None
    assert j["model"]["file_bytes"] == os.stat(models["tflite"]).st_size
    assert [(o["index"], o["op"], o["version"]) for o in j["ops"]] == \
        [(op.index, op.op_code, op.version) for op in info.ops]
    (tflm,) = j["op_support"]
    assert (tflm["runtime"], tflm["ok"], tflm["method"]) == ("tflm", True, "static")
    assert "FULLY_CONNECTED" in tflm["detail"]
    fp = j["footprint"]
    arena = find_arena_bytes(models["tflite"], np.zeros((1, N_IN), np.float32))
    assert fp["arena"]["measured_bytes"] == arena.arena_bytes > 0
    assert fp["arena"]["estimate_bytes"] > 0 and fp["ram_needed_bytes"] == arena.arena_bytes
    assert fp["runtime_code_bytes"] == tflm_code_estimate(["FULLY_CONNECTED"]).total_bytes > 0
    assert fp["flash_needed_bytes"] == fp["model_file_bytes"] + fp["runtime_code_bytes"]
    assert fp["verdict"] == "PASS" and fp["flash_headroom_bytes"] > 0


def test_tflite_on_a_tflm_board_with_data(models, tmp_path, capsys):
    from tinyshare.targets.agreement import compare
    from tinyshare.targets.runtimes.litert import run_litert
    from tinyshare.targets.runtimes.tflm import run_tflm

    out_dir = tmp_path / "check"
    code, _, err = _check(capsys, models["tflite"], "--board", TFLM_BOARD, "--data",
                          models["data"], "--out", out_dir)
    assert (code, err) == (0, [])
    j = json.loads((out_dir / "check.json").read_text())
    with np.load(models["data"]) as f:
        x, y = f["x"], f["y"]
    v = j["validation"]
    assert (v["n_samples"], v["labelled"]) == (N_SAMPLES, True)
    runs = {r["runtime"]: r for r in v["runs"]}
    assert list(runs) == ["litert-ref", "tflm"] and runs["litert-ref"]["reference"]
    ref = run_litert(models["tflite"], x, reference_kernels=True)
    tflm = run_tflm(models["tflite"], x, arena_bytes=j["footprint"]["arena"]["measured_bytes"])
    assert runs["litert-ref"]["top1"] == _top1(ref, y)
    assert runs["tflm"]["top1"] == _top1(tflm, y)
    agreement = compare(ref, tflm, tolerance_lsb=1)
    assert runs["tflm"]["max_abs_diff_lsb"] == agreement.max_abs_diff_lsb
    assert runs["tflm"]["n_values_differing"] == agreement.n_values_differing
    assert runs["tflm"]["n_outputs"] == N_OUT
    assert "## Runs on data.npz" in (out_dir / "check.md").read_text()


def test_tflite_on_a_linux_board_with_data(models, tmp_path, capsys):
    from tinyshare.targets.runtime_code import linux_runtime_code
    from tinyshare.targets.runtimes.litert import run_litert

    out_dir = tmp_path / "check"
    code, _, err = _check(capsys, models["tflite"], "--board", LINUX_BOARD, "--data",
                          models["data"], "--out", out_dir)
    assert (code, err) == (0, [])
    j = json.loads((out_dir / "check.json").read_text())
    ops = {o["runtime"]: o for o in j["op_support"]}
    assert (ops["litert"]["ok"], ops["litert"]["method"]) == (True, "host run")
    assert (ops["tflite-runtime"]["ok"], ops["tflite-runtime"]["method"]) == (True, "host run")
    assert not ops["onnxruntime"]["applies"]
    with np.load(models["data"]) as f:
        x, y = f["x"], f["y"]
    runs = {r["runtime"]: r for r in j["validation"]["runs"]}
    assert list(runs) == ["litert-ref", "litert-xnnpack"]
    assert runs["litert-ref"]["top1"] == _top1(run_litert(models["tflite"], x), y)
    xnn = run_litert(models["tflite"], x, reference_kernels=False)
    assert runs["litert-xnnpack"]["top1"] == _top1(xnn, y)
    assert runs["litert-xnnpack"]["max_abs_diff_lsb"] <= 1
    fp = j["footprint"]
    assert fp["arena"]["measured_bytes"] is None  # no TFLM on this board
    assert fp["ram_needed_bytes"] == fp["model_file_bytes"] + fp["arena"]["planned_bytes"]
    sizes = [c.code_bytes for rt in ("litert", "tflite-runtime")
             if (c := linux_runtime_code(rt)) is not None]
    assert fp["runtime_code_bytes"] == max(sizes)


def test_onnx_on_a_linux_board(models, tmp_path, capsys):
    from tinyshare.targets.runtimes.onnxruntime import run_onnxruntime

    code, _, err = _check(capsys, models["onnx"], "--board", LINUX_BOARD, "--out", tmp_path / "a")
    assert (code, err) == (0, [])
    j = json.loads((tmp_path / "a" / "check.json").read_text())
    ort = next(o for o in j["op_support"] if o["runtime"] == "onnxruntime")
    assert (ort["ok"], ort["method"]) == (True, "host run") and j["validation"] is None
    assert [o["op"] for o in j["ops"]] == ["DequantizeLinear", "DequantizeLinear", "Gemm",
                                           "QuantizeLinear"]

    code, _, err = _check(capsys, models["onnx"], "--board", LINUX_BOARD, "--data",
                          models["data"], "--out", tmp_path / "b")
    assert (code, err) == (0, [])
    j = json.loads((tmp_path / "b" / "check.json").read_text())
    with np.load(models["data"]) as f:
        x, y = f["x"], f["y"]
    runs = {r["runtime"]: r for r in j["validation"]["runs"]}
    assert list(runs) == ["onnxruntime[ORT_DISABLE_ALL]", "onnxruntime[ORT_ENABLE_ALL]"]
    direct = run_onnxruntime(models["onnx"], x, optimization="disable")
    assert runs["onnxruntime[ORT_DISABLE_ALL]"]["top1"] == _top1(direct, y)
    assert runs["onnxruntime[ORT_ENABLE_ALL]"]["max_abs_diff_lsb"] <= 1
    assert j["model"]["file_bytes"] == os.stat(models["onnx"]).st_size


def test_data_without_labels_reports_agreement_only(models, tmp_path, capsys):
    code, _, _ = _check(capsys, models["tflite"], "--board", LINUX_BOARD, "--data",
                        models["unlabelled"], "--out", tmp_path / "c")
    assert code == 0
    runs = json.loads((tmp_path / "c" / "check.json").read_text())["validation"]["runs"]
    assert all(r["top1"] is None for r in runs) and runs[1]["top1_agreement"] >= 0.9


def _assert_fail(code: int, err: list[str], out_dir: Path, *needles: str) -> dict:
    assert code == 1
    assert len(err) == 1 and err[0].startswith("tinyshare: check: FAIL on "), err
    for n in needles:
        assert n in err[0], (n, err)
    j = json.loads((out_dir / "check.json").read_text())
    assert j["verdict"] == "FAIL" and j["reasons"]
    return j


def test_unsupported_op_on_a_tflm_board_exits_1(models, tmp_path, capsys):
    code, _, err = _check(capsys, models["gelu"], "--board", TFLM_BOARD, "--out", tmp_path)
    j = _assert_fail(code, err, tmp_path, "GELU")
    (tflm,) = j["op_support"]
    assert (tflm["ok"], tflm["missing_ops"]) == (False, ["GELU"])
    assert j["footprint"]["arena"]["measured_bytes"] is None
    assert "lacks an op" in j["footprint"]["arena"]["measure_note"]


def test_unresolved_custom_op_on_a_linux_board_exits_1(models, tmp_path, capsys):
    code, _, err = _check(capsys, models["custom"], "--board", LINUX_BOARD, "--out", tmp_path)
    j = _assert_fail(code, err, tmp_path, "tinyshare_nope")
    ops = {o["runtime"]: o for o in j["op_support"]}
    assert (ops["litert"]["ok"], ops["litert"]["method"]) == (False, "host run")


def test_onnx_on_a_tflm_board_exits_1(models, tmp_path, capsys):
    code, _, err = _check(capsys, models["onnx"], "--board", TFLM_BOARD, "--out", tmp_path)
    _assert_fail(code, err, tmp_path, "runs no onnx models")


def test_model_too_large_for_flash_exits_1(models, tmp_path, capsys):
    code, _, err = _check(capsys, models["big"], "--board", TFLM_BOARD, "--out", tmp_path)
    j = _assert_fail(code, err, tmp_path, "flash: needs")
    fp = j["footprint"]
    (violation,) = fp["violations"]
    assert violation["budget"] == "flash"
    assert violation["need_bytes"] == fp["flash_needed_bytes"] > fp["flash_budget_bytes"]
    assert fp["model_file_bytes"] == os.stat(models["big"]).st_size > 1024 * 1024


def test_a_rerun_replaces_the_folder_and_a_foreign_folder_is_refused(models, tmp_path, capsys):
    out_dir = tmp_path / "out"
    for _ in range(2):
        code, _, _ = _check(capsys, models["tflite"], "--board", LINUX_BOARD, "--out", out_dir)
        assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary folder left
    assert _files(out_dir) == {"check.json", "check.md"}
    (out_dir / "notes.txt").write_text("mine")
    code, _, err = _check(capsys, models["tflite"], "--board", LINUX_BOARD, "--out", out_dir)
    assert code == 2 and len(err) == 1 and "holds other files (notes.txt)" in err[0]
    assert _files(out_dir) == {"check.json", "check.md", "notes.txt"}


@pytest.mark.parametrize("argv,needle", [
    (["check", "m.tflite"], "the following arguments are required: --board"),
    (["check", "m.tflite", "--board"], "argument --board: expected one argument"),
])
def test_usage_errors_are_one_line(capsys, argv, needle):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2
    assert len(err) == 1 and err[0].startswith("tinyshare check: error: ") and needle in err[0]
