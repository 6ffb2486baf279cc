"""``tinyshare inspect MODEL [--json]``: the sharing report of a .tflite / .onnx file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tinyshare.cli import main
from tinyshare.export.inspect import inspect_model
from tinyshare.export.sharing_report import sharing_report

INSPECT_SEED = 77


def _repeated_depthwise_onnx(path):
    """x (1, 16, 8, 8) -> Conv(group=16) whose (16, 1, 3, 3) filter repeats one 3x3 filter."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    one = np.random.default_rng(INSPECT_SEED).normal(size=(1, 1, 3, 3)).astype(np.float32)
    conv = helper.make_node("Conv", ["x", "W"], ["y"], group=16, kernel_shape=[3, 3],
                            pads=[1, 1, 1, 1])
    graph = helper.make_graph(
        [conv], "dw_repeated",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 8, 8])],
        initializer=[numpy_helper.from_array(np.repeat(one, 16, axis=0), "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    onnx.save(model, str(path))
    return path


def _run(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_inspect_prints_totals_and_sharing_groups(tiny_run, capsys):
    path = tiny_run.run_dir / "export" / "model_int8.tflite"
    info = inspect_model(path)
    assert info.sharing_groups, "the tiny model shares weights"
    code, out, err = _run(capsys, ["inspect", str(path)])
    assert code == 0 and err == ""
    text = " ".join(out.split())  # rich may wrap cells
    assert f"{info.file_bytes:,} bytes" in text
    assert f"stored weights {info.stored_weight_bytes:,} bytes in " \
           f"{len(info.weight_storages)} tensors" in text
    report = sharing_report(path)
    assert f"{report.unique_params:,} unique, {report.params_as_used:,} as used" in text
    assert f"Sharing groups ({len(info.sharing_groups)})" in text
    for g in info.sharing_groups:
        assert f"buffer {g.storage}" in text
        ops = ", ".join(f"{i} {info.ops[i].op_code}" for i in g.consumer_ops)
        assert ops in text
    assert "Expanded copies: none" in text


@pytest.mark.slow
def test_inspect_json_matches_the_library_report(tiny_run, capsys):
    path = tiny_run.run_dir / "export" / "model_int8.tflite"
    code, out, _ = _run(capsys, ["inspect", str(path), "--json"])
    assert code == 0
    data = json.loads(out)
    assert data == sharing_report(path).as_dict()
    info = inspect_model(path)
    assert data["stored_weight_bytes"] == info.stored_weight_bytes
    assert [g["storage"] for g in data["groups"]] == [g.storage for g in info.sharing_groups]
    assert data["params_as_used"] > data["unique_params"]
    assert data["expanded_copies"] == []


def test_inspect_flags_an_expanded_copy(tmp_path, capsys):
    path = _repeated_depthwise_onnx(tmp_path / "dw_repeated.onnx")
    code, out, err = _run(capsys, ["inspect", str(path)])
    assert code == 0 and err == ""
    text = " ".join(out.split())
    assert "Sharing groups: none" in text
    assert "Expanded copies (1): 540 bytes to save" in text
    assert "identical along axis 0" in text and "[1, 1, 3, 3]" in text

    code, out, _ = _run(capsys, ["inspect", str(path), "--json"])
    (copy,) = json.loads(out)["expanded_copies"]
    assert copy == {"tensor": "W", "storage": "W", "shape": [16, 1, 3, 3], "dtype": "float32",
                    "smaller_shape": [1, 1, 3, 3], "how": "identical along axis 0",
                    "stored_bytes": 576, "once_bytes": 36, "saved_bytes": 540}


@pytest.mark.parametrize("name, content, needle", [
    ("garbage.tflite", b"\x00\x01garbage" * 20, "garbage.tflite"),
    ("garbage.onnx", b"\xffnot protobuf\x00" * 20, "garbage.onnx"),
    ("model.txt", b"hello", "model.txt"),
    ("missing.onnx", None, "missing.onnx"),
], ids=["garbage-tflite", "garbage-onnx", "wrong-suffix", "missing"])
def test_bad_model_file_is_one_line_exit_2(tmp_path, capsys, name, content, needle):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    code, out, err = _run(capsys, ["inspect", str(path)])
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("tinyshare: error: ") and needle in lines[0]
    assert "Traceback" not in err
