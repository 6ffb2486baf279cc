"""One run at a time per run folder (``runs/.<name>.lock``, ``tinyshare.pipeline.run_lock``).

A separate Python process takes the lock exactly as ``run()`` does and sleeps: a second
``run()`` into the same folder raises ``RunLockedError`` naming that process's PID and host,
and ``tinyshare run`` exits 2 with that one line; a run with another name goes on. A holder
killed with SIGKILL leaves its lock file behind; the next run takes it over and says so.
Runs stop after the DATA stage (about a second).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tinyshare.errors import RunLockedError
from tinyshare.pipeline.run_lock import lock_path, read_owner, run_lock

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "digits_tiny.toml"

HOLDER = """
import sys, time
from pathlib import Path
from tinyshare.pipeline.run_lock import run_lock
with run_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(300)
"""


@pytest.fixture
def holder():
    """``start(run_dir)``: a process that holds ``run_dir``'s lock until the test ends."""
    procs: list[subprocess.Popen] = []

    def start(run_dir: Path) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], cwd=ROOT,
                                stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "locked"
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def _cfg(out: Path, name: str = "digits-tiny"):
    from tinyshare.config import load_config

    return load_config(CONFIG, [f'output_dir="{out}"', f'name="{name}"'])


def _data_run(cfg):
    from tinyshare.pipeline.stages import Stage, run

    return run(cfg, until=Stage.DATA)


def test_a_second_run_into_the_same_folder_is_refused_with_the_holders_pid(
        tmp_path, holder, capsys):
    from tinyshare.cli import main

    out = tmp_path / "runs"
    cfg = _cfg(out)
    proc = holder(cfg.run_dir)
    with pytest.raises(RunLockedError) as err:
        _data_run(cfg)
    msg = str(err.value)
    assert "\n" not in msg
    assert f"PID {proc.pid} on host {socket.gethostname()}" in msg
    assert str(cfg.run_dir) in msg and "--set name=" in msg
    assert not cfg.run_dir.exists() and not list(out.glob(".*partial*"))
    assert read_owner(lock_path(cfg.run_dir)).pid == proc.pid  # the holder's file untouched

    code = main(["run", str(CONFIG), "--until", "data", "--set", f'output_dir="{out}"'])
    err_text = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err_text.splitlines()) == 1 and err_text.startswith("tinyshare: error: ")
    assert f"PID {proc.pid}" in err_text and "another run is writing" in err_text
    assert not cfg.run_dir.exists()


def test_a_run_with_another_name_goes_on_while_one_is_held(tmp_path, holder):
    out = tmp_path / "runs"
    proc = holder(out / "a")
    result = _data_run(_cfg(out, "b"))
    assert (result.run_dir / "data" / "manifest.json").is_file()
    assert not lock_path(out / "b").exists()  # removed when the run ended
    assert read_owner(lock_path(out / "a")).pid == proc.pid


def test_a_lock_left_by_a_killed_run_is_taken_over_with_a_log_line(tmp_path, holder, caplog):
    out = tmp_path / "runs"
    cfg = _cfg(out)
    proc = holder(cfg.run_dir)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    lock = lock_path(cfg.run_dir)
    assert read_owner(lock).pid == proc.pid  # SIGKILL: no clean-up ran, the file stays
    with caplog.at_level(logging.WARNING, logger="tinyshare.pipeline.run_lock"):
        result = _data_run(cfg)
    assert (result.run_dir / "data" / "manifest.json").is_file()
    (line,) = [r.getMessage() for r in caplog.records if "stale lock" in r.getMessage()]
    assert f"PID {proc.pid} on host {socket.gethostname()}" in line
    assert "is no longer running" in line
    assert not lock.exists()


def test_lock_file_records_the_owner_and_a_nested_lock_is_refused(tmp_path):
    run_dir = tmp_path / "runs" / "x"
    with run_lock(run_dir) as path:
        assert path == tmp_path / "runs" / ".x.lock"
        data = json.loads(path.read_text())
        assert data["pid"] == os.getpid() and data["host"] == socket.gethostname()
        assert data["started_utc"].endswith("+00:00")
        with pytest.raises(RunLockedError, match=f"PID {os.getpid()} "):
            with run_lock(run_dir):
                pass  # pragma: no cover
    assert not path.exists()
    path.write_text("")  # an empty or garbled file is nobody's lock: taken silently
    with run_lock(run_dir):
        assert read_owner(path).pid == os.getpid()
    assert not path.exists() and not run_dir.exists()


def test_a_waiter_never_ends_up_holding_a_removed_lock_file(tmp_path):
    """The holder removes the file on release; a waiter that had opened it must lock the
    file now at the path, else a third process could lock a new file alongside it."""
    import threading

    from tinyshare.artifacts.locks import _same_file, exclusive_lock

    path = tmp_path / ".x.lock"
    seen: list[bool] = []

    def busy():
        return RunLockedError("busy")

    def wait_then_hold():
        with exclusive_lock(path, timeout_s=10, busy=busy, remove=True) as f:
            seen.append(_same_file(f, path))

    with exclusive_lock(path, timeout_s=0, busy=busy, remove=True):
        waiter = threading.Thread(target=wait_then_hold)
        waiter.start()
        waiter.join(0.5)  # the waiter has opened the file and polls its lock
        assert waiter.is_alive()
    waiter.join(10)
    assert seen == [True] and not path.exists()
