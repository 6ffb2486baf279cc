"""Interruption and resume (``tinyshare run``, ``tinyshare.pipeline.resume``).

A real ``python -m tinyshare run`` gets SIGTERM while VALIDATE works: ``runs/<name>/`` is not
created, the completed stages (data, train, quantize, export) are kept with their manifests
in ``runs/.<name>.incomplete/``, and nothing else is left. The next run of the same config
reuses TRAIN (same state_dict bytes) and finishes; the one after that is a no-op; a run
with a changed validation setting reuses TRAIN again; a tampered state_dict is not reused.
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

    resumed, t_resumed = _run(out)
    assert resumed.returncode == 0, resumed.stderr
    assert "Reused from an earlier run: train" in resumed.stdout
    run_dir = out / NAME
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["reused_stages"] == ["train"]
    assert (run_dir / "train" / "model_state_dict.pt").read_bytes() == state
    assert not kept.exists() and (run_dir / "report.md").is_file()

    noop, t_noop = _run(out)
    assert noop.returncode == 0 and "is up to date" in noop.stdout, noop.stderr
    assert (run_dir / "manifest.json").read_text() == json.dumps(manifest, indent=2) + "\n"

    # a changed validation setting (the config validates 64 samples): TRAIN reused, the
    # later stages run again
    changed, _ = _run(out, "--set", "validation.max_samples=48")
    assert changed.returncode == 0 and "Reused from an earlier run: train" in changed.stdout
    assert json.loads((run_dir / "boards" / "stm32f746g-disco" / "report.json").read_text())[
        "accuracy"]["n_samples"] == 48
    print(f"\nresume timings: run until SIGTERM in VALIDATE {t_interrupted:.1f} s, resumed "
          f"{t_resumed:.1f} s, no-op {t_noop:.1f} s")


def test_a_tampered_train_stage_is_not_reused(tmp_path, monkeypatch):
    from tinyshare.pipeline import resume

    train = tmp_path / "run" / "train"
    train.mkdir(parents=True)
    (train / "model_state_dict.pt").write_bytes(b"weights")
    from tinyshare.artifacts import write_manifest

    write_manifest(train, stage="train", inputs={"key": "k1"}, seconds=0.0, seed=0)
    assert resume.reusable_train(tmp_path / "run", "k1") == train
    assert resume.reusable_train(tmp_path / "run", "k2") is None  # other inputs
    (train / "model_state_dict.pt").write_bytes(b"weightz")  # same size, other bytes
    assert resume.reusable_train(tmp_path / "run", "k1") is None
