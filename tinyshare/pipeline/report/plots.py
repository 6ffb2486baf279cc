"""The report's figures, drawn with matplotlib and returned as inline SVG strings.

Each function takes plain report data (the ``report.json`` contract, version 2) and returns
one ``<svg>`` element: no external files, no fonts to fetch (glyphs are drawn as paths),
and the same bytes for the same data (fixed ``svg.hashsalt``, no date in the metadata).
matplotlib is imported inside the functions; the figures use its ``Figure`` class directly
(no pyplot state), rendered by the SVG backend.
"""

from __future__ import annotations

import re

__all__ = ["COLORS", "accuracy_flash_svg", "layer_memory_svg", "shared_twin_svg"]

# Plot colours (hex RGB), also used by the HTML page and its render test.
COLORS = {
    "weights": "#1f6fb4",       # stored int8 weights / int32 biases
    "reused": "#9cc3e6",        # shared weights read again (stored at an earlier op)
    "activations": "#e8822a",   # output activation bytes
    "shared": "#1f6fb4",        # the weight-shared model
    "twin": "#8d99ae",          # its unshared twin
    "pass": "#2e9e44",
    "fail": "#d62828",
    "reference": "#6c757d",     # reference lines
}
_FONT_SIZE = 10
_WIDTH_IN = 10.0


def _text(s: object) -> str:
    """A label for matplotlib: ``$`` would start mathtext, so it is escaped."""
    return str(s).replace("$", r"\$")


def _figure(width_in: float, height_in: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), layout="constrained")
    return fig


def _svg(fig, name: str) -> str:
    """Render ``fig`` as an SVG element (the XML prolog and doctype dropped)."""
    import io

    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": f"tinyshare-{name}", "svg.fonttype": "path",
                                "font.size": _FONT_SIZE}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, count=1, flags=re.S)
    return text[text.index("<svg"):].strip()


def _style(ax) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.tick_params(labelsize=_FONT_SIZE - 1)


def _thousands(axis) -> None:
    """Tick labels with thousands separators (``12,000``) on a linear axis."""
    from matplotlib.ticker import StrMethodFormatter

    axis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))


def _reused_bytes(row: dict) -> int:
    """Bytes of shared tensors this op reads that were stored at an earlier op."""
    return sum(s["bytes"] for s in row["shared"] if s["first_op"] != row["index"])


def layer_memory_svg(table: dict) -> str:
    """Per-layer memory: stored weight bytes and output activation bytes, one row per op.

    Args:
        table: a ``per_layer`` table (``per_layer["tflite_int8"]``): ``rows`` in graph order,
            each with ``index``, ``op``, ``weight_bytes``, ``activation_bytes`` and
            ``shared`` (list of ``{"storage", "first_op", "bytes"}``).

    Returns:
        An ``<svg>`` element. Weight bars stack the bytes stored at this op (solid) and the
        shared bytes it reads again (hatched); ops that read a shared weight are labelled
        "(shared)" in the weights colour.
    """
    import numpy as np
    from matplotlib.patches import Patch

    rows = table["rows"]
    n = max(len(rows), 1)
    fig = _figure(_WIDTH_IN, 1.9 + 0.3 * n)
    ax = fig.add_subplot()
    y = np.arange(len(rows))
    h = 0.4
    stored = [r["weight_bytes"] for r in rows]
    reused = [_reused_bytes(r) for r in rows]
    act = [r["activation_bytes"] for r in rows]
    ax.barh(y - h / 2, stored, h, color=COLORS["weights"])
    ax.barh(y - h / 2, reused, h, left=stored, color=COLORS["reused"], hatch="///",
            edgecolor=COLORS["weights"], linewidth=0.6)
    bars = ax.barh(y + h / 2, act, h, color=COLORS["activations"])
    for i, (s, r) in enumerate(zip(stored, reused)):
        if s + r:
            ax.annotate(f"{s:,}" + (f" + {r:,} shared" if r else ""), (s + r, i - h / 2),
                        xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
    ax.bar_label(bars, labels=[f"{a:,}" if a else "" for a in act], padding=3, fontsize=8)
    labels = [_text(f"{r['index']} {r['op']}") + (" (shared)" if r["shared"] else "")
              for r in rows]
    ax.set_yticks(y, labels)
    for tick, r in zip(ax.get_yticklabels(), rows):
        if r["shared"]:
            tick.set_color(COLORS["weights"])
            tick.set_fontweight("bold")
    ax.invert_yaxis()
    ax.margins(x=0.12)
    ax.set_xlabel("bytes")
    _thousands(ax.xaxis)
    ax.set_ylabel("op (graph order)")
    ax.set_title(_text(f"Per-layer memory of {table['file']} (int8)"), loc="left")
    _style(ax)
    fig.legend(handles=[
        Patch(color=COLORS["weights"], label="weights stored at this op (int8; biases int32)"),
        Patch(facecolor=COLORS["reused"], edgecolor=COLORS["weights"], hatch="///",
              label="shared weights read again (stored at an earlier op)"),
        Patch(color=COLORS["activations"], label="output activations (int8)"),
    ], loc="outside lower center", ncols=2, frameon=False, fontsize=_FONT_SIZE - 1)
    return _svg(fig, "layer-memory")


def _flash_needed(report: dict) -> int | None:
    flash = report["footprint"].get("flash") or {}
    value = flash.get("needed_bytes")
    return report["footprint"].get("flash_needed_bytes") if value is None else value


def _accuracy_points(boards: list[dict]) -> dict[tuple[int, float], list[dict]]:
    """Boards grouped by (flash needed bytes, worst int8 top-1 %): one label per point."""
    points: dict[tuple[int, float], list[dict]] = {}
    for r in boards:
        accs = list(r["accuracy"]["int8_runtimes"].values())
        x = _flash_needed(r)
        if not accs or x is None:
            continue
        points.setdefault((x, round(100.0 * min(accs), 2)), []).append(r)
    return points


def accuracy_flash_svg(boards: list[dict]) -> str:
    """Worst int8 top-1 against flash needed, one labelled point per board.

    Args:
        boards: board reports (version 2). x is ``footprint.flash.needed_bytes`` (else
            ``footprint.flash_needed_bytes``), y the lowest of ``accuracy.int8_runtimes``;
            boards without either are left out. Boards with the same (x, y) share one
            label, their markers side by side.

    Returns:
        An ``<svg>`` element; marker and colour by verdict (PASS circle, FAIL cross). The
        float model's top-1 (PyTorch) is a dashed line.
    """
    from matplotlib.lines import Line2D
    from matplotlib.transforms import ScaledTranslation

    points = _accuracy_points(boards)
    fig = _figure(_WIDTH_IN, 4.6)
    ax = fig.add_subplot()
    for k, ((x, y), group) in enumerate(sorted(points.items())):
        for j, r in enumerate(group):  # boards on one point sit side by side, 11 pt apart
            shift = ScaledTranslation((j - (len(group) - 1) / 2) * 11 / 72, 0,
                                      fig.dpi_scale_trans)
            failed = r["verdict"] != "PASS"
            ax.scatter([x], [y], s=90, marker="X" if failed else "o", zorder=3,
                       color=COLORS["fail" if failed else "pass"], edgecolors="white",
                       transform=ax.transData + shift)
        label = "\n".join(_text(f"{r['board']['name']} ({r['verdict']})") for r in group)
        ax.annotate(label, (x, y), xytext=(6 * len(group) + 4, 10 if k % 2 == 0 else -12),
                    textcoords="offset points", fontsize=9,
                    va="bottom" if k % 2 == 0 else "top")
    xs = [x for x, _ in points] or [1]
    ys = [y for _, y in points] or [100.0]
    floats = [r["accuracy"]["float_pytorch"] for r in boards]
    if floats:
        f = 100.0 * floats[0]
        ax.axhline(f, color=COLORS["reference"], linestyle="--", linewidth=1)
        ys.append(f)
    if max(xs) / max(min(xs), 1) > 20:
        ax.set_xscale("log")
        ax.set_xlim(min(xs) / 2, max(xs) * 6)
        ax.set_xlabel("flash needed (bytes, log scale): model file + runtime code where known")
    else:
        ax.set_xlim(0, max(xs) * 1.35)
        _thousands(ax.xaxis)
        ax.set_xlabel("flash needed (bytes): model file + runtime code where known")
    ax.set_ylim(max(0.0, min(ys) - 3.0), min(100.0, max(ys) + 1.5) + 0.5)
    ax.set_ylabel("worst int8 top-1 across runtimes (%)")
    ax.set_title("Accuracy against flash, per board", loc="left")
    ax.grid(True, which="major", color="#e5e5e5", linewidth=0.8)
    ax.set_axisbelow(True)
    _style(ax)
    ax.legend(handles=[
        Line2D([], [], marker="o", linestyle="", color=COLORS["pass"], markersize=9,
               label="PASS"),
        Line2D([], [], marker="X", linestyle="", color=COLORS["fail"], markersize=9,
               label="FAIL"),
        Line2D([], [], linestyle="--", color=COLORS["reference"], label="float top-1 (PyTorch)"),
    ], loc="lower right", fontsize=_FONT_SIZE - 1)
    return _svg(fig, "accuracy-flash")


def _grouped(ax, names: list[str], shared: list[float], twin: list[float], fmt: str) -> None:
    import numpy as np

    x = np.arange(len(names))
    w = 0.38
    for offset, values, key, label in ((-w / 2, shared, "shared", "weight-shared"),
                                       (w / 2, twin, "twin", "unshared twin")):
        bars = ax.bar(x + offset, values, w, color=COLORS[key], label=label)
        ax.bar_label(bars, labels=[fmt.format(v) for v in values], padding=2, fontsize=8)
    ax.set_xticks(x, names)
    ax.margins(y=0.15)
    _style(ax)


def shared_twin_svg(model: dict, storage: dict, accuracy: dict, arena: dict | None) -> str:
    """The weight-shared model against its unshared twin (same topology, own weights).

    Args:
        model: the reports' ``model`` dict (``unique_params``, ``twin_params``).
        storage: the reports' ``storage`` dict (``tflite_int8``, ``onnx_int8`` and their
            ``twin_*`` entries with ``stored_weight_bytes``).
        accuracy: a board's ``accuracy`` dict (``int8_reference.accuracy`` and
            ``twin_int8_litert_ref``, fractions).
        arena: ``footprint.ram.arena`` of a TFLM board (``measured_bytes``,
            ``twin_measured_bytes``), or None when no board has one.

    Returns:
        An ``<svg>`` element with three panels: bytes (stored int8 weights per format, TFLM
        arena), unique parameters, and int8 top-1 (%).
    """
    fig = _figure(_WIDTH_IN, 3.9)
    axes = fig.subplots(1, 3, width_ratios=[3.2, 1.2, 1.4])
    names = ["int8 weights\nstored (.tflite)", "int8 weights\nstored (.onnx)"]
    shared = [storage["tflite_int8"]["stored_weight_bytes"],
              storage["onnx_int8"]["stored_weight_bytes"]]
    twin = [storage["twin_tflite_int8"]["stored_weight_bytes"],
            storage["twin_onnx_int8"]["stored_weight_bytes"]]
    if arena is not None:
        names.append("TFLM arena\n(measured)")
        shared.append(arena["measured_bytes"])
        twin.append(arena["twin_measured_bytes"])
    _grouped(axes[0], names, shared, twin, "{:,}")
    axes[0].set_ylabel("bytes")
    _thousands(axes[0].yaxis)
    _thousands(axes[1].yaxis)
    axes[0].set_title("Stored bytes: shared against twin", loc="left")
    _grouped(axes[1], ["unique\nparameters"], [model["unique_params"]], [model["twin_params"]],
             "{:,}")
    axes[1].set_ylabel("parameters (float elements)")
    axes[1].set_title("Parameters", loc="left")
    shared_acc = 100.0 * accuracy["int8_reference"]["accuracy"]
    twin_acc = 100.0 * accuracy["twin_int8_litert_ref"]
    _grouped(axes[2], [_text(f"int8 top-1\n({accuracy['int8_reference']['runtime']})")],
             [shared_acc], [twin_acc], "{:.2f} %")
    axes[2].set_ylim(0.0, 100.0)  # bars from 0, so a small gap looks small
    axes[2].set_ylabel("top-1 on the test split (%)")
    axes[2].set_title("Accuracy", loc="left")
    axes[0].legend(loc="upper left", fontsize=_FONT_SIZE - 1, frameon=False)
    return _svg(fig, "shared-twin")
