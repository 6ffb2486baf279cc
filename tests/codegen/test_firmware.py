"""The deployable firmware folder (``write_firmware_folder``) of a one-op CONV_2D model.

* the folder holds the generated sources, the board support files (``link.ld`` exactly as
  ``build_cortex_m`` writes it), a Makefile with ``build_cortex_m``'s flags and a README
  that states the I/O quantization, the arena and, when given, the measured figures and
  the TFLM comparison; no absolute path of the build machine appears in it;
* every MCU board: ``make`` in the folder links an image whose ``arm-none-eabi-size -A``
  sections equal ``build_cortex_m``'s for the same model and board;
* one board: ``make run`` under qemu-system-arm gives the host build's outputs.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from codegen_harness import int8_samples
from codegen_single_op import T, conv_options, write_model

ROOT = Path(__file__).resolve().parents[2]
BOARDS = ("nano33-ble-sense", "stm32f746g-disco", "corstone-300-mps3")
NEEDS_GCC = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None
                               or shutil.which("make") is None,
                               reason="arm-none-eabi-gcc or make is not on PATH "
                                      "(make test installs them)")
NEEDS_QEMU = pytest.mark.skipif(shutil.which("qemu-system-arm") is None,
                                reason="qemu-system-arm is not on PATH (make test installs it)")
MODEL_FILES = {"model.c", "conv2d.c", "model.h", "ts_kernels.h", "ts_quant.h", "ts_config.h"}
SUPPORT = {"startup.c", "harness.c", "ts_cortex_m.h", "sections.ld", "link.ld"}


def _board(name):
    from tinyshare.targets.board_registry import load_board

    return load_board(name)


@pytest.fixture(scope="module")
def conv_c(tmp_path_factory):
    """A one-op CONV_2D model's generated C."""
    from tinyshare.targets.codegen import generate_c

    tmp = tmp_path_factory.mktemp("conv")
    w = np.random.default_rng(0).integers(-127, 128, (2, 3, 3, 1)).astype(np.int8)
    tflite = write_model(tmp / "conv.tflite", "CONV_2D",
                         [T((1, 5, 5, 1), scale=0.02, zero_point=3), T((2, 3, 3, 1), scale=[0.01, 0.02], data=w),
                          T((2,), "int32", scale=[2e-4, 4e-4], data=np.array([100, -100]))],
                         T((1, 5, 5, 2), scale=0.05, zero_point=-1), "Conv2DOptions", conv_options())
    return generate_c(tflite, tmp / "c")


def _figures(gen, board: str, stack_bytes: int = 8192):
    """Figures as ``run_cortex_m`` gives them (values made up; the README only prints them)."""
    from tinyshare.targets.codegen import CortexMFigures, CortexMFootprint

    fp = CortexMFootprint(flash_bytes=38_402, ram_bytes=2_900, stack_bytes=stack_bytes,
                          model_flash_bytes=988, model_ram_bytes=112, arena_bytes=gen.arena_bytes,
                          sections=((".text", 34_280),))
    return CortexMFigures(board=board, cpu="Cortex-M4F", machine="mps2-an386", samples=3,
                          footprint=fp, stack_high_water_bytes=368, invoke_stack_bytes=148,
                          stack_method="measured: painted stack", instructions_per_inference=18_933,
                          instructions_per_tick=40.0,
                          instructions_method="emulated instruction count, not time: qemu -icount")


def _make(folder: Path, *targets: str) -> str:
    proc = subprocess.run(["make", "-s", *targets], cwd=folder, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, f"make {' '.join(targets)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_folder_has_the_model_support_files_makefile_and_readme(conv_c, tmp_path):
    from tinyshare.targets.codegen import write_firmware_folder
    from tinyshare.targets.codegen._cortex_m_targets import cortex_m_target
    from tinyshare.targets.codegen.cortex_m import LDFLAGS, TARGET_CFLAGS, support_files

    board = _board("nano33-ble-sense")
    tflm = {"arena_bytes": 2_000, "model_bytes": 1_500, "runtime_code_bytes": 30_000,
            "runtime_code_estimate": True, "model_file": "conv.tflite"}
    out = write_firmware_folder(conv_c, board, tmp_path / "fw", figures=_figures(conv_c, board.name, 4096),
                                tflm=tflm, stack_bytes=4096)
    assert out == tmp_path / "fw"
    assert {p.name for p in out.iterdir()} == MODEL_FILES | SUPPORT | {"Makefile", "README.md"}
    for name in MODEL_FILES:
        assert (out / name).read_bytes() == (conv_c.out_dir / name).read_bytes(), name
    target = cortex_m_target(board)
    assert (out / "link.ld").read_text() == support_files(target, 4096)["link.ld"]
    assert "STACK_BYTES = 4096;" in (out / "link.ld").read_text()

    make = (out / "Makefile").read_text()
    assert f"CPUFLAGS = {' '.join(target.cflags)}\n" in make
    assert f"CFLAGS = {' '.join(TARGET_CFLAGS)}\n" in make
    assert f"LDFLAGS = {' '.join(LDFLAGS)}\n" in make
    assert "MODEL_SRCS = model.c conv2d.c\n" in make
    assert "-kernel model.elf" in make and "-M mps2-an386 -cpu cortex-m4 " in make
    assert re.search(r"^\t\$\(SIZE\) -A model\.elf$", make, re.MULTILINE)

    readme = (out / "README.md").read_text()
    assert "int model_invoke(const int8_t *in, int8_t *out);" in readme
    # the scale as model.h writes it, and the zero points
    assert "| input | 1×5×5×1 | NHWC | int8 | 25 | 0.0199999996 | 3 |" in readme
    assert "| output | 1×5×5×2 | NHWC | int8 | 50 | 0.0500000007 | -1 |" in readme
    assert "#define MODEL_INPUT_SCALE 0.0199999996f" in (out / "model.h").read_text()
    assert "real = scale * (q - zero_point)" in readme
    assert f"Activation arena: **{conv_c.arena_bytes:,} bytes**" in readme
    assert "flash 1,048,576 B" in readme and "RAM 262,144 B" in readme
    assert "| instructions per inference | 18,933 | emulated instruction count, not time |" in readme
    assert "| stack high-water inside model_invoke | 148 B | measured (emulated) |" in readme
    assert "the stack reserves 4,096 B" in readme
    # RAM: (112 + 148) / 2000; flash: 988 / (1500 + 30000)
    assert re.search(r"^\| RAM \| 260 B .* \| 2,000 B arena .* \| 0\.130 \|$", readme, re.MULTILINE)
    assert re.search(r"^\| model \+ code \(flash\) \| 988 B .* \| 31,500 B: `conv\.tflite` \+ "
                     r"runtime code 30,000 B \(estimate\) \| 0\.031 \|$", readme, re.MULTILINE)
    assert not re.search(r"\d\s*(ms|µs|us|s)\b|latency of|per second", readme)


def test_readme_c_snippets_compile(conv_c, tmp_path):
    from tinyshare.targets.codegen import write_firmware_folder

    out = write_firmware_folder(conv_c, _board("stm32f746g-disco"), tmp_path / "fw")
    readme = (out / "README.md").read_text()
    assert "## Measured footprint" not in readme and "## Compared with TFLM" not in readme
    blocks = re.findall(r"```c\n(.*?)```", readme, re.DOTALL)
    (out / "snippets.c").write_text("\n".join(blocks[1:]))
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-c", "snippets.c"],
                   cwd=out, check=True, timeout=60)


def test_folder_holds_no_absolute_path_of_the_build_machine(conv_c, tmp_path):
    from tinyshare.targets.codegen import write_firmware_folder

    out = write_firmware_folder(conv_c, _board("corstone-300-mps3"), tmp_path / "fw",
                                figures=_figures(conv_c, "corstone-300-mps3"),
                                tflm={"arena_bytes": 2_000})
    machine_paths = {str(ROOT), str(tmp_path), str(conv_c.out_dir), str(conv_c.tflite_path.parent),
                     str(Path.home()), sys.prefix, str(Path.cwd())}
    for tool in ("arm-none-eabi-gcc", "qemu-system-arm", "make"):
        if shutil.which(tool):
            machine_paths.add(str(Path(shutil.which(tool)).parent))
    for f in out.iterdir():
        text = f.read_text()
        found = [p for p in machine_paths if p in text]
        assert not found, f"{f.name} holds {found}"
        assert not re.search(r"(?<![\w.*/])/(home|tmp|usr|opt|work|root|var)/", text), f.name


def test_bad_figures_tflm_and_stack_are_rejected(conv_c, tmp_path):
    from tinyshare.targets.codegen import write_firmware_folder

    board = _board("nano33-ble-sense")
    with pytest.raises(ValueError, match="figures: board is 'stm32f746g-disco'"):
        write_firmware_folder(conv_c, board, tmp_path / "a", figures=_figures(conv_c, "stm32f746g-disco"))
    with pytest.raises(ValueError, match="figures: stack_bytes is 8192"):
        write_firmware_folder(conv_c, board, tmp_path / "a", figures=_figures(conv_c, board.name),
                              stack_bytes=4096)
    with pytest.raises(ValueError, match=r"tflm: unknown keys \['arena'\]"):
        write_firmware_folder(conv_c, board, tmp_path / "a", tflm={"arena": 1})
    with pytest.raises(ValueError, match="tflm: model_bytes must be a non-negative int"):
        write_firmware_folder(conv_c, board, tmp_path / "a", tflm={"arena_bytes": 1, "model_bytes": "1"})
    with pytest.raises(ValueError, match="positive multiple of 8"):
        write_firmware_folder(conv_c, board, tmp_path / "a", stack_bytes=100)
    assert not (tmp_path / "a").exists()


@NEEDS_GCC
@pytest.mark.parametrize("board", BOARDS)
def test_make_links_the_image_build_cortex_m_measures(conv_c, board, tmp_path):
    from tinyshare.targets.codegen import build_cortex_m, write_firmware_folder
    from tinyshare.targets.codegen._elf_size import image_sizes, parse_size_a

    image = build_cortex_m(conv_c, _board(board), tmp_path / "build")
    out = write_firmware_folder(conv_c, _board(board), tmp_path / "fw")
    assert (out / "link.ld").read_bytes() == (tmp_path / "build" / "link.ld").read_bytes()
    _make(out)
    assert (out / "model.elf").is_file()
    (sections,) = parse_size_a(_make(out, "size")).values()
    sizes = image_sizes(sections, out / "model.elf")
    fp = image.footprint
    assert (sizes.flash_bytes, sizes.ram_bytes, sizes.stack) == (fp.flash_bytes, fp.ram_bytes, fp.stack_bytes)
    assert sizes.sections == fp.sections
    _make(out, "clean")
    assert not (out / "model.elf").exists() and not list(out.glob("*.o"))


@pytest.mark.emulated
@NEEDS_GCC
@NEEDS_QEMU
def test_make_run_gives_the_host_outputs(conv_c, tmp_path):
    from tinyshare.targets.codegen import build_host, run_host, write_firmware_folder

    out = write_firmware_folder(conv_c, _board("nano33-ble-sense"), tmp_path / "fw")
    x = int8_samples(np.random.default_rng(1), conv_c.input_shape, 4)
    x.tofile(out / "in.bin")
    stdout = _make(out, "run")
    assert "ts-stats samples=4 " in stdout
    y = np.fromfile(out / "out.bin", np.int8).reshape(len(x), *conv_c.output_shape[1:])
    host = run_host(build_host(conv_c, tmp_path / "host"), x)
    np.testing.assert_array_equal(y, host)
