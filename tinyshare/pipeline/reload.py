"""Loading a completed stage back from an earlier run folder (resume).

Each ``load_*`` copies the earlier stage folder (already checked against its manifest by
``tinyshare.pipeline.resume``) into the new run and rebuilds the stage's in-memory result
from the copied files, with no unpickling:

* TRAIN: the state_dicts with ``torch.load(weights_only=True)``, ``metrics.json``;
* QUANTIZE: ``weights_int8.npz`` and ``int8_test_outputs.npy`` (``allow_pickle=False``),
  ``quantization.json``. The PT2E graph is not stored, so the loaded ``QuantizedModel``
  has ``graph = None``: it is reused only together with EXPORT, its one reader;
* EXPORT: the file paths, and ``lut.json`` with ``[cluster]``;
* VALIDATE: ``validation.json``, validated back into ``ValidationResult`` by pydantic.

Paths recorded inside an earlier run's JSON point into that run's staging folder
(``.<name>.partial-<pid>/``); they are moved onto the new run's folder.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from tinyshare.config import RunConfig
    from tinyshare.data import DataSplits
    from tinyshare.pipeline.steps import ExportedModels, QuantizedPair, TrainedModel
    from tinyshare.pipeline.validate import ValidationResult

__all__ = ["load_exported", "load_quantized", "load_trained", "load_validation"]


def _reroot(obj, run_name: str, root: Path):
    """``obj`` (parsed JSON) with every path inside an earlier staging folder of
    ``run_name`` (``.../.<run_name>.partial-<pid>/...``) moved under ``root``, the new run's
    staging folder, wherever it stands in a string (a command line, an error message)."""
    # a path token: starts the string or follows a space, quote, '=' or '('
    pattern = re.compile(rf"(?<![^\s'\"=(])(?:[^\s'\"=(]*/)?\.{re.escape(run_name)}"
                         rf"\.partial-\d+(?=/)")
    if isinstance(obj, dict):
        return {k: _reroot(v, run_name, root) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_reroot(v, run_name, root) for v in obj]
    if isinstance(obj, str):  # an absolute path stays absolute, a relative one relative
        return pattern.sub(lambda m: str(root.absolute() if m[0].startswith("/") else root),
                           obj)
    return obj


def _read_json(path: Path, run_name: str, root: Path):
    return _reroot(json.loads(path.read_text()), run_name, root)


def load_trained(cfg: RunConfig, splits: DataSplits, src: Path, out: Path) -> TrainedModel:
    """Copy the reusable ``src`` train folder to ``out`` and rebuild its ``TrainedModel``.

    Raises:
        ModelFileError: a state_dict does not load into the configured model.
    """
    import torch

    from tinyshare.errors import ModelFileError
    from tinyshare.models.sharing import sharing_groups, unique_parameters, unshared_twin
    from tinyshare.models.zoo import build_model
    from tinyshare.pipeline.clustering import ClusterSummary
    from tinyshare.pipeline.steps import TrainedModel
    from tinyshare.pipeline.train import TrainResult

    shutil.copytree(src, out)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model.name, input_shape=splits.input_shape,
                        num_classes=splits.num_classes, width=cfg.model.width)
    twin = unshared_twin(model)
    for m, name in ((model, "model_state_dict.pt"), (twin, "twin_state_dict.pt")):
        try:
            m.load_state_dict(torch.load(out / name, weights_only=True))
        except (RuntimeError, OSError, ValueError) as exc:
            raise ModelFileError(f"{out / name}: does not load into {cfg.model.name}: "
                                 f"{str(exc).splitlines()[0]}") from None
        m.eval()
    meta = json.loads((out / "metrics.json").read_text())
    metrics, twin_metrics = (TrainResult(**meta["metrics"]), TrainResult(**meta["twin_metrics"]))

    def summary(d: dict | None, after: TrainResult) -> ClusterSummary | None:
        if d is None:
            return None
        return ClusterSummary(k=d["k"], per_channel=d["per_channel"], tensors=tuple(d["tensors"]),
                              skipped=tuple(d["skipped"]),
                              test_accuracy_before=d["test_accuracy_before"],
                              test_accuracy_kmeans=d["test_accuracy_kmeans"], after=after)

    return TrainedModel(
        model=model, twin=twin, metrics=metrics, twin_metrics=twin_metrics,
        unique_params=unique_parameters(model), twin_params=unique_parameters(twin),
        sharing_groups=tuple(sharing_groups(model)), state_dict_path=out / "model_state_dict.pt",
        cluster=summary(meta["cluster"], metrics),
        twin_cluster=summary(meta["twin_cluster"], twin_metrics))


def load_quantized(src: Path, out: Path) -> QuantizedPair:
    """Copy the reusable ``src`` quantize folder to ``out`` and rebuild its ``QuantizedPair``
    without the PT2E graphs (``shared.graph`` and ``twin`` are None).

    Raises:
        KeyError / ValueError: the folder's files do not describe a quantized model.
    """
    from tinyshare.artifacts import QuantizedModel, QuantizedWeight
    from tinyshare.pipeline.steps import QuantizedPair

    shutil.copytree(src, out)
    meta = json.loads((out / "quantization.json").read_text())
    with np.load(out / "weights_int8.npz", allow_pickle=False) as z:
        weights = tuple(
            QuantizedWeight(name=w["name"], values=z[f"{w['name']}.values"],
                            scales=z[f"{w['name']}.scales"],
                            zero_points=z[f"{w['name']}.zero_points"], axis=w["axis"],
                            call_sites=w["call_sites"])
            for w in meta["weights"])
    shared = QuantizedModel(
        graph=None, quantizer=None, example_input=None, weights=weights,
        input_scale=meta["input"]["scale"], input_zero_point=meta["input"]["zero_point"],
        output_scale=meta["output"]["scale"], output_zero_point=meta["output"]["zero_point"],
        per_channel=meta["per_channel"])
    return QuantizedPair(
        shared=shared, twin=None, int8_test_accuracy=meta["int8_test_accuracy_pytorch"],
        int8_test_outputs=np.load(out / "int8_test_outputs.npy", allow_pickle=False),
        method=meta["method"], ptq_test_accuracy=meta["ptq_int8_test_accuracy_pytorch"],
        control_test_accuracy=meta["control_int8_test_accuracy_pytorch"])


def load_exported(src: Path, out: Path, run_name: str) -> ExportedModels:
    """Copy the reusable ``src`` export folder to ``out`` and rebuild its ``ExportedModels``
    (``lut`` from ``lut.json`` when the run clusters).

    Raises:
        pydantic.ValidationError: ``lut.json`` does not describe a ``LutExport``.
    """
    from pydantic import TypeAdapter

    from tinyshare.export.lut import LutExport
    from tinyshare.pipeline.steps import EXPORT_FILES, ExportedModels

    shutil.copytree(src, out)
    lut = None
    if (out / "lut.json").is_file():
        lut = TypeAdapter(LutExport).validate_python(
            _read_json(out / "lut.json", run_name, out.parent))
    return ExportedModels(**{k: out / rel for k, rel in EXPORT_FILES.items()}, lut=lut)


def load_validation(src: Path, out: Path, run_name: str) -> ValidationResult:
    """Copy the reusable ``src`` validate folder to ``out`` and rebuild its
    ``ValidationResult`` from ``validation.json``.

    Raises:
        pydantic.ValidationError: ``validation.json`` does not describe a
            ``ValidationResult``.
    """
    from tinyshare.pipeline.validate import validation_from_json

    shutil.copytree(src, out)
    return validation_from_json(_read_json(out / "validation.json", run_name, out.parent))
