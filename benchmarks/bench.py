"""The benchmark suite (``make bench``): every benchmark in one run, and one summary.

Runs, each in its own interpreter, in this order:

* ``shared_layers.py``: forward + backward of each weight-shared layer formulation as a
  ratio to the unshared ``nn.Conv2d`` (goal: training form within 1.2×);
* ``pipeline_time.py``: ``configs/digits.toml`` end to end per stage (goals: 60 s on the
  host and TFLM boards, 180 s with every emulated Linux board), emulated throughput per
  board and runtime, the guest process overhead, and resume;
* ``zoo_footprint.py``: stored int8 bytes per zoo model, shared against twin, against the
  MLPerf Tiny reference sizes, and tiny-config accuracy;
* ``generated_c.py``: the generated C's ELF flash and RAM against TFLM per zoo model and
  Cortex-M core, and the offline arena estimate against TFLM's measured arena.

Each writes its own ``benchmarks/results/<name>-<date>.{json,md}``; this script then writes
``benchmarks/results/<date>.json`` (all records, each with its machine, versions, command and
wall time) and ``<date>.md`` (the goals table, then each benchmark's Markdown).

    .venv/bin/python benchmarks/bench.py [--only shared_layers,pipeline_time]

Goal for the suite itself: under 15 minutes on the 2-core development machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from _record import RESULTS, pick, write_record

HERE = Path(__file__).resolve().parent
SUITE = {"shared_layers": [], "pipeline_time": [], "zoo_footprint": [],
         "generated_c": ["--epochs", "1"]}
SUITE_GOAL_S = 900.0


def _goals(records: dict, suite_s: float | None) -> list[dict]:
    """One row per goal: what, measured, target, met."""
    rows = []
    if "shared_layers" in records:
        for layer, g in records["shared_layers"]["goal"].items():
            w, form = g["worst_shape"], g["formulation"].replace(" (training form)", "")
            rows.append({"goal": f"{layer} training form ({form}), forward + "
                                 "backward vs nn.Conv2d, worst shape "
                                 f"(C {w['C']}, H = W {w['H']}, batch {w['batch']})",
                         "measured": f"{g['worst_ratio']:.2f}×",
                         "target": f"≤ {g['goal_ratio']:.2f}×", "met": g["met"]})
    if "pipeline_time" in records:
        labels = {"host_tflm": "digits.toml, host + TFLM boards",
                  "emulated": "digits.toml, with every emulated Linux board"}
        for key, g in records["pipeline_time"]["goals"].items():
            rows.append({"goal": labels[key], "measured": f"{g['wall_s']:.0f} s",
                         "target": f"< {g['goal_s']:.0f} s", "met": g["met"]})
    if "generated_c" in records:
        ran = [b for m in records["generated_c"]["models"].values()
               for b in m["boards"].values() if b["status"] == "ran"]
        if ran:
            ram = max(b["ram_ratio_vs_tflm_arena"] for b in ran)
            flash = max(b["flash_ratio_vs_tflm"] for b in ran)
            exact = all(b["bit_exact"] for b in ran)
            rows += [
                {"goal": f"generated C RAM vs TFLM arena (worst of {len(ran)})",
                 "measured": f"{ram:.3f}", "target": "≤ 1", "met": ram <= 1},
                {"goal": f"generated C flash vs TFLM file + runtime estimate (worst of "
                         f"{len(ran)})", "measured": f"{flash:.3f}", "target": "≤ 1",
                 "met": flash <= 1},
                {"goal": "generated C bit-exact with TFLM", "measured": "yes" if exact else "no",
                 "target": "every model and core", "met": exact}]
    if suite_s is not None:
        rows.append({"goal": "the whole suite (make bench)", "measured": f"{suite_s / 60:.1f} min",
                     "target": "< 15 min", "met": suite_s < SUITE_GOAL_S})
    return rows


def _markdown(record: dict) -> str:
    lines = [f"# Benchmarks, {record['date']}", "",
             f"Machine: {record['machine']}. Command: `{record['command']}`. Ratios are "
             "measured within one run; absolute times drift on shared machines.", "",
             "| goal | measured | target | met |", "|---|---|---|---|"]
    lines += [f"| {g['goal']} | {g['measured']} | {g['target']} | "
              f"{'yes' if g['met'] else '**no**'} |" for g in record["goals"]]
    lines += ["", "| benchmark | wall (s) |", "|---|---|"]
    lines += [f"| {n} | {b['wall_s']:.0f} |" for n, b in record["benchmarks"].items()]
    for name in record["benchmarks"]:
        md = RESULTS / f"{name}-{record['date']}.md"
        lines += ["", re.sub(r"^(#+) ", r"#\1 ", md.read_text(), flags=re.M)]  # one level down
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(SUITE),
                        help=f"comma-separated subset of {', '.join(SUITE)}")
    args = parser.parse_args()
    names = pick(args.only, SUITE, "--only")
    date = dt.date.today().isoformat()
    env = {**os.environ, "BENCH_DATE": date}  # every record of this run under one date
    benchmarks, records = {}, {}
    t_suite = time.perf_counter()
    for name in names:
        print(f"== {name}", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, str(HERE / f"{name}.py"), *SUITE[name]],
                              cwd=HERE.parent, env=env)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            print(f"{name}.py failed with exit code {proc.returncode}", file=sys.stderr)
            return 1
        records[name] = json.loads((RESULTS / f"{name}-{date}.json").read_text())
        benchmarks[name] = {"wall_s": round(wall, 1), "record": records[name]}
    suite_s = time.perf_counter() - t_suite
    goals = _goals(records, suite_s if names == list(SUITE) else None)
    os.environ["BENCH_DATE"] = date
    write_record("suite", {"benchmarks": benchmarks, "goals": goals,
                           "wall_s": round(suite_s, 1)}, _markdown, stem=date)
    return 0


if __name__ == "__main__":
    sys.exit(main())
