"""QAT through the whole pipeline on the config where PTQ loses accuracy
(configs/resnet8_narrow_qat.toml): the same artifacts as PTQ, sharing kept, and QAT
recovers at least half of the PTQ loss on the whole test split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import sharing_checks  # noqa: E402  (registered by conftest.py)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def qat_run(tmp_path_factory):
    from tinyshare.config import load_config
    from tinyshare.pipeline.stages import run

    out = tmp_path_factory.mktemp("qat")
    # the generated C is not the subject here (the zoo runs check resnet8's)
    cfg = load_config(ROOT / "configs" / "resnet8_narrow_qat.toml",
                      [f'output_dir="{out}"', 'validation.codegen="off"'])
    return run(cfg, command="pytest qat")


@pytest.mark.slow
def test_qat_recovers_at_least_half_of_the_ptq_loss(qat_run):
    q = qat_run.quantized
    assert q.method == "qat" and q.ptq_test_accuracy is not None
    float_acc = qat_run.trained.metrics.test_accuracy
    ptq_loss = float_acc - q.ptq_test_accuracy
    assert ptq_loss > 0, "PTQ lost nothing on this config: it no longer shows QAT"
    assert q.int8_test_accuracy - q.ptq_test_accuracy >= 0.5 * ptq_loss
    report = json.loads((qat_run.run_dir / "boards" / "stm32f746g-disco" / "report.json")
                        .read_text())
    summary = report["accuracy"]["quantization"]
    assert summary["method"] == "qat" and summary["qat_recovered_fraction"] >= 0.5
    assert "QAT recovers" in (qat_run.run_dir / "report.md").read_text()
    # the control (float fine-tuning as long, then PTQ) is measured and reported beside it
    assert summary["control_int8_pytorch"] == q.control_test_accuracy is not None
    assert "Control: the float model fine-tuned as long" in (qat_run.run_dir / "report.md"
                                                             ).read_text()


@pytest.mark.slow
def test_qat_artifacts_keep_sharing_and_agree(qat_run):
    for fmt in ("tflite", "onnx"):
        sharing_checks.check_stored_bytes(qat_run, fmt)
        sharing_checks.check_stored_once(qat_run, fmt)
    sharing_checks.check_same_int8_tensors(qat_run)
    assert qat_run.validation.checks["tflm"].agreement.within_tolerance
    assert all(w.scales.shape == (1,) for w in qat_run.quantized.shared.weights)  # per-tensor
