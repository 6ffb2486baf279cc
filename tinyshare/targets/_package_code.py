"""The code of a Linux board's runtime: the size of its installed Python package.

A Linux board runs LiteRT (``ai_edge_litert``), onnxruntime or tflite-runtime from the
package its wheel installs; the flash it takes is that package's files. What is counted
(``linux_runtime_code_bytes``): the apparent sizes of the regular files under the
package folder whose names end in ``.so`` or ``.so.<N>[.<N>...]`` (shared libraries,
extension modules) or ``.py`` (Python sources), hard links once, symlinks not followed.
Not counted: bytecode caches, type stubs, data files, the ``*.dist-info`` folder, and
the dependencies the wheel pulls in (numpy, flatbuffers, protobuf, ...), which live in
their own folders. Everything the wheel installs is counted, including optional plugins
a board may never load (LiteRT's accelerator and vendor compiler plugins).

The package is found on the host (``host_runtime_package_dir``: the host's x86_64 wheel,
so its size only stands in for the board's) or in a built device image
(``image_runtime_package_dir``: the ARM wheel the board installs; nothing is built).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from tinyshare.errors import BoardError, RuntimeUnavailableError

__all__ = ["LinuxRuntimeCode", "host_runtime_package_dir", "image_runtime_package_dir",
           "linux_runtime_code", "linux_runtime_code_bytes"]

# runtime name (as RUNTIMES spells it) -> (distribution, top-level package)
_LINUX_PACKAGES = {
    "litert": ("ai-edge-litert", "ai_edge_litert"),
    "onnxruntime": ("onnxruntime", "onnxruntime"),
    "tflite-runtime": ("tflite-runtime", "tflite_runtime"),
}
_SHARED_LIBRARY_RE = re.compile(r"\.so(\.\d+)*$")
_ARCH_MACHINE = {"arm64": "aarch64", "armhf": "armv7l"}
_COUNTED = ("sum of the sizes of the shared libraries (*.so, *.so.N) and Python sources (*.py) under "
            "{dir} (hard links once, symlinks not followed; bytecode caches, data files, dist-info and "
            "dependencies such as numpy not counted)")


@dataclass(frozen=True)
class LinuxRuntimeCode:
    """The installed size of a Linux runtime's package.

    Attributes:
        runtime: runtime name, e.g. ``"litert"``.
        package_dir: the package folder measured.
        code_bytes: ``shared_library_bytes + python_bytes``.
        shared_library_bytes: bytes of ``*.so`` / ``*.so.N`` files.
        python_bytes: bytes of ``*.py`` files.
        machine: the architecture the wheel was built for, e.g. ``"x86_64"``, ``"aarch64"``.
        wheel: the wheel it came from (file name, or distribution version and tag).
        method: what was counted, where, and whether it is the board's own wheel.
    """

    runtime: str
    package_dir: Path
    code_bytes: int
    shared_library_bytes: int
    python_bytes: int
    machine: str
    wheel: str
    method: str


def _sizes(package_dir: Path) -> tuple[int, int]:
    """(shared-library bytes, Python-source bytes) under ``package_dir``."""
    if not package_dir.is_dir():
        raise RuntimeUnavailableError(f"runtime package folder {package_dir} does not exist")
    seen: set[tuple[int, int]] = set()
    libs = py = 0
    for folder, _, files in os.walk(package_dir):
        for name in files:
            st = os.lstat(os.path.join(folder, name))
            if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            if _SHARED_LIBRARY_RE.search(name):
                libs += st.st_size
            elif name.endswith(".py"):
                py += st.st_size
    return libs, py


def linux_runtime_code_bytes(package_dir: str | Path) -> int:
    """Bytes of code of an installed runtime package (see the module docstring for what counts).

    Args:
        package_dir: the package folder, e.g. ``site-packages/ai_edge_litert``.

    Returns:
        Shared-library plus Python-source bytes under ``package_dir``.

    Raises:
        RuntimeUnavailableError: ``package_dir`` is not a folder.
    """
    return sum(_sizes(Path(package_dir)))


def _package(runtime: str) -> tuple[str, str]:
    if runtime == "tflm":
        raise BoardError("tflm is linked into firmware, not installed as a package; "
                         "use tflm_code_estimate for its code size")
    if runtime not in _LINUX_PACKAGES:
        raise BoardError(f"no Linux runtime package is known for {runtime!r}; known: {', '.join(_LINUX_PACKAGES)}")
    return _LINUX_PACKAGES[runtime]


def host_runtime_package_dir(runtime: str) -> Path | None:
    """The host's installed package folder of a Linux runtime (found without importing it).

    Args:
        runtime: ``"litert"`` (``ai_edge_litert``), ``"onnxruntime"`` or ``"tflite-runtime"``.

    Returns:
        The folder, or None when the package is not installed on the host. tflite-runtime
        never is in tinyshare's environment: its 2.14 wheels need numpy<2, and the host run
        stands in LiteRT's builtin kernels for it (see the runtime table); its size is
        available from a device image instead (``image_runtime_package_dir``).

    Raises:
        BoardError: an unknown runtime, or ``"tflm"`` (linked into firmware, no package).
    """
    _, top = _package(runtime)
    spec = importlib.util.find_spec(top)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(spec.submodule_search_locations[0])


def _manifest(image_root: Path) -> dict:
    if not (image_root / "COMPLETE").is_file():
        raise RuntimeUnavailableError(f"{image_root} is not a complete device image (no COMPLETE marker)")
    try:
        return json.loads((image_root / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise RuntimeUnavailableError(f"{image_root}/manifest.json is missing or unreadable: {exc}") from None


def image_runtime_package_dir(image_root: str | Path, runtime: str) -> Path | None:
    """A runtime's package folder inside a built device image, read from its manifest.

    Args:
        image_root: a device image folder, ``<cache>/<arch>-<key>`` (e.g. ``DeviceImage.root``,
            or ``default_cache_dir() / image_spec_for(...).name``); nothing is built.
        runtime: ``"litert"``, ``"onnxruntime"`` or ``"tflite-runtime"``.

    Returns:
        ``<image>/site/<runtime>/<package>``, or None when the image holds no such runtime.

    Raises:
        BoardError: an unknown runtime, or ``"tflm"``.
        RuntimeUnavailableError: the image is incomplete or its manifest unreadable.
    """
    _, top = _package(runtime)
    image_root = Path(image_root)
    names = [ws.get("name") for ws in _manifest(image_root).get("spec", {}).get("runtimes", [])]
    folder = image_root / "site" / runtime / top
    return folder if runtime in names and folder.is_dir() else None


def _normalized(distribution: str) -> str:
    return re.sub(r"[-_.]+", "_", distribution).lower()


def linux_runtime_code(runtime: str, image_root: str | Path | None = None) -> LinuxRuntimeCode | None:
    """The code size of a Linux runtime: its ARM wheel in a device image, else the host's wheel.

    Args:
        runtime: ``"litert"``, ``"onnxruntime"`` or ``"tflite-runtime"``.
        image_root: a built device image holding the board's wheels; None for the host's
            installed package (an x86_64 wheel, labelled so).

    Returns:
        The size and how it was counted, or None when the package is not there (not in the
        image, or not installed on the host: always so for tflite-runtime on the host).

    Raises:
        BoardError: an unknown runtime, or ``"tflm"``.
        RuntimeUnavailableError: the image is incomplete or its manifest unreadable.
    """
    distribution, _ = _package(runtime)
    if image_root is None:
        folder = host_runtime_package_dir(runtime)
        if folder is None:
            return None
        version = importlib.metadata.version(distribution)
        tags = [line.split(":", 1)[1].strip() for line in
                (importlib.metadata.distribution(distribution).read_text("WHEEL") or "").splitlines()
                if line.startswith("Tag:")]
        machine = next((m.group() for t in tags for m in [re.search(r"(x86_64|aarch64|armv7l|i686)$", t)] if m),
                       "unknown")
        wheel = f"{distribution} {version} ({', '.join(tags) or 'tag unknown'})"
        where = (f"the host's {machine} wheel {wheel}; an estimate for the board, whose ARM wheel "
                 "differs in size (not measured on an ARM image)")
    else:
        image_root = Path(image_root)
        folder = image_runtime_package_dir(image_root, runtime)
        if folder is None:
            return None
        manifest = _manifest(image_root)
        arch = manifest.get("spec", {}).get("arch")
        if not arch:
            raise RuntimeUnavailableError(f"{image_root}: the device image manifest has no "
                                          "spec.arch; rebuild it with `tinyshare boards setup`")
        machine = _ARCH_MACHINE.get(arch, arch)
        prefix = _normalized(distribution) + "-"
        files = [w for w in manifest.get("wheels", {}).get(runtime, []) if w["file"].lower().startswith(prefix)]
        wheel = files[0]["file"] if files else distribution
        digest = f", sha256 {files[0]['sha256'][:12]}" if files else ""
        where = (f"the board's {machine} wheel {wheel}{digest} as installed in device image "
                 f"{image_root.name}: the installed size, not what a running process maps")
    libs, py = _sizes(folder)
    return LinuxRuntimeCode(runtime=runtime, package_dir=folder, code_bytes=libs + py, shared_library_bytes=libs,
                            python_bytes=py, machine=machine, wheel=wheel,
                            method=_COUNTED.format(dir=folder) + "; " + where)
