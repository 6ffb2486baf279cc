"""Device-side runner: load one int8 model with one runtime and run N samples (guest script).

This file runs *inside* the device image, under the guest's own Python (e.g. Debian's
aarch64 python3.11 under ``qemu-aarch64-static``). It imports only the standard
library, numpy and the runtime being measured: never tinyshare, never torch, so it
runs unchanged on a board or in an image that holds nothing else. The host side is
``tinyshare.targets.emulation.run``.

Files and rules (``--help`` lists the arguments):

* ``in.npz`` holds ``x``: (N, ...) float32 samples already in the model's input layout
  (NHWC for our .tflite files, NCHW for our .onnx files).
* Integer inputs are quantized with the input tensor's own scale and zero point,
  ``q = clip(round(x / scale) + zero_point)`` in float32 with ties rounded away from
  zero: the rule of ``tinyshare.targets.runtimes.base.quantize_input`` (default
  rounding), replicated here in numpy so the guest feeds the same integers as the host.
* TFLite models give their I/O quantization through the interpreter's per-tensor
  ``quantization_parameters``. onnxruntime does not expose initializers, so for ONNX
  models the host passes the I/O quantization (read from the DequantizeLinear /
  QuantizeLinear around the graph I/O) as ``--input-scale`` ... ``--output-zero-point``.
* ``out.npz`` gets ``y``: (N, K) raw outputs in the output tensor's dtype (int8 for our
  models), each sample flattened. ``stats.json`` gets the facts listed in ``_stats``.
* Models with a fixed batch of 1 run one sample per invoke; a dynamic batch dimension
  runs chunks of ``--batch`` samples; a fixed batch B > 1 runs chunks of B (the last
  one zero-padded, the padding dropped).

Progress goes to stderr as ``guest_runner: loading ...`` / ``guest_runner: running ...``
lines, so that when the runtime crashes (e.g. SIGSEGV, which kills the process with
that signal) or the run times out, the last lines of stderr say where it was. (No
``faulthandler``: its many-line stack dump would push those lines out of the tail.)
Any error prints one line, ``guest_runner: error: <why>``, and exits non-zero: 3 for
a model the runtime cannot load, 4 for inputs that do not fit, 5 for a missing
runtime, 1 for anything else (argparse errors exit 2).
"""

from __future__ import annotations

import os
import sys

# Python puts this script's folder first on sys.path; drop it so that no sibling module
# of the host package can shadow a standard-library or runtime module in the guest.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse  # noqa: E402  (after the sys.path fix above)
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

RUNTIMES = ("litert", "litert-ref", "onnxruntime", "tflite-runtime")
_LEVEL_NAMES = {"all": "ORT_ENABLE_ALL", "disable": "ORT_DISABLE_ALL"}
_DISTRIBUTIONS = {
    "litert": ("ai-edge-litert", "ai_edge_litert"),
    "litert-ref": ("ai-edge-litert", "ai_edge_litert"),
    "onnxruntime": ("onnxruntime", "onnxruntime"),
    "tflite-runtime": ("tflite-runtime", "tflite_runtime"),
}
_ORT_DTYPES = {
    "tensor(int8)": np.int8, "tensor(uint8)": np.uint8, "tensor(int16)": np.int16,
    "tensor(uint16)": np.uint16, "tensor(int32)": np.int32, "tensor(float)": np.float32,
}
EXIT_ERROR, EXIT_MODEL, EXIT_INPUT, EXIT_RUNTIME = 1, 3, 4, 5


class GuestError(Exception):
    """An error reported as one stderr line; ``exit_code`` is the process status."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def run_name(runtime: str, ort_level: str = "all") -> str:
    """The run's name as the host harnesses spell it, e.g. ``"litert-xnnpack"``."""
    if runtime == "litert":
        return "litert-xnnpack"
    if runtime == "onnxruntime":
        return f"onnxruntime[{_LEVEL_NAMES[ort_level]}]"
    return runtime


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype) -> np.ndarray:
    """``clip(round(x / scale) + zero_point)`` in float32, ties away from zero.

    The same rule and arithmetic as ``tinyshare.targets.runtimes.base.quantize_input``
    with ``rounding="half_away_from_zero"``.

    Args:
        x: (N, ...) float samples; scale (> 0), zero_point, dtype: the input tensor's.

    Returns:
        Array of ``x``'s shape in ``dtype``.
    """
    dtype = np.dtype(dtype)
    if not (np.isfinite(scale) and scale > 0):
        raise GuestError(f"input scale must be positive and finite, got {scale!r}", EXIT_INPUT)
    xf = np.asarray(x, dtype=np.float32)
    if not np.all(np.isfinite(xf)):
        raise GuestError("inputs hold NaN or infinite values", EXIT_INPUT)
    scaled = xf / np.float32(scale)
    whole = np.trunc(scaled)
    rounded = whole + np.sign(scaled) * (np.abs(scaled - whole) >= np.float32(0.5))
    info = np.iinfo(dtype)
    q = np.clip(rounded.astype(np.int64) + int(zero_point), int(info.min), int(info.max))
    return q.astype(dtype)


def _runtime_version(runtime: str) -> str:
    dist, module = _DISTRIBUTIONS[runtime]
    try:
        from importlib.metadata import PackageNotFoundError, version
        try:
            return version(dist)
        except PackageNotFoundError:
            return version(module)
    except Exception:  # noqa: BLE001 - metadata missing: fall back to the module attribute
        return str(getattr(sys.modules.get(module), "__version__", "unknown"))


def _check_shape(samples: np.ndarray, model_shape) -> None:
    want, got = tuple(model_shape[1:]), samples.shape[1:]
    if len(want) != len(got) or any(
            isinstance(w, int) and w > 0 and w != g for w, g in zip(want, got)):
        raise GuestError(f"inputs of shape {samples.shape} do not fit the model input "
                         f"{tuple(model_shape)}", EXIT_INPUT)


def _run_batches(samples: np.ndarray, batch_dim, batch: int, invoke) -> np.ndarray:
    """Run ``invoke(chunk) -> (b, ...)`` over the samples; returns (N, K).

    ``batch_dim``: the model's fixed batch size, or None when it is dynamic.
    """
    size = batch if batch_dim is None else int(batch_dim)
    outs = []
    for start in range(0, samples.shape[0], size):
        chunk = samples[start:start + size]
        n = chunk.shape[0]
        if batch_dim is not None and n < size:  # fixed batch: zero-pad the last chunk
            pad = np.zeros((size - n,) + chunk.shape[1:], chunk.dtype)
            chunk = np.concatenate([chunk, pad])
        y = np.asarray(invoke(chunk))
        if y.ndim == 0 or y.shape[0] != chunk.shape[0]:
            raise GuestError(f"a run of {chunk.shape[0]} samples gave an output of shape {y.shape}")
        outs.append(y[:n].reshape(n, -1))
    return np.concatenate(outs)


def _tflite(args, samples: np.ndarray) -> dict:
    try:
        if args.runtime == "tflite-runtime":
            from tflite_runtime.interpreter import Interpreter
            kwargs = {}
        else:
            from ai_edge_litert.interpreter import Interpreter, OpResolverType
            kwargs = {"experimental_op_resolver_type": (
                OpResolverType.BUILTIN_REF if args.runtime == "litert-ref"
                else OpResolverType.AUTO)}
    except ImportError as exc:
        raise GuestError(f"cannot import the runtime: {exc}", EXIT_RUNTIME) from exc
    _say_loading(args)
    start = time.perf_counter()
    try:
        interp = Interpreter(model_path=args.model, num_threads=1, **kwargs)
        interp.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise GuestError(f"cannot load {args.model}: {exc}", EXIT_MODEL) from exc
    load_ms = (time.perf_counter() - start) * 1e3
    ins, outs = interp.get_input_details(), interp.get_output_details()
    if len(ins) != 1 or len(outs) != 1:
        raise GuestError(f"expected 1 input and 1 output, found {len(ins)} and {len(outs)}",
                         EXIT_MODEL)
    inp, out = ins[0], outs[0]
    _check_shape(samples, [int(s) for s in inp["shape"]])
    in_q, out_q = _tensor_quant(inp, "input"), _tensor_quant(out, "output")
    signature = inp.get("shape_signature", inp["shape"])
    batch_dim = None if int(signature[0]) < 0 else int(inp["shape"][0])
    _say(f"running {samples.shape[0]} samples")
    start = time.perf_counter()
    feed = _feed(samples, in_q, np.dtype(inp["dtype"]))
    resized = [None]

    def invoke(chunk):
        if batch_dim is None and resized[0] != chunk.shape[0]:
            interp.resize_tensor_input(inp["index"], list(chunk.shape))
            interp.allocate_tensors()
            resized[0] = chunk.shape[0]
        interp.set_tensor(inp["index"], chunk)
        interp.invoke()
        return interp.get_tensor(out["index"]).copy()

    raw = _run_batches(feed, batch_dim, args.batch, invoke)
    run_ms = (time.perf_counter() - start) * 1e3
    return {"raw": raw, "load_ms": load_ms, "run_ms": run_ms, "input_quant": in_q,
            "output_quant": out_q, "input_dtype": np.dtype(inp["dtype"]).name,
            "output_shape": "x".join(str(int(s)) for s in out["shape"])}


def _tensor_quant(details: dict, what: str):
    """(scale, zero_point) of an integer I/O tensor from ``quantization_parameters``; None if float."""
    if not np.issubdtype(np.dtype(details["dtype"]), np.integer):
        return None
    qp = details["quantization_parameters"]
    scales, zps = np.asarray(qp["scales"]), np.asarray(qp["zero_points"])
    if scales.size != 1 or zps.size != 1:
        raise GuestError(f"{what} tensor {details['name']!r} has {scales.size} scales; "
                         "expected one per-tensor scale", EXIT_MODEL)
    return float(scales[0]), int(zps[0])


def _feed(samples: np.ndarray, in_q, dtype: np.dtype) -> np.ndarray:
    if in_q is None:
        return samples.astype(dtype)
    return quantize(samples, in_q[0], in_q[1], dtype)


def _onnx(args, samples: np.ndarray) -> dict:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise GuestError(f"cannot import the runtime: {exc}", EXIT_RUNTIME) from exc
    _say_loading(args)
    start = time.perf_counter()
    so = ort.SessionOptions()
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _LEVEL_NAMES[args.ort_level])
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    try:
        sess = ort.InferenceSession(args.model, so, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own Fail/InvalidGraph types
        raise GuestError(f"cannot load {args.model}: {exc}", EXIT_MODEL) from exc
    load_ms = (time.perf_counter() - start) * 1e3
    ins, outs = sess.get_inputs(), sess.get_outputs()
    if len(ins) != 1 or len(outs) != 1:
        raise GuestError(f"expected 1 input and 1 output, found {len(ins)} and {len(outs)}",
                         EXIT_MODEL)
    inp, out = ins[0], outs[0]
    if inp.type not in _ORT_DTYPES:
        raise GuestError(f"unsupported input type {inp.type}", EXIT_MODEL)
    in_dtype = np.dtype(_ORT_DTYPES[inp.type])
    _check_shape(samples, list(inp.shape))
    in_q = out_q = None
    if np.issubdtype(in_dtype, np.integer):
        if args.input_scale is None:
            raise GuestError(f"input {inp.name!r} is {in_dtype.name}: pass --input-scale and "
                             "--input-zero-point", EXIT_INPUT)
        in_q = (float(args.input_scale), int(args.input_zero_point))
    if args.output_scale is not None:
        out_q = (float(args.output_scale), int(args.output_zero_point))
    dim0 = inp.shape[0] if inp.shape else 1
    batch_dim = int(dim0) if isinstance(dim0, int) and dim0 > 0 else None
    _say(f"running {samples.shape[0]} samples")
    start = time.perf_counter()
    feed = _feed(samples, in_q, in_dtype)
    raw = _run_batches(feed, batch_dim, args.batch,
                       lambda chunk: sess.run([out.name], {inp.name: chunk})[0])
    run_ms = (time.perf_counter() - start) * 1e3
    return {"raw": raw, "load_ms": load_ms, "run_ms": run_ms, "input_quant": in_q,
            "output_quant": out_q, "input_dtype": in_dtype.name,
            "output_shape": "x".join("?" if not isinstance(d, int) else str(d) for d in out.shape)}


def _peak_rss_kb() -> int | None:
    """Peak resident set size of this process in KiB (VmHWM), as the guest sees it."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None  # not measurable here; ru_maxrss would carry the forked parent's RSS


def _stats(args, result: dict, n_samples: int) -> dict:
    """Everything the host reports about the run, as the guest sees it.

    ``peak_rss_kb`` is the ``VmHWM`` line of ``/proc/self/status``: under qemu-user that is
    the emulator process, guest memory plus qemu's own (translated-code cache, ~70 MB for
    Python with numpy). ``ru_maxrss`` is not used: Linux carries the RSS of the forked
    parent across ``exec`` into it, so a guest started from a large host process would
    report the host's size. ``cpuinfo_processors`` counts the "processor" lines of
    /proc/cpuinfo as the guest reads it (the image's board-true file under qemu ``-L``).
    """
    in_q, out_q = result["input_quant"], result["output_quant"]
    return {
        "runtime": run_name(args.runtime, args.ort_level),
        "runtime_version": _runtime_version(args.runtime),
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "machine": platform.machine(),
        "cpuinfo_processors": _cpuinfo_processors(),
        "load_ms": round(result["load_ms"], 3),
        "run_ms": round(result["run_ms"], 3),
        "n_samples": n_samples,
        "peak_rss_kb": _peak_rss_kb(),
        "input_dtype": result["input_dtype"],
        "input_scale": None if in_q is None else in_q[0],
        "input_zero_point": None if in_q is None else in_q[1],
        "output_dtype": result["raw"].dtype.name,
        "output_scale": None if out_q is None else out_q[0],
        "output_zero_point": None if out_q is None else out_q[1],
        "output_shape": result["output_shape"],
        "batch": args.batch,
        "num_threads": 1,
    }


def _cpuinfo_processors() -> int | None:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            return sum(1 for line in f if line.startswith("processor"))
    except OSError:
        return None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Run one int8 model on N samples (device side).")
    p.add_argument("--runtime", required=True, choices=RUNTIMES)
    p.add_argument("--model", required=True)
    p.add_argument("--inputs", required=True, help="npz with x: (N, ...) float32")
    p.add_argument("--out", required=True, help="npz to write y: (N, K) raw outputs")
    p.add_argument("--stats", required=True, help="json to write the run's facts")
    p.add_argument("--ort-level", choices=tuple(_LEVEL_NAMES), default="all")
    p.add_argument("--batch", type=int, default=32,
                   help="samples per invoke for a dynamic batch dimension")
    p.add_argument("--input-scale", type=float)
    p.add_argument("--input-zero-point", type=int, default=0)
    p.add_argument("--output-scale", type=float)
    p.add_argument("--output-zero-point", type=int, default=0)
    return p


def _load_inputs(path: str) -> np.ndarray:
    try:
        with np.load(path) as data:
            x = np.asarray(data["x"])
    except (OSError, KeyError, ValueError) as exc:
        raise GuestError(f"cannot read x from {path}: {exc}", EXIT_INPUT) from exc
    if x.ndim == 0 or x.shape[0] == 0:
        raise GuestError(f"inputs must be (N, ...) with N >= 1, got shape {x.shape}", EXIT_INPUT)
    return x.astype(np.float32, copy=False)


def run(args: argparse.Namespace) -> dict:
    """Load, run and write ``args.out`` and ``args.stats``; returns the stats."""
    if args.batch < 1:
        raise GuestError(f"--batch must be >= 1, got {args.batch}", EXIT_INPUT)
    if not os.path.isfile(args.model):
        raise GuestError(f"model file not found: {args.model}", EXIT_MODEL)
    samples = _load_inputs(args.inputs)
    result = (_onnx if args.runtime == "onnxruntime" else _tflite)(args, samples)
    stats = _stats(args, result, int(samples.shape[0]))
    np.savez(args.out, y=result["raw"])
    with open(args.stats, "w", encoding="utf-8") as f:
        json.dump(stats, f, indent=1, sort_keys=True)
    return stats


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: returns the process status (0 on success)."""
    args = _parser().parse_args(argv)
    try:
        run(args)
    except GuestError as exc:
        _fail(str(exc), exc.exit_code)
    except Exception as exc:  # noqa: BLE001 - any failure becomes one stderr line
        _fail(f"{type(exc).__name__}: {exc}", EXIT_ERROR)
    return 0


def _say(text: str) -> None:
    """One progress line on stderr (the host shows the last lines if the guest dies)."""
    sys.stderr.write(f"guest_runner: {text}\n")
    sys.stderr.flush()


def _say_loading(args) -> None:
    name = run_name(args.runtime, args.ort_level)
    _say(f"loading {args.model} with {name} {_runtime_version(args.runtime)}")


def _fail(message: str, code: int) -> None:
    line = " ".join(message.split())
    sys.stderr.write(f"guest_runner: error: {line}\n")
    sys.stderr.flush()
    sys.exit(code)


if __name__ == "__main__":
    sys.exit(main())
