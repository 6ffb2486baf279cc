"""Expanded copies and the sharing report, on small hand-built ONNX graphs and our own exports.

The ONNX graphs are built with ``onnx.helper`` from seeded arrays (``COPIES_SEED``):

* a depthwise ``Conv`` (group=16) whose (16, 1, 3, 3) filter repeats one (1, 1, 3, 3) filter;
* the same graph with 16 distinct random filters;
* a ``Gemm`` whose (16, 32) weight is ``outer(s, w)``;
* an int8 QDQ depthwise ``Conv`` whose int8 filter repeats one filter, as an exporter folds it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tinyshare.errors import ModelFileError
from tinyshare.export.copies import MIN_ELEMENTS, _expansion, find_expanded_copies
from tinyshare.export.inspect import inspect_model
from tinyshare.export.sharing_report import sharing_report

COPIES_SEED = 2024
OPSET = 21


def _save(path, nodes, inputs, outputs, inits):
    import onnx
    from onnx import helper, numpy_helper

    graph = helper.make_graph(nodes, path.stem, inputs, outputs,
                              initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 10
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def _depthwise_onnx(path, weight: np.ndarray, bias: np.ndarray | None = None):
    """x (1, 16, 8, 8) -> Conv(group=16, 3x3, pad 1) with ``weight`` (16, 1, 3, 3) -> y."""
    from onnx import TensorProto, helper

    inits = {"W": weight, **({"B": bias} if bias is not None else {})}
    conv = helper.make_node("Conv", ["x", "W", *(["B"] if bias is not None else [])], ["y"],
                            group=16, kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    return _save(path, [conv],
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 8, 8])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 8, 8])], inits)


def _gemm_onnx(path, weight: np.ndarray):
    """x (1, 16) -> Gemm with ``weight`` (16, 32) -> y (1, 32)."""
    from onnx import TensorProto, helper

    return _save(path, [helper.make_node("Gemm", ["x", "W"], ["y"])],
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 32])], {"W": weight})


def _qdq_depthwise_onnx(path, weight_q: np.ndarray):
    """x -> Conv(group=16) reading int8 ``weight_q`` (16, 1, 3, 3) through DequantizeLinear."""
    from onnx import TensorProto, helper

    nodes = [helper.make_node("DequantizeLinear", ["Wq", "w_scale", "w_zp"], ["W"]),
             helper.make_node("Conv", ["x", "W"], ["y"], group=16, kernel_shape=[3, 3],
                              pads=[1, 1, 1, 1])]
    inits = {"Wq": weight_q, "w_scale": np.float32(0.01), "w_zp": np.int8(0)}
    return _save(path, nodes,
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 8, 8])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 8, 8])], inits)


@pytest.fixture
def rng():
    return np.random.default_rng(COPIES_SEED)


def test_repeated_depthwise_filter_is_flagged(tmp_path, rng):
    one = rng.normal(size=(1, 1, 3, 3)).astype(np.float32)
    path = _depthwise_onnx(tmp_path / "dw_repeated.onnx", np.repeat(one, 16, axis=0),
                           bias=np.zeros(16, np.float32))  # constant: never flagged
    info = inspect_model(path)
    (copy,) = find_expanded_copies(path, info)
    assert (copy.tensor, copy.storage, copy.dtype) == ("W", "W", "float32")
    assert copy.shape == (16, 1, 3, 3)
    assert copy.smaller_shape == (1, 1, 3, 3)
    assert copy.how == "identical along axis 0"
    assert copy.stored_bytes == 16 * 9 * 4 == 576
    assert copy.once_bytes == 9 * 4
    assert copy.saved_bytes == 540
    report = sharing_report(path)
    assert report.expanded_copies == (copy,)
    assert report.expanded_saved_bytes == 540
    assert report.as_dict()["expanded_copies"][0]["smaller_shape"] == [1, 1, 3, 3]


def test_distinct_depthwise_filters_are_not_flagged(tmp_path, rng):
    path = _depthwise_onnx(tmp_path / "dw_distinct.onnx",
                           rng.normal(size=(16, 1, 3, 3)).astype(np.float32),
                           bias=rng.normal(size=16).astype(np.float32))
    assert find_expanded_copies(path, inspect_model(path)) == ()


def test_rank1_gemm_weight_is_flagged(tmp_path, rng):
    s, w = rng.uniform(0.5, 2.0, 16), rng.normal(size=32)
    s[::3] *= -1  # negative scales are still multiples
    path = _gemm_onnx(tmp_path / "gemm_rank1.onnx", np.outer(s, w).astype(np.float32))
    (copy,) = find_expanded_copies(path, inspect_model(path))
    assert copy.tensor == "W" and copy.shape == (16, 32)
    assert copy.how == "rank-1 outer product along axis 0"
    assert copy.smaller_shape == (1, 32)
    assert (copy.stored_bytes, copy.once_bytes, copy.saved_bytes) == (2048, 192, 1856)


def test_full_rank_gemm_weight_is_not_flagged(tmp_path, rng):
    path = _gemm_onnx(tmp_path / "gemm.onnx", rng.normal(size=(16, 32)).astype(np.float32))
    assert find_expanded_copies(path, inspect_model(path)) == ()


def test_int8_repeated_filter_is_flagged_exactly(tmp_path, rng):
    one = rng.integers(-127, 128, (1, 1, 3, 3), dtype=np.int8)
    repeated = np.repeat(one, 16, axis=0)
    path = _qdq_depthwise_onnx(tmp_path / "dw_int8.onnx", repeated)
    (copy,) = find_expanded_copies(path, inspect_model(path))
    assert (copy.tensor, copy.dtype, copy.smaller_shape) == ("Wq", "int8", (1, 1, 3, 3))
    assert (copy.stored_bytes, copy.once_bytes) == (144, 9)
    off_by_one = repeated.copy()
    off_by_one[7, 0, 1, 1] += 1 if off_by_one[7, 0, 1, 1] < 127 else -1  # one LSB apart
    path = _qdq_depthwise_onnx(tmp_path / "dw_int8_lsb.onnx", off_by_one)
    assert find_expanded_copies(path, inspect_model(path)) == ()


@pytest.mark.parametrize("rel, flagged", [(1e-7, True), (1e-4, False)],
                         ids=["within-float32-rounding", "1e-4-apart"])
def test_float_tolerance_is_tight(tmp_path, rng, rel, flagged):
    """A channel off by ``rel`` of the largest magnitude: rounding-level noise still matches."""
    one = rng.normal(size=(1, 1, 3, 3))
    weight = np.repeat(one, 16, axis=0)
    weight[5, 0, 2, 2] += rel * np.abs(one).max()
    path = _depthwise_onnx(tmp_path / "dw_noise.onnx", weight.astype(np.float32))
    assert bool(find_expanded_copies(path, inspect_model(path))) is flagged


@pytest.mark.parametrize("make, smaller, how", [
    (lambda r: np.tile(r.normal(size=(4, 8)), (1, 3)), (4, 8), "tiled 3x along axis 1"),
    (lambda r: np.repeat(r.integers(-127, 128, (4, 8)), 3, axis=1).astype(np.int8), (4, 8),
     "each slice repeated 3x along axis 1"),
    (lambda r: np.tile(r.normal(size=(1, 3, 3, 1)), (1, 1, 1, 16)), (1, 3, 3, 1),
     "identical along axis 3"),
    (lambda r: np.einsum("l,ijk->ijkl", r.uniform(1, 2, 16), r.normal(size=(1, 3, 3))),
     (1, 3, 3, 1), "rank-1 outer product along axis 3"),
    (lambda r: (np.sign(r.normal(size=(16, 1))) * r.integers(1, 128, (1, 32))).astype(np.int8),
     (1, 32), "rank-1 outer product along axis 0"),
], ids=["tile", "repeat", "dw-tflite-layout", "dw-per-channel-scale", "int8-signed-rows"])
def test_expansion_kinds(rng, make, smaller, how):
    values = make(rng)
    values = values.astype(np.float32) if values.dtype.kind == "f" else values
    got = _expansion(values)
    assert got is not None and got[:2] == (smaller, how)


@pytest.mark.parametrize("values", [
    np.zeros((16, 4), np.float32), np.full((4, 8), 3, np.int8),
    np.random.default_rng(COPIES_SEED).normal(size=(64, 64)).astype(np.float32),
    np.array([[1.0, np.nan] * 8] * 2, np.float32),
], ids=["all-zero", "constant", "random", "nan"])
def test_not_expansions(values):
    assert _expansion(values) is None


def test_tensors_under_min_elements_are_ignored(tmp_path, rng):
    from onnx import TensorProto, helper

    assert MIN_ELEMENTS == 16
    weight = np.repeat(rng.normal(size=(1, 3)).astype(np.float32), 5, axis=0)  # 15 elements
    path = _save(tmp_path / "small.onnx", [helper.make_node("Gemm", ["x", "W"], ["y"])],
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 5])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], {"W": weight})
    assert find_expanded_copies(path, inspect_model(path)) == ()


def test_large_tensor_is_fast(tmp_path, rng):
    """2.4M float32 elements, flagged and not flagged, each well under a second."""
    import time

    big = rng.normal(size=(512, 512, 3, 3)).astype(np.float32)
    start = time.perf_counter()
    assert _expansion(big) is None
    assert _expansion(np.repeat(big[:1], 512, axis=0))[:2] == ((1, 512, 3, 3),
                                                               "identical along axis 0")
    assert time.perf_counter() - start < 3.0


def test_garbage_file_raises_model_file_error(tmp_path):
    bad = tmp_path / "garbage.onnx"
    bad.write_bytes(b"\x00not a model\xff" * 10)
    with pytest.raises(ModelFileError):
        sharing_report(bad)


@pytest.fixture(scope="module")
def tiny_models(tiny_run):
    export = tiny_run.run_dir / "export"
    return {"shared": export / "model_int8.tflite", "twin": export / "twin" / "model_int8.tflite"}


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["shared", "twin"])
def test_our_int8_tflite_report_matches_inspect(tiny_models, kind):
    path = tiny_models[kind]
    info = inspect_model(path)
    report = sharing_report(path)
    assert report.expanded_copies == ()  # sharing is kept, not folded into copies
    assert report.format == "tflite"
    assert report.file_bytes == path.stat().st_size == info.file_bytes
    assert report.stored_weight_bytes == info.stored_weight_bytes
    assert report.stored_weight_tensors == len(info.weight_storages)
    assert [(g.storage, g.tensor_names, tuple(i for i, _ in g.ops), g.nbytes, g.numel)
            for g in report.groups] == [(g.storage, g.tensor_names, g.consumer_ops, g.nbytes,
                                         g.numel) for g in info.sharing_groups]
    assert all(code == info.ops[i].op_code for g in report.groups for i, code in g.ops)
    assert report.unique_params == sum(math.prod(t.shape) for t in info.weight_tensors)
    extra = sum(g.numel * (len(g.consumer_ops) - 1) for g in info.sharing_groups)
    assert report.params_as_used == report.unique_params + extra


@pytest.mark.slow
def test_shared_model_uses_more_params_than_it_stores(tiny_models):
    shared, twin = sharing_report(tiny_models["shared"]), sharing_report(tiny_models["twin"])
    assert shared.groups and not twin.groups
    assert shared.params_as_used > shared.unique_params
    assert twin.params_as_used == twin.unique_params
    assert shared.unique_params < twin.unique_params
    assert shared.stored_weight_bytes < twin.stored_weight_bytes
