"""Stage-level resume: stage keys, the reuse plan, and loading each stage back from a run
folder (``tinyshare.pipeline.resume``, ``tinyshare.pipeline.reload``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_inputs():
    from tinyshare.config import load_config
    from tinyshare.data import load_splits

    cfg = load_config(ROOT / "configs" / "digits_tiny.toml")
    return cfg, load_splits(cfg.data, cfg.seed)


def _keys(cfg, splits, *overrides: str, boards=("stm32f746g-disco",)):
    from tinyshare.config import load_config
    from tinyshare.pipeline.resume import stage_keys
    from tinyshare.targets.board_registry import load_board

    if overrides:
        cfg = load_config(ROOT / "configs" / "digits_tiny.toml", list(overrides))
    return stage_keys(cfg, splits, [b if not isinstance(b, str) else load_board(b)
                                    for b in boards])


@pytest.mark.parametrize("override, first_changed", [
    ("validation.min_top1=0.5", None),  # report-only: every stage reused
    ("validation.max_accuracy_drop_points=3.0", None),
    ("validation.max_samples=48", "validate"),
    ("validation.tolerance_lsb=2", "validate"),
    ("quantize.per_channel=false", "quantize"),
    ("train.epochs=4", "train"),
    ("seed=1", "train"),
    ("data.calib_samples=16", "train"),  # the calibration split is part of the data
])
def test_a_changed_setting_changes_exactly_the_keys_of_the_stages_it_affects(
        tiny_inputs, override, first_changed):
    from tinyshare.data import load_splits
    from tinyshare.pipeline.resume import REUSABLE_STAGES

    cfg, splits = tiny_inputs
    base = _keys(cfg, splits)
    if override.startswith(("data.", "seed")):
        from tinyshare.config import load_config

        changed_cfg = load_config(ROOT / "configs" / "digits_tiny.toml", [override])
        splits = load_splits(changed_cfg.data, changed_cfg.seed)
    changed = _keys(cfg, splits, override)
    same = [s for s in REUSABLE_STAGES if base[s] == changed[s]]
    expected = list(REUSABLE_STAGES[:REUSABLE_STAGES.index(first_changed)]
                    if first_changed else REUSABLE_STAGES)
    assert same == expected


def test_another_board_list_changes_only_the_validate_key(tiny_inputs):
    cfg, splits = tiny_inputs
    a = _keys(cfg, splits)
    b = _keys(cfg, splits, boards=("stm32f746g-disco", "rpi4b"))
    assert [s for s in a if a[s] != b[s]] == ["validate"]


def test_a_changed_board_profile_under_the_same_name_changes_the_validate_key(tiny_inputs):
    from tinyshare.targets.board_registry import load_board

    cfg, splits = tiny_inputs
    board = load_board("stm32f746g-disco")
    edited = board.model_copy(update={"strip_tensor_names": not board.strip_tensor_names})
    a, b = _keys(cfg, splits, boards=(board,)), _keys(cfg, splits, boards=(edited,))
    assert [s for s in a if a[s] != b[s]] == ["validate"]


def test_the_c_tools_on_path_are_part_of_the_validate_key(tiny_inputs, monkeypatch):
    from tinyshare.pipeline import codegen_check

    cfg, splits = tiny_inputs
    with_tools = _keys(cfg, splits)
    monkeypatch.setattr(codegen_check.shutil, "which", lambda tool: None)
    without = _keys(cfg, splits)
    assert with_tools["export"] == without["export"]
    assert with_tools["validate"] != without["validate"]


def _stage(root: Path, name: str, key: str, payload: bytes = b"x") -> Path:
    from tinyshare.artifacts import write_manifest

    d = root / name
    d.mkdir(parents=True)
    (d / "file.bin").write_bytes(payload)
    write_manifest(d, stage=name, inputs={"key": key}, seconds=0.0, seed=0)
    return d


def test_the_reuse_plan_takes_the_leading_stages_with_matching_keys(tmp_path):
    from tinyshare.pipeline.resume import reuse_plan

    final = tmp_path / "run"
    keys = {"train": "t", "quantize": "q", "export": "e", "validate": "v"}
    stages = list(keys)
    _stage(final, "train", "t")
    _stage(final, "quantize", "q")
    # no export folder: QUANTIZE is never reused alone (its graph is not stored), not even
    # by a run that stops after it
    assert list(reuse_plan(final, keys, stages)) == ["train"]
    assert list(reuse_plan(final, keys, ["train", "quantize"])) == ["train"]
    _stage(final, "export", "e")
    _stage(final, "validate", "other")  # validated with other settings
    assert list(reuse_plan(final, keys, stages)) == ["train", "quantize", "export"]
    # a stage after one that must run is never reused, even with a matching key
    assert reuse_plan(final, {**keys, "train": "changed"}, stages) == {}


def test_the_plan_takes_every_stage_from_one_run_folder(tmp_path):
    from tinyshare.pipeline.resume import incomplete_dir, reuse_plan

    final = tmp_path / "run"
    keys = {"train": "t", "quantize": "q", "export": "e", "validate": "v"}
    for name in ("train", "quantize", "export"):
        _stage(final, name, keys[name])
    _validate_stage(final, "v", {"emulation": {}, "codegen": {}})
    kept = incomplete_dir(final)
    for name in ("train", "quantize", "export"):
        _stage(kept, name, keys[name])
    # the finished run offers all four: nothing is mixed in from the interrupted one
    assert reuse_plan(final, keys, list(keys)) == {n: final / n for n in keys}
    (final / "export" / "file.bin").write_bytes(b"y")  # the finished run's EXPORT is broken
    assert reuse_plan(final, keys, list(keys)) == {
        n: kept / n for n in ("train", "quantize", "export")}


def _validate_stage(root: Path, key: str, validation: dict) -> Path:
    from tinyshare.artifacts import atomic_write_json, write_manifest

    d = root / "validate"
    d.mkdir(parents=True)
    atomic_write_json(d / "validation.json", validation)
    write_manifest(d, stage="validate", inputs={"key": key}, seconds=0.0, seed=0)
    return d


@pytest.mark.parametrize("validation, reusable", [
    ({"emulation": {}, "codegen": {}}, True),
    ({"emulation": {"rpi4b": {"error": None, "image_manifest": None,
                              "checks": [{"ok": True}]}}}, True),
    ({"emulation": {"rpi4b": {"error": "qemu-aarch64-static not found", "checks": []}}},
     False),
    ({"emulation": {"rpi4b": {"error": None, "checks": [{"ok": True}, {"ok": False}]}}},
     False),
    ({"emulation": {"rpi4b": {"error": None, "image_manifest": "/no/such/image/manifest.json",
                              "checks": [{"ok": True}]}}}, False),
    ({"codegen": {"stm32f746g-disco": {"skipped": "not run: qemu-system-arm timed out"}}},
     False),
    ({"codegen": {"stm32f746g-disco": {"error": "arm-none-eabi-gcc failed"}}}, False),
])
def test_a_validate_stage_with_a_failure_of_the_environment_is_not_reused(
        tmp_path, validation, reusable):
    from tinyshare.pipeline.resume import reusable_stage

    d = _validate_stage(tmp_path / "run", "v", validation)
    assert reusable_stage(tmp_path / "run", "validate", "v") == (d if reusable else None)


def test_the_interrupted_runs_stages_come_first_and_a_tampered_file_is_not_reused(tmp_path):
    from tinyshare.pipeline.resume import incomplete_dir, reusable_stage

    final = tmp_path / "run"
    done = _stage(final, "train", "k")
    kept = _stage(incomplete_dir(final), "train", "k")
    assert reusable_stage(final, "train", "k") == kept
    assert reusable_stage(final, "train", "k2") is None  # other inputs
    (kept / "file.bin").write_bytes(b"y")  # same size, other bytes
    assert reusable_stage(final, "train", "k") == done
    (done / "manifest.json").unlink()  # a stage without a manifest never completed
    assert reusable_stage(final, "train", "k") is None


def test_paths_inside_an_earlier_staging_folder_are_moved_to_the_new_one(tmp_path):
    from tinyshare.pipeline.reload import _reroot

    new = tmp_path / ".m.partial-2"
    obj = {"a": "/x/runs/.m.partial-17/export/model.tflite",
           "b": ["runs/.m.partial-17/validate/c/model.c", "--flag"],
           "c": "/x/runs/.other.partial-17/export/model.tflite",  # another run's folder
           "d": 3}
    out = _reroot(obj, "m", new)
    assert out == {"a": f"{new.absolute()}/export/model.tflite",
                   "b": [f"{new}/validate/c/model.c", "--flag"],
                   "c": obj["c"], "d": 3}
    rel = _reroot({"p": "runs/.m.partial-17/x"}, "m", Path("runs/.m.partial-9"))
    assert rel == {"p": "runs/.m.partial-9/x"}
    # inside a message or a command line: every path, and nothing around them
    text = ("litert on /x/runs/.m.partial-3/export/a.tflite: bad; see "
            "'/x/runs/.m.partial-3/validate/log' --out=runs/.m.partial-3/v")
    assert _reroot(text, "m", Path("runs/.m.partial-9")) == (
        f"litert on {Path('runs/.m.partial-9').absolute()}/export/a.tflite: bad; see "
        f"'{Path('runs/.m.partial-9').absolute()}/validate/log' --out=runs/.m.partial-9/v")


def test_quantize_stage_loads_back_with_the_same_int8_weights_and_outputs(tiny_run, tmp_path):
    from tinyshare.pipeline.reload import load_quantized

    q = tiny_run.quantized
    loaded = load_quantized(tiny_run.run_dir / "quantize", tmp_path / "quantize")
    assert loaded.shared.graph is None and loaded.twin is None
    assert [w.name for w in loaded.shared.weights] == [w.name for w in q.shared.weights]
    for a, b in zip(loaded.shared.weights, q.shared.weights, strict=True):
        assert a.values.dtype == np.int8 and np.array_equal(a.values, b.values)
        assert np.array_equal(a.scales, b.scales) and np.array_equal(a.zero_points, b.zero_points)
        assert (a.axis, a.call_sites) == (b.axis, b.call_sites)
    assert (loaded.shared.input_scale, loaded.shared.input_zero_point,
            loaded.shared.output_scale, loaded.shared.output_zero_point) == (
        q.shared.input_scale, q.shared.input_zero_point, q.shared.output_scale,
        q.shared.output_zero_point)
    assert np.array_equal(loaded.int8_test_outputs, q.int8_test_outputs)
    assert loaded.int8_test_outputs.shape == (len(q.int8_test_outputs), 10)
    assert loaded.int8_test_accuracy == q.int8_test_accuracy
    from tinyshare.errors import QuantizationError

    with pytest.raises(QuantizationError, match="without its PT2E graph"):
        loaded.shared.run(np.zeros((1, 1, 8, 8), np.float32))


def test_validate_stage_loads_back_equal_with_its_paths_in_the_new_run(tiny_run, tmp_path):
    from tinyshare.artifacts.files import _jsonable
    from tinyshare.pipeline.reload import load_exported, load_validation

    name = tiny_run.run_dir.name
    root = tmp_path / f".{name}.partial-1"
    exported = load_exported(tiny_run.run_dir / "export", root / "export", name)
    assert exported.lut is None
    assert exported.tflite_int8.read_bytes() == (
        tiny_run.run_dir / "export" / "model_int8.tflite").read_bytes()
    v = load_validation(tiny_run.run_dir / "validate", root / "validate", name)
    assert v.checks.keys() == tiny_run.validation.checks.keys()
    assert v.arena == tiny_run.validation.arena
    assert v.checks["tflm"].agreement == tiny_run.validation.checks["tflm"].agreement
    as_json = json.dumps(_jsonable(v))
    old_root = json.dumps(_jsonable(tiny_run.validation))
    assert as_json.count(".partial-1/") == old_root.count(f".{name}.partial-")
    assert v.vela  # the tiny run has an Ethos-U board: Vela's paths are checked below
    for rep in v.vela.values():
        assert rep.optimized_model_path.is_file()
        assert rep.optimized_model_path.is_relative_to(root.absolute())
    for c in v.codegen.values():
        if c.generated is not None:
            assert c.generated.model_c.is_file()
            assert c.generated.model_c.is_relative_to(root.absolute())


def test_an_up_to_date_run_lists_its_boards_in_the_runs_order(tmp_path):
    from tinyshare.pipeline.stages import Stage, _finished

    for board, verdict in (("z-board", "FAIL"), ("a-board", "PASS")):
        d = tmp_path / "boards" / board
        d.mkdir(parents=True)
        (d / "report.json").write_text(json.dumps({"verdict": verdict}))
    result = _finished(tmp_path, Stage.REPORT, ["z-board", "a-board", "not-run"])
    assert list(result.verdicts.items()) == [("z-board", "FAIL"), ("a-board", "PASS")]
    assert list(result.board_reports) == ["z-board", "a-board"] and result.up_to_date
