"""``digits_cnn``: a small weight-shared CNN for 8×8 handwritten digits.

Topology (input (N, 1, 8, 8) float32 → logits (N, 10) float32):

    stem   Conv2d(1→W, 3×3, pad 1) + ReLU            8×8×W
    blocks Repeat(ResidualBlock(W), 2)               one block's weights used at 2 depths
             SharedDepthwiseConv2d(W, 3×3) + ReLU    one 3×3 filter for all W channels
             Conv2d(W→W, 1×1), + skip, ReLU
    pool   MaxPool 2×2                               4×4×W
    head   flatten in NHWC order → Linear(16·W→10)

The flatten is taken in NHWC order (``permute(0, 2, 3, 1)`` first) so the NHWC
TFLite graph needs no TRANSPOSE before its FULLY_CONNECTED.
``SharedConv2d`` sums its input channels, which costs this 1-channel-input model
accuracy wherever it is placed; it is covered by the layer and export tests instead.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tinyshare.models.layers import SharedDepthwiseConv2d
from tinyshare.models.sharing import Repeat


class ResidualBlock(nn.Module):
    """Shared depthwise 3×3 + pointwise 1×1 with a skip. (N, C, H, W) → (N, C, H, W)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.dw = SharedDepthwiseConv2d(channels, 3, padding=1, activation="relu")
        self.pw = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.pw(self.dw(x)) + x)


class DigitsCNN(nn.Module):
    """See the module docstring. ``width`` is W; inputs are (N, C, H, W) with H, W even."""

    def __init__(
        self, in_channels: int = 1, num_classes: int = 10, width: int = 16,
        input_hw: tuple[int, int] = (8, 8),
    ) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_channels, width, 3, padding=1)
        self.blocks = Repeat(ResidualBlock(width), times=2)
        pooled = (input_hw[0] // 2) * (input_hw[1] // 2)
        self.head = nn.Linear(pooled * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem(x))  # (N, W, H, W')
        x = self.blocks(x)
        x = F.max_pool2d(x, 2)  # (N, W, H/2, W'/2)
        x = x.permute(0, 2, 3, 1).flatten(1)  # (N, H/2·W'/2·W), NHWC order
        return self.head(x)  # (N, classes)
