"""Footprint of a checked model: RAM figures (offline and TFLM-measured), runtime code, verdict.

* ``arena_estimate``: activations packed offline from tensor lifetimes (any format) and, for
  .tflite, our TFLM arena estimate (``estimate_tflm_arena``);
* ``measure_arena``: the smallest TFLM arena that allocates and invokes (``find_arena_bytes``);
* ``runtime_code``: TFLM boards: ``tflm_code_estimate`` of the model's ops; Linux boards: the
  largest installed package of the board's runtimes for the format (the host wheel);
* ``footprint``: ``assess`` of the flash need (file + runtime code) and the RAM need (the
  measured arena, else the estimate, on TFLM boards; file + planned activations, a lower
  bound, on Linux boards) against the board's budgets.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from tinyshare.errors import (
    DataError,
    ModelFileError,
    RuntimeUnavailableError,
    TinyshareError,
    UnsupportedOpError,
)

if TYPE_CHECKING:
    from tinyshare.export.inspect import ModelInfo
    from tinyshare.targets.board import BoardProfile
    from tinyshare.targets.footprint import Footprint

__all__ = ["CodeFigures", "RamFigures", "arena_estimate", "footprint", "measure_arena",
           "runtime_code"]


def _tensor_bytes(t) -> int:
    """Bytes of a tensor's data (0 when its shape is unknown or its element size is)."""
    if t.shape is None or any(d < 0 for d in t.shape):
        return 0
    from tinyshare.export.inspect import DTYPE_BYTES

    return math.prod(t.shape) * DTYPE_BYTES.get(t.dtype, 0)


@dataclass(frozen=True)
class RamFigures:
    """A model's RAM figures, offline and (for TFLM) measured, in bytes.

    Attributes:
        planned_bytes: activations packed offline from tensor lifetimes (greedy by size,
            16-byte aligned), no runtime overhead: a lower bound of any runtime's RAM.
        estimate_bytes: our TFLM arena estimate (``estimate_tflm_arena``, .tflite only), or None.
        persistent_bytes: its modelled persistent part, or None.
        estimate_method: how the offline figure was made.
        measured_bytes: the smallest TFLM arena that allocates and invokes, or None.
        measured_method: how it was measured, or None.
        measure_note: why it was not measured, or None.
    """

    planned_bytes: int
    estimate_bytes: int | None
    persistent_bytes: int | None
    estimate_method: str
    measured_bytes: int | None = None
    measured_method: str | None = None
    measure_note: str | None = None


@dataclass(frozen=True)
class CodeFigures:
    """Runtime code counted in the flash need.

    Attributes:
        code_bytes: the bytes counted, or None when there is no estimate.
        method: how, in one line ("estimate: ...", or why unknown).
        per_part_bytes: TFLM: "core", "shared kernel helpers" and each op code -> bytes;
            Linux: each sized runtime -> its package's code bytes.
    """

    code_bytes: int | None
    method: str
    per_part_bytes: Mapping[str, int] = field(default_factory=dict)


def arena_estimate(info: ModelInfo, notes: list[str]) -> RamFigures:
    """The offline RAM figures of a model, before any runtime runs it.

    Args:
        info: the model read back.
        notes: caveats are appended here (e.g. no TFLM estimate for an element type).

    Returns:
        ``RamFigures`` without the measured fields.
    """
    from tinyshare.targets.arena_plan import Buffer, estimate_tflm_arena, plan_arena

    by_name = {t.name: t for t in info.tensors}
    planned = plan_arena([Buffer(n, _tensor_bytes(by_name[n]), a, b)
                          for n, (a, b) in info.lifetimes().items()]).total_bytes
    method = ("activations packed offline from tensor lifetimes (greedy by size, 16-byte "
              "aligned); no runtime overhead")
    if info.format == "tflite":
        try:
            est = estimate_tflm_arena(info)
        except ModelFileError as e:
            notes.append(f"no TFLM arena estimate: {str(e).splitlines()[0]}")
        else:
            return RamFigures(planned_bytes=est.planned_bytes, estimate_bytes=est.estimate_bytes,
                              persistent_bytes=est.persistent_bytes, estimate_method=est.method)
    return RamFigures(planned_bytes=planned, estimate_bytes=None, persistent_bytes=None,
                      estimate_method=method)


def measure_arena(path: Path, ram: RamFigures, sample, why_not: str, data,
                  reasons: list[str]) -> RamFigures:
    """Measure TFLM's smallest working arena (or note ``why_not``).

    Args:
        path: the .tflite file.
        ram: the offline figures from ``arena_estimate``.
        sample: (1, ...) float32, one sample in the model's input layout.
        why_not: a reason not to run TFLM ("" to measure).
        data: the data file the sample came from (None: an all-zero sample), for messages.
        reasons: when TFLM cannot allocate and invoke the model at any arena up to its
            search limit (or crashes), the reason is appended here (a FAIL).

    Returns:
        ``ram`` with ``measured_bytes`` and ``measured_method``, or with ``measure_note``.

    Raises:
        DataError: the sample does not fit the model's input (naming the data file).
    """
    from tinyshare.targets.runtimes.tflm import find_arena_bytes

    if why_not:
        return replace(ram, measure_note=f"not measured: {why_not}")
    try:
        m = find_arena_bytes(path, sample)
    except DataError as e:
        raise DataError(f"{data or path}: {str(e).splitlines()[0]}") from e
    except (RuntimeUnavailableError, UnsupportedOpError) as e:
        reasons.append(f"tflm: cannot allocate and invoke the model ({str(e).splitlines()[0]})")
        return replace(ram, measure_note="not measured: " + str(e).splitlines()[0])
    return replace(ram, measured_bytes=m.arena_bytes, measured_method=(
        "measured: smallest TFLM arena that allocates and invokes (binary search, verified by "
        f"a run at exactly that size, {m.search_steps} probes); {m.note}"))


def runtime_code(board: BoardProfile, info: ModelInfo, notes: list[str]) -> CodeFigures:
    """Runtime code counted in the flash need (an estimate, with its method).

    Args:
        board: the board; info: the model read back.
        notes: caveats are appended here (no estimate available).

    Returns:
        ``CodeFigures``: TFLM boards: the used kernels + core of the host tflite-micro
        build; Linux boards: the largest installed package among the board's runtimes for
        the format (host wheel); ``code_bytes`` None when there is no estimate.
    """
    from tinyshare.targets.runtime_code import linux_runtime_code, tflm_code_estimate
    from tinyshare.targets.runtimes.registry import RUNTIMES

    unknown = CodeFigures(None, "unknown: no estimate for these runtimes")
    if board.os == "baremetal":
        if info.format != "tflite" or "tflm" not in board.runtimes:
            return unknown
        try:
            est = tflm_code_estimate(op.op_code for op in info.ops)
        except RuntimeUnavailableError as e:
            notes.append(f"no TFLM code estimate: {str(e).splitlines()[0]}")
            return unknown
        return CodeFigures(est.total_bytes, (
            "estimate: x86-64 code of the used kernels and the core in the installed "
            "tflite-micro host build, standing in for a Cortex-M build"),
            {"core": est.core_bytes, "shared kernel helpers": est.shared_helpers_bytes,
             **dict(est.per_kernel_bytes)})
    sized = {}
    for rt in board.runtimes:
        if RUNTIMES.get(rt).model_format == info.format:
            try:
                code = linux_runtime_code(rt)
            except TinyshareError as e:
                notes.append(f"no code size for {rt}: {str(e).splitlines()[0]}")
                continue
            if code is not None:
                sized[rt] = code
    if not sized:
        return unknown
    largest = max(sized.values(), key=lambda c: c.code_bytes)
    return CodeFigures(largest.code_bytes,
                       f"the largest of the board's {info.format} runtimes, {largest.runtime}: "
                       f"{largest.method}", {rt: c.code_bytes for rt, c in sized.items()})


def footprint(board: BoardProfile, info: ModelInfo, ram: RamFigures,
              code: CodeFigures) -> Footprint:
    """Flash and RAM needs against the board's budgets (``assess``).

    Flash: model file + runtime code (when known). RAM: on bare-metal boards the measured
    TFLM arena, else our estimate, else the planned activations; on Linux boards the file
    plus the planned activations (a lower bound: the runtime process is not counted).
    Stored weights count at most the file's size (ONNX external data lies outside it).

    Returns:
        ``Footprint`` with the verdict and the violations (need, budget, in bytes).
    """
    from tinyshare.targets.footprint import assess

    if board.os != "baremetal":
        need, method = info.file_bytes + ram.planned_bytes, (
            "estimate, lower bound: model file bytes + activation bytes planned from tensor "
            "lifetimes; the runtime process itself (several MB) is not included")
    elif ram.measured_bytes is not None:
        need, method = ram.measured_bytes, ram.measured_method
    elif ram.estimate_bytes is not None:
        need, method = ram.estimate_bytes, "estimate (TFLM arena not measured): " + \
            ram.estimate_method
    else:
        need, method = ram.planned_bytes, "estimate, lower bound: " + ram.estimate_method
    return assess(board, model_file_bytes=info.file_bytes,
                  weights_bytes=min(info.stored_weight_bytes, info.file_bytes),
                  ram_needed_bytes=int(need), ram_method=method,
                  runtime_flash_bytes=code.code_bytes,
                  runtime_flash_method=code.method if code.code_bytes is not None else None)
