"""TensorFlow Lite Micro on the host: outputs, the smallest working arena, the op resolver.

TFLM (``tflite-micro`` Python package: reference kernels, the real memory planner)
always runs in a child process (``tflm_child.py``: the server and the op probe): with a
too-small arena the host build sometimes segfaults instead of raising (measured: arenas of
~100-300 bytes). A crash counts as "does not run" and the child is restarted.

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
from tinyshare.artifacts.files import require_model_file
from tinyshare.targets.runtimes.base import Rounding, RuntimeOutputs, as_samples, package_version

__all__ = ["ArenaMeasurement", "HOST_BUILD_NOTE", "TflmOpRegistry", "find_arena_bytes",
           "run_tflm", "tflm_registered_ops", "tflm_version"]

HOST_BUILD_NOTE = ("measured with the 64-bit host build of TFLM (tflite-micro Python package); "
                   "a 32-bit Cortex-M build uses smaller structs")
_ALIGN_BYTES = 16
_REQUEST_TIMEOUT_S = 120.0


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
    """The installed tflite-micro version, or ``"not installed"``."""
    return package_version("tflite-micro")


def _align(n: int) -> int:
    return -(-int(n) // _ALIGN_BYTES) * _ALIGN_BYTES


class _Worker:
    """A child process running TFLM requests (a crash answers ``ok: False``); ``tmp`` is scratch.

    The child runs ``tinyshare.targets.runtimes.tflm_child.serve`` (the protocol is there).
    """

    def __init__(self) -> None:
        if importlib.util.find_spec("tflite_micro") is None:
            raise RuntimeUnavailableError("tflite_micro (package tflite-micro) is not installed")
        self._proc: subprocess.Popen | None = None
        self.tmp = tempfile.mkdtemp(prefix="tinyshare-tflm-")

    def _start(self) -> subprocess.Popen:
        root = str(Path(__file__).resolve().parents[3])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        code = "from tinyshare.targets.runtimes.tflm_child import serve; serve()"
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
    path = str(require_model_file(model_path, "tflite"))
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
    out_quant = None if resp["out_scale"] is None else (resp["out_scale"], resp["out_zero_point"])
    extra = {"arena_bytes": int(arena_bytes), "invoke_ms": resp["invoke_ms"],
             "output_shape": resp["output_shape"], "planner_reported_bytes": resp["planner_total"]}
    return RuntimeOutputs.from_raw("tflm", tflm_version(), raw, out_quant, wall_ms, extra)


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
    path = str(require_model_file(model_path, "tflite"))
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
