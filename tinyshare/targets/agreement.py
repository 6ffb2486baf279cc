"""Agreement between two runtimes' outputs on the same inputs, in output LSB.

int8 outputs of different runtimes are compared in units of the reference's output
quantization step (LSB), with a stated tolerance (REFERENCE.md: LiteRT XNNPACK and
onnxruntime are within 1 LSB of the LiteRT reference kernels; TFLM is usually 0).
Top-1 accuracy against labels is ``tinyshare.pipeline.train.top1``.

One rule for every LSB figure: each value's difference is rounded to the nearest whole
LSB (ties up); ``max_abs_diff_lsb`` is the largest of these and ``n_values_differing``
counts those of at least 1 LSB, so the two never disagree. Raw integer comparisons are
whole LSB already.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from tinyshare.errors import DataError
from tinyshare.targets.runtimes.base import RuntimeOutputs

__all__ = ["Agreement", "compare"]

# Allowance for float32 rounding when a real difference is an exact half LSB.
_TIE_EPS_LSB = 1e-6


@dataclass(frozen=True)
class Agreement:
    """How closely one runtime's outputs follow a reference runtime's.

    Attributes:
        reference: the reference runtime's name (e.g. ``"litert-ref"``).
        runtime: the compared runtime's name (e.g. ``"tflm"``).
        n_samples: N, samples compared.
        top1_agreement: fraction of samples (0..1) whose argmax output agrees.
        max_abs_diff_lsb: largest |difference| over all N×K values, in whole LSB of the
            reference's output scale (each difference rounded to the nearest LSB).
        n_values_differing: values whose difference is at least 1 LSB by the same
            rounding; 0 exactly when ``max_abs_diff_lsb`` is 0.
        tolerance_lsb: the allowed max |difference| in LSB.
        within_tolerance: ``max_abs_diff_lsb <= tolerance_lsb``.
        compared_on: ``"raw"`` when both outputs share dtype, scale and zero point
            and the integers were compared directly; ``"dequantized"`` when the
            real values were compared and divided by the reference scale.
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
        DataError: shapes differ, the reference is not quantized, the tolerance is
            negative, or float outputs hold NaN or infinity.
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
        diff_lsb = np.abs(reference.raw.astype(np.int64) - other.raw.astype(np.int64))
        compared_on: Literal["raw", "dequantized"] = "raw"
    else:
        real = np.abs(reference.dequantized.astype(np.float64) - other.dequantized)
        if not np.all(np.isfinite(real)):
            raise DataError(f"{other.runtime} outputs hold NaN or infinity; no LSB difference exists")
        diff_lsb = np.floor(real / float(reference.output_scale) + 0.5 + _TIE_EPS_LSB)
        compared_on = "dequantized"
    max_lsb = int(diff_lsb.max())
    n_diff = int(np.count_nonzero(diff_lsb >= 1))
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
