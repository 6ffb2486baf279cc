"""An oversized model FAILs the small Cortex-M boards with the right need / have, and
``tinyshare run --strict`` exits 1 so CI can gate on it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tinyshare.cli import STRICT_FAIL_EXIT, main

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_wide_model_fails_nano33_budgets_and_strict_exits_1(tmp_path, capsys):
    from tinyshare.export.inspect import inspect_model
    from tinyshare.targets.board_registry import load_board
    from tinyshare.targets.runtime_code import tflm_code_estimate

    # configs/digits_wide.toml at width 768 (not 1024) keeps the test quick: 4 activations
    # of 8x8x768 int8 = 192 KiB already exceed the nano33's 192 KiB arena budget.
    rc = main(["run", str(ROOT / "configs" / "digits_wide.toml"), "--strict",
               "--board", "nano33-ble-sense", "--set", f'output_dir="{tmp_path}"',
               "--set", "model.width=768", "--set", "validation.max_samples=8",
               "--set", "data.calib_samples=8",
               # the subject is the budget check; the generated C of this 600 KB model
               # would take most of the test's time under qemu
               "--set", 'validation.codegen="off"'])
    assert rc == STRICT_FAIL_EXIT
    assert "--strict: FAIL on nano33-ble-sense" in capsys.readouterr().err

    run = tmp_path / "digits-wide"
    report = json.loads((run / "boards" / "nano33-ble-sense" / "report.json").read_text())
    board = load_board("nano33-ble-sense")
    assert report["verdict"] == "FAIL"
    budgets = {v["budget"]: v for v in report["violations"] if v["kind"] == "budget"}
    assert "ram" in budgets
    ram = budgets["ram"]
    assert ram["have_bytes"] == board.ram_bytes - board.reserved_ram_bytes
    assert ram["reserved_bytes"] == board.reserved_ram_bytes
    assert ram["need_bytes"] == report["footprint"]["ram"]["arena"]["measured_bytes"]
    assert ram["need_bytes"] > ram["have_bytes"]
    # flash need: the stripped model file the board flashes + TFLM code for its ops
    model = inspect_model(run / "export" / "model_int8_nonames.tflite")
    code = tflm_code_estimate(op.op_code for op in model.ops).total_bytes
    flash = report["footprint"]["flash"]
    assert flash["needed_bytes"] == model.file_bytes + code
    assert flash["budget_bytes"] == board.flash_bytes - board.reserved_flash_bytes
    assert ("flash" in budgets) == (flash["needed_bytes"] > flash["budget_bytes"])


@pytest.mark.slow
def test_passing_run_with_strict_exits_0(tiny_run, tmp_path):
    # The tiny run's Cortex-M boards pass; --strict only looks at verdicts.
    assert tiny_run.verdicts["stm32f746g-disco"] == "PASS"
    rc = main(["run", str(ROOT / "configs" / "digits_tiny.toml"), "--strict",
               "--board", "stm32f746g-disco", "--set", f'output_dir="{tmp_path}"',
               "--set", 'validation.codegen="off"'])  # the tiny run covers it
    assert rc == 0
