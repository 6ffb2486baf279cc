"""The report's one line on how the int8 model was made: PTQ, or QAT against PTQ and the
float fine-tuning control, with the conclusion the numbers support."""

from __future__ import annotations

from tinyshare.pipeline.report.markdown import quantization_line

QAT = {"epochs": 3, "lr": 0.001, "batch_size": 64}


def _qat(ptq: float, qat: float, control: float, frac: float | None) -> dict:
    return {"method": "qat", "float_pytorch": 0.80, "int8_pytorch": qat, "qat": QAT,
            "ptq_int8_pytorch": ptq, "control_int8_pytorch": control,
            "qat_recovered_fraction": frac}


def test_ptq_line():
    line = quantization_line({"method": "ptq", "float_pytorch": 0.9, "int8_pytorch": 0.8875,
                              "qat": None, "ptq_int8_pytorch": None,
                              "control_int8_pytorch": None, "qat_recovered_fraction": None})
    assert line == ("Quantization: post-training (PT2E PTQ). PyTorch top-1 on the whole test "
                    "split: float 90.00 %, int8 88.75 %.")


def test_qat_above_its_control_credits_fake_quantization():
    line = quantization_line(_qat(ptq=0.78, qat=0.795, control=0.785, frac=0.75))
    assert "int8 by PTQ 78.00 %, by QAT 79.50 %: QAT recovers 75 % of the PTQ loss" in line
    assert line.endswith("then PTQ: 78.50 %; QAT is 1.00 points above it, which fake "
                         "quantization adds.")


def test_qat_not_above_its_control_says_the_gain_is_more_training():
    line = quantization_line(_qat(ptq=0.78, qat=0.79, control=0.80, frac=0.5))
    assert line.endswith("the gain over PTQ comes from the extra training, not from fake "
                         "quantization.")


def test_no_ptq_loss_means_nothing_to_recover():
    line = quantization_line(_qat(ptq=0.81, qat=0.80, control=0.80, frac=None))
    assert "PTQ lost nothing, so there was no loss to recover" in line
