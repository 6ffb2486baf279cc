"""Footprint: flash and RAM needs against a board's budgets, with reasons on a rejection."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyshare.errors import BudgetExceededError
from tinyshare.targets.board import BoardProfile
from tinyshare.targets.board_registry import board_registry, load_board
from tinyshare.targets.footprint import Footprint, Violation, assess, percent_of, require_fit

# A test board with round numbers: flash budget 900_000 B, RAM budget 250_000 B.
BOARD = BoardProfile(
    schema_version=1,
    name="test-mcu",
    display_name="Test MCU",
    vendor="Test",
    cpu="Cortex-M4F",
    isa="armv7e-m",
    clock_hz=64_000_000,
    cores=1,
    os="baremetal",
    flash_bytes=1_000_000,
    reserved_flash_bytes=100_000,
    ram_bytes=300_000,
    reserved_ram_bytes=50_000,
    runtimes=("tflm",),
    sources=("https://example.com/datasheet.pdf",),
)
RAM_METHOD = "tflm arena, smallest working size (host 64-bit build)"
RUNTIME_METHOD = "arm-none-eabi-size .text of the TFLM library"


def _assess(model_file_bytes, ram_needed_bytes, runtime_flash_bytes=100_000, weights_bytes=None, board=BOARD):
    return assess(
        board,
        model_file_bytes=model_file_bytes,
        weights_bytes=model_file_bytes // 2 if weights_bytes is None else weights_bytes,
        ram_needed_bytes=ram_needed_bytes,
        ram_method=RAM_METHOD,
        runtime_flash_bytes=runtime_flash_bytes,
        runtime_flash_method=None if runtime_flash_bytes is None else RUNTIME_METHOD,
    )


def test_pass_with_exact_numbers():
    fp = _assess(model_file_bytes=200_000, ram_needed_bytes=200_000, weights_bytes=150_000)
    assert fp.verdict == "PASS" and fp.passed
    assert fp.reasons == ()
    assert fp.board == "test-mcu"
    assert fp.flash_needed_bytes == 300_000  # 200_000 model file + 100_000 runtime code
    assert fp.flash_budget_bytes == 900_000
    assert fp.flash_headroom_bytes == 600_000
    assert fp.ram_budget_bytes == 250_000
    assert fp.ram_headroom_bytes == 50_000
    assert fp.weights_bytes == 150_000
    assert fp.flash_used_percent == pytest.approx(100 / 3)
    assert fp.ram_used_percent == pytest.approx(80.0)
    assert fp.notes == ()


def test_need_equal_to_budget_fits_with_zero_headroom():
    fp = _assess(model_file_bytes=800_000, ram_needed_bytes=250_000)
    assert fp.verdict == "PASS"
    assert (fp.flash_headroom_bytes, fp.ram_headroom_bytes) == (0, 0)
    assert fp.flash_used_percent == pytest.approx(100.0)


def test_flash_fail_returns_one_reason_with_need_and_have():
    fp = _assess(model_file_bytes=850_000, ram_needed_bytes=10_000, runtime_flash_bytes=60_000)
    assert fp.verdict == "FAIL" and not fp.passed
    assert fp.flash_headroom_bytes == -10_000
    assert fp.ram_headroom_bytes == 240_000
    (reason,) = fp.reasons
    assert (reason.budget, reason.need_bytes, reason.have_bytes) == ("flash", 910_000, 900_000)
    assert reason.over_bytes == 10_000
    assert "910,000 B" in reason.message and "900,000 B" in reason.message and "over by 10,000 B" in reason.message
    assert RUNTIME_METHOD in reason.message
    assert "\n" not in reason.message


def test_ram_fail_names_the_measuring_method():
    fp = _assess(model_file_bytes=1_000, ram_needed_bytes=250_001)
    (reason,) = fp.reasons
    assert reason == Violation(budget="ram", need_bytes=250_001, have_bytes=250_000, message=reason.message)
    assert fp.ram_headroom_bytes == -1
    assert RAM_METHOD in reason.message and "over by 1 B" in reason.message


def test_both_budgets_fail_flash_first():
    fp = _assess(model_file_bytes=2_000_000, ram_needed_bytes=1_000_000)
    assert [r.budget for r in fp.reasons] == ["flash", "ram"]
    assert fp.flash_headroom_bytes == 900_000 - 2_100_000
    assert fp.ram_headroom_bytes == 250_000 - 1_000_000
    assert fp.ram_used_percent == pytest.approx(400.0)


def test_unknown_runtime_size_counts_model_file_only_and_says_so():
    fp = _assess(model_file_bytes=899_999, ram_needed_bytes=0, runtime_flash_bytes=None)
    assert fp.verdict == "PASS"
    assert fp.flash_needed_bytes == 899_999
    assert fp.runtime_flash_bytes is None and fp.runtime_flash_method is None
    assert any("runtime code size unknown" in note for note in fp.notes)


def test_require_fit():
    passing = _assess(model_file_bytes=1_000, ram_needed_bytes=1_000)
    assert require_fit(passing) is passing
    failing = _assess(model_file_bytes=1_000, ram_needed_bytes=300_000)
    with pytest.raises(BudgetExceededError, match=r"test-mcu: ram: needs 300,000 B"):
        require_fit(failing)


def test_footprint_is_frozen():
    fp = _assess(model_file_bytes=1_000, ram_needed_bytes=1_000)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fp.verdict = "FAIL"  # type: ignore[misc]
    assert isinstance(dataclasses.asdict(fp)["reasons"], tuple)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"model_file_bytes": -1},
        {"ram_needed_bytes": -5},
        {"ram_needed_bytes": True},
        {"ram_needed_bytes": 1.5},
        {"weights_bytes": 2_000},  # more weights than the file holds
        {"ram_method": ""},
        {"runtime_flash_method": None},  # size without method
        {"runtime_flash_bytes": None},  # method without size
    ],
    ids=["neg-file", "neg-ram", "bool-ram", "float-ram", "weights>file", "no-ram-method", "no-rt-method", "no-rt-size"],
)
def test_bad_arguments_raise_value_error(kwargs):
    args = {
        "model_file_bytes": 1_000,
        "weights_bytes": 500,
        "ram_needed_bytes": 1_000,
        "ram_method": RAM_METHOD,
        "runtime_flash_bytes": 10,
        "runtime_flash_method": RUNTIME_METHOD,
    } | kwargs
    with pytest.raises(ValueError):
        assess(BOARD, **args)


def test_percent_of():
    assert percent_of(1, 4) == 25.0
    assert percent_of(-1, 4) == -25.0
    with pytest.raises(ValueError):
        percent_of(1, 0)


@pytest.mark.parametrize("name", board_registry().names(), ids=board_registry().names())
def test_registered_board_budgets_flow_through(name):
    board = load_board(name)
    fp = _assess(
        model_file_bytes=board.flash_budget_bytes,
        ram_needed_bytes=board.ram_budget_bytes + 1,
        runtime_flash_bytes=None,
        board=board,
    )
    assert fp.flash_headroom_bytes == 0
    assert fp.ram_headroom_bytes == -1
    assert [r.budget for r in fp.reasons] == ["ram"]


sizes = st.integers(min_value=0, max_value=2_000_000)


@given(model=sizes, runtime=st.none() | sizes, ram=sizes)
def test_verdict_is_pass_iff_both_headrooms_are_non_negative(model, runtime, ram):
    fp: Footprint = _assess(model_file_bytes=model, ram_needed_bytes=ram, runtime_flash_bytes=runtime)
    assert fp.flash_needed_bytes == model + (runtime or 0)
    assert fp.flash_headroom_bytes == fp.flash_budget_bytes - fp.flash_needed_bytes
    assert fp.ram_headroom_bytes == fp.ram_budget_bytes - fp.ram_needed_bytes
    fits = fp.flash_headroom_bytes >= 0 and fp.ram_headroom_bytes >= 0
    assert (fp.verdict == "PASS") == fits
    assert {r.budget for r in fp.reasons} == (
        ({"flash"} if fp.flash_headroom_bytes < 0 else set()) | ({"ram"} if fp.ram_headroom_bytes < 0 else set())
    )
    assert all(r.over_bytes > 0 for r in fp.reasons)
