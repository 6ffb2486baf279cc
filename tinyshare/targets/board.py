"""The board profile schema (``BoardProfile``) and its renderers for the CLI.

Boards are data: one TOML file per board under ``tinyshare/targets/boards/``,
validated into a frozen ``BoardProfile`` when the registry loads it
(``tinyshare.targets.board_registry``). Every number in a profile is backed by a
datasheet or product page listed in ``sources``; the reserved budgets are our
policy choices and each board file explains its own in a comment.

The renderers (``boards_table``, ``board_details``) return rich renderables and
never print; rich is imported inside them so importing this module stays light.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, ValidationInfo, field_validator

from tinyshare.targets.runtimes.registry import RUNTIMES
from tinyshare.targets.vela_names import VELA_ACCELERATOR_CONFIGS, VELA_MEMORY_MODES, VELA_SYSTEM_CONFIGS

if TYPE_CHECKING:
    from collections.abc import Iterable

    from rich.table import Table

SCHEMA_VERSION = 1

_NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]*")
_URL_RE = re.compile(r"https://[^\s/]+\.[^\s/]+/\S*")


def _check_name(value: str) -> str:
    if not _NAME_RE.fullmatch(value):
        raise ValueError("expected a lowercase name of letters, digits and '-' (e.g. 'rpi4b')")
    return value


def _quoted_choice(names: list[str]) -> str:
    quoted = [repr(n) for n in names]
    return quoted[0] if len(quoted) == 1 else "one of " + ", ".join(quoted[:-1]) + " or " + quoted[-1]


def _check_runtime(value: str) -> str:
    # Names and OS support come from the runtime capability table (tinyshare.targets.runtimes.registry).
    if value not in RUNTIMES:
        raise ValueError(f"expected {_quoted_choice(RUNTIMES.names())}")
    return value


def _check_url(value: str) -> str:
    if not _URL_RE.fullmatch(value):
        raise ValueError("expected an https:// URL of a datasheet or product page")
    return value


PositiveInt = Annotated[StrictInt, Field(gt=0)]
NonNegativeInt = Annotated[StrictInt, Field(ge=0)]
NonEmptyStr = Annotated[str, Field(min_length=1)]
BoardName = Annotated[str, AfterValidator(_check_name)]
SourceUrl = Annotated[str, AfterValidator(_check_url)]
RuntimeName = Annotated[str, AfterValidator(_check_runtime)]


class Emulator(BaseModel):
    """How to emulate the board's CPU.

    Attributes:
        kind: ``"qemu-user"`` (a Linux user-mode process, for Linux boards) or
            ``"qemu-system"`` (a full machine, for bare-metal firmware).
        arch: the qemu target architecture, e.g. ``"aarch64"`` or ``"arm"``.
        cpu: the core passed as ``-cpu`` (required for qemu-user; never ``max``).
        machine: the qemu-system machine, e.g. ``"mps2-an500"`` (required for qemu-system).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["qemu-user", "qemu-system"]
    arch: Literal["aarch64", "arm"]
    machine: NonEmptyStr | None = Field(default=None, validate_default=True)
    cpu: NonEmptyStr | None = Field(default=None, validate_default=True)

    @field_validator("machine")
    @classmethod
    def _machine_for_kind(cls, value: str | None, info: ValidationInfo) -> str | None:
        kind = info.data.get("kind")
        if kind == "qemu-system" and value is None:
            raise ValueError("expected a machine (e.g. 'mps2-an500') for kind 'qemu-system'")
        if kind == "qemu-user" and value is not None:
            raise ValueError("expected no machine for kind 'qemu-user' (it runs one process; set cpu)")
        return value

    @field_validator("cpu")
    @classmethod
    def _cpu_for_kind(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value in ("max", "host"):
            raise ValueError(
                "expected the board's own core (e.g. 'cortex-a72'); 'max'/'host' enable instructions the board lacks"
            )
        if info.data.get("kind") == "qemu-user" and value is None:
            raise ValueError("expected the board's core (e.g. 'cortex-a72') for kind 'qemu-user'")
        return value

    def describe(self) -> str:
        """One-line summary, e.g. ``"qemu-user aarch64 -cpu cortex-a72"``."""
        parts = [self.kind, self.arch]
        if self.machine:
            parts.append(f"-M {self.machine}")
        if self.cpu:
            parts.append(f"-cpu {self.cpu}")
        return " ".join(parts)


def _check_system_config(value: str) -> str:
    if value not in VELA_SYSTEM_CONFIGS:
        raise ValueError(f"expected a [System_Config.*] section of Vela's Arm/vela.ini: "
                         f"{_quoted_choice(list(VELA_SYSTEM_CONFIGS))}")
    return value


def _check_memory_mode(value: str) -> str:
    if value not in VELA_MEMORY_MODES:
        raise ValueError(f"expected a [Memory_Mode.*] section of Vela's Arm/vela.ini: "
                         f"{_quoted_choice(list(VELA_MEMORY_MODES))}")
    return value


class NpuSpec(BaseModel):
    """An Arm Ethos-U NPU, as Vela needs it to compile for the board (TOML ``[npu]`` table).

    The names are Vela's own (``vela --help`` and the bundled ``Arm/vela.ini`` of the
    pinned ethos-u-vela; see ``tinyshare.targets.vela``). We use Vela's bundled sections
    rather than shipping our own ini: its system configs are memory-system templates (AXI
    ports, bandwidths and latencies relative to the clock) with a fixed clock, and Vela's
    cycle counts do not depend on that clock, so ``clock_hz`` (the board's real NPU clock)
    converts Vela's cycles to time without a custom section.

    Attributes:
        accelerator_config: Vela ``--accelerator-config``: the NPU and its MACs per
            cycle, e.g. ``"ethos-u55-128"``.
        system_config: Vela ``--system-config`` in ``Arm/vela.ini``, e.g.
            ``"Ethos_U55_High_End_Embedded"`` (SRAM on AXI0, off-chip flash on AXI1).
        memory_mode: Vela ``--memory-mode`` in ``Arm/vela.ini``, e.g. ``"Shared_Sram"``
            (tensor arena in SRAM shared with the CPU, weights read from flash).
        clock_hz: the board's NPU clock in Hz; None keeps the system config's ``core_clock``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    accelerator_config: Literal[VELA_ACCELERATOR_CONFIGS]  # type: ignore[valid-type]
    system_config: Annotated[str, AfterValidator(_check_system_config)]
    memory_mode: Annotated[str, AfterValidator(_check_memory_mode)]
    clock_hz: StrictInt | None = Field(default=None, gt=0)

    def describe(self) -> str:
        """One-line summary, e.g. ``"ethos-u55-128, Vela Ethos_U55_High_End_Embedded @ 32 MHz, Shared_Sram"``."""
        clock = f" @ {format_hz(self.clock_hz)}" if self.clock_hz else ""
        return f"{self.accelerator_config}, Vela {self.system_config}{clock}, {self.memory_mode}"


class BoardProfile(BaseModel):
    """One board: its CPU, memory budgets, runtimes, emulator and sources.

    Attributes:
        schema_version: version of this schema; only ``1`` exists.
        name: registry key, lowercase with ``-`` (e.g. ``"rpi4b"``).
        display_name: human name, including the variant (e.g. RAM size).
        vendor: board vendor.
        cpu: CPU core, e.g. ``"Cortex-M7"``.
        isa: instruction set architecture, e.g. ``"armv7e-m"``.
        clock_hz: CPU clock in Hz.
        cores: number of CPU cores.
        os: ``"linux"`` or ``"baremetal"`` (firmware, possibly with an RTOS linked in).
        flash_bytes: non-volatile storage in bytes (on-chip flash for MCUs, the
            storage medium for Linux boards).
        ram_bytes: on MCUs the largest contiguous RAM region usable for the TFLM
            arena; on Linux boards the DRAM, in bytes.
        reserved_flash_bytes: flash kept for the bootloader/OS/application, in bytes.
        reserved_ram_bytes: RAM kept for the OS/application (stacks, heap, globals), in bytes.
        runtimes: the inference runtimes this board can run: names from the runtime
            capability table (``tinyshare.targets.runtimes.registry.RUNTIMES``), each
            supporting the board's ``os``.
        emulator: how to emulate the board, if it can be emulated.
        npu: the Ethos-U NPU as Vela compiles for it (``[npu]`` table), if the board has one.
        strip_tensor_names: flash the int8 .tflite without tensor names (debug strings no
            runtime reads); the report shows what it saves. Default false.
        sources: datasheet / product-page URLs backing the numbers.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1]
    name: BoardName
    display_name: NonEmptyStr
    vendor: NonEmptyStr
    cpu: NonEmptyStr
    isa: NonEmptyStr
    clock_hz: PositiveInt
    cores: PositiveInt
    os: Literal["linux", "baremetal"]
    flash_bytes: PositiveInt
    ram_bytes: PositiveInt
    reserved_flash_bytes: NonNegativeInt
    reserved_ram_bytes: NonNegativeInt
    runtimes: tuple[RuntimeName, ...] = Field(min_length=1)
    emulator: Emulator | None = None
    npu: NpuSpec | None = None
    strip_tensor_names: bool = False
    sources: tuple[SourceUrl, ...] = Field(min_length=1)

    @field_validator("reserved_flash_bytes", "reserved_ram_bytes")
    @classmethod
    def _reserve_below_total(cls, value: int, info: ValidationInfo) -> int:
        total_field = "flash_bytes" if info.field_name == "reserved_flash_bytes" else "ram_bytes"
        total = info.data.get(total_field)
        if total is not None and value >= total:
            raise ValueError(f"expected less than {total_field} ({total}) so the budget stays positive")
        return value

    @field_validator("runtimes")
    @classmethod
    def _runtimes_fit_os(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("expected each runtime once")
        os_name = info.data.get("os")
        if os_name is None:
            return value
        misfits = [name for name in value if os_name not in RUNTIMES.get(name).os]
        if misfits:
            fits = [name for name in RUNTIMES.names() if os_name in RUNTIMES.get(name).os]
            needs = sorted({o for name in misfits for o in RUNTIMES.get(name).os})
            raise ValueError(f"expected only {_quoted_choice(fits)} on a {os_name} board; "
                             f"{misfits} need os {_quoted_choice(needs)}")
        return value

    @field_validator("emulator")
    @classmethod
    def _emulator_fits_os(cls, value: Emulator | None, info: ValidationInfo) -> Emulator | None:
        os_name = info.data.get("os")
        if value is not None and os_name is not None:
            wanted = "qemu-user" if os_name == "linux" else "qemu-system"
            if value.kind != wanted:
                raise ValueError(f"expected kind {wanted!r} for os {os_name!r}, got {value.kind!r}")
        return value

    @property
    def flash_budget_bytes(self) -> int:
        """Flash left for the model and runtime code: ``flash_bytes - reserved_flash_bytes``."""
        return self.flash_bytes - self.reserved_flash_bytes

    @property
    def ram_budget_bytes(self) -> int:
        """RAM left for the model's arena / peak memory: ``ram_bytes - reserved_ram_bytes``."""
        return self.ram_bytes - self.reserved_ram_bytes


def format_bytes(n_bytes: int) -> str:
    """Human-readable size with binary units, e.g. ``1048576 -> "1 MiB"``, ``1536 -> "1.5 KiB"``.

    Args:
        n_bytes: a size in bytes (may be negative, e.g. a headroom).
    """
    if abs(n_bytes) < 1024:
        return f"{n_bytes} B"
    value = n_bytes / 1024
    unit = "KiB"
    for unit in ("KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            break
        value /= 1024
    return f"{value:.2f}".rstrip("0").rstrip(".") + f" {unit}"


def format_hz(clock_hz: int) -> str:
    """Human-readable clock, e.g. ``216_000_000 -> "216 MHz"``, ``1_800_000_000 -> "1.8 GHz"``."""
    if clock_hz >= 1_000_000_000:
        return f"{clock_hz / 1e9:g} GHz"
    if clock_hz >= 1_000_000:
        return f"{clock_hz / 1e6:g} MHz"
    return f"{clock_hz} Hz"


def boards_table(boards: Iterable[BoardProfile]) -> Table:
    """A rich table with one row per board (for ``tinyshare boards list``)."""
    from rich.table import Table

    table = Table(title="Boards")
    for header in ("name", "board", "cpu", "os", "flash budget", "RAM budget", "runtimes", "emulator"):
        table.add_column(header, justify="right" if "budget" in header else "left",
                         no_wrap=header == "name")  # the name is what users type
    for board in boards:
        table.add_row(
            board.name,
            board.display_name,
            f"{board.cores}x {board.cpu} @ {format_hz(board.clock_hz)}",
            board.os,
            format_bytes(board.flash_budget_bytes),
            format_bytes(board.ram_budget_bytes),
            ", ".join(board.runtimes),
            board.emulator.describe() if board.emulator else "-",
        )
    return table


def board_details(board: BoardProfile) -> Table:
    """A rich two-column field/value table for one board (for ``tinyshare boards show``)."""
    from rich.table import Table

    table = Table(title=f"{board.display_name} ({board.name})", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")

    def sized(n_bytes: int) -> str:
        return f"{n_bytes:,} B ({format_bytes(n_bytes)})"

    rows: list[tuple[str, str]] = [
        ("vendor", board.vendor),
        ("cpu", f"{board.cores}x {board.cpu} ({board.isa}) @ {format_hz(board.clock_hz)}"),
        ("os", board.os),
        ("flash_bytes", sized(board.flash_bytes)),
        ("reserved_flash_bytes", sized(board.reserved_flash_bytes)),
        ("flash_budget_bytes", sized(board.flash_budget_bytes)),
        ("ram_bytes", sized(board.ram_bytes)),
        ("reserved_ram_bytes", sized(board.reserved_ram_bytes)),
        ("ram_budget_bytes", sized(board.ram_budget_bytes)),
        ("runtimes", ", ".join(board.runtimes)),
        ("emulator", board.emulator.describe() if board.emulator else "-"),
        ("strip_tensor_names", str(board.strip_tensor_names).lower()),
        ("npu", board.npu.describe() if board.npu else "-"),
    ]
    rows += [("sources" if i == 0 else "", url) for i, url in enumerate(board.sources)]
    for field, value in rows:
        table.add_row(field, value)
    return table
