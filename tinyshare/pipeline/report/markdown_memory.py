"""Markdown sections for a board's footprint: violations, flash and RAM breakdowns,
Vela's figures and the per-layer table."""

from __future__ import annotations

from tinyshare.pipeline.report.markdown_cluster import lut_flash_rows, lut_line, lut_ram_rows
from tinyshare.pipeline.report.markdown_table import bytes_text as _b
from tinyshare.pipeline.report.markdown_table import table as _table

_NAME_CHARS = 40


def _short(name: str) -> str:
    """A tensor name cut to its tail, for tables (full names stay in report.json)."""
    return name if len(name) <= _NAME_CHARS else "…" + name[-(_NAME_CHARS - 1):]


def _shape(s) -> str:
    return "?" if s is None else "×".join(str(d) for d in s)


def violations_section(r: dict) -> list[str]:
    """Every FAIL, typed; budget violations give need / have / reserved."""
    if not r["violations"]:
        return []
    rows = []
    for v in r["violations"]:
        numbers = ""
        if v.get("budget"):
            numbers = (f"need {_b(v['need_bytes'])} / have {_b(v['have_bytes'])} "
                       f"(reserved {_b(v['reserved_bytes'])})")
        rows.append([v["kind"], v["check"], numbers, v["detail"]])
    return ["## Violations", "", _table(["kind", "check", "need / have", "detail"], rows), ""]


def flash_section(r: dict) -> list[str]:
    """The flash breakdown of one board report ``r``: parts, budget, stripping, kernels."""
    f, lut = r["footprint"]["flash"], r["footprint"].get("lut_compression")
    stripped_ok = all(c["status"] != "FAIL" for c in r["checks"]
                      if c["name"] == "model without tensor names")
    code = (_b(f["runtime_code_bytes"]) + " (estimate)" if f["runtime_code_bytes"] is not None
            else "unknown")
    rows = [
        ["weights", _b(f["weights_bytes"]), f["weights_method"]],
        ["graph and metadata (ops, tensor descriptors, quantization, names)",
         _b(f["graph_overhead_bytes"]), "measured: file bytes - weights"],
        [f"model file `{f['model_file']}`", _b(f["model_file_bytes"]), "measured: file size"],
        *lut_flash_rows(lut),
        ["runtime code", code, f["runtime_code_method"]],
        ["**needed**", f"**{_b(f['needed_bytes'])}**", "model file + runtime code"],
        ["budget (flash - reserved)", _b(f["budget_bytes"]),
         f"{_b(f['total_bytes'])} flash - {_b(f['reserved_bytes'])} reserved for the "
         "bootloader / OS / application"],
        ["headroom", _b(f["headroom_bytes"]), ""],
    ]
    strip = (f"The board flashes the file without tensor names, which saves "
             f"{_b(f['tensor_names_bytes'])} "
             + ("(TFLM outputs checked identical)." if stripped_ok else
                "**but its TFLM outputs differ from the named file's: see the checks**.")
             if f["names_stripped"] else
             f"Stripping tensor names would save {_b(f['tensor_names_bytes'])}; this board "
             "profile keeps them (`strip_tensor_names = false`).")
    lines = ["## Flash", "", _table(["part", "bytes", "how"], rows), "", strip, "",
             *lut_line(lut)]
    kernels = f["runtime_code_per_kernel_bytes"]
    if kernels:
        lines += ["Runtime code per part (estimate):", "",
                  _table(["part", "bytes"], [[k, _b(v)] for k, v in kernels.items()]), ""]
    if f.get("runtime_code_detail"):
        lines += [f"How the runtime code was estimated: {f['runtime_code_detail']}", ""]
    return lines


def ram_section(fp: dict) -> list[str]:
    """The RAM breakdown of one board's ``footprint``, with the TFLM arena measured against
    our estimate."""
    m = fp["ram"]
    rows = [["**needed**", f"**{_b(m['needed_bytes'])}**", m["method"]],
            ["budget (RAM - reserved)", _b(m["budget_bytes"]),
             f"{_b(m['total_bytes'])} RAM - {_b(m['reserved_bytes'])} reserved"],
            ["headroom", _b(m["headroom_bytes"]), ""],
            ["model bytes", _b(m["model_bytes"]), "the model file"],
            ["activation bytes", _b(m["activation_bytes"]),
             "offline plan of the int8 .tflite's tensor lifetimes"],
            *lut_ram_rows(fp.get("lut_compression"))]
    if m["peak_rss_bytes"] is not None:
        rows.append(["peak RSS (emulated)", _b(m["peak_rss_bytes"]),
                     "measured under qemu-user"])
    lines = ["## RAM", "", _table(["part", "bytes", "how"], rows), ""]
    a = m["arena"]
    which = "uncompressed " if (fp.get("lut_compression") or {}).get("applied") else ""
    if a:
        lines += [
            f"TFLM arena of the {which}int8 .tflite run on the CPU, measured against our offline "
            f"estimate ({a['build']}):", "",
            _table(["figure", "bytes", "how"], [
                ["measured", _b(a["measured_bytes"]), a["measured_method"]],
                ["estimate", _b(a["estimate_bytes"]),
                 f"head: the larger of planned activations {_b(a['estimate_planned_bytes'])} "
                 f"and planning bookkeeping {_b(a.get('estimate_planning_temp_bytes'))}; "
                 f"+ persistent {_b(a['estimate_persistent_bytes'])}; {a['estimate_method']}"],
                ["difference", f"{a['difference_bytes']:+,} B ({a['difference_percent']:+.2f} %)",
                 "estimate - measured"],
                ["unshared twin, measured", _b(a["twin_measured_bytes"]), ""],
                ["unshared twin, estimate", _b(a["twin_estimate_bytes"]),
                 f"{a['twin_estimate_bytes'] - a['twin_measured_bytes']:+,} B against measured"],
            ]), ""]
        planner = a["planner_reported_bytes"]
        if planner is not None and planner != a["measured_bytes"]:
            lines += [f"TFLM's own allocation total, {_b(planner)}, is "
                      f"{a['measured_bytes'] - planner:,} B short of what the model needs: "
                      "it leaves out the planner's scratch.", ""]
    return lines


def vela_section(vela: dict | None) -> list[str]:
    """Vela's figures for an Ethos-U board (nothing for other boards)."""
    if not vela:
        return []
    cpu = vela["cpu_ops"]
    rows = [["total SRAM (Vela's plan)", _b(vela["sram_bytes"])],
            ["off-chip flash (Vela's plan)", _b(vela["offchip_flash_bytes"])],
            ["ops on the NPU / CPU", f"{vela['npu_ops']} / {len(cpu)}"],
            ["NPU cycles (Vela's estimate)", f"{vela['total_cycles']:,}"],
            ["inference time (Vela's estimate)",
             f"{vela['inference_time_ms']:.3f} ms at {vela['npu_clock_hz'] / 1e6:g} MHz"]]
    lines = ["## Ethos-U (Vela)", "",
             f"Command, from the run folder: `{vela['command']}` (Vela {vela['vela_version']}; {vela['accelerator_config']}, "
             f"{vela['system_config']}, {vela['memory_mode']}). {vela['label']}.", "",
             _table(["figure", "value"], rows), ""]
    if cpu:
        lines += ["Ops left on the CPU (run by TFLM), with Vela's reason:", "",
                  _table(["op", "node", "reason"],
                         [[c["op"], _short(c["node"]), c["reason"]] for c in cpu]), ""]
    return lines


def per_layer_section(per_layer: dict, with_vela: bool) -> list[str]:
    """The per-layer table of the int8 .tflite, with Vela's columns on Ethos-U boards."""
    t = per_layer["tflite_int8"]
    header = ["#", "op", "v", "output", "input shapes", "output shapes", "MACs", "params",
              "weight bytes", "activation bytes", "live (ops)"]
    if with_vela:
        header += ["Vela: on", "cycles (Vela's estimate)", "staging SRAM (Vela)"]
    rows = []
    for row in t["rows"]:
        shared = "".join(f" (shares {s['storage']}, counted at op {s['first_op']})"
                         for s in row["shared"] if s["first_op"] != row["index"])
        cells = [row["index"], row["op"], row["version"], f"`{_short(row['name'])}`",
                 ", ".join(_shape(s) for s in row["input_shapes"]),
                 ", ".join(_shape(s) for s in row["output_shapes"]),
                 f"{row['macs']:,}", f"{row['unique_params']:,}",
                 f"{row['weight_bytes']:,}{shared}", f"{row['activation_bytes']:,}",
                 "" if row["lifetime"] is None else f"{row['lifetime'][0]}–{row['lifetime'][1]}"]
        if with_vela:
            v = row.get("vela") or {}
            cells += [v.get("placement", "") + (" (folded)" if v.get("elided") else ""), f"{v['cycles']:,}" if v.get("cycles") else "",
                      _b(v["staging_sram_bytes"]) if v.get("staging_sram_bytes") is not None
                      else ""]
        rows.append(cells)
    tot = t["totals"]
    return [
        f"## Per-layer table (`{t['file']}`, graph order)", "",
        "Weight bytes are attributed once, to the first op that reads a stored tensor; later "
        "readers of a shared tensor name it. Parameters are the stored elements of this file "
        "(int32 biases are stored once per call site, so they can exceed the PyTorch model's "
        "unique parameters). Shapes are NHWC as stored. An op Vela folds away shows "
        "\"NPU (folded)\".", "",
        _table(header, rows), "",
        f"Totals: {tot['macs']:,} MACs, {tot['unique_params']:,} unique parameters, "
        f"{_b(tot['weight_bytes'])} stored weights, peak live activations "
        f"{_b(tot['peak_live_activation_bytes'])} (before packing).", "",
    ]
