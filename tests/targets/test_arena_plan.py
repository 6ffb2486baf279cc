"""Offline arena planning, and our TFLM arena estimate against the measured arena."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyshare.targets.arena_plan import ALIGN_BYTES, Buffer, plan_arena

ROOT = Path(__file__).resolve().parents[2]


def test_a_chain_reuses_memory_and_aligns_to_16():
    # a -> b -> c -> d, each live for two consecutive ops: two slots are enough.
    bufs = [Buffer("a", 100, 0, 1), Buffer("b", 100, 1, 2), Buffer("c", 100, 2, 3),
            Buffer("d", 100, 3, 4)]
    plan = plan_arena(bufs)
    assert plan.total_bytes == 2 * 112  # 100 B rounded up to 112
    assert plan.offsets["a"] == plan.offsets["c"] and plan.offsets["b"] == plan.offsets["d"]


def test_largest_first_then_gaps_as_tflm():
    # TFLM places buffers largest first; equal sizes in reverse order of addition.
    bufs = [Buffer("x", 64, 0, 3), Buffer("y", 64, 0, 3), Buffer("small", 16, 1, 1)]
    plan = plan_arena(bufs)
    assert plan.offsets == {"y": 0, "x": 64, "small": 128}
    assert plan.total_bytes == 144


def test_bad_buffer_is_refused():
    with pytest.raises(ValueError, match="lifetime"):
        plan_arena([Buffer("bad", 16, 3, 2)])


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.integers(0, 5000), st.integers(0, 20), st.integers(0, 6)),
                min_size=1, max_size=25))
def test_live_buffers_never_overlap(specs):
    bufs = [Buffer(f"b{i}", size, first, first + span) for i, (size, first, span) in enumerate(specs)]
    plan = plan_arena(bufs)
    peak = max(sum(-(-b.size_bytes // ALIGN_BYTES) * ALIGN_BYTES for b in bufs
                   if b.first <= t <= b.last) for t in range(27))
    assert peak <= plan.total_bytes <= sum(-(-b.size_bytes // 16) * 16 for b in bufs)
    for i, a in enumerate(bufs):
        assert plan.offsets[a.name] % ALIGN_BYTES == 0
        for b in bufs[i + 1:]:
            if a.first <= b.last and b.first <= a.last and a.size_bytes and b.size_bytes:
                oa, ob = plan.offsets[a.name], plan.offsets[b.name]
                assert oa + a.size_bytes <= ob or ob + b.size_bytes <= oa


def _zoo_configs():
    """Each zoo model's real config (``configs/<x>.toml`` beside ``<x>_tiny.toml``). The
    tiny configs' estimates are checked on their pipeline runs (tests/pipeline:
    test_zoo_tiny.py, test_tiny_run.py), from the reports."""
    from tinyshare.config import load_config

    tiny = sorted((ROOT / "configs").glob("*_tiny.toml"))
    paths = [p for t in tiny for p in (t.with_name(t.name.replace("_tiny", "")),) if p.exists()]
    cfgs = [load_config(p) for p in paths]
    return {f"{c.model.name}-w{c.model.width}": c for c in cfgs}


@pytest.mark.slow
@pytest.mark.parametrize("key", sorted(_zoo_configs()))
def test_estimate_within_10_percent_of_measured_arena(key, tmp_path):
    """Every zoo model of every config, shared and unshared twin: the offline estimate is
    within 10 % of TFLM's smallest working arena (host build)."""
    from tinyshare.export.inspect import inspect_model
    from tinyshare.export.tflite import export_tflite_int8
    from tinyshare.models.sharing import unshared_twin
    from tinyshare.models.zoo import build_model
    from tinyshare.pipeline.quantization import deploy_copy
    from tinyshare.quantize.ptq import quantize_ptq
    from tinyshare.targets.arena_plan import estimate_tflm_arena
    from tinyshare.targets.runtimes.tflm import find_arena_bytes

    cfg = _zoo_configs()[key]
    # the bundled digits (1, 8, 8), resized / repeated as the config maps them
    h, w = cfg.data.input_hw or (8, 8)
    shape = (cfg.data.channels or 1, h, w)
    model = build_model(cfg.model.name, input_shape=shape, num_classes=10, width=cfg.model.width)
    calib = np.random.default_rng(0).uniform(0, 16, size=(8, *shape)).astype(np.float32)
    for label, m in (("shared", model), ("twin", unshared_twin(model))):
        path = export_tflite_int8(quantize_ptq(deploy_copy(m), calib, per_channel=True),
                                  tmp_path / f"{label}.tflite")
        measured = find_arena_bytes(path, calib[:1].transpose(0, 2, 3, 1)).arena_bytes
        est = estimate_tflm_arena(inspect_model(path))
        assert abs(est.estimate_bytes - measured) <= 0.10 * measured, (label, est, measured)


@pytest.mark.slow
def test_small_activations_head_is_set_by_the_planners_bookkeeping(tmp_path):
    """ds_cnn on the raw 8x8 digits: 1,280 B of activations, but TFLM's planning
    bookkeeping (one AllocationInfo per tensor, the planner's per-buffer arrays) needs more
    head than that; the estimate counts it and stays within 10 % of the measured arena."""
    from tinyshare.export.inspect import inspect_model
    from tinyshare.export.tflite import export_tflite_int8
    from tinyshare.models.zoo import build_model
    from tinyshare.pipeline.quantization import deploy_copy
    from tinyshare.quantize.ptq import quantize_ptq
    from tinyshare.targets.arena_plan import estimate_tflm_arena
    from tinyshare.targets.runtimes.tflm import find_arena_bytes

    model = build_model("ds_cnn", input_shape=(1, 8, 8), num_classes=10, width=16)
    calib = np.random.default_rng(0).uniform(0, 1, size=(8, 1, 8, 8)).astype(np.float32)
    path = export_tflite_int8(quantize_ptq(deploy_copy(model), calib, per_channel=True),
                              tmp_path / "ds8.tflite")
    est = estimate_tflm_arena(inspect_model(path))
    measured = find_arena_bytes(path, calib[:1].transpose(0, 2, 3, 1)).arena_bytes
    assert est.planning_temp_bytes > est.planned_bytes
    assert est.estimate_bytes == est.planning_temp_bytes + est.persistent_bytes
    assert abs(est.estimate_bytes - measured) <= 0.10 * measured, (est, measured)
