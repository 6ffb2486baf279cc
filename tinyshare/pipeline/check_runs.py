"""Host runs of a checked model: op support by a run, and validation on the user's data.

``host_runs`` runs each applicable board runtime on the host build (``_run``: LiteRT with
XNNPACK or the reference kernels, onnxruntime at both optimization levels, TFLM at the
measured arena): on the data when there is some, else on one all-zero sample for the
runtimes whose op support only a run can show (``op_check = "host-run"``). A runtime that
says it lacks an op (``_MISSING_OP_RE``) fails its op support; any other load error means
the file is bad (``ModelFileError``). With data, ``_compare`` sets each run against the
reference (LiteRT's reference kernels for .tflite, ``ORT_DISABLE_ALL`` for .onnx): top-1
on the labels and agreement in output LSB (``tinyshare.targets.agreement.compare``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tinyshare.errors import DataError, ModelFileError, TinyshareError, UnsupportedOpError
from tinyshare.pipeline.check_model import HostRun, RuntimeOps

if TYPE_CHECKING:
    from tinyshare.export.inspect import ModelInfo

__all__ = ["TOLERANCE_LSB", "host_runs"]

TOLERANCE_LSB = 1  # host runtimes against the reference, in output LSB (REFERENCE.md)
# How LiteRT / onnxruntime say that they lack an op (anything else on load is a bad file).
_MISSING_OP_RE = re.compile(r"Didn't find op|unresolved custom op|Could not find an "
                            r"implementation|not a registered function/op|NOT_IMPLEMENTED")


def host_runs(
    path: Path,
    info: ModelInfo,
    runtimes: list[RuntimeOps],
    x: np.ndarray | None,
    y: np.ndarray | None,
    sample: np.ndarray | None,
    fits_ram: bool,
    tflm_arena_bytes: int | None,
    data: Path | None,
    notes: list[str],
) -> tuple[tuple[HostRun, ...], list[RuntimeOps]]:
    """Run the applicable runtimes on the host build: on the data (validation), else on one
    zero sample for the runtimes whose op support only a run can show.

    Args:
        path: the model file; info: it read back.
        runtimes: op support per board runtime (``RuntimeOps``), static checks done.
        x: (N, ...) float32 samples in the model's input layout, or None.
        y: (N,) int64 labels, or None.
        sample: (1, ...) float32, one sample to run when there is no data (None: dynamic).
        fits_ram: the planned activations fit the board's RAM budget (else nothing runs).
        tflm_arena_bytes: TFLM's measured arena in bytes (None: TFLM does not run).
        data: the data file, for messages.
        notes: caveats are appended here.

    Returns:
        ``(runs compared with the reference, runtimes updated with their host runs)``;
        no runs without data.

    Raises:
        ModelFileError: a runtime cannot load the file for a reason other than a missing op.
        DataError: the samples do not fit the model (the message names ``data``).
    """
    feed = x if x is not None else sample
    todo = [r for r in runtimes if r.applies and r.ok and (x is not None or r.method == "not checked")]
    if not todo:
        return (), runtimes
    if feed is None or not fits_ram:
        notes.append("host runtimes not run: " + ("the activations exceed the RAM budget"
                     if not fits_ram else "the input is not one static tensor (give --data)"))
        return (), runtimes
    outputs: dict = {}
    failed: dict[str, str] = {}
    for r in todo:
        if r.runtime == "tflm" and tflm_arena_bytes is None:
            notes.append("tflm not run on the data: its arena was not measured")
            continue
        try:
            outputs.update(_run(r.runtime, path, feed, tflm_arena_bytes, data))
        except (ModelFileError, UnsupportedOpError) as e:
            if isinstance(e, ModelFileError) and not _MISSING_OP_RE.search(str(e)):
                raise
            failed[r.runtime] = " ".join(str(e).split())[:300]
    runtimes = [_after_run(r, todo, failed) for r in runtimes]
    if x is None or not outputs:
        return (), runtimes
    ref = "litert-ref" if info.format == "tflite" else "onnxruntime[ORT_DISABLE_ALL]"
    if ref not in outputs and info.format == "tflite":  # TFLM / XNNPACK: add the reference
        try:
            outputs = {**_run("tflite-runtime", path, x, None, data), **outputs}
        except (ModelFileError, UnsupportedOpError) as e:
            ref = next(iter(outputs))
            notes.append(f"no LiteRT reference run ({str(e).splitlines()[0]}); runs are "
                         f"compared with {ref}")
    return _compare(outputs, ref, y, data, path), runtimes


def _after_run(r: RuntimeOps, todo, failed: dict[str, str]) -> RuntimeOps:
    from tinyshare.targets.runtimes.registry import RUNTIMES

    if r.runtime in failed:
        return RuntimeOps(r.runtime, True, False, "host run", failed[r.runtime])
    if r in todo and r.method == "not checked":
        runs = ", ".join(RUNTIMES.get(r.runtime).host_runs)
        return RuntimeOps(r.runtime, True, True, "host run",
                          f"every op loaded and ran on the host build ({runs})")
    return r


def _run(runtime: str, path: Path, x: np.ndarray, arena_bytes: int | None, data) -> dict:
    """One board runtime's host run(s) on ``x``: ``{run name: RuntimeOutputs}``.

    Raises:
        DataError: ``x`` does not fit the model (the message names ``data``).
        ModelFileError: as the runtime's harness, or the runtime failed on the model with
            an error of its own (LiteRT's ``RuntimeError`` "Input tensor lacks data", ...).
        UnsupportedOpError: as the runtime's harness.
    """
    from tinyshare.targets.runtimes.litert import run_litert
    from tinyshare.targets.runtimes.onnxruntime import run_onnx_both_levels
    from tinyshare.targets.runtimes.tflm import run_tflm

    try:
        with _quiet_native_stderr(), np.errstate(all="ignore"):  # overflow shows in the figures
            if runtime == "litert":
                return {"litert-xnnpack": run_litert(path, x, reference_kernels=False)}
            if runtime == "tflite-runtime":
                return {"litert-ref": run_litert(path, x, reference_kernels=True)}
            if runtime == "tflm":
                return {"tflm": run_tflm(path, x, arena_bytes=arena_bytes)}
            enabled, disabled, _ = run_onnx_both_levels(path, x)
            return {disabled.runtime: disabled, enabled.runtime: enabled}
    except DataError as e:
        raise DataError(f"{data or path}: {str(e).splitlines()[0]}") from e
    except TinyshareError:
        raise
    except Exception as e:  # noqa: BLE001  LiteRT / onnxruntime raise their own untyped errors
        text = " ".join(str(e).split())[:200]
        raise ModelFileError(f"{path}: {runtime} cannot run the model "
                             f"({type(e).__name__}: {text})") from e


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null while a runtime loads and runs, unless logging is
    at INFO or finer (``--verbose``): LiteRT and onnxruntime log from C++ straight to it
    ("INFO: Created TensorFlow Lite XNNPACK delegate", load errors), which would add lines
    to the CLI's one-line errors. Their errors still reach us as exceptions."""
    if logging.getLogger().isEnabledFor(logging.INFO):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as sink:
            os.dup2(sink.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _compare(outputs: dict, ref_name: str, y, data, path: Path) -> tuple[HostRun, ...]:
    """Each run against the reference run: top-1 on the labels and agreement in LSB.

    Args:
        outputs: run name -> ``RuntimeOutputs`` on the same samples.
        ref_name: the reference run's name (a key of ``outputs``).
        y: (N,) int64 labels, or None.
        data, path: the data and model files, for messages.

    Returns:
        One ``HostRun`` per run, the reference first.

    Raises:
        DataError: a label is >= the number of output values per sample.
        ModelFileError: two runtimes give outputs of different shapes for the same file (its
            declared output shape is not what the runtimes compute).
    """
    ref = outputs[ref_name]
    k = int(ref.raw.shape[1])
    for name, o in outputs.items():
        if o.raw.shape != ref.raw.shape:
            raise ModelFileError(f"{path}: {name} gives outputs of shape {list(o.raw.shape)} but "
                                 f"{ref_name} {list(ref.raw.shape)} on the same samples; the "
                                 "file's tensor shapes are inconsistent")
    if y is not None and int(y.max()) >= k:
        raise DataError(f"{data}: labels in 'y' go up to {int(y.max())} but the model gives "
                        f"{k} outputs per sample")
    with np.errstate(all="ignore"):  # inf / NaN outputs are reported, not warned about
        return tuple(_host_run(name, outputs[name], ref, name == ref_name, y)
                     for name in (ref_name, *(n for n in outputs if n != ref_name)))


def _host_run(name: str, o, ref, is_reference: bool, y) -> HostRun:
    """One run's top-1 on ``y`` and its agreement with the reference run ``ref``."""
    from tinyshare.targets.agreement import compare

    top1 = None if y is None else float(np.mean(o.dequantized.argmax(axis=1) == y))
    real = np.abs(ref.dequantized.astype(np.float64) - o.dequantized)
    max_real = float(real.max()) if np.isfinite(real).all() else None
    finite = np.isfinite(o.dequantized).all() and np.isfinite(ref.dequantized).all()
    if ref.is_quantized and finite:
        a = compare(ref, o, tolerance_lsb=TOLERANCE_LSB)
        lsb, n_diff, agree, within = (a.max_abs_diff_lsb, a.n_values_differing,
                                      a.top1_agreement, a.within_tolerance)
    else:  # float (or non-finite) outputs: no LSB; the real difference is reported
        lsb, n_diff, within = None, int(np.count_nonzero(real)), max_real == 0.0
        agree = float(np.mean(ref.dequantized.argmax(axis=1) == o.dequantized.argmax(axis=1)))
    return HostRun(runtime=name, version=o.runtime_version, reference=is_reference,
                   n_outputs=int(o.raw.shape[1]), top1=top1, top1_agreement=agree,
                   max_abs_diff_lsb=lsb, n_values_differing=n_diff, max_abs_diff=max_real,
                   within_tolerance=within, host_wall_ms=round(o.wall_ms, 3))
