"""What every runtime harness returns, and the int8 (de)quantization rules they share.

Every harness (LiteRT, onnxruntime, TFLM) takes float32 inputs already in the model's
input layout, quantizes them with the *input tensor's own* parameters, runs the
model, and returns a ``RuntimeOutputs`` holding the raw output (int8 for int8
models) and its dequantized values computed with the *output tensor's own*
parameters. Quantization parameters are always read per tensor; for TFLite files
that means ``quantization_parameters``, never the legacy ``quantization`` pair,
which reads ``(0.0, 0)`` for per-channel tensors (field case C2).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

import numpy as np

from tinyshare.artifacts.files import package_version  # noqa: F401  (re-exported)
from tinyshare.errors import DataError

__all__ = [
    "NOT_INSTALLED",
    "Rounding",
    "RuntimeOutputs",
    "as_samples",
    "dequantize",
    "package_version",
    "quantize_input",
    "stack_outputs",
]

NOT_INSTALLED = "not installed"

Rounding = Literal["half_away_from_zero", "half_to_even"]


@dataclass(frozen=True, eq=False)
class RuntimeOutputs:
    """The outputs of one runtime on N input samples.

    Attributes:
        runtime: which runtime and mode produced them, e.g. ``"litert-ref"``,
            ``"litert-xnnpack"``, ``"onnxruntime[ORT_ENABLE_ALL]"``, ``"tflm"``.
        runtime_version: the runtime package's version string.
        raw: (N, K) array in the model's output dtype (int8 for int8 models);
            each sample's output is flattened to K values.
        output_scale: the output tensor's scale (1.0 for float outputs).
        output_zero_point: the output tensor's zero point (0 for float outputs).
        dequantized: (N, K) float32, ``(raw - zero_point) * scale``.
        wall_ms: host wall-clock time of the whole run in milliseconds (loading
            the model, quantizing, invoking and copying all N samples). It is host time on
            this machine, never a device latency.
        extra: small per-run facts (str/int/float), e.g. ``{"output_shape": "1x10",
            "load_ms": 3.1}``.
    """

    runtime: str
    runtime_version: str
    raw: np.ndarray
    output_scale: float
    output_zero_point: int
    dequantized: np.ndarray
    wall_ms: float
    extra: Mapping[str, float | int | str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Freeze the mapping and the arrays so the dataclass is frozen in fact.
        object.__setattr__(self, "extra", MappingProxyType(dict(self.extra)))
        for name in ("raw", "dequantized"):
            arr = np.array(getattr(self, name), copy=True)
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)

    @classmethod
    def from_raw(
        cls,
        runtime: str,
        runtime_version: str,
        raw: np.ndarray,
        output_quant: tuple[float, int] | None,
        wall_ms: float,
        extra: Mapping[str, float | int | str | None] | None = None,
    ) -> RuntimeOutputs:
        """Build the outputs of a run from its raw values and the output tensor's quantization.

        Args:
            runtime, runtime_version, wall_ms: as the attributes.
            raw: (N, K) raw outputs in the output tensor's dtype.
            output_quant: the output tensor's ``(scale, zero_point)``, or None for a float
                output (then ``output_scale`` is 1.0, ``output_zero_point`` 0 and
                ``dequantized`` is ``raw`` as float32).
            extra: per-run facts; entries whose value is None are left out.
        """
        if output_quant is None:
            scale, zero_point, values = 1.0, 0, np.asarray(raw).astype(np.float32)
        else:
            scale, zero_point = float(output_quant[0]), int(output_quant[1])
            values = dequantize(raw, scale, zero_point)
        facts = {k: v for k, v in (extra or {}).items() if v is not None}
        return cls(runtime, runtime_version, raw, scale, zero_point, values, wall_ms, facts)

    @property
    def n_samples(self) -> int:
        """N, the number of samples run."""
        return int(self.raw.shape[0])

    @property
    def is_quantized(self) -> bool:
        """Whether ``raw`` holds integer (quantized) values."""
        return bool(np.issubdtype(self.raw.dtype, np.integer))


def _dtype_range(dtype: np.dtype) -> tuple[int, int]:
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


def quantize_input(
    x: np.ndarray,
    scale: float,
    zero_point: int,
    dtype: np.dtype | type = np.int8,
    *,
    rounding: Rounding = "half_away_from_zero",
) -> np.ndarray:
    """Quantize float values with one tensor's affine parameters.

    The rule is ``q = clip(round(x / scale) + zero_point, dtype.min, dtype.max)``,
    computed in float32 like the runtimes do. ``round`` rounds ties away from zero
    by default, as the TFLite reference QUANTIZE kernel and TFLM do (measured: both
    map 0.5, 2.5, -2.5 to 1, 3, -3). LiteRT's XNNPACK QUANTIZE, ONNX QuantizeLinear
    and PyTorch round ties to even (0, 2, -2); pass ``rounding="half_to_even"`` for
    that. Ties are rare with real data, and every harness feeds the *same* integer
    array to every runtime, so the choice never affects runtime agreement.

    Args:
        x: float array of any shape (float32 or float64).
        scale: the tensor's scale (> 0).
        zero_point: the tensor's zero point.
        dtype: integer dtype of the tensor (int8, uint8, int16, ...).
        rounding: ``"half_away_from_zero"`` or ``"half_to_even"``.

    Returns:
        Array of ``x``'s shape in ``dtype``.

    Raises:
        DataError: ``scale`` is not a positive finite number, ``x`` holds NaN or
            infinity, or ``dtype`` is not an integer dtype.
    """
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.integer):
        raise DataError(f"quantize_input needs an integer dtype, got {dtype}")
    if not (np.isfinite(scale) and scale > 0):
        raise DataError(f"quantization scale must be positive and finite, got {scale!r}")
    xf = np.asarray(x, dtype=np.float32)
    if not np.all(np.isfinite(xf)):
        raise DataError("input holds NaN or infinite values; cannot quantize")
    scaled = xf / np.float32(scale)
    if rounding == "half_away_from_zero":
        # std::round semantics; trunc + exact fraction avoids the float32 error of
        # floor(|v| + 0.5) just below a tie (0.49999997 + 0.5 rounds up to 1.0).
        whole = np.trunc(scaled)
        rounded = whole + np.sign(scaled) * (np.abs(scaled - whole) >= np.float32(0.5))
    elif rounding == "half_to_even":
        rounded = np.round(scaled)
    else:
        raise DataError(f"unknown rounding {rounding!r}; use half_away_from_zero or half_to_even")
    lo, hi = _dtype_range(dtype)
    q = np.clip(rounded.astype(np.int64) + int(zero_point), lo, hi)
    return q.astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Map integer values back to real values: ``(q - zero_point) * scale``.

    Args:
        q: integer array of any shape.
        scale: the tensor's scale.
        zero_point: the tensor's zero point.

    Returns:
        float32 array of ``q``'s shape.
    """
    return ((np.asarray(q).astype(np.int64) - int(zero_point)).astype(np.float32)
            * np.float32(scale))


def as_samples(x: np.ndarray) -> np.ndarray:
    """Check that ``x`` is an (N, ...) float array with N >= 1 and return it as float32.

    Raises:
        DataError: ``x`` is 0-d, empty, or not a real-valued array.
    """
    arr = np.asarray(x)
    if arr.ndim == 0 or arr.shape[0] == 0:
        raise DataError(f"inputs must be (N, ...) with N >= 1, got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise DataError(f"inputs must be real numbers, got dtype {arr.dtype}")
    return arr.astype(np.float32, copy=False)


def stack_outputs(
    outputs: list[np.ndarray],
) -> np.ndarray:
    """Stack per-sample outputs into (N, K), flattening each sample's output."""
    return np.stack([np.asarray(o).reshape(-1) for o in outputs])


def nchw_to_nhwc(x: np.ndarray) -> np.ndarray:
    """(N, C, H, W) → (N, H, W, C), contiguous: the layout of our .tflite inputs."""
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))
