"""Resuming a run: what a new run of the same config may take from an earlier one.

Two things are reused, each only after its files are re-hashed against their manifest:

* **the whole run**, when ``runs/<name>/manifest.json`` records the same run key: the same
  config, boards, last stage, package versions and tinyshare source. The run is then a
  no-op (``up_to_date``);
* **the TRAIN stage** (the expensive one), when an earlier run's ``train/manifest.json``
  records the same train key: the same data (by content), model, training, clustering,
  seed, package versions and tinyshare source. It is taken from the finished run
  ``runs/<name>/`` or from the completed stages an interrupted run left in
  ``runs/.<name>.incomplete/``; the state_dicts load with ``torch.load(weights_only=True)``.

Every later stage (QUANTIZE, EXPORT, VALIDATE, REPORT) runs again: their in-memory results
(the PT2E graphs, the runtime outputs) are not stored in a form that is safe to load back.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from tinyshare.artifacts import package_versions, sha256_file

if TYPE_CHECKING:
    from tinyshare.config import RunConfig
    from tinyshare.data import DataSplits
    from tinyshare.pipeline.steps import TrainedModel

log = logging.getLogger(__name__)

__all__ = ["incomplete_dir", "load_trained", "reusable_train", "run_key", "train_key",
           "up_to_date", "verify_stage"]

_PACKAGE = Path(__file__).resolve().parents[1]


@cache
def code_digest() -> str:
    """SHA-256 over tinyshare's own source files (``*.py``, kernels, schemas), in path order:
    results made by other code are not reused."""
    h = hashlib.sha256()
    for p in sorted(_PACKAGE.rglob("*")):
        if p.is_file() and p.suffix in (".py", ".c", ".h", ".ld", ".json", ".toml"):
            h.update(str(p.relative_to(_PACKAGE)).encode())
            h.update(sha256_file(p).encode())
    return h.hexdigest()


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def data_digest(splits: DataSplits) -> str:
    """SHA-256 of the split arrays (train, val, test, calib: x and y bytes, shapes)."""
    h = hashlib.sha256()
    for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test", "x_calib"):
        a = getattr(splits, name)
        h.update(f"{name}{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def train_key(cfg: RunConfig, splits: DataSplits) -> str:
    """The TRAIN stage's inputs as one hash: data content, model, train, cluster, seed,
    package versions and tinyshare's source."""
    return _digest({"stage": "train", "data": data_digest(splits), "model": cfg.model.model_dump(),
                    "train": cfg.train.model_dump(),
                    "cluster": cfg.cluster.model_dump() if cfg.cluster else None,
                    "seed": cfg.seed, "versions": package_versions(), "code": code_digest()})


def run_key(cfg: RunConfig, until: str, boards: list[str]) -> str:
    """The whole run's inputs as one hash: the config, boards, last stage, package versions
    and tinyshare's source."""
    return _digest({"config": cfg.to_dict(), "boards": boards, "until": until,
                    "versions": package_versions(), "code": code_digest()})


def verify_stage(stage_dir: Path) -> bool:
    """True when ``stage_dir/manifest.json`` exists and every file it lists is present with
    its recorded SHA-256 (a stage without a manifest never completed)."""
    try:
        manifest = json.loads((stage_dir / "manifest.json").read_text())
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    for rel, meta in files.items():
        p = stage_dir / rel
        if not p.is_file() or sha256_file(p) != meta.get("sha256"):
            log.warning("resume: %s differs from its manifest; not reused", p)
            return False
    return True


def incomplete_dir(final: Path) -> Path:
    """``runs/.<name>.incomplete/``: the completed stages of an interrupted run."""
    return final.parent / f".{final.name}.incomplete"


def reusable_train(final: Path, key: str) -> Path | None:
    """An earlier ``train/`` folder with the same train key and intact files, or None.

    Looks in the interrupted run's folder first, then in the finished run.
    """
    for root in (incomplete_dir(final), final):
        d = root / "train"
        try:
            inputs = json.loads((d / "manifest.json").read_text()).get("inputs", {})
        except (OSError, ValueError):
            continue
        if inputs.get("key") == key and verify_stage(d):
            return d
    return None


def up_to_date(final: Path, key: str) -> bool:
    """True when ``final`` is a finished run with the same run key and every file intact
    (each stage folder against its manifest, and the run's ``manifest.json``)."""
    try:
        manifest = json.loads((final / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    if manifest.get("key") != key:
        return False
    for rel, sha in manifest.get("files_sha256", {}).items():
        p = final / rel
        if not p.is_file() or sha256_file(p) != sha:
            return False
    return True


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
