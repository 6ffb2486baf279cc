"""What a device image holds (``ImageSpec``), and the pinned runtime wheel sets per architecture.

An image is a Debian sysroot of the board's architecture with Python, one site dir per
runtime (``WheelSet``), and a board-true ``/proc/cpuinfo``. ``ImageSpec.key`` hashes the
whole spec, so a changed pin, core or core count names a new image.

Wheel sets pin their full dependency closure and install with ``--no-deps``, so an image
built today and one built next year hold the same wheels. The closures were resolved
with pip for cp311 on manylinux aarch64 / armv7l (2026-11).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from tinyshare.errors import BoardError
from tinyshare.targets.emulation.cpuinfo import ARCHES, CORES

# Bump when the build recipe changes what lands in an image (package exclusions, layout).
IMAGE_FORMAT = 1
DEBIAN_MIRROR = "http://deb.debian.org/debian"
# glibc minor version of each Debian suite: the newest manylinux_2_N tag its sysroot runs.
_GLIBC_MINOR = {"bookworm": 36}
_MACHINE = {"arm64": "aarch64", "armhf": "armv7l"}
_TRIPLET = {"arm64": "aarch64-linux-gnu", "armhf": "arm-linux-gnueabihf"}
_QEMU = {"arm64": "qemu-aarch64-static", "armhf": "qemu-arm-static"}
_ARCH_ALIASES = {"aarch64": "arm64", "arm": "armhf"}
_PIN_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9.+!_-]+")


@dataclass(frozen=True)
class WheelSet:
    """One runtime's wheels, installed together into their own site dir.

    Attributes:
        name: runtime name as the runtime registry spells it, e.g. ``"litert"``.
        requirements: pinned requirements (``name==version``), e.g.
            ``("onnxruntime==1.32.0", "numpy==2.4.6", ...)``.
        platforms: pip ``--platform`` tags the wheels may carry.
        import_name: the module the guest imports to check the set, e.g.
            ``"ai_edge_litert.interpreter"``.
        debian_packages: Debian packages the set needs in the sysroot (armhf takes numpy
            from Debian's ``python3-numpy``: PyPI has no armv7l numpy<2 cp311 wheel).
        no_deps: install exactly ``requirements`` (pip ``--no-deps``).
    """

    name: str
    requirements: tuple[str, ...]
    platforms: tuple[str, ...]
    import_name: str = ""
    debian_packages: tuple[str, ...] = ()
    no_deps: bool = True


@dataclass(frozen=True)
class ImageSpec:
    """Everything that decides a device image's content.

    Attributes:
        arch: Debian architecture, ``"arm64"`` or ``"armhf"``.
        debian_suite: e.g. ``"bookworm"``.
        python: guest Python version, e.g. ``"3.11"`` (Debian's ``python3.11``).
        runtimes: one ``WheelSet`` per runtime, names unique; may be empty.
        cpuinfo_core: the core written into ``/proc/cpuinfo``, e.g. ``"cortex-a72"``.
        cores: number of cores in ``/proc/cpuinfo``.
        debian_mirror: the Debian archive URL.

    Raises:
        BoardError: a field is out of range (the message names it).
    """

    arch: str
    debian_suite: str
    python: str
    runtimes: tuple[WheelSet, ...]
    cpuinfo_core: str
    cores: int
    debian_mirror: str = DEBIAN_MIRROR

    def __post_init__(self) -> None:
        if self.arch not in ARCHES:
            raise BoardError(f"image spec: field 'arch': expected 'arm64' or 'armhf', got {self.arch!r}")
        if self.debian_suite not in _GLIBC_MINOR:
            raise BoardError(f"image spec: field 'debian_suite': expected one of {sorted(_GLIBC_MINOR)}, "
                             f"got {self.debian_suite!r}")
        if not re.fullmatch(r"3\.\d+", self.python):
            raise BoardError(f"image spec: field 'python': expected e.g. '3.11', got {self.python!r}")
        CORES.get(self.cpuinfo_core)
        if isinstance(self.cores, bool) or not isinstance(self.cores, int) or self.cores < 1:
            raise BoardError(f"image spec: field 'cores': expected a positive int, got {self.cores!r}")
        names = [w.name for w in self.runtimes]
        if len(set(names)) != len(names):
            raise BoardError(f"image spec: field 'runtimes': names repeat: {names}")
        for ws in self.runtimes:
            bad = [r for r in ws.requirements if not _PIN_RE.fullmatch(r)]
            if bad or not ws.requirements or not ws.platforms:
                raise BoardError(f"image spec: runtime {ws.name!r}: expected pinned 'name==version' "
                                 f"requirements and platform tags, got {list(ws.requirements)}")

    def to_dict(self) -> dict:
        """The spec as plain JSON data (lists for tuples)."""
        return json.loads(json.dumps(asdict(self)))

    @property
    def key(self) -> str:
        """16 hex digits of the sha256 of the spec and the image format version."""
        blob = json.dumps({"format": IMAGE_FORMAT, "spec": self.to_dict()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def name(self) -> str:
        """The image's folder name, ``<arch>-<key>``."""
        return f"{self.arch}-{self.key}"

    @property
    def triplet(self) -> str:
        """The Debian multiarch triplet, e.g. ``"aarch64-linux-gnu"``."""
        return _TRIPLET[self.arch]

    @property
    def qemu_binary(self) -> str:
        """The qemu-user binary name, e.g. ``"qemu-aarch64-static"``."""
        return _QEMU[self.arch]

    @property
    def debian_packages(self) -> tuple[str, ...]:
        """The packages whose dependency closure makes the sysroot."""
        base = (f"python{self.python}-minimal", f"libpython{self.python}-stdlib", "libstdc++6", "libgomp1")
        extra = [p for ws in self.runtimes for p in ws.debian_packages]
        return tuple(dict.fromkeys([*base, *extra]))

    def runtime(self, name: str) -> WheelSet:
        """The wheel set named ``name``.

        Raises:
            BoardError: the image has no such runtime (the message lists its runtimes).
        """
        for ws in self.runtimes:
            if ws.name == name:
                return ws
        have = ", ".join(repr(w.name) for w in self.runtimes) or "none"
        raise BoardError(f"this {self.arch} image has no runtime {name!r}; it has {have}")


def platform_tags(arch: str, suite: str = "bookworm") -> tuple[str, ...]:
    """pip ``--platform`` tags for wheels that run on ``suite``'s glibc for ``arch``.

    Listed one by one: pip does not expand ``manylinux_2_36`` to the older tags, and some
    pinned wheels carry only old ones (ai-edge-litert 2.3.0: manylinux_2_17 and 2_27).
    """
    machine = _MACHINE[arch]
    tags = [f"manylinux_2_{minor}_{machine}" for minor in range(17, _GLIBC_MINOR[suite] + 1)]
    return (*tags, f"manylinux2014_{machine}", f"linux_{machine}")


# Pinned wheel closures, per (runtime, arch). Absent pairs have no wheel on PyPI.
_PINS: dict[tuple[str, str], dict] = {
    ("litert", "arm64"): dict(import_name="ai_edge_litert.interpreter", requirements=(
        "ai-edge-litert==2.3.0", "numpy==2.4.6", "backports.strenum==1.2.8", "flatbuffers==25.12.19",
        "ml-dtypes==0.6.0", "protobuf==7.36.2", "tqdm==4.70.1", "typing-extensions==4.16.0")),
    ("onnxruntime", "arm64"): dict(import_name="onnxruntime", requirements=(
        "onnxruntime==1.32.0", "numpy==2.4.6", "flatbuffers==25.12.19", "packaging==26.4",
        "protobuf==7.36.2")),
    # tflite-runtime 2.14 was built against numpy 1.x and breaks with numpy 2.
    ("tflite-runtime", "arm64"): dict(import_name="tflite_runtime.interpreter", requirements=(
        "tflite-runtime==2.14.0", "numpy==1.26.4")),
    # No armv7l numpy<2 cp311 wheel exists on PyPI: numpy comes from Debian (1.24.2).
    ("tflite-runtime", "armhf"): dict(import_name="tflite_runtime.interpreter", requirements=(
        "tflite-runtime==2.14.0",), debian_packages=("python3-numpy",)),
}
RUNTIME_NAMES = tuple(dict.fromkeys(name for name, _ in _PINS))


def wheel_set(runtime: str, arch: str, suite: str = "bookworm") -> WheelSet:
    """The pinned wheel set of ``runtime`` for ``arch``.

    Raises:
        BoardError: unknown runtime, or no wheels for that architecture.
    """
    arch = _ARCH_ALIASES.get(arch, arch)
    if runtime not in RUNTIME_NAMES:
        raise BoardError(f"no device-image wheels for runtime {runtime!r}; known: {', '.join(RUNTIME_NAMES)}")
    pins = _PINS.get((runtime, arch))
    if pins is None:
        ok = ", ".join(repr(r) for r, a in _PINS if a == arch) or "none"
        raise BoardError(f"runtime {runtime!r} has no {_MACHINE.get(arch, arch)} ({arch}) wheel on PyPI; "
                         f"{arch} boards can use: {ok}")
    return WheelSet(name=runtime, platforms=platform_tags(arch, suite), **pins)


def image_spec_for(arch: str, core: str, cores: int, runtimes: Iterable[str]) -> ImageSpec:
    """The image spec of a board: Debian bookworm, Python 3.11 and the pinned wheel sets.

    Args:
        arch: ``"arm64"`` or ``"armhf"`` (qemu's ``"aarch64"`` / ``"arm"`` are accepted).
        core: the board's core, e.g. ``"cortex-a72"``.
        cores: the board's core count.
        runtimes: runtime names, e.g. ``["litert", "onnxruntime"]`` (repeats dropped).

    Raises:
        BoardError: unknown arch, core or runtime, or a runtime without wheels for ``arch``.
    """
    arch = _ARCH_ALIASES.get(arch, arch)
    if arch not in ARCHES:
        raise BoardError(f"unknown device-image architecture {arch!r}; expected 'arm64' or 'armhf'")
    sets = tuple(wheel_set(name, arch) for name in dict.fromkeys(runtimes))
    return ImageSpec(arch=arch, debian_suite="bookworm", python="3.11", runtimes=sets,
                     cpuinfo_core=core, cores=cores)
