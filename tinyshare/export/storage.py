"""What an int8 file must store, predicted from the quantized model alone.

The inspector reads what a file *does* store; this module says what it *should* store
if sharing is kept: each unique int8 weight once, and one int32 bias per distinct
(bias, input scale) call site, since bias scale = input scale × weight scale. Tests
hold the two equal, in both formats, for the shared model and its twin.
"""

from __future__ import annotations

from dataclasses import dataclass

from tinyshare.artifacts.models import QuantizedModel, graph_attr, is_compute_op

@dataclass(frozen=True)
class ExpectedStorage:
    """Predicted stored weight bytes of one int8 file.

    Attributes:
        int8_weights_bytes: int8 weight tensors, each unique tensor once.
        int32_biases_bytes: int32 biases, once per distinct (bias, input scale) call site.
        converter_bias_bytes: zero int32 biases the TFLite converter adds to convs that
            have none (identical buffers are stored once); 0 for ONNX.
    """

    int8_weights_bytes: int
    int32_biases_bytes: int
    converter_bias_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.int8_weights_bytes + self.int32_biases_bytes + self.converter_bias_bytes


def _input_scale(node) -> float | None:
    src = node.args[0]
    if getattr(src, "op", None) == "call_function" and "dequantize_per_tensor" in str(src.target):
        return float(src.args[1]) if not hasattr(src.args[1], "op") else None
    return None


def expected_storage(qm: QuantizedModel, fmt: str) -> ExpectedStorage:
    """Predict the stored weight bytes of ``qm`` exported as ``fmt`` ("tflite" | "onnx")."""
    weights = sum(int(w.values.size) for w in qm.weights)
    biases: dict[tuple[str, float | None], int] = {}
    zero_bias_channels: set[int] = set()
    for node in qm.graph.graph.nodes:
        if node.op != "call_function" or not is_compute_op(node.target):
            continue
        bias = node.args[2] if len(node.args) > 2 else None
        if getattr(bias, "op", None) == "get_attr":
            size = int(graph_attr(qm.graph, bias.target).numel())
            biases[(bias.target, _input_scale(node))] = 4 * size
        elif bias is None:
            zero_bias_channels.add(int(node.meta["val"].shape[1]))
    conv_zero = 4 * sum(zero_bias_channels) if fmt == "tflite" else 0
    return ExpectedStorage(int8_weights_bytes=weights, int32_biases_bytes=sum(biases.values()),
                           converter_bias_bytes=conv_zero)
