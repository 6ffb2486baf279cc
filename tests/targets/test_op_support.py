"""The pre-deployment op check against the runtime capability table; field case C5.

C5: a model converted by a newer converter uses TRANSPOSE version 2; an older TFLM build
registers only version 1. A table declaring that build must make the check FAIL, naming
the op and both versions, before anything is flashed.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tinyshare.errors import BoardError, ModelFileError
from tinyshare.export.inspect import inspect_model
from tinyshare.targets.op_support import op_support
from tinyshare.targets.runtimes.registry import RUNTIMES, runtime_registry

PERM = (0, 3, 1, 2)  # NHWC -> NCHW


def _single_op_tflite(path, op_name: str, version: int):
    """A one-op int8 model: x (1, 2, 3, 4) -> ``op_name`` with a constant int32 operand -> y.

    With ``op_name="TRANSPOSE"`` it is a working model (y = x transposed by ``PERM``).
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    model = s.ModelT()
    model.version = 3
    code = s.OperatorCodeT()
    builtin = getattr(s.BuiltinOperator, op_name)
    code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), version
    model.operatorCodes = [code]
    perm = s.BufferT()
    perm.data = list(np.array(PERM, np.int32).tobytes())
    model.buffers = [s.BufferT(), s.BufferT(), perm, s.BufferT()]

    def tensor(name: bytes, shape, dtype, buffer: int, quantized: bool):
        t = s.TensorT()
        t.name, t.shape, t.type, t.buffer = name, list(shape), dtype, buffer
        if quantized:
            t.quantization = s.QuantizationParametersT()
            t.quantization.scale, t.quantization.zeroPoint = [0.1], [0]
        return t

    graph = s.SubGraphT()
    graph.tensors = [
        tensor(b"x", (1, 2, 3, 4), s.TensorType.INT8, 1, True),
        tensor(b"perm", (4,), s.TensorType.INT32, 2, False),
        tensor(b"y", (1, 4, 2, 3), s.TensorType.INT8, 3, True),
    ]
    op = s.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1], [2]
    if op_name == "TRANSPOSE":
        op.builtinOptionsType, op.builtinOptions = s.BuiltinOptions.TransposeOptions, s.TransposeOptionsT()
    graph.operators, graph.inputs, graph.outputs = [op], [0], [2]
    model.subgraphs = [graph]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))
    return path


@pytest.fixture(scope="module")
def transpose_v2(tmp_path_factory):
    return _single_op_tflite(tmp_path_factory.mktemp("c5") / "transpose_v2.tflite", "TRANSPOSE", 2)


def _older_tflm_table(max_transpose: int):
    """The packaged table with TFLM replaced by a build that registers TRANSPOSE up to a version."""
    older = dataclasses.replace(RUNTIMES.get("tflm"), max_op_versions={"TRANSPOSE": max_transpose},
                                op_version_policy=f"TRANSPOSE up to version {max_transpose}")
    return runtime_registry([*(RUNTIMES.get(n) for n in RUNTIMES if n != "tflm"), older])


def test_c5_model_is_a_real_transpose_v2_model(transpose_v2):
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(transpose_v2))
    interp.allocate_tensors()
    x = np.arange(24, dtype=np.int8).reshape(1, 2, 3, 4)
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    y = interp.get_tensor(interp.get_output_details()[0]["index"])
    np.testing.assert_array_equal(y, x.transpose(PERM))
    assert inspect_model(transpose_v2).op_versions() == {("TRANSPOSE", 2)}


def test_c5_older_tflm_table_fails_naming_op_and_versions(transpose_v2):
    got = op_support(inspect_model(transpose_v2), "tflm", runtimes=_older_tflm_table(1))
    assert not got.ok
    assert got.pairs == (("TRANSPOSE", 2),)
    assert got.missing_ops == ()  # the op code exists; only its version is too new
    assert got.version_violations == (("TRANSPOSE", 2, 1),)
    assert got.reasons == ("TRANSPOSE version 2 is used; tflm registers TRANSPOSE only up to version 1",)
    assert "TRANSPOSE version 2" in got.describe() and "up to version 1" in got.describe()


def test_c5_table_allowing_the_version_passes(transpose_v2):
    got = op_support(inspect_model(transpose_v2), "tflm", runtimes=_older_tflm_table(2))
    assert got.ok and got.version_violations == () and got.reasons == ()


def test_packaged_tflm_entry_checks_op_codes_not_versions(transpose_v2):
    got = op_support(inspect_model(transpose_v2), "tflm")
    assert got.ok and got.checked_statically
    assert got.version_policy == "versions not checked by the resolver"
    assert got.pairs == (("TRANSPOSE", 2),)
    assert "tflite-micro" in got.checked_against
    assert "TRANSPOSE v2" in got.describe()


def test_op_the_tflm_build_does_not_register_fails(tmp_path):
    path = _single_op_tflite(tmp_path / "lookup.tflite", "HASHTABLE_LOOKUP", 1)
    got = op_support(inspect_model(path), "tflm")
    assert not got.ok
    assert got.missing_ops == ("HASHTABLE_LOOKUP",)
    assert got.missing_nodes == (("HASHTABLE_LOOKUP", 0, "y"),)
    assert got.reasons[0].startswith("HASHTABLE_LOOKUP (op 0 'y') is not registered by tflite-micro ")


def test_every_pair_of_a_converted_model_is_listed(tiny_tflite):
    info = inspect_model(tiny_tflite.path)
    got = op_support(info, "tflm")
    assert set(got.pairs) == info.op_versions() and len(got.pairs) == len(info.op_versions())
    assert {op for op, _ in got.pairs} >= {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}
    assert got.ok, got.reasons


@pytest.mark.parametrize("runtime", ["litert", "tflite-runtime"])
def test_host_run_runtimes_are_not_checked_statically(transpose_v2, runtime):
    got = op_support(inspect_model(transpose_v2), runtime)
    assert got.ok and not got.checked_statically and got.missing_ops == ()
    assert got.version_policy == "checked by running the model on the host build"
    assert "not checked statically" in got.describe()


def test_format_mismatch_and_unknown_runtime(transpose_v2):
    info = inspect_model(transpose_v2)
    with pytest.raises(ModelFileError, match="onnxruntime runs onnx models"):
        op_support(info, "onnxruntime")
    with pytest.raises(BoardError, match="known: litert, onnxruntime, tflite-runtime, tflm"):
        op_support(info, "tvm")


def test_converted_model_with_an_op_tflm_lacks_fails_the_board(tmp_path):
    """A real litert-torch conversion with GELU (TFLM registers no GELU kernel): the board
    report's op-support check is a FAIL naming the op and the node, and a typed violation."""
    import torch

    from tinyshare.export.tflite import export_tflite_float
    from tinyshare.pipeline.report.build import _op_support
    from tinyshare.targets.board_registry import load_board

    class GeluNet(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(8, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.gelu(self.fc(x))

    path = export_tflite_float(GeluNet().eval(), torch.zeros(1, 8), tmp_path / "gelu.tflite")
    info = inspect_model(path)
    gelu = [op for op in info.ops if op.op_code == "GELU"]
    assert gelu, [op.op_code for op in info.ops]
    check = _op_support(load_board("nano33-ble-sense"), {"tflite_int8": info})
    assert check.status == "FAIL" and check.kind == "op_support"
    assert f"GELU (op {gelu[0].index} '{gelu[0].outputs[0]}') is not registered by" in check.detail
    assert check.violation()["kind"] == "op_support"
