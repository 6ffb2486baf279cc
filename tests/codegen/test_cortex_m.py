"""The generated C built for each MCU board's core and run under qemu-system-arm.

* digits demo model (the shared tiny run of ``configs/digits_tiny.toml``), every board with a
  qemu-system emulator: the emulated outputs of every test sample (plus 16 extreme ones)
  are bit-identical to the host build of the same C; flash/RAM/stack/instruction figures
  are sane (marked ``emulated``);
* a one-op CONV_2D model (``conv_c``, from conftest): an image too big for the board fails
  with ``BudgetExceededError``, and a missing compiler or emulator gives one line that says
  what to install.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tinyshare.errors import BoardError, BudgetExceededError, RuntimeUnavailableError

ROOT = Path(__file__).resolve().parents[2]
NEEDS_GCC = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                               reason="arm-none-eabi-gcc is not on PATH (make test installs it)")
NEEDS_QEMU = pytest.mark.skipif(shutil.which("qemu-system-arm") is None,
                                reason="qemu-system-arm is not on PATH (make test installs it)")


def _mcu_boards() -> list[str]:
    from tinyshare.targets.board_registry import list_boards

    return [b.name for b in list_boards() if b.emulator is not None
            and b.emulator.kind == "qemu-system"]


def _board(name_or_path):
    from tinyshare.targets.board_registry import load_board

    return load_board(name_or_path)


@pytest.fixture(scope="module")
def digits_c(tiny_run, tmp_path_factory):
    """(generated C, int8 samples NHWC, host outputs) for the digits model of the shared
    tiny run (configs/digits_tiny.toml)."""
    from tinyshare.config import load_config
    from tinyshare.data import load_splits
    from tinyshare.export.inspect import inspect_model
    from tinyshare.targets.codegen import build_host, generate_c, run_host
    from tinyshare.targets.runtimes.base import quantize_input
    from codegen_harness import int8_samples

    cfg = load_config(ROOT / "configs" / "digits_tiny.toml")
    tflite = tiny_run.run_dir / "export" / "model_int8.tflite"
    x_nchw = load_splits(cfg.data, cfg.seed).x_test
    t = inspect_model(tflite).tensor(inspect_model(tflite).inputs[0])
    real = quantize_input(np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1)), t.scales[0], t.zero_points[0])
    x = np.concatenate([real, int8_samples(np.random.default_rng(0), t.shape, 16)])
    gen = generate_c(tflite, tmp_path_factory.mktemp("c"))
    return gen, x, run_host(build_host(gen), x)


def test_every_mcu_board_has_a_cortex_m_target():
    from tinyshare.targets.codegen._cortex_m_targets import cortex_m_target

    boards = _mcu_boards()
    assert set(boards) >= {"nano33-ble-sense", "stm32f746g-disco", "corstone-300-mps3"}
    for name in boards:
        board = _board(name)
        target = cortex_m_target(board)
        assert target.machine == board.emulator.machine
        flash, ram = target.region(target.board_flash), target.region(target.board_ram)
        assert flash.length_bytes <= board.flash_bytes and ram.length_bytes <= board.ram_bytes
        assert "-mfloat-abi=hard" in target.cflags
        assert "INCLUDE sections.ld" in target.linker_memory(4096)
    with pytest.raises(BoardError, match="qemu-system"):
        cortex_m_target(_board("rpi4b"))


def test_size_a_output_is_parsed():
    from tinyshare.targets.codegen._elf_size import image_sizes, object_sizes, parse_size_a

    text = ("m.elf  :\nsection   size   addr\n.vectors  64  0\n.text  1000  64\n"
            ".model_rodata  300  2000\n.rodata  20  2400\n.data  8  536870912\n"
            ".arena  4096  536870928\n.bss  12  536875024\n.stack  2048  537000000\n"
            ".comment  38  0\n.debug_info  99  0\nTotal  7000\n\n\n"
            "a.o  :\nsection  size  addr\n.text.f  10  0\n.rodata.ts_buf1  5  0\n"
            ".bss.arena  64  0\n.comment  3  0\nTotal  82\n")
    files = parse_size_a(text)
    image = image_sizes(files["m.elf"], Path("m.elf"))
    assert (image.flash_bytes, image.ram_bytes, image.stack) == (64 + 1000 + 300 + 20 + 8, 8 + 4096 + 12, 2048)
    model = object_sizes({"a.o": files["a.o"]})
    assert (model.flash_bytes, model.ram_bytes) == (15, 64)
    with pytest.raises(RuntimeUnavailableError, match="not placed"):
        image_sizes([(".heap", 4, 0x2000_0000)], Path("m.elf"))


def test_missing_compiler_and_emulator_say_what_to_install(conv_c):
    from tinyshare.targets.codegen import build_cortex_m, run_cortex_m
    from tinyshare.targets.codegen.cortex_m import CortexMFootprint, CortexMImage, cortex_m_target

    board = _board("nano33-ble-sense")
    with pytest.raises(RuntimeUnavailableError) as err:
        build_cortex_m(conv_c, board, compiler="arm-none-eabi-gcc-does-not-exist")
    msg = str(err.value)
    assert "\n" not in msg and "not found on PATH" in msg
    assert "install with: apt-get install -y gcc-arm-none-eabi libnewlib-arm-none-eabi" in msg
    fake = CortexMImage(elf=conv_c.out_dir / "model.elf", target=cortex_m_target(board),
                        generated=conv_c, footprint=CortexMFootprint(0, 0, 0, 0, 0, 0, ()))
    with pytest.raises(RuntimeUnavailableError, match=r"^qemu-system-arm-nope not found on PATH; "
                       r"install with: apt-get install -y qemu-system-arm$"):
        run_cortex_m(fake, np.zeros((1, 5, 5, 1), np.int8), qemu="qemu-system-arm-nope")


@NEEDS_GCC
def test_an_image_too_big_for_the_board_fails_clearly(conv_c, tmp_path):
    from tinyshare.targets.codegen import build_cortex_m

    text = (ROOT / "tinyshare/targets/boards/nano33-ble-sense.toml").read_text()
    small = tmp_path / "tiny-flash.toml"
    small.write_text(text.replace('name = "nano33-ble-sense"', 'name = "tiny-flash"')
                     .replace("flash_bytes = 1_048_576", "flash_bytes = 8_192")
                     .replace("reserved_flash_bytes = 196_608", "reserved_flash_bytes = 0"))
    with pytest.raises(BudgetExceededError, match=r"^tiny-flash: the Cortex-M4F image does not fit: "
                       r"region FLASH .* overflowed by \d+ bytes$"):
        build_cortex_m(conv_c, _board(small), tmp_path / "b")
    tight = tmp_path / "tight-ram.toml"
    tight.write_text(text.replace('name = "nano33-ble-sense"', 'name = "tight-ram"')
                     .replace("reserved_ram_bytes = 65_536", "reserved_ram_bytes = 262_100"))
    with pytest.raises(BudgetExceededError, match=r"need \d+ bytes of RAM; the board's RAM budget"):
        build_cortex_m(conv_c, _board(tight), tmp_path / "c")


@pytest.mark.emulated
@NEEDS_GCC
@NEEDS_QEMU
@pytest.mark.parametrize("board", _mcu_boards())
def test_digits_on_the_board_core_is_bit_exact_with_the_host_build(digits_c, board, tmp_path):
    from tinyshare.targets.codegen import build_cortex_m, run_cortex_m

    gen, x, host = digits_c
    image = build_cortex_m(gen, _board(board), tmp_path / "build")
    result = run_cortex_m(image, x)
    assert len(x) >= 64
    diff = np.abs(result.outputs.astype(np.int32) - host.astype(np.int32))
    assert diff.max() == 0, f"{int((diff > 0).sum())} of {diff.size} values differ"
    f = result.figures
    fp = f.footprint
    assert f.samples == len(x) and f.board == board and fp == image.footprint
    assert fp.flash_bytes > fp.model_flash_bytes > gen.const_bytes > 0
    assert fp.ram_bytes >= fp.model_ram_bytes >= gen.arena_bytes > 0
    assert fp.arena_bytes == gen.arena_bytes
    assert 0 < f.invoke_stack_bytes < f.stack_high_water_bytes < fp.stack_bytes
    assert f.instructions_per_inference > 0 and f.instructions_per_tick > 0
    assert f.instructions_method.startswith("emulated instruction count, not time")
    assert {".vectors", ".text", ".data", ".bss", ".arena", ".stack"} <= {n for n, _ in image.footprint.sections}


@pytest.mark.emulated
@NEEDS_GCC
@NEEDS_QEMU
def test_relative_folders_build_and_run(one_op_conv_tflite, tmp_path, monkeypatch):
    """As `make demo` runs (output_dir = "runs", relative): generating into and building in
    relative folders works, although the compiler runs with the image folder as its cwd."""
    from tinyshare.targets.codegen import build_cortex_m, generate_c, run_cortex_m

    monkeypatch.chdir(tmp_path)
    gen = generate_c(one_op_conv_tflite, Path("runs") / "c")
    image = build_cortex_m(gen, _board("nano33-ble-sense"), Path("runs") / "img")
    x = np.zeros((2, *gen.input_shape[1:]), np.int8)
    assert run_cortex_m(image, x).outputs.shape == (2, *gen.output_shape[1:])
