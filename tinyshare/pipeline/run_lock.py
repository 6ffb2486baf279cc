"""One run at a time per run folder: the lock file ``runs/.<name>.lock``.

``run()`` holds an exclusive ``flock`` on ``runs/.<name>.lock`` from its first write to
the last (staging folder, rename into ``runs/<name>/``, clean-up), so a second run into the
same folder is refused at once with the holder's PID and host, while runs with other
names go on side by side. The file records who holds it (JSON: ``pid``, ``host``,
``started_utc``) and is removed when the run ends. The kernel drops the ``flock`` when its
process dies, so a lock file left by a killed run (SIGKILL, power loss) is stale: the next
run takes it over and logs whose it was.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tinyshare.artifacts.files import write_errors_as_output_errors
from tinyshare.artifacts.locks import exclusive_lock
from tinyshare.errors import RunLockedError

log = logging.getLogger(__name__)

__all__ = ["LockOwner", "lock_path", "locked_run_dir", "read_owner", "run_lock"]

_READ_RETRIES = 5  # the holder writes its PID just after it takes the lock
_READ_RETRY_S = 0.05


@dataclass(frozen=True)
class LockOwner:
    """Who holds (or held) a run lock.

    Attributes:
        pid: the process id.
        host: the host name it ran on (PIDs are only meaningful there).
        started_utc: when it took the lock, ISO 8601 in UTC.
    """

    pid: int
    host: str
    started_utc: str = ""

    @property
    def on_this_host(self) -> bool:
        return self.host == socket.gethostname()

    def alive(self) -> bool | None:
        """Whether the process still exists: None when it ran on another host."""
        if not self.on_this_host:
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # exists, owned by another user
            return True
        return True

    def describe(self) -> str:
        since = f", since {self.started_utc}" if self.started_utc else ""
        return f"PID {self.pid} on host {self.host}{since}"


def lock_path(run_dir: str | os.PathLike[str]) -> Path:
    """The lock file of ``runs/<name>/``: ``runs/.<name>.lock``."""
    d = Path(run_dir)
    return d.parent / f".{d.name}.lock"


def _parse_owner(text: bytes | str) -> LockOwner | None:
    try:
        data = json.loads(text)
        return LockOwner(int(data["pid"]), str(data["host"]), str(data.get("started_utc", "")))
    except (ValueError, TypeError, KeyError):
        return None


def read_owner(path: str | os.PathLike[str]) -> LockOwner | None:
    """The owner recorded in lock file ``path``; None when it is missing, empty or garbled."""
    for attempt in range(_READ_RETRIES):
        try:
            owner = _parse_owner(Path(path).read_bytes())
        except OSError:
            return None
        if owner is not None or attempt == _READ_RETRIES - 1:
            return owner
        time.sleep(_READ_RETRY_S)
    return None


def _refusal(run_dir: Path, path: Path) -> RunLockedError:
    owner = read_owner(path)
    if owner is None:
        who = f"its lock {path} is held"
    else:
        who = f"held by {owner.describe()}"
        if owner.alive() is False:
            who += " (exited; a process it started still holds the lock)"
    return RunLockedError(
        f"another run is writing {run_dir} ({who}); wait for it to finish, or give this run "
        "another name (--set name=NEW)")


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold ``runs/.<name>.lock`` for the ``with`` block; refuse at once if it is held.

    Creates ``runs/`` if missing. A lock file that nobody holds but that names an owner
    (left by a killed run) is taken over, with a warning naming that owner.

    Args:
        run_dir: the run folder ``runs/<name>/`` (it need not exist).

    Yields:
        The lock file's path.

    Raises:
        RunLockedError: another process (or another ``run()`` in this one) holds the lock;
            the message names its PID and host.
        OSError: ``runs/`` or the lock file cannot be written (read-only, full disk).
    """
    run_dir = Path(run_dir)
    path = lock_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(path, timeout_s=0, busy=lambda: _refusal(run_dir, path),
                        remove=True) as f:
        stale = _parse_owner(f.read())
        if stale is not None:
            state = {False: "is no longer running", None: "ran on another host"}.get(
                stale.alive(), "no longer holds it")
            log.warning("taking over the stale lock %s: its owner, %s, %s", path,
                        stale.describe(), state)
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started_utc": datetime.datetime.now(datetime.timezone.utc)
              .isoformat(timespec="seconds")}
        f.seek(0)
        f.truncate()
        f.write((json.dumps(me) + "\n").encode("utf-8"))
        f.flush()
        yield path


@contextlib.contextmanager
def locked_run_dir(run_dir: str | os.PathLike[str]) -> Iterator[Path]:
    """``run_lock(run_dir)``, with a full disk or a read-only ``runs/`` turned into one line.

    Yields:
        The lock file's path.

    Raises:
        RunLockedError: another run holds the lock (see ``run_lock``).
        OutputWriteError: ``runs/`` is read-only or not writable, or the disk is full,
            anywhere in the ``with`` block (``artifacts.files.output_write_error``).
    """
    run_dir = Path(run_dir)
    with write_errors_as_output_errors(run_dir), run_lock(run_dir) as path:
        yield path
