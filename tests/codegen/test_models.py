"""Whole models through the generated C: bit-exact with TFLM on every test sample, each
shared buffer emitted once, constant bytes accounted for, and an arena from our planner.

* digits demo model (``configs/digits_tiny.toml``): its dw filter, the bias buffer of the
  shared depthwise conv, the ADD constant and the 1x1 conv filter are each read by two ops;
* ``configs/ds_cnn_tiny.toml`` (slow): PAD, a depth-multiplier-16 depthwise, TRANSPOSE and
  MEAN, with one shared depthwise filter read by four ops.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from codegen_harness import int8_samples, run_both

ROOT = Path(__file__).resolve().parents[2]


def _export(config: str, out: Path):
    """Run the pipeline up to EXPORT; returns (.tflite path, test split x NCHW float32)."""
    from tinyshare.config import load_config
    from tinyshare.data import load_splits
    from tinyshare.pipeline.stages import Stage, run

    # one epoch: the graph (ops, sharing, quantization) is the config's; accuracy is not tested
    cfg = load_config(ROOT / "configs" / config, [f'output_dir="{out}"', "train.epochs=1"])
    result = run(cfg, until=Stage.EXPORT, command=f"pytest codegen {config}")
    return result.run_dir / "export" / "model_int8.tflite", load_splits(cfg.data, cfg.seed).x_test


def _samples(tflite: Path, x_nchw: np.ndarray) -> np.ndarray:
    """The test split quantized for the model (NHWC int8), plus 16 extreme/random samples."""
    from tinyshare.export.inspect import inspect_model
    from tinyshare.targets.runtimes.base import quantize_input

    info = inspect_model(tflite)
    t = info.tensor(info.inputs[0])
    real = quantize_input(np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1)), t.scales[0],
                          t.zero_points[0])
    return np.concatenate([real, int8_samples(np.random.default_rng(0), t.shape, 16)])


def _check_model(tflite: Path, x_nchw: np.ndarray, out_dir: Path):
    x = _samples(tflite, x_nchw)
    gen, host, ref = run_both(tflite, out_dir, x)
    diff = np.abs(host.astype(np.int32) - ref.astype(np.int32))
    assert diff.max() == 0, f"{int((diff > 0).sum())} of {diff.size} values differ"
    assert len(x) >= 64
    return gen


def _check_storage_and_arena(gen, tflite: Path):
    """Constants = the file's weight storages (each once) + our tables; arena from our planner."""
    from tinyshare.export.inspect import inspect_model
    from tinyshare.targets.arena_plan import estimate_tflm_arena
    from tinyshare.targets.runtimes.tflm import find_arena_bytes

    info = inspect_model(tflite)
    source = gen.model_c.read_text()
    assert gen.weight_bytes == info.stored_weight_bytes
    assert {b.buffer for b in gen.buffers} == {int(s.storage) for s in info.weight_storages}
    tables = re.findall(r"static const (int32_t|int8_t) ts_rq\d+_(?:mult|shift)\[(\d+)\]", source)
    assert gen.table_bytes == sum(int(n) * (4 if t == "int32_t" else 1) for t, n in tables) > 0
    assert gen.const_bytes == info.stored_weight_bytes + gen.table_bytes
    for group in info.sharing_groups:
        name = f"ts_buf{group.storage}"
        assert len(re.findall(rf"static const \w+ {name}\[", source)) == 1, name
        calls = dict(re.findall(r"/\* op (\d+): \w+ \*/\n\s*(.*)", source))
        for op in group.consumer_ops:
            assert re.search(rf"\b{name}\b", calls[str(op)]), (name, op)
        (buf,) = [b for b in gen.buffers if b.c_name == name]
        assert buf.shared and buf.reader_ops == group.consumer_ops
    # the same planner and lifetimes as our TFLM estimate; aliasing only ever helps
    planned = estimate_tflm_arena(info).planned_bytes
    assert gen.arena_bytes_without_aliasing == planned >= gen.arena_bytes
    x0 = np.zeros((1, *gen.input_shape[1:]), np.float32)
    assert gen.arena_bytes < find_arena_bytes(tflite, x0).arena_bytes  # TFLM adds its structs


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return _export("digits_tiny.toml", tmp_path_factory.mktemp("runs"))


def test_digits_model_is_bit_exact_with_tflm(digits, tmp_path):
    tflite, x_test = digits
    gen = _check_model(tflite, x_test, tmp_path / "c")
    assert {"DEPTHWISE_CONV_2D", "CONV_2D", "ADD", "MAX_POOL_2D", "FULLY_CONNECTED"} <= set(gen.ops)


def test_digits_shared_buffers_are_emitted_once(digits, tmp_path):
    from tinyshare.targets.codegen import generate_c

    tflite, _ = digits
    gen = generate_c(tflite, tmp_path / "c")
    # the reused block: one 3x3 depthwise filter read by two DEPTHWISE_CONV_2D ops
    dw = [b for b in gen.shared_buffers if b.dtype == "int8" and b.shape == (1, 3, 3, 1)]
    assert len(dw) == 1 and len(dw[0].reader_ops) == 2
    assert {gen.ops[i] for i in dw[0].reader_ops} == {"DEPTHWISE_CONV_2D"}
    _check_storage_and_arena(gen, tflite)


@pytest.mark.slow
def test_ds_cnn_model_is_bit_exact_with_tflm(tmp_path_factory, tmp_path):
    tflite, x_test = _export("ds_cnn_tiny.toml", tmp_path_factory.mktemp("runs"))
    gen = _check_model(tflite, x_test, tmp_path / "c")
    assert {"PAD", "TRANSPOSE", "MEAN", "DEPTHWISE_CONV_2D"} <= set(gen.ops)
    assert max(len(b.reader_ops) for b in gen.shared_buffers) == 4
    _check_storage_and_arena(gen, tflite)
