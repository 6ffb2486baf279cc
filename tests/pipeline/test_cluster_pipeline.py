"""Codebook clustering through the pipeline: ``[cluster]`` config validation (fast), and a
clustered digits_cnn from training to the reports (slow): ≤ k int8 values per channel, TFLM
LUT-compressed copies bit-identical to the uncompressed files and smaller on disk, the TFLM
board's flash and RAM taken from the compressed copy, the Ethos-U board left uncompressed,
and the generated C storing the clustered filters as packed codebooks, bit-exact with TFLM."""

from __future__ import annotations

import json
import os
import shutil
import typing
from pathlib import Path

import numpy as np
import pytest

from tinyshare.errors import ConfigError
from tinyshare.export.inspect import inspect_model

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "digits_clustered.toml"
K = 16
TFLM_BOARD, NPU_BOARD = "stm32f746g-disco", "corstone-300-mps3"


def test_cluster_k_is_the_clustering_modules_allowed_k():
    from tinyshare.config import ClusterConfig
    from tinyshare.quantize.cluster import ALLOWED_K

    assert typing.get_args(ClusterConfig.model_fields["k"].annotation) == ALLOWED_K


def test_cluster_section_is_optional_and_has_defaults():
    from tinyshare.config import load_config

    assert load_config(ROOT / "configs" / "digits.toml").cluster is None
    c = load_config(CONFIG).cluster
    assert (c.k, c.per_channel, c.epochs, c.lr, c.min_elements) == (16, True, 3, 1e-3, 64)
    c = load_config(ROOT / "configs" / "digits.toml", ["cluster.k=4"]).cluster
    assert (c.k, c.per_channel, c.epochs, c.lr, c.min_elements) == (4, True, 3, 1e-3, 64)


@pytest.mark.parametrize(("override", "message"), [
    ("cluster.k=5", "field 'cluster.k': Input should be 4, 8, 16 or 32, got 5"),
    ("cluster.k=true", "field 'cluster.k': Input should be 4, 8, 16 or 32, got True"),
    ("cluster.epochs=0", "field 'cluster.epochs'"),
    ("cluster.lr=0.0", "field 'cluster.lr'"),
    ("cluster.min_elements=-1", "field 'cluster.min_elements'"),
    ("cluster.kk=4", "unknown key 'cluster.kk'"),
], ids=["k5", "k-bool", "epochs0", "lr0", "min-elements-negative", "unknown-key"])
def test_bad_cluster_values_are_one_line_errors_naming_the_field(override, message):
    from tinyshare.config import load_config

    with pytest.raises(ConfigError) as e:
        load_config(CONFIG, [override])
    assert message in str(e.value) and "\n" not in str(e.value)


def test_bad_k_on_the_command_line_exits_2_with_one_line(capsys):
    from tinyshare.cli import main

    assert main(["run", str(CONFIG), "--set", "cluster.k=5"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cluster.k" in err and "got 5" in err


def test_codebook_check_counts_values_and_zero_channels():
    from tinyshare.artifacts.models import QuantizedWeight
    from tinyshare.quantize.codebook import check_codebook

    values = np.array([[1, 2, 3, 1], [0, 0, 0, 0], [5, 5, -5, 5]], dtype=np.int8)
    w = QuantizedWeight(name="fc.weight", values=values, scales=np.array([0.1, 0.2, 0.3]),
                        zero_points=np.zeros(3, np.int64), axis=0, call_sites=1)
    floats = {"fc.weight": np.array([[1, 2, 3, 1], [0, 0, 0, 0], [5, 5, -5, 5]], np.float32)}
    ok = check_codebook([w], ["fc.weight"], 4, floats)
    assert ok.ok and ok.max_distinct_values == 3 and ok.tensors[0].zero_channels == 1
    assert not check_codebook([w], ["fc.weight"], 2, floats).ok  # 3 values > k = 2
    zero_scale = QuantizedWeight(name="fc.weight", values=values, scales=np.array([0.1, 0.0, 0.3]),
                                 zero_points=np.zeros(3, np.int64), axis=0, call_sites=1)
    bad = check_codebook([zero_scale], ["fc.weight"], 4, floats)
    assert not bad.ok and "zero scale" in bad.describe()
    missing = check_codebook([w], ["fc.weight", "stem.weight"], 4, floats)
    assert not missing.ok and "stem.weight" in missing.describe()


@pytest.fixture(scope="module")
def clustered_run(tmp_path_factory):
    from tinyshare.config import load_config
    from tinyshare.pipeline.stages import run

    out = tmp_path_factory.mktemp("clustered")
    cfg = load_config(CONFIG, [
        f'output_dir="{out}"', f'boards=["{TFLM_BOARD}", "{NPU_BOARD}"]', "model.width=8",
        "train.epochs=8", "cluster.epochs=2", "data.calib_samples=64",
        "validation.max_samples=128", 'cluster.lut="always"'])
    return run(cfg, command="pytest test_cluster_pipeline")


def _report(run, board: str) -> dict:
    return json.loads((run.run_dir / "boards" / board / "report.json").read_text())


def _check(report: dict, name: str) -> dict:
    return next(c for c in report["checks"] if c["name"] == name)


@pytest.mark.slow
def test_clustered_int8_weights_hold_at_most_k_values_per_channel(clustered_run):
    from tinyshare.quantize.cluster import distinct_values_per_channel

    cluster = clustered_run.trained.cluster
    assert cluster.k == K and "head.weight" in cluster.tensors
    weights = {w.name: w for w in clustered_run.quantized.shared.weights}
    for name in cluster.tensors:
        assert distinct_values_per_channel(weights[name].values, 0).max() <= K, name
    head = distinct_values_per_channel(weights["head.weight"].values, 0)
    assert head.max() == K  # 128 weights per output channel: all 16 centroids in use
    metrics = json.loads((clustered_run.run_dir / "train" / "metrics.json").read_text())
    assert metrics["cluster"]["tensors"] == list(cluster.tensors)
    assert {"test_accuracy_before", "test_accuracy_after"} <= set(metrics["cluster"])
    assert _check(_report(clustered_run, TFLM_BOARD), "codebook kept after int8")["status"] == "PASS"


@pytest.mark.slow
def test_lut_copies_are_smaller_and_bit_identical_on_tflm(clustered_run):
    from tinyshare.targets.runtimes.base import nchw_to_nhwc
    from tinyshare.targets.runtimes.tflm import run_tflm

    export = clustered_run.run_dir / "export"
    pairs = [("model_int8.tflite", "model_int8_lut.tflite"),
             ("model_int8_nonames.tflite", "model_int8_nonames_lut.tflite")]
    x = nchw_to_nhwc(np.load(clustered_run.run_dir / "data" / "test.npz")["x"][:64])
    v = clustered_run.validation
    # The flashed file shrinks; the named copy may not (DECODE's new tensors carry names).
    assert os.stat(export / pairs[1][1]).st_size < os.stat(export / pairs[1][0]).st_size
    for plain, lut in pairs:
        outs = [run_tflm(export / f, x, arena_bytes=v.lut.arena.arena_bytes).raw
                for f in (plain, lut)]
        np.testing.assert_array_equal(outs[0], outs[1])  # 0 LSB
        assert len(np.unique(outs[0])) > 5
    assert v.lut.max_diff_lsb == 0 and v.lut.stripped_max_diff_lsb == 0
    assert _check(_report(clustered_run, TFLM_BOARD), "LUT-compressed model")["status"] == "PASS"


@pytest.mark.slow
def test_tflm_board_flashes_the_compressed_copy_and_its_arena(clustered_run):
    export = clustered_run.run_dir / "export"
    fp = _report(clustered_run, TFLM_BOARD)["footprint"]
    lut = fp["lut_compression"]
    assert lut["applied"]
    compressed = os.stat(export / "model_int8_nonames_lut.tflite").st_size
    assert fp["flash"]["model_file"] == "model_int8_nonames_lut.tflite"
    assert fp["flash"]["model_file_bytes"] == fp["model_file_bytes"] == compressed
    assert lut["compressed_model_file_bytes"] == compressed
    assert lut["uncompressed_model_file_bytes"] == os.stat(
        export / "model_int8_nonames.tflite").st_size
    v = clustered_run.validation
    assert lut["compressed_arena_bytes"] == v.lut.arena.arena_bytes == fp["ram"]["needed_bytes"]
    assert lut["uncompressed_arena_bytes"] == v.arena.arena_bytes
    assert lut["compressed_arena_bytes"] >= lut["uncompressed_arena_bytes"]
    # Running DECODE needs TFLM's tensor-decompression code: counted in the flash need.
    from tinyshare.targets.runtime_code import tflm_code_estimate

    ops = [o.op_code for o in inspect_model(export / "model_int8.tflite").ops]
    est = tflm_code_estimate(ops)
    assert lut["decompression_code_bytes"] == est.decompression_bytes > 0
    assert fp["flash"]["runtime_code_bytes"] == est.total_bytes + est.decompression_bytes
    assert fp["flash"]["runtime_code_per_kernel_bytes"]["tensor decompression (DECODE)"] == (
        est.decompression_bytes)
    assert lut["net_flash_saved_bytes"] == lut["flash_saved_bytes"] - est.decompression_bytes
    md = (clustered_run.run_dir / "boards" / TFLM_BOARD / "report.md").read_text()
    assert "## Codebook clustering" in md and "TFLM arena, uncompressed model" in md
    assert "tensor-decompression code (USE_TFLM_COMPRESSION)" in md
    deploy = clustered_run.run_dir / TFLM_BOARD
    assert (deploy / "model_int8_nonames_lut.tflite").read_bytes() == (
        export / "model_int8_nonames_lut.tflite").read_bytes()


@pytest.mark.slow
@pytest.mark.emulated
@pytest.mark.skipif(not all(shutil.which(t) for t in ("arm-none-eabi-gcc", "qemu-system-arm")),
                    reason="arm-none-eabi-gcc / qemu-system-arm not on PATH (make test installs them)")
def test_generated_c_packs_the_codebooks_and_stays_bit_exact(clustered_run):
    from tinyshare.targets.codegen import generate_c

    check = clustered_run.validation.codegen[TFLM_BOARD]
    assert check.bit_exact and check.agreement.n_samples == 128
    gen = check.generated
    tflite = clustered_run.run_dir / "export" / check.model_file  # the run's final folder
    plain = generate_c(tflite, clustered_run.run_dir / "plain_c")
    assert plain.weight_bytes == inspect_model(tflite).stored_weight_bytes
    # the clustered FC head (10 classes): k = 16 values per channel -> 4-bit indices + tables
    (head,) = [b for b in gen.codebook_buffers if len(b.shape) == 2 and b.shape[0] == 10]
    assert head.packed_bits == 4 and head.nbytes == head.plain_nbytes // 2 + 10 * 16
    assert plain.weight_bytes - gen.weight_bytes == gen.codebook_saved_bytes > 0
    fp = _report(clustered_run, TFLM_BOARD)["footprint"]
    g = fp["generated_c"]
    assert g["codebook_buffer_count"] == len(gen.codebook_buffers)
    assert g["codebook_saved_bytes"] == gen.codebook_saved_bytes
    # TFLM's side: this board flashes the LUT-compressed copy (cluster.lut = "always"), so
    # the ratio divides by that file + the runtime code with DECODE, and its arena
    assert fp["lut_compression"]["applied"]
    assert g["tflm_model_file"] == fp["flash"]["model_file"] == "model_int8_nonames_lut.tflite"
    assert g["tflm_model_file_bytes"] == os.stat(
        clustered_run.run_dir / "export" / g["tflm_model_file"]).st_size
    assert g["tflm_runtime_code_bytes"] == fp["flash"]["runtime_code_bytes"]
    assert "tensor decompression (DECODE)" in fp["flash"]["runtime_code_per_kernel_bytes"]
    assert g["tflm_arena_bytes"] == fp["lut_compression"]["compressed_arena_bytes"]
    assert g["flash_ratio_vs_tflm"] == pytest.approx(
        g["model_flash_bytes"] / (g["tflm_model_file_bytes"] + g["tflm_runtime_code_bytes"]))


@pytest.mark.slow
def test_ethos_u_board_keeps_the_uncompressed_model_and_says_why(clustered_run):
    report = _report(clustered_run, NPU_BOARD)
    lut = report["footprint"]["lut_compression"]
    assert not lut["applied"] and "Vela does not read TFLM's DECODE" in lut["reason"]
    assert "compressed_model_file" not in lut
    assert "lut" not in report["footprint"]["flash"]["model_file"]
    assert _check(report, "LUT-compressed model")["status"] == "INFO"
    md = (clustered_run.run_dir / "boards" / NPU_BOARD / "report.md").read_text()
    assert "LUT compression (k = 16): not applied: Vela does not read" in md


def _board(name, *, os="baremetal", runtimes=("tflm",), npu=None, strip=True):
    from types import SimpleNamespace

    return SimpleNamespace(name=name, os=os, runtimes=list(runtimes), npu=npu,
                           strip_tensor_names=strip)


def test_lut_status_says_which_boards_flash_the_compressed_copy(tmp_path):
    from tinyshare.export.compress import CompressedModel
    from tinyshare.export.lut import LutExport, LutTensor
    from tinyshare.pipeline.report.cluster import lut_status

    tensor = LutTensor(index=3, name="fc", shape=(10, 128), data_bytes=1280,
                       max_distinct_values=16, bits=4, kept=True, saved_bytes=300)
    lut = LutExport(
        k=16, bits=4, tensors=(tensor,), ineligible=(),
        named=CompressedModel(tmp_path / "model_int8_lut.tflite", 9000, 9100, {3: 4}),
        stripped=CompressedModel(tmp_path / "model_int8_nonames_lut.tflite", 7000, 6700, {3: 4}))
    assert lut_status(_board("m7"), lut)[0]
    applied, why = lut_status(_board("m7-named", strip=False), lut)
    assert not applied and "100 B larger" in why  # the named copy grew
    applied, why = lut_status(_board("u55", npu=object()), lut)
    assert not applied and "Vela does not read TFLM's DECODE" in why
    applied, why = lut_status(_board("pi", os="linux", runtimes=("litert",)), lut)
    assert not applied and "litert" in why
    nothing = LutExport(k=16, bits=4, tensors=(), ineligible=(), named=None, stripped=None,
                        reason="no tensor's compression made the file smaller")
    assert lut_status(_board("m7"), nothing) == (
        False, "not applied: no tensor's compression made the file smaller")


def test_auto_flashes_the_compressed_copy_only_when_it_pays_for_the_decode_code(tmp_path):
    """cluster.lut = "auto" (the default) keeps the uncompressed file when the model bytes
    saved are fewer than TFLM's tensor-decompression code, and says so with both figures."""
    from types import SimpleNamespace

    from tinyshare.export.compress import CompressedModel
    from tinyshare.export.lut import LutExport, LutTensor
    from tinyshare.pipeline.report.cluster import with_lut

    tensor = LutTensor(index=3, name="fc", shape=(10, 128), data_bytes=1280,
                       max_distinct_values=16, bits=4, kept=True, saved_bytes=900)
    lut = LutExport(
        k=16, bits=4, tensors=(tensor,), ineligible=(),
        named=CompressedModel(tmp_path / "model_int8_lut.tflite", 9000, 8100, {3: 4}),
        stripped=CompressedModel(tmp_path / "model_int8_nonames_lut.tflite", 7000, 6100, {3: 4}))
    facts = SimpleNamespace(model_file_bytes=7000, runtime_code_bytes=80_000)

    def ctx(mode: str, decode_bytes: int):
        return SimpleNamespace(
            lut=lut, cfg=SimpleNamespace(cluster=SimpleNamespace(lut=mode)),
            validation=SimpleNamespace(lut=SimpleNamespace(
                arena=SimpleNamespace(arena_bytes=8500)), arena=SimpleNamespace(arena_bytes=8300)),
            runtime_code=lambda board: SimpleNamespace(decompression_bytes=decode_bytes))

    kept, entry = with_lut(ctx("auto", 26_145), _board("m7"), facts)
    assert kept is facts and not entry["applied"]
    assert ("the compressed copy is 900 B smaller (6,100 B against 7,000 B, measured), less "
            "than the 26,145 B (estimate)") in entry["reason"]
    assert entry["compressed_arena_bytes"] == 8500 and entry["decompression_code_bytes"] == 26_145


def test_schema_takes_a_clustered_report_and_a_failed_codebook():
    import report_fixtures as fx  # noqa: E402  (registered by conftest.py)

    from tinyshare.errors import ReportError
    from tinyshare.pipeline.report.schema import validate_report

    r = fx.board_report("tflm")
    r["model"]["cluster"] = {"k": 16, "per_channel": True, "tensors": ["head.weight"],
                             "skipped": [], "test_accuracy_before": 0.97,
                             "test_accuracy_kmeans": 0.96, "test_accuracy_after": 0.967}
    r["footprint"]["lut_compression"] = {"applied": False, "k": 16, "bits": 4,
                                         "reason": "not applied: ..."}
    check = {"name": "codebook kept after int8", "status": "FAIL", "detail": "17 > 16",
             "kind": "cluster"}
    r["checks"].append(check)
    r["reasons"].append(check)
    r["violations"].append({"kind": "cluster", "check": check["name"], "detail": "17 > 16"})
    r["verdict"] = "FAIL"
    validate_report(r)
    r["footprint"]["lut_compression"]["applied"] = True  # then every figure is required
    with pytest.raises(ReportError, match="compressed_arena_bytes"):
        validate_report(r)
