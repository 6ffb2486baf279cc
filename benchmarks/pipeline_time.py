"""Benchmark: end-to-end pipeline time for ``configs/digits.toml``, per stage, and the
emulated validation throughput per board and runtime.

Each run is ``python -m tinyshare run configs/digits.toml`` in a fresh interpreter (the
time a user waits, imports included), into a temporary folder:

1. **host + TFLM**: the config's boards (rpi4b's host runtimes, the Cortex-M boards on
   TFLM, their generated C under qemu-system-arm, Vela for the Ethos-U board), ``--fresh``.
   Goal: under 60 s.
2. **all emulated Linux boards**: the same plus every Linux board of the registry with
   ``validation.emulate = true`` (each runtime in the board's device image under
   qemu-user), ``--fresh``. Goal: under 180 s. The device images are built (or found in
   the cache) before, and timed apart.
3. **resume**: run 1 again unchanged (a no-op), then with ``validation.max_samples = 180``
   (TRAIN, QUANTIZE and EXPORT reused; VALIDATE and REPORT run).

Emulated throughput: samples/s of each board runtime's guest process in run 2 (one guest
process per board and runtime, all samples in it; the boards run side by side, one per
core). Each guest also times its own loop over the samples (``run_ms``), so its wall time
splits into the per-sample cost (``run_ms`` / N) and the fixed cost of one guest process
(wall − run: qemu start, the runtime's imports, the model load, I/O), from the same run.
Every time under qemu is a host time of the emulator, never a device latency.

    .venv/bin/python benchmarks/pipeline_time.py

Writes benchmarks/results/pipeline_time-<date>.json and .md.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _record import write_record

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "digits.toml"
GOALS_S = {"host_tflm": 60.0, "emulated": 180.0}


def _linux_boards() -> list:
    from tinyshare.pipeline.emulate import is_emulated
    from tinyshare.targets.board_registry import list_boards

    return [b for b in list_boards() if is_emulated(b)]


def _cli_run(out: Path, *extra: str) -> dict:
    """One ``tinyshare run`` of the digits config into ``out``: wall time and manifest."""
    cmd = [sys.executable, "-m", "tinyshare", "run", str(CONFIG), "--set",
           f'output_dir="{out}"', *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=1800)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    manifest = json.loads((out / "digits" / "manifest.json").read_text())
    return {"command": " ".join(["tinyshare", "run", "configs/digits.toml", *extra]),
            "wall_s": round(wall, 2), "stage_seconds": manifest["stage_seconds"],
            "reused_stages": manifest["reused_stages"],
            "up_to_date": "is up to date" in proc.stdout}


def _throughput(run_dir: Path) -> list[dict]:
    """Samples/s, per-sample and fixed cost of every emulated board runtime in ``run_dir``'s
    VALIDATE stage."""
    v = json.loads((run_dir / "validate" / "validation.json").read_text())
    n = v["n_samples"]
    rows = []
    for board, emu in v["emulation"].items():
        for c in emu["checks"]:
            wall, run_ms = c.get("emulated_wall_s"), c.get("run_ms")
            ok = c["ok"] and wall is not None and run_ms is not None
            rows.append({"board": board, "runtime": c["runtime"], "ok": c["ok"], "samples": n,
                         "wall_s": round(wall, 2) if wall else None,
                         "samples_per_s": round(n / wall, 1) if ok else None,
                         "per_sample_ms": round(run_ms / n, 2) if ok else None,
                         "fixed_s": round(wall - run_ms / 1000, 2) if ok else None,
                         "fixed_share": round(1 - run_ms / 1000 / wall, 3) if ok else None,
                         "max_abs_diff_lsb": (c["agreement"] or {}).get("max_abs_diff_lsb")})
    return rows


def _stage_cells(r: dict) -> str:
    s = r["stage_seconds"]
    return " | ".join(f"{s.get(k, 0):.1f}" + (" (reused)" if k in r["reused_stages"] else "")
                      for k in ("data", "train", "quantize", "export", "validate", "report"))


def _markdown(record: dict) -> str:
    runs = record["runs"]
    lines = [f"# Pipeline time, configs/digits.toml ({record['date']})", "",
             f"Machine: {record['machine']}; each run is `tinyshare run` in a fresh "
             "interpreter (imports included). Device images ready beforehand in "
             f"{record['images_s']:.1f} s (built or cached). Emulated times are host times "
             "of qemu, not device latencies.", "",
             "| run | boards | wall (s) | data | train | quantize | export | validate | "
             "report | goal | ratio to goal |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, label in (("host_tflm", "host + TFLM"),
                       ("noop", "host + TFLM rerun, unchanged (no-op)"),
                       ("resumed", "host + TFLM rerun, validation.max_samples = 180"),
                       ("emulated", "all emulated Linux boards")):
        r = runs[key]
        goal = GOALS_S.get(key)
        lines.append(
            f"| {label} | {len(r['boards'])} | **{r['wall_s']:.1f}** | "
            + ("– | " * 6 if r["up_to_date"] else _stage_cells(r) + " | ")
            + (f"{goal:.0f} s | {r['wall_s'] / goal:.2f}" if goal else "– | –") + " |")
    full = runs["host_tflm"]["wall_s"]
    lines += ["", f"Resume: the no-op rerun takes {runs['noop']['wall_s'] / full:.2f}× and the "
              f"changed-validation rerun {runs['resumed']['wall_s'] / full:.2f}× the full "
              "host + TFLM run's time.", "",
              "## Emulated validation throughput (run 2)", "",
              "One guest process per board and runtime runs all samples; its wall time splits "
              "into the loop over the samples, as the guest times it, and the fixed cost of "
              "the process (qemu start, the runtime's imports, the model load, I/O).", "",
              "| board | runtime | samples | wall (s, emulated) | samples/s (emulated) | "
              "per sample (ms, emulated) | fixed cost (s) | fixed share | max abs diff (LSB) |",
              "|---|---|---|---|---|---|---|---|---|"]
    for t in record["throughput"]:
        share = "–" if t["fixed_share"] is None else f"{t['fixed_share']:.2f}"
        lines.append(f"| {t['board']} | {t['runtime']} | {t['samples']} | {t['wall_s']} | "
                     f"{t['samples_per_s']} | {t['per_sample_ms']} | {t['fixed_s']} | {share} | "
                     f"{t['max_abs_diff_lsb']} |")
    lines += ["", f"Command: `{record['command']}`.", ""]
    return "\n".join(lines)


def main() -> int:
    from tinyshare.config import load_config
    from tinyshare.pipeline.emulate import board_image

    linux = _linux_boards()
    t0 = time.perf_counter()
    for b in linux:
        board_image(b)
    images_s = time.perf_counter() - t0
    default_boards = load_config(CONFIG).boards
    all_boards = list(dict.fromkeys([*default_boards, *(b.name for b in linux)]))
    emulated = ["--set", "validation.emulate=true", *(a for b in all_boards
                                                       for a in ("--board", b))]
    with tempfile.TemporaryDirectory() as tmp:
        a, b = Path(tmp) / "a", Path(tmp) / "b"
        runs = {"host_tflm": {**_cli_run(a, "--fresh"), "boards": default_boards}}
        runs["noop"] = {**_cli_run(a), "boards": default_boards}
        runs["resumed"] = {**_cli_run(a, "--set", "validation.max_samples=180"),
                           "boards": default_boards}
        runs["emulated"] = {**_cli_run(b, "--fresh", *emulated), "boards": all_boards}
        throughput = _throughput(b / "digits")
    goals = {k: {"goal_s": g, "wall_s": runs[k]["wall_s"], "met": runs[k]["wall_s"] < g}
             for k, g in GOALS_S.items()}
    write_record("pipeline_time", {"images_s": round(images_s, 2), "runs": runs,
                                   "goals": goals, "throughput": throughput}, _markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
