"""Helpers for the code generator tests.

Registers helper modules by name (pytest runs in importlib mode, so the folder is not a
package): ``codegen_single_op`` (hand-built one-op .tflite files), ``codegen_harness`` (run
the generated C and TFLM on the same int8 samples) and ``tests/pipeline``'s
``sharing_checks`` (sharing kept in the generated C arrays). Provides
``check_bit_exact`` and a one-op CONV_2D model (``one_op_conv_tflite``, and its generated C
``conv_c``); skips the folder when gcc is missing.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

_HERE = Path(__file__).resolve().parent
for _name, _file in (("codegen_single_op", _HERE / "single_op.py"),
                     ("codegen_harness", _HERE / "harness.py"),
                     ("sharing_checks", _HERE.parent / "pipeline" / "sharing_checks.py")):
    if _name not in sys.modules:
        _spec = importlib.util.spec_from_file_location(_name, _file)
        _module = importlib.util.module_from_spec(_spec)
        sys.modules[_name] = _module  # before exec: its dataclasses look it up
        _spec.loader.exec_module(_module)

from codegen_harness import int8_samples, run_both  # noqa: E402
from codegen_single_op import T, conv_options, write_model  # noqa: E402


def pytest_collection_modifyitems(items):
    if shutil.which("gcc") is None:
        skip = pytest.mark.skip(reason="gcc is not on PATH")
        for item in items:
            if "tests/codegen" in str(item.fspath):
                item.add_marker(skip)


@pytest.fixture
def check_bit_exact(tmp_path):
    """``check(tflite, n=32, seed=0) -> (GeneratedModel, host outputs)``: host == TFLM."""

    def check(tflite: Path, n: int = 32, seed: int = 0):
        from tinyshare.export.inspect import inspect_model

        info = inspect_model(tflite)
        shape = info.tensor(info.inputs[0]).shape
        x = int8_samples(np.random.default_rng(seed), shape, n)
        gen, host, ref = run_both(tflite, tmp_path / f"c_{tflite.stem}", x)
        diff = np.abs(host.astype(np.int32) - ref.astype(np.int32))
        assert diff.max() == 0, (f"{tflite.name}: {int((diff > 0).sum())} of {diff.size} "
                                 f"values differ, max {int(diff.max())} LSB")
        return gen, host

    return check


@pytest.fixture(scope="module")
def one_op_conv_tflite(tmp_path_factory) -> Path:
    """A one-op CONV_2D ``.tflite``: (1, 5, 5, 1) int8 input (scale 0.02, zero point 3),
    two 3x3 per-channel filters, (1, 5, 5, 2) int8 output (scale 0.05, zero point -1)."""
    w = np.random.default_rng(0).integers(-127, 128, (2, 3, 3, 1)).astype(np.int8)
    return write_model(tmp_path_factory.mktemp("conv") / "conv.tflite", "CONV_2D",
                       [T((1, 5, 5, 1), scale=0.02, zero_point=3),
                        T((2, 3, 3, 1), scale=[0.01, 0.02], data=w),
                        T((2,), "int32", scale=[2e-4, 4e-4], data=np.array([100, -100]))],
                       T((1, 5, 5, 2), scale=0.05, zero_point=-1), "Conv2DOptions",
                       conv_options())


@pytest.fixture(scope="module")
def conv_c(one_op_conv_tflite, tmp_path_factory):
    """``one_op_conv_tflite``'s generated C (a ``GeneratedModel``), shared by a test module:
    tests must not write into its ``out_dir``."""
    from tinyshare.targets.codegen import generate_c

    return generate_c(one_op_conv_tflite, tmp_path_factory.mktemp("conv_c") / "c")
