"""Run an .onnx model on the host with onnxruntime, at one or both graph-optimization levels.

Our int8 ONNX files have int8 inputs and outputs: the graph input is consumed by a
DequantizeLinear whose scale / zero-point give the input's quantization, and the
graph output is produced by a QuantizeLinear whose scale / zero-point give the
output's. Float-I/O models (e.g. the raw dynamo QDQ export) are supported too; for
them ``raw == dequantized`` and the reported output scale / zero point are 1.0 / 0,
which only means "no output quantization".

onnxruntime's graph optimizer has changed QDQ results in some releases (field case
C3), so validation runs at ``ORT_DISABLE_ALL`` as well as ``ORT_ENABLE_ALL`` and
reports any difference as a finding (``run_onnx_both_levels``), never an average.
Sessions use one intra-op and one inter-op thread for determinism.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np

from tinyshare.errors import DataError, ModelFileError, RuntimeUnavailableError
from tinyshare.artifacts.files import require_model_file
from tinyshare.targets.runtimes.base import (
    Rounding,
    RuntimeOutputs,
    as_samples,
    package_version,
    quantize_input,
    stack_outputs,
)

__all__ = [
    "OrtLevel",
    "level_finding",
    "onnxruntime_version",
    "run_onnx_both_levels",
    "run_onnxruntime",
]

OrtLevel = Literal["all", "disable"]
_LEVEL_NAMES = {"all": "ORT_ENABLE_ALL", "disable": "ORT_DISABLE_ALL"}


@dataclass(frozen=True)
class _IoQuant:
    """Quantization of one graph input or output; ``scale is None`` for float I/O."""

    name: str
    dtype: np.dtype
    shape: tuple[int | None, ...]
    scale: float | None
    zero_point: int


def onnxruntime_version() -> str:
    """The installed onnxruntime version, or ``"not installed"``."""
    return package_version("onnxruntime")


def _value_info(vi) -> tuple[np.dtype, tuple[int | None, ...]]:
    from onnx import helper

    tt = vi.type.tensor_type
    dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim)
    return np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type)), dims


def _io_quant(model) -> tuple[list[_IoQuant], _IoQuant]:
    """Read the inputs' and the single output's quantization from the Q/DQ nodes around them.

    The scales and zero points come from the inspector's Q/DQ reader
    (``tinyshare.export.inspect_onnx.qdq_params``); this only checks the I/O structure.
    """
    from tinyshare.export.inspect_onnx import qdq_params

    graph = model.graph
    quant = qdq_params(graph)

    def per_tensor(name: str, what: str) -> tuple[float, int]:
        scales, zero_points, _ = quant.get(name, ((), (), None))
        if len(scales) != 1:
            raise ModelFileError(
                f"{what} {name!r}: expected one constant per-tensor scale on its "
                f"Q/DQ node, found {len(scales)}")
        return scales[0], zero_points[0]

    initializer_names = {t.name for t in graph.initializer}
    inputs = []
    for vi in graph.input:
        if vi.name in initializer_names:
            continue
        dtype, shape = _value_info(vi)
        if not np.issubdtype(dtype, np.integer):
            inputs.append(_IoQuant(vi.name, dtype, shape, None, 0))
            continue
        consumers = [n for n in graph.node if vi.name in n.input]
        dq = [n for n in consumers if n.op_type == "DequantizeLinear" and n.input[0] == vi.name]
        if not dq or len(dq) != len(consumers):
            raise ModelFileError(
                f"integer input {vi.name!r} must feed only DequantizeLinear nodes, "
                f"found {[n.op_type for n in consumers]}"
            )
        inputs.append(_IoQuant(vi.name, dtype, shape, *per_tensor(vi.name, "input")))
    if len(graph.output) != 1:
        raise ModelFileError(f"expected 1 graph output, found {len(graph.output)}")
    out_vi = graph.output[0]
    dtype, shape = _value_info(out_vi)
    if not np.issubdtype(dtype, np.integer):
        return inputs, _IoQuant(out_vi.name, dtype, shape, None, 0)
    producers = [n for n in graph.node if out_vi.name in n.output]
    if len(producers) != 1 or producers[0].op_type != "QuantizeLinear":
        raise ModelFileError(
            f"integer output {out_vi.name!r} must come from a QuantizeLinear, found "
            f"{[n.op_type for n in producers]}"
        )
    return inputs, _IoQuant(out_vi.name, dtype, shape, *per_tensor(out_vi.name, "output"))


def _session(model_bytes: bytes, level: OrtLevel):
    try:
        import onnxruntime as ort
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeUnavailableError(f"onnxruntime cannot be imported: {exc}") from exc
    if level not in _LEVEL_NAMES:
        raise DataError(f"unknown optimization level {level!r}; use 'all' or 'disable'")
    so = ort.SessionOptions()
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _LEVEL_NAMES[level])
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    try:
        return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise ModelFileError(f"onnxruntime cannot load the model: {exc}") from exc


def _feeds(
    inputs: list[_IoQuant], x: np.ndarray | None, rounding: Rounding
) -> tuple[list[dict], int | None]:
    """One feed dict per session run, and N when a single run holds the whole batch."""
    if not inputs:
        if x is not None:
            raise DataError("the model has no inputs, so x must be None")
        return [{}], None
    if len(inputs) != 1:
        raise ModelFileError(f"expected 1 graph input, found {len(inputs)}")
    if x is None:
        raise DataError(f"the model has input {inputs[0].name!r}; x is required")
    inp = inputs[0]
    samples = as_samples(x)
    want = inp.shape[1:]
    if len(want) != samples.ndim - 1 or any(
        w is not None and w != s for w, s in zip(want, samples.shape[1:])
    ):
        raise DataError(f"inputs of shape {samples.shape} do not fit the model input {inp.shape}")
    if inp.scale is None:
        feed = samples.astype(inp.dtype)
    else:
        feed = quantize_input(samples, inp.scale, inp.zero_point, inp.dtype, rounding=rounding)
    if inp.shape and inp.shape[0] == 1:  # fixed batch 1: one run per sample
        return [{inp.name: feed[i : i + 1]} for i in range(feed.shape[0])], None
    return [{inp.name: feed}], int(feed.shape[0])


def run_onnxruntime(
    model_path: str | os.PathLike,
    x: np.ndarray | None,
    *,
    optimization: OrtLevel = "all",
    rounding: Rounding = "half_away_from_zero",
) -> RuntimeOutputs:
    """Run a single-output ONNX model with onnxruntime's CPU provider.

    Args:
        model_path: path to the .onnx file.
        x: (N, *input_shape[1:]) float32 samples in the model's input layout, or
            None for a model without inputs (then N = 1). For an integer input
            they are quantized with the input DequantizeLinear's scale / zero point.
        optimization: ``"all"`` (``ORT_ENABLE_ALL``) or ``"disable"``
            (``ORT_DISABLE_ALL``).
        rounding: tie rule for quantizing the inputs (see ``quantize_input``).

    Returns:
        ``RuntimeOutputs`` named ``"onnxruntime[ORT_ENABLE_ALL]"`` or
        ``"onnxruntime[ORT_DISABLE_ALL]"``; raw (N, K) in the output dtype.

    Raises:
        DataError: ``x`` does not fit the model input, or the level is unknown.
        ModelFileError: the file is missing or unreadable, or its I/O is not
            one float or Q/DQ-wrapped integer input and one output.
        RuntimeUnavailableError: onnx or onnxruntime is not installed.
    """
    try:
        import onnx
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeUnavailableError(f"onnx cannot be imported: {exc}") from exc
    path = str(require_model_file(model_path, "onnx"))
    start = time.perf_counter()
    try:
        model = onnx.load(path)
    except Exception as exc:  # protobuf DecodeError and friends
        raise ModelFileError(f"cannot parse {path} as ONNX: {exc}") from exc
    inputs, out = _io_quant(model)
    sess = _session(model.SerializeToString(), optimization)
    load_ms = (time.perf_counter() - start) * 1e3
    feeds, batch_n = _feeds(inputs, x, rounding)
    results = []
    for feed in feeds:
        (y,) = sess.run([out.name], feed)
        if batch_n is None:
            results.append(y)
        elif y.ndim >= 1 and y.shape[0] == batch_n:
            results.extend(list(y))  # one batched run: split back into samples
        else:
            raise ModelFileError(
                f"batched run of {batch_n} samples gave an output of shape {y.shape}"
            )
    raw = stack_outputs(results)
    wall_ms = (time.perf_counter() - start) * 1e3
    return RuntimeOutputs.from_raw(
        runtime=f"onnxruntime[{_LEVEL_NAMES[optimization]}]",
        runtime_version=onnxruntime_version(),
        raw=raw,
        output_quant=None if out.scale is None else (out.scale, out.zero_point),
        wall_ms=wall_ms,
        extra={
            "output_shape": "x".join("?" if d is None else str(d) for d in out.shape),
            "output_quantized": int(out.scale is not None),
            "num_threads": 1,
            "load_ms": load_ms,
        },
    )


def level_finding(a: RuntimeOutputs, b: RuntimeOutputs, *, model: str = "") -> str | None:
    """Describe any difference between two runs of one model, or return None if identical.

    Values are compared exactly; nothing is averaged. The text names the runtime and
    version, both runs, how many values differ and the largest difference (in LSB
    of the output scale for integer outputs, and in real units).

    Args:
        a, b: outputs of the same model and inputs, e.g. at ``ORT_ENABLE_ALL``
            and ``ORT_DISABLE_ALL``.
        model: the model's name or path, for the message.
    """
    where = f" on {model}" if model else ""
    head = f"{a.runtime} and {b.runtime} (onnxruntime {a.runtime_version}) disagree{where}"
    if a.raw.shape != b.raw.shape or a.raw.dtype != b.raw.dtype:
        return f"{head}: outputs are {a.raw.dtype}{a.raw.shape} vs {b.raw.dtype}{b.raw.shape}"
    if (a.output_scale, a.output_zero_point) != (b.output_scale, b.output_zero_point):
        return (f"{head}: output quantization ({a.output_scale}, {a.output_zero_point}) vs "
                f"({b.output_scale}, {b.output_zero_point})")
    differ = a.raw != b.raw
    if a.raw.dtype.kind == "f":
        differ = differ & ~(np.isnan(a.raw) & np.isnan(b.raw))
    n = int(np.count_nonzero(differ))
    if n == 0:
        return None
    real = float(np.max(np.abs(a.dequantized.astype(np.float64) - b.dequantized)))
    text = f"{head}: {n} of {a.raw.size} values differ, max |diff| = {real:.6g}"
    if np.issubdtype(a.raw.dtype, np.integer):
        lsb = int(np.max(np.abs(a.raw.astype(np.int64) - b.raw.astype(np.int64))))
        text += f" ({lsb} LSB at scale {a.output_scale:.6g})"
    idx = np.unravel_index(int(np.argmax(differ)), differ.shape)
    return text + (f"; first at sample {idx[0]}, value {idx[1]}: "
                   f"{a.dequantized[idx]:.6g} vs {b.dequantized[idx]:.6g}")


def run_onnx_both_levels(
    model_path: str | os.PathLike,
    x: np.ndarray | None,
    *,
    rounding: Rounding = "half_away_from_zero",
) -> tuple[RuntimeOutputs, RuntimeOutputs, str | None]:
    """Run at ``ORT_ENABLE_ALL`` and ``ORT_DISABLE_ALL`` and report any difference.

    Args:
        model_path: path to the .onnx file.
        x: as for ``run_onnxruntime``.
        rounding: tie rule for quantizing the inputs.

    Returns:
        ``(outputs_enable_all, outputs_disable_all, finding)``; ``finding`` is
        None when the two agree exactly, else a sentence from ``level_finding``.
        Neither run is adjusted; callers should treat ``ORT_DISABLE_ALL`` (no graph
        rewrites) as the runtime's plain semantics.

    Raises:
        As ``run_onnxruntime``.
    """
    enabled = run_onnxruntime(model_path, x, optimization="all", rounding=rounding)
    disabled = run_onnxruntime(model_path, x, optimization="disable", rounding=rounding)
    return enabled, disabled, level_finding(enabled, disabled, model=os.path.basename(os.fspath(model_path)))
