"""The board ``[npu]`` table and the packaged Ethos-U board. Bad ``[npu]`` tables are among
the bad-board cases of test_boards.py."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from tinyshare.errors import BoardError
from tinyshare.targets.board import BoardProfile, NpuSpec, board_details
from tinyshare.targets.board_registry import list_boards, load_board

PACKAGED = Path(__file__).resolve().parents[2] / "tinyshare" / "targets" / "boards"
BOARD = "corstone-300-mps3"


def test_corstone_board_numbers_and_npu():
    board = load_board(BOARD)
    assert (board.cpu, board.isa, board.clock_hz, board.cores) == ("Cortex-M55", "armv8.1-m.main", 32_000_000, 1)
    assert (board.flash_bytes, board.ram_bytes) == (8 * 1024**2, 4 * 1024**2)  # QSPI flash, SSE-300 ISRAM
    assert board.runtimes == ("tflm",)
    assert board.emulator is not None and board.emulator.describe() == "qemu-system arm -M mps3-an547 -cpu cortex-m55"
    assert board.npu == NpuSpec(accelerator_config="ethos-u55-128", system_config="Ethos_U55_High_End_Embedded",
                                memory_mode="Shared_Sram", clock_hz=32_000_000)


def test_only_npu_boards_have_an_npu_and_it_round_trips():
    with_npu = [b.name for b in list_boards() if b.npu is not None]
    assert with_npu == [BOARD]
    board = load_board(BOARD)
    assert BoardProfile.model_validate(board.model_dump()) == board


def test_board_details_shows_the_npu():
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(board_details(load_board(BOARD)))
    assert "ethos-u55-128, Vela Ethos_U55_High_End_Embedded @ 32 MHz, Shared_Sram" in console.file.getvalue()


def test_npu_clock_is_optional():
    spec = NpuSpec(accelerator_config="ethos-u65-256", system_config="Ethos_U65_Mid_End", memory_mode="Dedicated_Sram")
    assert spec.clock_hz is None
    assert spec.describe() == "ethos-u65-256, Vela Ethos_U65_Mid_End, Dedicated_Sram"


def test_npu_as_a_bare_string_is_rejected(tmp_path):
    text = (PACKAGED / "stm32f746g-disco.toml").read_text().replace('runtimes = ["tflm"]',
                                                                     'runtimes = ["tflm"]\nnpu = "ethos-u55-128"')
    path = tmp_path / "old_style.toml"
    path.write_text(text)
    with pytest.raises(BoardError, match=r"field 'npu': expected a table, got 'ethos-u55-128'"):
        load_board(path)
