"""A deployable firmware folder for an MCU board: the generated C, a test image, a README.

Public API::

    gen = generate_c("model_int8.tflite", "build/c")
    write_firmware_folder(gen, load_board("nano33-ble-sense"), "runs/r/nano33-ble-sense/c",
                          figures=run.figures,      # optional: measured footprint
                          tflm=TflmFigures(arena_bytes=2_000, model_file="model_int8.tflite",
                                           model_file_bytes=1_500,
                                           runtime_code_bytes=None))   # optional: vs TFLM
    # in that folder: make; make size; make run (in.bin -> out.bin under qemu-system-arm)

The folder holds copies of the generated sources (``model.c``, the kernels and every header
they include), the board support files of ``build_cortex_m`` (``startup.c``, ``harness.c``,
``ts_cortex_m.h``, ``sections.ld`` and ``link.ld``, from the same ``support_files``), a
``Makefile`` whose flags are ``build_cortex_m``'s (written from the same Python values, so
``make`` links the same image) and a ``README.md`` for the firmware engineer. Every path in
it is relative to the folder.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from tinyshare.artifacts import atomic_write_bytes, atomic_write_text
from tinyshare.errors import ModelFileError
from tinyshare.targets.board import BoardProfile
from tinyshare.targets.codegen._cortex_m_targets import CortexMTarget, cortex_m_target
from tinyshare.targets.codegen._firmware_readme import readme_text
from tinyshare.targets.codegen._model import GeneratedModel
from tinyshare.targets.codegen.cortex_m import (
    DEFAULT_STACK_BYTES,
    LDFLAGS,
    TARGET_CFLAGS,
    CortexMFigures,
    qemu_options,
    support_files,
)

__all__ = ["TflmFigures", "write_firmware_folder"]

_INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.MULTILINE)
_TEST_IMAGE_SOURCES = ("startup.c", "harness.c")


@dataclass(frozen=True)
class TflmFigures:
    """TFLite Micro's figures for the same model, for the README's comparison table.

    Attributes:
        arena_bytes: TFLM's measured tensor arena for this model, bytes (> 0).
        model_file: the name of the ``.tflite`` TFLM would run (shown in the README).
        model_file_bytes: the size of that ``.tflite``, bytes (it goes to flash).
        runtime_code_bytes: TFLM's runtime code (interpreter + kernels) in flash, bytes;
            None when unknown.
        runtime_code_estimate: True when ``runtime_code_bytes`` is an estimate; the README
            labels it "(estimate)".
        arena_method: how ``arena_bytes`` was obtained, shown next to it in the README.
        runtime_code_method: how ``runtime_code_bytes`` was obtained, with its caveats
            (e.g. "64-bit host build"), shown next to it in the README; "" shows nothing.

    Raises:
        ValueError: a field has the wrong type, a byte count is negative, or
            ``arena_bytes`` is 0 (one line naming the field and the value).
    """

    arena_bytes: int
    model_file: str
    model_file_bytes: int
    runtime_code_bytes: int | None
    runtime_code_estimate: bool = True
    arena_method: str = "measured TFLM arena"
    runtime_code_method: str = ""

    def __post_init__(self) -> None:
        for name in ("arena_bytes", "model_file_bytes", "runtime_code_bytes"):
            value = getattr(self, name)
            if value is None and name == "runtime_code_bytes":
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"TflmFigures.{name} must be a non-negative int (bytes), "
                                 f"got {value!r}")
        if self.arena_bytes == 0:
            raise ValueError("TflmFigures.arena_bytes must be positive, got 0")
        if not isinstance(self.runtime_code_estimate, bool):
            raise ValueError("TflmFigures.runtime_code_estimate must be a bool, got "
                             f"{self.runtime_code_estimate!r}")
        for name in ("model_file", "arena_method", "runtime_code_method"):
            value = getattr(self, name)
            if not isinstance(value, str) or "\n" in value:
                raise ValueError(f"TflmFigures.{name} must be a one-line str, got {value!r}")
        if not self.model_file:
            raise ValueError("TflmFigures.model_file must name the .tflite, got ''")


def _check_figures(figures: CortexMFigures, board: BoardProfile, generated: GeneratedModel,
                   stack_bytes: int) -> None:
    fp = figures.footprint
    for what, got, want in (("board", figures.board, board.name),
                            ("arena_bytes", fp.arena_bytes, generated.arena_bytes),
                            ("stack_bytes", fp.stack_bytes, stack_bytes)):
        if got != want:
            raise ValueError(f"figures: {what} is {got!r} but the folder is written for "
                             f"{want!r}; pass the figures of this model, board and stack")


def _model_files(generated: GeneratedModel) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The names of the sources (``model.c`` first) and of the headers they need: ``model.h``
    and every header the sources include, transitively, sorted."""
    src = generated.out_dir
    sources = tuple(s.name for s in generated.sources)
    seen = {*sources, generated.model_h.name}
    todo = list(seen)
    while todo:
        name = todo.pop()
        for inc in _INCLUDE_RE.findall((src / name).read_text()):
            if inc in seen:
                continue
            if not (src / inc).is_file():
                raise ModelFileError(f"{src / name} includes \"{inc}\", which is not in the "
                                     f"generated folder {src}")
            seen.add(inc)
            todo.append(inc)
    return sources, tuple(sorted(seen - set(sources)))


def _words(values) -> str:
    return " ".join(str(v) for v in values)


def _makefile_text(generated: GeneratedModel, target: CortexMTarget,
                   headers: tuple[str, ...]) -> str:
    """The folder's ``Makefile``: ``build_cortex_m``'s flags, ``size``, ``run``, ``clean``.

    ``run`` feeds ``in.bin`` (samples of ``MODEL_INPUT_BYTES``: every element of the input
    shape, batch included) and writes ``out.bin``.
    """
    model_srcs = _words(s.name for s in generated.sources)
    return "\n".join([
        f"# Generated by tinyshare: the standalone test image of {generated.tflite_path.name} for "
        f"{target.board} ({target.cpu}).",
        "# The flags are those of tinyshare's Cortex-M build (build_cortex_m), so `make` links",
        "# the image whose sizes tinyshare reports. See README.md.",
        "",
        "# Overridable: make CC=... (or CC in the environment). `CC ?=` would not do, as make",
        "# has a built-in CC (cc); replace only that default.",
        "ifeq ($(origin CC),default)",
        "CC = arm-none-eabi-gcc",
        "endif",
        "SIZE ?= $(patsubst %gcc,%size,$(CC))",
        "QEMU ?= qemu-system-arm",
        "",
        f"CPUFLAGS = {_words(target.cflags)}",
        f"CFLAGS = {_words(TARGET_CFLAGS)}",
        f"LDFLAGS = {_words(LDFLAGS)}",
        "",
        f"MODEL_SRCS = {model_srcs}",
        f"IMAGE_SRCS = $(MODEL_SRCS) {_words(_TEST_IMAGE_SOURCES)}",
        "OBJS = $(IMAGE_SRCS:.c=.o)",
        f"HEADERS = {_words(headers)} ts_cortex_m.h",
        "",
        ".PHONY: all size run clean",
        "",
        "all: model.elf",
        "",
        "model.elf: $(OBJS) link.ld sections.ld",
        "\t$(CC) $(CPUFLAGS) $(LDFLAGS) -Wl,-T,link.ld -Wl,-Map,model.map -o $@ $(OBJS)",
        "",
        "%.o: %.c $(HEADERS)",
        "\t$(CC) $(CPUFLAGS) $(CFLAGS) -c $< -o $@",
        "",
        "size: model.elf",
        "\t$(SIZE) -A model.elf",
        "",
        f"# N int8 samples of {math.prod(generated.input_shape)} bytes in in.bin -> "
        f"N outputs of {math.prod(generated.output_shape)} bytes in out.bin",
        "run: model.elf",
        "\t@test -f in.bin || { echo 'make run: write the int8 input samples to in.bin "
        "first (see README.md)' >&2; exit 1; }",
        f"\t$(QEMU) {_words(qemu_options(target))} -kernel model.elf",
        "",
        "clean:",
        "\trm -f $(OBJS) model.elf model.map out.bin",
        "",
    ])


def write_firmware_folder(generated: GeneratedModel, board: BoardProfile, out_dir: str | Path,
                          *, figures: CortexMFigures | None = None,
                          tflm: TflmFigures | None = None,
                          stack_bytes: int = DEFAULT_STACK_BYTES) -> Path:
    """Write a folder a firmware engineer can drop into a project, with a test image.

    Args:
        generated: what ``generate_c`` returned; its files are copied, not regenerated.
        board: an MCU board with a qemu-system emulator (see ``build_cortex_m``).
        out_dir: the folder to write (created; files of the same name are overwritten).
        figures: what ``run_cortex_m`` measured for this model and board (same
            ``stack_bytes``), for the README's footprint table; None leaves it out.
        tflm: TFLM's figures for the same model, for the README's comparison table (RAM,
            model data and model + code, with their methods); None leaves it out.
        stack_bytes: the test image's reserved stack (a positive multiple of 8), bytes.

    Returns:
        The folder: the generated sources and headers, ``startup.c``, ``harness.c``,
        ``ts_cortex_m.h``, ``sections.ld``, ``link.ld``, ``Makefile`` and ``README.md``.

    Raises:
        BoardError: the board has no Cortex-M target (no qemu-system machine, unknown core).
        ValueError: ``stack_bytes`` is not a positive multiple of 8; ``figures`` are of
            another board, arena or stack.
        TypeError: ``tflm`` is not a ``TflmFigures`` (or None).
        ModelFileError: a generated file includes a header missing from its folder.
    """
    target = cortex_m_target(board)
    support = support_files(target, stack_bytes)
    if figures is not None:
        _check_figures(figures, board, generated, stack_bytes)
    if tflm is not None and not isinstance(tflm, TflmFigures):
        raise TypeError(f"tflm must be a TflmFigures or None, got {type(tflm).__name__}")
    sources, headers = _model_files(generated)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in (*sources, *headers):
        atomic_write_bytes(out / name, (generated.out_dir / name).read_bytes())
    for name, text in support.items():
        atomic_write_text(out / name, text)
    atomic_write_text(out / "Makefile", _makefile_text(generated, target, headers))
    atomic_write_text(out / "README.md", readme_text(generated, board, target, headers,
                                                     stack_bytes, figures, tflm))
    return out
