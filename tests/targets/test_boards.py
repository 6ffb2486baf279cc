"""Board profiles: every packaged board validates, and bad board files fail in one clear line."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pydantic import ValidationError
from rich.console import Console

from tinyshare.errors import BoardError
from tinyshare.targets.board import BoardProfile, board_details, boards_table
from tinyshare.targets.board_registry import board_registry, list_boards, load_board, parse_board
from tinyshare.targets.runtimes.registry import RUNTIMES

BOARD_NAMES = board_registry().names()
PACKAGED = Path(__file__).resolve().parents[2] / "tinyshare" / "targets" / "boards"


def _render(renderable: object) -> str:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(renderable)
    return console.file.getvalue()


def _packaged_text(name: str) -> str:
    return (PACKAGED / f"{name}.toml").read_text()


def test_the_three_reference_boards_are_registered():
    assert {"rpi4b", "stm32f746g-disco", "nano33-ble-sense"} <= set(BOARD_NAMES)
    assert [b.name for b in list_boards()] == sorted(BOARD_NAMES)


@pytest.mark.parametrize("name", BOARD_NAMES, ids=BOARD_NAMES)
def test_board_loads_by_name(name):
    board = load_board(name)
    assert isinstance(board, BoardProfile)
    assert board.name == name
    assert board.schema_version == 1
    with pytest.raises(ValidationError):
        board.ram_bytes = 1  # frozen


@pytest.mark.parametrize("name", BOARD_NAMES, ids=BOARD_NAMES)
def test_budgets_are_positive_and_subtract_the_reserve(name):
    board = load_board(name)
    assert board.flash_budget_bytes == board.flash_bytes - board.reserved_flash_bytes
    assert board.ram_budget_bytes == board.ram_bytes - board.reserved_ram_bytes
    assert board.flash_budget_bytes > 0
    assert board.ram_budget_bytes > 0


@pytest.mark.parametrize("name", BOARD_NAMES, ids=BOARD_NAMES)
def test_every_board_cites_https_sources(name):
    board = load_board(name)
    assert len(board.sources) >= 1
    assert all(url.startswith("https://") for url in board.sources)


@pytest.mark.parametrize("name", BOARD_NAMES, ids=BOARD_NAMES)
def test_runtimes_and_emulator_match_the_os(name):
    board = load_board(name)
    assert set(board.runtimes) <= set(RUNTIMES.names())
    assert all(board.os in RUNTIMES.get(rt).os for rt in board.runtimes)
    if board.os == "baremetal":
        assert board.runtimes == ("tflm",)
        assert board.emulator is None or board.emulator.kind == "qemu-system"
    else:
        assert board.emulator is None or board.emulator.kind == "qemu-user"


@pytest.mark.parametrize("name", BOARD_NAMES, ids=BOARD_NAMES)
def test_board_round_trips_through_a_dict(name):
    board = load_board(name)
    assert BoardProfile.model_validate(board.model_dump()) == board


@pytest.mark.parametrize("name", BOARD_NAMES, ids=BOARD_NAMES)
def test_packaged_file_loads_the_same_by_path(name):
    assert load_board(PACKAGED / f"{name}.toml") == load_board(name)


# Datasheet facts: a guard against accidental edits of the board files.
@pytest.mark.parametrize(
    ("name", "cpu", "clock_hz", "cores", "flash_bytes", "ram_bytes"),
    [
        ("rpi4b", "Cortex-A72", 1_800_000_000, 4, 16_000_000_000, 4 * 1024**3),
        ("stm32f746g-disco", "Cortex-M7", 216_000_000, 1, 1024 * 1024, (64 + 240 + 16) * 1024),
        ("nano33-ble-sense", "Cortex-M4F", 64_000_000, 1, 1024 * 1024, 256 * 1024),
    ],
    ids=["rpi4b", "stm32f746g-disco", "nano33-ble-sense"],
)
def test_reference_board_numbers(name, cpu, clock_hz, cores, flash_bytes, ram_bytes):
    board = load_board(name)
    assert (board.cpu, board.clock_hz, board.cores) == (cpu, clock_hz, cores)
    assert (board.flash_bytes, board.ram_bytes) == (flash_bytes, ram_bytes)


def test_rpi4b_emulates_its_own_core():
    emulator = load_board("rpi4b").emulator
    assert emulator is not None
    assert (emulator.kind, emulator.arch, emulator.cpu) == ("qemu-user", "aarch64", "cortex-a72")


def test_unknown_name_lists_known_names():
    with pytest.raises(BoardError) as info:
        load_board("no-such-board")
    message = str(info.value)
    assert "'no-such-board'" in message
    for name in BOARD_NAMES:
        assert name in message


def test_user_board_file_loads_by_path_without_registering(tmp_path):
    text = _packaged_text("stm32f746g-disco")
    text = text.replace('name = "stm32f746g-disco"', 'name = "my-f746"')
    text = text.replace("reserved_ram_bytes = 65_536", "reserved_ram_bytes = 100_000")
    path = tmp_path / "my-f746.toml"
    path.write_text(text)

    for how in (path, str(path)):
        board = load_board(how)
        assert board.name == "my-f746"
        assert board.ram_budget_bytes == 327_680 - 100_000
    assert "my-f746" not in board_registry()


BAD_CASES = [
    ("ram_bytes = 327_680", 'ram_bytes = "abc"', "field 'ram_bytes': expected a positive integer, got 'abc'"),
    ("ram_bytes = 327_680", "ram_bytes = 0", "field 'ram_bytes': expected a positive integer, got 0"),
    ("cores = 1", "cores = true", "field 'cores': expected a positive integer, got True"),
    ("reserved_ram_bytes = 65_536", "reserved_ram_bytes = -1", "field 'reserved_ram_bytes': expected a non-negative"),
    ("reserved_ram_bytes = 65_536", "reserved_ram_bytes = 327_680", "field 'reserved_ram_bytes': expected less than"),
    ('os = "baremetal"', 'os = "rtos"', "field 'os': expected one of 'linux' or 'baremetal', got 'rtos'"),
    ('runtimes = ["tflm"]', 'runtimes = ["tvm"]',
     "field 'runtimes[0]': expected one of 'litert', 'onnxruntime', 'tflite-runtime' or 'tflm', got 'tvm'"),
    ('runtimes = ["tflm"]', 'runtimes = ["tflm", "onnxruntime"]',
     "field 'runtimes': expected only 'tflm' on a baremetal board; ['onnxruntime'] need os 'linux'"),
    ('runtimes = ["tflm"]', 'runtimes = ["tflm", "tflm"]', "field 'runtimes': expected each runtime once"),
    ("clock_hz = 216_000_000", "", "field 'clock_hz': required but missing"),
    ("cores = 1", "cores = 1\nram_kb = 320", "field 'ram_kb': unknown field"),
    ('"https://www.st.com/resource', '"http://www.st.com/resource', "field 'sources[0]': expected an https:// URL"),
    ('machine = "mps2-an500"', "", "field 'emulator.machine': expected a machine"),
    ('cpu = "cortex-m7"', 'cpu = "max"', "field 'emulator.cpu': expected the board's own core"),
]


# The Ethos-U board's [npu] table (corstone-300-mps3).
BAD_NPU = [
    ('accelerator_config = "ethos-u55-128"', 'accelerator_config = "ethos-u55-100"',
     "field 'npu.accelerator_config': expected one of 'ethos-u55-32', 'ethos-u55-64', 'ethos-u55-128'"),
    ('system_config = "Ethos_U55_High_End_Embedded"', 'system_config = "MPS3_FPGA"',
     "field 'npu.system_config': expected a [System_Config.*] section of Vela's Arm/vela.ini: one of "
     "'Ethos_U55_Deep_Embedded'"),
    ('memory_mode = "Shared_Sram"', 'memory_mode = "Shared_SRAM"',
     "field 'npu.memory_mode': expected a [Memory_Mode.*] section of Vela's Arm/vela.ini"),
    ("clock_hz = 32_000_000\n", "clock_hz = 0\n", "field 'npu.clock_hz': expected a positive integer, got 0"),
    ('memory_mode = "Shared_Sram"', 'memory_mode = "Shared_Sram"\nmacs = 128',
     "field 'npu.macs': unknown field (known: accelerator_config, system_config, memory_mode, clock_hz)"),
    ('accelerator_config = "ethos-u55-128"\n', "", "field 'npu.accelerator_config': required but missing"),
]

BAD_BOARD_CASES = ([("stm32f746g-disco", *case) for case in BAD_CASES]
                   + [("corstone-300-mps3", *case) for case in BAD_NPU])


@pytest.mark.parametrize(
    ("board", "old", "new", "fragment"), BAD_BOARD_CASES,
    ids=[case[3].split("'")[1] + f"-{i}" for i, case in enumerate(BAD_BOARD_CASES)],
)
def test_bad_user_board_gives_one_line_naming_file_and_field(tmp_path, board, old, new, fragment):
    text = _packaged_text(board)
    assert old in text
    path = tmp_path / "bad.toml"
    path.write_text(text.replace(old, new, 1))

    with pytest.raises(BoardError) as info:
        load_board(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert fragment in message


def test_label_format_matches_the_documented_example():
    text = _packaged_text("nano33-ble-sense").replace("ram_bytes = 262_144", 'ram_bytes = "abc"')
    expected = r"^boards/x\.toml: field 'ram_bytes': expected a positive integer, got 'abc'$"
    with pytest.raises(BoardError, match=expected):
        parse_board(text.encode(), "boards/x.toml")


def test_invalid_toml_and_missing_file_are_board_errors(tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text("name = \n")
    with pytest.raises(BoardError, match=r"broken\.toml: not valid TOML"):
        load_board(broken)
    with pytest.raises(BoardError, match=r"nope\.toml: board file not found$"):
        load_board(str(tmp_path / "nope.toml"))
    with pytest.raises(BoardError, match=r"not UTF-8"):
        parse_board(b"name = '\xff'", "boards/x.toml")


def test_missing_file_named_like_a_board_hints_at_the_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BoardError, match=r"^rpi4b\.toml: board file not found \(.*pass the name 'rpi4b'\)$"):
        load_board("rpi4b.toml")


def test_boards_table_has_one_row_per_board():
    boards = list_boards()
    table = boards_table(boards)
    assert table.row_count == len(boards)
    text = _render(table)
    for board in boards:
        assert board.name in text


@pytest.mark.parametrize("name", BOARD_NAMES, ids=BOARD_NAMES)
def test_board_details_shows_budgets_and_sources(name):
    board = load_board(name)
    text = _render(board_details(board))
    assert f"{board.ram_budget_bytes:,} B" in text
    assert f"{board.flash_budget_bytes:,} B" in text
    for url in board.sources:
        assert url in text
