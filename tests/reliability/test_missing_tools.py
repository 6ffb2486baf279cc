"""A missing emulator or cross-compiler is one line that says how to install it.

Already covered elsewhere: ``validation.codegen = "on"`` without arm-none-eabi-gcc or
qemu-system-arm (exit 2 before any folder, tests/pipeline/test_codegen_report.py), and
``"auto"`` recording why the generated C did not run (same file); ``build_cortex_m`` /
``run_cortex_m`` without their tools (tests/codegen/test_cortex_m.py); ``ensure_image``
without qemu-user (tests/targets/emulation/test_image.py). Here: every host tool that
``targets._proc.find_tool`` looks up, ``tinyshare boards setup`` without qemu-user, and an
emulated board whose qemu is missing, which the run records for that board instead of
stopping.
"""

from __future__ import annotations

import numpy as np
import pytest

from tinyshare.errors import RuntimeUnavailableError
from tinyshare.targets._proc import _INSTALL_HINT, find_tool


@pytest.fixture
def empty_path(tmp_path, monkeypatch):
    """No host tools on PATH; the device-image cache in a temp folder."""
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


@pytest.mark.parametrize("tool", sorted(_INSTALL_HINT))
def test_every_host_tool_says_how_to_install_it(empty_path, tool):
    with pytest.raises(RuntimeUnavailableError) as err:
        find_tool(tool)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{tool} not found on PATH; ")
    assert _INSTALL_HINT[tool] in msg


@pytest.mark.parametrize("board,qemu", [("rpi4b", "qemu-aarch64-static"),
                                        ("rpi3b-armhf", "qemu-arm-static")])
def test_boards_setup_without_qemu_is_one_line_exit_2(empty_path, capsys, board, qemu):
    from tinyshare.cli import main

    assert main(["boards", "setup", board]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert captured.out == "" and len(err.splitlines()) == 1
    assert err == (f"tinyshare: error: {qemu} not found on PATH; install it: "
                   "apt-get install qemu-user-static")
    assert not (empty_path / "cache").exists()  # nothing built, nothing half-made


def test_an_emulated_board_without_qemu_is_recorded_not_raised(empty_path):
    """validation.emulate = true and no qemu-user: that board's emulation holds the one-line
    reason (the report shows it) and the other checks and boards go on."""
    from tinyshare.pipeline.emulate import emulate_board
    from tinyshare.targets.board_registry import load_board

    x = np.zeros((2, 1, 8, 8), np.float32)
    emu = emulate_board(load_board("rpi4b"), {}, x, np.zeros(2, np.int64), None,
                        tolerance_lsb=1, timeout_s=10)
    assert emu.checks == () and emu.image_key is None
    assert emu.error == ("qemu-aarch64-static not found on PATH; install it: "
                         "apt-get install qemu-user-static")
    assert not (empty_path / "cache").exists()
