"""``tinyshare verify runs/<name>`` (``tinyshare.pipeline.verify``) on a copy of the shared
tiny run (the session's ``tiny_run`` folder itself is never modified).

A clean copy passes (exit 0); one flipped byte in the int8 .tflite, a deleted board report
and a stray file are each named with their problem (exit 1); a folder that is not a run
folder is a one-line error (exit 2).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tinyshare.cli import main
from tinyshare.errors import RunFolderError
from tinyshare.pipeline.verify import verify_run

MODEL = "export/model_int8.tflite"
REPORT = "boards/stm32f746g-disco/report.json"
STRAY = "export/notes.txt"


@pytest.fixture
def run_copy(tiny_run, tmp_path) -> Path:
    dst = tmp_path / tiny_run.run_dir.name
    shutil.copytree(tiny_run.run_dir, dst)
    return dst


def _flip_byte(run: Path) -> None:
    p = run / MODEL
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x01
    p.write_bytes(bytes(data))


def _delete_report(run: Path) -> None:
    (run / REPORT).unlink()


def _add_stray(run: Path) -> None:
    (run / STRAY).write_text("not part of the run\n")


FAULTS = {
    "flipped-byte": (_flip_byte, MODEL, "differs", ("manifest.json", "export/manifest.json")),
    "deleted-report": (_delete_report, REPORT, "missing", ("manifest.json", "boards/manifest.json")),
    "stray-file": (_add_stray, STRAY, "unlisted", ("manifest.json", "export/manifest.json")),
}


def test_a_clean_copy_passes(run_copy, capsys):
    result = verify_run(run_copy)
    assert result.ok and result.problems == ()
    listed = json.loads((run_copy / "manifest.json").read_text())["files_sha256"]
    assert result.files_checked == len(listed)
    assert {"manifest.json", "export/manifest.json", "data/manifest.json"} <= set(result.manifests)
    assert main(["verify", str(run_copy)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK: all ") and str(run_copy) in out


@pytest.mark.parametrize("fault", FAULTS)
def test_each_change_is_named_with_exit_1(run_copy, fault, capsys):
    change, path, kind, manifests = FAULTS[fault]
    change(run_copy)
    result = verify_run(run_copy)
    assert [(p.path, p.kind, p.manifests) for p in result.problems] == [(path, kind, manifests)]
    assert main(["verify", str(run_copy)]) == 1
    captured = capsys.readouterr()
    assert path in captured.out and kind in captured.out
    assert captured.err.strip() == f"tinyshare: verify: 1 files do not match: {path} ({kind})"


def test_all_changes_at_once_are_each_named(run_copy):
    for change, *_ in FAULTS.values():
        change(run_copy)
    result = verify_run(run_copy)
    assert {(p.path, p.kind) for p in result.problems} == {
        (path, kind) for _, path, kind, _ in FAULTS.values()}
    (differs,) = [p for p in result.problems if p.kind == "differs"]
    assert differs.detail.startswith("sha256 ") and "≠ listed" in differs.detail


def test_a_stage_manifest_that_disagrees_on_size_is_reported(run_copy):
    """A stage manifest edited on its own: the file matches the run manifest, not the
    stage's (and the edited stage manifest no longer matches the run manifest)."""
    m = run_copy / "export" / "manifest.json"
    data = json.loads(m.read_text())
    data["files"]["model_int8.onnx"]["bytes"] += 1
    m.write_text(json.dumps(data))
    problems = {p.path: p for p in verify_run(run_copy).problems}
    assert set(problems) == {"export/model_int8.onnx", "export/manifest.json"}
    onnx = problems["export/model_int8.onnx"]
    assert onnx.kind == "differs" and onnx.manifests == ("export/manifest.json",)
    assert "bytes ≠ listed" in onnx.detail


@pytest.mark.parametrize("what", ["no-manifest", "garbled-manifest", "no-folder"])
def test_a_folder_that_is_not_a_run_folder_exits_2(tmp_path, capsys, what):
    d = tmp_path / "somewhere"
    if what != "no-folder":
        d.mkdir()
        (d / "file.txt").write_text("x")
    if what == "garbled-manifest":
        (d / "manifest.json").write_text("{not json")
    with pytest.raises(RunFolderError, match="is not a run folder"):
        verify_run(d)
    assert main(["verify", str(d)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("tinyshare: error: ")
    assert str(d) in err and "not a run folder" in err
