"""The deployable firmware folder (``write_firmware_folder``) of a one-op CONV_2D model
(``conv_c``, from conftest).

* the folder holds the generated sources, the board support files (``link.ld`` exactly as
  ``build_cortex_m`` writes it), a Makefile with ``build_cortex_m``'s flags and a README
  that states the I/O quantization, the arena and, when given, the measured figures and
  the TFLM comparison; no absolute path of the build machine appears in it;
* every MCU board the code generator supports (read from the board registry): ``make`` in
  the folder links an image whose ``arm-none-eabi-size -A`` sections equal
  ``build_cortex_m``'s for the same model and board;
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

ROOT = Path(__file__).resolve().parents[2]
NEEDS_HOST_GCC = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not on PATH")
NEEDS_ARM_GCC = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None
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


def _mcu_boards() -> list[str]:
    """The registered boards the code generator builds for (bare metal, known core and
    qemu machine)."""
    from tinyshare.pipeline.codegen_check import codegen_boards
    from tinyshare.targets.board_registry import list_boards

    return [b.name for b in codegen_boards(list_boards())]


def _tflm(**changes):
    from tinyshare.targets.codegen import TflmFigures

    fields = {"arena_bytes": 2_000, "model_file": "conv.tflite", "model_file_bytes": 1_500,
              "runtime_code_bytes": 30_000}
    return TflmFigures(**{**fields, **changes})


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
    out = write_firmware_folder(conv_c, board, tmp_path / "fw", figures=_figures(conv_c, board.name, 4096),
                                tflm=_tflm(), stack_bytes=4096)
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
    assert "measured TFLM arena" in readme
    assert not re.search(r"\d\s*(ms|µs|us|s)\b|latency of|per second", readme)


def test_readme_io_layout_and_bytes_are_model_hs(conv_c, tmp_path):
    from tinyshare.targets.codegen import write_firmware_folder

    out = write_firmware_folder(conv_c, _board("nano33-ble-sense"), tmp_path / "fw")
    readme, header = (out / "README.md").read_text(), (out / "model.h").read_text()
    nbytes = {}
    for what in ("input", "output"):
        shape = getattr(conv_c, f"{what}_shape")
        (layout,) = re.findall(rf"/\* {what.capitalize()}: \({', '.join(map(str, shape))}\) "
                               r"int8, ([^;]+);", header)
        (nbytes[what],) = re.findall(rf"#define MODEL_{what.upper()}_BYTES (\d+)", header)
        assert (f"| {what} | {'×'.join(map(str, shape))} | {layout} | int8 | {nbytes[what]} |"
                in readme)
    assert f"`in.bin` holds N samples of {nbytes['input']} int8 bytes" in readme
    assert (f"# N int8 samples of {nbytes['input']} bytes in in.bin -> N outputs of "
            f"{nbytes['output']} bytes in out.bin") in (out / "Makefile").read_text()


def test_readme_shows_the_tflm_methods_and_caveats(conv_c, tmp_path):
    from tinyshare.targets.codegen import write_firmware_folder

    tflm = _tflm(arena_method="TFLM RecordingMicroAllocator, 64-bit host build",
                 runtime_code_method="size of a Cortex-M4 TFLM build | hello_world")
    out = write_firmware_folder(conv_c, _board("nano33-ble-sense"), tmp_path / "fw", tflm=tflm)
    readme = (out / "README.md").read_text()
    # no figures: the generated side is the planned arena and unmeasured flash
    arena, const = conv_c.arena_bytes, conv_c.const_bytes
    assert (f"| RAM | {arena} B (arena only (the generator's plan; stack not measured)) | "
            "2,000 B arena (TFLM RecordingMicroAllocator, 64-bit host build) | "
            f"{arena / 2000:.3f} |") in readme
    assert (f"| model data (flash) | {const} B (weights + requantization tables) | 1,500 B "
            f"(`conv.tflite`) | {const / 1500:.3f} |") in readme
    # a | in a method is escaped, so the row keeps its columns
    assert ("| 31,500 B: `conv.tflite` + runtime code 30,000 B (estimate; size of a Cortex-M4 "
            "TFLM build \\| hello_world) | n/a |") in readme

    measured = _tflm(runtime_code_bytes=None, runtime_code_estimate=False)
    out = write_firmware_folder(conv_c, _board("nano33-ble-sense"), tmp_path / "fw2", tflm=measured)
    readme = (out / "README.md").read_text()
    assert "| unknown: `conv.tflite` + runtime code unknown | n/a |" in readme
    assert "(estimate" not in readme


@NEEDS_HOST_GCC
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
                                tflm=_tflm())
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


_BAD_TFLM = {
    "arena-zero": ({"arena_bytes": 0}, "TflmFigures.arena_bytes must be positive, got 0"),
    "arena-negative": ({"arena_bytes": -1},
                       "TflmFigures.arena_bytes must be a non-negative int (bytes), got -1"),
    "model-bytes-str": ({"model_file_bytes": "1"},
                        "TflmFigures.model_file_bytes must be a non-negative int"),
    "runtime-code-bool": ({"runtime_code_bytes": True},
                          "TflmFigures.runtime_code_bytes must be a non-negative int"),
    "runtime-code-float": ({"runtime_code_bytes": 1.5},
                           "TflmFigures.runtime_code_bytes must be a non-negative int"),
    "estimate-int": ({"runtime_code_estimate": 1},
                     "TflmFigures.runtime_code_estimate must be a bool"),
    "model-file-empty": ({"model_file": ""}, "TflmFigures.model_file must name the .tflite"),
    "model-file-none": ({"model_file": None}, "TflmFigures.model_file must be a one-line str"),
    "method-two-lines": ({"arena_method": "a\nb"},
                         "TflmFigures.arena_method must be a one-line str"),
}


@pytest.mark.parametrize(("changes", "message"), list(_BAD_TFLM.values()),
                         ids=list(_BAD_TFLM))
def test_bad_tflm_figures_are_rejected(changes, message):
    with pytest.raises(ValueError, match=re.escape(message)) as err:
        _tflm(**changes)
    assert "\n" not in str(err.value)


def test_tflm_figures_default_methods():
    tflm = _tflm(runtime_code_bytes=None)
    assert tflm.runtime_code_bytes is None and tflm.runtime_code_estimate is True
    assert (tflm.arena_method, tflm.runtime_code_method) == ("measured TFLM arena", "")


def test_bad_figures_tflm_and_stack_are_rejected(conv_c, tmp_path):
    from tinyshare.targets.codegen import write_firmware_folder

    board = _board("nano33-ble-sense")
    with pytest.raises(ValueError, match="figures: board is 'stm32f746g-disco'"):
        write_firmware_folder(conv_c, board, tmp_path / "a", figures=_figures(conv_c, "stm32f746g-disco"))
    with pytest.raises(ValueError, match="figures: stack_bytes is 8192"):
        write_firmware_folder(conv_c, board, tmp_path / "a", figures=_figures(conv_c, board.name),
                              stack_bytes=4096)
    with pytest.raises(TypeError, match="tflm must be a TflmFigures or None, got dict"):
        write_firmware_folder(conv_c, board, tmp_path / "a", tflm={"arena_bytes": 1})
    with pytest.raises(ValueError, match="positive multiple of 8"):
        write_firmware_folder(conv_c, board, tmp_path / "a", stack_bytes=100)
    assert not (tmp_path / "a").exists()


@NEEDS_ARM_GCC
@pytest.mark.parametrize("board", _mcu_boards())
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
@NEEDS_ARM_GCC
@NEEDS_QEMU
@NEEDS_HOST_GCC
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
