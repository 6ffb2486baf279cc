"""Build one device image's content into a folder: sysroot, site dirs, cpuinfo, manifest.

Called by ``ensure_image`` on a private temporary folder, under the image's lock; the
caller renames the folder into place. The steps:

1. a private apt tree (``apt.PrivateApt``) fetches the suite's signed index;
2. apt's resolver gives the dependency closure of Python and the runtimes' Debian packages,
   minus dpkg's own tools; each ``.deb`` is downloaded and checked against the index's
   sha256;
3. each package is unpacked with ``dpkg-deb -x`` after its members are checked
   (``debs.extract_deb``), and the alternatives links that maintainer scripts would make
   (``libblas.so.3``) are made;
4. the board-true ``/proc/cpuinfo`` is written;
5. each runtime's wheel set is installed into ``site/<runtime>``;
6. the guest Python starts under qemu with each site dir, imports the runtime and reads
   the cpuinfo back;
7. ``manifest.json``, then the ``COMPLETE`` marker.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import stat
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from tinyshare.errors import RuntimeUnavailableError
from tinyshare.targets._proc import first_line, run
from tinyshare.targets.emulation.apt import PrivateApt, sha256_file
from tinyshare.targets.emulation.cpuinfo import CORES, cpuinfo_text
from tinyshare.targets.emulation.debs import extract_deb
from tinyshare.targets.emulation.device_image import COMPLETE, MANIFEST, DeviceImage
from tinyshare.targets.emulation.spec import ImageSpec
from tinyshare.targets.emulation.wheels import install_wheel_set

log = logging.getLogger(__name__)

MANIFEST_FORMAT = 1
GUEST_CHECK_TIMEOUT_S = 180

# Links update-alternatives makes in the maintainer scripts that ``dpkg -x`` does not run.
_ALTERNATIVES = {
    "libblas3": ("usr/lib/{triplet}/libblas.so.3", "blas/libblas.so.3"),
    "liblapack3": ("usr/lib/{triplet}/liblapack.so.3", "lapack/liblapack.so.3"),
}

_GUEST_CHECK = """\
import sys
with open('/proc/cpuinfo') as f:
    parts = [l.split(':')[1].strip() for l in f if l.startswith('CPU part')]
if {module!r}:
    __import__({module!r})
print(sys.version_info[0], sys.version_info[1], len(parts), parts[0] if parts else '-')
"""


def tree_bytes(path: Path) -> int:
    """Apparent size of the regular files under ``path`` (hard links once, symlinks not followed)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            st = os.lstat(os.path.join(folder, name))
            if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def _make_alternatives(sysroot: Path, triplet: str, packages: set[str]) -> None:
    for pkg, (link, target) in _ALTERNATIVES.items():
        path = sysroot / link.format(triplet=triplet)
        if pkg in packages and not path.exists():
            path.symlink_to(target)


def _guest_check(spec: ImageSpec, root: Path, qemu: Path, runtime: str | None) -> float:
    """Start the guest Python with ``runtime``'s site dir; return the seconds it took."""
    image = DeviceImage.at(root, spec, qemu)
    module = spec.runtime(runtime).import_name if runtime else ""
    script = root / f"guest-check-{runtime or 'python'}.py"
    script.write_text(_GUEST_CHECK.format(module=module))
    argv, env = image.command(runtime, script)
    t0 = time.monotonic()
    try:
        out = run(argv, env=env, timeout_s=GUEST_CHECK_TIMEOUT_S,
                  what=f"the guest Python check for {runtime or 'python'}").stdout.split()
    finally:
        script.unlink()
    want = [*spec.python.split("."), str(spec.cores), f"{CORES.get(spec.cpuinfo_core).part:#05x}"]
    if out != want:
        raise RuntimeUnavailableError(f"the guest Python check for {runtime or 'python'} printed {out}, "
                                      f"expected {want}")
    return time.monotonic() - t0


def _pip_version() -> str:
    import importlib.metadata  # ~15 ms; only a build needs it

    return importlib.metadata.version("pip")


def build_image(spec: ImageSpec, root: Path, qemu: Path, say: Callable[[str], None]) -> None:
    """Build ``spec``'s image into the empty folder ``root`` (layout in ``DeviceImage``).

    Raises:
        RuntimeUnavailableError: a step failed; the message says which.
    """
    t0 = time.monotonic()
    apt = PrivateApt(root / "apt", spec.arch, spec.debian_suite, spec.debian_mirror)
    say(f"fetching the Debian {spec.debian_suite} {spec.arch} package index")
    apt.update()
    packages = apt.resolve(spec.debian_packages)
    say(f"downloading {len(packages)} Debian packages")
    debs = apt.download(packages, root / "debs")
    sysroot = root / "sysroot"
    say(f"unpacking {len(debs)} packages into the sysroot")
    for deb in debs:
        extract_deb(deb, sysroot)
    _make_alternatives(sysroot, spec.triplet, {p.name for p in packages})
    python = sysroot / "usr" / "bin" / f"python{spec.python}"
    if not python.is_file():
        raise RuntimeUnavailableError(f"the sysroot has no {python.relative_to(sysroot)} after unpacking")
    cpuinfo = sysroot / "proc" / "cpuinfo"
    cpuinfo.parent.mkdir(exist_ok=True)
    cpuinfo.write_text(cpuinfo_text(spec.cpuinfo_core, spec.cores, spec.arch))
    wheels = {}
    for ws in spec.runtimes:
        say(f"installing the {ws.name} wheels ({ws.requirements[0]} and {len(ws.requirements) - 1} more)")
        wheels[ws.name] = install_wheel_set(ws, root / "site" / ws.name, root / "wheels" / ws.name, spec.python)
    for scratch in ("apt", "debs", "wheels"):
        shutil.rmtree(root / scratch, ignore_errors=True)
    say("checking the guest Python under qemu")
    checks = {rt or "python": round(_guest_check(spec, root, qemu, rt), 2)
              for rt in ([ws.name for ws in spec.runtimes] or [None])}
    sizes = {"sysroot": tree_bytes(sysroot), "site": {ws.name: tree_bytes(root / "site" / ws.name)
                                                      for ws in spec.runtimes}}
    sizes["total"] = sizes["sysroot"] + sum(sizes["site"].values())
    manifest = {
        "manifest_format": MANIFEST_FORMAT,
        "key": spec.key,
        "spec": spec.to_dict(),
        "built_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "build_s": round(time.monotonic() - t0, 2),
        "debian": {"mirror": spec.debian_mirror, "suite": spec.debian_suite, "arch": spec.arch,
                   "packages": [dataclasses.asdict(p) for p in packages]},
        "wheels": {name: [dataclasses.asdict(w) for w in files] for name, files in wheels.items()},
        "sizes_bytes": sizes,
        "cpuinfo": {"core": spec.cpuinfo_core, "cores": spec.cores, "sha256": sha256_file(cpuinfo)},
        "guest_check_s": checks,
        "tools": {
            "apt": first_line(["apt-get", "--version"]),
            "dpkg-deb": first_line(["dpkg-deb", "--version"]),
            "qemu": first_line([qemu, "--version"]),
            "pip": _pip_version(),
        },
    }
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    (root / COMPLETE).write_text(spec.key + "\n")
    log.info("built device image %s in %.1f s (%d MB)", spec.name, manifest["build_s"], sizes["total"] // 10**6)

