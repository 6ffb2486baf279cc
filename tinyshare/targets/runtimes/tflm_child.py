"""The TFLM child process: runs TFLM requests for ``tinyshare.targets.runtimes.tflm``.

The parent starts ``python -c "from tinyshare.targets.runtimes.tflm_child import serve; serve()"``
and talks JSON lines over stdin/stdout, so a crash of the host TFLM build (it segfaults on
some too-small arenas) ends this process, never the caller's. Requests:

* ``{"cmd": "run", "model": path, "arena": bytes, "inputs": x.npy, "outputs": y.npy | null,
  "rounding": ...}``: allocate and invoke on every sample; answers ``ok``, ``invoke_ms``,
  ``out_scale`` / ``out_zero_point`` (from ``quantization_parameters``; scale null for float
  outputs), ``output_shape`` and ``planner_total`` (the allocator's "Arena allocation total").
* ``{"cmd": "ops"}``: probe which builtin op codes the op resolver registers (``ops``) and
  whether it checks op versions (``checks_versions``).

A failure answers ``{"ok": false, "stage": "allocate" | "invoke" | "input" | "child",
"error": ..., "log": ...}``; TFLM's own log lines (DebugLog) go to a private file, never to
the protocol stream.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import tempfile
import time

import numpy as np

__all__ = ["probe_model", "serve"]

_TOTAL_RE = re.compile(r"Arena allocation total (\d+) bytes")


def probe_model(code: int, version: int) -> bytes:
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


def serve() -> None:  # pragma: no cover - runs in the child process
    """Child loop: one JSON request per stdin line, one JSON answer per line (see module doc)."""
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
            runtime.Interpreter.from_bytes(probe_model(code, version), arena_size=1 << 16)
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
