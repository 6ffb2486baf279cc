"""The ordered stages and ``run(cfg, until=...)``.

A run is built in a hidden staging folder next to ``runs/<name>/`` and renamed into
place only when every requested stage has finished, so a failed or interrupted run never
leaves a half-written ``runs/<name>/`` that looks complete. All inputs (config, boards,
data) are checked before any folder is created.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tinyshare.artifacts import (
    atomic_write_json,
    atomic_write_npz,
    package_versions,
    sha256_file,
)
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
    from ``run_dir``. ``up_to_date``: the run folder already held this very run (resume),
    so nothing ran and the in-memory artifacts are None. ``reused``: stages taken from an
    earlier run (``tinyshare.pipeline.resume``).
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
    up_to_date: bool = False
    reused: tuple[str, ...] = ()


def _staging_dir(final: Path) -> Path:
    final.parent.mkdir(parents=True, exist_ok=True)
    return final.parent / f".{final.name}.partial-{os.getpid()}"


def _publish(staging: Path, final: Path) -> None:
    """Replace ``final`` by ``staging`` (the old run is removed only after the rename)."""
    old = None
    if final.exists():
        old = final.parent / f".{final.name}.old-{os.getpid()}"
        os.replace(final, old)
    try:
        os.replace(staging, final)
    except BaseException:
        if old is not None:  # put the previous run back
            os.replace(old, final)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _terminate_as_interrupt():
    """While the run works, SIGTERM raises ``KeyboardInterrupt`` like Ctrl-C, so both end
    in the same clean-up (main thread only; signal handlers cannot be set elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _keep_completed(staging: Path, final: Path) -> None:
    """After an interruption or failure: keep the stages that completed (their folder has
    a manifest) in ``runs/.<name>.incomplete/`` for a later run to resume from, and drop
    the rest (the stage that was cut short, partial reports)."""
    from tinyshare.pipeline.resume import incomplete_dir

    if not staging.exists():
        return
    done = [d for d in staging.iterdir() if d.is_dir() and (d / "manifest.json").is_file()]
    if not done:
        shutil.rmtree(staging, ignore_errors=True)
        return
    for p in staging.iterdir():
        if p not in done:
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    keep = incomplete_dir(final)
    shutil.rmtree(keep, ignore_errors=True)
    os.replace(staging, keep)
    log.warning("run interrupted: completed stages (%s) kept in %s for the next run",
                ", ".join(sorted(d.name for d in done)), keep)


def _finished(final: Path, until: Stage, names: list[str]) -> RunResult:
    """The ``RunResult`` of a run folder that is already up to date (nothing ran); its
    boards in the run's order (``names``)."""
    import json

    boards = [b for b in names if (final / "boards" / b / "report.json").is_file()]
    verdicts = {b: json.loads((final / "boards" / b / "report.json").read_text())["verdict"]
                for b in boards}
    report = until >= Stage.REPORT
    return RunResult(
        run_dir=final, until=until, stage_seconds={},
        summary_report=(final / "report.md") if report else None,
        html_report=(final / "report.html") if report else None,
        board_reports={b: final / "boards" / b / "report.md" for b in boards},
        verdicts=verdicts, up_to_date=True)


def run(
    cfg: RunConfig,
    until: Stage = Stage.REPORT,
    progress: Progress | None = None,
    command: str = "",
    resume: bool = False,
) -> RunResult:
    """Run the pipeline for ``cfg`` up to and including ``until``.

    Ctrl-C or SIGTERM (or any error) leaves ``runs/<name>/`` as it was; the stages that
    completed are kept in ``runs/.<name>.incomplete/`` and the interrupted one is dropped.

    Args:
        cfg: the validated run config (``cfg.boards`` names the target boards).
        until: the last stage to run.
        progress: ``progress(task, done, total)`` callback for long work; it is also
            called from worker threads (emulated boards run side by side), so it must be
            thread-safe (rich's ``Progress`` is).
        command: the command line, recorded in the manifest and the reports.
        resume: reuse what an earlier run of the same inputs left (``pipeline.resume``):
            nothing runs when ``runs/<name>/`` already holds this run intact, and each stage
            from TRAIN to VALIDATE whose inputs (by content hash) are unchanged is taken from
            an earlier run, finished or interrupted, up to the first one that changed.

    Returns:
        The ``RunResult``; files lie under ``cfg.run_dir``.

    Raises:
        BoardError: an unknown board (before anything is written).
        RuntimeUnavailableError: ``validation.codegen = "on"`` and arm-none-eabi-gcc or
            qemu-system-arm is missing (before anything is written).
        DataError / ConfigError: bad data or config (before anything is written).
        RunLockedError: another run is writing ``runs/<name>/`` (``runs/.<name>.lock``).
        OutputWriteError: the output folder is read-only or the disk is full; nothing
            half-written is left in ``runs/<name>/``.
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
    from tinyshare.pipeline.run_lock import locked_run_dir

    with locked_run_dir(final):  # one run per runs/<name>/; full or read-only disk: one line
        return _run_locked(cfg, until, progress, command, resume, boards, splits, final)


def _run_locked(cfg, until, progress, command, resume, boards, splits, final) -> RunResult:
    """The body of ``run``, with the inputs checked and ``runs/.<name>.lock`` held."""
    from tinyshare.pipeline.resume import incomplete_dir, run_key, up_to_date

    key = run_key(cfg, until.name.lower(), boards)
    if resume and up_to_date(final, key):
        log.info("%s is up to date (same config, boards, versions and code): nothing to run",
                 final)
        return _finished(final, until, [b.name for b in boards])
    staging = _staging_dir(final)
    # with the lock held, any staging folder of this name is a dead run's (killed -9)
    for stale in final.parent.glob(f".{final.name}.partial-*"):
        shutil.rmtree(stale, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        with _terminate_as_interrupt():
            result = _run_stages(cfg, boards, splits, staging, until, progress, command,
                                 final if resume else None, key)
            _publish(staging, final)
        shutil.rmtree(incomplete_dir(final), ignore_errors=True)
    except BaseException:
        _keep_completed(staging, final)
        raise
    return RunResult(
        run_dir=final, until=until, stage_seconds=result["seconds"],
        summary_report=(final / "report.md") if until >= Stage.REPORT else None,
        html_report=(final / "report.html") if until >= Stage.REPORT else None,
        board_reports={b: final / "boards" / b / "report.md" for b in result["boards"]},
        verdicts=result["verdicts"], trained=result.get("trained"),
        quantized=result.get("quantized"), validation=result.get("validation"),
        reused=tuple(result["reused"]),
    )


def _run_stages(cfg, boards, splits, root: Path, until, progress, command,
                resume_from: Path | None, key: str) -> dict:
    from tinyshare.artifacts import write_manifest
    from tinyshare.pipeline import reload, resume, steps

    seconds: dict[str, float] = {}

    def timed(stage: Stage, fn):
        t0 = time.perf_counter()
        out = fn()
        seconds[stage.name.lower()] = round(time.perf_counter() - t0, 3)
        log.info("stage %s done in %.1f s", stage.name.lower(), seconds[stage.name.lower()])
        return out

    def data_stage():
        t0 = time.perf_counter()
        d = root / "data"
        d.mkdir()
        atomic_write_npz(d / "test.npz", x=splits.x_test, y=splits.y_test)
        atomic_write_npz(d / "calib.npz", x=splits.x_calib)
        write_manifest(d, stage="data", inputs={"data": cfg.data.model_dump(),
                       "source": splits.source, "sizes": splits.sizes()},
                       seconds=time.perf_counter() - t0, seed=cfg.seed)

    verdicts: dict[str, str] = {}
    trained = quantized = exported = validation = None
    timed(Stage.DATA, data_stage)
    keys = resume.stage_keys(cfg, splits, boards)
    wanted = [st.name.lower() for st in Stage if Stage.TRAIN <= st <= min(until, Stage.VALIDATE)]
    plan = resume.reuse_plan(resume_from, keys, wanted) if resume_from else {}
    reused = list(plan)
    if plan:
        log.info("reusing %s from an earlier run (same inputs, versions and code)",
                 ", ".join(plan))

    def step(stage: Stage, load, make):
        """Run ``make`` for ``stage``, or ``load`` it when the plan reuses it."""
        return timed(stage, load if stage.name.lower() in plan else make)

    if until >= Stage.TRAIN:
        trained = step(
            Stage.TRAIN, lambda: reload.load_trained(cfg, splits, plan["train"], root / "train"),
            lambda: steps.train_stage(cfg, splits, root / "train", progress, key=keys["train"]))
    if until >= Stage.QUANTIZE:
        quantized = step(
            Stage.QUANTIZE, lambda: reload.load_quantized(plan["quantize"], root / "quantize"),
            lambda: steps.quantize_stage(cfg, trained, splits, root / "quantize", progress,
                                         key=keys["quantize"]))
    if until >= Stage.EXPORT:
        exported = step(
            Stage.EXPORT, lambda: reload.load_exported(plan["export"], root / "export", cfg.name),
            lambda: steps.export_stage(cfg, trained, quantized, root / "export", progress,
                                       key=keys["export"]))
    if until >= Stage.VALIDATE:
        from tinyshare.pipeline.validate import validate_stage

        validation = step(
            Stage.VALIDATE,
            lambda: reload.load_validation(plan["validate"], root / "validate", cfg.name),
            lambda: validate_stage(cfg, trained, exported, quantized, splits, root / "validate",
                                   progress, boards=tuple(boards), key=keys["validate"]))
    if until >= Stage.REPORT:
        from tinyshare.pipeline.report import report_stage

        reports = timed(Stage.REPORT, lambda: report_stage(
            cfg, boards, splits, trained, quantized, exported, validation, root,
            command=command, stage_seconds=seconds, reused=tuple(reused)))
        verdicts = {b: r.verdict for b, r in reports.items()}
    _write_run_manifest(cfg, root, until, seconds, command, key, reused)
    return {"seconds": seconds, "boards": list(verdicts), "verdicts": verdicts,
            "trained": trained, "quantized": quantized, "validation": validation,
            "reused": reused}


def _write_run_manifest(cfg: RunConfig, root: Path, until: Stage, seconds, command,
                        key: str, reused: list[str]) -> None:
    files = {
        str(p.relative_to(root)): sha256_file(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p != root / "manifest.json"
    }
    atomic_write_json(root / "manifest.json", {
        "schema_version": 1,
        "run": cfg.name,
        "key": key,
        "reused_stages": reused,
        "until": until.name.lower(),
        "seed": cfg.seed,
        "config": cfg.to_dict(),
        "command": command,
        "versions": package_versions(),
        "stage_seconds": seconds,
        "files_sha256": files,
    })
