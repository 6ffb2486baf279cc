"""A built device image on disk (``DeviceImage``) and the qemu command line that runs its Python."""

from __future__ import annotations

import functools
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tinyshare.errors import BoardError, RuntimeUnavailableError
from tinyshare.targets._proc import last_lines
from tinyshare.targets.emulation.cpuinfo import qemu_cpu
from tinyshare.targets.emulation.spec import ImageSpec

COMPLETE = "COMPLETE"
MANIFEST = "manifest.json"


@functools.lru_cache(maxsize=8)
def qemu_cpu_models(qemu: Path) -> frozenset[str]:
    """The ``-cpu`` models a qemu-user binary offers (``qemu -cpu help``), cached per binary.

    Raises:
        RuntimeUnavailableError: the binary does not run.
    """
    # qemu 7.2 exits with status 1 after printing the list, so the status is not checked.
    try:
        proc = subprocess.run([str(qemu), "-cpu", "help"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeUnavailableError(f"{qemu} does not run: {exc}") from None
    lines = proc.stdout.splitlines()
    if not lines or not lines[0].startswith("Available CPUs"):
        raise RuntimeUnavailableError(f"{qemu} -cpu help printed no cpu list: {last_lines(proc.stderr)}")
    return frozenset(line.split()[0] for line in lines[1:] if line.strip())


@dataclass(frozen=True)
class DeviceImage:
    """A device image folder, ``<cache>/<arch>-<key>/``.

    Layout: ``sysroot/`` (Debian files, ``proc/cpuinfo``), ``site/<runtime>/`` (one per wheel
    set), ``manifest.json`` and ``COMPLETE`` (written last).

    Attributes:
        spec: what the image holds.
        root: the image folder.
        sysroot: the Debian root that qemu's ``-L`` points at.
        site_dirs: runtime name -> its site dir (the guest's ``PYTHONPATH``).
        qemu: the host's qemu-user binary for the image's architecture.
        python: the guest's ``python3.X`` binary, as a host path inside the sysroot (qemu
            loads the program by host path; ``-L`` only redirects what the guest opens).
        manifest: ``manifest.json``.
        cpuinfo: the sysroot's ``proc/cpuinfo``, which the guest reads as ``/proc/cpuinfo``.
    """

    spec: ImageSpec
    root: Path
    sysroot: Path
    site_dirs: dict[str, Path] = field(hash=False)
    qemu: Path
    python: Path
    manifest: Path
    cpuinfo: Path

    @classmethod
    def at(cls, root: Path, spec: ImageSpec, qemu: Path) -> DeviceImage:
        """The image of ``spec`` laid out under ``root`` (nothing is checked or built)."""
        root = Path(root)
        sysroot = root / "sysroot"
        return cls(spec=spec, root=root, sysroot=sysroot,
                   site_dirs={ws.name: root / "site" / ws.name for ws in spec.runtimes},
                   qemu=Path(qemu), python=sysroot / "usr" / "bin" / f"python{spec.python}",
                   manifest=root / MANIFEST, cpuinfo=sysroot / "proc" / "cpuinfo")

    def command(self, runtime: str | None, script: str | Path, args: tuple[str, ...] | list[str] = (),
                core: str | None = None) -> tuple[list[str], dict[str, str]]:
        """The argv and environment that run ``script`` with the guest Python under qemu.

        ``qemu-<arch>-static -cpu <model> -L <sysroot> <sysroot>/usr/bin/python3.11 script args...``,
        with the board's core model (never ``-cpu max``; ``cpuinfo.qemu_cpu`` picks it).
        Paths the guest opens are looked up in the sysroot first, then on the host, so
        host paths in ``script`` and ``args`` work unless the sysroot holds the same path.

        Args:
            runtime: the wheel set on ``PYTHONPATH``, e.g. ``"litert"``; None for none.
            script: the script to run (a host path), or ``"-c"`` with the code in ``args``.
            args: the script's arguments.
            core: the board's core; None or the image's ``cpuinfo_core``.

        Returns:
            (argv, env): env is the whole environment for the process (a clean one: PATH,
            locale, HOME, TMPDIR, and PYTHONPATH / PYTHONNOUSERSITE / PYTHONDONTWRITEBYTECODE),
            not additions to ``os.environ``.

        Raises:
            BoardError: unknown runtime, or ``core`` is not the core the image's cpuinfo shows.
            RuntimeUnavailableError: the installed qemu lacks a model for the core.
        """
        core = core or self.spec.cpuinfo_core
        if core != self.spec.cpuinfo_core:
            raise BoardError(f"this image's /proc/cpuinfo shows {self.spec.cpuinfo_core}, not {core}; "
                             f"ask ensure_image for a {core} image")
        model = qemu_cpu(core, self.spec.arch, qemu_cpu_models(self.qemu))
        argv = [str(self.qemu), "-cpu", model, "-L", str(self.sysroot), str(self.python), str(script),
                *(str(a) for a in args)]
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
               "HOME": os.environ.get("HOME", "/"), "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1"}
        if "TMPDIR" in os.environ:
            env["TMPDIR"] = os.environ["TMPDIR"]
        if runtime is not None:
            self.spec.runtime(runtime)
            env["PYTHONPATH"] = str(self.site_dirs[runtime])
        return argv, env
