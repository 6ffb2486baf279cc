"""Interruption and resume (``tinyshare run``, ``tinyshare.pipeline.resume``).

A real ``python -m tinyshare run`` gets SIGTERM while VALIDATE works: ``runs/<name>/`` is not
created, the completed stages (data, train, quantize, export) are kept with their manifests
in ``runs/.<name>.incomplete/``, and nothing else is left. The next run of the same config
reuses TRAIN, QUANTIZE and EXPORT (same bytes) and runs VALIDATE and REPORT; the one after
that is a no-op. A changed validation setting re-runs VALIDATE and REPORT, a report-only
limit re-runs REPORT alone (reports otherwise identical), and a changed quantize setting
re-runs QUANTIZE onward. Keys, plan and loaders: ``test_stage_reuse.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NAME = "digits-tiny"


def _cmd(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "tinyshare", "run", str(ROOT / "configs" / "digits_tiny.toml"),
            "--board", "stm32f746g-disco", "--set", f'output_dir="{out}"',
            "--set", 'validation.codegen="off"', *extra]


def _run(out: Path, *extra: str) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.perf_counter()
    proc = subprocess.run(_cmd(out, *extra), capture_output=True, text=True, timeout=600,
                          cwd=ROOT)
    return proc, time.perf_counter() - t0


@pytest.mark.slow
@pytest.mark.long
def test_sigterm_mid_stage_keeps_completed_stages_and_the_rerun_resumes(tmp_path):
    out = tmp_path / "runs"
    t0 = time.perf_counter()
    proc = subprocess.Popen(_cmd(out), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT)
    staging = out / f".{NAME}.partial-{proc.pid}"
    deadline = time.monotonic() + 300
    while not (staging / "export" / "manifest.json").exists():  # EXPORT done: VALIDATE runs
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "EXPORT did not finish in 300 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    t_interrupted = time.perf_counter() - t0
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert not (out / NAME).exists()  # no run folder that looks complete
    kept = out / f".{NAME}.incomplete"
    assert sorted(os.listdir(out)) == [kept.name]  # no staging folder left behind
    assert sorted(p.name for p in kept.iterdir()) == ["data", "export", "quantize", "train"]
    for stage in kept.iterdir():
        assert json.loads((stage / "manifest.json").read_text())["stage"] == stage.name
    state = (kept / "train" / "model_state_dict.pt").read_bytes()
    int8 = (kept / "export" / "model_int8.tflite").read_bytes()

    resumed, t_resumed = _run(out)
    assert resumed.returncode == 0, resumed.stderr
    assert "Reused from an earlier run: train, quantize, export" in resumed.stdout
    run_dir = out / NAME
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["reused_stages"] == ["train", "quantize", "export"]
    assert (run_dir / "train" / "model_state_dict.pt").read_bytes() == state
    assert (run_dir / "export" / "model_int8.tflite").read_bytes() == int8
    assert not kept.exists() and (run_dir / "report.md").is_file()

    noop, t_noop = _run(out)
    assert noop.returncode == 0 and "is up to date" in noop.stdout, noop.stderr
    assert (run_dir / "manifest.json").read_text() == json.dumps(manifest, indent=2) + "\n"

    report = run_dir / "boards" / "stm32f746g-disco" / "report.json"

    def reused(proc) -> list[str]:
        assert proc.returncode == 0, proc.stderr
        return json.loads((run_dir / "manifest.json").read_text())["reused_stages"]

    # the config validates 64 samples: VALIDATE and REPORT run again
    assert reused(_run(out, "--set", "validation.max_samples=48")[0]) == [
        "train", "quantize", "export"]
    before = json.loads(report.read_text())
    assert before["accuracy"]["n_samples"] == 48
    # a report-only limit: only REPORT runs, and the report differs only where it says so
    assert reused(_run(out, "--set", "validation.max_samples=48",
                       "--set", "validation.min_top1=0.25")[0]) == [
        "train", "quantize", "export", "validate"]
    after = json.loads(report.read_text())
    assert (before["accuracy"]["min_top1"], after["accuracy"]["min_top1"]) == (0.0, 0.25)
    for r in (before, after):
        r["accuracy"].pop("min_top1")
        r["provenance"].pop("command"), r["provenance"].pop("stage_seconds")
        r["provenance"].pop("reused_stages")
        for c in r["checks"]:
            c["detail"] = c["detail"].replace(", floor 25.00 %", "")
    assert _without_wall_times(after) == _without_wall_times(before)
    # another quantization: TRAIN reused, QUANTIZE onward run again
    assert reused(_run(out, "--set", "quantize.per_channel=false")[0]) == ["train"]
    print(f"\nresume timings: run until SIGTERM in VALIDATE {t_interrupted:.1f} s, resumed "
          f"{t_resumed:.1f} s, no-op {t_noop:.1f} s")


def _without_wall_times(obj):
    """``obj`` without host wall-clock figures (they differ between any two runs)."""
    if isinstance(obj, dict):
        return {k: _without_wall_times(v) for k, v in obj.items()
                if "wall" not in k and k != "seconds"}
    if isinstance(obj, list):
        return [_without_wall_times(v) for v in obj]
    return obj
