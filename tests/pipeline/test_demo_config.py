"""The real demo config (``configs/digits.toml``) meets the issue's accuracy goals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_digits_demo_accuracy_and_reports(tmp_path):
    from tinyshare.config import load_config
    from tinyshare.pipeline.stages import run

    cfg = load_config(ROOT / "configs" / "digits.toml", [f'output_dir="{tmp_path}"'])
    result = run(cfg, command="pytest demo")
    v = result.validation
    assert v.n_samples == np.load(result.run_dir / "data" / "test.npz")["y"].shape[0]
    assert v.float_pytorch_accuracy >= 0.95
    for name, check in v.checks.items():
        drop_points = (v.float_pytorch_accuracy - check.accuracy) * 100
        assert drop_points <= 1.5, (name, check.accuracy)
    for board in cfg.boards:
        r = json.loads((result.run_dir / "boards" / board / "report.json").read_text())
        assert r["accuracy"]["float_pytorch"] == v.float_pytorch_accuracy
        assert {c["name"] for c in r["checks"]} >= {"weight sharing kept", "op support"}
        assert next(c for c in r["checks"] if c["name"] == "weight sharing kept")["status"] \
            == "PASS"
