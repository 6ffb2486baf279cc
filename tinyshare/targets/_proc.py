"""Run host tools (image builds, Vela): argument lists, a timeout each, one-line errors."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

from tinyshare.errors import RuntimeUnavailableError, ToolTimeoutError

log = logging.getLogger(__name__)

_INSTALL_HINT = {
    "qemu-aarch64-static": "apt-get install qemu-user-static",
    "qemu-arm-static": "apt-get install qemu-user-static",
    "apt-get": "device images are built from Debian packages and need a Debian or Ubuntu host",
    "apt-cache": "device images are built from Debian packages and need a Debian or Ubuntu host",
    "dpkg-deb": "apt-get install dpkg",
}


def find_tool(name: str) -> Path:
    """The path of host tool ``name`` on ``PATH``.

    Raises:
        RuntimeUnavailableError: not found; the message says how to install it.
    """
    found = shutil.which(name)
    if found is None:
        hint = _INSTALL_HINT.get(name, f"install {name}")
        verb = "install it: " if hint.startswith("apt-get install") else ""
        raise RuntimeUnavailableError(f"{name} not found on PATH; {verb}{hint}")
    return Path(found)


def last_lines(text: str, n: int = 3) -> str:
    """The last ``n`` non-empty lines of ``text``, joined with `` | ``."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(lines[-n:])


def run(argv: list[str | Path], *, timeout_s: float, what: str, cwd: Path | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (no shell), capturing text output.

    Args:
        argv: the command and its arguments.
        timeout_s: wall-clock limit in seconds.
        what: what the command does, for the error message (e.g. "apt-get update").
        cwd: working directory.
        env: the full environment; None inherits ours.

    Returns:
        The finished process (exit status 0).

    Raises:
        RuntimeUnavailableError: the command failed or could not start; the message names
            ``what`` and quotes the last lines of its stderr.
        ToolTimeoutError: (a ``RuntimeUnavailableError``) it ran past ``timeout_s``.
    """
    args = [str(a) for a in argv]
    log.debug("running %s", args)
    try:
        proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise ToolTimeoutError(f"{what} timed out after {timeout_s:.0f} s") from None
    except OSError as exc:
        raise RuntimeUnavailableError(f"{what} could not start: {exc}") from None
    if proc.returncode != 0:
        detail = last_lines(proc.stderr) or last_lines(proc.stdout) or "no output"
        raise RuntimeUnavailableError(f"{what} failed (exit {proc.returncode}): {detail}")
    return proc


def first_line(argv: list[str | Path], timeout_s: float = 30) -> str:
    """The first line a ``--version`` style command prints, or ``"unknown"``."""
    try:
        out = run(argv, timeout_s=timeout_s, what=str(argv[0])).stdout
    except RuntimeUnavailableError:
        return "unknown"
    return out.strip().splitlines()[0] if out.strip() else "unknown"
