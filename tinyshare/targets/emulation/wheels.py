"""Install a runtime's pinned foreign-architecture wheels into a site dir, without running them.

pip (the venv's own, ``sys.executable -m pip``) first downloads the wheels for the
guest's platform tags, so each wheel's sha256 can go into the manifest, then installs
exactly those files with ``--target``. ``--no-compile``: no host bytecode in the image.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from tinyshare.targets._proc import run
from tinyshare.targets.emulation.apt import sha256_file
from tinyshare.targets.emulation.spec import WheelSet

log = logging.getLogger(__name__)

PIP_TIMEOUT_S = 900


@dataclass(frozen=True)
class WheelFile:
    """One installed wheel.

    Attributes:
        file: the wheel's file name, e.g. ``"numpy-2.4.6-cp311-...aarch64.whl"``.
        sha256: hex digest of the wheel file.
        size_bytes: size of the wheel file.
    """

    file: str
    sha256: str
    size_bytes: int


def _target_args(ws: WheelSet, python: str) -> list[str]:
    args = ["--only-binary=:all:", "--python-version", python, "--implementation", "cp"]
    for tag in ws.platforms:
        args += ["--platform", tag]
    return args


def install_wheel_set(ws: WheelSet, site_dir: Path, download_dir: Path, python: str) -> list[WheelFile]:
    """Download ``ws``'s wheels into ``download_dir`` and install them into ``site_dir``.

    Args:
        ws: the wheel set.
        site_dir: the runtime's site dir (created; must not hold another set).
        download_dir: scratch folder for the wheel files.
        python: the guest's Python version, e.g. ``"3.11"``.

    Returns:
        The wheels installed, sorted by file name.

    Raises:
        RuntimeUnavailableError: pip failed (no wheel for the platform, network down, ...);
            the message quotes pip's last lines.
    """
    pip = [sys.executable, "-m", "pip"]
    target = _target_args(ws, python)
    deps = ["--no-deps"] if ws.no_deps else []
    download_dir.mkdir(parents=True, exist_ok=True)
    run([*pip, "download", "--quiet", "--dest", download_dir, *target, *deps, *ws.requirements],
        timeout_s=PIP_TIMEOUT_S, what=f"pip download for {ws.name} ({', '.join(ws.requirements)})")
    wheels = sorted(download_dir.glob("*.whl"))
    run([*pip, "install", "--quiet", "--no-index", "--no-deps", "--no-compile", "--target", site_dir,
         *target, *wheels], timeout_s=PIP_TIMEOUT_S, what=f"pip install --target for {ws.name}")
    return [WheelFile(w.name, sha256_file(w), w.stat().st_size) for w in wheels]
