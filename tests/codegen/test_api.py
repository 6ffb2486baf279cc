"""The generator's public API and its TFLM-exact constants, without running TFLM."""

from __future__ import annotations

import hashlib
import shutil
import subprocess

import numpy as np
import pytest

from tinyshare.errors import DataError
from tinyshare.targets.codegen import _quant as q


def test_quantize_multiplier_matches_tflm():
    assert q.quantize_multiplier(0.5) == (1 << 30, 0)
    assert q.quantize_multiplier(1.0) == (1 << 30, 1)
    assert q.quantize_multiplier(0.0) == (0, 0)
    assert q.quantize_multiplier(1e-12) == (0, 0)  # below 2^-31: flushed to zero
    assert q.quantize_multiplier(0.75) == (3 << 29, 0)
    # a mantissa that rounds up to 2^31 moves to the next exponent
    assert q.quantize_multiplier(1 - 2.0 ** -40) == (1 << 30, 1)
    # only single-rounding builds cap the shift at 30
    assert q.quantize_multiplier(2.0 ** 35) == (1 << 30, 36)
    assert q.quantize_multiplier(2.0 ** 35, single_rounding=True) == ((1 << 31) - 1, 30)


def test_mean_multiplier_folds_in_the_count():
    m, s = q.quantize_multiplier(0.5)
    assert q.mean_multiplier(0.5, 1.0, 4) == ((m << 2) // 4, s - 2)
    assert q.mean_multiplier(0.5, 1.0, 5) == ((m << 2) // 5, s - 2)


def test_activation_range_quantizes_the_bounds_in_float32():
    assert q.activation_range(0, 0.05, -128) == (-128, 127)
    assert q.activation_range(1, 0.05, -10) == (-10, 127)
    assert q.activation_range(3, 0.05, -128) == (-128, -8)  # 6 / 0.05 = 120
    assert q.activation_range(3, 0.01, 0) == (0, 127)  # 600 saturates
    with pytest.raises(ValueError, match="fused activation 4"):
        q.activation_range(4, 0.05, 0)


@pytest.mark.parametrize(("padding", "n", "k", "stride", "dilation", "want"), [
    (0, 7, 3, 2, 1, (4, 1)),   # SAME, odd: total 2, 1 before
    (0, 8, 3, 2, 1, (4, 0)),   # SAME, even: total 1, the extra one after
    (0, 8, 3, 1, 2, (8, 2)),   # SAME, dilation 2: effective kernel 5
    (1, 9, 3, 2, 1, (4, 0)),   # VALID
])
def test_window_padding_is_tflites(padding, n, k, stride, dilation, want):
    assert q.window_padding(padding, stride, dilation, n, k) == want


def test_generated_files_and_figures(one_op_conv_tflite, tmp_path):
    from tinyshare.targets.codegen import build_host, generate_c, run_host

    gen = generate_c(one_op_conv_tflite, tmp_path / "c")
    assert gen.kernels == ("conv2d",) and gen.rounding == "double"
    assert sorted(p.name for p in gen.out_dir.iterdir()) == [
        "conv2d.c", "model.c", "model.h", "ts_config.h", "ts_kernels.h", "ts_quant.h"]
    assert gen.weight_bytes == 18 + 8 and gen.table_bytes == 2 * (4 + 1)
    assert gen.arena_bytes == 32 + 64  # 25-byte input and 50-byte output, 16-byte aligned
    header = gen.model_h.read_text()
    assert "#define MODEL_INPUT_ZERO_POINT (3)" in header and "MODEL_OUTPUT_DIMS {1, 5, 5, 2}" in header
    # which file, which rounding, the class count, and includable from C++ firmware
    digest = hashlib.sha256(one_op_conv_tflite.read_bytes()).hexdigest()
    assert f"Source SHA-256: {digest}" in header and "double rounding" in header
    assert "#define MODEL_OUTPUT_CLASSES 2" in header and "(1, 5, 5, 1) int8, NHWC" in header
    assert 'extern "C" {' in header
    x = np.zeros((3, 5, 5, 1), np.int8)
    y = run_host(build_host(gen), x)
    assert y.shape == (3, 5, 5, 2) and y.dtype == np.int8 and (y == y[0]).all()
    with pytest.raises(DataError, match="int8"):
        run_host(gen.out_dir / "model_host", x.astype(np.int16))
    with pytest.raises(DataError, match="shape"):
        run_host(gen.out_dir / "model_host", np.zeros((3, 24), np.int8))


@pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("g++") is None,
                    reason="gcc or g++ is not on PATH")
def test_a_cpp_caller_links_against_the_c_objects(conv_c, tmp_path):
    (tmp_path / "use.cpp").write_text(
        '#include "model.h"\nint main() { int8_t i[MODEL_INPUT_BYTES] = {0}; '
        "int8_t o[MODEL_OUTPUT_BYTES]; return model_invoke(i, o); }\n")
    objects = [tmp_path / f"{src.stem}.o" for src in conv_c.sources]
    for src, obj in zip(conv_c.sources, objects):
        subprocess.run(["gcc", "-c", "-std=c99", f"-I{conv_c.out_dir}", str(src), "-o", str(obj)],
                       check=True, timeout=60)
    subprocess.run(["g++", f"-I{conv_c.out_dir}", str(tmp_path / "use.cpp"), *map(str, objects),
                    "-o", str(tmp_path / "use")], check=True, timeout=60)
    assert subprocess.run([str(tmp_path / "use")], timeout=60).returncode == 0


def test_single_rounding_is_a_build_setting(one_op_conv_tflite, tmp_path):
    from tinyshare.targets.codegen import build_host, generate_c, run_host

    gen = generate_c(one_op_conv_tflite, tmp_path / "c", rounding="single")
    assert "#define TS_SINGLE_ROUNDING 1" in (gen.out_dir / "ts_config.h").read_text()
    assert run_host(build_host(gen), np.zeros((1, 5, 5, 1), np.int8)).shape == (1, 5, 5, 2)
    with pytest.raises(ValueError, match="rounding"):
        generate_c(one_op_conv_tflite, tmp_path / "d", rounding="nearest")
