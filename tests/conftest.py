"""Seeds for every test, and the tiny end-to-end run shared by the pipeline tests."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

SEED = 0
ROOT = Path(__file__).resolve().parents[1]


def pytest_report_header(config):
    return f"tinyshare tests: seed {SEED} (random, numpy, torch set per test)"


@pytest.fixture(autouse=True)
def _seed():
    random.seed(SEED)
    np.random.seed(SEED)
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    torch.manual_seed(SEED)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """Run the whole pipeline once on ``configs/digits_tiny.toml`` into a temp folder."""
    from tinyshare.config import load_config
    from tinyshare.pipeline.stages import run

    out = tmp_path_factory.mktemp("runs")
    cfg = load_config(ROOT / "configs" / "digits_tiny.toml", [f'output_dir="{out}"'])
    return run(cfg, command="pytest tiny_run")
