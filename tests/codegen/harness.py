"""Run one .tflite both ways on the same int8 samples: the generated C (host build) and TFLM."""

from __future__ import annotations

from pathlib import Path

import numpy as np

TFLM_ARENA_BYTES = 1 << 20


def int8_samples(rng: np.random.Generator, shape: tuple[int, ...], n: int) -> np.ndarray:
    """(n, *shape[1:]) int8 samples: uniform, plus all -128, all 127 and alternating extremes."""
    x = rng.integers(-128, 128, size=(n, *shape[1:])).astype(np.int8)
    x[0], x[1] = -128, 127
    x[2].reshape(-1)[::2], x[2].reshape(-1)[1::2] = -128, 127
    return x


def run_both(tflite: Path, out_dir: Path, x: np.ndarray):
    """(generated model, host outputs, TFLM outputs) for int8 samples ``x`` (N, ...)."""
    from tinyshare.targets.codegen import build_host, generate_c, run_host
    from tinyshare.targets.runtimes.base import quantize_input
    from tinyshare.targets.runtimes.tflm import run_tflm

    gen = generate_c(tflite, out_dir)
    host = run_host(build_host(gen), x)
    xf = (x.astype(np.float32) - np.float32(gen.input_zero_point)) * np.float32(gen.input_scale)
    # TFLM takes float samples and quantizes them; these map back to exactly x
    assert np.array_equal(quantize_input(xf, gen.input_scale, gen.input_zero_point), x)
    ref = run_tflm(tflite, xf, arena_bytes=TFLM_ARENA_BYTES).raw.reshape(host.shape)
    return gen, host, ref
