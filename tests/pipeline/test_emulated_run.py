"""Emulated on-device checks through the pipeline: a 64-bit and a 32-bit board, each
runtime run from the board's own device image under qemu-user (marked ``emulated``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
BOARDS = ["rpi4b", "rpi3b-armhf"]

pytestmark = [
    pytest.mark.emulated,
    pytest.mark.skipif(shutil.which("qemu-aarch64-static") is None,
                       reason="qemu-user-static not installed (make test installs it)"),
]


@pytest.fixture(scope="module")
def emulated_run(tmp_path_factory):
    """One tiny run with emulation, building its device images in a fresh cache (the user's
    ~/.cache is never touched, and the build itself is under test)."""
    import os

    from tinyshare.config import load_config
    from tinyshare.pipeline.stages import run

    out = tmp_path_factory.mktemp("runs-emulated")
    cfg = load_config(ROOT / "configs" / "digits_tiny.toml", [
        f'output_dir="{out}"', "validation.emulate=true",
        "boards=[" + ", ".join(f'"{b}"' for b in BOARDS) + "]"])
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    try:
        yield run(cfg, command="pytest emulated_run")
    finally:
        if old is None:
            os.environ.pop("XDG_CACHE_HOME", None)
        else:
            os.environ["XDG_CACHE_HOME"] = old


@pytest.mark.parametrize("board", BOARDS)
def test_every_runtime_of_the_board_ran_emulated_and_agrees(emulated_run, board):
    from tinyshare.targets.board_registry import load_board

    emu = emulated_run.validation.emulation[board]
    assert emu.error is None
    expected = {"rpi4b": {"litert-xnnpack (emulated)", "onnxruntime[ORT_ENABLE_ALL] (emulated)",
                          "onnxruntime[ORT_DISABLE_ALL] (emulated)",
                          "tflite-runtime (emulated)"},
                "rpi3b-armhf": {"tflite-runtime (emulated)"}}[board]
    assert {c.runtime for c in emu.checks} == expected
    core = load_board(board).cpu.lower()
    for c in emu.checks:
        assert c.ok, c.error
        assert c.agreement.max_abs_diff_lsb <= 1
        assert c.agreement.top1_agreement >= 0.99
        assert "-cpu max" not in c.command
        assert c.runtime_version
    manifest = json.loads(Path(emu.image_manifest).read_text())
    assert manifest["spec"]["cpuinfo_core"] == core


@pytest.mark.parametrize("board", BOARDS)
def test_report_shows_emulated_section_and_checks(emulated_run, board):
    d = emulated_run.run_dir / "boards" / board
    r = json.loads((d / "report.json").read_text())
    assert r["emulated"]["runtimes"]
    assert "not a device latency" in r["emulated"]["note"]
    ram = r["footprint"]["ram"]  # Linux RAM: the guests' peak RSS, measured
    rss = [v["peak_rss_kb"] * 1024 for v in r["emulated"]["runtimes"].values() if v["ok"]]
    assert ram["peak_rss_bytes"] == ram["needed_bytes"] == max(rss)
    assert ram["method"].startswith("measured")
    names = [c["name"] for c in r["checks"] if "(emulated)" in c["name"]]
    assert len(names) == len(r["emulated"]["runtimes"])
    md = (d / "report.md").read_text()
    assert "## On-device checks (emulated)" in md and "$IMAGE/sysroot" in md


def test_guest_crash_on_a_broken_model_is_reported_and_other_runs_go_on(
        emulated_run, tmp_path):
    """A truncated model file crashes tflite-runtime in the guest: one line, stderr tail."""
    from tinyshare.pipeline.emulate import emulate_board
    from tinyshare.targets.board_registry import load_board

    export = emulated_run.run_dir / "export"
    broken = tmp_path / "model_int8.tflite"
    broken.write_bytes((export / "model_int8.tflite").read_bytes()[:200])
    x = np.load(emulated_run.run_dir / "data" / "test.npz")["x"][:4]
    y = np.load(emulated_run.run_dir / "data" / "test.npz")["y"][:4]
    # The reference is never reached: the only run fails before any comparison.
    result = emulate_board(load_board("rpi3b-armhf"), {"tflite": broken}, x, y, None,
                           tolerance_lsb=1, timeout_s=120)
    (check,) = result.checks
    assert not check.ok
    assert "\n" not in check.error
    assert "model_int8.tflite" in check.error and "guest stderr" in check.error


def test_the_emulated_results_load_back_for_a_resumed_run(emulated_run, tmp_path):
    """A later run reuses this VALIDATE stage: every emulated check comes back typed,
    with the guest's own timing of its loop over the samples."""
    from tinyshare.pipeline.reload import load_validation
    from tinyshare.targets.agreement import Agreement

    name = emulated_run.run_dir.name
    v = load_validation(emulated_run.run_dir / "validate",
                        tmp_path / f".{name}.partial-1" / "validate", name)
    assert sorted(v.emulation) == sorted(BOARDS)
    for board, emu in v.emulation.items():
        original = emulated_run.validation.emulation[board]
        assert [c.runtime for c in emu.checks] == [c.runtime for c in original.checks]
        for c, o in zip(emu.checks, original.checks, strict=True):
            assert isinstance(c.agreement, Agreement) and c.agreement == o.agreement
            assert c.run_ms == o.run_ms and 0 < c.run_ms < 1000 * c.emulated_wall_s
