"""Benchmark: the generated C (no interpreter) against TFLM, per zoo model and MCU core.

For every zoo model's tiny config, the whole pipeline runs for the three MCU boards
(Cortex-M4F nano33-ble-sense, Cortex-M7 stm32f746g-disco, Cortex-M55 corstone-300-mps3)
with ``validation.codegen = "on"`` on the whole test split. Each board's report gives the
generated C's measured figures (``footprint.generated_c``); this script collects them:

* flash ratio = model code + constants of the ELF (model.c and its kernels) ÷ (the int8
  .tflite + TFLM's runtime code estimate); goal ≤ 1;
* RAM ratio = (arena + stack high-water inside model_invoke + other data/bss) ÷ TFLM's
  measured arena (64-bit host build); goal ≤ 1;
* bit-exactness against TFLM on every test sample, emulated instructions per inference and
  MACs per instruction (an emulated count, not time);
* the offline TFLM arena estimate against TFLM's measured arena, per model.

Training is cut to ``--epochs`` (default 1): the sizes and the bit-exact check do not depend
on how well the model is trained.

    .venv/bin/python benchmarks/generated_c.py [--epochs N] [--models a,b]

Writes benchmarks/results/generated_c-<date>.json and .md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from _record import pick, write_record
from zoo_footprint import ZOO

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("cpu", "machine", "samples", "bit_exact", "max_abs_diff_lsb", "model_file",
        "model_flash_bytes", "image_flash_bytes", "arena_bytes", "other_data_bss_bytes",
        "invoke_stack_high_water_bytes", "model_ram_bytes", "instructions_per_inference",
        "macs_per_inference", "macs_per_instruction", "tflm_arena_bytes",
        "tflm_model_file_bytes", "tflm_flash_bytes", "ram_ratio_vs_tflm_arena",
        "flash_ratio_vs_tflm")


def _mcu_boards() -> list[str]:
    """The registry's boards the code generator builds for (one per Cortex-M core)."""
    from tinyshare.pipeline.codegen_check import codegen_boards
    from tinyshare.targets.board_registry import list_boards

    return [b.name for b in codegen_boards(list_boards())]


def _model(config: str, epochs: int, tmp: Path) -> dict:
    """The tiny config through the pipeline for the MCU boards; each board's figures."""
    from tinyshare.config import load_config
    from tinyshare.pipeline.stages import run

    boards = _mcu_boards()
    cfg = load_config(ROOT / "configs" / f"{config}.toml", [
        f'output_dir="{tmp}"', f"boards={boards}", f"train.epochs={epochs}",
        "validation.max_samples=0", 'validation.codegen="on"'])
    result = run(cfg, command=f"benchmarks/generated_c.py ({config})")
    figures = {}
    for board in boards:
        report = json.loads((result.run_dir / "boards" / board / "report.json").read_text())
        g = report["footprint"]["generated_c"]
        if g["status"] != "ran":
            figures[board] = {"status": g["status"], "note": g["note"]}
            continue
        figures[board] = {"status": "ran", **{k: g[k] for k in KEYS}}
    arena = report["footprint"]["ram"]["arena"]  # per model: the same on every board
    return {"config": f"configs/{config}.toml", "train_epochs": epochs, "boards": figures,
            "arena": {k: arena[k] for k in ("measured_bytes", "estimate_bytes",
                                            "difference_percent", "twin_measured_bytes",
                                            "twin_estimate_bytes")}}


def _num(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _markdown(record: dict) -> str:
    lines = [f"# Generated C against TFLM ({record['date']})", "",
             "Each zoo model's tiny config, its int8 .tflite generated as C, built with "
             "arm-none-eabi-gcc and run under qemu-system-arm on the whole test split. "
             "Flash and RAM are measured on the ELF (arm-none-eabi-size), the stack by "
             "painting it; TFLM's arena is measured (64-bit host build), its runtime code is "
             "an estimate (x86-64 code of the used kernels and core), so the flash ratio "
             "divides by an estimate. Instructions are emulated counts (qemu -icount), not "
             "time.", "",
             "| model | core | bit-exact / samples | C flash (code + constants) | TFLM flash "
             "(file + runtime est.) | flash ratio | C RAM (arena + stack + other) | TFLM "
             "arena | RAM ratio | instructions / inference | MACs / instruction |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, m in record["models"].items():
        for board, g in m["boards"].items():
            if g["status"] != "ran":
                lines.append(f"| {name} | {board} | not run: {g['note']} |" + " – |" * 8)
                continue
            lines.append(
                f"| {name} | {g['cpu']} | {'yes' if g['bit_exact'] else '**NO**'} / "
                f"{g['samples']} | {g['model_flash_bytes']:,} B | "
                f"{_num(g['tflm_flash_bytes'], ',')} B | "
                f"**{_num(g['flash_ratio_vs_tflm'], '.3f')}** | "
                f"{g['model_ram_bytes']:,} B | {g['tflm_arena_bytes']:,} B | "
                f"**{g['ram_ratio_vs_tflm_arena']:.3f}** | "
                f"{g['instructions_per_inference']:,} | {g['macs_per_instruction']:.3f} |")
    ran = [g for m in record["models"].values() for g in m["boards"].values()
           if g["status"] == "ran"]
    if ran:
        worst_ram = max(g["ram_ratio_vs_tflm_arena"] for g in ran)
        flash = [g["flash_ratio_vs_tflm"] for g in ran if g["flash_ratio_vs_tflm"] is not None]
        worst_flash = max(flash, default=None)
        flash_goal = ("unknown" if worst_flash is None
                      else "met" if worst_flash <= 1 else "missed")
        lines += ["", f"Goals: RAM ≤ TFLM arena (worst ratio {worst_ram:.3f}, "
                  f"{'met' if worst_ram <= 1 else 'missed'}); flash ≤ TFLM model + runtime "
                  f"(worst ratio {_num(worst_flash, '.3f')}, {flash_goal})"
                  f"; bit-exact on every board: "
                  f"{'yes' if all(g['bit_exact'] for g in ran) else 'NO'}."]
    lines += ["", "## Arena estimate against the TFLM measurement", "",
              "The offline estimate (tinyshare.targets.arena_plan: lifetimes packed like "
              "TFLM's GreedyMemoryPlanner, plus modelled persistent allocations) against the "
              "smallest arena TFLM allocates and invokes with (64-bit host build).", "",
              "| model | estimate | measured | difference | twin: estimate / measured |",
              "|---|---|---|---|---|"]
    for name, m in record["models"].items():
        a = m.get("arena")
        if a:
            lines.append(f"| {name} | {a['estimate_bytes']:,} B | {a['measured_bytes']:,} B | "
                         f"{a['difference_percent']:+.1f} % | {a['twin_estimate_bytes']:,} / "
                         f"{a['twin_measured_bytes']:,} B |")
    lines += ["", f"Machine: {record['machine']}; command: `{record['command']}`.", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1, help="training epochs per model")
    parser.add_argument("--models", default=",".join(ZOO),
                        help=f"comma-separated subset of {', '.join(ZOO)}")
    args = parser.parse_args()
    names = pick(args.models, ZOO, "--models")
    models = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            models[name] = _model(ZOO[name][1], args.epochs, Path(tmp))
            print(name, json.dumps(models[name]), flush=True)
    write_record("generated_c", {"models": models}, _markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
