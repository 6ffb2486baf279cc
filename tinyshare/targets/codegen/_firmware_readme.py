"""The ``README.md`` of a firmware folder (``write_firmware_folder``): its sections and their
small Markdown formatters.

The layout words and byte counts are ``model.h``'s: the layout comes from the same function
(NHWC for rank 4, NWC for rank 3, "as in the .tflite" otherwise) and a tensor's bytes are
its full element count, batch dimension included, as ``MODEL_INPUT_BYTES`` /
``MODEL_OUTPUT_BYTES``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from tinyshare.targets.board import BoardProfile
from tinyshare.targets.codegen._cortex_m_targets import CortexMTarget
from tinyshare.targets.codegen._model import GeneratedModel
from tinyshare.targets.codegen._render import _layout
from tinyshare.targets.codegen.cortex_m import TARGET_CFLAGS, CortexMFigures

if TYPE_CHECKING:
    from tinyshare.targets.codegen.firmware import TflmFigures


def _b(n: int | None) -> str:
    """``1234 -> "1,234 B"``; ``None -> "unknown"``."""
    return "unknown" if n is None else f"{n:,} B"


def _ratio(a: int | None, b: int | None) -> str:
    """``a / b`` with three decimals; "n/a" when either is unknown or ``b`` is 0."""
    return "n/a" if a is None or not b else f"{a / b:.3f}"


def _cell(value: str) -> str:
    return value.replace("|", "\\|").replace("\n", " ")


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table as lines; ``|`` inside a cell is escaped so every row keeps its
    columns."""
    return ["| " + " | ".join(map(_cell, head)) + " |", "|" + "---|" * len(head),
            *("| " + " | ".join(map(_cell, r)) + " |" for r in rows)]


def _nbytes(shape: tuple[int, ...]) -> int:
    """Bytes of an int8 tensor of this shape: every element, batch included (as
    ``MODEL_INPUT_BYTES`` / ``MODEL_OUTPUT_BYTES`` in ``model.h``)."""
    return math.prod(shape)


def _io_section(g: GeneratedModel) -> list[str]:
    rows = [[what, "×".join(map(str, shape)), _layout(shape), "int8", str(_nbytes(shape)),
             f"{scale:.9g}", str(zp), f"`MODEL_{what.upper()}_*`"]
            for what, shape, scale, zp in (
                ("input", g.input_shape, g.input_scale, g.input_zero_point),
                ("output", g.output_shape, g.output_scale, g.output_zero_point))]
    return [
        "## Input and output", "",
        *_table(["tensor", "shape", "layout", "dtype", "bytes", "scale", "zero point",
                 "model.h"], rows), "",
        "Values are quantized: **real = scale * (q - zero_point)**. Arrays are C order; image "
        "inputs are NHWC (channels last), as in the `.tflite`, not PyTorch's NCHW. The output "
        f"holds {_nbytes(g.output_shape)} int8 values per inference (last dimension "
        f"{g.output_shape[-1]}: for a classifier, one score per class; the largest q is the "
        "largest real value, since scale > 0).", "",
        "Quantize an input value x (float) as the runtimes do (round half away from zero, "
        "saturate):", "",
        "```c", "#include <math.h>", '#include "model.h"', "",
        "static int8_t quantize_input(float x)", "{",
        "    long q = lroundf(x / MODEL_INPUT_SCALE) + MODEL_INPUT_ZERO_POINT;",
        "    return (int8_t)(q < -128 ? -128 : q > 127 ? 127 : q);", "}", "",
        "static float dequantize_output(int8_t q)", "{",
        "    return MODEL_OUTPUT_SCALE * (float)(q - MODEL_OUTPUT_ZERO_POINT);", "}", "```", ""]


def _project_section(g: GeneratedModel, headers: tuple[str, ...], t: CortexMTarget,
                     stack_bytes: int) -> list[str]:
    kernels = [s.name for s in g.sources[1:]]
    return [
        "## Add it to a firmware project", "",
        f"Add **`model.c`**, the kernels ({', '.join(f'`{k}`' for k in kernels) or 'none'}) "
        f"and the headers ({', '.join(f'`{h}`' for h in headers)}). They are C99 with no "
        "heap, no RTOS and no libc beyond `<string.h>` (`memcpy`, `memmove`, `memset`); "
        "compile them with your project's flags "
        f"(this folder's test image uses `{' '.join((*t.cflags, *TARGET_CFLAGS))}`). Do not "
        "edit `ts_config.h`: it selects the rounding the constants were computed for "
        f"({g.rounding}). `model.h` has a C++ guard, so a C++ firmware (an Arduino sketch, "
        "say) includes it as it is; it also names the source .tflite and its SHA-256.", "",
        "```c", '#include "model.h"', "",
        "static int8_t in[MODEL_INPUT_BYTES], out[MODEL_OUTPUT_BYTES];", "",
        "/* x: MODEL_INPUT_BYTES real values in the input layout; y: MODEL_OUTPUT_BYTES */",
        "int run_model(const float *x, float *y)", "{", "    int i;",
        "    for (i = 0; i < MODEL_INPUT_BYTES; ++i) {", "        in[i] = quantize_input(x[i]);",
        "    }", "    if (model_invoke(in, out) != 0) {", "        return -1;", "    }",
        "    for (i = 0; i < MODEL_OUTPUT_BYTES; ++i) {",
        "        y[i] = dequantize_output(out[i]);", "    }", "    return 0;", "}", "```", "",
        "`startup.c`, `harness.c`, `ts_cortex_m.h`, `link.ld` and `sections.ld` are only for "
        "the standalone test image below: your project brings its own startup code and "
        "linker script. With `-fdata-sections` the arena is the section `.bss.arena` of "
        "`model.o`, so a linker script can place it in a chosen RAM; the constants are "
        "`model.o`'s `.rodata*`.", "",
        "## Build and run the test image under qemu", "",
        "```sh",
        "make              # model.elf (CC=... to use another arm-none-eabi-gcc)",
        "make size         # arm-none-eabi-size -A model.elf",
        "make run          # reads in.bin, writes out.bin, prints one ts-stats line",
        "make clean", "```", "",
        f"`in.bin` holds N samples of {_nbytes(g.input_shape)} int8 bytes back to back "
        f"(e.g. numpy: `x_int8.tofile(\"in.bin\")`); `out.bin` receives N × "
        f"{_nbytes(g.output_shape)} bytes "
        f"(`np.fromfile(\"out.bin\", np.int8).reshape(-1, {', '.join(map(str, g.output_shape[1:]))})`). "
        "The harness uses semihosting (newlib `--specs=rdimon.specs`) for file I/O. "
        f"`make run` runs `qemu-system-arm -M {t.machine}`: an emulated machine with the "
        f"board's core ({t.cpu}), not the board itself. `link.ld` uses that machine's "
        "memory map, with the regions that stand for the board's flash "
        f"({t.board_flash}) and RAM ({t.board_ram}) cut to the board's sizes, so an image "
        f"too big for the board fails to link; the stack reserves {stack_bytes:,} B.", ""]


def _memory_section(g: GeneratedModel, board: BoardProfile) -> list[str]:
    return [
        "## Memory", "",
        f"- Activation arena: **{g.arena_bytes:,} bytes** (`MODEL_ARENA_BYTES`), one static "
        "16-byte-aligned array in `model.c` (RAM). `model_invoke` is not reentrant.",
        f"- Constants: {g.const_bytes:,} bytes in flash ({g.weight_bytes:,} B of weights "
        f"and biases from the `.tflite`, {g.table_bytes:,} B of requantization tables).",
        f"- Board ({board.display_name}): flash {board.flash_bytes:,} B, of which "
        f"{board.reserved_flash_bytes:,} B are reserved (budget {board.flash_budget_bytes:,} B); "
        f"RAM {board.ram_bytes:,} B, of which {board.reserved_ram_bytes:,} B are reserved "
        f"(budget {board.ram_budget_bytes:,} B). From tinyshare's board profile.", ""]


def _figures_section(f: CortexMFigures) -> list[str]:
    fp = f.footprint
    rows = [
        ["test image flash (ELF)", _b(fp.flash_bytes), "measured"],
        ["test image RAM, data + bss (ELF)", _b(fp.ram_bytes), "measured"],
        ["model flash: model.c + kernels", _b(fp.model_flash_bytes), "measured"],
        ["model RAM: model.c + kernels (arena included)", _b(fp.model_ram_bytes), "measured"],
        ["stack reserved", _b(fp.stack_bytes), "linker script"],
        ["stack high-water, whole run", _b(f.stack_high_water_bytes), "measured (emulated)"],
        ["stack high-water inside model_invoke", _b(f.invoke_stack_bytes),
         "measured (emulated)"],
        ["instructions per inference", f"{f.instructions_per_inference:,}",
         "emulated instruction count, not time"],
    ]
    return [
        "## Measured footprint", "",
        f"The test image of this folder, built for {f.cpu} and run on {f.samples} samples "
        f"under qemu-system-arm -M {f.machine}:", "",
        *_table(["figure", "value", "how"], rows), "",
        f"- Sizes: {fp.method}.", f"- Stack: {f.stack_method}.",
        f"- Instructions: {f.instructions_method}.", "",
        "An instruction count is not a latency: the board's time per inference also depends "
        "on its pipeline, caches and flash wait states, which qemu does not model.", ""]


def _runtime_code_text(tflm: TflmFigures) -> str:
    """``"30,000 B (estimate; <method>)"``: the runtime code with its caveats."""
    notes = []
    if tflm.runtime_code_estimate and tflm.runtime_code_bytes is not None:
        notes.append("estimate")
    if tflm.runtime_code_method:
        notes.append(tflm.runtime_code_method)
    return _b(tflm.runtime_code_bytes) + (f" ({'; '.join(notes)})" if notes else "")


def _tflm_section(g: GeneratedModel, f: CortexMFigures | None, tflm: TflmFigures) -> list[str]:
    model_file = f"`{tflm.model_file}`"
    if f is not None:
        ram, ram_how = (f.footprint.model_ram_bytes + f.invoke_stack_bytes,
                        "measured: data + bss of model.c and kernels + stack high-water in "
                        "model_invoke")
        flash, flash_how = f.footprint.model_flash_bytes, "measured: code + constants"
    else:
        ram, ram_how = g.arena_bytes, "arena only (the generator's plan; stack not measured)"
        flash, flash_how = None, "not measured (no build figures given)"
    tflm_flash = (None if tflm.runtime_code_bytes is None
                  else tflm.model_file_bytes + tflm.runtime_code_bytes)
    rows = [
        ["RAM", f"{_b(ram)} ({ram_how})", f"{_b(tflm.arena_bytes)} arena ({tflm.arena_method})",
         _ratio(ram, tflm.arena_bytes)],
        ["model data (flash)", f"{_b(g.const_bytes)} (weights + requantization tables)",
         f"{_b(tflm.model_file_bytes)} ({model_file})",
         _ratio(g.const_bytes, tflm.model_file_bytes)],
        ["model + code (flash)", f"{_b(flash)} ({flash_how})",
         f"{_b(tflm_flash)}: {model_file} + runtime code {_runtime_code_text(tflm)}",
         _ratio(flash, tflm_flash)],
    ]
    return ["## Compared with TFLM", "", *_table(["", "generated C", "TFLM", "ratio"], rows),
            "", "Ratio = generated C ÷ TFLM (below 1: the generated C is smaller).", ""]


def readme_text(generated: GeneratedModel, board: BoardProfile, target: CortexMTarget,
                headers: tuple[str, ...], stack_bytes: int, figures: CortexMFigures | None,
                tflm: TflmFigures | None) -> str:
    """The folder's ``README.md``.

    Args:
        generated: the generated C the folder holds.
        board: the board the folder is written for.
        target: the board's Cortex-M target (flags, qemu machine, memory regions).
        headers: the header files copied into the folder.
        stack_bytes: the test image's reserved stack, bytes.
        figures: the measured figures of this folder's test image, or None (no footprint
            section).
        tflm: TFLM's figures for the same model, or None (no comparison section).

    Returns:
        The README's Markdown text.
    """
    g = generated
    lines = [
        f"# {g.tflite_path.name} for {board.display_name}: generated C, no interpreter", "",
        f"This folder is the int8 model `{g.tflite_path.name}` as plain C99, written by "
        f"tinyshare for **{board.display_name}** (`{board.name}`, {board.cpu} at "
        f"{board.clock_hz / 1e6:g} MHz): no interpreter and no heap, with kernels that follow "
        f"TFLite Micro's int8 reference arithmetic ({g.rounding} rounding; {len(g.ops)} "
        f"op{'s' if len(g.ops) != 1 else ''}: "
        f"{', '.join(sorted(set(g.ops)))}). It also holds a standalone test image for the "
        "board's core that runs under qemu-system-arm.", "",
        "## Entry point", "",
        "```c", '#include "model.h"', "", "int model_invoke(const int8_t *in, int8_t *out);",
        "```", "",
        "`in`: `MODEL_INPUT_BYTES` int8 values; `out`: receives `MODEL_OUTPUT_BYTES` int8 "
        "values. Returns 0, or -1 when a pointer is NULL.", "",
        *_io_section(g), *_memory_section(g, board),
        *_project_section(g, headers, target, stack_bytes)]
    if figures is not None:
        lines += _figures_section(figures)
    if tflm is not None:
        lines += _tflm_section(g, figures, tflm)
    return "\n".join(lines)
