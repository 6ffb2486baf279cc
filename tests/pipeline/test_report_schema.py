"""The report JSON Schema (version 2) accepts the contract's reports and rejects broken ones
with the JSON path and what was expected in the message."""

from __future__ import annotations

from importlib import resources

import pytest

from tinyshare.errors import ReportError, TinyshareError
from tinyshare.pipeline.report.schema import report_schema, validate_report

import report_fixtures as fx  # noqa: E402  (registered by conftest.py)

KINDS = ["tflm", "linux", "ethosu"]


def _rejected(report: dict) -> str:
    with pytest.raises(ReportError) as info:
        validate_report(report)
    return str(info.value)


def test_schema_file_is_valid_draft_2020_12_and_ships_as_package_data():
    from jsonschema import Draft202012Validator

    schema = report_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["properties"]["schema_version"] == {"const": 2}
    assert {"per_layer", "violations", "vela", "footprint"} <= set(schema["required"])
    files = resources.files("tinyshare.pipeline.report.schema")
    assert files.joinpath("report.schema.json").is_file()


def test_report_schema_returns_a_fresh_copy():
    report_schema()["required"].clear()
    assert "per_layer" in report_schema()["required"]


def test_report_error_is_a_tinyshare_error():
    assert issubclass(ReportError, TinyshareError)


@pytest.mark.parametrize("kind", KINDS)
def test_accepts_contract_reports(kind):
    validate_report(fx.board_report(kind))


@pytest.mark.parametrize("kind", KINDS)
def test_accepts_budget_failure(kind):
    validate_report(fx.fail_flash_budget(fx.board_report(kind)))


def test_accepts_null_optional_parts():
    r = fx.board_report("linux")
    assert r["vela"] is None and r["footprint"]["ram"]["arena"] is None
    assert r["footprint"]["ram"]["peak_rss_bytes"] is None
    assert r["footprint"]["flash"]["runtime_code_bytes"] is None
    validate_report(r)
    r["footprint"]["ram"]["peak_rss_bytes"] = 48_234_496  # measured under emulation
    validate_report(r)


def test_rejects_missing_per_layer():
    r = fx.board_report("tflm")
    del r["per_layer"]
    msg = _rejected(r)
    assert "$: 'per_layer' is a required property" in msg


def test_rejects_schema_version_1():
    r = fx.board_report("tflm")
    r["schema_version"] = 1
    msg = _rejected(r)
    assert "$.schema_version: 2 was expected" in msg


def test_rejects_string_need_bytes_with_its_path():
    r = fx.fail_flash_budget(fx.board_report("tflm"))
    r["violations"][0]["need_bytes"] = "1200000"
    msg = _rejected(r)
    assert "$.violations[0].need_bytes: '1200000' is not of type 'integer'" in msg


def test_rejects_budget_violation_without_its_numbers():
    r = fx.fail_flash_budget(fx.board_report("tflm"))
    del r["violations"][0]["have_bytes"]
    assert "$.violations[0]: 'have_bytes' is a required property" in _rejected(r)


def test_verdict_and_violations_must_agree():
    r = fx.board_report("tflm")
    r["verdict"] = "FAIL"  # a FAIL lists its violations
    assert "$.violations: [] should be non-empty" in _rejected(r)
    r = fx.fail_flash_budget(fx.board_report("tflm"))
    r["verdict"] = "PASS"
    assert "$.violations" in _rejected(r)


@pytest.mark.parametrize("path, value, expected", [
    (("per_layer", "tflite_int8", "rows", 3, "lifetime"), [3], "$.per_layer.tflite_int8.rows[3]"
     ".lifetime: [3] is too short"),
    (("per_layer", "tflite_int8", "rows", 0, "vela"), {"placement": "GPU", "cycles": 1,
     "sram_bytes": 0, "macs": 0, "utilisation_percent": 0.0},
     "$.per_layer.tflite_int8.rows[0].vela.placement: 'GPU' is not one of ['NPU', 'CPU']"),
    (("footprint", "ram", "arena", "measured_bytes"), -1,
     "$.footprint.ram.arena.measured_bytes: -1 is less than the minimum of 0"),
    (("footprint", "flash", "names_stripped"), "no",
     "$.footprint.flash.names_stripped: 'no' is not of type 'boolean'"),
    (("vela", "sram_bytes"), None, "$.vela.sram_bytes: None is not of type 'integer'"),
    (("violations",), [{"kind": "memory", "check": "x", "detail": "y"}],
     "$.violations[0].kind: 'memory' is not one of"),
])
def test_rejects_mistyped_fields_with_their_path(path, value, expected):
    r = fx.board_report("ethosu")
    if path == ("violations",):
        r["verdict"] = "FAIL"
    target = r
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert expected in _rejected(r)


def test_lists_several_mismatches_most_relevant_first():
    r = fx.board_report("tflm")
    r["schema_version"] = 1
    r["footprint"]["flash"]["needed_bytes"] = "90956"
    del r["vela"]
    msg = _rejected(r)
    assert msg.count("$") == 3
    for part in ("$.schema_version", "$.footprint.flash.needed_bytes", "'vela' is a required"):
        assert part in msg
