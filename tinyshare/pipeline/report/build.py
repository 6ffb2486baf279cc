"""Assemble one board's report (a plain, versioned dict) from the run's artifacts."""

from __future__ import annotations

from dataclasses import asdict, dataclass

REPORT_SCHEMA_VERSION = 1
MAX_ACCURACY_DROP_POINTS = 1.5
MIN_TOP1_AGREEMENT = 0.99  # emulated on-device runs against the host reference


@dataclass(frozen=True)
class Check:
    """One gate in a board's verdict.

    ``status`` is "PASS" or "FAIL" (a gate), "FINDING" (a measured difference reported as
    it is, e.g. between onnxruntime's optimization levels; it never changes the verdict on
    its own) or "INFO" (a fact, e.g. a host-build result when the board's own build ran
    under emulation). Only FAIL makes the verdict FAIL.
    """

    name: str
    status: str
    detail: str


@dataclass(frozen=True)
class BoardReport:
    board: str
    verdict: str
    data: dict


def storage_summary(info) -> dict:
    """Bytes a model file stores, from ``inspect_model`` (``ModelInfo``)."""
    return {
        "file": info.path.name,
        "file_bytes": info.file_bytes,
        "stored_weight_bytes": info.stored_weight_bytes,
        "stored_weight_tensors": len(info.weight_tensors),
        "shared_storage_groups": [
            {"storage": g.storage, "tensors": list(g.tensor_names),
             "consumer_ops": list(g.consumer_ops), "bytes": g.nbytes}
            for g in info.sharing_groups
        ],
    }


def _runtime_checks(board, validation, float_acc: float, tol: int) -> tuple[list, list, dict]:
    from tinyshare.targets.runtimes.registry import host_runs_for

    checks, runs, rows = [], list(host_runs_for(board.runtimes)), {}
    for name in runs:
        c = validation.checks[name]
        a = c.agreement
        rows[name] = {
            "runtime_version": c.version, "model_file": c.model_file, "input_layout": c.layout,
            "accuracy": c.accuracy, "top1_agreement": a.top1_agreement,
            "max_abs_diff_lsb": a.max_abs_diff_lsb, "n_values_differing": a.n_values_differing,
            "within_tolerance": a.within_tolerance, "compared_on": a.compared_on,
            "host_wall_ms": round(c.host_wall_ms, 1),
        }
        drop = (float_acc - c.accuracy) * 100.0
        checks.append(Check(
            f"int8 accuracy on {name}",
            "PASS" if drop <= MAX_ACCURACY_DROP_POINTS else "FAIL",
            f"{100 * c.accuracy:.2f} % (float {100 * float_acc:.2f} %, drop {drop:+.2f} "
            f"points, limit {MAX_ACCURACY_DROP_POINTS} points)"))
        if name == validation.reference:
            continue  # the reference itself: nothing to compare
        checks.append(Check(
            f"agreement of {name} with {validation.reference}",
            "PASS" if a.within_tolerance else "FAIL",
            f"max abs diff {a.max_abs_diff_lsb} LSB (tolerance ±{tol} LSB), top-1 "
            f"agreement {100 * a.top1_agreement:.2f} %, {a.n_values_differing} of "
            f"{a.n_samples * c.n_outputs} output values differ"))
    return checks, runs, rows


def _op_support(board, infos) -> Check:
    """One "op support" check over the board's runtimes, from the runtime capability table."""
    from tinyshare.targets.op_support import op_support
    from tinyshare.targets.runtimes.registry import RUNTIMES

    results = [op_support(infos[f"{RUNTIMES.get(rt).model_format}_int8"], rt)
               for rt in board.runtimes]
    if not all(r.ok for r in results):
        status = "FAIL"
    elif any(r.checked_statically for r in results):
        status = "PASS"
    else:
        status = "INFO"  # every runtime's op support is shown by its host run
    return Check("op support", status, "; ".join(r.describe() for r in results))


def _emulated(board, validation, float_acc: float) -> tuple[list[Check], dict | None]:
    """Checks and report data for the board's emulated runs, if any ran."""
    emu = validation.emulation.get(board.name)
    if emu is None:
        return [], None
    if emu.error:
        return [Check("emulated device image", "FAIL", emu.error)], {"error": emu.error}
    checks, rows = [], {}
    for c in emu.checks:
        label = f"{c.runtime} on {board.cpu}"
        if not c.ok:
            checks.append(Check(label, "FAIL", c.error))
            rows[c.runtime] = {"ok": False, "error": c.error}
            continue
        a = c.agreement
        ok = a.within_tolerance and a.top1_agreement >= MIN_TOP1_AGREEMENT
        drop = (float_acc - c.accuracy) * 100.0
        ok = ok and drop <= MAX_ACCURACY_DROP_POINTS
        checks.append(Check(label, "PASS" if ok else "FAIL",
                            f"top-1 {100 * c.accuracy:.2f} % (drop {drop:+.2f} points), max abs "
                            f"diff {a.max_abs_diff_lsb} LSB vs {validation.reference} (±"
                            f"{a.tolerance_lsb}), top-1 agreement {100 * a.top1_agreement:.2f} % "
                            f"(min {100 * MIN_TOP1_AGREEMENT:.0f} %)"))
        rows[c.runtime] = {
            "ok": True, "accuracy": c.accuracy, "top1_agreement": a.top1_agreement,
            "max_abs_diff_lsb": a.max_abs_diff_lsb, "n_values_differing": a.n_values_differing,
            "runtime_version": c.runtime_version, "command": c.command,
            "load_ms": c.load_ms, "peak_rss_kb": c.peak_rss_kb,
            "emulated_wall_s": c.emulated_wall_s,
        }
    data = {
        "emulator": f"qemu-user {board.emulator.arch} -cpu {board.emulator.cpu}",
        "image_key": emu.image_key, "image_manifest": emu.image_manifest,
        "image_seconds": round(emu.image_seconds, 1),
        "note": "wall time under emulation is host time of the emulator, not a device "
                "latency; peak RSS is the emulator process's as the guest sees it",
        "runtimes": rows,
    }
    return checks, data


def _as_host_info(check: Check, emulated_runs: set[str]) -> Check:
    """A failed host-runtime check, restated as INFO once the board's own build of that
    runtime ran under emulation (``emulated_runs``: the host run names it stands for)."""
    runs = {f"int8 accuracy on {r}" for r in emulated_runs}
    runs |= {f"agreement of {r} with " for r in emulated_runs}
    if check.status != "FAIL" or not any(check.name.startswith(r) for r in runs):
        return check
    return Check(check.name, "INFO", "host x86_64 build, not the board's (the board's own "
                 f"build is checked under emulation): {check.detail}")


def build_board_report(ctx, board) -> BoardReport:
    """Build one board's report from the run context ``ctx`` (see ``report_stage``)."""
    from tinyshare.targets.footprint import assess

    v = ctx.validation
    float_acc = v.float_pytorch_accuracy
    tfl = ctx.infos["tflite_int8"]
    arena = v.arena.arena_bytes
    if board.os == "baremetal":
        ram_need, ram_method = arena, (
            "TFLM tensor arena, smallest size that allocates and invokes (binary search, "
            f"verified by a run at exactly that size); {v.arena.note}")
    else:
        ram_need = tfl.file_bytes + arena
        ram_method = ("estimate: model file bytes + the tensor arena measured with TFLM's "
                      "host build, taken as a proxy for the tensors LiteRT/onnxruntime "
                      "allocate; the runtime process itself (several MB) is not included "
                      "and no RSS was measured")
    fp = assess(board, model_file_bytes=tfl.file_bytes, weights_bytes=tfl.stored_weight_bytes,
                ram_needed_bytes=ram_need, ram_method=ram_method, runtime_flash_bytes=None,
                runtime_flash_method=None)
    checks = [Check(f"{vi.budget} budget", "FAIL", vi.message) for vi in fp.reasons]
    if fp.verdict == "PASS":
        checks.append(Check("flash and RAM budgets", "PASS",
                            f"flash headroom {fp.flash_headroom_bytes:,} B (model file only; "
                            f"the runtime's code is not measured yet), RAM headroom "
                            f"{fp.ram_headroom_bytes:,} B"))
    rt_checks, runs, rows = _runtime_checks(board, v, float_acc, v.tolerance_lsb)
    checks += rt_checks
    emu_checks, emu_data = _emulated(board, v, float_acc)
    checks += emu_checks
    checks.append(ctx.sharing_check)
    checks.append(_op_support(board, ctx.infos))
    if v.onnx_level_finding and "onnxruntime" in board.runtimes:
        checks.append(Check("onnxruntime optimization levels (host build)", "FINDING",
                            v.onnx_level_finding))
    emu = v.emulation.get(board.name)
    if emu is not None and emu.error is None:
        # The board's own builds ran under emulation: they gate the verdict, and the host
        # (x86_64) builds' results stay in the report as facts.
        emulated_runs = {c.runtime.removesuffix(" (emulated)") for c in emu.checks}
        checks = [_as_host_info(c, emulated_runs) for c in checks]
        if emu.onnx_level_finding:
            checks.append(Check("onnxruntime optimization levels (emulated)", "FINDING",
                                emu.onnx_level_finding))
    verdict = "FAIL" if any(c.status == "FAIL" for c in checks) else "PASS"
    data = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "run": ctx.cfg.name,
        "board": {
            "name": board.name, "display_name": board.display_name, "cpu": board.cpu,
            "clock_hz": board.clock_hz, "os": board.os, "runtimes": list(board.runtimes),
            "flash_bytes": board.flash_bytes, "ram_bytes": board.ram_bytes,
            "reserved_flash_bytes": board.reserved_flash_bytes,
            "reserved_ram_bytes": board.reserved_ram_bytes, "sources": list(board.sources),
        },
        "verdict": verdict,
        "reasons": [asdict(c) for c in checks if c.status == "FAIL"],
        "checks": [asdict(c) for c in checks],
        "model": ctx.model_summary,
        "storage": ctx.storage,
        "accuracy": {
            "split": "test", "n_samples": v.n_samples,
            "float_pytorch": float_acc,
            "float_host_runtimes": v.float_accuracy,
            "int8_pytorch_pt2e": v.int8_pytorch_accuracy,
            "int8_reference": {"runtime": v.reference,
                               "accuracy": v.checks[v.reference].accuracy},
            "twin_float_pytorch": v.twin_float_pytorch_accuracy,
            "twin_int8_litert_ref": v.twin_int8_accuracy,
            "int8_runtimes": {k: rows[k]["accuracy"] for k in runs},
        },
        "agreement": {"reference": v.reference, "tolerance_lsb": v.tolerance_lsb,
                      "reference_description": "LiteRT's builtin int8 kernels without any "
                      "delegate, on this host",
                      "output_scale": ctx.quantized.shared.output_scale,
                      "output_zero_point": ctx.quantized.shared.output_zero_point,
                      "compared_on": "int8 output values (LSB of the output tensor)",
                      "runtimes": rows},
        "footprint": {
            "flash_budget_bytes": fp.flash_budget_bytes, "ram_budget_bytes": fp.ram_budget_bytes,
            "model_file_bytes": tfl.file_bytes, "weights_bytes": tfl.stored_weight_bytes,
            "flash_needed_bytes": fp.flash_needed_bytes,
            "flash_headroom_bytes": fp.flash_headroom_bytes,
            "ram_needed_bytes": fp.ram_needed_bytes, "ram_method": ram_method,
            "ram_headroom_bytes": fp.ram_headroom_bytes,
            "arena": {"arena_bytes": arena,
                      "planner_reported_bytes": v.arena.planner_reported_bytes,
                      "search_steps": v.arena.search_steps, "note": v.arena.note,
                      "twin_arena_bytes": v.twin_arena.arena_bytes},
            "notes": list(fp.notes),
        },
        "emulated": emu_data,
        "ops": [{"index": o.index, "op": o.op_code, "version": o.version} for o in tfl.ops],
        "provenance": ctx.provenance,
    }
    return BoardReport(board=board.name, verdict=verdict, data=data)
