"""Whole models through the generated C: bit-exact with TFLM on every test sample, each
shared buffer emitted once, constant bytes accounted for, and an arena from our planner.

* digits demo model (``configs/digits_tiny.toml``): its dw filter, the bias buffer of the
  shared depthwise conv, the ADD constant and the 1x1 conv filter are each read by two ops;
* the zoo models (ds_cnn's PAD, depth-multiplier-16 depthwise, TRANSPOSE and MEAN; resnet8,
  mobilenet) run as generated C in their pipeline runs: tests/pipeline/test_zoo_tiny.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import sharing_checks  # noqa: E402  (registered by conftest.py)
from codegen_harness import int8_samples, run_both

ROOT = Path(__file__).resolve().parents[2]


def _samples(tflite: Path, x_nchw: np.ndarray) -> np.ndarray:
    """The test split quantized for the model (NHWC int8), plus 16 extreme/random samples."""
    from tinyshare.export.inspect import inspect_model
    from tinyshare.targets.runtimes.base import quantize_input

    info = inspect_model(tflite)
    t = info.tensor(info.inputs[0])
    real = quantize_input(np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1)), t.scales[0],
                          t.zero_points[0])
    return np.concatenate([real, int8_samples(np.random.default_rng(0), t.shape, 16)])


def _check_model(tflite: Path, x_nchw: np.ndarray, out_dir: Path):
    x = _samples(tflite, x_nchw)
    gen, host, ref = run_both(tflite, out_dir, x)
    diff = np.abs(host.astype(np.int32) - ref.astype(np.int32))
    assert diff.max() == 0, f"{int((diff > 0).sum())} of {diff.size} values differ"
    assert len(x) >= 64
    return gen


@pytest.fixture(scope="module")
def digits(tiny_run):
    """(.tflite, test split x NCHW float32) of the shared tiny run (configs/digits_tiny.toml)."""
    from tinyshare.config import load_config
    from tinyshare.data import load_splits

    cfg = load_config(ROOT / "configs" / "digits_tiny.toml")
    return (tiny_run.run_dir / "export" / "model_int8.tflite",
            load_splits(cfg.data, cfg.seed).x_test)


def test_digits_model_is_bit_exact_with_tflm(digits, tmp_path):
    tflite, x_test = digits
    gen = _check_model(tflite, x_test, tmp_path / "c")
    assert {"DEPTHWISE_CONV_2D", "CONV_2D", "ADD", "MAX_POOL_2D", "FULLY_CONNECTED"} <= set(gen.ops)


def test_digits_shared_buffers_are_emitted_once(digits, tmp_path):
    from tinyshare.targets.codegen import generate_c

    tflite, _ = digits
    gen = generate_c(tflite, tmp_path / "c")
    # the reused block: one 3x3 depthwise filter read by two DEPTHWISE_CONV_2D ops
    dw = [b for b in gen.shared_buffers if b.dtype == "int8" and b.shape == (1, 3, 3, 1)]
    assert len(dw) == 1 and len(dw[0].reader_ops) == 2
    assert {gen.ops[i] for i in dw[0].reader_ops} == {"DEPTHWISE_CONV_2D"}
    sharing_checks.check_generated_c(gen, tflite)
