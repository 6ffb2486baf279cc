"""Emulated on-device checks: each Linux board's runtimes, run from its device image.

For every Linux board, the board's own device image (Debian userland + the runtime
wheels pinned for that board, under qemu-user with ``-cpu`` set to the board's core) runs
the int8 files on the test split. Outputs are compared in LSB with the host int8
reference. Wall time under emulation is recorded as host time of the emulator and is
never a device latency.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tinyshare.errors import TinyshareError
from tinyshare.targets.runtimes.base import nchw_to_nhwc

if TYPE_CHECKING:
    from tinyshare.targets.agreement import Agreement

log = logging.getLogger(__name__)

# Guest runs standing for each board runtime: (guest runtime, model format, ORT level).
GUEST_RUNS: dict[str, tuple[tuple[str, str, str | None], ...]] = {
    "litert": (("litert", "tflite", None),),
    "tflite-runtime": (("tflite-runtime", "tflite", None),),
    "onnxruntime": (("onnxruntime", "onnx", "all"), ("onnxruntime", "onnx", "disable")),
}


@dataclass(frozen=True)
class EmulatedCheck:
    """One board runtime run under emulation on the test split.

    Attributes:
        board / runtime: e.g. ``"rpi4b"``, ``"onnxruntime[ORT_DISABLE_ALL]"``.
        ok: the run finished; ``error`` holds the one-line failure otherwise.
        accuracy: top-1 in [0, 1]; agreement: ``Agreement`` with the host reference.
        runtime_version: the version the guest imported.
        command: the emulator command line.
        load_ms / run_ms / peak_rss_kb: as the guest measured them: the model load, the
            loop over all samples, and the peak RSS (under qemu-user the emulator
            process's, an upper bound for the board). Emulated times, not device latencies.
        emulated_wall_s: host wall time of the whole guest process (qemu start, imports,
            load, run, I/O): not a device latency.
    """

    board: str
    runtime: str
    ok: bool
    error: str | None = None
    accuracy: float | None = None
    agreement: Agreement | None = None
    runtime_version: str | None = None
    command: str | None = None
    load_ms: float | None = None
    peak_rss_kb: int | None = None
    emulated_wall_s: float | None = None
    run_ms: float | None = None


@dataclass(frozen=True)
class BoardEmulation:
    """Everything emulated for one board, plus its device image."""

    board: str
    image_key: str | None
    image_manifest: str | None
    image_seconds: float
    checks: tuple[EmulatedCheck, ...] = field(default_factory=tuple)
    error: str | None = None
    onnx_level_finding: str | None = None


def is_emulated(board) -> bool:
    """Whether ``board`` is a Linux board with a qemu-user emulator (it has a device image)."""
    emu = board.emulator
    return board.os == "linux" and emu is not None and emu.kind == "qemu-user"


def board_image(board, cache_dir: Path | None = None):
    """Build (or reuse) ``board``'s device image: its arch, core, core count and runtimes.

    Args:
        board: a Linux ``BoardProfile`` with a qemu-user emulator.
        cache_dir: the image cache; default ``$XDG_CACHE_HOME/tinyshare/images``.

    Raises:
        BoardError: the board is not an emulated Linux board, or names a runtime with no
            wheels for its architecture.
        RuntimeUnavailableError: qemu missing, registry unreachable, or a failed build.
    """
    from tinyshare.errors import BoardError, RuntimeUnavailableError
    from tinyshare.targets.emulation import ensure_image, image_spec_for

    emu = board.emulator
    if not is_emulated(board):
        raise BoardError(f"{board.name}: no device image: only Linux boards with a qemu-user "
                         "emulator have one")
    spec = image_spec_for(emu.arch, board.cpu.lower(), board.cores,
                          [rt for rt in board.runtimes if rt in GUEST_RUNS])
    try:
        return ensure_image(spec, cache_dir=cache_dir)
    except OSError as e:  # full disk, read-only cache, ...: say what, not a traceback
        raise RuntimeUnavailableError(
            f"{board.name}: cannot build the device image in {cache_dir or 'the user cache'}: "
            f"{e.strerror or e}") from None


def emulate_board(
    board, files: dict[str, Path], x: np.ndarray, y: np.ndarray, reference,
    *, tolerance_lsb: int, timeout_s: float,
    progress: Callable[[str, int, int], None] | None = None,
) -> BoardEmulation:
    """Build (or reuse) ``board``'s device image and run each of its runtimes in it.

    Args:
        board: a Linux ``BoardProfile`` with a qemu-user emulator.
        files: ``{"tflite": int8 .tflite path, "onnx": int8 .onnx path}``.
        x / y: (N, C, H, W) float32 test inputs and (N,) int64 labels.
        reference: the host reference ``RuntimeOutputs`` on the same N inputs.
        tolerance_lsb: allowed max |difference| against the reference.
        timeout_s: limit for each guest process.

    Returns:
        The board's ``BoardEmulation``; a failed image build or a failed run is recorded
        (one line, with the guest's stderr tail), never raised, so other boards still run.
    """
    from tinyshare.pipeline.train import top1
    from tinyshare.targets.agreement import compare
    from tinyshare.targets.emulation.run import (
        emulated_run_name,
        image_prefix,
        run_emulated,
    )

    t0 = time.perf_counter()
    try:
        image = board_image(board)
    except TinyshareError as e:
        return BoardEmulation(board=board.name, image_key=None, image_manifest=None,
                              image_seconds=time.perf_counter() - t0, error=str(e))
    image_s = time.perf_counter() - t0
    runs = [r for rt in board.runtimes for r in GUEST_RUNS.get(rt, ())]
    checks, ort_outputs = [], {}
    for i, (guest_rt, fmt, level) in enumerate(runs):
        argv, env = image_prefix(image, guest_rt)
        inputs = nchw_to_nhwc(x) if fmt == "tflite" else x
        name = emulated_run_name(guest_rt, level or "all")
        try:
            run = run_emulated(argv, env, guest_rt, files[fmt], inputs, timeout_s=timeout_s,
                               ort_level=level or "all")
        except (TinyshareError, OSError) as e:
            checks.append(EmulatedCheck(board=board.name, runtime=name, ok=False, error=str(e)))
            continue
        finally:
            if progress:
                progress(f"emulate {board.name}", i + 1, len(runs))
        out = run.outputs
        if guest_rt == "onnxruntime":
            ort_outputs[level] = out
        command = _readable_command(run.command, env, image.root, files[fmt])
        checks.append(EmulatedCheck(
            board=board.name, runtime=name, ok=True,
            accuracy=top1(out.dequantized, y),
            agreement=compare(reference, out, tolerance_lsb=tolerance_lsb),
            runtime_version=out.runtime_version, command=command,
            load_ms=run.stats.get("load_ms"), run_ms=run.stats.get("run_ms"),
            peak_rss_kb=run.stats.get("peak_rss_kb"),
            emulated_wall_s=run.wall_s,
        ))
    finding = None
    if len(ort_outputs) == 2:
        from tinyshare.targets.runtimes.onnxruntime import level_finding

        finding = level_finding(ort_outputs["all"], ort_outputs["disable"],
                                model=files["onnx"].name)
    return BoardEmulation(board=board.name, image_key=image.spec.key,
                          image_manifest=str(image.manifest), image_seconds=image_s,
                          checks=tuple(checks), onnx_level_finding=finding)


def _readable_command(command: str, env: dict, image_root: Path, model: Path) -> str:
    """The emulator command as a user reruns it from the run folder: ``PYTHONPATH`` first,
    the image folder as ``$IMAGE``, the model relative to the run folder
    (``export/model_int8.tflite``) and the scratch folder as ``$TMP``."""
    import re

    model = Path(model).resolve()
    out = command.replace(str(model), f"{model.parent.name}/{model.name}")
    if env.get("PYTHONPATH"):
        out = f"PYTHONPATH={env['PYTHONPATH']} {out}"
    out = out.replace(str(image_root), "$IMAGE")
    out = re.sub(r"\S*/(guest_runner\.py)", r"\1", out)
    return re.sub(r"\S*/tinyshare-emu-[^/\s]+", "$TMP", out)
