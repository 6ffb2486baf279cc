"""The stage functions: frozen artifacts in, one frozen artifact out, one folder each."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tinyshare.artifacts import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_npy,
    atomic_write_npz,
    write_manifest,
)
from tinyshare.config import RunConfig
from tinyshare.data.splits import DataSplits
from tinyshare.pipeline.clustering import ClusterSummary, cluster_and_finetune
from tinyshare.pipeline.quantization import (
    deploy_copy,
    layer_overrides,
    qat_baselines,
    quantize_one,
)
from tinyshare.pipeline.train import Progress, TrainResult, relabel, top1, train_model
from tinyshare.artifacts.models import QuantizedModel

if TYPE_CHECKING:
    import torch

    from tinyshare.export.lut import LutExport


@dataclass(frozen=True)
class TrainedModel:
    """The trained shared model and its unshared twin.

    Attributes:
        model: the weight-shared ``torch.nn.Module`` (training form).
        twin: the same topology with independent weights: ``unshared_twin`` of the
            shared model at initialisation, then trained on its own with the same seed
            and schedule (so its copies of a reused block diverge, as they would in a
            real unshared model, and no exporter can deduplicate them).
        metrics / twin_metrics: float top-1 accuracies (after clustering, when on).
        unique_params / twin_params: stored parameter elements, each counted once.
        cluster / twin_cluster: what codebook clustering did (``[cluster]``), else None.
    """

    model: torch.nn.Module
    twin: torch.nn.Module
    metrics: TrainResult
    twin_metrics: TrainResult
    unique_params: int
    twin_params: int
    sharing_groups: tuple
    state_dict_path: Path
    cluster: ClusterSummary | None = None
    twin_cluster: ClusterSummary | None = None


@dataclass(frozen=True)
class QuantizedPair:
    """The int8 shared model and the int8 twin, with host PyTorch int8 accuracy.

    ``int8_test_outputs``: (N_test, K) float32, the shared int8 PyTorch model's dequantized
    outputs on the whole test split (saved as ``quantize/int8_test_outputs.npy``). ``twin``
    is None when the pair was loaded back from a run folder (``pipeline.reload``): only the
    exporters read it.
    """

    shared: QuantizedModel
    twin: QuantizedModel | None
    int8_test_accuracy: float
    int8_test_outputs: np.ndarray
    method: str = "ptq"
    ptq_test_accuracy: float | None = None  # with QAT: PTQ of the same float model
    # with QAT: the float model fine-tuned for as long as QAT, without fake quant, then
    # PTQ: separates what quantization-aware training buys from what more training buys
    control_test_accuracy: float | None = None


# ExportedModels field → file in the export stage folder
EXPORT_FILES = {
    "tflite_int8": "model_int8.tflite",
    "onnx_int8": "model_int8.onnx",
    "tflite_float": "model_float.tflite",
    "onnx_float": "model_float.onnx",
    "twin_tflite_int8": "twin/model_int8.tflite",
    "twin_onnx_int8": "twin/model_int8.onnx",
    "tflite_int8_stripped": "model_int8_nonames.tflite",
}


@dataclass(frozen=True)
class ExportedModels:
    """Paths of every exported file (float + int8, shared + twin).

    ``lut``: with ``[cluster]``, the TFLM LUT-compressed copies of the int8 .tflite and of
    its copy without tensor names (``model_int8_lut.tflite``,
    ``model_int8_nonames_lut.tflite``) and the measured choice of tensors; else None.
    """

    tflite_int8: Path
    onnx_int8: Path
    tflite_float: Path
    onnx_float: Path
    twin_tflite_int8: Path
    twin_onnx_int8: Path
    tflite_int8_stripped: Path
    lut: LutExport | None = None


def train_stage(
    cfg: RunConfig, splits: DataSplits, out: Path, progress: Progress | None = None,
    key: str = "",
) -> TrainedModel:
    """Build the configured zoo model, train it (and its twin), cluster both when
    ``[cluster]`` is set, and save the state_dicts. ``key`` (``resume.stage_keys``) goes into
    the manifest's inputs, so a later run with the same inputs can reuse the stage."""
    import torch

    from tinyshare.models.sharing import sharing_groups, unique_parameters, unshared_twin
    from tinyshare.models.zoo import build_model

    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model.name, input_shape=splits.input_shape,
                        num_classes=splits.num_classes, width=cfg.model.width)
    twin = unshared_twin(model)
    metrics = train_model(model, splits, cfg.train, cfg.seed, progress)
    twin_metrics = train_model(
        twin, splits, cfg.train, cfg.seed,
        relabel(progress, "train twin"))
    cluster = twin_cluster = None
    if cfg.cluster is not None:
        cluster = cluster_and_finetune(model, metrics, cfg.cluster, cfg.train.batch_size,
                                       splits, cfg.seed, progress, "cluster")
        twin_cluster = cluster_and_finetune(twin, twin_metrics, cfg.cluster,
                                            cfg.train.batch_size, splits, cfg.seed, progress,
                                            "cluster twin")
        metrics, twin_metrics = cluster.after, twin_cluster.after
    out.mkdir(parents=True, exist_ok=True)
    sd_path = out / "model_state_dict.pt"
    for m, path in ((model, sd_path), (twin, out / "twin_state_dict.pt")):
        buf = io.BytesIO()  # torch.save reports a full disk as RuntimeError; write it ourselves
        torch.save(m.state_dict(), buf)
        atomic_write_bytes(path, buf.getvalue())
    groups = tuple(sharing_groups(model))
    result = TrainedModel(
        model=model, twin=twin, metrics=metrics, twin_metrics=twin_metrics,
        unique_params=unique_parameters(model), twin_params=unique_parameters(twin),
        sharing_groups=groups, state_dict_path=sd_path, cluster=cluster,
        twin_cluster=twin_cluster,
    )
    atomic_write_json(out / "metrics.json", {
        "model": cfg.model.name, "metrics": metrics, "twin_metrics": twin_metrics,
        "unique_params": result.unique_params, "twin_params": result.twin_params,
        "sharing_groups": groups,
        "cluster": cluster.as_dict() if cluster else None,
        "twin_cluster": twin_cluster.as_dict() if twin_cluster else None,
    })
    write_manifest(out, stage="train", inputs={
        "key": key, "train": cfg.train.model_dump(), "model": cfg.model.model_dump(),
        "cluster": cfg.cluster.model_dump() if cfg.cluster else None},
        seconds=time.perf_counter() - t0, seed=cfg.seed)
    return result


def quantize_stage(
    cfg: RunConfig, trained: TrainedModel, splits: DataSplits, out: Path,
    progress: Progress | None = None, key: str = "",
) -> QuantizedPair:
    """int8 quantization (PTQ, or QAT then convert: ``quantize.method``) of the shared model
    and of its twin, with the same calibration split or fine-tuning schedule. ``key``
    (``resume.stage_keys``) goes into the manifest's inputs."""
    t0 = time.perf_counter()
    shared = quantize_one(cfg, trained.model, splits, False, progress)
    twin = quantize_one(cfg, trained.twin, splits, True, progress)
    outputs = shared.run(splits.x_test)
    acc = top1(outputs, splits.y_test)
    ptq_acc = control_acc = None
    if cfg.quantize.method == "qat":
        ptq_acc, control_acc = qat_baselines(cfg, trained.model, splits, progress)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_npz(out / "weights_int8.npz", **{
        f"{w.name}.{part}": getattr(w, part)
        for w in shared.weights for part in ("values", "scales", "zero_points")
    })
    atomic_write_npy(out / "int8_test_outputs.npy", outputs)
    atomic_write_json(out / "quantization.json", {
        "method": cfg.quantize.method,
        "qat": cfg.quantize.qat.model_dump() if cfg.quantize.method == "qat" else None,
        "per_channel": shared.per_channel,
        "layers": {k: v.model_dump() for k, v in cfg.quantize.layers.items()},
        # the twin's copies of a reused block are named apart: overrides of such a block
        # reach only the shared model, and the twin keeps the global setting there
        "twin_layers": layer_overrides(cfg, trained.twin),
        "int8_test_accuracy_pytorch": acc,
        "ptq_int8_test_accuracy_pytorch": ptq_acc,
        "control_int8_test_accuracy_pytorch": control_acc,
        "input": {"scale": shared.input_scale, "zero_point": shared.input_zero_point},
        "output": {"scale": shared.output_scale, "zero_point": shared.output_zero_point},
        "weights": [{"name": w.name, "shape": list(w.values.shape), "axis": w.axis,
                     "scales": len(w.scales), "call_sites": w.call_sites}
                    for w in shared.weights],
    })
    write_manifest(out, stage="quantize", inputs={"key": key,
                   "quantize": cfg.quantize.model_dump(),
                   "calib_samples": int(len(splits.x_calib))},
                   seconds=time.perf_counter() - t0, seed=cfg.seed)
    return QuantizedPair(shared=shared, twin=twin, int8_test_accuracy=acc,
                         int8_test_outputs=outputs,
                         method=cfg.quantize.method, ptq_test_accuracy=ptq_acc,
                         control_test_accuracy=control_acc)


def export_stage(
    cfg: RunConfig, trained: TrainedModel, quantized: QuantizedPair, out: Path,
    progress: Progress | None = None, key: str = "",
) -> ExportedModels:
    """Write the four model files, the twin's int8 files for the sharing report, the int8
    .tflite without tensor names for boards that ask for it (``strip_tensor_names``) and,
    with ``[cluster]``, TFLM LUT-compressed copies of both int8 .tflite files. ``key``
    (``resume.stage_keys``) goes into the manifest's inputs."""
    from tinyshare.export.onnx import export_onnx_float, export_onnx_int8
    from tinyshare.export.strip import strip_tensor_names
    from tinyshare.export.tflite import export_tflite_float, export_tflite_int8

    t0 = time.perf_counter()
    example = quantized.shared.example_input
    float_model = deploy_copy(trained.model)
    jobs = {
        "tflite_int8": lambda p: export_tflite_int8(quantized.shared, p),
        "onnx_int8": lambda p: export_onnx_int8(quantized.shared, p),
        "tflite_float": lambda p: export_tflite_float(float_model, example, p),
        "onnx_float": lambda p: export_onnx_float(float_model, example, p),
        "twin_tflite_int8": lambda p: export_tflite_int8(quantized.twin, p),
        "twin_onnx_int8": lambda p: export_onnx_int8(quantized.twin, p),
        "tflite_int8_stripped": lambda p: strip_tensor_names(paths["tflite_int8"], p).path,
    }
    paths = {}
    total = len(jobs) + (cfg.cluster is not None)
    for i, (name, fn) in enumerate(jobs.items()):
        paths[name] = fn(out / EXPORT_FILES[name])
        if progress:
            progress("export", i + 1, total)
    formats = list(EXPORT_FILES.values())
    lut = None
    if cfg.cluster is not None:
        from tinyshare.export.lut import write_lut_copies

        lut = write_lut_copies(paths["tflite_int8"], paths["tflite_int8_stripped"],
                               out / "model_int8_lut.tflite",
                               out / "model_int8_nonames_lut.tflite", cfg.cluster.k)
        atomic_write_json(out / "lut.json", lut)
        formats += [c.path.name for c in (lut.named, lut.stripped) if c is not None]
        if progress:
            progress("export", total, total)
    write_manifest(out, stage="export", inputs={"key": key, "formats": formats},
                   seconds=time.perf_counter() - t0, seed=cfg.seed)
    return ExportedModels(**paths, lut=lut)
