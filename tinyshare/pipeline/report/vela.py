"""Ethos-U boards in the report: Vela's figures, its per-layer rows folded into ours, and
the NPU/CPU op split as checks. Every cycle and time figure is Vela's estimate."""

from __future__ import annotations

import copy
import shlex
from pathlib import Path

from tinyshare.pipeline.report.checks import Check

VELA_LABEL = "Vela's estimate, not a measurement"


def vela_dict(rep, run_root) -> dict:
    """The report's ``vela`` entry from a ``tinyshare.targets.vela.VelaReport``; paths in
    the command are relative to the run folder ``run_root``, where it reruns as written."""
    prefix = f"{Path(run_root).absolute()}/"
    command = shlex.join(part.replace(prefix, "") for part in rep.command)
    return {
        "vela_version": rep.vela_version, "command": command,
        "accelerator_config": rep.accelerator_config, "system_config": rep.system_config,
        "memory_mode": rep.memory_mode, "sram_bytes": rep.sram_bytes,
        "offchip_flash_bytes": rep.offchip_flash_bytes,
        "onchip_flash_bytes": rep.onchip_flash_bytes,
        "optimized_model": rep.optimized_model_path.name,
        "optimized_model_bytes": rep.optimized_model_bytes,
        "npu_ops": rep.npu_ops,
        "cpu_ops": [{"op": c.op, "node": c.name, "index": c.tflite_op_index, "reason": c.reason}
                    for c in rep.cpu_ops],
        "elided_ops": list(rep.elided_ops),
        "total_cycles": rep.total_cycles, "npu_cycles": rep.npu_cycles, "macs": rep.macs,
        "inference_time_ms": rep.inference_time_ms, "npu_clock_hz": rep.npu_clock_hz,
        "vela_inference_time_ms": rep.vela_inference_time_ms,
        "vela_clock_hz": rep.vela_clock_hz, "estimate_method": rep.estimate_method,
        "label": VELA_LABEL,
    }


def fold_per_layer(per_layer: dict, rep) -> dict:
    """A copy of ``per_layer`` whose TFLite rows carry Vela's per-layer figures.

    Vela's rows are keyed by TFLite op index; an op Vela splits into several rows gets their
    sums, an op Vela folds away gets placement "NPU" with 0 cycles.
    """
    out = copy.deepcopy(per_layer)
    by_op: dict[int, list] = {}
    for layer in rep.per_layer:
        if layer.tflite_op_index is not None:
            by_op.setdefault(layer.tflite_op_index, []).append(layer)
    cpu = {c.tflite_op_index for c in rep.cpu_ops}
    for row in out["tflite_int8"]["rows"]:
        layers = by_op.get(row["index"], [])
        utils = [la.mac_utilisation_pct for la in layers if la.mac_utilisation_pct is not None]
        row["vela"] = {
            "placement": "CPU" if row["index"] in cpu else "NPU",
            "cycles": sum(la.cycles for la in layers),
            "staging_sram_bytes": max((la.staging_sram_bytes for la in layers), default=0),
            "macs": sum(la.macs for la in layers),
            "utilisation_percent": max(utils) if utils else None,
            "elided": row["index"] in rep.elided_ops,
        }
    return out


def vela_checks(rep, tflm_ops: frozenset[str]) -> list[Check]:
    """The NPU/CPU split, and a FAIL for each op left on the CPU that TFLM cannot run."""
    cpu = rep.cpu_ops
    split = (f"{rep.npu_ops} of {rep.tflite_ops} ops on the NPU ({rep.accelerator_config}), "
             f"{len(cpu)} on the CPU" + (": " + "; ".join(
                 f"{c.op} (op {c.tflite_op_index}, {c.name or 'unnamed'}): {c.reason}" for c in cpu)
                 if cpu else ""))
    checks = [Check("Ethos-U op split (Vela)", "INFO", split, kind="op_support")]
    missing = [c for c in cpu if c.op not in tflm_ops]
    if missing:
        checks.append(Check("ops left on the CPU", "FAIL", "; ".join(
            f"{c.op} (op {c.tflite_op_index}, node {c.name or 'unnamed'}) is not supported on "
            f"the NPU ({c.reason}) and TFLM does not register it" for c in missing),
            kind="op_support"))
    return checks
