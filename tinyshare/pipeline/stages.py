"""The ordered stages and ``run(cfg, until=...)``.

A run is built in a hidden staging folder next to ``runs/<name>/`` and renamed into
place only when every requested stage has finished, so a failed or interrupted run never
leaves a half-written ``runs/<name>/`` that looks complete. All inputs (config, boards,
data) are checked before any folder is created.
"""

from __future__ import annotations

import enum
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tinyshare.artifacts import atomic_write_json, package_versions, sha256_file
from tinyshare.config import RunConfig
from tinyshare.pipeline.train import Progress

if TYPE_CHECKING:
    from tinyshare.pipeline.steps import QuantizedPair, TrainedModel
    from tinyshare.pipeline.validate import ValidationResult

log = logging.getLogger(__name__)


class Stage(enum.IntEnum):
    DATA = 1
    TRAIN = 2
    QUANTIZE = 3
    EXPORT = 4
    VALIDATE = 5
    REPORT = 6

    @classmethod
    def parse(cls, name: str) -> Stage:
        from tinyshare.errors import ConfigError

        try:
            return cls[name.strip().upper()]
        except KeyError:
            known = ", ".join(s.name.lower() for s in cls)
            raise ConfigError(f"--until: unknown stage {name!r}; known: {known}") from None


@dataclass(frozen=True)
class RunResult:
    """Where a finished run lies and what it produced.

    The in-memory artifacts of the stages that ran (``trained``, ``quantized``,
    ``validation``) are kept for callers that go on working with them; files are read
    from ``run_dir``.
    """

    run_dir: Path
    until: Stage
    stage_seconds: dict[str, float]
    summary_report: Path | None = None
    html_report: Path | None = None
    board_reports: dict[str, Path] = field(default_factory=dict)
    verdicts: dict[str, str] = field(default_factory=dict)
    trained: TrainedModel | None = None
    quantized: QuantizedPair | None = None
    validation: ValidationResult | None = None


def _staging_dir(final: Path) -> Path:
    final.parent.mkdir(parents=True, exist_ok=True)
    return final.parent / f".{final.name}.partial-{os.getpid()}"


def _publish(staging: Path, final: Path) -> None:
    """Replace ``final`` by ``staging`` (the old run is removed only after the rename)."""
    old = None
    if final.exists():
        old = final.parent / f".{final.name}.old-{os.getpid()}"
        os.replace(final, old)
    os.replace(staging, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def run(
    cfg: RunConfig,
    until: Stage = Stage.REPORT,
    progress: Progress | None = None,
    command: str = "",
) -> RunResult:
    """Run the pipeline for ``cfg`` up to and including ``until``.

    Args:
        cfg: the validated run config (``cfg.boards`` names the target boards).
        until: the last stage to run.
        progress: ``progress(task, done, total)`` callback for long work.
        command: the command line, recorded in the manifest and the reports.

    Returns:
        The ``RunResult``; files lie under ``cfg.run_dir``.

    Raises:
        BoardError: an unknown board (before anything is written).
        RuntimeUnavailableError: ``validation.codegen = "on"`` and arm-none-eabi-gcc or
            qemu-system-arm is missing (before anything is written).
        DataError / ConfigError: bad data or config (before anything is written).
    """
    from tinyshare.data import load_splits
    from tinyshare.targets.board_registry import load_board

    boards = [load_board(b) for b in cfg.boards]  # fail fast, before any folder exists
    if until >= Stage.VALIDATE:
        from tinyshare.pipeline.codegen_check import require_codegen_tools

        require_codegen_tools(cfg, boards)  # validation.codegen = "on": tools on PATH
    splits = load_splits(cfg.data, cfg.seed)
    if cfg.quantize.layers or cfg.cluster is not None:
        from tinyshare.pipeline.quantization import check_model_settings

        check_model_settings(cfg, splits)  # fails before training, before any folder
    final = cfg.run_dir
    staging = _staging_dir(final)
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    try:
        result = _run_stages(cfg, boards, splits, staging, until, progress, command)
        _publish(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return RunResult(
        run_dir=final, until=until, stage_seconds=result["seconds"],
        summary_report=(final / "report.md") if until >= Stage.REPORT else None,
        html_report=(final / "report.html") if until >= Stage.REPORT else None,
        board_reports={b: final / "boards" / b / "report.md" for b in result["boards"]},
        verdicts=result["verdicts"], trained=result.get("trained"),
        quantized=result.get("quantized"), validation=result.get("validation"),
    )


def _run_stages(cfg, boards, splits, root: Path, until, progress, command) -> dict:
    from tinyshare.artifacts import write_manifest
    from tinyshare.pipeline import steps

    seconds: dict[str, float] = {}

    def timed(stage: Stage, fn):
        t0 = time.perf_counter()
        out = fn()
        seconds[stage.name.lower()] = round(time.perf_counter() - t0, 3)
        log.info("stage %s done in %.1f s", stage.name.lower(), seconds[stage.name.lower()])
        return out

    def data_stage():
        import numpy as np

        t0 = time.perf_counter()
        d = root / "data"
        d.mkdir()
        np.savez(d / "test.npz", x=splits.x_test, y=splits.y_test)
        np.savez(d / "calib.npz", x=splits.x_calib)
        write_manifest(d, stage="data", inputs={"data": cfg.data.model_dump(),
                       "source": splits.source, "sizes": splits.sizes()},
                       seconds=time.perf_counter() - t0, seed=cfg.seed)

    verdicts: dict[str, str] = {}
    trained = quantized = exported = validation = None
    timed(Stage.DATA, data_stage)
    if until >= Stage.TRAIN:
        trained = timed(Stage.TRAIN, lambda: steps.train_stage(cfg, splits, root / "train",
                                                               progress))
    if until >= Stage.QUANTIZE:
        quantized = timed(Stage.QUANTIZE, lambda: steps.quantize_stage(
            cfg, trained, splits, root / "quantize", progress))
    if until >= Stage.EXPORT:
        exported = timed(Stage.EXPORT, lambda: steps.export_stage(
            cfg, trained, quantized, root / "export", progress))
    if until >= Stage.VALIDATE:
        from tinyshare.pipeline.validate import validate_stage

        validation = timed(Stage.VALIDATE, lambda: validate_stage(
            cfg, trained, exported, quantized, splits, root / "validate", progress,
            boards=tuple(boards)))
    if until >= Stage.REPORT:
        from tinyshare.pipeline.report import report_stage

        reports = timed(Stage.REPORT, lambda: report_stage(
            cfg, boards, splits, trained, quantized, exported, validation, root,
            command=command, stage_seconds=seconds))
        verdicts = {b: r.verdict for b, r in reports.items()}
    _write_run_manifest(cfg, root, until, seconds, command)
    return {"seconds": seconds, "boards": list(verdicts), "verdicts": verdicts,
            "trained": trained, "quantized": quantized, "validation": validation}


def _write_run_manifest(cfg: RunConfig, root: Path, until: Stage, seconds, command) -> None:
    files = {
        str(p.relative_to(root)): sha256_file(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p != root / "manifest.json"
    }
    atomic_write_json(root / "manifest.json", {
        "schema_version": 1,
        "run": cfg.name,
        "until": until.name.lower(),
        "seed": cfg.seed,
        "config": cfg.to_dict(),
        "command": command,
        "versions": package_versions(),
        "stage_seconds": seconds,
        "files_sha256": files,
    })
