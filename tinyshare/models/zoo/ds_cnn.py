"""``ds_cnn``: MLPerf Tiny's keyword-spotting DS-CNN with shared depthwise filters.

Reference (MLPerf Tiny v1.0 KWS, "DS-CNN small"): input 49×10×1 MFCC features, 12 classes,
about 53 K int8 weights:

    stem    Conv2d(1→W, 10×4, stride 2, pad (5, 1)) + BN + ReLU   25×5×W
    blocks  4 × [depthwise 3×3 + BN + ReLU, pointwise 1×1 (W→W) + BN + ReLU]
    head    global average pool → Linear(W→classes)

Here every depthwise conv is a ``SharedDepthwiseConv2d`` (one 3×3 filter for all W
channels, stride 1, so the NHWC dilated deploy form applies and the .tflite has no
TRANSPOSE), and with ``reuse_blocks`` (default) one DS block is called at all four depths
(``Repeat``), storing its weights once. Two changes from the reference keep that
trainable, both measured on the digits (tiny config, 10 epochs):

* the blocks carry no BatchNorm: a BN scale folded into a filter shared across channels
  would un-share it, and one BN called at four depths keeps running statistics that fit
  none of them (its eval-mode accuracy fell to chance, 9.8 %, at a training loss of 0.8);
  BN stays after the stem, which is called once and folds into it;
* each block is residual, ``x + pw(dw(x))``: without it the four reused blocks damp the
  input until the pooled features no longer depend on it (chance accuracy); with it,
  82 % against 73 % for the unshared twin.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tinyshare.models.layers import SharedDepthwiseConv2d
from tinyshare.models.sharing import Repeat


class DSBlock(nn.Module):
    """Shared depthwise 3×3 + ReLU, pointwise 1×1, + skip, ReLU. (N, C, H, W) → (N, C, H, W)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.dw = SharedDepthwiseConv2d(channels, 3, padding=1, activation="relu")
        self.pw = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.pw(self.dw(x)))


class DSCNN(nn.Module):
    """See the module docstring. Inputs (N, C, H, W) float32; ``width`` is W (64 in MLPerf)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 12, width: int = 64,
                 reuse_blocks: bool = True, depth: int = 4) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_channels, width, (10, 4), stride=2, padding=(5, 1))
        self.stem_bn = nn.BatchNorm2d(width)
        if reuse_blocks:
            self.blocks = Repeat(DSBlock(width), times=depth)
        else:
            self.blocks = nn.Sequential(*(DSBlock(width) for _ in range(depth)))
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem_bn(self.stem(x)))  # (N, W, H/2, W'/2)
        x = self.blocks(x)
        x = x.mean((2, 3))  # (N, W)
        return self.head(x)  # (N, classes)
