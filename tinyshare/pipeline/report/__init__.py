"""REPORT stage: per-board ``report.json`` + ``report.md``, a summary ``report.md`` and one
self-contained ``report.html`` with plots for the run."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tinyshare.artifacts import atomic_write_json, atomic_write_text, package_versions
from tinyshare.artifacts import write_manifest
from tinyshare.pipeline.report.build import BoardReport, Check, build_board_report
from tinyshare.pipeline.report.build import storage_summary
from tinyshare.pipeline.report.deploy import write_deploy_folder
from tinyshare.pipeline.report.html import run_html
from tinyshare.pipeline.report.markdown import board_markdown, summary_markdown
from tinyshare.pipeline.report.schema import validate_report

if TYPE_CHECKING:
    from tinyshare.export.lut import LutExport
    from tinyshare.pipeline.report.runtime_code import RuntimeCode
    from tinyshare.targets.arena_plan import ArenaEstimate
    from tinyshare.targets.board import BoardProfile
    from tinyshare.config import RunConfig
    from tinyshare.pipeline.steps import QuantizedPair, TrainedModel
    from tinyshare.pipeline.validate import ValidationResult

__all__ = ["report_stage", "sharing_check"]


@dataclass(frozen=True)
class _Context:
    cfg: RunConfig
    trained: TrainedModel
    quantized: QuantizedPair
    validation: ValidationResult
    infos: dict
    storage: dict
    model_summary: dict
    sharing_check: Check
    provenance: dict
    per_layer: dict  # the report's per_layer entry (plain data, see the JSON Schema)
    arena_estimate: ArenaEstimate  # of the int8 .tflite
    twin_arena_estimate: ArenaEstimate  # of the twin's int8 .tflite
    runtime_code: Callable[[BoardProfile], RuntimeCode | None]
    root: Path  # the run folder being written (paths in commands are made relative to it)
    lut: LutExport | None = None  # the LUT-compressed copies of a clustered model


def sharing_check(infos: dict, n_unique_weights: int) -> Check:
    """Stored weight tensors in each int8 file must equal the unique quantized weights.

    Args:
        infos: ``{"tflite_int8": ModelInfo, "onnx_int8": ModelInfo, ...}``.
        n_unique_weights: number of unique quantized weight tensors (``QuantizedModel``),
            excluding biases, which are stored per call site.
    """
    counts = {}
    for key in ("tflite_int8", "onnx_int8"):
        info = infos[key]
        counts[key] = sum(1 for t in info.weight_tensors if t.dtype == "int8")
    ok = all(c == n_unique_weights for c in counts.values())
    return Check(
        "weight sharing kept", "PASS" if ok else "FAIL",
        f"{n_unique_weights} unique int8 weight tensors; stored: "
        + ", ".join(f"{k} {c}" for k, c in counts.items()), kind="sharing")


def _per_layer(infos: dict) -> dict:
    """The report's ``per_layer``: every exported file (int8 and float, the twin's int8);
    ``vela`` is filled on Ethos-U boards (``tflite_int8`` rows)."""
    from tinyshare.export.layer_table import layer_table

    keys = ("tflite_int8", "onnx_int8", "tflite_float", "onnx_float", "twin_tflite_int8",
            "twin_onnx_int8")
    tables = {k: layer_table(infos[k]).as_dict() for k in keys}
    for table in tables.values():
        for row in table["rows"]:
            row["vela"] = None
    return tables


def _image_root(validation, board: str) -> Path | None:
    """The device image folder an emulated run of ``board`` used, if any."""
    emu = validation.emulation.get(board)
    return Path(emu.image_manifest).parent if emu is not None and emu.image_manifest else None


def _flashed_tflite(board, report: dict) -> str:
    """The ``infos`` key of the .tflite ``board`` flashes, as its report decided: the
    LUT-compressed copy where ``footprint.lut_compression.applied`` (``report.cluster``
    decides it once), without tensor names where the board strips them."""
    lut = report["footprint"].get("lut_compression")
    key = "tflite_int8_lut" if lut and lut["applied"] else "tflite_int8"
    return f"{key}_stripped" if board.strip_tensor_names else key


def report_stage(cfg, boards, splits, trained, quantized, exported, validation, root: Path,
                 *, command: str, stage_seconds: dict,
                 reused: tuple[str, ...] = ()) -> dict[str, BoardReport]:
    """Write every board's report and the summary; returns ``{board: BoardReport}``.
    ``reused``: the stages taken from an earlier run (their ``stage_seconds`` is the
    time to load them back, not to make them)."""
    from tinyshare.export.inspect import inspect_model
    from tinyshare.models.zoo import reference_size
    from tinyshare.pipeline.report.runtime_code import runtime_code_for
    from tinyshare.targets.arena_plan import estimate_tflm_arena

    t0 = time.perf_counter()
    files = {
        "tflite_int8": exported.tflite_int8, "onnx_int8": exported.onnx_int8,
        "tflite_float": exported.tflite_float, "onnx_float": exported.onnx_float,
        "twin_tflite_int8": exported.twin_tflite_int8, "twin_onnx_int8": exported.twin_onnx_int8,
        "tflite_int8_stripped": exported.tflite_int8_stripped,
    }
    infos = {k: inspect_model(p) for k, p in files.items()}
    lut = exported.lut
    if lut is not None and lut.named is not None:
        infos["tflite_int8_lut"] = inspect_model(lut.named.path)
        infos["tflite_int8_lut_stripped"] = inspect_model(lut.stripped.path)
    storage = {k: storage_summary(i) for k, i in infos.items()
               if k not in ("tflite_int8_stripped", "tflite_int8_lut", "tflite_int8_lut_stripped")}
    storage["saved_by_sharing_bytes"] = {
        fmt: infos[f"twin_{fmt}_int8"].stored_weight_bytes - infos[f"{fmt}_int8"].stored_weight_bytes
        for fmt in ("tflite", "onnx")
    }
    model_summary = {
        "name": cfg.model.name, "width": cfg.model.width,
        "input_shape_nchw": [1, *splits.input_shape], "num_classes": splits.num_classes,
        "unique_params": trained.unique_params, "twin_params": trained.twin_params,
        "mlperf_reference": reference_size(cfg.model.name),
        "sharing_groups": [g.__dict__ for g in trained.sharing_groups],
        "int8_weight_tensors": [
            {"name": w.name, "shape": list(w.values.shape), "scales": int(w.scales.size),
             "call_sites": w.call_sites} for w in quantized.shared.weights],
        "data": {"source": splits.source, "sizes": splits.sizes()},
        "cluster": trained.cluster.as_dict() if trained.cluster is not None else None,
    }
    ctx = _Context(
        cfg=cfg, trained=trained, quantized=quantized, validation=validation, infos=infos,
        storage=storage, model_summary=model_summary,
        sharing_check=sharing_check(infos, len(quantized.shared.weights)),
        provenance={
            "command": command, "seed": cfg.seed, "versions": package_versions(),
            "execution": (
                f"host runs use each runtime's {platform.machine()} build"
                + ("; Linux boards' runtimes also ran from their ARM device images under "
                   "qemu-user (emulated, see 'On-device checks')" if validation.emulation
                   else "; no runtime ran emulated or on a device")
                + ("; the Cortex-M boards' generated C ran under qemu-system-arm (emulated, "
                   "see 'Generated C')" if any(c.figures for c in validation.codegen.values())
                   else "")
                + "; no time in it is a device latency"),
            "stage_seconds": dict(stage_seconds),
            "reused_stages": list(reused),
        },
        per_layer=_per_layer(infos),
        arena_estimate=estimate_tflm_arena(infos["tflite_int8"]),
        twin_arena_estimate=estimate_tflm_arena(infos["twin_tflite_int8"]),
        # the uncompressed graph's kernels; report.cluster adds the decompression code
        runtime_code=lambda board: runtime_code_for(board, infos["tflite_int8"],
                                                    _image_root(validation, board.name)),
        root=root, lut=lut,
    )
    reports = {b.name: build_board_report(ctx, b) for b in boards}
    for board in boards:
        rep = reports[board.name]
        d = root / "boards" / board.name
        atomic_write_json(d / "report.json", rep.data)
        # The schema in the repo, checked on the JSON as written; a mismatch is our bug.
        validate_report(json.loads((d / "report.json").read_text()))
        atomic_write_text(d / "report.md", board_markdown(rep.data))
        tflite = infos[_flashed_tflite(board, rep.data)].path
        vela = validation.vela.get(board.name)
        write_deploy_folder(root / board.name, board, {"tflite": tflite, "onnx": exported.onnx_int8},
                            quantized.shared, splits.input_shape, d,
                            npu_model=vela.optimized_model_path if vela else None,
                            codegen=validation.codegen.get(board.name),
                            generated_c=rep.data["footprint"].get("generated_c"))
    atomic_write_text(root / "report.md", summary_markdown(
        cfg.name, [r.data for r in reports.values()], storage, model_summary))
    atomic_write_text(root / "report.html", run_html({
        "run": cfg.name, "model": model_summary, "storage": storage,
        "boards": [r.data for r in reports.values()]}))
    write_manifest(root / "boards", stage="report", inputs={"boards": list(reports)},
                   seconds=time.perf_counter() - t0, seed=cfg.seed)
    return reports
