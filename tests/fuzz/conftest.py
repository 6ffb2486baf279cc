"""Shared pieces of the bad-input fuzz tests: seed models, the case counter and its summary.

``FUZZ_CASES`` counts every case run through ``tinyshare check`` by outcome; the terminal
summary prints it (``fuzz: N cases ...``) so a run's log shows how much was tried.
Hypothesis runs derandomized (its seed comes from each test's name), with a deadline and a
small ``max_examples`` per test (``fuzz_settings`` in the test module).
"""

from __future__ import annotations

import collections

import pytest

FUZZ_SEED = 31337  # seed models and data arrays
FUZZ_CASES: collections.Counter[str] = collections.Counter()


@pytest.fixture(scope="session")
def fuzz_cases() -> collections.Counter[str]:
    """The session's case counter: ``"<kind>: exit <code>"`` -> cases."""
    return FUZZ_CASES


def pytest_report_header(config):
    return f"tests/fuzz: seed {FUZZ_SEED}, hypothesis derandomized (seed from each test name)"


def pytest_terminal_summary(terminalreporter):
    if FUZZ_CASES:
        total = sum(FUZZ_CASES.values())
        parts = ", ".join(f"{k}: {v}" for k, v in sorted(FUZZ_CASES.items()))
        terminalreporter.write_line(f"fuzz: {total} cases run through tinyshare check ({parts})")


@pytest.fixture(scope="session")
def seeds(tmp_path_factory):
    """Valid inputs to mutate: the int8 FULLY_CONNECTED .tflite, the QDQ .onnx, labelled data.

    Built by the same seeded helpers as ``tests/cli/test_check_cmd.py`` (loaded by path:
    pytest runs in importlib mode, so test folders are not packages).
    """
    import importlib.util
    import sys
    from pathlib import Path
    from types import SimpleNamespace

    name = "check_cmd_models"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, Path(__file__).resolve().parents[1] / "cli" / "test_check_cmd.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    m = sys.modules[name]
    d = tmp_path_factory.mktemp("fuzz_seeds")
    return SimpleNamespace(tflite=m.fc_tflite(d / "fc.tflite", seed=FUZZ_SEED),
                           onnx=m.fc_onnx(d / "fc.onnx", seed=FUZZ_SEED),
                           data=m.samples_npz(d / "data.npz", seed=FUZZ_SEED),
                           n_in=m.N_IN, n_out=m.N_OUT, module=m)
