"""Markdown renderings of the reports, for people."""

from __future__ import annotations

from tinyshare.pipeline.report.generated_c import generated_c_section, generated_c_summary
from tinyshare.pipeline.report.markdown_cluster import cluster_section
from tinyshare.pipeline.report.markdown_memory import (
    flash_section,
    per_layer_section,
    ram_section,
    vela_section,
    violations_section,
)
from tinyshare.pipeline.report.markdown_table import bytes_text as _b
from tinyshare.pipeline.report.markdown_table import percent_text as _pct
from tinyshare.pipeline.report.markdown_table import table as _table


def _storage_rows(storage: dict) -> list[list[object]]:
    rows = []
    for key in ("tflite_int8", "onnx_int8", "twin_tflite_int8", "twin_onnx_int8",
                "tflite_float", "onnx_float"):
        s = storage[key]
        rows.append([key, _b(s["file_bytes"]), _b(s["stored_weight_bytes"]),
                     s["stored_weight_tensors"], len(s["shared_storage_groups"])])
    return rows


def _reference_line(ref: dict | None, storage: dict) -> str:
    if not ref:
        return ""
    return (f"MLPerf Tiny reference for this architecture: {ref['benchmark']}, int8 .tflite "
            f"≈ {ref['int8_model_bytes'] // 1000} KB as published ({ref['source']}); this "
            f"run's int8 .tflite: {_b(storage['tflite_int8']['file_bytes'])} shared, "
            f"{_b(storage['twin_tflite_int8']['file_bytes'])} for the unshared twin, at the "
            "configured width.")


def _sharing_section(model: dict, storage: dict) -> list[str]:
    saved = storage["saved_by_sharing_bytes"]
    out = [
        "## Weight sharing",
        "",
        f"Unique parameters (float elements): **{model['unique_params']:,}** shared vs "
        f"**{model['twin_params']:,}** as used, which is what the unshared twin (same "
        "topology, independent weights, trained on its own) stores.",
        f"Stored weight bytes saved by sharing in the int8 files: TFLite {_b(saved['tflite'])}, "
        f"ONNX {_b(saved['onnx'])}.",
        _reference_line(model.get("mlperf_reference"), storage),
        "",
        "Shared parameters (element counts of the float model; in the int8 files a "
        "conv/linear bias is stored once per call site as int32, because its scale is the "
        "call site's input scale × the weight scale):",
        "",
        _table(["parameter", "shape", "elements stored", "call sites",
                "elements in the twin", "kind"],
               [[g["name"], "×".join(map(str, g["shape"])), g["stored_params"],
                 g["call_sites"], g["twin_params"], g["kind"]]
                for g in model["sharing_groups"]]),
        "",
        "Bytes per exported file (stored weights = int8/float weights and int32 biases, "
        "each stored tensor counted once; file bytes add the graph and tensor metadata):",
        "",
        _table(["model", "file bytes", "stored weight bytes", "stored weight tensors",
                "tensors read by >1 op"], _storage_rows(storage)),
        "",
        "A shared file can be larger than the twin's although it stores fewer weight bytes: "
        "the TRANSPOSE-free deploy form of the shared depthwise conv adds RESHAPE ops "
        "(Transpose + Reshape in the NCHW ONNX graph), and their outputs are extra tensors "
        "in the TFLM arena. The converter's zero int32 bias for a bias-less conv is stored "
        "once and read by every such conv, so it shows as a shared tensor too.",
        "",
    ]
    return out


def _emulated_section(emu: dict | None, os_name: str) -> list[str]:
    if emu is None and os_name != "linux":
        return ["## On-device checks (emulated)", "",
                "None: emulated runs cover Linux boards (qemu-user); this board's TFLM ran "
                "as its 64-bit host build.", ""]
    if emu is None:
        return ["## On-device checks (emulated)", "",
                "Not run: enable with `--set validation.emulate=true` "
                "(`make validate-<board>`).", ""]
    if "error" in emu:
        return ["## On-device checks (emulated)", "", f"**Failed:** {emu['error']}", ""]
    rows = []
    for name, v in emu["runtimes"].items():
        if not v["ok"]:
            rows.append([name, "**failed**", v["error"], "", "", "", "", ""])
            continue
        rows.append([name, v["runtime_version"], _pct(v["accuracy"]),
                     _pct(v["top1_agreement"]), v["max_abs_diff_lsb"],
                     f"{v['load_ms']:.0f} ms" if v["load_ms"] is not None else "n/a",
                     f"{v['peak_rss_kb'] / 1024:.0f} MiB" if v["peak_rss_kb"] else "not measured",
                     f"`{v['command']}`"])
    return [
        "## On-device checks (emulated)", "",
        f"Emulator: {emu['emulator']}; device image `{emu['image_key']}` "
        f"(manifest `{emu['image_manifest']}`, ready in {emu['image_seconds']} s). "
        f"{emu['note']}.", "",
        _table(["runtime", "version", "top-1", "top-1 agreement with host reference",
                "max abs diff (LSB)", "model load (emulated)", "peak RSS (guest view)",
                "command"], rows),
        "",
    ]


def board_markdown(r: dict) -> str:
    """Render one board's ``report.json`` dict as Markdown."""
    b, fp, acc, agr = r["board"], r["footprint"], r["accuracy"], r["agreement"]
    lines = [
        f"# {b['display_name']} (`{b['name']}`): **{r['verdict']}**",
        "",
        f"Run `{r['run']}` · model `{r['model']['name']}` · {b['cpu']} @ "
        f"{b['clock_hz'] / 1e6:g} MHz · runtimes: {', '.join(b['runtimes'])}",
        "",
        "## Checks",
        "",
        _table(["check", "status", "detail"],
               [[c["name"], c["status"], c["detail"]] for c in r["checks"]]),
        "",
    ]
    lines += violations_section(r)
    lines += flash_section(r)
    lines += ram_section(fp)
    lines += [f"- {n}" for n in fp["notes"]]
    lines += ["", *generated_c_section(fp)] if fp.get("generated_c") else []
    lines += vela_section(r.get("vela"))
    lines += cluster_section(r)
    lines += [
        "",
        "## Accuracy (top-1 on the test split, "
        f"{acc['n_samples']} samples)",
        "",
        _table(["model", "runtime", "top-1"],
               [["float", "PyTorch", _pct(acc["float_pytorch"])]]
               + [["float", k, _pct(v)] for k, v in acc["float_host_runtimes"].items()]
               + [["int8", "PyTorch (PT2E Q/DQ)", _pct(acc["int8_pytorch_pt2e"])],
                  ["int8", f"{acc['int8_reference']['runtime']} (reference)",
                   _pct(acc["int8_reference"]["accuracy"])]]
               + [["int8", k, _pct(v)] for k, v in acc["int8_runtimes"].items()
                  if k != acc["int8_reference"]["runtime"]]
               + [["unshared twin, float", "PyTorch", _pct(acc["twin_float_pytorch"])],
                  ["unshared twin, int8", "litert-ref", _pct(acc["twin_int8_litert_ref"])]]),
        "",
        quantization_line(acc.get("quantization")),
        "",
        f"## Agreement with `{agr['reference']}` (tolerance ±{agr['tolerance_lsb']} LSB)",
        "",
        f"The reference is {agr['reference_description']}. Differences are in LSB of the int8 "
        f"output (scale {agr['output_scale']:.6g}, zero point {agr['output_zero_point']}).",
        "",
        _table(["runtime", "version", "top-1 agreement", "max abs diff (LSB)",
                "values differing", "within tolerance", "host wall time, whole split"],
               [[k, v["runtime_version"], _pct(v["top1_agreement"]), v["max_abs_diff_lsb"],
                 v["n_values_differing"], "yes" if v["within_tolerance"] else "**no**",
                 f"{v['host_wall_ms']:.0f} ms (host incl. model load; not a device latency)"]
                for k, v in agr["runtimes"].items()]),
        "",
    ]
    lines += _emulated_section(r.get("emulated"), b["os"])
    lines += _sharing_section(r["model"], r["storage"])
    lines += [
    ]
    lines += per_layer_section(r["per_layer"], with_vela=bool(r.get("vela")))
    lines += [
        "## Provenance",
        "",
        f"- Command: `{r['provenance']['command']}`; seed {r['provenance']['seed']}.",
        f"- {r['provenance']['execution']}.",
        *([f"- Reused from an earlier run with the same inputs (files checked against their "
           f"manifests): {', '.join(r['provenance']['reused_stages'])}."]
          if r["provenance"].get("reused_stages") else []),
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in r["provenance"]["versions"].items()),
        "- Sources for the board's figures: " + ", ".join(b["sources"]),
        "",
    ]
    return "\n".join(lines)


def summary_markdown(run: str, reports: list[dict], storage: dict, model: dict) -> str:
    """Render the side-by-side summary of every board."""
    rows = []
    for r in reports:
        fp, b = r["footprint"], r["board"]
        worst = max((v["max_abs_diff_lsb"] for v in r["agreement"]["runtimes"].values()),
                    default=0)
        int8 = r["accuracy"]["int8_runtimes"]
        rows.append([
            f"[{b['name']}](boards/{b['name']}/report.md)", f"**{r['verdict']}**",
            ", ".join(b["runtimes"]), _pct(min(int8.values())) if int8 else "n/a",
            worst, _b(fp["flash_needed_bytes"]), _b(fp["flash_headroom_bytes"]),
            _b(fp["ram_needed_bytes"]), _b(fp["ram_headroom_bytes"]),
        ])
    first = reports[0]["accuracy"] if reports else None
    lines = [
        f"# tinyshare run `{run}`: summary",
        "",
        f"Model `{model['name']}`, input {model['input_shape_nchw']} (NCHW; the .tflite "
        f"takes NHWC), {model['num_classes']} classes. Data: {model['data']['source']}, "
        f"splits {model['data']['sizes']}.",
        "",
    ]
    if first:
        lines += [f"Float top-1 (PyTorch): {_pct(first['float_pytorch'])}; int8 (PyTorch "
                  f"PT2E): {_pct(first['int8_pytorch_pt2e'])}; int8 on the reference "
                  f"({first['int8_reference']['runtime']}): "
                  f"{_pct(first['int8_reference']['accuracy'])}. The unshared twin: float "
                  f"{_pct(first['twin_float_pytorch'])}, int8 (litert-ref) "
                  f"{_pct(first['twin_int8_litert_ref'])}. Top-1 on {first['n_samples']} test "
                  "samples.", "", quantization_line(first.get("quantization")), ""]
    lines += [
        _table(["board", "verdict", "runtimes", "worst int8 top-1",
                "worst max abs diff vs reference (LSB)",
                "flash needed", "flash headroom", "RAM needed", "RAM headroom"], rows),
        "",
        "Flash needed includes the runtime code, an estimate; RAM needed is measured (TFLM "
        "arena; peak RSS of emulated Linux guests) or, where a board's report says so, an "
        "estimate. Each board's report gives every figure's method.",
        "",
        "All runs are host runs of each runtime; no number here is a device latency.",
        "",
    ]
    lines += generated_c_summary(reports)
    lines += _sharing_section(model, storage)
    return "\n".join(lines)


def quantization_line(q: dict | None) -> str:
    """One line on how the int8 model was made (PTQ, or QAT with what it recovered)."""
    if not q:
        return ""
    if q["method"] == "ptq":
        return (f"Quantization: post-training (PT2E PTQ). PyTorch top-1 on the whole test "
                f"split: float {_pct(q['float_pytorch'])}, int8 {_pct(q['int8_pytorch'])}.")
    qat = q["qat"]
    line = (f"Quantization: QAT, {qat['epochs']} epochs of fake-quantized fine-tuning at lr "
            f"{qat['lr']:g} after training. PyTorch top-1 on the whole test split: float "
            f"{_pct(q['float_pytorch'])}, int8 by PTQ {_pct(q['ptq_int8_pytorch'])}, by QAT "
            f"{_pct(q['int8_pytorch'])}")
    frac = q["qat_recovered_fraction"]
    line += ("; PTQ lost nothing, so there was no loss to recover" if frac is None
             else f": QAT recovers {100 * frac:.0f} % of the PTQ loss")
    ctl = q["control_int8_pytorch"]
    line += (f". Control: the float model fine-tuned as long without fake quantization, then "
             f"PTQ: {_pct(ctl)}")
    gain = 100 * (q["int8_pytorch"] - ctl)
    if gain > 0:
        return line + f"; QAT is {gain:.2f} points above it, which fake quantization adds."
    return line + ("; QAT is not above it: on this config the gain over PTQ comes from the "
                   "extra training, not from fake quantization.")
