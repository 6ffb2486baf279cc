"""Cortex-M build targets as data: compiler flags per core, memory maps per qemu machine.

A board's target joins two tables, both keyed by fields of its profile:

* ``CORES`` (by ``board.cpu``): gcc flags for the core, its FPU and the hard-float ABI;
* ``MACHINES`` (by ``board.emulator.machine``): where code, constants, data and the arena
  live in that qemu-system machine's memory map.

The region that stands for the board's flash (``board_flash``) and the one that stands
for its RAM (``board_ram``) are cut to the board's ``flash_bytes`` / ``ram_bytes``, so an
image that would not fit the board fails at link time (``region ... overflowed``).

Memory maps: QEMU's ``hw/arm/mps2.c`` (AN386, AN500) and ``hw/arm/mps2-tz.c``
(``an547_raminfo``), checked with ``info mtree`` on qemu-system-arm 7.2; the AN547
regions are used through their Secure aliases (address bit 28 set), as the core leaves
reset in Secure state.
"""

from __future__ import annotations

from dataclasses import dataclass

from tinyshare.errors import BoardError
from tinyshare.registry import Registry
from tinyshare.targets.board import BoardProfile

@dataclass(frozen=True)
class MemoryRegion:
    """One linker MEMORY region.

    Attributes:
        name: the region's name in the linker script (``FLASH``, ``ITCM``...).
        origin: start address.
        length_bytes: size, bytes.
        attrs: linker attributes, e.g. ``"rx"`` or ``"rwx"``.
        what: what the region is in the machine, for messages.
    """

    name: str
    origin: int
    length_bytes: int
    attrs: str
    what: str

    @property
    def end(self) -> int:
        return self.origin + self.length_bytes


@dataclass(frozen=True)
class MachineMap:
    """Where a test image lives in one qemu-system machine.

    Attributes:
        machine: the qemu ``-M`` name.
        regions: the machine's memories the image uses.
        roles: (role, region name) pairs for ``CODE``, ``CONST``, ``DATA``, ``ARENA``.
        board_flash: the region cut to the board's ``flash_bytes``.
        board_ram: the region cut to the board's ``ram_bytes``.
    """

    machine: str
    regions: tuple[MemoryRegion, ...]
    roles: tuple[tuple[str, str], ...]
    board_flash: str
    board_ram: str


CORES: Registry[tuple[str, ...]] = Registry("Cortex-M core (board field 'cpu')", BoardError)
CORES.register("Cortex-M4F", ("-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16",
                              "-mfloat-abi=hard"))
# The STM32F746's Cortex-M7 has the single-precision FPU (FPv5-SP-D16).
CORES.register("Cortex-M7", ("-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-sp-d16",
                             "-mfloat-abi=hard"))
# -mcpu=cortex-m55 selects MVE with floating point and the FPv5 double-precision FPU.
CORES.register("Cortex-M55", ("-mcpu=cortex-m55", "-mthumb", "-mfloat-abi=hard"))

_MIB = 1 << 20
_KIB = 1 << 10
MACHINES: Registry[MachineMap] = Registry("qemu-system machine (board field 'emulator.machine')",
                                          BoardError)


def _mps2(machine: str) -> MachineMap:
    return MachineMap(
        machine=machine,
        regions=(MemoryRegion("FLASH", 0x0000_0000, 4 * _MIB, "rx", "ZBT SSRAM1"),
                 MemoryRegion("RAM", 0x2000_0000, 4 * _MIB, "rwx", "ZBT SSRAM2&3")),
        roles=(("CODE", "FLASH"), ("CONST", "FLASH"), ("DATA", "RAM"), ("ARENA", "RAM")),
        board_flash="FLASH", board_ram="RAM")


MACHINES.register("mps2-an386", _mps2("mps2-an386"))
MACHINES.register("mps2-an500", _mps2("mps2-an500"))
MACHINES.register("mps3-an547", MachineMap(
    machine="mps3-an547",
    regions=(MemoryRegion("ITCM", 0x1000_0000, 512 * _KIB, "rx", "ITCM (Secure alias)"),
             MemoryRegion("QSPI", 0x3800_0000, 8 * _MIB, "r", "QSPI flash (Secure alias)"),
             MemoryRegion("DTCM", 0x3000_0000, 512 * _KIB, "rwx", "DTCM (Secure alias)"),
             MemoryRegion("ISRAM", 0x3100_0000, 4 * _MIB, "rwx",
                          "SSE-300 internal SRAM (Secure alias)")),
    # as the board file says: code in ITCM, the model in QSPI flash, globals and the stack
    # in DTCM, the arena in the internal SRAM
    roles=(("CODE", "ITCM"), ("CONST", "QSPI"), ("DATA", "DTCM"), ("ARENA", "ISRAM")),
    board_flash="QSPI", board_ram="ISRAM"))


@dataclass(frozen=True)
class CortexMTarget:
    """How to build and emulate one board's core.

    Attributes:
        board: the board's name.
        cpu: the board's core (``Cortex-M4F``...).
        cflags: gcc flags for the core, FPU and float ABI.
        machine: the qemu-system ``-M`` machine.
        qemu_cpu: the qemu ``-cpu`` core.
        regions: the linker MEMORY regions, the board's two cut to its sizes.
        roles: (role, region name) pairs.
        board_flash, board_ram: the regions that stand for the board's flash and RAM.
        flash_budget_bytes, ram_budget_bytes: the board's budgets (total - reserved), bytes.
    """

    board: str
    cpu: str
    cflags: tuple[str, ...]
    machine: str
    qemu_cpu: str
    regions: tuple[MemoryRegion, ...]
    roles: tuple[tuple[str, str], ...]
    board_flash: str
    board_ram: str
    flash_budget_bytes: int
    ram_budget_bytes: int

    def region(self, name: str) -> MemoryRegion:
        (found,) = [r for r in self.regions if r.name == name]
        return found

    def linker_memory(self, stack_bytes: int) -> str:
        """The MEMORY block, role aliases and ``STACK_BYTES`` that precede ``sections.ld``."""
        lines = [f"/* tinyshare: {self.board} ({self.cpu}) on qemu {self.machine}. */", "MEMORY", "{"]
        for r in self.regions:
            lines.append(f"    {r.name} ({r.attrs}) : ORIGIN = {r.origin:#010x}, "
                         f"LENGTH = {r.length_bytes}  /* {r.what} */")
        lines.append("}")
        lines += [f'REGION_ALIAS("{role}", {name});' for role, name in self.roles]
        lines += [f"STACK_BYTES = {stack_bytes};", "INCLUDE sections.ld", ""]
        return "\n".join(lines)


def cortex_m_target(board: BoardProfile) -> CortexMTarget:
    """The Cortex-M target of ``board``.

    Raises:
        BoardError: the board has no qemu-system emulator, or its core or machine is not in
            ``CORES`` / ``MACHINES`` (the message lists the known ones).
    """
    emu = board.emulator
    if emu is None or emu.kind != "qemu-system" or emu.machine is None:
        raise BoardError(f"{board.name}: no qemu-system emulator in the board file; the "
                         "Cortex-M build needs [emulator] kind = \"qemu-system\" with a machine")
    cflags = CORES.get(board.cpu)
    mmap = MACHINES.get(emu.machine)
    sizes = {mmap.board_flash: board.flash_bytes, mmap.board_ram: board.ram_bytes}
    regions = tuple(
        MemoryRegion(r.name, r.origin, min(r.length_bytes, sizes[r.name]), r.attrs,
                     f"{r.what}, cut to the board's "
                     f"{'flash' if r.name == mmap.board_flash else 'RAM'}")
        if r.name in sizes else r
        for r in mmap.regions)
    return CortexMTarget(
        board=board.name, cpu=board.cpu, cflags=cflags, machine=mmap.machine,
        qemu_cpu=emu.cpu or "", regions=regions, roles=mmap.roles,
        board_flash=mmap.board_flash, board_ram=mmap.board_ram,
        flash_budget_bytes=board.flash_budget_bytes, ram_budget_bytes=board.ram_budget_bytes)
