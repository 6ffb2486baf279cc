"""Resuming a run: what a new run of the same config may take from an earlier one.

Every stage records a key in its manifest: a hash of its inputs. TRAIN's key covers the
data (by content), model, training, clustering and seed; QUANTIZE's is TRAIN's key plus the
quantize settings; EXPORT's is QUANTIZE's; VALIDATE's is EXPORT's plus the boards and the
validation settings that change what runs (not the report-only limits
``max_accuracy_drop_points`` and ``min_top1``) and whether the C check's tools are on PATH.
Each key also covers the package versions and tinyshare's own source.

A new run of a config reuses, each only after its files are re-hashed against their
manifest:

* **the whole run**, when ``runs/<name>/manifest.json`` records the same run key (config,
  boards, last stage, versions, source, C tools): the run is a no-op (``up_to_date``);
* **each stage from TRAIN on whose key matches**, in order, from the completed stages an
  interrupted run left in ``runs/.<name>.incomplete/`` or from the finished ``runs/<name>/``.
  The first stage whose key differs, and every stage after it, run again. DATA and REPORT
  always run (well under a second and a few seconds). QUANTIZE is reused only together with
  EXPORT: its PT2E graph, which only the exporters read, is not stored.

So a changed ``validation.max_samples`` re-runs VALIDATE and REPORT; a changed
``quantize.per_channel`` re-runs QUANTIZE onward; a changed ``validation.min_top1`` re-runs
only REPORT. The stage folders are loaded back by ``tinyshare.pipeline.reload``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from tinyshare.artifacts import package_versions, sha256_file

if TYPE_CHECKING:
    from tinyshare.config import RunConfig
    from tinyshare.data import DataSplits

log = logging.getLogger(__name__)

__all__ = ["REUSABLE_STAGES", "incomplete_dir", "reusable_stage", "reuse_plan", "run_key",
           "stage_keys", "up_to_date", "verify_stage"]

# the stages a run can take from an earlier one, in pipeline order
REUSABLE_STAGES = ("train", "quantize", "export", "validate")
# validation settings that only the REPORT stage reads
_REPORT_ONLY = {"max_accuracy_drop_points", "min_top1"}

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


def _tools() -> dict[str, bool]:
    from tinyshare.pipeline.codegen_check import codegen_tools_on_path

    return codegen_tools_on_path()


def _boards(boards: list) -> list[dict]:
    """The boards' whole profiles (a board file given by path may change under its name)."""
    return [b.model_dump(mode="json") for b in boards]


def stage_keys(cfg: RunConfig, splits: DataSplits, boards: list) -> dict[str, str]:
    """Stage name → the hash of its inputs, for each of ``REUSABLE_STAGES`` (each key
    includes the one before it). ``boards``: the run's ``BoardProfile`` objects."""
    train = _digest({"stage": "train", "data": data_digest(splits),
                     "model": cfg.model.model_dump(), "train": cfg.train.model_dump(),
                     "cluster": cfg.cluster.model_dump() if cfg.cluster else None,
                     "seed": cfg.seed, "versions": package_versions(), "code": code_digest()})
    quantize = _digest({"stage": "quantize", "train": train,
                        "quantize": cfg.quantize.model_dump()})
    export = _digest({"stage": "export", "quantize": quantize})
    validation = cfg.validation.model_dump(exclude=_REPORT_ONLY)
    validate = _digest({"stage": "validate", "export": export, "boards": _boards(boards),
                        "validation": validation, "tools": _tools()})
    return {"train": train, "quantize": quantize, "export": export, "validate": validate}


def run_key(cfg: RunConfig, until: str, boards: list) -> str:
    """The whole run's inputs as one hash: the config, the boards' profiles, last stage,
    package versions, tinyshare's source and whether the C check's tools are on PATH."""
    return _digest({"config": cfg.to_dict(), "boards": _boards(boards), "until": until,
                    "versions": package_versions(), "code": code_digest(), "tools": _tools()})


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


def _environment_failure(stage_dir: Path) -> str | None:
    """Why a VALIDATE stage's results must not be reused although its inputs match, or None.

    A failure of the environment is recorded in the results, not raised (qemu missing, an
    image build that could not reach the registry, a guest or a C run past its time limit,
    a C check skipped): the next run must try again. A device image the results point to
    must still exist (the report reads its runtimes' code sizes).
    """
    try:
        v = json.loads((stage_dir / "validation.json").read_text())
    except (OSError, ValueError):
        return "validation.json unreadable"
    for board, emu in (v.get("emulation") or {}).items():
        if emu.get("error") or not all(c.get("ok") for c in emu.get("checks", ())):
            return f"the emulated run of {board} failed"
        if emu.get("image_manifest") and not Path(emu["image_manifest"]).is_file():
            return f"the device image of {board} is gone"
    for board, c in (v.get("codegen") or {}).items():
        if c.get("error") or c.get("skipped"):
            return f"the generated C of {board} did not run"
    return None


def _reusable(d: Path, key: str) -> bool:
    """``d`` holds a completed stage with ``key`` and intact files (and, for VALIDATE, no
    recorded failure of the environment)."""
    try:
        inputs = json.loads((d / "manifest.json").read_text()).get("inputs", {})
    except (OSError, ValueError, AttributeError):
        return False
    if inputs.get("key") != key or not verify_stage(d):
        return False
    why = _environment_failure(d) if d.name == "validate" else None
    if why:
        log.info("resume: %s not reused: %s", d, why)
    return why is None


def reusable_stage(final: Path, stage: str, key: str) -> Path | None:
    """An earlier ``<stage>/`` folder with the same key and intact files, or None.

    Looks in the interrupted run's folder first, then in the finished run.
    """
    for root in (incomplete_dir(final), final):
        if _reusable(root / stage, key):
            return root / stage
    return None


def reuse_plan(final: Path, keys: dict[str, str], stages: list[str]) -> dict[str, Path]:
    """Stage name → the earlier folder to take it from: the leading run of ``stages`` (in
    ``REUSABLE_STAGES`` order) that one earlier run completed with the same keys.

    All stages come from one run folder, the interrupted run's or the finished run's,
    whichever offers more (the interrupted one on a tie), so they were made together.
    QUANTIZE is taken only with EXPORT: its PT2E graph, which the exporters and
    ``QuantizedModel.run`` need, is not stored.
    """
    best: dict[str, Path] = {}
    for root in (incomplete_dir(final), final):
        plan: dict[str, Path] = {}
        for stage in (s for s in REUSABLE_STAGES if s in stages):
            if not _reusable(root / stage, keys[stage]):
                break
            plan[stage] = root / stage
        if "quantize" in plan and "export" not in plan:
            del plan["quantize"]
        if len(plan) > len(best):
            best = plan
    return best


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
