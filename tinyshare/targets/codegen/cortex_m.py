"""Build the generated C for a board's Cortex-M core and run it under qemu-system-arm.

Public API::

    gen = generate_c("model_int8.tflite", "build/c")
    image = build_cortex_m(gen, load_board("nano33-ble-sense"))   # arm-none-eabi-gcc
    result = run_cortex_m(image, x_int8)     # qemu-system-arm -M mps2-an386 -icount shift=0
    result.outputs                           # (N, ...) int8, as run_host gives
    result.figures                           # flash, RAM, stack, instructions, with methods

The image is the generated model + kernels, a startup file (vector table; reset copies
.data, zeroes .bss and the arena, enables the FPU/MVE through CPACR, paints the stack) and a
harness that reads ``in.bin`` and writes ``out.bin`` through semihosting file I/O (newlib
``--specs=rdimon.specs``, qemu ``-semihosting-config enable=on,target=native``): the same
files as the host harness, so any number of samples runs without rebuilding. The core,
FPU and memory map come from the board (``_cortex_m_targets``); the linker script cuts the
machine's memories to the board's flash and RAM, so an image too big for the board fails.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyshare.errors import BudgetExceededError, DataError, RuntimeUnavailableError
from tinyshare.targets import _proc
from tinyshare.targets.board import BoardProfile
from tinyshare.targets.codegen._cortex_m_targets import CortexMTarget, cortex_m_target
from tinyshare.targets.codegen._elf_size import (
    SectionSizes,
    image_sizes,
    object_sizes,
    read_sizes,
)
from tinyshare.targets.codegen._model import GeneratedModel
from tinyshare.targets.codegen.host import CFLAGS

SUPPORT_DIR = Path(__file__).resolve().parent / "cortex_m"
SUPPORT_FILES = ("startup.c", "harness.c", "ts_cortex_m.h", "sections.ld")
TARGET_CFLAGS = (*CFLAGS, "-ffunction-sections", "-fdata-sections")
LDFLAGS = ("-nostartfiles", "--specs=rdimon.specs", "-Wl,--gc-sections")
DEFAULT_STACK_BYTES = 8192
_GCC_HINT = "apt-get install -y gcc-arm-none-eabi libnewlib-arm-none-eabi"
_QEMU_HINT = "apt-get install -y qemu-system-arm"
_BUILD_TIMEOUT_S = 120.0
_STATS_RE = re.compile(r"^ts-stats (.*)$", re.MULTILINE)
_OVERFLOW_RE = re.compile(r"region `(\w+)' overflowed by (\d+) bytes")

FOOTPRINT_METHOD = ("measured: arm-none-eabi-size -A of the linked test image; flash = text + "
                    "rodata + data (init image), RAM = data + bss (arena included), stack "
                    "reserved apart; the image holds the harness and newlib's semihosting "
                    "stdio, the model_* figures only model.c and its kernels (object files, "
                    "before --gc-sections)")


@dataclass(frozen=True)
class CortexMFootprint:
    """Flash and RAM of a linked image, from ``arm-none-eabi-size -A``.

    Attributes:
        flash_bytes: text + rodata + data of the whole image, bytes.
        ram_bytes: data + bss of the whole image (the arena included), bytes.
        stack_bytes: the reserved stack (``.stack``), bytes.
        model_flash_bytes: text + rodata + data of model.c and its kernels, bytes.
        model_ram_bytes: data + bss of model.c and its kernels (the arena), bytes.
        arena_bytes: the generated activation arena, bytes.
        sections: (name, bytes) of every loaded section of the image.
        method: how the figures were measured.
    """

    flash_bytes: int
    ram_bytes: int
    stack_bytes: int
    model_flash_bytes: int
    model_ram_bytes: int
    arena_bytes: int
    sections: tuple[tuple[str, int], ...]
    method: str = FOOTPRINT_METHOD


@dataclass(frozen=True)
class CortexMImage:
    """A linked test image for one board.

    Attributes:
        elf: the image (``model.elf``).
        target: the board's core, flags and memory map.
        generated: the model it was built from.
        footprint: its flash and RAM.
    """

    elf: Path
    target: CortexMTarget
    generated: GeneratedModel
    footprint: CortexMFootprint


@dataclass(frozen=True)
class CortexMFigures:
    """What one emulated run measured, with the image's footprint.

    Attributes:
        board, cpu, machine: the board, its core, the qemu machine.
        samples: inferences run.
        footprint: the image's ELF-measured flash and RAM (``CortexMFootprint``).
        stack_high_water_bytes: deepest stack use of the whole run (reset to the last
            sample), bytes.
        invoke_stack_bytes: deepest stack use below the caller inside ``model_invoke``, bytes.
        stack_method: how the stack was measured.
        instructions_per_inference: emulated instructions per ``model_invoke`` (mean).
        instructions_per_tick: the calibrated SysTick rate, instructions per tick.
        instructions_method: how instructions were counted (an emulated count, not time).
    """

    board: str
    cpu: str
    machine: str
    samples: int
    footprint: CortexMFootprint
    stack_high_water_bytes: int
    invoke_stack_bytes: int
    stack_method: str
    instructions_per_inference: int
    instructions_per_tick: float
    instructions_method: str


@dataclass(frozen=True)
class CortexMRun:
    """Outputs and figures of one emulated run.

    Attributes:
        outputs: (N, *output_shape[1:]) int8.
        figures: footprint, stack and instruction figures.
    """

    outputs: np.ndarray
    figures: CortexMFigures


def find_tool(name: str, hint: str) -> Path:
    """The path of ``name`` on ``PATH``.

    Raises:
        RuntimeUnavailableError: not found; one line that says how to install it.
    """
    found = shutil.which(name)
    if found is None:
        raise RuntimeUnavailableError(f"{name} not found on PATH; install with: {hint}")
    return Path(found)


def _size_tool(compiler: Path) -> Path:
    name = compiler.name
    sibling = compiler.with_name(name[:-3] + "size") if name.endswith("gcc") else None
    if sibling is not None and sibling.exists():
        return sibling
    return find_tool("arm-none-eabi-size", _GCC_HINT)


def _link(cc: Path, target: CortexMTarget, objects: list[Path], elf: Path, cwd: Path) -> None:
    try:
        _proc.run([cc, *target.cflags, *LDFLAGS, "-Wl,-T,link.ld", f"-Wl,-Map,{elf.stem}.map",
                   "-o", elf, *objects], timeout_s=_BUILD_TIMEOUT_S, cwd=cwd,
                  what=f"{cc.name} link for {target.board}")
    except RuntimeUnavailableError as exc:
        over = _OVERFLOW_RE.search(str(exc))
        if over is not None:
            region = target.region(over.group(1))
            raise BudgetExceededError(
                f"{target.board}: the {target.cpu} image does not fit: region {region.name} "
                f"({region.what}, {region.length_bytes} bytes at {region.origin:#010x}) "
                f"overflowed by {over.group(2)} bytes") from None
        if "rdimon.specs" in str(exc):
            raise RuntimeUnavailableError(f"newlib for arm-none-eabi not found ({exc}); "
                                          f"install with: {_GCC_HINT}") from None
        raise


def _check_budget(target: CortexMTarget, model: SectionSizes) -> None:
    for what, need, have in (("flash", model.flash_bytes, target.flash_budget_bytes),
                             ("RAM", model.ram_bytes, target.ram_budget_bytes)):
        if need > have:
            raise BudgetExceededError(
                f"{target.board}: the model's code and data need {need} bytes of {what}; "
                f"the board's {what} budget (total - reserved) is {have} bytes")


def support_files(target: CortexMTarget, stack_bytes: int) -> dict[str, str]:
    """The board support files of a test image, name -> text.

    ``SUPPORT_FILES`` (startup, harness, ``ts_cortex_m.h``, ``sections.ld``) and ``link.ld``:
    the target's MEMORY block, role aliases and ``STACK_BYTES``, then ``INCLUDE sections.ld``.

    Raises:
        ValueError: ``stack_bytes`` is not a positive multiple of 8.
    """
    if stack_bytes <= 0 or stack_bytes % 8:
        raise ValueError(f"stack_bytes must be a positive multiple of 8, got {stack_bytes}")
    files = {name: (SUPPORT_DIR / name).read_text() for name in SUPPORT_FILES}
    files["link.ld"] = target.linker_memory(stack_bytes)
    return files


def build_cortex_m(generated: GeneratedModel, board: BoardProfile,
                   out_dir: str | Path | None = None, *, compiler: str = "arm-none-eabi-gcc",
                   stack_bytes: int = DEFAULT_STACK_BYTES) -> CortexMImage:
    """Compile and link the generated model into a test image for ``board``'s core.

    Args:
        generated: what ``generate_c`` returned.
        board: a board with a qemu-system emulator whose core and machine are in
            ``_cortex_m_targets.CORES`` / ``MACHINES``.
        out_dir: where to build; default ``<generated.out_dir>/cortex-m-<board>``.
        compiler: the arm-none-eabi gcc on ``PATH`` (newlib with librdimon next to it).
        stack_bytes: the reserved stack (a multiple of 8), bytes.

    Returns:
        ``CortexMImage``: the ELF, the target and its footprint.

    Raises:
        BoardError: the board cannot be built for (no qemu-system machine, unknown core).
        ValueError: ``stack_bytes`` is not a positive multiple of 8.
        RuntimeUnavailableError: the compiler or newlib is missing, the build fails (the
            message quotes its last lines) or takes longer than 120 s.
        BudgetExceededError: the image overflows the board's flash or RAM, or the model's
            own code and data exceed the board's budgets.
    """
    target = cortex_m_target(board)
    support = support_files(target, stack_bytes)
    cc = find_tool(compiler, _GCC_HINT)
    size_tool = _size_tool(cc)
    out = (Path(out_dir) if out_dir is not None
           else generated.out_dir / f"cortex-m-{board.name}").resolve()  # cwd of the build
    out.mkdir(parents=True, exist_ok=True)
    for name, text in support.items():
        (out / name).write_text(text)
    sources = [*(p.resolve() for p in generated.sources), out / "startup.c", out / "harness.c"]
    for stale in out.glob("*.o"):
        stale.unlink()
    _proc.run([cc, *target.cflags, *TARGET_CFLAGS, f"-I{generated.out_dir.resolve()}", f"-I{out}", "-c",
               *sources], timeout_s=_BUILD_TIMEOUT_S, cwd=out,
              what=f"{compiler} build of {generated.model_c} for {board.name}")
    objects = [out / f"{src.stem}.o" for src in sources]
    model_objects = objects[:len(generated.sources)]
    model = object_sizes(read_sizes(size_tool, model_objects, timeout_s=_BUILD_TIMEOUT_S))
    _check_budget(target, model)
    elf = out / "model.elf"
    _link(cc, target, objects, elf, out)
    image = image_sizes(next(iter(read_sizes(size_tool, [elf], timeout_s=_BUILD_TIMEOUT_S)
                                  .values())), elf)
    footprint = CortexMFootprint(
        flash_bytes=image.flash_bytes, ram_bytes=image.ram_bytes, stack_bytes=image.stack,
        model_flash_bytes=model.flash_bytes, model_ram_bytes=model.ram_bytes,
        arena_bytes=generated.arena_bytes, sections=image.sections)
    return CortexMImage(elf=elf, target=target, generated=generated, footprint=footprint)


def qemu_options(target: CortexMTarget) -> list[str]:
    """The qemu-system-arm options, all but ``-kernel``, that run a test image of ``target``."""
    return ["-M", target.machine, *(("-cpu", target.qemu_cpu) if target.qemu_cpu else ()),
            "-nodefaults", "-display", "none", "-monitor", "none", "-serial", "none",
            "-icount", "shift=0", "-semihosting-config", "enable=on,target=native"]


def qemu_command(image: CortexMImage, qemu: Path) -> list[str | Path]:
    """The qemu-system-arm command line that runs ``image`` (in the folder of its files)."""
    return [qemu, *qemu_options(image.target), "-kernel", image.elf.resolve()]


def _stats(stdout: str, what: str) -> dict[str, int]:
    found = _STATS_RE.search(stdout)
    if found is None:
        raise RuntimeUnavailableError(f"{what}: no ts-stats line in the output "
                                      f"({_proc.last_lines(stdout) or 'no output'})")
    return {k: int(v) for k, v in (item.split("=") for item in found.group(1).split())}


def run_cortex_m(image: CortexMImage, x_int8: np.ndarray, *, qemu: str = "qemu-system-arm",
                 timeout_s: float = 300.0) -> CortexMRun:
    """Run a test image under qemu-system-arm on N int8 samples.

    Args:
        image: what ``build_cortex_m`` returned.
        x_int8: (N, *input_shape[1:]) int8 samples, quantized for the model's input.
        qemu: the qemu-system-arm on ``PATH``.
        timeout_s: wall-clock limit for the emulator, seconds.

    Returns:
        ``CortexMRun``: the (N, *output_shape[1:]) int8 outputs and the figures.

    Raises:
        DataError: ``x_int8`` is not int8 or does not hold whole input samples.
        RuntimeUnavailableError: qemu is missing, the guest faults or fails (the message
            quotes its last lines), or the run takes longer than ``timeout_s``.
    """
    gen = image.generated
    x = np.asarray(x_int8)
    sample = int(np.prod(gen.input_shape[1:], dtype=np.int64))
    if x.dtype != np.int8:
        raise DataError(f"x_int8 must be int8, got {x.dtype}")
    if x.ndim < 1 or int(np.prod(x.shape[1:], dtype=np.int64)) != sample:
        raise DataError(f"x_int8 has shape {x.shape}; expected "
                        f"(N, {', '.join(map(str, gen.input_shape[1:]))})")
    qemu_path = find_tool(qemu, _QEMU_HINT)
    n = x.shape[0]
    what = f"{qemu} -M {image.target.machine} on {n} samples ({image.target.board})"
    with tempfile.TemporaryDirectory(prefix="tinyshare-cortex-m-") as tmp:
        (Path(tmp) / "in.bin").write_bytes(np.ascontiguousarray(x).tobytes())
        proc = _proc.run(qemu_command(image, qemu_path), timeout_s=timeout_s, what=what,
                         cwd=Path(tmp))
        y = np.frombuffer((Path(tmp) / "out.bin").read_bytes(), dtype=np.int8)
    stats = _stats(proc.stdout, what)
    if stats["samples"] != n or y.size != n * int(np.prod(gen.output_shape[1:])):
        raise RuntimeUnavailableError(f"{what}: the guest ran {stats['samples']} samples and "
                                      f"wrote {y.size} bytes")
    return CortexMRun(outputs=y.reshape(n, *gen.output_shape[1:]).copy(),
                      figures=_figures(image, stats, n))


def _figures(image: CortexMImage, stats: dict[str, int], n: int) -> CortexMFigures:
    per_tick = stats["calib_instructions"] / stats["calib_ticks"]
    return CortexMFigures(
        board=image.target.board, cpu=image.target.cpu, machine=image.target.machine,
        samples=n, footprint=image.footprint,
        stack_high_water_bytes=stats["stack_peak"], invoke_stack_bytes=stats["invoke_stack"],
        stack_method=("measured: the stack is painted with 0xA5A5A5A5 at reset (and its free "
                      "part again before each model_invoke) and scanned for the deepest "
                      "overwritten word; high-water = reset to the last sample, invoke = "
                      "below the caller's stack pointer inside model_invoke"),
        instructions_per_inference=round(stats["invoke_ticks"] * per_tick / n),
        instructions_per_tick=per_tick,
        instructions_method=(
            "emulated instruction count, not time: qemu -icount shift=0 advances virtual "
            "time 1 ns per executed instruction; SysTick on the processor clock timed each "
            f"model_invoke, converted with a calibration loop ({per_tick:g} instructions "
            f"per tick, so +-{per_tick:g} per reading); mean over {n} samples. qemu does "
            "not model the DWT cycle counter, nor pipelines, caches or wait states"))
