"""compare() on hand-made outputs with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from tinyshare.errors import DataError
from tinyshare.targets.agreement import compare
from tinyshare.targets.runtimes.base import RuntimeOutputs, dequantize


def _outs(name: str, raw, scale: float = 0.1, zp: int = 0) -> RuntimeOutputs:
    raw = np.asarray(raw, dtype=np.int8)
    return RuntimeOutputs(name, "0", raw, scale, zp, dequantize(raw, scale, zp), 1.0)


def test_identical_outputs_agree_fully():
    ref = _outs("litert-ref", [[1, 5, 3], [7, 2, 0]])
    got = compare(ref, _outs("tflm", [[1, 5, 3], [7, 2, 0]]), tolerance_lsb=0)
    assert (got.reference, got.runtime, got.n_samples) == ("litert-ref", "tflm", 2)
    assert got.max_abs_diff_lsb == 0 and got.n_values_differing == 0
    assert got.top1_agreement == 1.0 and got.within_tolerance and got.compared_on == "raw"


def test_raw_differences_counted_in_lsb():
    ref = _outs("litert-ref", [[1, 5, 3], [7, 2, 0], [-128, 0, 127]])
    other = _outs("xnnpack", [[1, 4, 3], [7, 2, 9], [-127, 0, 127]])
    got = compare(ref, other, tolerance_lsb=1)
    assert got.max_abs_diff_lsb == 9  # 0 → 9 in sample 1
    assert got.n_values_differing == 3
    assert got.top1_agreement == pytest.approx(2 / 3)  # sample 1: argmax 0 vs 2
    assert not got.within_tolerance
    assert compare(ref, other, tolerance_lsb=9).within_tolerance


def test_no_int8_wraparound_in_differences():
    got = compare(_outs("a", [[-128, 0]]), _outs("b", [[127, 0]]))
    assert got.max_abs_diff_lsb == 255


def test_different_output_quantization_compared_on_real_values():
    ref = _outs("litert-ref", [[10, 20]], scale=0.1)  # [1.0, 2.0]
    other = _outs("onnxruntime[ORT_ENABLE_ALL]", [[5, 11]], scale=0.2)  # [1.0, 2.2]
    got = compare(ref, other, tolerance_lsb=1)
    assert got.compared_on == "dequantized"
    assert got.max_abs_diff_lsb == 2 and got.n_values_differing == 1
    assert not got.within_tolerance and got.top1_agreement == 1.0


def _float_outs(name: str, values) -> RuntimeOutputs:
    f = np.asarray(values, np.float32)
    return RuntimeOutputs(name, "0", f, 1.0, 0, f, 1.0)


def test_float_other_compared_in_reference_lsb():
    ref = _outs("litert-ref", [[10, -20]], scale=0.5, zp=2)  # [4.0, -11.0]
    got = compare(ref, _float_outs("torch", [[4.2, -11.0]]))
    assert got.compared_on == "dequantized"
    assert got.max_abs_diff_lsb == 0 and got.n_values_differing == 0  # 0.4 LSB rounds to 0


@pytest.mark.parametrize(
    ("delta", "lsb"),
    [(0.0, 0), (0.2, 0), (0.49, 0), (0.5, 1), (0.6, 1), (1.4, 1), (1.5, 2), (2.6, 3)],
)
def test_dequantized_differences_round_to_the_nearest_lsb(delta, lsb):
    # Scale 0.5: one LSB is 0.5 in real units; every value below is exact in float32.
    ref = _outs("litert-ref", [[8, -8, 0]], scale=0.5)  # [4.0, -4.0, 0.0]
    other = _float_outs("torch", [[4.0 + delta * 0.5, -4.0, 0.0]])
    got = compare(ref, other, tolerance_lsb=1)
    assert got.compared_on == "dequantized"
    assert got.max_abs_diff_lsb == lsb
    assert got.n_values_differing == (1 if lsb else 0)
    assert got.within_tolerance == (lsb <= 1)


def test_max_and_count_use_one_rule_on_random_values():
    rng = np.random.default_rng(3)
    raw = rng.integers(-100, 100, size=(20, 6)).astype(np.int8)
    ref = _outs("litert-ref", raw, scale=0.25, zp=3)
    noisy = ref.dequantized + rng.uniform(-0.7, 0.7, size=raw.shape).astype(np.float32) * 0.25
    got = compare(ref, _float_outs("torch", noisy))
    lsb = np.abs(noisy.astype(np.float64) - ref.dequantized) / 0.25
    assert got.max_abs_diff_lsb == int(np.floor(lsb.max() + 0.5))
    assert got.n_values_differing == int(np.count_nonzero(lsb >= 0.5))
    assert (got.max_abs_diff_lsb == 0) == (got.n_values_differing == 0)


def test_same_real_values_under_another_zero_point_agree():
    ref = _outs("litert-ref", [[10, -20, 3]], scale=0.1, zp=0)
    shifted = _outs("onnxruntime[ORT_DISABLE_ALL]", [[15, -15, 8]], scale=0.1, zp=5)
    got = compare(ref, shifted, tolerance_lsb=0)
    assert got.compared_on == "dequantized"
    assert got.max_abs_diff_lsb == 0 and got.n_values_differing == 0 and got.within_tolerance


def test_non_finite_float_outputs_are_a_data_error():
    ref = _outs("litert-ref", [[1, 2]])
    with pytest.raises(DataError, match="NaN"):
        compare(ref, _float_outs("torch", [[0.1, np.nan]]))


def test_compare_rejects_mismatched_or_float_reference():
    a = _outs("a", [[1, 2, 3]])
    with pytest.raises(DataError, match="shapes differ"):
        compare(a, _outs("b", [[1, 2]]))
    f = np.zeros((1, 3), np.float32)
    with pytest.raises(DataError, match="quantized reference"):
        compare(RuntimeOutputs("f", "0", f, 1.0, 0, f, 1.0), a)
    with pytest.raises(DataError):
        compare(a, a, tolerance_lsb=-1)


def test_runtime_outputs_are_frozen():
    outs = _outs("r", [[1, 2]])
    with pytest.raises(ValueError):
        outs.raw[0, 0] = 3
    with pytest.raises(TypeError):
        outs.extra["x"] = 1  # type: ignore[index]
