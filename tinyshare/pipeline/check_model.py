"""``tinyshare check``: op support, footprint and an optional validation run for any model file.

``check_model(model, board, data=None, out=None)`` takes a ``.tflite`` / ``.onnx`` file we
did not produce and one board:

1. Inputs first; nothing heavy runs and nothing is written until they pass: the board, the
   output folder (``check_output.resolve_out``), the model file (``inspect_model``, then
   ``require_plausible``: no tensor declaring more than ``MAX_TENSOR_BYTES``, no negative
   dimension, refused before any runtime allocates), the data (``load_samples``; one sample's
   shape against the model's input).
2. Op support on each board runtime that runs the file's format (``op_support``). Runtimes
   that leave op support to a host run (LiteRT, onnxruntime) are run on the host build: on
   the data, or on one all-zero sample when there is none.
3. Footprint: the file's bytes; runtime code (TFLM boards: ``tflm_code_estimate``; Linux
   boards: the largest installed runtime package, host wheel); the offline arena estimate
   (``estimate_tflm_arena`` for .tflite; activations planned from tensor lifetimes for
   .onnx) and, for .tflite on a TFLM board, the measured TFLM arena. ``assess`` compares
   them with the board's budgets.
4. With data: each board runtime's host run against the reference (LiteRT reference
   kernels for .tflite, onnxruntime at ``ORT_DISABLE_ALL`` for .onnx): top-1 when the data
   has labels, agreement in output LSB.
5. ``check.json`` and ``check.md`` go into ``out`` (``check_output.publish``: written in a
   temporary folder beside it, renamed at the end).

The verdict FAILs when an applicable runtime lacks an op, no runtime of the board runs the
format, TFLM cannot run the model, or a budget is exceeded.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tinyshare.errors import (
    DataError,
    ModelFileError,
    TinyshareError,
    UnsupportedOpError,
)

if TYPE_CHECKING:
    from tinyshare.export.inspect import ModelInfo
    from tinyshare.pipeline.check_footprint import CodeFigures, RamFigures
    from tinyshare.targets.board import BoardProfile
    from tinyshare.targets.footprint import Footprint

__all__ = ["MAX_MODEL_FILE_BYTES", "MAX_TENSOR_BYTES", "HostRun", "ModelCheck", "RuntimeOps",
           "check_model", "require_plausible"]

MAX_MODEL_FILE_BYTES = 1 << 31  # flatbuffers and protobuf both stop at 2 GiB
MAX_TENSOR_BYTES = 1 << 32  # one declared tensor, in bytes: more than any board's RAM
_ELEMENT_BYTES_UPPER = 16  # an unknown element type counts as the widest (complex128)


@dataclass(frozen=True)
class RuntimeOps:
    """Op support of one board runtime.

    Attributes:
        runtime: the runtime's table name, e.g. ``"tflm"``.
        applies: it runs the file's format (False: it runs the other format; not checked).
        ok: every op is supported (static check and, where it ran, the host run).
        method: ``"static"`` (TFLM's op resolver), ``"host run"`` (ran on the host build)
            or ``"not checked"`` (with the reason in ``detail``).
        detail: one line: what was checked, or why it failed.
        missing_ops: op codes the runtime lacks, sorted.
    """

    runtime: str
    applies: bool
    ok: bool
    method: str
    detail: str
    missing_ops: tuple[str, ...] = ()


@dataclass(frozen=True)
class HostRun:
    """One host runtime's run on the data.

    Attributes:
        runtime: the run's name, e.g. ``"litert-ref"``, ``"tflm"``.
        version: the runtime package's version.
        reference: True for the run the others are compared with.
        n_outputs: K, output values per sample.
        top1: top-1 accuracy on the labels in [0, 1]; None without labels.
        top1_agreement: fraction of samples whose argmax equals the reference's.
        max_abs_diff_lsb: largest |difference| from the reference in output LSB (None for
            float outputs, see ``max_abs_diff``).
        n_values_differing: output values differing from the reference by >= 1 LSB.
        max_abs_diff: largest |difference| from the reference in real units (None when an
            output is NaN or infinite).
        within_tolerance: ``max_abs_diff_lsb <= TOLERANCE_LSB`` (float outputs: identical);
            True for the reference.
        host_wall_ms: host wall time of the whole run in ms (never a device latency).
    """

    runtime: str
    version: str
    reference: bool
    n_outputs: int
    top1: float | None
    top1_agreement: float
    max_abs_diff_lsb: int | None
    n_values_differing: int
    max_abs_diff: float | None
    within_tolerance: bool
    host_wall_ms: float


@dataclass(frozen=True)
class ModelCheck:
    """What ``check_model`` found for one model file on one board.

    Attributes:
        model: the model file (absolute path); info: it read back (``inspect_model``).
        board: the board profile.
        runtimes: op support per board runtime, in the board's order.
        footprint: flash and RAM needs against the budgets, with the verdict.
        ram: the RAM figures (``RamFigures``: offline plan and estimate, measured TFLM arena).
        runtime_code: the runtime code counted in the flash need (``CodeFigures``).
        data: the data file, or None; n_samples: N in it (0 without data); labelled: it
            holds labels ``y``.
        runs: the host runs on the data, the reference first (empty without data).
        reasons: why the verdict is FAIL (empty on PASS).
        notes: caveats that do not change the verdict.
        out_dir: the folder holding check.json and check.md.
    """

    model: Path
    info: ModelInfo
    board: BoardProfile
    runtimes: tuple[RuntimeOps, ...]
    footprint: Footprint
    ram: RamFigures
    runtime_code: CodeFigures
    data: Path | None
    n_samples: int
    labelled: bool
    runs: tuple[HostRun, ...]
    reasons: tuple[str, ...]
    notes: tuple[str, ...]
    out_dir: Path

    @property
    def passed(self) -> bool:
        """True when every applicable runtime supports every op and the model fits."""
        return not self.reasons


def check_model(
    model: str | os.PathLike[str],
    board: str | os.PathLike[str],
    *,
    data: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] | None = None,
) -> ModelCheck:
    """Check a model file against a board and write ``check.json`` / ``check.md`` to ``out``.

    Args:
        model: a ``.tflite`` or ``.onnx`` file.
        board: a board name (``tinyshare boards list``) or a board ``.toml``.
        data: an ``.npz`` with ``x: (N, ...) float32`` in the model's input layout and
            optionally ``y: (N,)`` integer labels; None skips the validation run.
        out: the output folder; None means ``runs/check-<model stem>`` in the working folder.

    Returns:
        ``ModelCheck``; ``passed`` is False when an op is unsupported or a budget exceeded.

    Raises:
        BoardError: unknown board or a bad board file.
        ConfigError: ``out`` is a file, holds files other than an earlier check's, or
            lies under a file.
        OutputWriteError: ``out`` cannot be created or written.
        ModelFileError: the model is missing, corrupt, declares an implausible tensor, or a
            runtime cannot load it for a reason other than a missing op.
        DataError: the data is not a readable npz of the expected arrays, or its samples
            do not fit the model's input.
        RuntimeUnavailableError: a runtime the board needs cannot be imported.
        Every message is one line naming the file or option.
    """
    model_path = Path(model)
    data_path = None if data is None else Path(data)
    try:
        return _check(model_path, board, data_path, out)
    except TinyshareError as e:  # one line, naming the file, whatever the layer below said
        raise _one_line(e, model_path, data_path) from e


def _one_line(e: TinyshareError, model: Path, data: Path | None) -> TinyshareError:
    text = " ".join(str(e).split("\n", 1)[0].split())[:400] or type(e).__name__
    if isinstance(e, DataError) and data is not None and str(data) not in text:
        text = f"{data}: {text}"
    elif isinstance(e, (ModelFileError, UnsupportedOpError)) and str(model) not in text \
            and model.name not in text:
        text = f"{model}: {text}"
    return type(e)(text)


def _check(model: Path, board_name, data: Path | None, out) -> ModelCheck:
    from tinyshare.artifacts.files import require_model_file
    from tinyshare.data.npz import load_samples
    from tinyshare.export.inspect import inspect_model
    from tinyshare.pipeline.check_footprint import (
        arena_estimate,
        footprint,
        measure_arena,
        runtime_code,
    )
    from tinyshare.pipeline.check_output import publish, resolve_out
    from tinyshare.pipeline.check_runs import host_runs
    from tinyshare.targets.board_registry import load_board

    board = load_board(board_name)
    out_dir = resolve_out(out, model)
    path = require_model_file(model)
    size = path.stat().st_size
    if size > MAX_MODEL_FILE_BYTES:
        raise ModelFileError(f"{model}: {size:,} bytes; a .tflite or .onnx file holds at most "
                             f"{MAX_MODEL_FILE_BYTES:,}")
    info = inspect_model(path)
    require_plausible(info)
    _require_io_quantization(info)
    x = y = None
    if data is not None:
        x, y = load_samples(data)
        _require_fit(info, data, x, y)
    notes: list[str] = []
    runtimes = [_static_ops(info, rt) for rt in board.runtimes]
    ram = arena_estimate(info, notes)
    fits_ram = ram.planned_bytes <= board.ram_budget_bytes
    sample = x[:1] if x is not None else _zero_sample(info)
    reasons: list[str] = []
    if "tflm" in board.runtimes and info.format == "tflite":
        tflm_ok = next(r.ok for r in runtimes if r.runtime == "tflm")
        why_not = ("TFLM lacks an op of the model" if not tflm_ok else
                   f"the activations alone ({ram.planned_bytes:,} B) exceed the RAM budget"
                   if not fits_ram
                   else "the input is not one static tensor (give --data)" if sample is None
                   else "")
        ram = measure_arena(path, ram, sample, why_not, data, reasons)
    runs, runtimes = host_runs(path, info, runtimes, x, y, sample, fits_ram,
                               ram.measured_bytes, data, notes)
    code = runtime_code(board, info, notes)
    fp = footprint(board, info, ram, code)
    applicable = [r for r in runtimes if r.applies]
    if not applicable:
        reasons.insert(0, f"{board.name} runs no {info.format} models (runtimes: "
                          f"{', '.join(board.runtimes)})")
    reasons[:0] = [f"{r.runtime}: {r.detail}" for r in applicable if not r.ok]
    reasons += [v.message for v in fp.reasons]
    notes += fp.notes
    if board.npu is not None:
        notes.append(f"{board.npu.accelerator_config}: Vela is not run by check; figures are "
                     "for TFLM on the CPU")
    result = ModelCheck(model=path, info=info, board=board, runtimes=tuple(runtimes),
                        footprint=fp, ram=ram, runtime_code=code, data=data,
                        n_samples=0 if x is None else len(x), labelled=y is not None,
                        runs=runs, reasons=tuple(reasons), notes=tuple(notes), out_dir=out_dir)
    publish(result)
    return result


def require_plausible(info: ModelInfo) -> None:
    """Refuse declared tensor shapes no board could hold, before any runtime allocates them.

    Args:
        info: the model read back.

    Raises:
        ModelFileError: a dimension below -1 (-1 marks a dynamic one), or a tensor whose
            declared size (elements x element size; unknown types count 16 bytes) is above
            ``MAX_TENSOR_BYTES``.
    """
    from tinyshare.export.inspect import DTYPE_BYTES

    for t in info.tensors:
        if t.shape is None:
            continue
        if any(d < -1 for d in t.shape):
            raise ModelFileError(f"{info.path}: tensor {t.name!r} declares shape {list(t.shape)}; "
                                 "expected dimensions >= 0 (or -1 for a dynamic one)")
        nbytes = math.prod(max(d, 1) for d in t.shape) * DTYPE_BYTES.get(t.dtype, _ELEMENT_BYTES_UPPER)
        if nbytes > MAX_TENSOR_BYTES:
            raise ModelFileError(f"{info.path}: tensor {t.name!r} declares shape {list(t.shape)} "
                                 f"{t.dtype} ({nbytes:,} bytes); refused above "
                                 f"{MAX_TENSOR_BYTES:,} bytes, more than any board holds")


def _require_io_quantization(info: ModelInfo) -> None:
    """The graph inputs' and outputs' scales must be finite and positive: every harness
    quantizes the samples and dequantizes the outputs with them.

    Raises:
        ModelFileError: a NaN, infinite, zero or negative scale (naming the tensor).
    """
    for name in (*info.inputs, *info.outputs):
        t = info.tensor(name)
        bad = [s for s in t.scales if not (math.isfinite(s) and s > 0)]
        if bad:
            raise ModelFileError(f"{info.path}: graph input/output {name!r} has quantization "
                                 f"scale {bad[0]!r}; expected finite scales > 0")


def _io(info: ModelInfo):
    """The single input and output tensors, or None when the model has several."""
    if len(info.inputs) != 1 or len(info.outputs) != 1:
        return None
    return info.tensor(info.inputs[0]), info.tensor(info.outputs[0])


def _require_fit(info: ModelInfo, data: Path, x: np.ndarray, y: np.ndarray | None) -> None:
    """Check the data against the model's single input (and labels against its outputs).

    Raises:
        DataError: the model has several inputs or outputs, a sample's shape differs from
            the input's (dynamic dimensions match any size), or a label is >= the number of
            output values per sample.
    """
    io = _io(info)
    if io is None:
        raise DataError(f"{data}: --data needs a model with one input and one output; "
                        f"{info.path.name} has {len(info.inputs)} and {len(info.outputs)}")
    inp, out = io
    if y is not None and out.shape and all(d >= 0 for d in out.shape[1:]):
        k = math.prod(out.shape[1:])
        if int(y.max()) >= k:
            raise DataError(f"{data}: labels in 'y' go up to {int(y.max())} but "
                            f"{info.path.name} gives {k} output values per sample")
    if inp.shape is None:
        return
    want = inp.shape[1:]
    if len(want) != x.ndim - 1 or any(w not in (-1, s) for w, s in zip(want, x.shape[1:])):
        raise DataError(f"{data}: array 'x' holds samples of shape {list(x.shape[1:])} but "
                        f"{info.path.name} takes input {inp.name!r} of shape {list(inp.shape)} "
                        f"{inp.dtype}; expected x (N, *input_shape[1:]) float32 in that layout")


def _zero_sample(info: ModelInfo) -> np.ndarray | None:
    """One all-zero float32 sample of a single, static input; None otherwise."""
    io = _io(info)
    if io is None or io[0].shape is None or not io[0].shape or any(d < 0 for d in io[0].shape[1:]):
        return None
    return np.zeros((1, *io[0].shape[1:]), np.float32)


def _static_ops(info: ModelInfo, runtime: str) -> RuntimeOps:
    """Op support of one board runtime from the capability table (``op_support``); a runtime
    for the other format does not apply, one that leaves op support to a host run is
    ``"not checked"`` until ``host_runs`` runs it."""
    from tinyshare.targets.op_support import op_support
    from tinyshare.targets.runtimes.registry import RUNTIMES

    spec = RUNTIMES.get(runtime)
    if spec.model_format != info.format:
        return RuntimeOps(runtime, False, False, "not checked", f"runs {spec.model_format} models")
    s = op_support(info, runtime)
    described = s.describe().removeprefix(f"{s.runtime}: ")
    if not s.checked_statically:
        return RuntimeOps(runtime, True, True, "not checked", described)
    return RuntimeOps(runtime, True, s.ok, "static", "; ".join(s.reasons) if not s.ok
                      else described, s.missing_ops)
