"""The output folder of ``tinyshare check``: ``check.json`` and ``check.md``, published whole.

``resolve_out`` checks the folder before any work; ``publish`` writes both files into a
temporary folder beside it and renames that into place, so the folder holds either the
previous check or the new one, never half of one, and nothing else is left behind.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from tinyshare.errors import ConfigError, OutputWriteError

if TYPE_CHECKING:
    from tinyshare.pipeline.check_model import ModelCheck

__all__ = ["CHECK_SCHEMA_VERSION", "OUTPUT_FILES", "check_dict", "check_markdown", "publish",
           "resolve_out"]

CHECK_SCHEMA_VERSION = 1
OUTPUT_FILES = ("check.json", "check.md")
_UMASK = os.umask(0)
os.umask(_UMASK)


def resolve_out(out: str | os.PathLike[str] | None, model: Path) -> Path:
    """The output folder, checked before anything runs; nothing is created here.

    Args:
        out: ``--out``; None means ``runs/check-<model stem>`` in the working folder.
        model: the model file (for the default name).

    Returns:
        The folder (it may not exist yet).

    Raises:
        ConfigError: it exists and is not a folder, holds files other than an earlier
            check's, or lies under a file.
        OutputWriteError: its nearest existing folder is not writable.
    """
    p = Path(out) if out is not None else Path("runs") / f"check-{model.stem}"
    label = f"--out {p}" if out is not None else f"output folder {p}"
    if p.exists():
        if not p.is_dir():
            raise ConfigError(f"{label}: exists and is not a folder")
        others = sorted(c.name for c in p.iterdir() if c.name not in OUTPUT_FILES)
        if others:
            raise ConfigError(f"{label}: holds other files ({', '.join(others[:3])}"
                              f"{', ...' if len(others) > 3 else ''}); expected a new folder "
                              "or one holding an earlier check")
    parent = p.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"{label}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputWriteError(f"{label}: cannot write in {parent}; choose a writable folder")
    return p


def publish(result: ModelCheck) -> Path:
    """Write ``check.json`` and ``check.md`` into ``result.out_dir``, all or nothing.

    Returns:
        The output folder.

    Raises:
        OutputWriteError: the folder cannot be created or written (one line, naming it).
    """
    from tinyshare.artifacts import atomic_write_json, atomic_write_text

    out = result.out_dir.absolute()
    made = [a for a in reversed(out.parents) if not a.exists()]  # created here, top first
    tmp = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
        os.chmod(tmp, 0o777 & ~_UMASK)
        atomic_write_json(tmp / "check.json", check_dict(result))
        atomic_write_text(tmp / "check.md", check_markdown(result))
        if out.exists():
            old = tmp.with_name(tmp.name + ".old")
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old)
        else:
            tmp.rename(out)
    except OSError as e:
        _undo(tmp, made)
        raise OutputWriteError(f"--out {result.out_dir}: cannot write the check "
                               f"({e.strerror or type(e).__name__}); nothing was kept") from None
    except BaseException:
        _undo(tmp, made)
        raise
    return result.out_dir


def _undo(tmp: Path | None, made: list[Path]) -> None:
    if tmp is not None:
        shutil.rmtree(tmp, ignore_errors=True)
    for folder in reversed(made):
        try:
            folder.rmdir()
        except OSError:
            break


def check_dict(r: ModelCheck) -> dict:
    """``check.json``: the model, the board, op support, footprint, runs and the verdict."""
    from dataclasses import asdict

    from tinyshare.artifacts import package_versions, sha256_file
    from tinyshare.export.inspect import summary_rows

    info, fp, b = r.info, r.footprint, r.board

    def tensor(name: str) -> dict:
        t = info.tensor(name)
        return {"name": t.name, "shape": None if t.shape is None else list(t.shape),
                "dtype": t.dtype, "scales": [v if math.isfinite(v) else None for v in t.scales[:8]],
                "zero_points": list(t.zero_points[:8])}

    return {
        "schema_version": CHECK_SCHEMA_VERSION,
        "verdict": "PASS" if r.passed else "FAIL",
        "reasons": list(r.reasons),
        "notes": list(r.notes),
        "model": {"path": str(r.model), "format": info.format, "file_bytes": info.file_bytes,
                  "sha256": sha256_file(r.model), "stored_weight_bytes": info.stored_weight_bytes,
                  "n_ops": len(info.ops), "inputs": [tensor(n) for n in info.inputs],
                  "outputs": [tensor(n) for n in info.outputs]},
        "board": {"name": b.name, "display_name": b.display_name, "os": b.os,
                  "runtimes": list(b.runtimes), "flash_budget_bytes": b.flash_budget_bytes,
                  "ram_budget_bytes": b.ram_budget_bytes},
        "ops": summary_rows(info),
        "op_support": [asdict(o) for o in r.runtimes],
        "footprint": {
            "verdict": fp.verdict, "model_file_bytes": fp.model_file_bytes,
            "weights_bytes": fp.weights_bytes, "runtime_code_bytes": fp.runtime_flash_bytes,
            "runtime_code_method": r.runtime_code.method,
            "runtime_code_per_part_bytes": dict(r.runtime_code.per_part_bytes),
            "flash_needed_bytes": fp.flash_needed_bytes, "flash_budget_bytes": fp.flash_budget_bytes,
            "flash_headroom_bytes": fp.flash_headroom_bytes, "ram_needed_bytes": fp.ram_needed_bytes,
            "ram_method": fp.ram_method, "ram_budget_bytes": fp.ram_budget_bytes,
            "ram_headroom_bytes": fp.ram_headroom_bytes, "arena": asdict(r.ram),
            "violations": [{"budget": v.budget, "need_bytes": v.need_bytes,
                            "have_bytes": v.have_bytes, "message": v.message} for v in fp.reasons],
        },
        "validation": None if r.data is None else {
            "data_file": str(r.data), "n_samples": r.n_samples, "labelled": r.labelled,
            "tolerance_lsb": _tolerance(), "runs": [asdict(run) for run in r.runs]},
        "versions": package_versions(),
    }


def _tolerance() -> int:
    from tinyshare.pipeline.check_runs import TOLERANCE_LSB

    return TOLERANCE_LSB


def check_markdown(r: ModelCheck) -> str:
    """``check.md``: the verdict, op support, footprint and runs, for people."""
    fp = r.footprint

    def size(n: int | None) -> str:
        return "unknown" if n is None else f"{n:,} B"

    lines = [f"# Check: {r.model.name} on {r.board.name}", "",
             f"**{'PASS' if r.passed else 'FAIL'}**: {r.info.format}, {r.info.file_bytes:,} "
             f"bytes, {len(r.info.ops)} ops on {r.board.display_name}.", ""]
    lines += [f"- {reason}" for reason in r.reasons] + ([""] if r.reasons else [])
    lines += ["## Op support", "", "| runtime | ok | how | detail |", "|---|---|---|---|"]
    lines += [f"| {o.runtime} | {'n/a' if not o.applies else 'yes' if o.ok else 'NO'} | "
              f"{o.method} | {o.detail.replace('|', '/')} |" for o in r.runtimes]
    ram = r.ram
    lines += ["", "## Footprint", "", "| | need | budget | headroom |", "|---|---|---|---|",
              f"| flash | {size(fp.flash_needed_bytes)} | {size(fp.flash_budget_bytes)} | "
              f"{size(fp.flash_headroom_bytes)} |",
              f"| RAM | {size(fp.ram_needed_bytes)} | {size(fp.ram_budget_bytes)} | "
              f"{size(fp.ram_headroom_bytes)} |", "",
              f"- model file: {size(fp.model_file_bytes)} (weights {size(fp.weights_bytes)})",
              f"- runtime code: {size(fp.runtime_flash_bytes)} ({r.runtime_code.method})",
              f"- TFLM arena measured: {size(ram.measured_bytes)}"
              + (f" ({ram.measure_note})" if ram.measure_note else ""),
              f"- arena estimate: {size(ram.estimate_bytes)}; activations planned "
              f"offline: {size(ram.planned_bytes)}",
              f"- RAM need: {fp.ram_method}"]
    if r.data is not None:
        lines += ["", f"## Runs on {r.data.name} ({r.n_samples} samples)", "",
                  "| runtime | top-1 | top-1 agreement | max diff (LSB) | values differing |",
                  "|---|---|---|---|---|"]
        lines += [f"| {run.runtime}{' (reference)' if run.reference else ''} | "
                  f"{'-' if run.top1 is None else f'{run.top1:.4f}'} | "
                  f"{run.top1_agreement:.4f} | {'-' if run.max_abs_diff_lsb is None else run.max_abs_diff_lsb} | "
                  f"{run.n_values_differing} |" for run in r.runs]
    if r.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in r.notes]
    return "\n".join(lines) + "\n"
