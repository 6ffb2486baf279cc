"""``mobilenet_v1_025``: MobileNet v1 (α = 0.25) for visual wake words, shared depthwise filters.

Reference (MLPerf Tiny v1.0 VWW): input 96×96×3 (here 1 or 3 channels), 2 classes, about
208 K int8 weights (≈ 325 KB int8 model). ``width`` is the stem's channel count (8 at
α = 0.25); layer i has ``width · m_i`` channels with MobileNet v1's multipliers
m = 1, 2, 4, 4, 8, 8, 16 ×6, 32, 32:

    stem    Conv2d(C→W, 3×3, stride 2) + BN + ReLU
    13 ×    depthwise 3×3 (stride 1 or 2), pointwise 1×1 + BN + ReLU
    head    global average pool → Linear(32W→classes)

Every depthwise conv is a ``SharedDepthwiseConv2d``: one 3×3 filter for all its channels.
The stride-1 ones use the TRANSPOSE-free NHWC deploy form; the four stride-2 ones fall back
to the reshape form, which costs two TRANSPOSE ops each in the .tflite. BatchNorm is left
out after the shared depthwise convs (a BN scale folded into a filter shared across
channels would un-share it) and kept after the stem and every pointwise conv, where it folds.

One change from the reference: the shared depthwise conv has no ReLU after it. With the
ReLU, a filter shared across channels cannot scale channels apart before the clamp (an
ordinary depthwise conv + BN can), and the model trained far worse than its twin; without
it, depthwise and pointwise are one linear map per block and the pointwise's BN does the
per-channel scaling. Measured on the digits resized to 96×96, width 2, 10 epochs, lr 0.01:
shared 58.9 % with the ReLU, 84.7 % without (the twin: 95.0 % without).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tinyshare.models.layers import SharedDepthwiseConv2d

# (channel multiplier of the pointwise output, depthwise stride), MobileNet v1's 13 blocks.
_BLOCKS = ((2, 1), (4, 2), (4, 1), (8, 2), (8, 1), (16, 2),
           (16, 1), (16, 1), (16, 1), (16, 1), (16, 1), (32, 2), (32, 1))


class DepthwiseSeparable(nn.Module):
    """Shared depthwise 3×3 (stride s), pointwise 1×1 + BN + ReLU. (N, C_in, H, W) →
    (N, C_out, H/s, W/s)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.dw = SharedDepthwiseConv2d(in_channels, 3, stride=stride, padding=1)
        self.pw = nn.Conv2d(in_channels, out_channels, 1)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.pw(self.dw(x))))


class MobileNetV1(nn.Module):
    """See the module docstring. Inputs (N, C, H, W) float32 with H, W ≥ 32."""

    def __init__(self, in_channels: int = 1, num_classes: int = 2, width: int = 8) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_channels, width, 3, stride=2, padding=1)
        self.stem_bn = nn.BatchNorm2d(width)
        layers, c = [], width
        for mult, stride in _BLOCKS:
            layers.append(DepthwiseSeparable(c, width * mult, stride))
            c = width * mult
        self.blocks = nn.Sequential(*layers)
        self.head = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem_bn(self.stem(x)))  # (N, W, H/2, W'/2)
        x = self.blocks(x)  # (N, 32W, H/32, W'/32)
        return self.head(x.mean((2, 3)))  # (N, classes)
