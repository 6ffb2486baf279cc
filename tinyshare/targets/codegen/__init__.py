"""Generate portable C99 from an int8 ``.tflite``: no interpreter, bit-exact with TFLM.

Public API::

    gen = generate_c("model_int8.tflite", "build/c")   # model.c, model.h, kernels
    exe = build_host(gen)                               # gcc -O2 -std=c99 -Wall -Werror
    y = run_host(exe, x_int8)                           # (N, ...) int8, as TFLM gives
    image = build_cortex_m(gen, load_board("nano33-ble-sense"))   # arm-none-eabi-gcc
    run = run_cortex_m(image, x_int8)                   # qemu-system-arm: outputs + figures
    write_firmware_folder(gen, load_board("nano33-ble-sense"), "fw", figures=run.figures)

The kernels (``kernels/<op>.c``) follow TFLite Micro's int8 reference arithmetic
(``MultiplyByQuantizedMultiplier`` with the rounding of the tflite-micro build: gemmlowp
double rounding by default, single rounding on request; per-channel multipliers, ADD's
left-shift-20 scheme, MEAN's integer rescale). Supported ops: ``SUPPORTED_OPS``.
Kernel sources are read from this package's ``kernels/`` folder.
"""

from __future__ import annotations

from tinyshare.targets.codegen._emit import generate_c
from tinyshare.targets.codegen._model import ConstBuffer, GeneratedModel
from tinyshare.targets.codegen._ops import LOWERINGS
from tinyshare.targets.codegen.cortex_m import (
    CortexMFigures,
    CortexMFootprint,
    CortexMImage,
    CortexMRun,
    build_cortex_m,
    run_cortex_m,
)
from tinyshare.targets.codegen.firmware import TflmFigures, write_firmware_folder
from tinyshare.targets.codegen.host import build_host, run_host

SUPPORTED_OPS: frozenset[str] = frozenset(LOWERINGS)

__all__ = ["SUPPORTED_OPS", "ConstBuffer", "CortexMFigures", "CortexMFootprint", "CortexMImage",
           "CortexMRun", "GeneratedModel", "TflmFigures", "build_cortex_m", "build_host",
           "generate_c", "run_cortex_m", "run_host", "write_firmware_folder"]
