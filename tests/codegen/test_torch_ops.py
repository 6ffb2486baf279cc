"""Kernels against TFLM through our own pipeline pieces: a tiny PyTorch module per op,
``quantize_ptq`` -> ``export_tflite_int8`` -> generated C, bit-exact (0 LSB) with TFLM.

The exported graphs keep NCHW outputs, so most of them end in a TRANSPOSE; a padded,
strided conv becomes PAD + CONV_2D.
"""

from __future__ import annotations

import numpy as np
import pytest


def _modules():
    from torch import nn

    from tinyshare.models.layers import SharedDepthwiseConv2d, switch_to_deploy

    return {
        "conv-dilation2-relu": (nn.Sequential(nn.Conv2d(3, 4, 3, dilation=2, padding=2), nn.ReLU()),
                                (3, 9, 8)),
        "conv-stride2-pad": (nn.Conv2d(3, 5, 3, stride=2, padding=1), (3, 9, 9)),
        "depthwise-multiplier2": (nn.Conv2d(4, 8, 3, groups=4, padding=1), (4, 8, 8)),
        "shared-depthwise-deploy": (switch_to_deploy(SharedDepthwiseConv2d(4, 3, padding=1)),
                                    (4, 6, 6)),
        "maxpool": (nn.MaxPool2d(2), (4, 8, 6)),
        "global-mean": (nn.AdaptiveAvgPool2d(1), (4, 7, 5)),
        "linear": (nn.Linear(24, 7), (24,)),
    }


CASES = ["conv-dilation2-relu", "conv-stride2-pad", "depthwise-multiplier2",
         "shared-depthwise-deploy", "maxpool", "global-mean", "linear"]


@pytest.mark.parametrize("case", CASES)
def test_exported_op_is_bit_exact_with_tflm(case, tmp_path, check_bit_exact):
    import torch

    from tinyshare.export.tflite import export_tflite_int8
    from tinyshare.quantize.ptq import quantize_ptq

    torch.manual_seed(0)
    module, shape = _modules()[case]
    calib = np.random.default_rng(0).standard_normal((16, *shape)).astype(np.float32)
    qm = quantize_ptq(module.eval(), calib)
    tflite = export_tflite_int8(qm, tmp_path / f"{case}.tflite")
    gen, _ = check_bit_exact(tflite, n=64)
    assert set(gen.ops) - {"TRANSPOSE", "PAD", "RESHAPE", "ADD"}, gen.ops
