"""The benchmark suite's summary (``benchmarks/bench.py``): each goal row says met or not
from the sub-benchmarks' records. No timing happens here; the benchmarks measure."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _bench():
    sys.path.insert(0, str(BENCH))
    try:
        import bench
    finally:
        sys.path.remove(str(BENCH))
    return bench


def _records(depthwise: float, host_s: float, flash: float) -> dict:
    shape = {"C": 256, "H": 32, "batch": 32}
    board = {"status": "ran", "ram_ratio_vs_tflm_arena": 0.5, "flash_ratio_vs_tflm": flash,
             "bit_exact": True}
    return {
        "shared_layers": {"goal": {
            "SharedDepthwiseConv2d": {"formulation": "expand+groups", "worst_ratio": depthwise,
                                      "worst_shape": shape, "goal_ratio": 1.2,
                                      "met": depthwise <= 1.2},
            "SharedConv2d": {"formulation": "broadcast (training form)", "worst_ratio": 1.05,
                             "worst_shape": shape, "goal_ratio": 1.2, "met": True}}},
        "pipeline_time": {"goals": {
            "host_tflm": {"goal_s": 60.0, "wall_s": host_s, "met": host_s < 60},
            "emulated": {"goal_s": 180.0, "wall_s": 150.0, "met": True}}},
        "generated_c": {"models": {"m": {"boards": {"a": board, "b": {"status": "skipped"}}}}},
    }


def test_every_goal_row_reports_the_measured_value_and_whether_it_is_met():
    bench = _bench()
    rows = bench._goals(_records(1.18, 43.0, 0.2), suite_s=840.0)
    assert [(r["measured"], r["met"]) for r in rows] == [
        ("1.18×", True), ("1.05×", True), ("43 s", True), ("150 s", True),
        ("0.500", True), ("0.200", True), ("yes", True), ("14.0 min", True)]
    assert "worst of 1)" in rows[4]["goal"]  # the skipped board is not counted


def test_a_missed_goal_is_reported_as_missed():
    bench = _bench()
    rows = bench._goals(_records(1.41, 75.0, 1.3), suite_s=1000.0)
    missed = [r["measured"] for r in rows if not r["met"]]
    assert missed == ["1.41×", "75 s", "1.300", "16.7 min"]


def test_a_partial_suite_has_no_suite_time_goal():
    bench = _bench()
    rows = bench._goals({"pipeline_time": _records(1.0, 40.0, 0.1)["pipeline_time"]}, None)
    assert [r["goal"].split(",")[0] for r in rows] == ["digits.toml", "digits.toml"]
