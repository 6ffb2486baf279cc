"""Unpack Debian packages into a sysroot with ``dpkg-deb -x``, refusing members that escape it.

Each package's file list (its data tarball, read with Python's ``tarfile`` from
``dpkg-deb --fsys-tarfile``) is checked before extraction:

* member and hard-link names must be relative and free of ``..``;
* only files, directories, symlinks and hard links (no devices or fifos);
* a symlink's target, read the way the guest reads it (absolute = from the sysroot's
  root), must stay inside the sysroot;
* no member may be written through a symlink: neither one from the same package nor one
  already on disk that leads outside the sysroot.

After extraction, absolute symlinks are rewritten as relative ones. The guest's Python
opens its files by host paths (``sys.prefix`` is ``<sysroot>/usr``), so an absolute link
such as libpython3.11-minimal's ``sitecustomize.py -> /etc/python3.11/sitecustomize.py``
would otherwise read the host's file, and a later package could write through such a
link onto the host.
"""

from __future__ import annotations

import io
import os
import posixpath
import subprocess
import tarfile
from pathlib import Path

from tinyshare.errors import RuntimeUnavailableError
from tinyshare.targets._proc import find_tool, run

EXTRACT_TIMEOUT_S = 120


def _refuse(deb: Path, member: str, why: str) -> RuntimeUnavailableError:
    return RuntimeUnavailableError(f"refusing Debian package {deb.name}: member {member!r} {why}")


def _clean_name(deb: Path, raw: str) -> str:
    name = raw[2:] if raw.startswith("./") else raw
    name = name.rstrip("/")
    if name.startswith("/"):
        raise _refuse(deb, raw, "has an absolute path")
    if ".." in name.split("/"):
        raise _refuse(deb, raw, "has a '..' path component")
    return name


def _link_target(name: str, target: str) -> str:
    """Where a symlink at ``name`` points, as a normalized sysroot-relative path."""
    if target.startswith("/"):
        return posixpath.normpath(target.lstrip("/") or ".")
    return posixpath.normpath(posixpath.join(posixpath.dirname(name), target))


def _escapes(rel: str) -> bool:
    return rel == ".." or rel.startswith("../") or rel.startswith("/")


def _inside(path: Path, root: Path) -> bool:
    real, top = os.path.realpath(path), os.path.realpath(root)
    return real == top or real.startswith(top + os.sep)


def members(deb: Path) -> list[tarfile.TarInfo]:
    """The entries of a package's data tarball, in archive order.

    Raises:
        RuntimeUnavailableError: dpkg-deb is missing or the file is not a readable package.
    """
    data = _fsys_tar(deb)
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            return tar.getmembers()
    except tarfile.TarError as exc:
        raise RuntimeUnavailableError(f"{deb.name}: unreadable data tarball ({exc})") from None


def _fsys_tar(deb: Path) -> bytes:
    argv = [str(find_tool("dpkg-deb")), "--fsys-tarfile", str(deb)]
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=EXTRACT_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise RuntimeUnavailableError(f"reading {deb.name} timed out after {EXTRACT_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        detail = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise RuntimeUnavailableError(f"{deb.name} is not a readable Debian package: {detail[0]}")
    return proc.stdout


def check_members(deb: Path, entries: list[tarfile.TarInfo], sysroot: Path) -> list[tuple[str, str]]:
    """Check a package's entries against the rules in the module docstring.

    Args:
        deb: the package (for messages).
        entries: its data tarball's entries.
        sysroot: the folder it will be unpacked into (its current content is checked too).

    Returns:
        The package's symlinks as (sysroot-relative name, raw target) pairs.

    Raises:
        RuntimeUnavailableError: an entry escapes the sysroot; the message names it.
    """
    links: dict[str, str] = {}
    for entry in entries:
        name = _clean_name(deb, entry.name)
        if not name or name == ".":
            continue
        if not (entry.isdir() or entry.isreg() or entry.issym() or entry.islnk()):
            raise _refuse(deb, entry.name, "is a device, fifo or other special file")
        parts = name.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in links:
                raise _refuse(deb, entry.name, "would be written through a symlink in the same package")
        on_disk = sysroot / posixpath.dirname(name) if entry.issym() else sysroot / name
        if not _inside(on_disk, sysroot):
            raise _refuse(deb, entry.name, "would be written through a symlink that leads outside the sysroot")
        if entry.islnk():
            _clean_name(deb, entry.linkname)
        if entry.issym():
            if _escapes(_link_target(name, entry.linkname)):
                raise _refuse(deb, entry.name, f"is a symlink to {entry.linkname!r}, outside the sysroot")
            links[name] = entry.linkname
    return list(links.items())


def extract_deb(deb: Path, sysroot: Path) -> None:
    """Unpack ``deb`` into ``sysroot`` (``dpkg-deb -x``) after checking every member.

    Raises:
        RuntimeUnavailableError: a member escapes the sysroot (nothing is unpacked), or
            dpkg-deb fails.
    """
    sysroot.mkdir(parents=True, exist_ok=True)
    links = check_members(deb, members(deb), sysroot)
    run([find_tool("dpkg-deb"), "-x", deb, sysroot], timeout_s=EXTRACT_TIMEOUT_S, what=f"dpkg-deb -x {deb.name}")
    for name, target in links:
        link = sysroot / name
        if target.startswith("/"):
            rel = os.path.relpath(sysroot / _link_target(name, target), start=link.parent)
            link.unlink()
            link.symlink_to(rel)
        if not _inside(link, sysroot):
            link.unlink()
            raise _refuse(deb, name, "is a symlink that resolves outside the sysroot")
