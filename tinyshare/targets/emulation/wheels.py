"""Install a runtime's pinned foreign-architecture wheels into a site dir, without running them.

pip (the venv's own, ``sys.executable -m pip``) first downloads the wheels for the
guest's platform tags, so each wheel's sha256 can go into the manifest, then installs
exactly those files with ``--target``. ``--no-compile``: no host bytecode in the image.
Before pip sees a wheel, its members are checked (``check_wheel``): a member with an
absolute path, a ``..`` component or a symlink (a zip entry with the Unix link mode) is
refused, so nothing can land outside the site dir.
"""

from __future__ import annotations

import logging
import stat
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tinyshare.errors import RuntimeUnavailableError
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


def check_wheel(wheel: Path) -> None:
    """Refuse a wheel whose members could escape the folder it is installed into.

    Raises:
        RuntimeUnavailableError: not a readable zip, or a member with an absolute path, a
            ``..`` component, a drive or backslash path, or a symlink (one line naming the
            wheel and the member).
    """
    try:
        with zipfile.ZipFile(wheel) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise RuntimeUnavailableError(f"{wheel.name}: not a readable wheel ({exc})") from None
    for info in infos:
        name = info.filename
        path = PurePosixPath(name)
        why = ("has an absolute path" if path.is_absolute() or name.startswith("\\")
               else "has a '..' path component" if ".." in path.parts
               else "has a Windows drive or backslash" if ":" in name or "\\" in name
               else "is a symlink" if stat.S_ISLNK(info.external_attr >> 16)
               else None)
        if why is not None:
            raise RuntimeUnavailableError(
                f"refusing {wheel.name}: member {name!r} {why} and could be written outside "
                "the install folder")


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
            the message quotes pip's last lines; or a wheel has a member that could escape
            ``site_dir`` (``check_wheel``).
    """
    pip = [sys.executable, "-m", "pip"]
    target = _target_args(ws, python)
    deps = ["--no-deps"] if ws.no_deps else []
    download_dir.mkdir(parents=True, exist_ok=True)
    run([*pip, "download", "--quiet", "--dest", download_dir, *target, *deps, *ws.requirements],
        timeout_s=PIP_TIMEOUT_S, what=f"pip download for {ws.name} ({', '.join(ws.requirements)})")
    wheels = sorted(download_dir.glob("*.whl"))
    for wheel in wheels:
        check_wheel(wheel)
    run([*pip, "install", "--quiet", "--no-index", "--no-deps", "--no-compile", "--target", site_dir,
         *target, *wheels], timeout_s=PIP_TIMEOUT_S, what=f"pip install --target for {ws.name}")
    return [WheelFile(w.name, sha256_file(w), w.stat().st_size) for w in wheels]
