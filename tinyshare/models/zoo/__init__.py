"""The model zoo: builders registered by name."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from tinyshare.errors import ConfigError
from tinyshare.registry import Registry

ModelBuilder = Callable[..., nn.Module]
MODELS: Registry[ModelBuilder] = Registry("model", ConfigError)


def _digits_cnn(
    in_channels: int, num_classes: int, width: int, input_hw: tuple[int, int]
) -> nn.Module:
    from tinyshare.models.zoo.digits_cnn import DigitsCNN

    return DigitsCNN(in_channels, num_classes, width, input_hw)


def _ds_cnn(in_channels: int, num_classes: int, width: int, input_hw: tuple[int, int]) -> nn.Module:
    from tinyshare.models.zoo.ds_cnn import DSCNN

    return DSCNN(in_channels, num_classes, width)


def _resnet8(in_channels: int, num_classes: int, width: int, input_hw: tuple[int, int]) -> nn.Module:
    from tinyshare.models.zoo.resnet8 import ResNet8

    return ResNet8(in_channels, num_classes, width)


def _mobilenet_v1_025(
    in_channels: int, num_classes: int, width: int, input_hw: tuple[int, int]
) -> nn.Module:
    from tinyshare.models.zoo.mobilenet_v1 import MobileNetV1

    if min(input_hw) < 32:
        raise ConfigError(f"model mobilenet_v1_025: input {input_hw[0]}x{input_hw[1]} is too "
                          "small; expected at least 32x32 (5 stride-2 stages), e.g. "
                          "data.input_hw = [96, 96]")
    return MobileNetV1(in_channels, num_classes, width)


MODELS.register("digits_cnn", _digits_cnn)
MODELS.register("ds_cnn", _ds_cnn)
MODELS.register("resnet8", _resnet8)
MODELS.register("mobilenet_v1_025", _mobilenet_v1_025)


# MLPerf Tiny v0.5 reference models, int8 (TFLite): "DS-CNN ... 53KB", "325KB MobileNet",
# "ResNet ... 96KB of parameters" (L. Gwennap, "MLPerf Gets Tiny", Linley Newsletter,
# 2021-08-03, https://linleygroup.com/newsletters/newsletter_detail.php?num=6344&year=2021&tag=3;
# the suite: C. Banbury et al., "MLPerf Tiny Benchmark", arXiv:2106.07597).
_MLPERF_TINY_SOURCE = ("https://linleygroup.com/newsletters/newsletter_detail.php?"
                       "num=6344&year=2021&tag=3")
_MLPERF_TINY = {"ds_cnn": ("KWS DS-CNN", 53_000), "resnet8": ("IC ResNet-8", 96_000),
                "mobilenet_v1_025": ("VWW MobileNet v1 0.25", 325_000)}


def reference_size(name: str) -> dict | None:
    """The MLPerf Tiny reference model a zoo model stands in for, or None.

    Returns:
        ``{"benchmark", "int8_model_bytes", "label", "source"}``: the reference's int8
        model size as published (about; decimal KB), with its source URL.
    """
    if name not in _MLPERF_TINY:
        return None
    bench, nbytes = _MLPERF_TINY[name]
    return {"benchmark": bench, "int8_model_bytes": nbytes,
            "label": f"{bench} ≈ {nbytes // 1000} KB", "source": _MLPERF_TINY_SOURCE}


def build_model(
    name: str, *, input_shape: tuple[int, int, int], num_classes: int, width: int
) -> nn.Module:
    """Build a zoo model (its weight-shared form) for inputs ``(N, C, H, W)``.

    Raises:
        ConfigError: unknown model name (the message lists the known ones).
    """
    builder = MODELS.get(name)
    c, h, w = input_shape
    return builder(in_channels=c, num_classes=num_classes, width=width, input_hw=(h, w))
