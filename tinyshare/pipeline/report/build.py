"""Assemble one board's report (a plain, versioned dict) from the run's artifacts."""

from __future__ import annotations

from dataclasses import dataclass

from tinyshare.pipeline.report.checks import Check, accuracy_check
from tinyshare.pipeline.report.cluster import cluster_checks, with_lut
from tinyshare.pipeline.report.generated_c import TflmSide, generated_c
from tinyshare.pipeline.report.schema import REPORT_SCHEMA_VERSION

MIN_TOP1_AGREEMENT = 0.99  # emulated on-device runs against the host reference


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


def _quantization_summary(ctx) -> dict:
    """How the int8 model was made, with PyTorch int8 top-1 on the whole test split; with
    QAT also the PTQ top-1 of the same float model and the share of its loss recovered."""
    q, qcfg = ctx.quantized, ctx.cfg.quantize
    out = {"method": q.method, "float_pytorch": ctx.trained.metrics.test_accuracy,
           "int8_pytorch": q.int8_test_accuracy,
           "qat": qcfg.qat.model_dump() if q.method == "qat" else None,
           "ptq_int8_pytorch": q.ptq_test_accuracy,
           "control_int8_pytorch": q.control_test_accuracy, "qat_recovered_fraction": None}
    if q.ptq_test_accuracy is not None:
        loss = ctx.trained.metrics.test_accuracy - q.ptq_test_accuracy
        if loss > 0:
            out["qat_recovered_fraction"] = (q.int8_test_accuracy - q.ptq_test_accuracy) / loss
    return out


def _runtime_checks(board, validation, float_acc: float, vcfg) -> tuple[list, list, dict]:
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
        checks.append(accuracy_check(f"int8 accuracy on {name}", c.accuracy, float_acc, vcfg))
        if name == validation.reference:
            continue  # the reference itself: nothing to compare
        checks.append(Check(
            f"agreement of {name} with {validation.reference}",
            "PASS" if a.within_tolerance else "FAIL",
            f"max abs diff {a.max_abs_diff_lsb} LSB (tolerance ±{vcfg.tolerance_lsb} LSB), "
            f"top-1 agreement {100 * a.top1_agreement:.2f} %, {a.n_values_differing} of "
            f"{a.n_samples * c.n_outputs} output values differ", kind="agreement"))
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
    return Check("op support", status, "; ".join(r.describe() for r in results), kind="op_support")


def _emulated(board, validation, float_acc: float, vcfg) -> tuple[list[Check], dict | None]:
    """Checks and report data for the board's emulated runs, if any ran."""
    emu = validation.emulation.get(board.name)
    if emu is None:
        return [], None
    if emu.error:
        return [Check("emulated device image", "FAIL", emu.error, kind="emulation")], {"error": emu.error}
    checks, rows = [], {}
    for c in emu.checks:
        label = f"{c.runtime} on {board.cpu}"
        if not c.ok:
            checks.append(Check(label, "FAIL", c.error, kind="emulation"))
            rows[c.runtime] = {"ok": False, "error": c.error}
            continue
        a = c.agreement
        ok = a.within_tolerance and a.top1_agreement >= MIN_TOP1_AGREEMENT
        drop = (float_acc - c.accuracy) * 100.0
        ok = ok and drop <= vcfg.max_accuracy_drop_points and c.accuracy >= vcfg.min_top1
        checks.append(Check(label, "PASS" if ok else "FAIL",
                            f"top-1 {100 * c.accuracy:.2f} % (drop {drop:+.2f} points), max abs "
                            f"diff {a.max_abs_diff_lsb} LSB vs {validation.reference} (±"
                            f"{a.tolerance_lsb}), top-1 agreement {100 * a.top1_agreement:.2f} % "
                            f"(min {100 * MIN_TOP1_AGREEMENT:.0f} %)", kind="emulation"))
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
                 f"build is checked under emulation): {check.detail}", kind=check.kind)


def _tflm_side(ctx, board, model_file: str, footprint: dict) -> TflmSide:
    """What TFLM flashes and needs for the model on ``board``'s CPU (the generated C's
    comparison): the LUT-compressed copy with its DECODE code where the board flashes it,
    else the plain file the C came from with the uncompressed graph's kernels."""
    lut = footprint.get("lut_compression") or {}
    if lut.get("applied"):
        flash = footprint["flash"]
        return TflmSide(flash["model_file"], flash["model_file_bytes"],
                        flash["runtime_code_bytes"], lut["compressed_arena_bytes"])
    sizes = {i.path.name: i.file_bytes
             for i in (ctx.infos["tflite_int8"], ctx.infos["tflite_int8_stripped"])}
    code = ctx.runtime_code(board)  # the plain file's kernels, no DECODE code
    return TflmSide(model_file, sizes[model_file], code.total_bytes if code else None,
                    ctx.validation.arena.arena_bytes)


def _memory_facts(ctx, board, emu_data: dict | None):
    """Flash and RAM facts for one board (see ``tinyshare.pipeline.report.memory``)."""
    from tinyshare.pipeline.report.memory import MemoryFacts, arena_dict, linux_ram

    v = ctx.validation
    tfl, stripped = ctx.infos["tflite_int8"], ctx.infos["tflite_int8_stripped"]
    names_bytes = tfl.file_bytes - stripped.file_bytes
    strip = board.strip_tensor_names
    model = stripped if strip else tfl
    code = ctx.runtime_code(board)
    arena = None
    vela = v.vela.get(board.name)
    if vela is not None:
        return _vela_memory_facts(ctx, vela, code, names_bytes, strip)
    if board.os == "baremetal":
        arena = arena_dict(v.arena, ctx.arena_estimate, v.twin_arena, ctx.twin_arena_estimate)
        ram_need, ram_method, rss = v.arena.arena_bytes, (
            "measured: TFLM tensor arena, smallest size that allocates and invokes (binary "
            f"search, verified by a run at exactly that size); {v.arena.note}"), None
    else:
        ram_need, ram_method, rss = linux_ram(tfl, ctx.arena_estimate.planned_bytes, emu_data)
    return MemoryFacts(
        model_file=model.path.name, model_file_bytes=model.file_bytes,
        weights_bytes=model.stored_weight_bytes,
        weights_method="measured: read back from the file (int8 weights + int32 biases, each "
                       "stored tensor once)", tensor_names_bytes=names_bytes,
        names_stripped=strip, **_code_fields(code),
        ram_needed_bytes=ram_need, ram_method=ram_method, arena=arena, peak_rss_bytes=rss,
        activation_bytes=ctx.arena_estimate.planned_bytes)


def _code_fields(code, caveat: str = "") -> dict:
    """``MemoryFacts``' runtime-code fields from a ``RuntimeCode`` (or None: unknown)."""
    if code is None:
        return {"runtime_code_bytes": None, "runtime_code_per_kernel_bytes": {},
                "runtime_code_method": "unknown: no estimate for these runtimes",
                "runtime_code_detail": ""}
    return {"runtime_code_bytes": code.total_bytes, "runtime_code_method": code.method + caveat,
            "runtime_code_per_kernel_bytes": dict(code.per_kernel_bytes),
            "runtime_code_detail": code.detail}


def _vela_memory_facts(ctx, vela, code, names_bytes: int, strip: bool):
    """An Ethos-U board flashes Vela's optimized model; its arena is Vela's SRAM figure plus
    our estimate of TFLM's persistent allocations for the optimized graph."""
    from tinyshare.export.inspect import inspect_model
    from tinyshare.pipeline.report.memory import MemoryFacts, arena_dict
    from tinyshare.targets.arena_plan import estimate_tflm_arena

    v = ctx.validation
    persistent = estimate_tflm_arena(inspect_model(vela.optimized_model_path)).persistent_bytes
    return MemoryFacts(
        model_file=vela.optimized_model_path.name, model_file_bytes=vela.optimized_model_bytes,
        weights_bytes=min(vela.offchip_flash_bytes + vela.onchip_flash_bytes,
                          vela.optimized_model_bytes),
        weights_method="Vela's flash figure: encoded weights and the NPU command stream",
        tensor_names_bytes=names_bytes, names_stripped=strip,
        **_code_fields(code, "; the Ethos-U driver's code is not included"),
        ram_needed_bytes=vela.sram_bytes + persistent,
        ram_method=(f"Vela's total SRAM for the NPU's tensors ({vela.sram_bytes:,} B, Vela's "
                    f"figure) + estimate of TFLM's persistent allocations for the optimized "
                    f"graph ({persistent:,} B, 64-bit host build struct sizes)"),
        arena=arena_dict(v.arena, ctx.arena_estimate, v.twin_arena, ctx.twin_arena_estimate),
        peak_rss_bytes=None,
        activation_bytes=ctx.arena_estimate.planned_bytes)


def _budget_checks(fp, board) -> list[Check]:
    reserved = {"flash": board.reserved_flash_bytes, "ram": board.reserved_ram_bytes}
    checks = [Check(f"{vi.budget} budget", "FAIL", vi.message, kind="budget", budget=vi.budget,
                    need_bytes=vi.need_bytes, have_bytes=vi.have_bytes,
                    reserved_bytes=reserved[vi.budget])
              for vi in fp.reasons]
    if fp.verdict == "PASS":
        checks.append(Check("flash and RAM budgets", "PASS",
                            f"flash: needs {fp.flash_needed_bytes:,} B of {fp.flash_budget_bytes:,} B "
                            f"(headroom {fp.flash_headroom_bytes:,} B); RAM: needs "
                            f"{fp.ram_needed_bytes:,} B of {fp.ram_budget_bytes:,} B (headroom "
                            f"{fp.ram_headroom_bytes:,} B)", kind="budget"))
    return checks


def build_board_report(ctx, board) -> BoardReport:
    """Build one board's report from the run context ``ctx`` (see ``report_stage``)."""
    from tinyshare.pipeline.report.memory import assess_board

    v = ctx.validation
    vcfg = ctx.cfg.validation
    float_acc = v.float_pytorch_accuracy
    emu_checks, emu_data = _emulated(board, v, float_acc, vcfg)
    facts, lut = with_lut(ctx, board, _memory_facts(ctx, board, emu_data))
    fp, footprint = assess_board(board, facts)
    footprint["lut_compression"] = lut
    checks = _budget_checks(fp, board)
    rt_checks, runs, rows = _runtime_checks(board, v, float_acc, vcfg)
    checks += rt_checks
    checks += emu_checks
    checks.append(ctx.sharing_check)
    checks.append(_op_support(board, ctx.infos))
    vela = v.vela.get(board.name)
    per_layer, vela_data = ctx.per_layer, None
    if vela is not None:
        from tinyshare.pipeline.report.vela import fold_per_layer, vela_checks, vela_dict
        from tinyshare.targets.runtimes.tflm import tflm_registered_ops

        checks += vela_checks(vela, tflm_registered_ops().builtin_ops)
        per_layer, vela_data = fold_per_layer(ctx.per_layer, vela), vela_dict(vela, ctx.root)
    if facts.names_stripped:
        d = v.stripped_tflm_max_diff_lsb
        checks.append(Check("model without tensor names", "PASS" if d == 0 else "FAIL",
                            f"TFLM outputs of {ctx.infos['tflite_int8_stripped'].path.name} differ "
                            "from the named file's by "
                            f"at most {d} LSB (must be 0); stripping saves "
                            f"{facts.tensor_names_bytes:,} B of flash", kind="export"))
    checks += cluster_checks(board, v.codebook, ctx.lut, v.lut)
    codegen = v.codegen.get(board.name)
    if codegen is not None:
        check, footprint["generated_c"] = generated_c(
            codegen, _tflm_side(ctx, board, codegen.model_file, footprint),
            ctx.per_layer["tflite_int8"]["totals"]["macs"])
        checks.append(check)
    if v.onnx_level_finding and "onnxruntime" in board.runtimes:
        checks.append(Check("onnxruntime optimization levels (host build)", "FINDING",
                            v.onnx_level_finding, kind="agreement"))
    emu = v.emulation.get(board.name)
    if emu is not None and emu.error is None:
        # The board's own builds ran under emulation: they gate the verdict, and the host
        # (x86_64) builds' results stay in the report as facts.
        emulated_runs = {c.runtime.removesuffix(" (emulated)") for c in emu.checks}
        checks = [_as_host_info(c, emulated_runs) for c in checks]
        if emu.onnx_level_finding:
            checks.append(Check("onnxruntime optimization levels (emulated)", "FINDING",
                                emu.onnx_level_finding, kind="agreement"))
    verdict = "FAIL" if any(c.status == "FAIL" for c in checks) else "PASS"
    footprint["arena"] = {  # v1 keys, kept for readers of older reports
        "arena_bytes": v.arena.arena_bytes, "planner_reported_bytes": v.arena.planner_reported_bytes,
        "search_steps": v.arena.search_steps, "note": v.arena.note,
        "twin_arena_bytes": v.twin_arena.arena_bytes}
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
        "reasons": [c.as_dict() for c in checks if c.status == "FAIL"],
        "violations": [c.violation() for c in checks if c.status == "FAIL"],
        "checks": [c.as_dict() for c in checks],
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
            "max_accuracy_drop_points": vcfg.max_accuracy_drop_points,
            "min_top1": vcfg.min_top1,
            "quantization": _quantization_summary(ctx),
        },
        "agreement": {"reference": v.reference, "tolerance_lsb": v.tolerance_lsb,
                      "reference_description": "LiteRT's reference int8 kernels "
                      "(OpResolverType.BUILTIN_REF, no delegate), on this host",
                      "output_scale": ctx.quantized.shared.output_scale,
                      "output_zero_point": ctx.quantized.shared.output_zero_point,
                      "compared_on": "int8 output values (LSB of the output tensor)",
                      "runtimes": rows},
        "footprint": footprint,
        "per_layer": per_layer,
        "vela": vela_data,
        "emulated": emu_data,
        "ops": [{"index": o.index, "op": o.op_code, "version": o.version}
                for o in ctx.infos["tflite_int8"].ops],
        "provenance": ctx.provenance,
    }
    return BoardReport(board=board.name, verdict=verdict, data=data)
