"""``report.html``: one self-contained page per run (inline CSS and SVG, no scripts).

Built from the run summary ``{"run", "model", "storage", "boards": [board report, ...]}``
(board reports as in ``report.json``, version 2). Every string taken from a report is
escaped; optional parts (Vela, the TFLM arena on Linux boards, peak RSS, runtime code
size) may be null.
"""

from __future__ import annotations

from tinyshare.pipeline.report import plots
from tinyshare.pipeline.report.html_generated_c import generated_c_html
from tinyshare.pipeline.report.html_table import esc as _e
from tinyshare.pipeline.report.html_table import get_path as _get
from tinyshare.pipeline.report.html_table import pct as _pct
from tinyshare.pipeline.report.html_table import table as _table
from tinyshare.pipeline.report.markdown_table import bytes_text as _b

__all__ = ["run_html"]

_CSS = """
body{margin:0;background:#eef0f3;color:#1d2433;
 font:14px/1.45 "DejaVu Sans","Liberation Sans",system-ui,sans-serif}
main{max-width:1320px;margin:0 auto;padding:20px 36px 48px;background:#fff}
h1{font-size:26px;margin:8px 0 4px}h2{font-size:20px;margin:34px 0 8px;
 border-bottom:2px solid #d9dde3;padding-bottom:4px}h3{font-size:16px;margin:18px 0 6px}
p.meta{margin:2px 0;color:#444}p.note{color:#555;font-size:13px;margin:6px 0}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums;margin:6px 0}
th,td{padding:5px 8px;border-bottom:1px solid #e3e6ea;text-align:left;vertical-align:top}
th{background:#f3f5f8;font-weight:600;font-size:13px}tfoot td{font-weight:600;
 border-top:2px solid #c9ced6}td.num,th.num{text-align:right;white-space:nowrap}
table.small{font-size:12px}table.small td,table.small th{padding:3px 6px}
.badge{display:inline-block;padding:1px 10px;border-radius:10px;font-weight:700;color:#fff}
.PASS{background:#2e9e44}.FAIL{background:#d62828}.kind{display:inline-block;
 padding:0 6px;border-radius:4px;background:#fde2e2;color:#8a1c1c;font-size:12px}
.meter{display:inline-block;width:70px;height:8px;background:#e6e9ee;border-radius:4px;
 margin-left:6px;vertical-align:middle;overflow:hidden}.meter span{display:block;height:100%;
 background:#1f6fb4}.meter span.over{background:#d62828}.sub{color:#666;font-size:12px}
.nowrap{white-space:nowrap}table.boards td:first-child{min-width:190px}
table.boards td:nth-child(3),table.boards td:nth-child(4){min-width:175px}
table.boards td:nth-child(7){min-width:215px}table.boards .sub{overflow-wrap:anywhere}
table.kv,table.compact{width:auto;min-width:50%}table.kv td.num,table.boards td.num{text-align:left}
.name{max-width:190px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.vela{background:#f4f0fb}.est{color:#6a3fb5;font-weight:600}
figure{margin:14px 0 22px}figure svg{max-width:100%;height:auto;display:block}
figcaption{color:#555;font-size:13px;margin-top:4px}code{font-size:12px;background:#f3f5f8;
 padding:1px 4px;border-radius:3px;word-break:break-all}ul{margin:4px 0 8px}
details summary{cursor:pointer;color:#1f6fb4;margin:6px 0}
"""


def _usage(need: int | None, budget: int | None) -> str:
    """``need`` of ``budget``, the percentage and a small meter, as HTML."""
    if need is None or not budget:
        return f"<b>{_e(_b(need))}</b> of {_e(_b(budget))}"
    pct = 100.0 * need / budget
    text = "&lt;0.01 %" if 0 < pct < 0.01 else f"{pct:.2f} %"
    over = ' class="over"' if pct > 100 else ""
    return (f"<b>{_b(need)}</b> <span class=\"nowrap\">of {_b(budget)}</span><br>{text}"
            f"<span class=\"meter\"><span{over} "
            f'style="width:{min(100.0, pct):.1f}%"></span></span>')


def _verdict(v: str) -> str:
    cls = "PASS" if v == "PASS" else "FAIL"
    return f'<span class="badge {cls}">{_e(v)}</span>'


def _flash(r: dict) -> dict:
    fp = r["footprint"]
    return fp.get("flash") or {"needed_bytes": fp.get("flash_needed_bytes"),
                                "budget_bytes": fp.get("flash_budget_bytes")}


def _ram(r: dict) -> dict:
    fp = r["footprint"]
    return fp.get("ram") or {"needed_bytes": fp.get("ram_needed_bytes"),
                             "budget_bytes": fp.get("ram_budget_bytes")}


def _arena_cell(r: dict) -> str:
    a = _get(r, "footprint", "ram", "arena")
    if a is None:
        return '<span class="sub">none (no TFLM arena on this board)</span>'
    measured, estimate = a["measured_bytes"], a["estimate_bytes"]
    diff = estimate - measured
    rel = f" ({100.0 * diff / measured:+.1f} %)" if measured else ""
    lut = _get(r, "footprint", "lut_compression")
    lut_text = (f"<br><b>{lut['compressed_arena_bytes']:,} B</b> measured, LUT-compressed model "
                "(flashed; the figures above are the uncompressed model's)"
                if lut and lut.get("applied") else "")
    return (f"<b>{measured:,} B</b> measured<br>{estimate:,} B estimate<br><span class=\"sub\">"
            f"estimate − measured: {diff:+,} B{rel}<br>{_e(a['build'])}</span>{lut_text}")


def _board_rows(boards: list[dict]) -> list[list[str]]:
    rows = []
    for r in boards:
        b, flash, ram = r["board"], _flash(r), _ram(r)
        int8 = r["accuracy"]["int8_runtimes"]
        worst_acc = min(int8, key=int8.get) if int8 else None
        agr = r["agreement"]["runtimes"]
        worst_lsb = max(agr, key=lambda k: agr[k]["max_abs_diff_lsb"]) if agr else None
        rss = ram.get("peak_rss_bytes")
        ram_sub = (f"peak RSS {_b(rss)} (emulated)" if rss is not None
                   else "peak RSS not measured" if b["os"] == "linux" else "")
        code_note = ("runtime code not counted" if "runtime_code_bytes" in flash
                     and flash["runtime_code_bytes"] is None else "")
        lut = _get(r, "footprint", "lut_compression")
        if lut and lut.get("applied"):
            code_note += ("; " if code_note else "") + (
                f"LUT-compressed model {lut['compressed_model_file_bytes']:,} B (uncompressed "
                f"{lut['uncompressed_model_file_bytes']:,} B)")
        rows.append([
            f"<b>{_e(b['name'])}</b><br><span class=\"sub\">{_e(b['display_name'])} · "
            f"{_e(b['cpu'])} · {_e(', '.join(b['runtimes']))}</span>",
            _verdict(r["verdict"]),
            _usage(flash.get("needed_bytes"), flash.get("budget_bytes"))
            + (f'<br><span class="sub">{code_note}</span>' if code_note else ""),
            _usage(ram.get("needed_bytes"), ram.get("budget_bytes"))
            + (f'<br><span class="sub">{_e(ram_sub)}</span>' if ram_sub else ""),
            "n/a" if worst_acc is None else
            f"{_pct(int8[worst_acc])}<br><span class=\"sub\">{_e(worst_acc)}</span>",
            "n/a" if worst_lsb is None else
            f"{agr[worst_lsb]['max_abs_diff_lsb']} LSB <span class=\"sub\">(tolerance ±"
            f"{_e(r['agreement']['tolerance_lsb'])})<br>{_e(worst_lsb)}</span>",
            _arena_cell(r),
        ])
    return rows


def _boards_section(boards: list[dict]) -> str:
    table = _table(["board", "verdict", "flash needed / budget", "RAM needed / budget",
                    "worst int8 top-1", "worst max |diff| vs reference", "TFLM arena"],
                   _board_rows(boards), "boards")
    return ("<h2>Boards</h2>" + table + '<p class="note">Budgets are each board\'s flash and '
            "RAM less its reserved bytes. Flash needed includes the runtime code, an estimate "
            "(method in each board's report); RAM needed is measured (TFLM arena; peak RSS of "
            "emulated Linux guests) or, where the board's report says so, an estimate. Top-1 "
            "on the test split; |diff| in LSB of the int8 output against the reference runtime."
            "</p>")


def _violation(v: dict) -> str:
    text = f'<span class="kind">{_e(v["kind"])}</span> <b>{_e(v["check"])}</b>: {_e(v["detail"])}'
    if v["kind"] == "budget":
        text += (f' <span class="sub">({_e(v.get("budget"))}: need {_e(_b(v.get("need_bytes")))},'
                 f' have {_e(_b(v.get("have_bytes")))}, reserved '
                 f'{_e(_b(v.get("reserved_bytes")))})</span>')
    return f"<li>{text}</li>"


def _violations_section(boards: list[dict]) -> str:
    out = ["<h2>Violations</h2>"]
    clean = [_e(r["board"]["name"]) for r in boards if not r.get("violations")]
    if clean:
        out.append(f'<p class="note">No violations: {", ".join(clean)}.</p>')
    for r in boards:
        if r.get("violations"):
            out.append(f"<h3>{_e(r['board']['name'])} {_verdict(r['verdict'])}</h3><ul>"
                       + "".join(_violation(v) for v in r["violations"]) + "</ul>")
    return "".join(out)


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{_e(caption)}</figcaption></figure>"


def _first(boards: list[dict], *keys: str):
    return next((v for v in (_get(r, *keys) for r in boards) if v is not None), None)


def _plots_section(summary: dict) -> str:
    boards = summary["boards"]
    out = ["<h2>Plots</h2>"]
    table = _first(boards, "per_layer", "tflite_int8")
    if table is not None:
        out.append(_figure(plots.layer_memory_svg(table), "Bytes per op of the int8 .tflite, "
                           "graph order: stored weights (a shared tensor counts at its first "
                           "use) and the op's output activations."))
    if boards:
        out.append(_figure(plots.accuracy_flash_svg(boards), "Each board's lowest int8 top-1 "
                           "across its runtimes against its flash need (model file, plus the "
                           "runtime's code where its size is known). Boards on the same point are drawn side by "
                           "side, in the order of their label."))
    return "".join(out)


def _shape(s: list | None) -> str:
    return "–" if s is None else "×".join(str(d) for d in s) or "scalar"


def _shape_html(s: list | None) -> str:
    """A shape as text that neither wraps nor right-aligns as a number (``8`` for ``[8]``)."""
    return f'<span class="nowrap">{_e(_shape(s))}</span>'


def _shared_cell(shared: list[dict]) -> str:
    return "<br>".join(f"<span class=\"nowrap\">{_e(s['storage'])} <span class=\"sub\">op "
                       f"{s['first_op']}, {s['bytes']:,} B</span></span>" for s in shared)


def _layer_rows(rows: list[dict], vela_rows: dict[int, dict] | None) -> list[list[str]]:
    out = []
    for r in rows:
        life = r.get("lifetime")
        cells = [str(r["index"]), f"{_e(r['op'])} <span class=\"sub\">v{_e(r['version'])}</span>",
                 f'<div class="name" title="{_e(r["name"])}">{_e(r["name"])}</div>',
                 "<br>".join(_shape_html(s) for s in r["input_shapes"]),
                 "<br>".join(_shape_html(s) for s in r["output_shapes"]),
                 f"{r['macs']:,}", f"{r['unique_params']:,}", f"{r['weight_bytes']:,}",
                 _shared_cell(r["shared"]), f"{r['activation_bytes']:,}",
                 "–" if life is None else f"{life[0]}–{life[1]}"]
        if vela_rows is not None:
            v = vela_rows.get(r["index"])
            cells += (["–"] * 4 if v is None else
                      [_e(v["placement"] + (" (folded)" if v.get("elided") else "")),
                       f"{v['cycles']:,}", f"{v['staging_sram_bytes']:,}",
                       "–" if v["utilisation_percent"] is None
                       else f"{v['utilisation_percent']:.1f}"])
        out.append(cells)
    return out


def _layer_table(table: dict, vela_board: dict | None) -> str:
    header = ["#", "op", "output tensor", "input shapes", "output shapes", "MACs",
              "unique params", "weight bytes", "shared tensors read (first op, bytes)",
              "activation bytes", "live (ops)"]
    vela_rows = None
    if vela_board is not None:
        header += ["Vela: placement", "cycles (Vela's estimate)", "staging SRAM bytes (Vela)",
                   "MAC util. % (Vela's estimate)"]
        rows = _get(vela_board, "per_layer", "tflite_int8", "rows") or []
        vela_rows = {r["index"]: r["vela"] for r in rows if r.get("vela")}
    t = table["totals"]
    peak = t.get("peak_live_activation_bytes")
    foot = ["", "total", "", "", "", f"{t['macs']:,}", f"{t['unique_params']:,}",
            f"{t['weight_bytes']:,}", "", "" if peak is None else f"peak live {peak:,}", ""]
    if vela_rows is not None:
        foot += [""] * 4
    return _table(header, _layer_rows(table["rows"], vela_rows), "small", foot)


def _layers_section(boards: list[dict]) -> str:
    tfl = _first(boards, "per_layer", "tflite_int8")
    if tfl is None:
        return "<h2>Per layer</h2><p class=\"note\">No per-layer data in these reports.</p>"
    vela_board = next((r for r in boards if r.get("vela")), None)
    out = [f"<h2>Per layer: {_e(tfl['file'])}</h2>", _layer_table(tfl, vela_board)]
    if vela_board is not None:
        out.append(f'<p class="note"><span class="est">Vela\'s estimate</span> columns from '
                   f"{_e(vela_board['board']['name'])}: not a measurement.</p>")
    onnx = _first(boards, "per_layer", "onnx_int8")
    if onnx is not None:
        out.append(f"<details><summary>Per layer: {_e(onnx['file'])} ({len(onnx['rows'])} "
                   f"ops)</summary>{_layer_table(onnx, None)}</details>")
    return "".join(out)


def _vela_section(boards: list[dict]) -> str:
    out = []
    for r in boards:
        v = r.get("vela")
        if not v:
            continue
        cpu = _table(["op", "node", "reason"], [[_e(c["op"]), _e(c["node"]), _e(c["reason"])]
                                                for c in v["cpu_ops"]], "small")
        rows = [["Vela version", _e(v["vela_version"])],
                ["command", f"<code>{_e(v['command'])}</code>"],
                ["accelerator / system / memory mode",
                 _e(f"{v['accelerator_config']} / {v['system_config']} / {v['memory_mode']}")],
                ["total SRAM (Vela's plan)", _e(_b(v["sram_bytes"]))],
                ["off-chip flash (Vela's plan)", _e(_b(v["offchip_flash_bytes"]))],
                ["ops on the NPU / CPU", f"{v['npu_ops']} / {len(v['cpu_ops'])}"],
                ["total cycles (Vela's estimate)", f"{v['total_cycles']:,}"],
                ["inference time (Vela's estimate)",
                 f"{v['inference_time_ms']:.4g} ms at {v['npu_clock_hz'] / 1e6:g} MHz NPU clock"]]
        out.append(f"<h3>{_e(r['board']['name'])}: <span class=\"est\">{_e(v['label'])}</span>"
                   f"</h3>{_table(['', 'value'], rows, 'kv')}"
                   + (f"<p class=\"note\">Ops left on the CPU:</p>{cpu}" if v["cpu_ops"]
                      else '<p class="note">Every op runs on the NPU.</p>'))
    return ("<h2>Ethos-U (Vela)</h2>" + "".join(out)) if out else ""


def _twin_section(summary: dict) -> str:
    model, storage, boards = summary["model"], summary["storage"], summary["boards"]
    if not boards:
        return ""
    acc = boards[0]["accuracy"]
    arena = _first(boards, "footprint", "ram", "arena")
    svg = plots.shared_twin_svg(model, storage, acc, arena)
    rows = [["unique parameters (float elements)", model["unique_params"], model["twin_params"]]]
    for fmt, label in (("tflite", ".tflite"), ("onnx", ".onnx")):
        s, t = storage[f"{fmt}_int8"], storage[f"twin_{fmt}_int8"]
        rows.append([f"stored int8 weight bytes ({label})", s["stored_weight_bytes"],
                     t["stored_weight_bytes"]])
        rows.append([f"file bytes ({label})", s["file_bytes"], t["file_bytes"]])
    if arena is not None:
        rows.append(["TFLM arena, measured (bytes)", arena["measured_bytes"],
                     arena["twin_measured_bytes"]])
    cells = [[_e(n), f"{a:,}", f"{b:,}", f"{b - a:+,}"] for n, a, b in rows]
    ref = acc["int8_reference"]
    cells.append([_e(f"int8 top-1 ({ref['runtime']})"), _pct(ref["accuracy"]),
                  _pct(acc["twin_int8_litert_ref"]),
                  f"{100 * (acc['twin_int8_litert_ref'] - ref['accuracy']):+.2f} points"])
    groups = _table(["shared parameter", "shape", "elements stored", "call sites",
                     "elements in the twin", "kind"],
                    [[_e(g["name"]), _shape_html(g["shape"]), f"{g['stored_params']:,}",
                      str(g["call_sites"]), f"{g['twin_params']:,}", _e(g["kind"])]
                     for g in model["sharing_groups"]], "small")
    return ("<h2>Weight-shared model against its unshared twin</h2>"
            + _figure(svg, "The twin has the same topology with independent weights, trained "
                      "on its own. Arena from the first board with a TFLM arena.")
            + _table(["", "shared", "twin", "twin − shared"], cells, "compact") + groups)


def _header(summary: dict) -> str:
    model, boards = summary["model"], summary["boards"]
    prov = boards[0]["provenance"] if boards else {}
    n_pass = sum(r["verdict"] == "PASS" for r in boards)
    data = model.get("data") or {}
    sizes = ", ".join(f"{k} {v:,}" for k, v in (data.get("sizes") or {}).items())
    return (f"<h1>tinyshare run <code>{_e(summary['run'])}</code></h1>"
            f"<p class=\"meta\">Model <b>{_e(model['name'])}</b>, input "
            f"{_e(_shape(model.get('input_shape_nchw')))} (NCHW), {_e(model.get('num_classes'))}"
            f" classes · {n_pass} of {len(boards)} boards PASS</p>"
            f"<p class=\"meta\">Data: {_e(data.get('source', 'n/a'))} ({_e(sizes)})</p>"
            f"<p class=\"meta\">Seed {_e(prov.get('seed', 'n/a'))} · command "
            f"<code>{_e(prov.get('command', 'n/a'))}</code></p>"
            f"<p class=\"note\">{_e(prov.get('execution', ''))}</p>")


def _footer(boards: list[dict]) -> str:
    versions = _get(boards[0], "provenance", "versions") if boards else None
    if not versions:
        return ""
    return ("<h2>Versions</h2><p class=\"note\">"
            + ", ".join(f"{_e(k)} {_e(v)}" for k, v in versions.items()) + "</p>")


def run_html(summary: dict) -> str:
    """Render the run's ``report.html``.

    Args:
        summary: ``{"run": str, "model": dict, "storage": dict, "boards": [dict, ...]}``:
            the boards' ``model`` and ``storage`` dicts and each board's ``report.json``
            dict (version 2).

    Returns:
        A complete HTML document (UTF-8 text) with inline CSS and inline SVG plots: header,
        board × metric table, violations, plots, per-layer table, Vela section (boards with
        Vela only), the generated C section (boards whose model ran as generated C) and
        the shared-against-twin section.
    """
    boards = summary["boards"]
    body = [_header(summary), _boards_section(boards), _violations_section(boards),
            _plots_section(summary), _layers_section(boards), _vela_section(boards),
            generated_c_html(boards),
            _twin_section(summary), _footer(boards)]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>tinyshare run {_e(summary['run'])}</title><style>{_CSS}</style></head>"
            "<body><main>" + "".join(body) + "</main></body></html>\n")
