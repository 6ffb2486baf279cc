"""Same config, same seed, same machine: byte-identical models, weights and reports.

Two ``tinyshare run`` processes of ``configs/digits_tiny.toml`` (2 epochs, one MCU board,
no generated C) run at the same time, each in its own folder (so this also shows that two
runs into different folders work side by side). Each runs from its own working directory
with the same relative ``output_dir``, so even the recorded command line is the same. The
int8 .tflite/.onnx files (shared and twin), the int8 weights and the data splits must be
byte-identical, and the board's ``report.json`` identical once its timings are removed.

Known limit (not tested here): the trained weights depend on torch's intra-op thread
count (convolution backward sums in a thread-count-dependent order), so two runs must also
see the same ``torch.get_num_threads()`` (``OMP_NUM_THREADS``, CPU affinity) to match.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "digits_tiny.toml"
BOARD = "stm32f746g-disco"
NAME = "digits-tiny"

# Every file in stage order, so a failure names the first stage that diverged.
IDENTICAL = [
    "data/test.npz", "data/calib.npz",
    "train/model_state_dict.pt", "train/twin_state_dict.pt",
    "quantize/weights_int8.npz",
    "export/model_int8.tflite", "export/model_int8.onnx",
    "export/twin/model_int8.tflite", "export/twin/model_int8.onnx",
]
# Keys whose values are measured times, in any report or manifest: seconds per stage,
# host wall time of a runtime, the guest's load time and emulator wall time.
TIMING_KEYS = {"stage_seconds", "seconds", "host_wall_ms", "wall_ms", "load_ms",
               "emulated_wall_s", "image_seconds"}


def _without_timings(obj):
    if isinstance(obj, dict):
        return {k: _without_timings(v) for k, v in obj.items() if k not in TIMING_KEYS}
    if isinstance(obj, list):
        return [_without_timings(v) for v in obj]
    return obj


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> tuple[Path, Path]:
    dirs = [tmp_path_factory.mktemp("det-a"), tmp_path_factory.mktemp("det-b")]
    argv = [sys.executable, "-m", "tinyshare", "run", str(CONFIG), "--board", BOARD,
            "--set", "train.epochs=2", "--set", 'validation.codegen="off"',
            "--set", 'output_dir="runs"']
    procs = [subprocess.Popen(argv, cwd=d, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for d in dirs]
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
    return tuple(d / "runs" / NAME for d in dirs)


@pytest.mark.slow
@pytest.mark.long
def test_models_weights_and_data_are_byte_identical(two_runs):
    a, b = two_runs
    for rel in IDENTICAL:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), f"{rel} differs between runs"


@pytest.mark.slow
@pytest.mark.long
def test_report_json_is_identical_without_timings(two_runs):
    a, b = two_runs
    rel = f"boards/{BOARD}/report.json"
    ra, rb = (json.loads((d / rel).read_text()) for d in (a, b))
    assert "stage_seconds" in ra["provenance"]  # the timings this test removes are there
    assert ra["provenance"]["command"].startswith("tinyshare run ")  # the same in both
    assert _without_timings(ra) == _without_timings(rb)
