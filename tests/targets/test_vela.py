"""Vela on real models: the int8 digits model from the tiny pipeline run, a hand-made int8
model with an op the Ethos-U55 lacks (DEPTH_TO_SPACE), the float model, and broken inputs.

Every figure is checked against something independent of the parser: the TFLite file read
by ``tinyshare.export.inspect``, Vela's own totals (per-layer cycles and MACs add up to
the summary), layer shapes (the FULLY_CONNECTED row's MACs are its weight's size) and the
board's NPU clock.
"""

from __future__ import annotations

import configparser
import importlib.metadata
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinyshare.errors import ModelFileError, RuntimeUnavailableError
from tinyshare.export.inspect import inspect_model
from tinyshare.targets import vela
from tinyshare.targets.board import NpuSpec
from tinyshare.targets.board_registry import load_board
from tinyshare.targets.vela import VelaCpuOp, run_vela

ROOT = Path(__file__).resolve().parents[2]
BOARD = "corstone-300-mps3"


@pytest.fixture(scope="module")
def npu() -> NpuSpec:
    spec = load_board(BOARD).npu
    assert spec is not None
    return spec


@pytest.fixture(scope="module")
def exported(tiny_run) -> Path:
    """The export folder of the session's digits_tiny run (int8 and float .tflite)."""
    return tiny_run.run_dir / "export"


@pytest.fixture(scope="module")
def int8_report(exported, npu, tmp_path_factory):
    return run_vela(exported / "model_int8.tflite", npu, tmp_path_factory.mktemp("vela_int8"))


def _depth_to_space_tflite(path: Path) -> Path:
    """int8 x (1, 4, 4, 4) -> ADD(x, x) -> DEPTH_TO_SPACE(block 2) -> y (1, 8, 8, 1)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    model = s.ModelT()
    model.version = 3
    model.operatorCodes = []
    for name in ("ADD", "DEPTH_TO_SPACE"):
        code = s.OperatorCodeT()
        builtin = getattr(s.BuiltinOperator, name)
        code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), 1
        model.operatorCodes.append(code)
    model.buffers = [s.BufferT() for _ in range(4)]

    def tensor(name: bytes, shape, buffer: int):
        t = s.TensorT()
        t.name, t.shape, t.type, t.buffer = name, list(shape), s.TensorType.INT8, buffer
        t.quantization = s.QuantizationParametersT()
        t.quantization.scale, t.quantization.zeroPoint = [0.1], [0]
        return t

    graph = s.SubGraphT()
    graph.tensors = [tensor(b"x", (1, 4, 4, 4), 1), tensor(b"sum", (1, 4, 4, 4), 2),
                     tensor(b"y", (1, 8, 8, 1), 3)]
    add = s.OperatorT()
    add.opcodeIndex, add.inputs, add.outputs = 0, [0, 0], [1]
    add.builtinOptionsType, add.builtinOptions = s.BuiltinOptions.AddOptions, s.AddOptionsT()
    d2s = s.OperatorT()
    d2s.opcodeIndex, d2s.inputs, d2s.outputs = 1, [1], [2]
    options = s.DepthToSpaceOptionsT()
    options.blockSize = 2
    d2s.builtinOptionsType, d2s.builtinOptions = s.BuiltinOptions.DepthToSpaceOptions, options
    graph.operators, graph.inputs, graph.outputs = [add, d2s], [0], [2]
    model.subgraphs = [graph]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))
    return path


@pytest.fixture(scope="module")
def d2s_tflite(tmp_path_factory) -> Path:
    pytest.importorskip("ai_edge_litert")
    return _depth_to_space_tflite(tmp_path_factory.mktemp("d2s") / "d2s_int8.tflite")


# --- Vela's names --------------------------------------------------------------------------


def test_name_lists_match_the_installed_vela():
    from ethosu.vela.architecture_features import Accelerator

    assert set(vela.VELA_ACCELERATOR_CONFIGS) == {a.value for a in Accelerator}
    ini = configparser.ConfigParser()
    ini.read(Path(sys.modules["ethosu.vela"].__file__).parents[1] / "config_files" / "Arm" / "vela.ini")
    sections = ini.sections()
    assert [s.removeprefix("System_Config.") for s in sections if s.startswith("System_Config.")] \
        == list(vela.VELA_SYSTEM_CONFIGS)
    assert [s.removeprefix("Memory_Mode.") for s in sections if s.startswith("Memory_Mode.")] \
        == list(vela.VELA_MEMORY_MODES)


# --- the int8 digits model: everything on the NPU ------------------------------------------


def test_int8_model_runs_entirely_on_the_npu(int8_report, exported):
    ops = inspect_model(exported / "model_int8.tflite").ops
    r = int8_report
    assert r.vela_version == importlib.metadata.version("ethos-u-vela")
    assert (r.accelerator_config, r.system_config, r.memory_mode) == \
        ("Ethos_U55_128", "Ethos_U55_High_End_Embedded", "Shared_Sram")
    assert r.tflite_ops == len(ops) > 0
    assert r.cpu_ops == ()
    assert r.npu_ops + len(r.cpu_ops) == r.tflite_ops


def test_int8_memory_figures_are_real(int8_report, exported):
    r, board = int8_report, load_board(BOARD)
    # the arena holds at least the largest activation Vela stages for one op
    assert r.sram_bytes >= max(layer.staging_sram_bytes for layer in r.per_layer) > 0
    assert r.sram_bytes <= board.ram_budget_bytes
    assert 0 < r.offchip_flash_bytes <= board.flash_budget_bytes
    assert r.onchip_flash_bytes == 0 and r.dram_bytes == 0  # Shared_Sram: SRAM + off-chip flash only
    optimized = r.optimized_model_path.read_bytes()
    assert r.optimized_model_bytes == len(optimized) and optimized[4:8] == b"TFL3"
    assert r.optimized_model_path.parent == r.output_dir


def test_per_layer_rows_cover_every_op_and_add_up(int8_report, exported):
    info = inspect_model(exported / "model_int8.tflite")
    r = int8_report
    keyed = {layer.tflite_op_index for layer in r.per_layer}
    assert None not in keyed
    assert keyed | set(r.elided_ops) == set(range(len(info.ops)))
    assert keyed.isdisjoint(r.elided_ops)
    assert {info.ops[i].op_code for i in r.elided_ops} <= {"RESHAPE"}  # folded into memory layout
    for layer in r.per_layer:
        op = info.ops[layer.tflite_op_index]
        assert layer.tflite_op == op.op_code
        assert layer.target == "npu"
        assert layer.name in op.outputs or layer.name.endswith("_copy")  # Vela's RESHAPE -> MemoryCopy
    # Vela's per-layer figures add up to its summary
    assert sum(layer.cycles for layer in r.per_layer) == r.total_cycles
    assert sum(layer.macs for layer in r.per_layer) == r.macs
    # and match the model: a FULLY_CONNECTED does one MAC per weight
    (fc,) = [layer for layer in r.per_layer if layer.tflite_op == "FULLY_CONNECTED"]
    weight = info.tensor(info.ops[fc.tflite_op_index].inputs[1])
    assert fc.macs == int(np.prod(weight.shape))


def test_inference_time_is_vela_cycles_at_the_board_npu_clock(int8_report, npu):
    r = int8_report
    assert r.npu_clock_hz == npu.clock_hz == 32_000_000
    assert r.vela_clock_hz == 500_000_000  # Vela's Ethos_U55_High_End_Embedded template
    assert r.inference_time_ms == pytest.approx(r.total_cycles / 32e6 * 1e3)
    assert r.vela_inference_time_ms == pytest.approx(r.total_cycles / 500e6 * 1e3)
    assert 0 < r.npu_cycles <= r.total_cycles
    assert r.estimate_method == vela.ESTIMATE_METHOD and "CPU are not counted" in r.estimate_method


def test_command_reruns_as_written(int8_report):
    summary = next(int8_report.output_dir.glob("*_summary_*.csv"))
    before = summary.read_text()
    proc = subprocess.run(list(int8_report.command), capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-500:]
    assert summary.read_text() == before


# --- ops the NPU lacks ---------------------------------------------------------------------


def test_d2s_model_is_a_real_model(d2s_tflite):
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(d2s_tflite))
    interp.allocate_tensors()
    x = np.arange(64, dtype=np.int8).reshape(1, 4, 4, 4)
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    y = interp.get_tensor(interp.get_output_details()[0]["index"])
    doubled = 2 * x.astype(np.int32)  # ADD(x, x) with equal scales
    expected = doubled.reshape(1, 4, 4, 2, 2, 1).transpose(0, 1, 3, 2, 4, 5).reshape(1, 8, 8, 1)
    np.testing.assert_array_equal(y, expected)


def test_unsupported_int8_op_stays_on_the_cpu_with_vela_reason(d2s_tflite, npu, tmp_path):
    r = run_vela(d2s_tflite, npu, tmp_path)
    assert r.tflite_ops == 2 and r.npu_ops == 1
    assert r.cpu_ops == (VelaCpuOp(tflite_op_index=1, op="DEPTH_TO_SPACE", name="y",
                                   reason="Unsupported opType"),)
    targets = {(layer.tflite_op_index, layer.vela_op, layer.target) for layer in r.per_layer}
    assert targets == {(0, "Add", "npu"), (1, "Passthrough", "cpu")}


def test_float_ops_stay_on_the_cpu_with_the_dtype_reason(exported, npu, tmp_path):
    path = exported / "model_float.tflite"
    r = run_vela(path, npu, tmp_path)
    ops = inspect_model(path).ops
    assert r.npu_ops == 0 and len(r.cpu_ops) == r.tflite_ops == len(ops)
    for cpu_op in r.cpu_ops:
        assert cpu_op.op == ops[cpu_op.tflite_op_index].op_code
        assert cpu_op.name == ops[cpu_op.tflite_op_index].outputs[0]
        assert "unsupported DataType Float32" in cpu_op.reason
    assert r.sram_bytes == 0 and r.total_cycles == 0 and r.macs == 0


# --- errors: one line, no traceback --------------------------------------------------------


def test_missing_and_non_tflite_files_are_model_errors(npu, tmp_path):
    with pytest.raises(ModelFileError, match="no such file"):
        run_vela(tmp_path / "nope.tflite", npu, tmp_path)
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelFileError, match="TFL3"):
        run_vela(junk, npu, tmp_path)


def test_truncated_model_is_rejected_by_vela(exported, npu, tmp_path):
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes((exported / "model_int8.tflite").read_bytes()[:300])
    with pytest.raises(ModelFileError, match="Vela rejects the file: Failed to load TfLite model") as info:
        run_vela(truncated, npu, tmp_path)
    assert "\n" not in str(info.value)


def test_vela_crash_is_runtime_unavailable_with_its_last_line(d2s_tflite, npu, tmp_path, monkeypatch):
    crash = [sys.executable, "-c", "import sys; print('Traceback ...', file=sys.stderr); "
             "print('RuntimeError: regor fell over', file=sys.stderr); sys.exit(3)"]
    monkeypatch.setattr(vela, "_command", lambda *a: crash)
    with pytest.raises(RuntimeUnavailableError, match=r"\(exit 3\): RuntimeError: regor fell over$"):
        run_vela(d2s_tflite, npu, tmp_path)


def test_vela_timeout_and_missing_vela(d2s_tflite, npu, tmp_path, monkeypatch):
    monkeypatch.setattr(vela, "_command", lambda *a: [sys.executable, "-c", "import time; time.sleep(30)"])
    with pytest.raises(RuntimeUnavailableError, match="timed out after 0.5 s"):
        run_vela(d2s_tflite, npu, tmp_path, timeout_s=0.5)
    monkeypatch.setattr(vela.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(RuntimeUnavailableError, match="Vela is not installed"):
        run_vela(d2s_tflite, npu, tmp_path)
