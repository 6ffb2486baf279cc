"""The generated C (no interpreter) in the VALIDATE stage and the board report.

* end to end (the shared ``tiny_run`` of ``configs/digits_tiny.toml``, default config):
  each MCU board's ``footprint.generated_c`` holds measured figures, the bit-exact check
  against TFLM PASSes, the two ratios are the figures divided as the report states, and
  the summary report and report.html show them (marked ``emulated``: arm-none-eabi-gcc and
  qemu-system-arm);
* ``validation.codegen = "auto"`` without the tools records why it did not run;
  ``"on"`` without them is a one-line error (exit 2) before any folder is written.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tinyshare.pipeline.report.schema import validate_report

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "digits_tiny.toml"
BOARD = "stm32f746g-disco"
TOOLS = ("arm-none-eabi-gcc", "qemu-system-arm")


def _without(tool: str, monkeypatch) -> None:
    real = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == tool
                        else real(name, *a, **k))


def _mcu_boards() -> dict[str, str]:
    """{board: core} of the registry's boards the code generator builds for."""
    from tinyshare.pipeline.codegen_check import codegen_boards
    from tinyshare.targets.board_registry import list_boards

    return {b.name: b.cpu for b in codegen_boards(list_boards())}


def _check_generated_c(report: dict, run_dir: Path) -> dict:
    """The board's ``footprint.generated_c``, checked against the rest of its report."""
    g = report["footprint"]["generated_c"]
    assert g["status"] == "ran"
    # the C runs on the board's CPU: the int8 file TFLM runs there (not Vela's on Ethos-U)
    flash = report["footprint"]["flash"]
    if report.get("vela"):
        assert flash["model_file"].endswith("_vela.tflite")
        assert g["model_file"] == flash["model_file"].replace("_vela.tflite", ".tflite")
    else:
        assert g["model_file"] == flash["model_file"]
    # TFLM's side: the very file the C came from (no LUT copy here), measured on disk
    assert g["tflm_model_file"] == g["model_file"]
    assert g["tflm_model_file_bytes"] == (run_dir / "export" / g["model_file"]).stat().st_size
    assert g["bit_exact"] and g["max_abs_diff_lsb"] == 0 and g["n_values_differing"] == 0
    assert g["samples"] == report["accuracy"]["n_samples"]
    for key in ("image_flash_bytes", "model_flash_bytes", "arena_bytes",
                "invoke_stack_high_water_bytes", "stack_high_water_bytes",
                "instructions_per_inference"):
        assert g[key] > 0, key
    assert g["model_flash_bytes"] < g["image_flash_bytes"]
    assert g["invoke_stack_high_water_bytes"] <= g["stack_high_water_bytes"] <= g["stack_reserved_bytes"]
    assert g["model_data_bss_bytes"] == g["arena_bytes"] + g["other_data_bss_bytes"]
    macs = report["per_layer"]["tflite_int8"]["totals"]["macs"]
    assert g["macs_per_inference"] == macs
    assert g["macs_per_instruction"] == pytest.approx(macs / g["instructions_per_inference"])
    # RAM ratio: (arena + stack high-water in model_invoke + other data/bss) / TFLM arena
    ram = g["arena_bytes"] + g["invoke_stack_high_water_bytes"] + g["other_data_bss_bytes"]
    assert g["model_ram_bytes"] == ram
    assert g["tflm_arena_bytes"] == report["footprint"]["ram"]["arena"]["measured_bytes"]
    assert g["ram_ratio_vs_tflm_arena"] == pytest.approx(ram / g["tflm_arena_bytes"])
    # flash ratio: model code + constants / (TFLM model file + runtime code estimate)
    assert g["tflm_runtime_code_bytes"] == flash["runtime_code_bytes"]
    tflm = g["tflm_model_file_bytes"] + flash["runtime_code_bytes"]
    assert g["tflm_flash_bytes"] == tflm
    assert g["flash_ratio_vs_tflm"] == pytest.approx(g["model_flash_bytes"] / tflm)
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["generated C bit-exact with TFLM"]["status"] == "PASS"
    return g


@pytest.mark.slow
@pytest.mark.emulated
@pytest.mark.skipif(any(shutil.which(t) is None for t in TOOLS),
                    reason="arm-none-eabi-gcc / qemu-system-arm not on PATH (make test installs them)")
def test_reports_hold_generated_c_figures_and_bit_exact_check(tiny_run):
    """By default (validation.codegen = "auto") every MCU board of the tiny run ran its C."""
    figures = {}
    cores = _mcu_boards()
    with_c = {d.name for d in (tiny_run.run_dir / "boards").iterdir()} & set(cores)
    assert with_c == {"stm32f746g-disco", "nano33-ble-sense", "corstone-300-mps3"}
    for board in sorted(with_c):
        d = tiny_run.run_dir / "boards" / board
        report = json.loads((d / "report.json").read_text())
        validate_report(report)
        g = figures[board] = _check_generated_c(report, tiny_run.run_dir)
        assert g["cpu"] == cores[board]
        md = (d / "report.md").read_text()
        assert "### Generated C (no interpreter)" in md and "emulated, not time" in md
        assert "runtime code estimate" in md
        # the deploy folder holds the bit-exact C, ready for `make -C c`
        deploy = tiny_run.run_dir / board
        c = deploy / "c"
        assert {"model.c", "model.h", "Makefile", "README.md", "link.ld"} <= {p.name for p in c.iterdir()}
        assert f"{g['model_flash_bytes']:,}" in (c / "README.md").read_text()
        assert "`make -C c`" in (deploy / "README.md").read_text()
    # one model file, one generated C: the same arena on every core
    assert len({g["arena_bytes"] for g in figures.values()}) == 1
    rpi = json.loads((tiny_run.run_dir / "boards" / "rpi4b" / "report.json").read_text())
    assert "generated_c" not in rpi["footprint"]  # a Linux board: no generated C
    summary = tiny_run.summary_report.read_text()
    assert "## Generated C (no interpreter)" in summary
    for board, g in figures.items():
        row = next(line for line in summary.splitlines() if line.startswith(f"| {board} | {g['cpu']}"))
        assert f"{g['model_flash_bytes']:,} B" in row and f"{g['ram_ratio_vs_tflm_arena']:.3f}" in row
    html = tiny_run.html_report.read_text()
    section = html[html.index("<h2>Generated C (no interpreter)</h2>"):]
    rows = section[:section.index("</table>")].split("<tr>")
    for board, g in figures.items():
        (row,) = [r for r in rows if f"<b>{board}</b>" in r]
        assert f"{g['instructions_per_inference']:,}" in row
        assert f"{g['ram_ratio_vs_tflm_arena']:.3f}" in row and "yes" in row


@pytest.mark.parametrize("tool", TOOLS)
def test_auto_without_a_tool_records_why_it_did_not_run(tool, monkeypatch, tmp_path):
    from types import SimpleNamespace

    from tinyshare.config import load_config
    from tinyshare.pipeline.codegen_check import run_codegen_checks
    from tinyshare.targets.board_registry import load_board

    _without(tool, monkeypatch)
    cfg = load_config(CONFIG, [f'output_dir="{tmp_path}"', 'validation.codegen="auto"'])
    assert load_config(CONFIG).validation.codegen == "auto"  # on by default where tools exist
    boards = [load_board(b) for b in cfg.boards]
    exported = SimpleNamespace(tflite_int8=tmp_path / "model_int8.tflite",
                               tflite_int8_stripped=tmp_path / "model_int8_stripped.tflite")
    checks = run_codegen_checks(cfg, boards, exported, None, None, None, tmp_path / "c")
    # rpi4b runs Linux; every bare-metal board of the config has a supported core
    assert set(checks) == {"stm32f746g-disco", "nano33-ble-sense", "corstone-300-mps3"}
    for c in checks.values():
        assert c.skipped.startswith(f"not run: {tool} not installed; `make test` installs it, "
                                    "or apt-get install")
        assert c.figures is None and not c.bit_exact
    assert not (tmp_path / "c").exists()
    off = load_config(CONFIG, [f'output_dir="{tmp_path}"', 'validation.codegen="off"'])
    assert run_codegen_checks(off, boards, exported, None, None, None, tmp_path / "c") == {}


def test_auto_skip_is_an_info_check_in_the_report():
    from tinyshare.pipeline.codegen_check import CodegenCheck
    from tinyshare.pipeline.report.generated_c import (
        TflmSide,
        generated_c,
        generated_c_section,
    )

    note = "not run: qemu-system-arm not installed; `make test` installs it, or apt-get ..."
    check, data = generated_c(CodegenCheck("b", "m.tflite", skipped=note),
                              TflmSide("m.tflite", 1, 2, 100), 10)
    assert (check.status, check.detail, check.kind) == ("INFO", note, "codegen")
    assert data == {"status": "not run", "note": note, "model_file": "m.tflite"}
    assert generated_c_section({"generated_c": data})[2] == note


@pytest.mark.parametrize("tool", TOOLS)
def test_on_without_a_tool_is_one_line_exit_2_before_any_folder(tool, monkeypatch, tmp_path,
                                                                capsys):
    from tinyshare.cli import main

    _without(tool, monkeypatch)
    out = tmp_path / "runs"
    code = main(["run", str(CONFIG), "--set", f'output_dir="{out}"', "--set",
                 'boards=["stm32f746g-disco"]', "--set", 'validation.codegen="on"'])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and tool in err and "apt-get install" in err
    assert not out.exists()
