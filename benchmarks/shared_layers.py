"""Benchmark: CPU forward + backward time of each weight-shared layer formulation, as a
ratio to the unshared ``nn.Conv2d`` of the same shape.

Layers and formulations (``tinyshare/models/layers.py``):

* ``SharedDepthwiseConv2d(C, 3, padding=1)`` against ``nn.Conv2d(C, C, 3, padding=1,
  groups=C)``: "expand+groups" (the training form, ``deploy=False``), "reshape"
  (``_forward_reshape``), "dilated NHWC" (``_forward_dilated_nhwc``) and "repeat" (the
  filter copied C times with ``weight.repeat``, then a depthwise conv);
* ``SharedConv2d(C, C, 3, padding=1)`` against ``nn.Conv2d(C, C, 3, padding=1)``:
  "broadcast (training form)" (``deploy=False``), "channel-sum (deploy form)"
  (``deploy=True``: a 1×1 all-ones conv, then one-channel convs) and "repeat" (the filter
  copied C_in times with ``weight.repeat``, then an ordinary conv).

What is timed: one forward and the backward of ``loss = output.sum()``, float32, batch 32,
C in {16, 64, 256}, H = W in {8, 32, 96}. The input does not require grad, so the backward
computes the parameter gradients only (weight and bias), as in a first layer.

Absolute times drift on a shared machine, so every shape is measured in rounds: each round
times the baseline and every formulation once, in an order that alternates round to round,
and the reported ratio is the median over rounds of candidate ÷ baseline of the same
round. The goal's pair, the baseline and the training form, then gets up to 16 extra
paired rounds of its own (at least 8, for shapes whose sample is under 0.2 s), since a round
of every formulation is long where the deploy forms are slow and leaves few pairs. Before
the rounds, each callable runs once untimed (warm-up); a sample is several calls when one
call is short (≥ 20 ms per sample). Rounds repeat until ``--budget-s`` of
timed rounds has been spent and at least 2 rounds ran, or ``--repeats`` rounds ran, so
the largest shapes (SharedConv2d, C=256, H=96: ≈ 1.7e11 MACs forward) get the minimum of 2.
As a cross-check each row also keeps ``ratio_of_mins`` (fastest candidate sample ÷ fastest
baseline sample); where it differs from the paired median by more than 20 % the row is
flagged noisy in the Markdown (CPU contention from other processes slows short,
many-barrier kernels by far more than long ones).

Before timing, every formulation's output is checked against the unshared conv holding the
shared filter broadcast (same bias) on a small input (atol = rtol = 1e-4).

Goal: each training form's forward + backward within 1.2× of the unshared conv.

    .venv/bin/python benchmarks/shared_layers.py [--quick] [--threads N] [--repeats N]
        [--budget-s S] [--channels 16,64] [--sizes 8,32]

Writes benchmarks/results/shared_layers-<date>.json and .md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from _record import write_record
from torch import nn

from tinyshare.models.layers import SharedConv2d, SharedDepthwiseConv2d

GOAL_RATIO = 1.2
TRAINING_FORMS = {"depthwise": "expand+groups", "conv": "broadcast (training form)"}
LAYER_NAMES = {"depthwise": "SharedDepthwiseConv2d", "conv": "SharedConv2d"}
MIN_REPEATS = 2
NOISY = 0.2  # flag a row when the ratio of minimums is this far from the paired median
MIN_SAMPLE_S = 0.02  # a timing sample lasts at least this long (several calls if needed)
EXTRA_PAIRS = 16  # most extra (baseline, training form) rounds per shape; at least half
EXTRA_PAIR_MAX_S = 0.2  # ... only where one sample is shorter than this


def _dw_repeat(layer: SharedDepthwiseConv2d, x: torch.Tensor) -> torch.Tensor:
    """The public answer's form: the (1, 1, 3, 3) filter copied C times, groups=C."""
    w = layer.weight.repeat(layer.channels, 1, 1, 1)  # (C, 1, 3, 3), a copy
    return F.conv2d(x, w, layer.bias, padding=1, groups=layer.channels)


def _conv_repeat(layer: SharedConv2d, x: torch.Tensor) -> torch.Tensor:
    """The (C_out, 1, 3, 3) filters copied C_in times, then an ordinary conv."""
    w = layer.weight.repeat(1, layer.in_channels, 1, 1)  # (C_out, C_in, 3, 3), a copy
    return F.conv2d(x, w, layer.bias, padding=1)


def _with_deploy(layer: nn.Module, deploy: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    def call(x: torch.Tensor) -> torch.Tensor:
        layer.deploy = deploy
        return layer(x)
    return call


def _forms(kind: str, channels: int) -> tuple[nn.Module, nn.Conv2d, dict[str, Callable]]:
    """The shared layer, its unshared twin (the baseline) and the formulations to time."""
    if kind == "depthwise":
        layer = SharedDepthwiseConv2d(channels, 3, padding=1, bias=True)
        forms = {"expand+groups": _with_deploy(layer, False),
                 "reshape": layer._forward_reshape,
                 "dilated NHWC": layer._forward_dilated_nhwc,
                 "repeat": lambda x: _dw_repeat(layer, x)}
    else:
        layer = SharedConv2d(channels, channels, 3, padding=1, bias=True)
        forms = {"broadcast (training form)": _with_deploy(layer, False),
                 "channel-sum (deploy form)": _with_deploy(layer, True),
                 "repeat": lambda x: _conv_repeat(layer, x)}
    return layer, layer.unshared_twin(), forms


def _check(kind: str, channels: int) -> None:
    """Every formulation's output equals the unshared twin's on a small input.

    Raises:
        RuntimeError: a formulation disagrees with the twin.
    """
    _, twin, forms = _forms(kind, channels)
    x = torch.randn(2, channels, 8, 8)
    with torch.no_grad():
        ref = twin(x)
        for name, fn in forms.items():
            y = fn(x)
            if y.shape != ref.shape or not torch.allclose(y, ref, atol=1e-4, rtol=1e-4):
                raise RuntimeError(f"{LAYER_NAMES[kind]} {name!r} (C={channels}) differs from "
                                   f"nn.Conv2d: max |diff| {(y - ref).abs().max().item():.2e}")


def _step(module: nn.Module, fn: Callable, x: torch.Tensor, calls: int) -> float:
    """Seconds per call of forward + backward of output.sum() (parameter grads only)."""
    start = time.perf_counter()
    for _ in range(calls):
        module.zero_grad(set_to_none=True)
        fn(x).sum().backward()
    return (time.perf_counter() - start) / calls


def _measure(kind: str, channels: int, size: int, batch: int, budget_s: float,
             max_repeats: int) -> list[dict]:
    """One shape: rows (one per formulation) with medians and the median paired ratio."""
    layer, twin, forms = _forms(kind, channels)
    x = torch.randn(batch, channels, size, size)
    callables = [("baseline", twin, twin), *((n, layer, f) for n, f in forms.items())]
    warm = {name: _step(mod, fn, x, 1) for name, mod, fn in callables}
    per_call = warm["baseline"]
    if per_call < 0.1:  # the first call includes one-off set-up; time a few more
        per_call = _step(twin, twin, x, 3)
    calls = max(1, min(100, int(MIN_SAMPLE_S / per_call)))
    times: dict[str, list[float]] = {name: [] for name, _, _ in callables}
    spent, rounds = 0.0, 0
    while rounds < max_repeats and (rounds < MIN_REPEATS or spent < budget_s):
        start = time.perf_counter()
        order = callables if rounds % 2 == 0 else callables[::-1]
        for name, mod, fn in order:
            times[name].append(_step(mod, fn, x, calls))
        spent += time.perf_counter() - start
        rounds += 1
    # The goal's pair (baseline, training form) gets extra rounds of its own: a round of
    # every formulation is long where the deploy forms are slow, which leaves few pairs.
    train, extra = TRAINING_FORMS[kind], 0
    spent = 0.0
    while per_call * calls < EXTRA_PAIR_MAX_S and extra < EXTRA_PAIRS and (
            extra < EXTRA_PAIRS // 2 or spent < budget_s):
        start = time.perf_counter()
        for name in (("baseline", train) if extra % 2 == 0 else (train, "baseline")):
            mod = twin if name == "baseline" else layer
            times[name].append(_step(mod, twin if name == "baseline" else forms[name], x,
                                     calls))
        spent += time.perf_counter() - start
        extra += 1
    base = times["baseline"]
    return [{"layer": LAYER_NAMES[kind], "formulation": name, "C": channels, "H": size,
             "batch": batch, "baseline_ms": 1e3 * statistics.median(base),
             "candidate_ms": 1e3 * statistics.median(times[name]),
             "ratio": statistics.median(c / b for c, b in zip(times[name], base)),
             "ratio_of_mins": min(times[name]) / min(base),
             "repeats": len(times[name]), "calls_per_repeat": calls}
            for name in forms]


def _goal(rows: list[dict]) -> dict:
    goal = {}
    for kind, form in TRAINING_FORMS.items():
        mine = [r for r in rows if r["layer"] == LAYER_NAMES[kind] and r["formulation"] == form]
        worst = max(mine, key=lambda r: r["ratio"])
        goal[LAYER_NAMES[kind]] = {
            "formulation": form, "worst_ratio": worst["ratio"],
            "worst_shape": {"C": worst["C"], "H": worst["H"], "batch": worst["batch"]},
            "goal_ratio": GOAL_RATIO, "met": worst["ratio"] <= GOAL_RATIO,
            "shapes_over_goal": sum(r["ratio"] > GOAL_RATIO for r in mine)}
    return goal


def _noisy(rows: list[dict]) -> list[str]:
    return [f"{r['layer']} {r['formulation']} C={r['C']} H={r['H']} "
            f"({r['ratio']:.2f} vs {r['ratio_of_mins']:.2f})"
            for r in rows if abs(r["ratio_of_mins"] / r["ratio"] - 1) > NOISY]


def _markdown(record: dict) -> str:
    rows = record["rows"]
    lines = [f"# Weight-shared layers: CPU forward + backward vs nn.Conv2d ({record['date']})",
             ""]
    for kind in TRAINING_FORMS:
        name = LAYER_NAMES[kind]
        mine = [r for r in rows if r["layer"] == name]
        forms = list(dict.fromkeys(r["formulation"] for r in mine))
        shapes = list(dict.fromkeys((r["C"], r["H"]) for r in mine))
        lines += [f"## {name}", "",
                  "| C | H = W | baseline ms | " + " | ".join(forms) + " | repeats |",
                  "|---|---|---|" + "---|" * len(forms) + "---|"]
        for c, h in shapes:
            cells = {r["formulation"]: r for r in mine if (r["C"], r["H"]) == (c, h)}
            first = cells[forms[0]]
            lines.append(f"| {c} | {h} | {first['baseline_ms']:.2f} | "
                         + " | ".join(f"{cells[f]['ratio']:.2f}" for f in forms)
                         + f" | {first['repeats']} |")
        lines.append("")
    verdicts = []
    for name, g in record["goal"].items():
        shape = g["worst_shape"]
        where = f"C={shape['C']}, H={shape['H']}"
        if g["met"]:
            verdicts.append(f"{name} ({g['formulation']}): met, worst {g['worst_ratio']:.2f}× "
                            f"({where})")
        else:
            verdicts.append(f"{name} ({g['formulation']}): missed, worst {g['worst_ratio']:.2f}× "
                            f"({where}), {100 * (g['worst_ratio'] / GOAL_RATIO - 1):.0f} % over "
                            f"the goal; {g['shapes_over_goal']} shapes over {GOAL_RATIO}×")
    lines += [f"Cells: median over rounds of (formulation time ÷ nn.Conv2d time in the same "
              f"round), float32 on the CPU with {record['threads']} torch threads, batch "
              f"{record['batch']}. Timed: one forward plus the backward of output.sum(); "
              f"the input does not require grad, so only the parameter gradients are "
              f"computed. Baseline ms: median nn.Conv2d time. Rounds: warm-up, then until "
              f"{record['budget_s']} s of rounds and at least {MIN_REPEATS} rounds, at most "
              f"{record['max_repeats']}; shapes held to the minimum by the time budget: "
              f"{', '.join(record['shapes_at_min_repeats']) or 'none'}. Full run "
              f"{record['wall_s']:.0f} s. Noisy rows (ratio of the fastest samples more than "
              f"{100 * NOISY:.0f} % away from the paired median): "
              f"{', '.join(_noisy(rows)) or 'none'}.", "",
              f"Goal: the training form within {GOAL_RATIO}× of the unshared conv. "
              + "; ".join(verdicts) + ".", "",
              f"Machine: {record['machine']}; command: `{record['command']}`.", ""]
    return "\n".join(lines)


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: batch 8, C in {16, 64}, H in {8, 32}")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=30, help="most timed rounds per shape")
    parser.add_argument("--budget-s", type=float, default=2.0,
                        help="seconds of timed rounds per shape before stopping")
    parser.add_argument("--channels", type=_ints, help="override C, e.g. 16,64")
    parser.add_argument("--sizes", type=_ints, help="override H = W, e.g. 8,32")
    args = parser.parse_args()
    if args.repeats < MIN_REPEATS:
        parser.error(f"--repeats must be at least {MIN_REPEATS}, got {args.repeats}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    batch = 8 if args.quick else 32
    channels = args.channels or ([16, 64] if args.quick else [16, 64, 256])
    sizes = args.sizes or ([8, 32] if args.quick else [8, 32, 96])
    torch.manual_seed(0)
    start = time.perf_counter()
    for kind in TRAINING_FORMS:
        for c in channels:
            _check(kind, c)
    rows = []
    for kind in TRAINING_FORMS:
        for c in channels:
            for h in sizes:
                shape_rows = _measure(kind, c, h, batch, args.budget_s, args.repeats)
                rows += shape_rows
                print(f"{LAYER_NAMES[kind]} C={c} H={h}: baseline "
                      f"{shape_rows[0]['baseline_ms']:.2f} ms, "
                      + ", ".join(f"{r['formulation']} {r['ratio']:.2f}" for r in shape_rows),
                      flush=True)
    fields = {"threads": torch.get_num_threads(), "batch": batch, "quick": args.quick,
              "budget_s": args.budget_s, "max_repeats": args.repeats,
              "min_repeats": MIN_REPEATS,
              "shapes_at_min_repeats": sorted({f"{r['layer']} C={r['C']} H={r['H']}"
                                               for r in rows if r["repeats"] == MIN_REPEATS}),
              "goal": _goal(rows), "rows": rows,
              "wall_s": time.perf_counter() - start}
    write_record("shared_layers", fields, _markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
