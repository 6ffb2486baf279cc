"""Host harnesses for the runtimes a board may use (LiteRT, onnxruntime, TFLM) and their table.

Each harness takes float32 inputs in the model's input layout and returns a
``RuntimeOutputs``. ``RUNTIMES`` (``registry.py``) is the capability table board
profiles and reports read.

The names below load their submodule on first access, so importing this package
(or only ``tinyshare.targets.runtimes.registry``) imports neither numpy nor a runtime.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the lazy names below, for type checkers
    # ruff: noqa: F401
    from tinyshare.targets.runtimes.base import RuntimeOutputs, dequantize, quantize_input
    from tinyshare.targets.runtimes.litert import TensorQuantParams, run_litert, tensor_quant_params
    from tinyshare.targets.runtimes.onnxruntime import level_finding, run_onnx_both_levels, run_onnxruntime
    from tinyshare.targets.runtimes.registry import RUNTIMES, RuntimeSpec, host_runs_for
    from tinyshare.targets.runtimes.tflm import (
        ArenaMeasurement,
        TflmOpRegistry,
        find_arena_bytes,
        run_tflm,
        tflm_registered_ops,
    )

_SUBMODULE = {
    "RuntimeOutputs": "base", "dequantize": "base", "quantize_input": "base",
    "TensorQuantParams": "litert", "run_litert": "litert", "tensor_quant_params": "litert",
    "level_finding": "onnxruntime", "run_onnx_both_levels": "onnxruntime",
    "run_onnxruntime": "onnxruntime",
    "RUNTIMES": "registry", "RuntimeSpec": "registry", "host_runs_for": "registry",
    "ArenaMeasurement": "tflm", "TflmOpRegistry": "tflm", "find_arena_bytes": "tflm",
    "run_tflm": "tflm", "tflm_registered_ops": "tflm",
}

__all__ = sorted(_SUBMODULE)


def __getattr__(name: str) -> object:
    module = _SUBMODULE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_SUBMODULE})
