"""Run configuration: a typed, validated schema loaded from TOML, with typed ``--set`` overrides.

Every error names the field and the bad value in one line (``ConfigError``).
"""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationError,
    model_validator,
)

from tinyshare.errors import ConfigError

CONFIG_SCHEMA_VERSION = 1

_Strict = ConfigDict(extra="forbid", frozen=True, strict=True)


class DataConfig(BaseModel):
    """Where the data comes from and how it is split (fixed, seeded)."""

    model_config = _Strict
    source: Literal["digits", "npz"] = "digits"
    path: str | None = Field(None, description="npz file when source = 'npz'")
    test_fraction: float = Field(0.2, gt=0.0, lt=0.5)
    val_fraction: float = Field(0.15, gt=0.0, lt=0.5)
    calib_samples: PositiveInt = 256
    input_hw: list[PositiveInt] | None = Field(
        None, min_length=2, max_length=2, description="resize every sample to H x W "
        "(bilinear), e.g. the bundled 8x8 digits to a zoo model's input such as [49, 10] "
        "or [96, 96]; None keeps the data's size")
    channels: PositiveInt | None = Field(
        None, description="channels per sample; 1-channel data is repeated to this many "
        "(e.g. 3 for a model with RGB input on the grey digits); None keeps the data's channels")


class ModelConfig(BaseModel):
    model_config = _Strict
    name: str = "digits_cnn"
    width: PositiveInt = 16
    shared: bool = True


class TrainConfig(BaseModel):
    model_config = _Strict
    epochs: PositiveInt = 30
    batch_size: PositiveInt = 64
    lr: float = Field(0.01, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)


class QatConfig(BaseModel):
    """Fine-tuning schedule of ``quantize.method = "qat"`` (Adam, cosine decay)."""

    model_config = _Strict
    epochs: PositiveInt = 3
    lr: float = Field(1e-3, gt=0.0)
    batch_size: PositiveInt = 64


class LayerQuantizeConfig(BaseModel):
    """Per-module override of the weight quantization (``quantize.layers."<module>"``)."""

    model_config = _Strict
    per_channel: bool | None = None


class QuantizeConfig(BaseModel):
    model_config = _Strict
    per_channel: bool = True
    method: Literal["ptq", "qat"] = Field(
        "ptq", description="ptq: calibrate the trained model; qat: fine-tune it with fake "
        "int8 quantization first (quantize.qat), then convert")
    qat: QatConfig = QatConfig()
    layers: dict[str, LayerQuantizeConfig] = Field(
        default_factory=dict, description="per-module overrides by module name; every "
        "module that reads a shared weight must get the same setting")


class ValidationConfig(BaseModel):
    model_config = _Strict
    tolerance_lsb: int = Field(1, ge=0)
    max_samples: int = Field(0, ge=0, description="0 = the whole test split")
    emulate: bool = Field(False, description="also run each Linux board's runtimes under "
                          "qemu-user from its device image")
    emulate_timeout_s: float = Field(600.0, gt=0.0, description="limit per emulated run")
    max_accuracy_drop_points: float = Field(
        1.5, ge=0.0, le=100.0, description="a board FAILs when any of its int8 runtimes' "
        "top-1 is more than this many points below the float PyTorch top-1")
    min_top1: float = Field(
        0.0, ge=0.0, le=1.0, description="a board FAILs when any of its int8 runtimes' "
        "top-1 (a fraction in [0, 1]) is below this; 0 = no floor")
    codegen: Literal["auto", "on", "off"] = Field(
        "auto", description="generate C from the int8 .tflite for every bare-metal board "
        "whose core the code generator supports, build it with arm-none-eabi-gcc and run the "
        "validation samples under qemu-system-arm (must be bit-identical with TFLM): auto = "
        "when both tools are on PATH (otherwise the report says why not), on = a missing "
        "tool is an error, off = never. Each board's run is bounded by emulate_timeout_s")


class ClusterConfig(BaseModel):
    """Codebook (k-means) clustering of the trained weights (``[cluster]``; absent = none).

    After training, every conv / linear weight with at least ``min_elements`` elements is
    replaced by k centroids (per output channel or per tensor) and fine-tuned with the
    assignment fixed (``tinyshare.quantize.cluster``). ``k`` must stay equal to
    ``tinyshare.quantize.cluster.ALLOWED_K`` (a test holds them equal; config is imported
    below the quantize package, so it cannot import it).
    """

    model_config = _Strict
    k: Literal[4, 8, 16, 32] = Field(
        description="centroids per output channel (or per tensor); the TFLM LUT index "
        "width is ceil(log2(k)) bits")
    per_channel: bool = True
    epochs: PositiveInt = Field(3, description="fine-tuning epochs with the assignment fixed")
    lr: float = Field(1e-3, gt=0.0, description="fine-tuning learning rate (Adam, cosine)")
    min_elements: PositiveInt = Field(
        64, description="weights with fewer elements are left unclustered")
    lut: Literal["auto", "always"] = Field(
        "auto", description="when a TFLM board flashes the LUT-compressed copy: auto = only "
        "when the model bytes it saves exceed TFLM's tensor-decompression code it needs "
        "(estimate); always = whenever the file is smaller (the firmware links that code "
        "anyway)")


class RunConfig(BaseModel):
    """The whole run. ``name`` names the folder ``runs/<name>/``."""

    model_config = _Strict
    schema_version: Literal[1] = CONFIG_SCHEMA_VERSION
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    seed: int = Field(0, ge=0, le=2**31 - 1)
    output_dir: str = "runs"
    boards: list[str] = ["rpi4b", "stm32f746g-disco", "nano33-ble-sense"]
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    quantize: QuantizeConfig = QuantizeConfig()
    validation: ValidationConfig = ValidationConfig()
    cluster: ClusterConfig | None = Field(
        None, description="codebook clustering after training; absent = no clustering")

    @model_validator(mode="after")
    def _cluster_needs_ptq(self) -> RunConfig:
        if self.cluster is not None and self.quantize.method == "qat":
            raise ValueError(
                "[cluster] with quantize.method = \"qat\": QAT fine-tunes every weight after "
                "clustering and would break the codebook; use quantize.method = \"ptq\" with "
                "[cluster], or drop [cluster]")
        return self

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.name

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _format_error(source: str, err: ValidationError) -> str:
    first = err.errors()[0]
    if first["type"] == "value_error" and not first["loc"]:  # a check across fields
        return f"{source}: {first['msg'].removeprefix('Value error, ')}"
    field = ".".join(str(p) for p in first["loc"]) or "(top level)"
    if first["type"] == "extra_forbidden":
        return f"{source}: unknown key '{field}'"
    if first["type"] == "missing":
        return f"{source}: missing required key '{field}'"
    return f"{source}: field '{field}': {first['msg']}, got {first.get('input')!r}"


def _parse_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw  # a bare string


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides (values parsed as TOML, else as strings).

    Raises:
        ConfigError: a malformed override or a key that does not exist in the schema.
    """
    out = copy.deepcopy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. train.epochs=5")
        parts = key.strip().split(".")
        node: Any = RunConfig
        for part in parts:
            fields = getattr(node, "model_fields", None)
            if fields is None or part not in fields:
                raise ConfigError(f"--set {item!r}: unknown key '{key.strip()}'")
            node = fields[part].annotation
            args = get_args(node)
            if type(None) in args:  # an optional section, e.g. ``cluster: ClusterConfig | None``
                node = next((a for a in args if a is not type(None)), node)
        target = out
        for part in parts[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ConfigError(f"--set {item!r}: '{part}' is not a table")
        target[parts[-1]] = _parse_value(raw.strip())
    return out


def load_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Load and validate a run config.

    Args:
        path: a TOML file.
        overrides: ``["train.epochs=5", ...]``, applied before validation.

    Returns:
        The frozen ``RunConfig``.

    Raises:
        ConfigError: missing or malformed file, unknown key, wrongly typed value.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: not valid TOML ({e})") from None
    data = apply_overrides(data, overrides or [])
    try:
        return RunConfig.model_validate(data)
    except ValidationError as e:
        field = ".".join(str(part) for part in e.errors()[0]["loc"])
        given = [o for o in overrides or [] if o.partition("=")[0].strip() == field]
        raise ConfigError(_format_error(f"--set {given[-1]!r}" if given else str(p), e)) from None
