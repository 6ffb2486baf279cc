"""Host side of an emulated run: start ``guest_runner.py`` under the device image, read back.

``run_emulated`` writes the inputs to a scratch folder, runs
``argv_prefix + [guest_runner.py, --runtime ..., --model ..., ...]`` as one process
(argument list, no shell, its own session, with a timeout), and turns the guest's
``out.npz`` / ``stats.json`` into an ``EmulatedRun``. The argv prefix and environment
come from the device image (``DeviceImage.command``: qemu, ``-cpu``, ``-L`` sysroot,
the guest python; ``PYTHONPATH`` of the runtime's site dir); with ``[sys.executable]``
the same code runs on the host's own Python, which is how the tests check it.

Failures are ``RuntimeUnavailableError`` with a one-line message naming the run, the
model and what happened (exit status, signal name, or timeout), followed by the last
lines of the guest's stderr joined with " | ". A crash in one run never affects the
next: every run is a fresh process.

Timing: ``wall_s`` is the host wall time of the whole guest process (emulator start,
Python start, imports, load, all samples). Under emulation it is not a device latency,
and neither are the guest's own ``load_ms`` / ``run_ms``.

Memory: no rlimit is applied. Measured with qemu-aarch64-static 7.2 (guest Python 3.11
with numpy: 70 MB RSS, 616 MB virtual): ``RLIMIT_DATA`` counts qemu's own JIT buffer and
heap, so a limit near a board's RAM fails qemu itself ("mprotect of jit buffer" at
100 MB; at 150-300 MB a GLib allocation failure that left qemu spinning at full CPU
until killed), not the guest; ``RLIMIT_AS`` gave a guest MemoryError at 400-600 MB but
a qemu SIGSEGV (GSlice) at 300 MB. Neither stands for the board's RAM, so the guest's
peak RSS (``stats["peak_rss_kb"]``: the qemu process, guest plus emulator) is reported
for the caller to compare with the board's RAM. Runaways are bounded twice: the timeout,
and a watchdog that reads the process's resident set (``/proc/<pid>/status`` VmRSS, every
0.2 s) and kills its process group past ``memory_limit_bytes`` (default 2 GiB, 30x what
a guest needs).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shlex
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np

from tinyshare.errors import DataError, ModelFileError, RuntimeUnavailableError
from tinyshare.targets._proc import last_lines
from tinyshare.targets.runtimes.base import RuntimeOutputs, as_samples

__all__ = [
    "GUEST_RUNNER",
    "GUEST_RUNTIMES",
    "GUEST_SITES",
    "EmulatedRun",
    "IoQuant",
    "allow_guests",
    "emulated_run_name",
    "guest_argv",
    "image_prefix",
    "onnx_io_quant",
    "run_emulated",
    "stderr_tail",
    "stop_guests",
]

logger = logging.getLogger(__name__)

GUEST_RUNNER = Path(__file__).resolve().with_name("guest_runner.py")
GUEST_RUNTIMES = ("litert", "litert-ref", "onnxruntime", "tflite-runtime")
# the device image's wheel set (site dir) each guest runtime needs
GUEST_SITES = {"litert": "litert", "litert-ref": "litert", "onnxruntime": "onnxruntime",
               "tflite-runtime": "tflite-runtime"}
STDERR_TAIL_LINES = 5
DEFAULT_MEMORY_LIMIT_BYTES = 2 << 30
_WATCH_INTERVAL_S = 0.2
# process groups of the guests running now (runs may go on in several threads), and
# whether new guests are refused (an interrupted run: ``stop_guests``)
_LIVE: set[int] = set()
_LIVE_LOCK = threading.Lock()
_STOPPED = threading.Event()
_LEVEL_NAMES = {"all": "ORT_ENABLE_ALL", "disable": "ORT_DISABLE_ALL"}
_EMULATED_SUFFIX = " (emulated)"


@dataclass(frozen=True)
class IoQuant:
    """Per-tensor quantization of a model's single input and output, passed to the guest.

    Needed for ONNX models only: onnxruntime does not expose initializers, so the host
    reads them (``onnx_io_quant``). A float input or output has scale None.

    Attributes:
        input_scale: the input's scale, or None for a float input.
        input_zero_point: the input's zero point.
        output_scale: the output's scale, or None for a float output.
        output_zero_point: the output's zero point.
    """

    input_scale: float | None
    input_zero_point: int
    output_scale: float | None
    output_zero_point: int

    def guest_args(self) -> list[str]:
        """The guest runner's ``--input-scale`` ... ``--output-zero-point`` arguments."""
        args = []
        if self.input_scale is not None:
            args += ["--input-scale", repr(float(self.input_scale)),
                     "--input-zero-point", str(int(self.input_zero_point))]
        if self.output_scale is not None:
            args += ["--output-scale", repr(float(self.output_scale)),
                     "--output-zero-point", str(int(self.output_zero_point))]
        return args


@dataclass(frozen=True, eq=False)
class EmulatedRun:
    """One run of ``guest_runner.py`` in a device image.

    Attributes:
        outputs: the raw (N, K) outputs, named ``"<run> (emulated)"``, e.g.
            ``"litert-xnnpack (emulated)"``; its ``wall_ms`` is ``wall_s`` in ms and its
            ``extra`` holds the guest's load_ms, run_ms, peak_rss_kb and machine.
        stats: everything the guest wrote to ``stats.json`` (runtime, runtime_version,
            load_ms, run_ms, n_samples, peak_rss_kb, python_version, machine, ...).
        command: the exact argv that ran, shell-quoted (``shlex.join``), with the
            scratch folder's paths in it.
        wall_s: host wall time of the whole guest process in seconds (emulator and
            Python start-up included). Not a device latency.
    """

    outputs: RuntimeOutputs
    stats: Mapping[str, object] = field(default_factory=dict)
    command: str = ""
    wall_s: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "stats", MappingProxyType(dict(self.stats)))


def emulated_run_name(runtime: str, ort_level: str = "all") -> str:
    """The name of an emulated run, e.g. ``"onnxruntime[ORT_DISABLE_ALL] (emulated)"``.

    Raises:
        DataError: an unknown runtime or level.
    """
    _check_choice("runtime", runtime, GUEST_RUNTIMES)
    _check_choice("ort_level", ort_level, tuple(_LEVEL_NAMES))
    base = {"litert": "litert-xnnpack",
            "onnxruntime": f"onnxruntime[{_LEVEL_NAMES[ort_level]}]"}.get(runtime, runtime)
    return base + _EMULATED_SUFFIX


def _check_choice(what: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise DataError(f"unknown {what} {value!r}; expected one of {', '.join(choices)}")


def image_prefix(image, runtime: str, core: str | None = None) -> tuple[list[str], dict[str, str]]:
    """The argv prefix and environment that run ``guest_runner.py`` in a device image.

    Asks ``image.command(site, GUEST_RUNNER, (), core)`` (``DeviceImage.command``: qemu,
    ``-cpu``, ``-L`` sysroot, the guest python, with the runtime's site dir on
    ``PYTHONPATH``) and drops the trailing script path, ready for ``run_emulated``.

    Args:
        image: a ``tinyshare.targets.emulation.DeviceImage`` (anything with that
            ``command`` method).
        runtime: one of ``GUEST_RUNTIMES``; ``"litert-ref"`` uses the ``"litert"`` wheels.
        core: the board's core, or None for the image's own.

    Raises:
        DataError: unknown runtime.
        As ``DeviceImage.command`` (BoardError, RuntimeUnavailableError).
    """
    _check_choice("runtime", runtime, GUEST_RUNTIMES)
    argv, env = image.command(GUEST_SITES[runtime], GUEST_RUNNER, (), core)
    argv = [str(a) for a in argv]
    if not argv or argv[-1] != str(GUEST_RUNNER):
        raise RuntimeUnavailableError(
            f"the device image's command does not end with the guest script: {shlex.join(argv)}")
    return argv[:-1], dict(env)


def onnx_io_quant(model_path: str | os.PathLike) -> IoQuant:
    """Read the per-tensor quantization around an ONNX model's single input and output.

    Scales and zero points come from the DequantizeLinear consuming the graph input and
    the QuantizeLinear producing the graph output (``tinyshare.export.inspect_onnx.qdq_params``).

    Raises:
        ModelFileError: the file cannot be parsed, has not one input and one output, or an
            integer input/output has no constant per-tensor scale on its Q/DQ node.
        RuntimeUnavailableError: onnx is not installed.
    """
    try:
        import onnx
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeUnavailableError(f"onnx cannot be imported: {exc}") from exc
    from tinyshare.export.inspect_onnx import qdq_params

    try:
        graph = onnx.load(os.fspath(model_path)).graph
    except Exception as exc:  # noqa: BLE001 - protobuf DecodeError and friends
        raise ModelFileError(f"cannot parse {model_path} as ONNX: {exc}") from exc
    inits = {t.name for t in graph.initializer}
    inputs = [vi for vi in graph.input if vi.name not in inits]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise ModelFileError(f"{model_path}: expected 1 input and 1 output, found "
                             f"{len(inputs)} and {len(graph.output)}")
    quant = qdq_params(graph)

    def one(vi, what: str) -> tuple[float | None, int]:
        if vi.type.tensor_type.elem_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16,
                                             onnx.TensorProto.DOUBLE):
            return None, 0
        scales, zero_points, _ = quant.get(vi.name, ((), (), None))
        if len(scales) != 1:
            raise ModelFileError(f"{model_path}: integer {what} {vi.name!r} needs one constant "
                                 f"per-tensor scale on its Q/DQ node, found {len(scales)}")
        return float(scales[0]), int(zero_points[0])

    return IoQuant(*one(inputs[0], "input"), *one(graph.output[0], "output"))


def guest_argv(
    argv_prefix: Sequence[str], runtime: str, model_path: str | os.PathLike,
    inputs_path: str | os.PathLike, out_path: str | os.PathLike, stats_path: str | os.PathLike,
    *, ort_level: str = "all", batch: int = 32, io_quant: IoQuant | None = None,
) -> list[str]:
    """The full argv of one guest run: ``argv_prefix + [guest_runner.py, args...]``."""
    argv = [*map(str, argv_prefix), str(GUEST_RUNNER), "--runtime", runtime,
            "--model", os.fspath(model_path), "--inputs", os.fspath(inputs_path),
            "--out", os.fspath(out_path), "--stats", os.fspath(stats_path),
            "--batch", str(int(batch))]
    if runtime == "onnxruntime":
        argv += ["--ort-level", ort_level]
    if io_quant is not None:
        argv += io_quant.guest_args()
    return argv


def run_emulated(
    argv_prefix: Sequence[str],
    env: Mapping[str, str],
    runtime: str,
    model_path: str | os.PathLike,
    x: np.ndarray,
    *,
    timeout_s: float,
    work_dir: str | os.PathLike | None = None,
    io_quant: IoQuant | None = None,
    ort_level: str = "all",
    batch: int = 32,
    memory_limit_bytes: int = DEFAULT_MEMORY_LIMIT_BYTES,
) -> EmulatedRun:
    """Run one model on N samples inside a device image and return its raw outputs.

    Args:
        argv_prefix: the command that starts the guest's Python, e.g. ``[qemu-aarch64-static,
            -cpu, cortex-a72, -L, <sysroot>, <sysroot>/usr/bin/python3.11]``, or
            ``[sys.executable]`` to run on the host.
        env: the complete environment of the guest process (e.g. with ``PYTHONPATH`` set
            to the runtime's site dir); nothing is inherited from this process.
        runtime: ``"litert"`` (XNNPACK), ``"litert-ref"`` (builtin reference kernels),
            ``"onnxruntime"`` or ``"tflite-runtime"``.
        model_path: the .tflite / .onnx file, readable by the guest (qemu-user sees
            host paths).
        x: (N, ...) float32 samples in the model's input layout (NHWC for our .tflite,
            NCHW for our .onnx); the guest quantizes them with the input's own parameters.
        timeout_s: limit for the whole guest process, in seconds.
        work_dir: folder for the scratch files (kept); default a temporary folder,
            removed afterwards.
        io_quant: the ONNX model's I/O quantization; read from the file with
            ``onnx_io_quant`` when None. Ignored for TFLite (the guest reads it).
        ort_level: onnxruntime graph optimization, ``"all"`` or ``"disable"``.
        batch: samples per invoke when the model's batch dimension is dynamic.
        memory_limit_bytes: the guest process is killed when its resident set (guest plus
            emulator) passes this, bytes.

    Returns:
        The ``EmulatedRun``.

    Raises:
        DataError: unknown ``runtime`` / ``ort_level``, bad ``batch`` or ``timeout_s``,
            or ``x`` is not (N, ...) real-valued.
        ModelFileError: the model file is missing (or, for ONNX, its I/O quantization
            cannot be read on the host).
        RuntimeUnavailableError: the guest exited non-zero, was killed by a signal, ran
            past ``timeout_s`` or ``memory_limit_bytes``, could not be started, or wrote no
            readable results.
    """
    name = emulated_run_name(runtime, ort_level)
    if batch < 1:
        raise DataError(f"batch must be >= 1, got {batch}")
    if not (math.isfinite(timeout_s) and timeout_s > 0):
        raise DataError(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")
    model = Path(model_path).resolve()
    if not model.is_file():
        raise ModelFileError(f"model file not found: {model}")
    samples = as_samples(x)
    if runtime == "onnxruntime" and io_quant is None:
        io_quant = onnx_io_quant(model)
    scratch = (tempfile.TemporaryDirectory(prefix="tinyshare-emu-") if work_dir is None
               else contextlib.nullcontext(work_dir))
    with scratch as folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        return _run_in(Path(folder), argv_prefix, env, runtime, name, model, samples,
                       timeout_s, io_quant, ort_level, batch, memory_limit_bytes)


def _run_in(folder, argv_prefix, env, runtime, name, model, samples, timeout_s,
            io_quant, ort_level, batch, memory_limit_bytes) -> EmulatedRun:
    inputs, out, stats_path = folder / "in.npz", folder / "out.npz", folder / "stats.json"
    np.savez(inputs, x=samples)
    for stale in (out, stats_path):
        stale.unlink(missing_ok=True)
    argv = guest_argv(argv_prefix, runtime, model, inputs, out, stats_path,
                      ort_level=ort_level, batch=batch,
                      io_quant=io_quant if runtime == "onnxruntime" else None)
    command = shlex.join(argv)
    where = f"{name} on {model.name}"
    logger.debug("emulated run: %s", command)
    start = time.perf_counter()
    rc, stderr = _execute(argv, env, folder, timeout_s, where, memory_limit_bytes)
    wall_s = time.perf_counter() - start
    if rc != 0:
        raise RuntimeUnavailableError(_failure(where, _status(rc, timeout_s), stderr))
    try:
        with np.load(out) as data:
            raw = np.asarray(data["y"])
        stats = json.loads(stats_path.read_text(encoding="utf-8"))
        if not isinstance(stats, dict):
            raise ValueError("stats.json does not hold a JSON object")
    except (OSError, KeyError, ValueError) as exc:
        raise RuntimeUnavailableError(
            _failure(where, f"wrote no readable results ({exc})", stderr)) from exc
    out_scale = stats.get("output_scale")
    output_quant = None if out_scale is None else (out_scale, stats["output_zero_point"])
    extra = {k: stats.get(k) for k in ("load_ms", "run_ms", "peak_rss_kb", "machine",
                                       "python_version", "output_shape", "input_dtype")}
    outputs = RuntimeOutputs.from_raw(
        runtime=name, runtime_version=str(stats.get("runtime_version", "unknown")), raw=raw,
        output_quant=output_quant, wall_ms=wall_s * 1e3, extra={**extra, "emulated": 1},
    )
    if outputs.n_samples != samples.shape[0]:
        raise RuntimeUnavailableError(_failure(
            where, f"returned {outputs.n_samples} outputs for {samples.shape[0]} samples", stderr))
    return EmulatedRun(outputs, stats, command, wall_s)


def _rss_bytes(pid: int) -> int:
    """Resident set of ``pid`` in bytes (``/proc/<pid>/status`` VmRSS); 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _watch_memory(proc: subprocess.Popen, limit_bytes: int, seen: list[int]) -> None:
    """Kill ``proc``'s process group when its resident set passes ``limit_bytes``; the RSS
    that tripped it goes into ``seen``."""
    while proc.poll() is None:
        rss = _rss_bytes(proc.pid)
        if rss > limit_bytes:
            seen.append(rss)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            return
        time.sleep(_WATCH_INTERVAL_S)


def _execute(argv, env, cwd, timeout_s, where,
             memory_limit_bytes: int = DEFAULT_MEMORY_LIMIT_BYTES) -> tuple[int | None, str]:
    """Run argv in its own session; returns (exit status, or None on timeout; stderr text).

    On a timeout the whole process group is killed, so helpers the guest started die too.
    The working folder is the scratch folder, where a qemu core file would land.

    Raises:
        RuntimeUnavailableError: it could not start, guests are stopped (``stop_guests``),
            or its resident set passed ``memory_limit_bytes`` (the process group is
            killed; the message gives both).
    """
    with _LIVE_LOCK:  # started and registered at once, so stop_guests cannot miss it
        if _STOPPED.is_set():
            raise RuntimeUnavailableError(f"{where}: not started: the run was interrupted")
        try:
            proc = subprocess.Popen(
                list(argv), env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
            )
        except OSError as exc:
            raise RuntimeUnavailableError(f"{where}: cannot start {argv[0]!r}: {exc}") from exc
        _LIVE.add(proc.pid)
    over: list[int] = []
    watchdog = threading.Thread(target=_watch_memory, args=(proc, memory_limit_bytes, over),
                                daemon=True)
    watchdog.start()
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
        rc: int | None = proc.returncode
        if over:
            raise RuntimeUnavailableError(
                f"{where} passed the memory limit of {memory_limit_bytes >> 20} MiB "
                f"(resident {over[0] >> 20} MiB) and was killed")
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
            os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=30)
        rc = None
    except BaseException:  # Ctrl-C / SIGTERM: never leave a guest running on its own
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)
        raise
    finally:
        with _LIVE_LOCK:
            _LIVE.discard(proc.pid)
    if stdout:
        logger.debug("%s stdout: %s", where, stdout.decode(errors="replace")[-2000:])
    return rc, stderr.decode(errors="replace")


def stop_guests() -> int:
    """Refuse new guests and kill the process group of every guest running now, in any
    thread: an interrupted run stops its side-by-side board runs at once (each waiting
    thread sees its guest killed, and its next guest is refused). ``allow_guests`` undoes
    it. Returns how many guests were killed."""
    with _LIVE_LOCK:
        _STOPPED.set()
        pids = list(_LIVE)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    return len(pids)


def allow_guests() -> None:
    """Let guests start again after ``stop_guests`` (a new run in the same process)."""
    _STOPPED.clear()


def _status(rc: int | None, timeout_s: float) -> str:
    if rc is None:
        return f"timed out after {timeout_s:g} s (killed)"
    if rc < 0:
        try:
            sig = signal.Signals(-rc).name
        except ValueError:
            sig = f"signal {-rc}"
        return f"was killed by {sig}"
    return f"exited with status {rc}"


def stderr_tail(text: str, lines: int = STDERR_TAIL_LINES) -> str:
    """The last ``lines`` non-empty lines of ``text``, stripped and joined with " | "."""
    return last_lines(text, lines)


def _failure(where: str, what: str, stderr: str) -> str:
    tail = stderr_tail(stderr)
    return f"{where} {what}" + (f"; guest stderr: {tail}" if tail else "; guest stderr is empty")
