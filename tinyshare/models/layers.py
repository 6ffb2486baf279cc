"""Weight-shared layers.

Each layer is an ordinary ``torch.nn.Module`` with the usual argument names and two
mathematically identical forward forms:

* the *training* form (``deploy=False``), fast on the CPU, with gradients accumulating
  into the one shared Parameter;
* the *deploy* form (``deploy=True``), which keeps one stored copy of the shared weight
  and lowers to a clean NHWC TFLite graph (see docs/toolchain.md, "int8 export with
  litert-torch").

``switch_to_deploy(model)`` flips every shared layer in a model to its deploy form,
in the spirit of RepVGG's ``switch_to_deploy``. Parameters are never copied: the
deploy form reads the same ``Parameter`` objects.

Every shared layer has an unshared twin (``unshared_twin()``) with the same topology
and independent weights, initialised from the shared values broadcast, so reports can
show what sharing saves.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "SharedConv2d",
    "SharedDepthwiseConv2d",
    "SharedLinear",
    "switch_to_deploy",
]


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


class _SharedConvBase(nn.Module):
    """Plumbing shared by the weight-shared convs: geometry, bias, activation, twin.

    Args:
        in_channels / out_channels: channel counts of the equivalent ordinary conv.
        weight_channels: leading dims of the one stored filter bank, e.g. (1, 1).
        groups: the equivalent ordinary conv's groups (its unshared twin).
        fan_in: fan-in of the equivalent ordinary conv, for initialisation.
    """

    def __init__(
        self, in_channels: int, out_channels: int, weight_channels: tuple[int, int],
        kernel_size, stride, padding, dilation, bias: bool, activation: str | None,
        groups: int,
    ) -> None:
        super().__init__()
        if activation not in (None, "relu"):
            raise ValueError(f"activation must be None or 'relu', got {activation!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        self.padding = _pair(padding)
        self.dilation = _pair(dilation)
        self.activation = activation
        self.groups = groups
        self.deploy = False
        self.weight = nn.Parameter(torch.empty(*weight_channels, *self.kernel_size))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_channels))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Fan-in of the equivalent ordinary conv, so activations keep their scale.
        fan_in = (self.in_channels // self.groups) * self.kernel_size[0] * self.kernel_size[1]
        bound = 1.0 / math.sqrt(fan_in)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
            f"bias={self.bias is not None}, activation={self.activation}, deploy={self.deploy}"
        )

    def _act(self, y: torch.Tensor) -> torch.Tensor:
        return F.relu(y) if self.activation == "relu" else y

    def _broadcast_weight(self) -> torch.Tensor:
        """The shared filters broadcast to the ordinary conv's weight shape (no copy)."""
        return self.weight.expand(
            self.out_channels, self.in_channels // self.groups, *self.kernel_size)

    def unshared_twin(self) -> nn.Conv2d:
        """An ``nn.Conv2d`` holding the shared filters broadcast, with its own copy."""
        conv = nn.Conv2d(
            self.in_channels, self.out_channels, self.kernel_size, self.stride, self.padding,
            self.dilation, groups=self.groups, bias=self.bias is not None,
        )
        with torch.no_grad():
            conv.weight.copy_(self._broadcast_weight())
            if self.bias is not None:
                conv.bias.copy_(self.bias)
        return conv


class SharedDepthwiseConv2d(_SharedConvBase):
    """Depthwise conv whose single K×K filter is shared by every channel.

    Parameters: ``weight`` (1, 1, K, K) float32, and ``bias`` (C,) float32 when
    ``bias=True``: K² + C parameters.

    Args:
        channels: C, input and output channels.
        kernel_size: K (int or (Kh, Kw)).
        stride: conv stride. The TRANSPOSE-free deploy form needs stride 1 along W;
            other strides fall back to the reshape deploy form (two TRANSPOSE ops).
        padding: zero padding (int or (ph, pw)).
        dilation: conv dilation.
        bias: whether each channel has its own bias.
        activation: ``None`` or ``"relu"``; kept inside the layer so it fuses.

    Shapes:
        x: (N, C, H, W) float32 → (N, C, H', W') float32.
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        bias: bool = True,
        activation: str | None = None,
    ) -> None:
        super().__init__(channels, channels, (1, 1), kernel_size, stride, padding, dilation,
                         bias, activation, groups=channels)
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.deploy:
            return self._forward_train(x)
        if self.stride[1] == 1:
            return self._forward_dilated_nhwc(x)
        return self._forward_reshape(x)

    def _forward_train(self, x: torch.Tensor) -> torch.Tensor:
        w = self._broadcast_weight()  # no copy; gradients sum into the one filter
        y = F.conv2d(x, w, self.bias, self.stride, self.padding, self.dilation,
                     groups=self.channels)
        return self._act(y)

    def _forward_reshape(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        y = F.conv2d(
            x.reshape(n * c, 1, h, w), self.weight, None, self.stride, self.padding, self.dilation
        )  # (N·C, 1, H', W')
        y = y.reshape(n, c, y.shape[-2], y.shape[-1])
        if self.bias is not None:
            # Added on the channel-last axis with the parameter itself (no view of it), so
            # the int8 exporters find the bias as the parameter, stored once.
            y = (y.permute(0, 2, 3, 1) + self.bias).permute(0, 3, 1, 2)
        return self._act(y)

    def _forward_dilated_nhwc(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        (ph, pw), (dh, dw), (sh, _) = self.padding, self.dilation, self.stride
        t = x.permute(0, 2, 3, 1).reshape(n, 1, h, w * c)  # NHWC viewed as (N, 1, H, W·C)
        t = F.conv2d(t, self.weight, None, (sh, 1), (ph, pw * c), (dh, dw * c))
        ho, woc = t.shape[-2], t.shape[-1]
        t = t.reshape(n, ho, woc // c, c)  # (N, H', W', C)
        if self.bias is not None:
            t = t + self.bias
        t = self._act(t)
        return t.permute(0, 3, 1, 2)  # (N, C, H', W')

class SharedConv2d(_SharedConvBase):
    """Conv with one K×K filter per output channel, shared across all input channels.

    y_o = w_o ⋆ Σ_c x_c + b_o. Parameters: ``weight`` (C_out, 1, K, K) float32 and
    ``bias`` (C_out,) float32: C_out·K² weights (+ C_out biases).

    The training form is an ordinary conv with the filter broadcast over C_in (no copy).
    The deploy form sums the input channels first and convolves one channel, so the
    stored weight is exactly the C_out·K² shared values and the MACs drop by C_in.

    Shapes:
        x: (N, C_in, H, W) float32 → (N, C_out, H', W') float32.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        bias: bool = True,
        activation: str | None = None,
    ) -> None:
        super().__init__(in_channels, out_channels, (out_channels, 1), kernel_size, stride,
                         padding, dilation, bias, activation, groups=1)
        # The channel sum as a 1×1 conv with all-ones weights (exact in int8: 127 at scale
        # 1/127), not a SUM op: TFLM's int8 SUM rescales with an integer multiplier and
        # TFLite's reference SUM in float, so the two disagreed by up to 4 LSB downstream,
        # while CONV_2D has one integer requantization in every runtime.
        self.register_buffer("channel_sum", torch.ones(1, in_channels, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.deploy:
            s = F.conv2d(x, self.channel_sum)  # (N, 1, H, W): Σ_c x_c
            y = F.conv2d(s, self.weight, self.bias, self.stride, self.padding, self.dilation)
        else:
            y = F.conv2d(x, self._broadcast_weight(), self.bias, self.stride, self.padding,
                         self.dilation)
        return self._act(y)

class SharedLinear(nn.Module):
    """Rank-1 linear layer: one weight vector shared by all outputs.

    y_o = s_o · (v · x) + b_o. Parameters: ``weight`` v (1, in_features), ``scale``
    s (out_features, 1) and ``bias`` b (out_features,): in + 2·out parameters. The
    shapes are the ones ``F.linear`` takes, so the deploy graph reads the parameters
    with no reshape in between (a reshape before the quantizer would keep them float
    in the ONNX file).

    The deploy form is two ordinary linears, (in → 1, no bias) then (1 → out, weight s,
    bias b), so both quantize with standard int8 FULLY_CONNECTED kernels.

    Shapes:
        x: (N, in_features) float32 → (N, out_features) float32.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.deploy = False
        self.weight = nn.Parameter(torch.empty(1, in_features))
        self.scale = nn.Parameter(torch.empty(out_features, 1))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.in_features)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.scale, -1.0, 1.0)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, deploy={self.deploy}"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = F.linear(x, self.weight)  # (N, 1) = v · x
        if self.deploy:
            return F.linear(z, self.scale, self.bias)  # (N, out)
        y = z * self.scale.t()  # (N, out), broadcast multiply: no (out, in) matrix
        return y + self.bias if self.bias is not None else y

    def unshared_twin(self) -> nn.Linear:
        """An ``nn.Linear`` whose weight is the rank-1 outer product s vᵀ."""
        lin = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None)
        with torch.no_grad():
            lin.weight.copy_(self.scale @ self.weight)
            if self.bias is not None:
                lin.bias.copy_(self.bias)
        return lin


_SHARED_TYPES = (SharedDepthwiseConv2d, SharedConv2d, SharedLinear)


def switch_to_deploy(model: nn.Module, deploy: bool = True) -> nn.Module:
    """Switch every shared layer in ``model`` to its deploy (or training) form in place.

    No parameter is copied; the same ``Parameter`` objects serve both forms.

    Returns:
        The same ``model``, for chaining.
    """
    for m in model.modules():
        if isinstance(m, _SHARED_TYPES):
            m.deploy = deploy
    return model
