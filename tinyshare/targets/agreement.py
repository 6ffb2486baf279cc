"""Agreement between two runtimes' outputs on the same inputs, in output LSB, and top-1 accuracy.

int8 outputs of different runtimes are compared in units of the reference's output
quantization step (LSB), with a stated tolerance (REFERENCE.md: LiteRT XNNPACK and
onnxruntime are within 1 LSB of the LiteRT reference kernels; TFLM is usually 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from tinyshare.errors import DataError
from tinyshare.targets.runtimes.base import RuntimeOutputs

__all__ = ["Agreement", "accuracy", "compare"]


@dataclass(frozen=True)
class Agreement:
    """How closely one runtime's outputs follow a reference runtime's.

    Attributes:
        reference: the reference runtime's name (e.g. ``"litert-ref"``).
        runtime: the compared runtime's name (e.g. ``"tflm"``).
        n_samples: N, samples compared.
        top1_agreement: fraction of samples (0..1) whose argmax output agrees.
        max_abs_diff_lsb: largest |difference| over all N×K values, in LSB of the
            reference's output scale.
        n_values_differing: values whose difference is at least one LSB (raw
            mode) or at least half an LSB (dequantized mode).
        tolerance_lsb: the allowed max |difference| in LSB.
        within_tolerance: ``max_abs_diff_lsb <= tolerance_lsb``.
        compared_on: ``"raw"`` when both outputs share dtype, scale and zero point
            and the integers were compared directly; ``"dequantized"`` when the
            real values were compared and divided by the reference scale (the LSB
            figure is then rounded up).
    """

    reference: str
    runtime: str
    n_samples: int
    top1_agreement: float
    max_abs_diff_lsb: int
    n_values_differing: int
    tolerance_lsb: int
    within_tolerance: bool
    compared_on: Literal["raw", "dequantized"]


def _check_pair(reference: RuntimeOutputs, other: RuntimeOutputs) -> None:
    if reference.raw.shape != other.raw.shape:
        raise DataError(
            f"cannot compare {other.runtime} {other.raw.shape} with reference "
            f"{reference.runtime} {reference.raw.shape}: shapes differ"
        )
    if not reference.is_quantized:
        raise DataError(
            f"reference {reference.runtime} has float outputs; LSB agreement needs a "
            "quantized reference (compare float outputs with atol/rtol or SQNR instead)"
        )


def compare(
    reference: RuntimeOutputs,
    other: RuntimeOutputs,
    *,
    tolerance_lsb: int = 1,
) -> Agreement:
    """Compare ``other`` with ``reference`` value by value and by top-1 class.

    Args:
        reference: outputs of the reference runtime, raw (N, K) integers.
        other: outputs of the compared runtime on the same N inputs.
        tolerance_lsb: allowed max |difference| in LSB (>= 0).

    Returns:
        ``Agreement``.

    Raises:
        DataError: shapes differ, the reference is not quantized, or the
            tolerance is negative.
    """
    _check_pair(reference, other)
    if tolerance_lsb < 0:
        raise DataError(f"tolerance_lsb must be >= 0, got {tolerance_lsb}")
    same_q = (
        other.is_quantized
        and reference.raw.dtype == other.raw.dtype
        and reference.output_scale == other.output_scale
        and reference.output_zero_point == other.output_zero_point
    )
    if same_q:
        diff = np.abs(reference.raw.astype(np.int64) - other.raw.astype(np.int64))
        max_lsb = int(diff.max())
        n_diff = int(np.count_nonzero(diff))
        compared_on: Literal["raw", "dequantized"] = "raw"
    else:
        real = np.abs(reference.dequantized.astype(np.float64) - other.dequantized)
        lsb = real / float(reference.output_scale)
        # Rounded up, with a small allowance for float32 rounding of equal values.
        max_lsb = int(math.ceil(float(lsb.max()) - 1e-6))
        n_diff = int(np.count_nonzero(lsb >= 0.5 - 1e-6))
        compared_on = "dequantized"
    top1 = np.argmax(reference.dequantized, axis=1) == np.argmax(other.dequantized, axis=1)
    return Agreement(
        reference=reference.runtime,
        runtime=other.runtime,
        n_samples=reference.n_samples,
        top1_agreement=float(np.mean(top1)),
        max_abs_diff_lsb=max_lsb,
        n_values_differing=n_diff,
        tolerance_lsb=int(tolerance_lsb),
        within_tolerance=max_lsb <= tolerance_lsb,
        compared_on=compared_on,
    )


def accuracy(outputs: RuntimeOutputs, labels: np.ndarray) -> float:
    """Top-1 accuracy: the fraction of samples whose argmax output equals the label.

    Args:
        outputs: (N, K) outputs of one runtime.
        labels: (N,) integer class labels in [0, K).

    Returns:
        Accuracy in [0, 1].

    Raises:
        DataError: ``labels`` is not (N,) integers in [0, K).
    """
    y = np.asarray(labels)
    n, k = outputs.raw.shape
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"labels must be ({n},) integers, got {y.dtype}{y.shape}")
    if n and (y.min() < 0 or y.max() >= k):
        raise DataError(f"labels must lie in [0, {k}), got [{y.min()}, {y.max()}]")
    return float(np.mean(np.argmax(outputs.dequantized, axis=1) == y))
