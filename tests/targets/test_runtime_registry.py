"""The runtime capability table: its entries, host runs per board, and boards reading it."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from tinyshare.errors import BoardError
from tinyshare.targets.board import BoardProfile
from tinyshare.targets.board_registry import board_registry, load_board
from tinyshare.targets.runtimes.registry import RUNTIMES, host_runs_for, runtime_registry

RUNTIME_NAMES = RUNTIMES.names()
BOARD_NAMES = board_registry().names()


def test_the_table_holds_the_four_runtimes_with_their_formats_and_os():
    got = {n: (RUNTIMES.get(n).model_format, RUNTIMES.get(n).os) for n in RUNTIME_NAMES}
    assert got == {
        "litert": ("tflite", {"linux"}),
        "onnxruntime": ("onnx", {"linux"}),
        "tflite-runtime": ("tflite", {"linux"}),
        "tflm": ("tflite", {"linux", "baremetal"}),
    }


def test_host_runs_stand_for_each_board_runtime():
    assert RUNTIMES.get("litert").host_runs == ("litert-xnnpack",)
    assert RUNTIMES.get("tflite-runtime").host_runs == ("litert-ref",)
    assert RUNTIMES.get("tflm").host_runs == ("tflm",)
    assert host_runs_for(["litert", "onnxruntime"]) == (
        "litert-xnnpack", "onnxruntime[ORT_ENABLE_ALL]", "onnxruntime[ORT_DISABLE_ALL]")


def test_host_runs_for_keeps_order_and_drops_repeats():
    assert host_runs_for(["tflm", "litert", "tflm"]) == ("tflm", "litert-xnnpack")
    assert host_runs_for([]) == ()
    twin = dataclasses.replace(RUNTIMES.get("litert"), name="litert-twin",
                               host_runs=("litert-ref", "litert-xnnpack"))
    table = runtime_registry([RUNTIMES.get("litert"), twin])
    assert host_runs_for(["litert", "litert-twin"], table) == ("litert-xnnpack", "litert-ref")


def test_unknown_runtime_lists_the_known_ones():
    with pytest.raises(BoardError) as err:
        host_runs_for(["litert", "tvm"])
    assert "'tvm'" in str(err.value)
    for name in RUNTIME_NAMES:
        assert name in str(err.value)


@pytest.mark.parametrize("name", BOARD_NAMES, ids=BOARD_NAMES)
def test_every_board_has_host_runs_for_its_runtimes(name):
    board = load_board(name)
    runs = host_runs_for(board.runtimes)
    assert runs and len(set(runs)) == len(runs)


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("model_format", "pb", "field 'model_format'"),
        ("os", frozenset({"rtos"}), "field 'os'"),
        ("os", frozenset(), "field 'os'"),
        ("host_runs", (), "field 'host_runs'"),
        ("op_check", "vela", "field 'op_check'"),
        ("max_op_versions", {"TRANSPOSE": 0}, "field 'max_op_versions'"),
    ],
    ids=["format", "os-unknown", "os-empty", "host-runs", "op-check", "max-version"],
)
def test_bad_table_entries_are_board_errors(field, value, fragment):
    with pytest.raises(BoardError, match=fragment):
        dataclasses.replace(RUNTIMES.get("tflm"), **{field: value})


def test_specs_are_frozen_and_their_limits_read_only():
    spec = dataclasses.replace(RUNTIMES.get("tflm"), max_op_versions={"TRANSPOSE": 1})
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.max_op_versions["TRANSPOSE"] = 2  # type: ignore[index]
    assert RUNTIMES.get("tflm").max_op_versions == {}  # this build declares no limits
    with pytest.raises(BoardError, match="already registered"):
        runtime_registry([spec, spec])


def _board_dict(os_name: str, runtime: str) -> dict:
    return {
        "schema_version": 1, "name": "t", "display_name": "T", "vendor": "V", "cpu": "C",
        "isa": "I", "clock_hz": 1, "cores": 1, "os": os_name, "flash_bytes": 10,
        "reserved_flash_bytes": 0, "ram_bytes": 10, "reserved_ram_bytes": 0,
        "runtimes": [runtime], "sources": ["https://example.com/datasheet.pdf"],
    }


@pytest.mark.parametrize("os_name", ["linux", "baremetal"])
@pytest.mark.parametrize("runtime", RUNTIME_NAMES)
def test_board_validation_follows_the_table_os(runtime, os_name):
    data = _board_dict(os_name, runtime)
    if os_name in RUNTIMES.get(runtime).os:
        assert BoardProfile.model_validate(data).runtimes == (runtime,)
    else:
        with pytest.raises(ValueError, match=f"on a {os_name} board"):
            BoardProfile.model_validate(data)


def test_importing_the_table_and_boards_is_light():
    code = (
        "import sys\n"
        "import tinyshare.targets.runtimes.registry, tinyshare.targets.board, tinyshare.targets.op_support\n"
        "heavy = {'numpy', 'torch', 'onnx', 'onnxruntime', 'ai_edge_litert', 'tflite_micro',\n"
        "         'litert_torch'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_runtimes_package_loads_harnesses_on_first_use():
    from tinyshare.targets import runtimes

    assert runtimes.run_litert.__module__ == "tinyshare.targets.runtimes.litert"
    assert runtimes.RUNTIMES is RUNTIMES
    assert set(runtimes.__all__) <= set(dir(runtimes))
    with pytest.raises(AttributeError):
        runtimes.no_such_name  # noqa: B018
