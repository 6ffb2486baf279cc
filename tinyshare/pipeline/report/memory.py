"""One board's flash and RAM breakdown: what goes in, how each figure was obtained.

Every figure carries its method. Measured: file sizes, the TFLM arena (binary search on the
host build), peak RSS under qemu-user. Vela's SRAM and flash figures are Vela's own plan
for the compiled model, labelled as Vela's.
Estimated, and labelled so: runtime code size, our offline arena estimate, Linux RAM when
nothing was emulated.
"""

from __future__ import annotations

from dataclasses import dataclass

from tinyshare.targets.footprint import Footprint, assess


@dataclass(frozen=True)
class MemoryFacts:
    """What the breakdown is built from, for one board.

    Attributes:
        model_file: name of the model file the board flashes.
        model_file_bytes: its size in bytes.
        weights_bytes: stored weight bytes inside it.
        weights_method: how ``weights_bytes`` was obtained.
        tensor_names_bytes: bytes saved by stripping tensor names (original - stripped).
        names_stripped: the board flashes the file without tensor names.
        runtime_code_bytes / runtime_code_method / runtime_code_per_kernel_bytes /
            runtime_code_detail: the runtime's code size estimate (None with the reason in
            the method when there is none), per part, and its full method.
        ram_needed_bytes / ram_method: the RAM need and how it was obtained.
        arena: the TFLM arena dict (measured + estimate), or None.
        peak_rss_bytes: largest guest peak RSS under emulation, or None.
        activation_bytes: the planned activation bytes (offline plan of the int8 .tflite).
    """

    model_file: str
    model_file_bytes: int
    weights_bytes: int
    weights_method: str
    tensor_names_bytes: int
    names_stripped: bool
    runtime_code_bytes: int | None
    runtime_code_method: str
    runtime_code_per_kernel_bytes: dict
    runtime_code_detail: str
    ram_needed_bytes: int
    ram_method: str
    arena: dict | None
    peak_rss_bytes: int | None
    activation_bytes: int


def assess_board(board, facts: MemoryFacts) -> tuple[Footprint, dict]:
    """Compare ``facts`` with ``board``'s budgets; returns the footprint and the report dict.

    The dict is the report's ``footprint`` entry: the v1 keys plus ``flash`` and ``ram``
    breakdowns (see ``schema/report.schema.json``).
    """
    fp = assess(board, model_file_bytes=facts.model_file_bytes, weights_bytes=facts.weights_bytes,
                ram_needed_bytes=facts.ram_needed_bytes, ram_method=facts.ram_method,
                runtime_flash_bytes=facts.runtime_code_bytes,
                runtime_flash_method=facts.runtime_code_method if facts.runtime_code_bytes is not None
                else None)
    flash = {
        "model_file": facts.model_file, "model_file_bytes": facts.model_file_bytes,
        "weights_bytes": facts.weights_bytes, "weights_method": facts.weights_method,
        "graph_overhead_bytes": facts.model_file_bytes - facts.weights_bytes,
        "tensor_names_bytes": facts.tensor_names_bytes, "names_stripped": facts.names_stripped,
        "names_stripped_saving_bytes": facts.tensor_names_bytes if facts.names_stripped else 0,
        "runtime_code_bytes": facts.runtime_code_bytes,
        "runtime_code_method": facts.runtime_code_method,
        "runtime_code_detail": facts.runtime_code_detail,
        "runtime_code_per_kernel_bytes": dict(facts.runtime_code_per_kernel_bytes),
        "reserved_bytes": board.reserved_flash_bytes, "total_bytes": board.flash_bytes,
        "budget_bytes": fp.flash_budget_bytes, "needed_bytes": fp.flash_needed_bytes,
        "headroom_bytes": fp.flash_headroom_bytes,
    }
    ram = {
        "needed_bytes": fp.ram_needed_bytes, "method": facts.ram_method,
        "reserved_bytes": board.reserved_ram_bytes, "total_bytes": board.ram_bytes,
        "budget_bytes": fp.ram_budget_bytes, "headroom_bytes": fp.ram_headroom_bytes,
        "arena": facts.arena, "peak_rss_bytes": facts.peak_rss_bytes,
        "model_bytes": facts.model_file_bytes, "activation_bytes": facts.activation_bytes,
    }
    data = {
        "flash_budget_bytes": fp.flash_budget_bytes, "ram_budget_bytes": fp.ram_budget_bytes,
        "model_file_bytes": facts.model_file_bytes, "weights_bytes": facts.weights_bytes,
        "flash_needed_bytes": fp.flash_needed_bytes, "flash_headroom_bytes": fp.flash_headroom_bytes,
        "ram_needed_bytes": fp.ram_needed_bytes, "ram_method": facts.ram_method,
        "ram_headroom_bytes": fp.ram_headroom_bytes, "notes": list(fp.notes),
        "flash": flash, "ram": ram,
    }
    return fp, data


def arena_dict(measured, estimate, twin_measured, twin_estimate) -> dict:
    """The report's ``footprint.ram.arena``: measured TFLM arena against our estimate.

    Args:
        measured: ``ArenaMeasurement`` (smallest working arena, host build).
        estimate: ``ArenaEstimate`` from ``tinyshare.targets.arena_plan``.
        twin_measured: the unshared twin's ``ArenaMeasurement``.
        twin_estimate: the unshared twin's ``ArenaEstimate``.
    """
    diff = estimate.estimate_bytes - measured.arena_bytes
    return {
        "measured_bytes": measured.arena_bytes,
        "measured_method": "smallest arena that allocates and invokes (binary search, "
                           "verified by a run at exactly that size)",
        "planner_reported_bytes": measured.planner_reported_bytes,
        "search_steps": measured.search_steps,
        "estimate_bytes": estimate.estimate_bytes,
        "estimate_planned_bytes": estimate.planned_bytes,
        "estimate_persistent_bytes": estimate.persistent_bytes,
        "estimate_planning_temp_bytes": estimate.planning_temp_bytes,
        "estimate_method": estimate.method,
        "difference_bytes": diff,
        "difference_percent": round(100.0 * diff / measured.arena_bytes, 2),
        "build": "64-bit host build of tflite-micro (Python package); a 32-bit Cortex-M "
                 "build uses smaller structs",
        "twin_measured_bytes": twin_measured.arena_bytes,
        "twin_estimate_bytes": twin_estimate.estimate_bytes,
    }


def linux_ram(tfl_info, planned_bytes: int, emu_data: dict | None) -> tuple[int, str, int | None]:
    """RAM need of a Linux board: measured peak RSS under emulation, else an estimate.

    Returns ``(needed_bytes, method, peak_rss_bytes or None)``.
    """
    rss = [r["peak_rss_kb"] * 1024 for r in (emu_data or {}).get("runtimes", {}).values()
           if r.get("ok") and r.get("peak_rss_kb")]
    if rss:
        peak = max(rss)
        return peak, ("measured: the largest peak RSS of the board's runtimes running the "
                      "test split under qemu-user (the guest process as the guest sees it: "
                      "Python, numpy, the runtime, the model and its tensors)"), peak
    need = tfl_info.file_bytes + planned_bytes
    return need, ("estimate, lower bound: model file bytes + activation bytes planned from "
                  "tensor lifetimes; the runtime process itself (several MB) is not included. "
                  "Run with validation.emulate=true to measure the guest's peak RSS"), None
