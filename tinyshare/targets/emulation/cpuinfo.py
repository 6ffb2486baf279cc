"""Board-true ``/proc/cpuinfo`` text for emulated Arm cores, and the qemu ``-cpu`` model per core.

LiteRT and onnxruntime read ``/proc/cpuinfo`` at start (through the cpuinfo library) and
segfault under qemu-user when they find the host's x86 file. A device image therefore
holds an Arm-format file at ``<sysroot>/proc/cpuinfo``; qemu's ``-L`` redirects the
guest's open of ``/proc/cpuinfo`` there.

The core table is data. Part numbers are the MIDR ``PartNum`` fields from each core's
Technical Reference Manual (Arm documents: Cortex-A53 DDI0500, Cortex-A55 100442,
Cortex-A57 DDI0488, Cortex-A72 100095, Cortex-A76 100798, Cortex-A78 101430), and the
variant/revision are the releases the boards ship (Pi 3: A53 r0p4, Pi 4: A72 r0p3,
Jetson Nano: A57 r1p1, Pi 5: A76 r4p1).

Features follow what Linux prints for the ISA level. The Armv8.0 cores list no crypto
(the Pi 3 and Pi 4 SoCs leave it out), the Armv8.2 cores list it (the Pi 5 has it). The
runtimes take features from the ELF auxiliary vector, which qemu fills from the ``-cpu``
model, and they read only the part numbers from this file. ``BogoMIPS`` is twice the
board's timer clock and no runtime reads it; we write the 54 MHz Pi 4/5 value.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tinyshare.errors import BoardError, RuntimeUnavailableError
from tinyshare.registry import Registry

ARCHES = ("arm64", "armhf")

_V80_ARM64 = "fp asimd evtstrm crc32 cpuid"
_V82_ARM64 = ("fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid "
              "asimdrdm lrcpc dcpop asimddp")
# A 32-bit kernel on an Armv8 core (e.g. Raspberry Pi OS armhf on a Pi 3).
_V80_ARMHF = "half thumb fastmult vfp edsp neon vfpv3 tls vfpv4 idiva idivt vfpd32 lpae evtstrm crc32"
_V82_ARMHF = ("half thumb fastmult vfp edsp neon vfpv3 tls vfpv4 idiva idivt vfpd32 lpae "
              "evtstrm aes pmull sha1 sha2 crc32")
_BOGOMIPS = "108.00"

# qemu-arm 7.2 has no Armv8 AArch32 core model. cortex-a7 (Armv7-A with VFPv4, NEON and
# integer divide) is the largest subset of an Armv8 core's AArch32 ISA that qemu offers
# short of -cpu max, so code that runs there runs on the board.
_ARMHF_QEMU_CPUS = ("cortex-a7",)


@dataclass(frozen=True)
class CoreInfo:
    """One Arm core: its MIDR fields and the qemu models that emulate its ISA.

    Attributes:
        name: qemu-style core name, e.g. ``"cortex-a72"``.
        part: MIDR PartNum, e.g. ``0xd08``.
        variant: MIDR Variant (the ``r`` in rNpM).
        revision: MIDR Revision (the ``p`` in rNpM).
        isa: ``"armv8.0"`` or ``"armv8.2"``; picks the Features line.
        qemu_cpus: qemu-aarch64 ``-cpu`` models in order of preference. The first is the
            core itself; a later one is a model with the same user-mode ISA, for a qemu
            that lacks the core (qemu 7.2 has no cortex-a55 or cortex-a78).
    """

    name: str
    part: int
    variant: int
    revision: int
    isa: str
    qemu_cpus: tuple[str, ...]


CORES: Registry[CoreInfo] = Registry("Arm core", BoardError)
for _core in (
    CoreInfo("cortex-a53", 0xD03, 0x0, 4, "armv8.0", ("cortex-a53",)),
    CoreInfo("cortex-a55", 0xD05, 0x2, 0, "armv8.2", ("cortex-a55", "cortex-a76")),
    CoreInfo("cortex-a57", 0xD07, 0x1, 1, "armv8.0", ("cortex-a57",)),
    CoreInfo("cortex-a72", 0xD08, 0x0, 3, "armv8.0", ("cortex-a72",)),
    CoreInfo("cortex-a76", 0xD0B, 0x4, 1, "armv8.2", ("cortex-a76",)),
    CoreInfo("cortex-a78", 0xD41, 0x1, 1, "armv8.2", ("cortex-a78", "cortex-a76")),
):
    CORES.register(_core.name, _core)


def _check_arch(arch: str) -> None:
    if arch not in ARCHES:
        raise BoardError(f"unknown device-image architecture {arch!r}; expected 'arm64' or 'armhf'")


def cpuinfo_text(core: str, cores: int, arch: str) -> str:
    """The ``/proc/cpuinfo`` a Linux kernel prints on ``cores`` cores of type ``core``.

    Args:
        core: qemu-style core name, e.g. ``"cortex-a72"``.
        cores: number of cores (one ``processor`` block each), >= 1.
        arch: ``"arm64"`` (64-bit kernel, ``CPU architecture: 8``) or ``"armhf"``
            (32-bit kernel on the same core, ``CPU architecture: 7`` and a ``model name``
            line, as Raspberry Pi OS 32-bit prints it).

    Returns:
        The file's text, blocks separated by a blank line, ending in a newline.

    Raises:
        BoardError: unknown core or arch, or ``cores`` < 1.
    """
    info = CORES.get(core)
    _check_arch(arch)
    if isinstance(cores, bool) or not isinstance(cores, int) or cores < 1:
        raise BoardError(f"cores must be a positive int, got {cores!r}")
    v82 = info.isa == "armv8.2"
    if arch == "arm64":
        features, architecture, model = (_V82_ARM64 if v82 else _V80_ARM64), "8", None
    else:
        features, architecture = (_V82_ARMHF if v82 else _V80_ARMHF), "7"
        model = f"ARMv7 Processor rev {info.revision} (v7l)"
    blocks = []
    for i in range(cores):
        lines = [f"processor\t: {i}"]
        if model:
            lines.append(f"model name\t: {model}")
        lines += [
            f"BogoMIPS\t: {_BOGOMIPS}",
            f"Features\t: {features}",
            "CPU implementer\t: 0x41",
            f"CPU architecture: {architecture}",
            f"CPU variant\t: {info.variant:#x}",
            f"CPU part\t: {info.part:#05x}",
            f"CPU revision\t: {info.revision}",
        ]
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks) + "\n"


def parse_cpuinfo(text: str) -> list[dict[str, str]]:
    """Split ``/proc/cpuinfo`` text into one ``{field: value}`` dict per block.

    Args:
        text: the file's text.

    Returns:
        One dict per non-empty block, fields and values stripped.
    """
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in [*text.splitlines(), ""]:
        if not line.strip():
            if current:
                blocks.append(current)
            current = {}
            continue
        key, _, value = line.partition(":")
        current[key.strip()] = value.strip()
    return blocks


def qemu_cpu(core: str, arch: str, available: Iterable[str] | None = None) -> str:
    """The qemu ``-cpu`` model that runs ``core``'s user-mode ISA; never ``max``.

    Args:
        core: qemu-style core name, e.g. ``"cortex-a72"``.
        arch: ``"arm64"`` (qemu-aarch64) or ``"armhf"`` (qemu-arm).
        available: the models the installed qemu offers (``-cpu help``); None takes the
            first preference without checking.

    Returns:
        The model name, e.g. ``"cortex-a72"``.

    Raises:
        BoardError: unknown core or arch.
        RuntimeUnavailableError: the installed qemu offers none of the core's models.
    """
    info = CORES.get(core)
    _check_arch(arch)
    wanted = info.qemu_cpus if arch == "arm64" else _ARMHF_QEMU_CPUS
    if available is None:
        return wanted[0]
    have = set(available)
    for model in wanted:
        if model in have:
            return model
    raise RuntimeUnavailableError(
        f"the installed qemu for {arch} offers none of the cpu models {', '.join(wanted)} "
        f"for {core} (and -cpu max is never used); install a newer qemu-user-static"
    )
