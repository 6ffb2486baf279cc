"""Bad input: one line on stderr, exit code 2, and no run folder left behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinyshare.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, body: str = "", name: str = "bad") -> Path:
    p = tmp_path / "cfg.toml"
    p.write_text(f'name = "{name}"\noutput_dir = "{tmp_path / "runs"}"\n{body}')
    return p


def _run(capsys, argv: list[str]) -> tuple[int, str]:
    code = main(argv)
    captured = capsys.readouterr()
    if code == 2:
        assert captured.out == "", f"bad input printed to stdout: {captured.out!r}"
    return code, captured.err.strip()


def _assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith("tinyshare: error: ")
    assert "Traceback" not in err
    for n in needles:
        assert n in err, (n, err)


def _assert_no_run_folder(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    assert not runs.exists() or not any(runs.iterdir()), list(runs.iterdir())


def test_missing_config(tmp_path, capsys):
    code, err = _run(capsys, ["run", str(tmp_path / "nope.toml")])
    _assert_one_line_error(code, err, "nope.toml", "not found")


def test_malformed_toml(tmp_path, capsys):
    p = tmp_path / "broken.toml"
    p.write_text('name = "x"\n[train\nepochs = 3\n')
    code, err = _run(capsys, ["run", str(p)])
    _assert_one_line_error(code, err, "broken.toml", "not valid TOML")


def test_unknown_key(tmp_path, capsys):
    code, err = _run(capsys, ["run", str(_config(tmp_path, "[train]\nepoch = 3\n"))])
    _assert_one_line_error(code, err, "unknown key", "train.epoch")
    _assert_no_run_folder(tmp_path)


def test_wrongly_typed_value(tmp_path, capsys):
    code, err = _run(capsys, ["run", str(_config(tmp_path, '[train]\nepochs = "many"\n'))])
    _assert_one_line_error(code, err, "train.epochs", "many")
    _assert_no_run_folder(tmp_path)


@pytest.mark.parametrize("override,needle", [
    ("train.epochs=abc", "--set 'train.epochs=abc': field 'train.epochs'"),
    ("train.nope=1", "unknown key 'train.nope'"),
    ("quantize.per_channel=maybe", "--set 'quantize.per_channel=maybe'"),
    ("epochs", "expected key=value"),
])
def test_bad_set_override(tmp_path, capsys, override, needle):
    code, err = _run(capsys, ["run", str(_config(tmp_path)), "--set", override])
    _assert_one_line_error(code, err, needle)
    _assert_no_run_folder(tmp_path)


def test_set_override_is_type_checked_and_applied():
    from tinyshare.config import load_config

    cfg = load_config(ROOT / "configs" / "digits.toml", ["train.epochs=5", "model.width=8"])
    assert cfg.train.epochs == 5 and cfg.model.width == 8


def test_unknown_board_lists_known_ones(tmp_path, capsys):
    code, err = _run(capsys, ["run", str(_config(tmp_path)), "--board", "esp32-nope"])
    _assert_one_line_error(code, err, "esp32-nope", "rpi4b", "stm32f746g-disco",
                           "nano33-ble-sense")
    _assert_no_run_folder(tmp_path)


def test_unknown_stage(tmp_path, capsys):
    code, err = _run(capsys, ["run", str(_config(tmp_path)), "--until", "flash"])
    _assert_one_line_error(code, err, "--until", "export")


@pytest.mark.parametrize("arrays,needle", [
    ({"x": np.zeros((40, 1, 8, 8), np.float64), "y": np.zeros(40, np.int64)}, "float32"),
    ({"x": np.zeros((40, 8, 8), np.float32), "y": np.zeros(40, np.int64)}, "(N, C, H, W)"),
    ({"x": np.zeros((40, 1, 8, 8), np.float32), "y": np.zeros(40, np.int32)}, "int64"),
    ({"x": np.zeros((40, 1, 8, 8), np.float32), "y": np.zeros(39, np.int64)}, "40 samples"),
    ({"x": np.zeros((40, 1, 8, 8), np.float32)}, "missing array"),
    ({"x": np.array([object()] * 40, dtype=object), "y": np.zeros(40, np.int64)}, "pickled"),
], ids=["x-float64", "x-3d", "y-int32", "n-mismatch", "no-y", "object-array"])
def test_bad_npz(tmp_path, capsys, arrays, needle):
    npz = tmp_path / "data.npz"
    np.savez(npz, **arrays)
    cfg = _config(tmp_path, f'[data]\nsource = "npz"\npath = "{npz}"\n')
    code, err = _run(capsys, ["run", str(cfg)])
    _assert_one_line_error(code, err, "data.npz", needle)
    _assert_no_run_folder(tmp_path)


def test_good_npz_loads(tmp_path):
    from tinyshare.config import DataConfig
    from tinyshare.data import load_splits

    rng = np.random.default_rng(0)
    npz = tmp_path / "ok.npz"
    np.savez(npz, x=rng.random((60, 2, 6, 6), dtype=np.float32),
             y=np.repeat(np.arange(3), 20).astype(np.int64))
    s = load_splits(DataConfig(source="npz", path=str(npz), calib_samples=8), seed=0)
    assert s.input_shape == (2, 6, 6) and s.num_classes == 3
    assert sum(s.sizes()[k] for k in ("train", "val", "test")) == 60
    assert s.sizes()["calib"] == 8


def test_exit_code_from_a_real_process(tmp_path):
    """The console entry point itself exits 2 with one line (no traceback)."""
    proc = subprocess.run([sys.executable, "-m", "tinyshare", "boards", "show", "nope"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    from tinyshare.targets.board_registry import list_boards

    known = ", ".join(b.name for b in list_boards())
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"tinyshare: error: unknown board 'nope'; known: {known}"]


def test_until_data_writes_only_the_data_stage(tmp_path, capsys):
    code = main(["run", str(_config(tmp_path, name="early")), "--until", "data"])
    assert code == 0
    run_dir = tmp_path / "runs" / "early"
    assert sorted(p.name for p in run_dir.iterdir()) == ["data", "manifest.json"]
    assert "Run folder (stopped after data): " in capsys.readouterr().out


def test_class_too_small_to_split(tmp_path, capsys):
    npz = tmp_path / "tiny_class.npz"
    y = np.array([0] * 30 + [1] * 30 + [2], dtype=np.int64)
    np.savez(npz, x=np.zeros((len(y), 1, 4, 4), np.float32), y=y)
    cfg = _config(tmp_path, f'[data]\nsource = "npz"\npath = "{npz}"\n')
    code, err = _run(capsys, ["run", str(cfg)])
    _assert_one_line_error(code, err, "tiny_class.npz", "class 2 has 1")
    _assert_no_run_folder(tmp_path)


def test_negative_seed(tmp_path, capsys):
    code, err = _run(capsys, ["run", str(_config(tmp_path, "seed = -1\n"))])
    _assert_one_line_error(code, err, "seed")


@pytest.mark.parametrize("body,needles", [
    ('[quantize.layers."blocks.nope"]\nper_channel = false\n',
     ("quantize.layers: 'blocks.nope' is not a module with weights", "blocks.block.dw")),
    ('[quantize]\nmethod = "qta"\n', ("quantize.method", "qta")),
    ("[quantize.qat]\nepochs = 0\n", ("quantize.qat.epochs",)),
])
def test_bad_quantize_settings(tmp_path, capsys, body, needles):
    code, err = _run(capsys, ["run", str(_config(tmp_path, body))])
    _assert_one_line_error(code, err, *needles)
    _assert_no_run_folder(tmp_path)


def test_cluster_with_qat_is_refused_before_anything_runs(tmp_path, capsys):
    body = '[quantize]\nmethod = "qat"\n\n[cluster]\nk = 16\n'
    code, err = _run(capsys, ["run", str(_config(tmp_path, body))])
    _assert_one_line_error(code, err, '[cluster] with quantize.method = "qat"',
                           "would break the codebook")
    assert "got {" not in err  # the message, not the whole config echoed
    _assert_no_run_folder(tmp_path)


def test_cluster_that_clusters_nothing_is_refused(tmp_path, capsys):
    body = "[model]\nwidth = 4\n\n[cluster]\nk = 16\nmin_elements = 100000\n"
    code, err = _run(capsys, ["run", str(_config(tmp_path, body))])
    _assert_one_line_error(code, err, "cluster.min_elements = 100000 leaves no weight",
                           "'digits_cnn'", "largest weight has")
    _assert_no_run_folder(tmp_path)
