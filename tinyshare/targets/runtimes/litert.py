"""Run a .tflite model on the host with LiteRT (``ai_edge_litert``); read tensor quantization.

Two modes:
    * reference kernels (``OpResolverType.BUILTIN_REF``), the host int8 reference: the
      kernels TFLM ports. The optimized builtin kernels without a delegate
      (``BUILTIN_WITHOUT_DEFAULT_DELEGATES``) are not a reference: on the resnet8 tiny
      model they were 2 LSB from TFLM on 394 of 3,600 outputs, the reference kernels
      1 LSB on 6 (docs/toolchain.md, "Agreement between runtimes");
    * the default resolver, which applies the XNNPACK delegate (up to 1 LSB away
      from the reference on int8 outputs, REFERENCE.md "Agreement between runtimes").

Quantization parameters always come from ``quantization_parameters`` (per-axis
scales, zero points and ``quantized_dimension``). The legacy ``quantization``
pair is ``(0.0, 0)`` for per-channel tensors (field case C2) and is never used.
Reports read a file's quantization with ``tinyshare.export.inspect`` (the one
flatbuffer reader); ``tensor_quant_params`` is LiteRT's own view, kept to cross-check it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

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

__all__ = ["TensorQuantParams", "litert_version", "run_litert", "tensor_quant_params"]


@dataclass(frozen=True, eq=False)
class TensorQuantParams:
    """One tensor of a .tflite file and its quantization as LiteRT's interpreter reports it.

    Copied from ``get_tensor_details()`` (``quantization_parameters`` and the legacy
    ``quantization``), nothing parsed here; the file reader is ``tinyshare.export.inspect``.

    Attributes:
        index: tensor index in the interpreter.
        name: tensor name (may be empty in stripped files).
        shape: tensor shape.
        dtype: numpy dtype name, e.g. ``"int8"``.
        scales: (C,) float32, one per channel on ``quantized_dimension``; (1,)
            for per-tensor quantization; (0,) for unquantized tensors.
        zero_points: (C,) int64, same length as ``scales``.
        quantized_dimension: the channel axis of per-channel tensors (0 for
            CONV_2D and FULLY_CONNECTED filters, 3 for DEPTHWISE_CONV_2D filters).
        legacy: the legacy ``quantization`` (scale, zero_point) pair, kept only so
            that callers and tests can show it is not to be trusted.
    """

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    scales: np.ndarray
    zero_points: np.ndarray
    quantized_dimension: int
    legacy: tuple[float, int]

    @property
    def is_per_channel(self) -> bool:
        return self.scales.size > 1


def litert_version() -> str:
    """The installed ai-edge-litert version, or ``"not installed"``."""
    return package_version("ai-edge-litert")


def _interpreter(model_path: str | os.PathLike, reference_kernels: bool):
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeUnavailableError(f"ai_edge_litert cannot be imported: {exc}") from exc
    path = str(require_model_file(model_path, "tflite"))
    resolver = (
        OpResolverType.BUILTIN_REF
        if reference_kernels
        else OpResolverType.AUTO
    )
    try:
        interp = Interpreter(
            model_path=path, experimental_op_resolver_type=resolver, num_threads=1
        )
        interp.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelFileError(f"LiteRT cannot load {path}: {exc}") from exc
    return interp


def _per_tensor(details: dict, what: str) -> tuple[float, int] | None:
    """The single (scale, zero_point) of an I/O tensor, or None when it is float."""
    qp = details["quantization_parameters"]
    scales, zps = np.asarray(qp["scales"]), np.asarray(qp["zero_points"])
    if not np.issubdtype(np.dtype(details["dtype"]), np.integer):
        return None
    if scales.size != 1 or zps.size != 1:
        raise ModelFileError(
            f"{what} tensor {details['name']!r} is {np.dtype(details['dtype'])} but has "
            f"{scales.size} scales; expected one per-tensor scale"
        )
    return float(scales[0]), int(zps[0])


def tensor_quant_params(model_path: str | os.PathLike) -> list[TensorQuantParams]:
    """LiteRT's view of every tensor's quantization (``get_tensor_details()``), for cross-checks.

    Reports and harnesses read quantization from ``quantization_parameters`` or from the
    file (``tinyshare.export.inspect``); this keeps the legacy pair too, so tests can
    show it reads ``(0.0, 0)`` for per-channel tensors (field case C2).

    Args:
        model_path: path to a .tflite file.

    Returns:
        One ``TensorQuantParams`` per tensor, in tensor-index order.

    Raises:
        ModelFileError: the file is missing or LiteRT cannot load it.
        RuntimeUnavailableError: ai_edge_litert is not installed.
    """
    interp = _interpreter(model_path, reference_kernels=True)
    out = []
    for d in interp.get_tensor_details():
        qp = d["quantization_parameters"]
        legacy_scale, legacy_zp = d["quantization"]
        out.append(
            TensorQuantParams(
                index=int(d["index"]),
                name=str(d["name"]),
                shape=tuple(int(s) for s in d["shape"]),
                dtype=np.dtype(d["dtype"]).name,
                scales=np.asarray(qp["scales"], dtype=np.float32),
                zero_points=np.asarray(qp["zero_points"], dtype=np.int64),
                quantized_dimension=int(qp["quantized_dimension"]),
                legacy=(float(legacy_scale), int(legacy_zp)),
            )
        )
    return sorted(out, key=lambda t: t.index)


def run_litert(
    model_path: str | os.PathLike,
    x: np.ndarray,
    *,
    reference_kernels: bool = True,
    rounding: Rounding = "half_away_from_zero",
) -> RuntimeOutputs:
    """Run a single-input, single-output .tflite model on N samples, one at a time.

    Args:
        model_path: path to the .tflite file.
        x: (N, *input_shape[1:]) float32 samples in the model's input layout
            (e.g. (N, 1, 8, 8) for an NCHW 1x1x8x8 input). For an int8 input they
            are quantized with the input tensor's own scale and zero point.
        reference_kernels: True for the builtin reference kernels without default
            delegates (``runtime="litert-ref"``); False for the default resolver
            with XNNPACK (``runtime="litert-xnnpack"``).
        rounding: tie rule for quantizing the inputs (see ``quantize_input``).

    Returns:
        ``RuntimeOutputs`` with raw (N, K) outputs in the output tensor's dtype.

    Raises:
        DataError: ``x`` does not match the model's input shape.
        ModelFileError: the file is missing or unreadable, has several inputs or
            outputs, or an integer I/O tensor lacks a per-tensor scale.
        RuntimeUnavailableError: ai_edge_litert is not installed.
    """
    samples = as_samples(x)
    start = time.perf_counter()
    interp = _interpreter(model_path, reference_kernels)
    load_ms = (time.perf_counter() - start) * 1e3
    ins, outs = interp.get_input_details(), interp.get_output_details()
    if len(ins) != 1 or len(outs) != 1:
        raise ModelFileError(
            f"{model_path}: expected 1 input and 1 output, found {len(ins)} and {len(outs)}"
        )
    inp, out = ins[0], outs[0]
    in_shape = tuple(int(s) for s in inp["shape"])
    if in_shape[0] != 1 or samples.shape[1:] != in_shape[1:]:
        raise DataError(
            f"inputs of shape {samples.shape} do not fit the model input {in_shape} "
            f"(expected (N, {', '.join(map(str, in_shape[1:]))}))"
        )
    in_q = _per_tensor(inp, "input")
    out_q = _per_tensor(out, "output")
    in_dtype = np.dtype(inp["dtype"])
    if in_q is None:
        feed = samples.astype(in_dtype)
    else:
        feed = quantize_input(samples, in_q[0], in_q[1], in_dtype, rounding=rounding)
    results = []
    for i in range(feed.shape[0]):
        interp.set_tensor(inp["index"], feed[i : i + 1])
        interp.invoke()
        results.append(interp.get_tensor(out["index"]).copy())
    raw = stack_outputs(results)
    wall_ms = (time.perf_counter() - start) * 1e3
    return RuntimeOutputs.from_raw(
        runtime="litert-ref" if reference_kernels else "litert-xnnpack",
        runtime_version=litert_version(),
        raw=raw,
        output_quant=out_q,
        wall_ms=wall_ms,
        extra={
            "output_shape": "x".join(str(int(s)) for s in out["shape"]),
            "input_dtype": in_dtype.name,
            "num_threads": 1,
            "load_ms": load_ms,
        },
    )
