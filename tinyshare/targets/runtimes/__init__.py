"""Host harnesses for the runtimes a board may use: LiteRT, onnxruntime and TFLM.

Each harness takes float32 inputs in the model's input layout and returns a
``RuntimeOutputs``. The runtimes themselves are imported lazily inside the
functions, so importing this package stays cheap.
"""

from tinyshare.targets.runtimes.base import RuntimeOutputs, dequantize, quantize_input
from tinyshare.targets.runtimes.litert import TensorQuantParams, run_litert, tensor_quant_params
from tinyshare.targets.runtimes.onnxruntime import (
    level_finding,
    run_onnx_both_levels,
    run_onnxruntime,
)
from tinyshare.targets.runtimes.tflm import (
    ArenaMeasurement,
    TflmOpRegistry,
    find_arena_bytes,
    run_tflm,
    tflm_registered_ops,
)

__all__ = [
    "ArenaMeasurement",
    "RuntimeOutputs",
    "TensorQuantParams",
    "TflmOpRegistry",
    "dequantize",
    "find_arena_bytes",
    "level_finding",
    "quantize_input",
    "run_litert",
    "run_onnx_both_levels",
    "run_onnxruntime",
    "run_tflm",
    "tensor_quant_params",
    "tflm_registered_ops",
]
