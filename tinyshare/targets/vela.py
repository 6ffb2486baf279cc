"""Run Arm's Vela compiler on one ``.tflite`` for one Ethos-U NPU and read back what it says.

``run_vela(model, npu, out_dir)`` runs ``python -m ethosu.vela`` as a subprocess (argument
list, no shell) with the board's accelerator, system config and memory mode, and returns a
``VelaReport``: SRAM and flash use, the NPU/CPU op split with Vela's reason for every op
left on the CPU, Vela's cycle and inference-time *estimate*, and its per-layer table.

Where each figure comes from (Vela 5.2.0, its C++ "regor" core):

* memory, cycles, clock and inference time: the summary CSV
  (``<model>_summary_<system config>.csv``; memory there is in KiB, converted to bytes);
* per-layer rows: the per-layer CSV (``<model>_per-layer.csv``, written with
  ``--verbose-performance``); each row is keyed to its source TFLite op by *operator
  index* through the ``source_id`` -> ``ext_key`` columns of Vela's debug database
  (``<model>_debug.xml``, ``--enable-debug-db``);
* why an op stays on the CPU: Vela's supported-operator checks, which it prints to stdout
  as ``Warning (supported operators) operator: OP, ofm: 'NAME'`` + ``Reason: ...`` lines.

Vela's system configs are memory-system templates with a fixed clock (e.g. 500 MHz); its
cycle counts do not depend on that clock (bandwidths and latencies are set relative to it),
so the inference time is Vela's cycle estimate divided by the board's NPU clock
(``NpuSpec.clock_hz``), and Vela's own figure at the template clock is kept beside it.
The estimate covers the NPU only: ops left on the CPU (run by TFLM) add time it does not
count. Nothing here imports Vela; its bundled TFLite flatbuffer reader is imported lazily.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tinyshare.errors import ModelFileError, RuntimeUnavailableError
from tinyshare.targets._proc import last_lines
from tinyshare.targets.vela_outputs import (  # VelaCpuOp, VelaLayer: re-exported
    VelaCpuOp,
    VelaFiles,
    VelaLayer,
    cpu_reasons,
    kib_to_bytes,
    op_split,
    per_layer_rows,
    tflite_ops,
)

if TYPE_CHECKING:
    from tinyshare.targets.board import NpuSpec

__all__ = ["ESTIMATE_METHOD", "VELA_ACCELERATOR_CONFIGS", "VELA_MEMORY_MODES", "VELA_SYSTEM_CONFIGS",
           "VelaCpuOp", "VelaLayer", "VelaReport", "run_vela"]

from tinyshare.targets.vela_names import (  # noqa: E402  (re-exported)
    VELA_ACCELERATOR_CONFIGS,
    VELA_MEMORY_MODES,
    VELA_SYSTEM_CONFIGS,
)

VELA_CONFIG_FILE = "Arm/vela.ini"  # Vela resolves this inside its own config_files folder
ESTIMATE_METHOD = ("Vela's performance model: its estimated total cycles / the board's NPU clock; "
                   "NPU part only, ops left on the CPU are not counted")
_REJECTED_FILE = ("Failed to load TfLite model", "Input file could not be read",
                  "No networks defined")


@dataclass(frozen=True)
class VelaReport:
    """What Vela says about one model on one NPU. Cycles and times are Vela's *estimate*.

    Attributes:
        vela_version: ethos-u-vela version that ran.
        command: the command, re-runnable as written.
        wall_s: measured wall-clock seconds the Vela process took.
        accelerator_config / system_config / memory_mode: as Vela reports them.
        vela_clock_hz: the clock of Vela's system config template, Hz.
        npu_clock_hz: the board's NPU clock (``NpuSpec.clock_hz``, else ``vela_clock_hz``), Hz.
        sram_bytes: "Total SRAM used": the tensor arena (and weights if staged) in SRAM.
        offchip_flash_bytes: "Total Off-chip Flash used": weights + command stream.
        onchip_flash_bytes / dram_bytes: the same for on-chip flash and DRAM (0 if unused).
        optimized_model_path / optimized_model_bytes: the ``*_vela.tflite`` Vela wrote.
        tflite_ops: ops in the input model (its first subgraph).
        npu_ops: of those, ops Vela compiled for the NPU (including ``elided_ops``).
        cpu_ops: the others, each with Vela's reason.
        elided_ops: indices of NPU ops Vela folded away (no per-layer row, no cycles).
        total_cycles / npu_cycles: estimated cycles for one inference.
        macs: multiply-accumulates per inference on the NPU.
        inference_time_ms: estimate, ``total_cycles / npu_clock_hz`` (see
            ``ESTIMATE_METHOD``); CPU ops are not counted.
        vela_inference_time_ms: Vela's own estimate, at ``vela_clock_hz``.
        per_layer: Vela's per-layer rows in execution order.
        output_dir: where Vela wrote its files (CSV, debug database, optimized model).
    """

    vela_version: str
    command: tuple[str, ...]
    wall_s: float
    accelerator_config: str
    system_config: str
    memory_mode: str
    vela_clock_hz: int
    npu_clock_hz: int
    sram_bytes: int
    offchip_flash_bytes: int
    onchip_flash_bytes: int
    dram_bytes: int
    optimized_model_path: Path
    optimized_model_bytes: int
    tflite_ops: int
    npu_ops: int
    cpu_ops: tuple[VelaCpuOp, ...]
    elided_ops: tuple[int, ...]
    total_cycles: int
    npu_cycles: int
    macs: int
    inference_time_ms: float
    vela_inference_time_ms: float
    per_layer: tuple[VelaLayer, ...]
    output_dir: Path

    estimate_method = ESTIMATE_METHOD


def run_vela(model_path: Path, npu: NpuSpec, out_dir: Path, *, timeout_s: float = 300) -> VelaReport:
    """Compile ``model_path`` with Vela for ``npu`` and parse its report.

    Args:
        model_path: an int8 (or int16) ``.tflite``; float ops stay on the CPU.
        npu: the board's NPU (``BoardProfile.npu``).
        out_dir: Vela writes into ``out_dir / "vela"`` (created; its own earlier files
            for this model are replaced).
        timeout_s: wall-clock limit for Vela, seconds.

    Returns:
        The ``VelaReport``.

    Raises:
        ModelFileError: the file is missing, not a TFLite flatbuffer, or Vela rejects it.
        RuntimeUnavailableError: Vela is not installed, times out, crashes (the message
            quotes its last output line) or does not write the files it should.
    """
    from tinyshare.artifacts.files import require_model_file  # imports numpy

    model = require_model_file(model_path, "tflite")
    version = _vela_version()
    vela_dir = Path(out_dir).absolute() / "vela"
    try:
        vela_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RuntimeUnavailableError(f"cannot create Vela's output folder {vela_dir}: {exc.strerror}") from None
    files = VelaFiles(vela_dir, model.stem, npu.system_config)
    files.clear()
    command = _command(model, npu, vela_dir)
    start = time.perf_counter()
    proc = _run(command, model, timeout_s, vela_dir)
    wall_s = time.perf_counter() - start
    ops = tflite_ops(model)
    try:
        return _report(files, ops, proc.stdout, npu, version, tuple(command), wall_s)
    except (KeyError, ValueError, ET.ParseError) as exc:  # Vela's output is not what we know
        raise RuntimeUnavailableError(f"cannot read Vela {version}'s output in {vela_dir}: "
                                      f"{type(exc).__name__}: {exc}") from None


def _report(files: VelaFiles, ops: list[tuple[str, tuple[str, ...]]], stdout: str, npu: NpuSpec,
            version: str, command: tuple[str, ...], wall_s: float) -> VelaReport:
    summary = files.read_summary()
    layers, source_index = per_layer_rows(files, ops)
    cpu_ops, elided = op_split(source_index, layers, ops, cpu_reasons(stdout))
    optimized = files.optimized
    vela_clock_hz = round(float(summary["core_clock"]))
    npu_clock_hz = npu.clock_hz or vela_clock_hz
    total_cycles = round(float(summary["cycles_total"]))
    return VelaReport(
        vela_version=version, command=command, wall_s=wall_s,
        accelerator_config=summary["accelerator_configuration"],
        system_config=summary["system_config"], memory_mode=summary["memory_mode"],
        vela_clock_hz=vela_clock_hz, npu_clock_hz=npu_clock_hz,
        sram_bytes=kib_to_bytes(summary["sram_memory_used"]),
        offchip_flash_bytes=kib_to_bytes(summary["off_chip_flash_memory_used"]),
        onchip_flash_bytes=kib_to_bytes(summary["on_chip_flash_memory_used"]),
        dram_bytes=kib_to_bytes(summary["dram_memory_used"]),
        optimized_model_path=optimized, optimized_model_bytes=optimized.stat().st_size,
        tflite_ops=len(ops), npu_ops=len(ops) - len(cpu_ops), cpu_ops=cpu_ops, elided_ops=elided,
        total_cycles=total_cycles, npu_cycles=round(float(summary["cycles_npu"])),
        macs=round(float(summary["nn_macs"])),
        inference_time_ms=total_cycles / npu_clock_hz * 1e3,
        vela_inference_time_ms=float(summary["inference_time"]) * 1e3,
        per_layer=layers, output_dir=files.folder,
    )


# --- running Vela ----------------------------------------------------------------------


def _vela_version() -> str:
    try:
        found = importlib.util.find_spec("ethosu.vela") is not None
    except ModuleNotFoundError:
        found = False
    if not found:
        raise RuntimeUnavailableError("Vela is not installed (pip install ethos-u-vela==5.2.0)")
    return importlib.metadata.version("ethos-u-vela")


def _command(model: Path, npu: NpuSpec, vela_dir: Path) -> list[str]:
    return [sys.executable, "-m", "ethosu.vela", str(model),
            "--accelerator-config", npu.accelerator_config, "--config", VELA_CONFIG_FILE,
            "--system-config", npu.system_config, "--memory-mode", npu.memory_mode,
            "--output-dir", str(vela_dir), "--verbose-performance", "--enable-debug-db"]


def _run(command: list[str], model: Path, timeout_s: float, cwd: Path) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True,
                              timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise RuntimeUnavailableError(f"vela timed out after {timeout_s:g} s on {model}") from None
    except OSError as exc:
        raise RuntimeUnavailableError(f"vela could not start: {exc}") from None
    if proc.returncode == 0:
        return proc
    output = proc.stdout + "\n" + proc.stderr
    for line in output.splitlines():
        if any(marker in line for marker in _REJECTED_FILE):
            raise ModelFileError(f"{model}: Vela rejects the file: {line.strip()}")
    if proc.returncode < 0:
        try:
            how = f"killed by {signal.Signals(-proc.returncode).name}"
        except ValueError:
            how = f"killed by signal {-proc.returncode}"
    else:
        how = f"exit {proc.returncode}"
    last = last_lines(proc.stderr, 1) or last_lines(proc.stdout, 1) or "no output"
    raise RuntimeUnavailableError(f"vela failed on {model} ({how}): {last}")


