"""TensorFlow Lite Micro on the host: outputs, the smallest working arena, the op resolver.

TFLM (``tflite-micro`` Python package: reference kernels, the real memory planner)
always runs in a child process: with a too-small arena the host build sometimes
segfaults instead of raising (measured: arenas of ~100-300 bytes). A crash counts
as "does not run" and the child is restarted.

Arena figures come from the 64-bit host build (a 32-bit Cortex-M build uses smaller
structs). The allocator's "Arena allocation total" is kept only for comparison: it
omits scratch used while preparing ops and can be too small to run (field case C4).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyshare.errors import DataError, RuntimeUnavailableError, UnsupportedOpError
from tinyshare.targets.runtimes.base import (Rounding, RuntimeOutputs, as_samples, dequantize,
                                             existing_file, package_version)

__all__ = ["ArenaMeasurement", "HOST_BUILD_NOTE", "TflmOpRegistry", "find_arena_bytes",
           "run_tflm", "tflm_registered_ops", "tflm_version"]

HOST_BUILD_NOTE = ("measured with the 64-bit host build of TFLM (tflite-micro Python package); "
                   "a 32-bit Cortex-M build uses smaller structs")
_ALIGN_BYTES = 16
_REQUEST_TIMEOUT_S = 120.0
_TOTAL_RE = re.compile(r"Arena allocation total (\d+) bytes")


@dataclass(frozen=True)
class ArenaMeasurement:
    """The smallest tensor arena with which TFLM both allocates and invokes a model.

    Attributes:
        arena_bytes: smallest multiple of 16 bytes that allocates and invokes,
            verified by a final run at exactly this size.
        planner_reported_bytes: the recording allocator's "Arena allocation total"
            (None if unread). Not a safe size (C4).
        search_steps: allocate+invoke probes made.
        note: where the figure was measured (``HOST_BUILD_NOTE``).
    """

    arena_bytes: int
    planner_reported_bytes: int | None
    search_steps: int
    note: str = HOST_BUILD_NOTE


@dataclass(frozen=True)
class TflmOpRegistry:
    """The builtin ops (``BuiltinOperator`` names) the host TFLM build resolves.

    ``checks_op_versions`` is False when an op code resolves at any version (probed
    with CONV_2D version 99): version support must then come from a capability table.
    """

    builtin_ops: frozenset[str]
    checks_op_versions: bool
    tflm_version: str


def tflm_version() -> str:
    """The installed tflite-micro version, or ``"unknown"``."""
    return package_version("tflite-micro")


def _align(n: int) -> int:
    return -(-int(n) // _ALIGN_BYTES) * _ALIGN_BYTES


class _Worker:
    """A child process running TFLM requests (a crash answers ``ok: False``); ``tmp`` is scratch."""

    def __init__(self) -> None:
        if importlib.util.find_spec("tflite_micro") is None:
            raise RuntimeUnavailableError("tflite_micro (package tflite-micro) is not installed")
        self._proc: subprocess.Popen | None = None
        self.tmp = tempfile.mkdtemp(prefix="tinyshare-tflm-")

    def _start(self) -> subprocess.Popen:
        root = str(Path(__file__).resolve().parents[3])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        code = "from tinyshare.targets.runtimes.tflm import _serve; _serve()"
        return subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, env=env, text=True,
        )

    def request(self, req: dict) -> dict:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = self._start()
        proc, line = self._proc, ""
        try:
            proc.stdin.write(json.dumps(req) + "\n")
            proc.stdin.flush()
            if not select.select([proc.stdout], [], [], _REQUEST_TIMEOUT_S)[0]:
                self.close()
                raise RuntimeUnavailableError(
                    f"TFLM child process gave no answer within {_REQUEST_TIMEOUT_S:.0f} s")
            line = proc.stdout.readline()
        except BrokenPipeError:
            pass
        if line:
            return json.loads(line)
        self._proc = None  # it died: the next request starts a fresh one
        return {"ok": False, "stage": "crash", "log": "",
                "error": f"TFLM process died (exit {proc.wait()})"}

    def close(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.stdin.close()  # the child's loop ends at EOF
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _size_unrelated(resp: dict) -> bool:  # a failure that no arena size would cure
    return resp["stage"] in ("input", "child") or "Didn't find op" in resp.get("log", "")


def _raise_for(resp: dict, what: str) -> None:
    log = resp.get("log", "")
    text = f"{what}: {resp.get('error')}" + (f"\nTFLM log:\n{log}" if log else "")
    if resp["stage"] == "input":
        raise DataError(text)
    if "Didn't find op" in log:
        raise UnsupportedOpError(text)
    raise RuntimeUnavailableError(text)


def run_tflm(
    model_path: str | os.PathLike,
    x: np.ndarray,
    *,
    arena_bytes: int,
    rounding: Rounding = "half_away_from_zero",
) -> RuntimeOutputs:
    """Run a single-input, single-output .tflite model under TFLM on N samples.

    Args:
        model_path: path to the .tflite file.
        x: (N, *input_shape[1:]) float32 samples in the model's input layout;
            quantized with the input tensor's own scale and zero point.
        arena_bytes: tensor arena size in bytes (e.g. from ``find_arena_bytes``).
        rounding: tie rule for quantizing the inputs (see ``quantize_input``).

    Returns:
        ``RuntimeOutputs`` named ``"tflm"``; ``wall_ms`` includes starting the child
        process, ``extra["invoke_ms"]`` is the invoke loop alone.

    Raises:
        DataError: ``x`` does not fit the model input, or ``arena_bytes`` <= 0.
        ModelFileError: the file is missing.
        UnsupportedOpError: TFLM does not register an op of the model.
        RuntimeUnavailableError: TFLM cannot allocate or invoke with this arena, or crashed.
    """
    path = existing_file(model_path, ".tflite")
    if int(arena_bytes) <= 0:
        raise DataError(f"arena_bytes must be positive, got {arena_bytes}")
    samples = as_samples(x)
    start = time.perf_counter()
    with contextlib.closing(_Worker()) as worker:
        in_path, out_path = os.path.join(worker.tmp, "x.npy"), os.path.join(worker.tmp, "y.npy")
        np.save(in_path, samples)
        resp = worker.request({"cmd": "run", "model": path, "arena": int(arena_bytes),
                               "inputs": in_path, "outputs": out_path, "rounding": rounding})
        if not resp["ok"]:
            _raise_for(resp, f"TFLM cannot run {path} with a {arena_bytes}-byte arena")
        raw = np.load(out_path)
    wall_ms = (time.perf_counter() - start) * 1e3
    quantized = resp["out_scale"] is not None
    scale, zp = (float(resp["out_scale"]), int(resp["out_zero_point"])) if quantized else (1.0, 0)
    deq = dequantize(raw, scale, zp) if quantized else raw.astype(np.float32)
    extra = {"arena_bytes": int(arena_bytes), "invoke_ms": resp["invoke_ms"],
             "output_shape": resp["output_shape"], "planner_reported_bytes": resp["planner_total"]}
    return RuntimeOutputs("tflm", tflm_version(), raw, scale, zp, deq, wall_ms,
                          {k: v for k, v in extra.items() if v is not None})


def find_arena_bytes(
    model_path: str | os.PathLike,
    sample_input: np.ndarray,
    *,
    max_arena_bytes: int = 64 * 1024 * 1024,
) -> ArenaMeasurement:
    """Find the smallest arena (a multiple of 16 bytes) that allocates and invokes.

    The probe size doubles until one runs, then a binary search finds the smallest
    working multiple of 16 bytes; any failure at allocation or invoke (exception or
    crash) counts as "too small". A final run at exactly that size verifies it and
    reads the allocator's own total.

    Args:
        model_path: path to the .tflite file.
        sample_input: (N, *input_shape[1:]) or (*input_shape[1:],) float32; the
            first sample is used (arena needs do not depend on the values).
        max_arena_bytes: give up above this size.

    Returns ``ArenaMeasurement``.

    Raises:
        DataError: the sample does not fit the model input.
        ModelFileError: the file is missing.
        UnsupportedOpError: TFLM does not register an op of the model.
        RuntimeUnavailableError: no arena up to ``max_arena_bytes`` works, or the
            verifying run at the found size fails.
    """
    path = existing_file(model_path, ".tflite")
    sample = np.asarray(sample_input, dtype=np.float32)
    steps = 0
    with contextlib.closing(_Worker()) as worker:
        in_path = os.path.join(worker.tmp, "x.npy")
        np.save(in_path, sample[:1] if sample.ndim > 1 else sample[None])

        def probe(n: int) -> dict:
            nonlocal steps
            steps += 1
            return worker.request({"cmd": "run", "model": path, "arena": n,
                                   "inputs": in_path, "outputs": None})

        hi = _align(max(16 * 1024, 4 * os.path.getsize(path)))
        lo = 0  # largest size known to fail
        while True:
            resp = probe(hi)
            if resp["ok"]:
                break
            if _size_unrelated(resp):
                _raise_for(resp, f"TFLM cannot run {path}")
            if hi >= max_arena_bytes:
                _raise_for(resp, f"TFLM cannot run {path} with any arena up to {hi} bytes")
            lo, hi = hi, min(_align(max_arena_bytes), hi * 2)
        while hi - lo > _ALIGN_BYTES:
            mid = _align((lo + hi) // 2)  # lo < mid < hi: both are multiples of 16
            resp = probe(mid)
            if not resp["ok"] and _size_unrelated(resp):
                _raise_for(resp, f"TFLM cannot run {path}")
            lo, hi = (lo, mid) if resp["ok"] else (mid, hi)
        final = probe(hi)
        if not final["ok"]:
            _raise_for(final, f"verifying run of {path} at the found arena of {hi} bytes failed")
    return ArenaMeasurement(arena_bytes=hi, planner_reported_bytes=final.get("planner_total"),
                            search_steps=steps)


@functools.lru_cache(maxsize=1)
def tflm_registered_ops() -> TflmOpRegistry:
    """Probe which builtin ops the host TFLM build's op resolver registers.

    Each builtin op code is put in a tiny model followed by an unregistered custom
    op. TFLM looks up every op before preparing any, so the model fails either on
    the probed op ("Didn't find op for builtin opcode") or on the sentinel, which
    means the probed op was found; no kernel is prepared or run.

    Returns ``TflmOpRegistry`` (cached per process).

    Raises:
        RuntimeUnavailableError: tflite-micro is missing or the probe crashed.
    """
    with contextlib.closing(_Worker()) as worker:
        resp = worker.request({"cmd": "ops"})
    if not resp["ok"]:
        raise RuntimeUnavailableError(f"probing TFLM's op resolver failed: {resp.get('error')}")
    return TflmOpRegistry(builtin_ops=frozenset(resp["ops"]),
                          checks_op_versions=bool(resp["checks_versions"]),
                          tflm_version=tflm_version())


# --------------------------------------------------------------------------- child side


def _probe_model(code: int, version: int) -> bytes:
    """A model with the builtin op ``code`` then an unregistered custom op."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as s

    model, probed = s.ModelT(), s.OperatorCodeT()
    model.version = 3
    probed.builtinCode, probed.deprecatedBuiltinCode, probed.version = code, min(code, 127), version
    sentinel = s.OperatorCodeT()
    sentinel.builtinCode = sentinel.deprecatedBuiltinCode = s.BuiltinOperator.CUSTOM
    sentinel.customCode, sentinel.version = b"tinyshare.sentinel", 1
    model.operatorCodes, model.buffers = [probed, sentinel], [s.BufferT()]
    graph = s.SubGraphT()
    graph.tensors, graph.operators = [s.TensorT(), s.TensorT()], [s.OperatorT(), s.OperatorT()]
    for k, t in enumerate(graph.tensors):
        t.shape, t.type, t.buffer, t.name = [1], s.TensorType.FLOAT32, 0, b"ab"[k : k + 1]
    for k, op in enumerate(graph.operators):
        op.opcodeIndex, op.inputs, op.outputs = k, [0], [1]
    if code == s.BuiltinOperator.VAR_HANDLE:  # the Python wrapper reads its options
        op, op.builtinOptionsType = graph.operators[0], s.BuiltinOptions.VarHandleOptions
        op.builtinOptions = s.VarHandleOptionsT()
        op.builtinOptions.sharedName = b"probe"
    graph.inputs, graph.outputs, model.subgraphs = [0], [1], [graph]
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _serve() -> None:  # pragma: no cover - runs in the child process
    """Child loop: one JSON request per stdin line, one JSON answer per line."""
    from tflite_micro.python.tflite_micro import runtime
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as s

    from tinyshare.targets.runtimes.base import quantize_input

    reply = os.fdopen(os.dup(1), "w")
    log_fd, log_path = tempfile.mkstemp(prefix="tinyshare-tflm-log-")
    os.unlink(log_path)  # the open descriptor keeps it alive; nothing is left behind
    os.dup2(log_fd, 1)  # native prints (TFLM's DebugLog) go to the log, not the protocol
    os.dup2(log_fd, 2)

    def read_log() -> str:
        os.lseek(log_fd, 0, 0)
        return os.read(log_fd, 1 << 16).decode(errors="replace")

    def reset_log() -> None:
        os.ftruncate(log_fd, 0)
        os.lseek(log_fd, 0, 0)

    def resolves(code: int, version: int) -> bool:
        reset_log()
        with contextlib.suppress(RuntimeError):  # it always fails: on ``code`` or the sentinel
            runtime.Interpreter.from_bytes(_probe_model(code, version), arena_size=1 << 16)
        text = read_log()
        return "Didn't find op for builtin" not in text and "op code CUSTOM" in text

    def handle(req: dict) -> dict:
        if req["cmd"] == "ops":
            names = {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}
            found = [names[c] for c in sorted(names)
                     if c != s.BuiltinOperator.CUSTOM and resolves(c, 1)]
            any_version = resolves(s.BuiltinOperator.CONV_2D, 99)
            return {"ok": True, "ops": found, "checks_versions": not any_version}
        x = np.load(req["inputs"])
        try:
            stage = "allocate"
            it = runtime.Interpreter.from_file(req["model"], arena_size=req["arena"])
            ind, outd = it.get_input_details(0), it.get_output_details(0)
            in_dtype, out_dtype = np.dtype(ind["dtype"]), np.dtype(outd["dtype"])
            shape = tuple(ind["shape"].tolist())
            if x.shape[1:] != shape[1:]:
                return {"ok": False, "stage": "input", "log": "",
                        "error": f"inputs {x.shape} do not fit the model input {shape}"}
            if np.issubdtype(in_dtype, np.integer):
                qp = ind["quantization_parameters"]
                x = quantize_input(x, float(qp["scales"][0]), int(qp["zero_points"][0]),
                                   in_dtype, rounding=req.get("rounding", "half_away_from_zero"))
            stage, t0, ys = "invoke", time.perf_counter(), []
            for i in range(x.shape[0]):
                it.set_input(x[i : i + 1].astype(in_dtype), 0)
                it.invoke()
                ys.append(np.array(it.get_output(0)).reshape(-1))
            invoke_ms = (time.perf_counter() - t0) * 1e3
            reset_log()
            it.print_allocations()
            match = _TOTAL_RE.search(read_log())
        except (RuntimeError, ValueError) as exc:
            return {"ok": False, "stage": stage, "error": f"{stage}: {exc}",
                    "log": read_log()[-4000:]}
        if req.get("outputs"):
            np.save(req["outputs"], np.stack(ys))
        qp = outd["quantization_parameters"]
        quantized = np.issubdtype(out_dtype, np.integer)
        return {"ok": True, "invoke_ms": invoke_ms,
                "out_scale": float(qp["scales"][0]) if quantized else None,
                "out_zero_point": int(qp["zero_points"][0]) if quantized else 0,
                "output_shape": "x".join(str(int(d)) for d in outd["shape"]),
                "planner_total": int(match.group(1)) if match else None}

    for line in sys.stdin:
        reset_log()
        try:
            answer = handle(json.loads(line))
        except Exception as exc:  # any failure is an answer, never a dead child
            answer = {"ok": False, "stage": "child", "error": repr(exc), "log": read_log()[-4000:]}
        reply.write(json.dumps(answer) + "\n")
        reply.flush()
