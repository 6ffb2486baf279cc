"""One exclusive file lock (``fcntl.flock``), shared by the run lock and the image cache.

``flock`` locks belong to an open file and the kernel drops them when the process that
holds them dies, however it dies, so a lock can never outlive its owner. A lock file may be
removed when it is released (``remove=True``); a waiter that then wins the lock on the
removed file notices (its open file is no longer the one at ``path``) and starts again on
the new file, so two processes can never both believe they hold it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

POLL_S = 0.2


def _same_file(f: BinaryIO, path: Path) -> bool:
    """Whether the open file ``f`` is still the file at ``path`` (not removed or replaced)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(f.fileno())
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


@contextlib.contextmanager
def exclusive_lock(
    path: str | os.PathLike[str],
    *,
    timeout_s: float,
    busy: Callable[[], BaseException],
    remove: bool = False,
) -> Iterator[BinaryIO]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the ``with`` block.

    The lock is per open file, so two threads of one process exclude each other too.

    Args:
        path: the lock file; its folder must exist.
        timeout_s: how long to wait for another holder, in seconds; 0 tries once.
        busy: makes the error raised when the lock is still held after ``timeout_s``
            (called while the other holder still has it, so it may read the file).
        remove: delete the lock file on release (before unlocking).

    Yields:
        The open lock file (read/write, binary), e.g. to record who holds it.

    Raises:
        BaseException: whatever ``busy()`` returns, when another process holds the lock.
        OSError: the lock file cannot be created or opened (read-only folder, full disk).
    """
    p = Path(path)
    deadline = time.monotonic() + timeout_s
    while True:
        fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        f = os.fdopen(fd, "r+b")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            if time.monotonic() >= deadline:
                raise busy() from None
            time.sleep(POLL_S)
            continue
        except BaseException:
            f.close()
            raise
        if _same_file(f, p):
            break
        f.close()  # the holder removed the file as we won it: lock the new one
    try:
        yield f
    finally:
        try:
            if remove and _same_file(f, p):
                p.unlink()
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
            f.close()
