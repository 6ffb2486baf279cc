"""Environment faults while a run writes: a read-only output folder and a full disk.

Each is one line (``OutputWriteError``; exit 2 from the CLI) that says what to do, and
leaves ``runs/<name>/`` as it was: absent, or an earlier run that still verifies, with no
staging folder, temporary file or lock file left behind.

A read-only folder is made with ``chmod`` when the tests run as a normal user; as root
(CI) ``chmod`` does not stop writes, so every write under the folder is made to fail with
``EROFS`` instead. A full disk is ``ENOSPC`` from ``fsync`` in the atomic writer (where a
nearly full disk with delayed allocation reports it), with the temporary file half written.
Runs stop after the DATA stage (about a second).
"""

from __future__ import annotations

import builtins
import errno
import io
import os
import stat
from pathlib import Path

import pytest

from tinyshare.artifacts import atomic_write_bytes
from tinyshare.artifacts.files import write_errors_as_output_errors
from tinyshare.errors import OutputWriteError
from tinyshare.pipeline.verify import verify_run

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "digits_tiny.toml"
IS_ROOT = os.geteuid() == 0


def _cfg(out: Path):
    from tinyshare.config import load_config

    return load_config(CONFIG, [f'output_dir="{out}"'])


def _data_run(cfg):
    from tinyshare.pipeline.stages import Stage, run

    return run(cfg, until=Stage.DATA)


def _under(path, folder: Path) -> bool:
    if isinstance(path, int):
        return False
    p = os.path.abspath(os.fsdecode(os.fspath(path)))
    return p == str(folder) or p.startswith(str(folder) + os.sep)


def _fail(err: int, path) -> None:
    raise OSError(err, os.strerror(err), os.fsdecode(os.fspath(path)))


class _Faults:
    """Fault injection under a folder; ``undo()`` restores everything (also at teardown)."""

    def __init__(self, monkeypatch):
        self._mp = monkeypatch
        self._chmodded: list[Path] = []

    def read_only(self, folder: Path) -> None:
        """``chmod`` ``folder`` read-only, or (as root) make every write under it fail."""
        if not IS_ROOT:
            folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
            self._chmodded.append(folder)
            return
        real_os_open, real_mkdir, real_open = os.open, os.mkdir, builtins.open
        writing = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

        def os_open(path, flags, *args, **kwargs):
            if flags & writing and _under(path, folder):
                _fail(errno.EROFS, path)
            return real_os_open(path, flags, *args, **kwargs)

        def mkdir(path, *args, **kwargs):
            if _under(path, folder):
                _fail(errno.EROFS, path)
            return real_mkdir(path, *args, **kwargs)

        def open_(file, mode="r", *args, **kwargs):
            if set(mode) & set("wax+") and _under(file, folder):
                _fail(errno.EROFS, file)
            return real_open(file, mode, *args, **kwargs)

        self._mp.setattr(os, "open", os_open)
        self._mp.setattr(os, "mkdir", mkdir)
        self._mp.setattr(builtins, "open", open_)
        self._mp.setattr(io, "open", open_)
        self.rename_fails(folder, errno.EROFS)

    def rename_fails(self, folder: Path, err: int) -> None:
        """``os.replace`` / ``os.rename`` of anything under ``folder`` fails with ``err``."""
        for name in ("replace", "rename"):
            real = getattr(os, name)

            def fake(src, dst, *args, _real=real, **kwargs):
                if _under(src, folder) or _under(dst, folder):
                    _fail(err, dst)
                return _real(src, dst, *args, **kwargs)

            self._mp.setattr(os, name, fake)

    def full_disk(self, folder: Path) -> None:
        """``fsync`` of any file under ``folder`` fails with ENOSPC (the data half written)."""
        real = os.fsync

        def fsync(fd):
            if _under(os.readlink(f"/proc/self/fd/{fd}"), folder):
                _fail(errno.ENOSPC, folder)
            return real(fd)

        self._mp.setattr(os, "fsync", fsync)

    def undo(self) -> None:
        self._mp.undo()
        for folder in self._chmodded:
            folder.chmod(0o755)
        self._chmodded.clear()


@pytest.fixture
def faults(monkeypatch):
    f = _Faults(monkeypatch)
    yield f
    f.undo()


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def _assert_left_as_it_was(out: Path, cfg, earlier: dict[str, bytes] | None) -> None:
    left = sorted(p.name for p in out.iterdir()) if out.exists() else []
    expected = [cfg.run_dir.name] if earlier is not None else []
    # the resume engineer's hidden folder of completed stages may be there; nothing else
    assert [n for n in left if not n.endswith(".incomplete")] == expected, left
    assert not list(out.rglob("*.tmp")) and not list(out.rglob("*.partial-*"))
    assert not list(out.glob("*.lock"))
    if earlier is not None:
        assert _snapshot(cfg.run_dir) == earlier
        assert verify_run(cfg.run_dir).ok


def _assert_one_line(msg: str, *needles: str) -> None:
    assert "\n" not in msg and "Traceback" not in msg
    for n in needles:
        assert n in msg, (n, msg)


@pytest.mark.parametrize("earlier_run", [False, True], ids=["empty", "earlier-run"])
def test_read_only_output_folder_is_one_line_and_nothing_changes(
        tmp_path, faults, capsys, earlier_run):
    from tinyshare.cli import main

    out = tmp_path / "runs"
    cfg = _cfg(out)
    earlier = None
    if earlier_run:
        _data_run(cfg)
        earlier = _snapshot(cfg.run_dir)
    else:
        out.mkdir()
    faults.read_only(out)
    with pytest.raises(OutputWriteError) as err:
        _data_run(cfg)
    _assert_one_line(str(err.value), f"make {out} writable", "--set output_dir=",
                     f"{cfg.run_dir} was left as it was")
    assert ("Read-only file system" if IS_ROOT else "Permission denied") in str(err.value)
    code = main(["run", str(CONFIG), "--until", "data", "--set", f'output_dir="{out}"'])
    err_line = capsys.readouterr().err.strip()
    assert code == 2 and len(err_line.splitlines()) == 1
    _assert_one_line(err_line, "tinyshare: error: cannot write", f"make {out} writable")
    faults.undo()
    _assert_left_as_it_was(out, cfg, earlier)


@pytest.mark.parametrize("fault", ["full-disk", "read-only-mid-run"])
def test_a_write_fault_mid_run_keeps_the_earlier_run(tmp_path, faults, capsys, fault):
    """The data stage has written its .npz files into the staging folder when its
    manifest's atomic write fails (ENOSPC at fsync, or EROFS at the rename): the earlier
    run stays, the staging folder and the temporary file are removed."""
    from tinyshare.cli import main

    out = tmp_path / "runs"
    cfg = _cfg(out)
    _data_run(cfg)
    earlier = _snapshot(cfg.run_dir)
    staging = out / f".{cfg.run_dir.name}.partial-{os.getpid()}"
    if fault == "full-disk":
        faults.full_disk(staging)
        needles = ("No space left on device", "free some space", "--set output_dir=")
    else:
        faults.rename_fails(staging, errno.EROFS)
        needles = ("Read-only file system", f"make {out} writable")
    with pytest.raises(OutputWriteError) as err:
        _data_run(cfg)
    _assert_one_line(str(err.value), "cannot write", *needles,
                     f"{cfg.run_dir} was left as it was")
    assert isinstance(err.value.__cause__, OSError)
    # another seed, so that `run` (which resumes by default) has something to write
    code = main(["run", str(CONFIG), "--until", "data", "--set", f'output_dir="{out}"',
                 "--set", "seed=1"])
    err_line = capsys.readouterr().err.strip()
    assert code == 2 and len(err_line.splitlines()) == 1
    _assert_one_line(err_line, "tinyshare: error: cannot write", needles[0])
    faults.undo()
    _assert_left_as_it_was(out, cfg, earlier)


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EROFS])
def test_atomic_write_keeps_the_old_file_and_leaves_no_temp(tmp_path, faults, err):
    target = tmp_path / "report.json"
    target.write_bytes(b"old contents\n")
    if err == errno.ENOSPC:
        faults.full_disk(tmp_path)
    else:
        faults.rename_fails(tmp_path, err)
    with pytest.raises(OSError) as raised:
        atomic_write_bytes(target, b"new contents that do not fit\n" * 100)
    assert raised.value.errno == err
    faults.undo()
    assert target.read_bytes() == b"old contents\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_only_environment_faults_are_translated(tmp_path):
    with pytest.raises(FileNotFoundError):
        with write_errors_as_output_errors(tmp_path / "runs" / "x"):
            (tmp_path / "nope.txt").read_text()
    with pytest.raises(OutputWriteError, match=r"^cannot write /q/f: Disk quota exceeded; free"):
        with write_errors_as_output_errors(tmp_path / "runs" / "x"):
            raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT), "/q/f")
