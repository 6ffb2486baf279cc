"""Text of ``model.h`` and ``model.c``: constants, requantization tables, op parameters,
the arena and ``model_invoke``. ``_emit`` decides what goes in; this module only writes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from tinyshare.errors import UnsupportedOpError
from tinyshare.targets.codegen._graph import Op, Tensor
from tinyshare.targets.codegen._model import ConstBuffer
from tinyshare.targets.codegen._ops import Lowered

if TYPE_CHECKING:
    from tinyshare.targets.codegen._emit import _Emitter

_C_TYPES = {"int8": ("int8_t", 16), "int32": ("int32_t", 8)}
_PER_LINE_PACKED = 16


def _c_values(values: np.ndarray, per_line: int) -> str:
    flat = [str(int(v)) for v in np.ravel(values)]
    rows = [", ".join(flat[i:i + per_line]) for i in range(0, len(flat), per_line)]
    return ",\n    ".join(rows)


def _shape(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def const_block(e: _Emitter) -> tuple[list[str], list[ConstBuffer]]:
    """One ``static const`` array per buffer the ops read, with a comment naming its readers;
    two (``ts_idx<buffer>`` uint8 indices, ``ts_lut<buffer>`` int8 tables) per codebook.

    Raises:
        UnsupportedOpError: tensors of different dtypes, or not int8/int32, share a buffer.
    """
    lines, infos = [], []
    for buf in sorted(e.buffers_used):
        tensors = e.buffers_used[buf]
        first = tensors[0]
        if any(t.dtype != first.dtype for t in tensors) or first.dtype not in _C_TYPES:
            kinds = sorted({t.dtype for t in tensors})
            raise UnsupportedOpError(f"buffer {buf}: read as {kinds}; the C generator emits "
                                     f"int8 and int32 constants of one type per buffer")
        ctype, per_line = _C_TYPES[first.dtype]
        readers = tuple(sorted(e.buffer_readers[buf]))
        names = tuple(t.name for t in tensors)
        cb = e.codebooks.get(buf)
        note = ("" if cb is None else
                f"; codebook: {cb.bits}-bit indices, {cb.channels} x {1 << cb.bits} values, "
                f"{cb.plain_nbytes} -> {cb.nbytes} bytes")
        lines.append(f"/* buffer {buf}: {_shape(first.shape)} {first.dtype}, read by op"
                     f"{'s' if len(readers) > 1 else ''} {', '.join(map(str, readers))}"
                     f"{' (shared)' if len(readers) > 1 else ''}{note} */")
        if cb is None:
            lines.append(f"static const {ctype} ts_buf{buf}[{first.numel}] = {{\n    "
                         f"{_c_values(first.data, per_line)}\n}};")
            c_name, nbytes = f"ts_buf{buf}", first.numel * first.data.itemsize
        else:
            lines.append(f"static const uint8_t ts_idx{buf}[{cb.indices.size}] = {{\n    "
                         f"{_c_values(cb.indices, _PER_LINE_PACKED)}\n}};")
            lines.append(f"static const int8_t ts_lut{buf}[{cb.table.size}] = {{\n    "
                         f"{_c_values(cb.table, _PER_LINE_PACKED)}\n}};")
            c_name, nbytes = f"ts_idx{buf}", cb.nbytes
        infos.append(ConstBuffer(buffer=buf, c_name=c_name, dtype=first.dtype, shape=first.shape,
                                 nbytes=nbytes, tensors=names, reader_ops=readers,
                                 packed_bits=None if cb is None else cb.bits))
    return lines, infos


def table_block(e: _Emitter) -> tuple[list[str], int]:
    """The requantization tables (int32 multipliers, int8 shifts) and their bytes."""
    lines, nbytes = [], 0
    for (mults, shifts), name in e.tables.items():
        n = len(mults)
        lines.append(f"static const int32_t {name}_mult[{n}] = {{{', '.join(map(str, mults))}}};")
        lines.append(f"static const int8_t {name}_shift[{n}] = {{{', '.join(map(str, shifts))}}};")
        nbytes += 5 * n
    return lines, nbytes


def params_block(lowered: list[tuple[Op, Lowered]]) -> list[str]:
    """One ``static const`` parameter struct per op that has one (``op<index>_p``)."""
    lines = []
    for op, low in lowered:
        if low.params_type is None:
            continue
        fields = ",\n    ".join(f".{k} = {v}" for k, v in low.params.items())
        lines.append(f"static const {low.params_type} op{op.index}_p = {{\n    {fields}\n}};")
    return lines


def _layout(shape: tuple[int, ...]) -> str:
    return {4: "NHWC", 3: "NWC"}.get(len(shape), "as in the .tflite")


def _io_defines(prefix: str, t: Tensor, what: str) -> list[str]:
    return [
        f"/* {what}: {_shape(t.shape)} int8, {_layout(t.shape)}; real value = "
        f"{prefix}_SCALE * (q - {prefix}_ZERO_POINT) */",
        f"#define {prefix}_BYTES {t.numel}",
        f"#define {prefix}_RANK {len(t.shape)}",
        f"#define {prefix}_DIMS {{{', '.join(map(str, t.shape))}}}",
        f"#define {prefix}_SCALE {t.scale:.9g}f",
        f"#define {prefix}_ZERO_POINT ({t.zero_point})",
    ]


def header_text(model_name: str, x: Tensor, y: Tensor, arena_bytes: int, *,
                source_sha256: str, rounding: str) -> str:
    """``model.h``: the source file and its SHA-256, I/O sizes, shapes, layout and
    quantization, the output's last dimension (classes), the arena size, the requantization
    rounding, and ``model_invoke`` (with a C++ guard, so a C++ firmware can include it)."""
    return "\n".join([
        f"/* Generated by tinyshare from {model_name}; do not edit.",
        f" * Source SHA-256: {source_sha256}",
        f" * Requantization: {rounding} rounding (TS_SINGLE_ROUNDING in ts_config.h). */",
        "#ifndef TS_MODEL_H", "#define TS_MODEL_H", "", "#include <stdint.h>", "",
        "#ifdef __cplusplus", 'extern "C" {', "#endif", "",
        *_io_defines("MODEL_INPUT", x, "Input"), "",
        *_io_defines("MODEL_OUTPUT", y, "Output"),
        "/* Last output dimension: the class scores of a classifier. */",
        f"#define MODEL_OUTPUT_CLASSES {y.shape[-1] if y.shape else 1}", "",
        "/* Activation arena (static, inside model.c), bytes. */",
        f"#define MODEL_ARENA_BYTES {arena_bytes}", "",
        "/* Run the model on one sample: MODEL_INPUT_BYTES in, MODEL_OUTPUT_BYTES out.",
        " * Returns 0 on success, -1 when a pointer is NULL. Not reentrant (one static arena). */",
        "int model_invoke(const int8_t *in, int8_t *out);", "",
        "#ifdef __cplusplus", "}", "#endif", "", "#endif /* TS_MODEL_H */", "",
    ])


def source_text(model_name: str, lowered: list[tuple[Op, Lowered]], const_lines: list[str],
                table_lines: list[str], io_offsets: tuple[int, int],
                summary: str) -> str:
    """``model.c``: the arrays, the parameter structs, the arena and ``model_invoke``."""
    body = [f"    /* op {op.index}: {op.code} */\n    "
            + low.call.replace("{p}", f"&op{op.index}_p") for op, low in lowered]
    return "\n".join([
        f"/* Generated by tinyshare from {model_name}; do not edit.",
        f" * {summary} */",
        "#include <string.h>", "", '#include "model.h"', '#include "ts_kernels.h"', "",
        "#if defined(__GNUC__) || defined(__clang__)",
        "#define TS_ALIGN16 __attribute__((aligned(16)))", "#else", "#define TS_ALIGN16", "#endif",
        "", "/* ---- constants: one array per .tflite buffer (a codebook: indices + table) ---- */",
        *const_lines, "",
        "/* ---- requantization tables (computed by the generator) ---- */", *table_lines, "",
        "/* ---- op parameters ---- */", *params_block(lowered), "",
        "static int8_t arena[MODEL_ARENA_BYTES] TS_ALIGN16;", "",
        "int model_invoke(const int8_t *in, int8_t *out)", "{",
        "    if (in == NULL || out == NULL) {", "        return -1;", "    }",
        f"    memcpy(arena + {io_offsets[0]}, in, MODEL_INPUT_BYTES);",
        *body,
        f"    memcpy(out, arena + {io_offsets[1]}, MODEL_OUTPUT_BYTES);",
        "    return 0;", "}", "",
    ])
