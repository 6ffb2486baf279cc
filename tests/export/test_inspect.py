"""Tests for tinyshare.export.inspect: reading .tflite / .onnx files back.

Model files come from the session fixtures in conftest.py (seeded, built in the test run).
Oracles are independent of the reader where possible: the torch model's parameter sizes and
call counts, LiteRT's interpreter, the flatbuffer object API, and the arrays a graph was built
from.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tinyshare.errors import ModelFileError
from tinyshare.export.inspect import ModelInfo, inspect_model, require_model_file, summary_rows

WEIGHT_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}


@pytest.fixture(scope="module")
def tfl(twice_conv_tflite) -> ModelInfo:
    return inspect_model(twice_conv_tflite)


def _shared_conv_ops(info: ModelInfo) -> list:
    """CONV_2D ops whose weight tensor is also read by another op."""
    grouped = {i for g in info.sharing_groups for i in g.consumer_ops}
    return [op for op in info.ops if op.op_code == "CONV_2D" and op.index in grouped]


# --- TFLite: one nn.Conv2d called twice, PT2E int8 ----------------------------------------


def test_tflite_shared_conv_weight_is_one_buffer_read_by_two_convs(tfl, twice_conv):
    shared_w = twice_conv.model.shared.weight
    assert len(tfl.sharing_groups) == 1
    (group,) = tfl.sharing_groups
    assert len(group.tensor_names) == 1
    assert [tfl.ops[i].op_code for i in group.consumer_ops] == ["CONV_2D", "CONV_2D"]
    assert group.nbytes == shared_w.numel()  # int8: one byte per weight, stored once
    weight = tfl.tensor(group.tensor_names[0])
    assert weight.dtype == "int8"
    out_c, in_c, kh, kw = shared_w.shape
    assert weight.shape == (out_c, kh, kw, in_c)  # TFLite CONV_2D filters are OHWI
    assert str(weight.buffer_index) == group.storage
    for i in group.consumer_ops:
        assert tfl.ops[i].inputs[1] == weight.name


def test_tflite_stored_weight_bytes_equal_torch_parameter_sizes(tfl, twice_conv):
    # int8 weights are stored once per module (1 byte each); int32 biases once per call site
    # (4 bytes each), because bias scale = input scale x weight scale differs per call.
    modules = dict(twice_conv.model.named_modules())
    assert twice_conv.calls == {"stem": 1, "shared": 2, "fc": 1}
    expected = sum(
        modules[name].weight.numel() + 4 * modules[name].bias.numel() * calls
        for name, calls in twice_conv.calls.items()
    )
    assert tfl.stored_weight_bytes == expected
    # The invariant from STYLE.md: weight buffers == unique weight tensors (+ bias call sites).
    n_unique_weights = len(twice_conv.calls)
    n_bias_sites = sum(twice_conv.calls.values())
    assert len(tfl.weight_tensors) == n_unique_weights + n_bias_sites
    assert len({t.buffer_index for t in tfl.weight_tensors}) == len(tfl.weight_tensors)


def test_tflite_shape_and_axis_constants_are_not_weights(tfl):
    weight_names = {t.name for t in tfl.weight_tensors}
    metadata = [
        op.inputs[1] for op in tfl.ops if op.op_code in {"RESHAPE", "MEAN", "TRANSPOSE"}
    ]
    assert metadata, "the model should lower to RESHAPE/MEAN/TRANSPOSE with constant operands"
    for name in metadata:
        t = tfl.tensor(name)
        assert t.is_constant and t.dtype == "int32" and t.nbytes > 0
        assert name not in weight_names
    for t in tfl.weight_tensors:
        readers = [op for op in tfl.ops if t.name in op.inputs[1:3]]
        assert readers and all(op.op_code in WEIGHT_OPS for op in readers)


def test_tflite_biases_are_per_call_site_with_input_times_weight_scale(tfl):
    convs = _shared_conv_ops(tfl)
    assert len(convs) == 2
    first, second = convs
    assert first.inputs[1] == second.inputs[1]  # one weight tensor
    assert first.inputs[2] != second.inputs[2]  # two bias tensors ...
    b1, b2 = tfl.tensor(first.inputs[2]), tfl.tensor(second.inputs[2])
    assert b1.buffer_index != b2.buffer_index  # ... in two buffers
    in1, in2 = tfl.tensor(first.inputs[0]).scales, tfl.tensor(second.inputs[0]).scales
    assert in1 != in2
    for op in tfl.ops:
        if op.op_code in WEIGHT_OPS:
            x, w, b = (tfl.tensor(n) for n in op.inputs[:3])
            assert b.dtype == "int32"
            np.testing.assert_allclose(b.scales, x.scales[0] * np.array(w.scales), rtol=1e-5)


def test_tflite_quantization_matches_litert_interpreter(tfl, twice_conv_tflite):
    from ai_edge_litert.interpreter import Interpreter

    details = Interpreter(model_path=str(twice_conv_tflite)).get_tensor_details()
    assert len(details) == len(tfl.tensors)
    per_channel = 0
    for d in details:
        t = tfl.tensors[d["index"]]
        q = d["quantization_parameters"]
        assert t.shape == tuple(int(s) for s in d["shape_signature"])
        assert t.dtype == np.dtype(d["dtype"]).name
        np.testing.assert_allclose(t.scales, q["scales"], rtol=1e-7)
        assert t.zero_points == tuple(int(z) for z in q["zero_points"])
        if len(q["scales"]) > 1:
            per_channel += 1
            assert t.quantized_dimension == q["quantized_dimension"]
        else:
            assert t.quantized_dimension is None
    # per-channel: conv/fc weights and biases (3 weights + 4 bias call sites)
    assert per_channel == len(tfl.weight_tensors)


def test_tflite_ops_match_litert_interpreter(tfl, twice_conv_tflite):
    from ai_edge_litert.interpreter import Interpreter

    ops = Interpreter(model_path=str(twice_conv_tflite))._get_ops_details()
    assert [o["op_name"] for o in ops] == [op.op_code for op in tfl.ops]
    for o, op in zip(ops, tfl.ops):
        assert [tfl.tensors[i].name for i in o["inputs"]] == list(op.inputs)
        assert [tfl.tensors[i].name for i in o["outputs"]] == list(op.outputs)
    assert list(tfl.inputs) == [tfl.tensors[0].name] and len(tfl.outputs) == 1


def test_tflite_op_versions_match_raw_operator_codes(tfl, twice_conv_tflite):
    from ai_edge_litert import schema_py_generated as schema

    raw = schema.ModelT.InitFromPackedBuf(twice_conv_tflite.read_bytes(), 0)
    raw_ops = raw.subgraphs[0].operators
    assert len(raw_ops) == len(tfl.ops)
    for raw_op, op in zip(raw_ops, tfl.ops):
        assert op.version == raw.operatorCodes[raw_op.opcodeIndex].version
    versions = tfl.op_versions()
    for code in ("CONV_2D", "FULLY_CONNECTED"):
        found = [v for c, v in versions if c == code]
        assert found and all(isinstance(v, int) and v >= 1 for v in found)


def test_summary_rows_give_shapes_per_op(tfl, twice_conv):
    rows = summary_rows(tfl)
    assert [r["op"] for r in rows] == [op.op_code for op in tfl.ops]
    json.dumps(rows)  # plain data for reports
    out_c, in_c, kh, kw = twice_conv.model.shared.weight.shape
    for op in _shared_conv_ops(tfl):
        row = rows[op.index]
        assert row["version"] == op.version
        assert row["input_shapes"] == [[1, 8, 8, in_c], [out_c, kh, kw, in_c], [out_c]]
        assert row["output_shapes"] == [[1, 8, 8, out_c]]


# --- ONNX: hand-built int8 QDQ graph --------------------------------------------------------


def test_onnx_shared_initializers_form_groups_through_dequantize(qdq_onnx):
    info = inspect_model(qdq_onnx.path)
    groups = {g.storage: g for g in info.sharing_groups}
    assert set(groups) == {"W1", "W2"}
    c1, c2, c3, c4 = qdq_onnx.conv_ops
    assert groups["W1"].consumer_ops == (c1, c2)  # two DequantizeLinear -> Conv chains
    assert groups["W2"].consumer_ops == (c3, c4)  # one DequantizeLinear read by two Convs
    for name, g in groups.items():
        assert g.tensor_names == (name,)
        assert g.nbytes == qdq_onnx.weights[name].nbytes
        assert {info.ops[i].op_code for i in g.consumer_ops} == {"Conv"}


def test_onnx_stored_weight_bytes_count_weights_not_metadata(qdq_onnx):
    info = inspect_model(qdq_onnx.path)
    assert info.stored_weight_bytes == sum(a.nbytes for a in qdq_onnx.weights.values())
    assert {t.name for t in info.weight_tensors} == set(qdq_onnx.weights)
    for name in qdq_onnx.metadata:  # scales, zero points, scalar 0.5, int64 shape
        assert info.tensor(name).is_constant
    assert info.inputs == ("x",) and info.outputs == ("y",)
    assert info.format == "onnx" and info.file_bytes == qdq_onnx.path.stat().st_size


def test_onnx_quantization_read_from_dequantize_nodes(qdq_onnx):
    info = inspect_model(qdq_onnx.path)
    w1 = info.tensor("W1")
    assert (w1.dtype, w1.shape, w1.quantized_dimension) == ("int8", (2, 2, 3, 3), 0)
    np.testing.assert_allclose(w1.scales, qdq_onnx.metadata["w1_scale"], rtol=1e-7)
    assert w1.zero_points == (0, 0)
    b1 = info.tensor("B1")
    assert b1.dtype == "int32" and b1.nbytes == 8
    np.testing.assert_allclose(b1.scales, qdq_onnx.metadata["b1_scale"], rtol=1e-7)
    xq = info.tensor("xq")  # per-tensor activation leaving QuantizeLinear
    assert xq.scales == (pytest.approx(float(qdq_onnx.metadata["x_scale"])),)
    assert xq.quantized_dimension is None and not xq.is_constant and xq.nbytes == 0


def test_onnx_op_versions_are_the_domain_opset(qdq_onnx):
    info = inspect_model(qdq_onnx.path)
    assert {v for _, v in info.op_versions()} == {qdq_onnx.opset}
    assert ("Conv", qdq_onnx.opset) in info.op_versions()
    rows = summary_rows(info)
    assert rows[qdq_onnx.conv_ops[0]]["input_shapes"] == [[1, 2, 6, 6], [2, 2, 3, 3], [2]]
    assert rows[-1]["output_shapes"] == [[1, 2, 36]]


# --- ONNX: float export of the same torch model ---------------------------------------------


def test_float_onnx_counts_unique_parameters_once(twice_conv_onnx, twice_conv):
    info = inspect_model(twice_conv_onnx)
    params = dict(twice_conv.model.named_parameters())
    assert info.stored_weight_bytes == sum(4 * p.numel() for p in params.values())
    assert {t.name for t in info.weight_tensors} == set(params)
    groups = {g.storage: g for g in info.sharing_groups}
    assert set(groups) == {"shared.weight", "shared.bias"}
    for g in groups.values():
        assert [info.ops[i].op_code for i in g.consumer_ops] == ["Conv", "Conv"]
        assert g.nbytes == 4 * params[g.storage].numel()


def test_onnx_missing_external_data_is_a_model_file_error(twice_conv_onnx, tmp_path):
    import onnx

    model = onnx.load(str(twice_conv_onnx), load_external_data=False)
    if not any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
        pytest.skip("this exporter wrote no external data")
    lone = tmp_path / "lone.onnx"
    lone.write_bytes(twice_conv_onnx.read_bytes())  # without its .data file
    with pytest.raises(ModelFileError, match="lone.onnx"):
        inspect_model(lone)


def test_onnx_initializer_shorter_than_its_shape_is_a_model_file_error(qdq_onnx, tmp_path):
    import onnx

    model = onnx.load(str(qdq_onnx.path))
    (scale,) = [t for t in model.graph.initializer if t.name == "w1_scale"]
    scale.dims[:] = [3]  # 2 floats stored, 3 declared
    bad = tmp_path / "bad_scale.onnx"
    onnx.save(model, str(bad))
    _assert_one_line_error(bad)


# --- bad files ------------------------------------------------------------------------------


def _assert_one_line_error(path: Path) -> ModelFileError:
    with pytest.raises(ModelFileError) as err:
        inspect_model(path)
    msg = str(err.value)
    assert path.name in msg and "\n" not in msg
    return err.value


@pytest.mark.parametrize("name", ["absent.tflite", "absent.onnx"])
def test_missing_file(tmp_path, name):
    assert "no such file" in str(_assert_one_line_error(tmp_path / name))


def test_directory_and_unknown_suffix(tmp_path):
    (tmp_path / "dir.tflite").mkdir()
    _assert_one_line_error(tmp_path / "dir.tflite")
    (tmp_path / "model.pb").write_bytes(b"\x00" * 16)
    assert "unknown model format" in str(_assert_one_line_error(tmp_path / "model.pb"))


@pytest.mark.parametrize("suffix", [".tflite", ".onnx"])
def test_empty_file(tmp_path, suffix):
    (tmp_path / f"empty{suffix}").write_bytes(b"")
    assert "empty" in str(_assert_one_line_error(tmp_path / f"empty{suffix}"))


def test_require_model_file_checks_the_named_or_suffix_format(tmp_path):
    flatbuffer = tmp_path / "model.bin"
    flatbuffer.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(8))
    assert require_model_file(flatbuffer, "tflite") == flatbuffer.absolute()
    with pytest.raises(ModelFileError, match="unknown model format '.bin'"):
        require_model_file(flatbuffer)  # no format given and no known suffix
    proto = tmp_path / "proto.tflite"
    proto.write_bytes(b"\x08\x0a\x12\x04test")  # not a flatbuffer
    assert require_model_file(proto, "onnx") == proto.absolute()
    with pytest.raises(ModelFileError, match=r"proto\.tflite: not a TFLite flatbuffer"):
        require_model_file(proto)
    with pytest.raises(ModelFileError, match="unknown model format 'pb'"):
        require_model_file(proto, "pb")


@pytest.fixture(params=["tflite", "onnx"])
def model_file(request) -> Path:
    if request.param == "tflite":
        return request.getfixturevalue("twice_conv_tflite")
    return request.getfixturevalue("qdq_onnx").path


def test_truncated_files_raise(model_file, tmp_path):
    data = model_file.read_bytes()
    rng = random.Random(7)
    cuts = {1, 4, 8, 16, len(data) // 2, len(data) - 1}
    cuts |= {rng.randrange(1, len(data)) for _ in range(20)}
    for cut in sorted(cuts):
        path = tmp_path / f"cut{cut}{model_file.suffix}"
        path.write_bytes(data[:cut])
        _assert_one_line_error(path)


@pytest.mark.parametrize("suffix", [".tflite", ".onnx"])
def test_random_bytes_raise(tmp_path, suffix):
    rng = random.Random(11)
    for k in range(30):
        blob = bytearray(rng.randbytes(rng.randrange(1, 2000)))
        if suffix == ".tflite" and k % 2 and len(blob) >= 8:
            blob[4:8] = b"TFL3"  # get past the identifier check into the flatbuffer parser
        path = tmp_path / f"rand{k}{suffix}"
        path.write_bytes(bytes(blob))
        _assert_one_line_error(path)


def test_corrupted_bytes_give_model_info_or_model_file_error(model_file, tmp_path):
    data = model_file.read_bytes()
    rng = random.Random(13)
    outcomes = set()
    for k in range(60):
        blob = bytearray(data)
        for _ in range(rng.randrange(1, 8)):
            blob[rng.randrange(len(blob))] = rng.randrange(256)
        path = tmp_path / f"flip{k}{model_file.suffix}"
        path.write_bytes(bytes(blob))
        start = time.perf_counter()
        try:
            outcomes.add(type(inspect_model(path)).__name__)
        except ModelFileError as exc:
            assert "\n" not in str(exc)
            outcomes.add("ModelFileError")
        assert time.perf_counter() - start < 2.0  # no hang on garbage lengths
    assert "ModelFileError" in outcomes


def test_import_is_lazy():
    code = (
        "import sys, tinyshare.export.inspect\n"
        "heavy = {'torch', 'onnx', 'ai_edge_litert', 'onnxruntime', 'litert_torch'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
