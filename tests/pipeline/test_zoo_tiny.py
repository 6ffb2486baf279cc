"""Every zoo model beyond digits_cnn, shared and twin, through train (its tiny config on the
bundled digits, resized to its input) → int8 → both exports → host validation, with the
sharing invariants of ``sharing_checks``; and its generated C built for each MCU core
(Cortex-M4F, M7, M55) and run under qemu-system-arm on the whole test split, bit-exact with
TFLM (when arm-none-eabi-gcc and qemu-system-arm are installed, as ``make test`` does)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import sharing_checks  # noqa: E402  (registered by conftest.py)

ROOT = Path(__file__).resolve().parents[2]
# config -> (input shape (C, H, W), lowest int8 top-1 its tiny config reaches, with margin)
ZOO_TINY = {"ds_cnn_tiny": ((1, 49, 10), 0.70), "resnet8_tiny": ((3, 32, 32), 0.80),
            "mobilenet_v1_025_tiny": ((1, 96, 96), 0.75)}

def _mcu_boards() -> tuple[str, ...]:
    """The registry's boards the code generator builds for (one per Cortex-M core)."""
    from tinyshare.pipeline.codegen_check import codegen_boards
    from tinyshare.targets.board_registry import list_boards

    return tuple(b.name for b in codegen_boards(list_boards()))


MCU_BOARDS = _mcu_boards()
HAS_ARM_TOOLS = all(shutil.which(t) for t in ("arm-none-eabi-gcc", "qemu-system-arm"))

MLPERF = {"ds_cnn_tiny": "KWS DS-CNN", "resnet8_tiny": "IC ResNet-8",
          "mobilenet_v1_025_tiny": "VWW MobileNet v1 0.25"}


@pytest.fixture(scope="module", params=sorted(ZOO_TINY))
def zoo_run(request, tmp_path_factory):
    from tinyshare.config import load_config
    from tinyshare.pipeline.stages import run

    out = tmp_path_factory.mktemp("zoo")
    cfg = load_config(ROOT / "configs" / f"{request.param}.toml",
                      [f'output_dir="{out}"', f"boards={list(MCU_BOARDS)}",
                       "validation.max_samples=0"])
    return request.param, run(cfg, command=f"pytest {request.param}")


@pytest.mark.slow
@pytest.mark.long
def test_zoo_model_runs_end_to_end_with_sharing_kept(zoo_run):
    name, run = zoo_run
    shape, floor = ZOO_TINY[name]
    assert json.loads((run.run_dir / "data" / "manifest.json").read_text())["stage"] == "data"
    assert np.load(run.run_dir / "data" / "test.npz")["x"].shape[1:] == shape
    for fmt in ("tflite", "onnx"):
        sharing_checks.check_stored_bytes(run, fmt)
        sharing_checks.check_stored_once(run, fmt)
    sharing_checks.check_same_int8_tensors(run)
    v = run.validation
    assert v.checks["litert-ref"].accuracy >= floor
    # TFLM runs the same reference kernels: within ±1 LSB of LiteRT's. XNNPACK and
    # onnxruntime differ by up to 2 LSB on ds_cnn (its MEAN); the reports show that as a FAIL
    # of the boards that run them, which is what it is.
    assert v.checks["tflm"].agreement.within_tolerance
    report = json.loads((run.run_dir / "boards" / "stm32f746g-disco" / "report.json").read_text())
    assert next(c for c in report["checks"] if c["name"] == "weight sharing kept")["status"] == "PASS"
    ref = report["model"]["mlperf_reference"]
    assert ref["benchmark"] == MLPERF[name] and ref["source"].startswith("https://")
    md = (run.run_dir / "boards" / "stm32f746g-disco" / "report.md").read_text()
    assert f"MLPerf Tiny reference for this architecture: {MLPERF[name]}" in md
    # the offline arena estimate within 10 % of TFLM's measured arena, shared and twin
    arena = report["footprint"]["ram"]["arena"]
    for m, e in ((arena["measured_bytes"], arena["estimate_bytes"]),
                 (arena["twin_measured_bytes"], arena["twin_estimate_bytes"])):
        assert abs(e - m) <= 0.10 * m, arena


@pytest.mark.slow
@pytest.mark.long
@pytest.mark.emulated
@pytest.mark.skipif(not HAS_ARM_TOOLS, reason="arm-none-eabi-gcc / qemu-system-arm not on PATH "
                    "(make test installs them)")
def test_zoo_model_generated_c_is_bit_exact_on_every_cortex_m_core(zoo_run, tmp_path):
    from tinyshare.targets.codegen import generate_c

    name, run = zoo_run
    n_test = len(np.load(run.run_dir / "data" / "test.npz")["y"])
    cpus = set()
    for board in MCU_BOARDS:
        check = run.validation.codegen[board]
        assert check.skipped is None and check.error is None, (board, check)
        assert check.agreement.n_samples == n_test  # the whole test split
        assert check.bit_exact, (board, check.agreement.max_abs_diff_lsb)
        # one generated model per file: sharing kept in the C arrays
        gen = check.generated
        assert max(len(b.reader_ops) for b in gen.buffers) > 1
        fp = check.figures.footprint
        # the ELF's model flash holds every constant byte the generator emitted, plus code
        assert fp.model_flash_bytes > gen.const_bytes and fp.arena_bytes == gen.arena_bytes
        assert fp.flash_bytes > fp.model_flash_bytes
        cpus.add(check.figures.cpu)
    assert cpus == {"Cortex-M4F", "Cortex-M7", "Cortex-M55"}
    # the C the run built: sharing kept in its arrays, arena from the estimate's planner
    tflite = run.run_dir / "export" / check.model_file
    again = generate_c(tflite, tmp_path / "c")
    built = run.run_dir / "validate" / "codegen" / "c" / tflite.stem / "model.c"
    assert again.model_c.read_text() == built.read_text()
    sharing_checks.check_generated_c(again, tflite)


def test_resize_and_channel_repeat_of_the_digits():
    from tinyshare.config import DataConfig
    from tinyshare.data import load_splits

    splits = load_splits(DataConfig(input_hw=[32, 24], channels=3), seed=0)
    assert splits.x_test.shape[1:] == (3, 32, 24) and splits.input_shape == (3, 32, 24)
    assert "resized bilinearly to 32x24" in splits.source and "3 channels" in splits.source
    x = splits.x_test
    np.testing.assert_array_equal(x[:, 0], x[:, 2])  # grey repeated, not invented
    assert 0.0 <= x.min() and x.max() <= 1.0  # bilinear keeps the [0, 1] range
