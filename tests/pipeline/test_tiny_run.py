"""End to end on the tiny digits config: files, sharing in both formats, same int8 model
in ONNX and TFLite, runtime agreement, reports and the manifest."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tinyshare.artifacts import sha256_file
from tinyshare.export.inspect import inspect_model
from tinyshare.pipeline.report.schema import validate_report

import sharing_checks  # noqa: E402  (registered by conftest.py)

BOARDS = ["rpi4b", "stm32f746g-disco", "nano33-ble-sense", "corstone-300-mps3"]
MODEL_FILES = ["model_int8.tflite", "model_int8.onnx", "model_float.tflite", "model_float.onnx"]


@pytest.fixture(scope="module")
def files(tiny_run):
    e = tiny_run.run_dir / "export"
    return {
        "tflite_int8": e / "model_int8.tflite", "onnx_int8": e / "model_int8.onnx",
        "twin_tflite_int8": e / "twin" / "model_int8.tflite",
        "twin_onnx_int8": e / "twin" / "model_int8.onnx",
    }


def test_run_folder_holds_models_reports_and_manifest(tiny_run):
    d = tiny_run.run_dir
    for name in MODEL_FILES:
        assert (d / "export" / name).stat().st_size > 0
    for b in BOARDS:
        report = json.loads((d / "boards" / b / "report.json").read_text())
        validate_report(report)  # the JSON Schema in the repo, version 2
        assert report["board"]["name"] == b
        assert (d / "boards" / b / "report.md").read_text().startswith("# ")
    assert (d / "report.md").is_file()
    html = (d / "report.html").read_text()
    assert html.count("<svg") >= 3 and "<script" not in html
    assert not list(d.parent.glob(".*partial*")), "staging folder left behind"


def test_manifest_hashes_every_file(tiny_run):
    d = tiny_run.run_dir
    manifest = json.loads((d / "manifest.json").read_text())
    from importlib.metadata import version

    assert manifest["seed"] == 0 and manifest["versions"]["torch"] == version("torch")
    listed = manifest["files_sha256"]
    on_disk = {str(p.relative_to(d)) for p in d.rglob("*")
               if p.is_file() and p != d / "manifest.json"}
    assert set(listed) == on_disk
    for rel, digest in listed.items():
        assert sha256_file(d / rel) == digest, rel
    for stage in ("data", "train", "quantize", "export", "validate"):
        assert json.loads((d / stage / "manifest.json").read_text())["stage"] == stage


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_stored_weight_bytes_are_exactly_what_sharing_predicts(tiny_run, fmt):
    sharing_checks.check_stored_bytes(tiny_run, fmt)


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_each_shared_weight_is_stored_once_and_read_at_every_call_site(tiny_run, fmt):
    sharing_checks.check_stored_once(tiny_run, fmt)


def test_onnx_and_tflite_store_the_same_int8_tensors_and_scales(tiny_run):
    sharing_checks.check_same_int8_tensors(tiny_run)


def test_int8_runtimes_agree_with_the_reference(tiny_run):
    v = tiny_run.validation
    checks = v.checks
    assert checks["litert-ref"].agreement.max_abs_diff_lsb == 0
    # REFERENCE.md found TFLM bit-exact with LiteRT's builtin kernels; on this model a 1x1
    # CONV_2D and FULLY_CONNECTED differ by 1 LSB on a few values, so the stated
    # tolerance is what holds.
    assert checks["tflm"].agreement.max_abs_diff_lsb <= v.tolerance_lsb
    assert checks["tflm"].agreement.top1_agreement >= 0.99
    assert checks["litert-xnnpack"].agreement.max_abs_diff_lsb <= v.tolerance_lsb
    assert checks["onnxruntime[ORT_DISABLE_ALL]"].agreement.max_abs_diff_lsb <= v.tolerance_lsb


def test_onnx_level_difference_is_reported_never_averaged(tiny_run):
    v = tiny_run.validation
    raw = np.load(tiny_run.run_dir / "validate" / "outputs_int8.npz")
    same = np.array_equal(raw["onnxruntime[ORT_ENABLE_ALL]"], raw["onnxruntime[ORT_DISABLE_ALL]"])
    assert (v.onnx_level_finding is None) == same
    report = json.loads((tiny_run.run_dir / "boards" / "rpi4b" / "report.json").read_text())
    names = {c["name"]: c["status"] for c in report["checks"]}
    assert names.get("onnxruntime optimization levels (host build)") == (
        None if same else "FINDING")


def test_verdict_follows_the_checks(tiny_run):
    for b in BOARDS:
        r = json.loads((tiny_run.run_dir / "boards" / b / "report.json").read_text())
        failed = [c for c in r["checks"] if c["status"] == "FAIL"]
        assert r["verdict"] == ("FAIL" if failed else "PASS")
        assert r["reasons"] == failed
        assert [v["check"] for v in r["violations"]] == [c["name"] for c in failed]
        fp = r["footprint"]
        flash, ram = fp["flash"], fp["ram"]
        assert flash["needed_bytes"] == flash["model_file_bytes"] + (flash["runtime_code_bytes"] or 0)
        assert flash["budget_bytes"] == flash["total_bytes"] - flash["reserved_bytes"]
        assert ram["budget_bytes"] == ram["total_bytes"] - ram["reserved_bytes"]
        assert flash["graph_overhead_bytes"] == flash["model_file_bytes"] - flash["weights_bytes"]
        assert fp["flash_headroom_bytes"] == fp["flash_budget_bytes"] - fp["flash_needed_bytes"]
        assert fp["arena"]["arena_bytes"] % 16 == 0 and fp["arena"]["arena_bytes"] > 0
        if r["board"]["os"] == "baremetal" and r["vela"] is None:
            assert fp["ram_needed_bytes"] == fp["arena"]["arena_bytes"]
            assert abs(ram["arena"]["difference_percent"]) <= 10.0
            twin = (ram["arena"]["twin_measured_bytes"], ram["arena"]["twin_estimate_bytes"])
            assert abs(twin[1] - twin[0]) <= 0.10 * twin[0]
            assert flash["names_stripped"] and flash["model_file"] == "model_int8_nonames.tflite"
        if r["vela"] is not None:  # Ethos-U: Vela's SRAM + TFLM's persistent estimate
            assert fp["ram_needed_bytes"] > r["vela"]["sram_bytes"] > 0
            assert flash["model_file_bytes"] == r["vela"]["optimized_model_bytes"]
            # the command reruns from the run folder: its model path is relative and exists
            cmd = r["vela"]["command"].split()
            model = next(c for c in cmd if c.endswith(".tflite"))
            assert not model.startswith("/") and (tiny_run.run_dir / model).is_file()
            rows = r["per_layer"]["tflite_int8"]["rows"]
            # every op of the int8 digits model is NPU-supported; Vela folds RESHAPEs away
            assert [row["vela"]["placement"] for row in rows] == ["NPU"] * len(rows)
            assert r["vela"]["cpu_ops"] == [] and r["vela"]["npu_ops"] == len(rows)
            assert {row["op"] for row in rows if row["vela"]["elided"]} <= {"RESHAPE"}


def test_tflite_int8_graph_has_no_transpose(files):
    ops = {o.op_code for o in inspect_model(files["tflite_int8"]).ops}
    assert "TRANSPOSE" not in ops
    assert {"DEPTHWISE_CONV_2D", "CONV_2D", "FULLY_CONNECTED"} <= ops


@pytest.mark.parametrize("board", BOARDS)
def test_deploy_folder_runs_on_its_runtime(tiny_run, board, tmp_path):
    """runs/<run>/<board>/ holds the files the board loads and example scripts that work."""
    import subprocess
    import sys

    from tinyshare.targets.board_registry import load_board
    from tinyshare.targets.runtimes.registry import RUNTIMES

    d = tiny_run.run_dir / board
    b = load_board(board)
    assert (d / "README.md").is_file() and (d / "report.json").is_file()
    if b.npu is not None:
        assert (d / "model_int8_nonames_vela.tflite").is_file()
    x = np.load(tiny_run.run_dir / "data" / "test.npz")["x"][:8]
    for rt in b.runtimes:
        fmt = RUNTIMES.get(rt).model_format
        stem = "model_int8_nonames" if b.strip_tensor_names and fmt == "tflite" else "model_int8"
        assert (d / f"{stem}.{fmt}").is_file()
        script = d / f"run_{rt.replace('-', '_')}.py"
        if rt == "tflm" or rt == "tflite-runtime":
            continue  # firmware library / not installed on the host
        inp = tmp_path / "in.npy"
        np.save(inp, x.transpose(0, 2, 3, 1) if fmt == "tflite" else x)
        proc = subprocess.run([sys.executable, str(script), str(inp)], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        got = [int(v) for v in proc.stdout.split()]
        ref = np.load(tiny_run.run_dir / "validate" / "outputs_int8.npz")["litert-ref"][:8]
        # Class picks match the host reference (ties in int8 can flip argmax only when the
        # top two outputs are within 1 LSB).
        assert sum(g == r for g, r in zip(got, ref.argmax(1))) >= 7


def test_per_layer_tables_cover_every_file_and_agree_on_macs(tiny_run):
    """The same model in six files: MACs agree, and each table's weight bytes are what the
    file stores (shared tensors once)."""
    r = json.loads((tiny_run.run_dir / "boards" / "stm32f746g-disco" / "report.json").read_text())
    tables = r["per_layer"]
    assert set(tables) == {"tflite_int8", "onnx_int8", "tflite_float", "onnx_float",
                           "twin_tflite_int8", "twin_onnx_int8"}
    assert len({t["totals"]["macs"] for t in tables.values()}) == 1
    assert tables["tflite_int8"]["totals"]["macs"] > 0
    for key, t in tables.items():
        assert t["totals"]["weight_bytes"] == r["storage"][key]["stored_weight_bytes"], key
