"""The "Generated C" part of ``report.html``: one row per bare-metal board whose model
was turned into C, built for its core and run under qemu-system-arm.

Reads each board report's ``footprint.generated_c`` (``report.generated_c``): ELF-measured
flash and RAM, the painted-stack high-water, emulated instructions per inference and the
ratios against TFLM on the same model file.
"""

from __future__ import annotations

from tinyshare.pipeline.report.html_table import esc, get_path, table
from tinyshare.pipeline.report.markdown_table import bytes_text

__all__ = ["generated_c_html"]


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _ran_row(name: str, g: dict) -> list[str]:
    exact = ("yes" if g["bit_exact"] else '<b class="FAIL badge">no</b>')
    return [
        f"<b>{esc(name)}</b><br><span class=\"sub\">{esc(g['cpu'])} · qemu "
        f"{esc(g['machine'])}</span>",
        f"{exact}<br><span class=\"sub\">max {g['max_abs_diff_lsb']} LSB on "
        f"{g['samples']:,} samples</span>",
        f"{bytes_text(g['model_flash_bytes'])}<br><span class=\"sub\">TFLM "
        f"{esc(bytes_text(g['tflm_flash_bytes']))} (file + runtime code estimate)</span>",
        _ratio(g["flash_ratio_vs_tflm"]),
        f"{bytes_text(g['model_ram_bytes'])}<br><span class=\"sub\">arena "
        f"{bytes_text(g['arena_bytes'])} + stack {bytes_text(g['invoke_stack_high_water_bytes'])}"
        f" + other {bytes_text(g['other_data_bss_bytes'])}; TFLM arena "
        f"{bytes_text(g['tflm_arena_bytes'])}</span>",
        _ratio(g["ram_ratio_vs_tflm_arena"]),
        f"{g['instructions_per_inference']:,}<br><span class=\"sub\">"
        f"{g['macs_per_instruction']:.3f} MACs per instruction</span>",
    ]


def generated_c_html(boards: list[dict]) -> str:
    """The section's HTML, or "" when no board has ``footprint.generated_c``.

    Args:
        boards: the boards' ``report.json`` dicts (version 2).
    """
    found = [(r["board"]["name"], g) for r in boards
             if (g := get_path(r, "footprint", "generated_c"))]
    if not found:
        return ""
    rows = [_ran_row(name, g) for name, g in found if g["status"] == "ran"]
    notes = [f"<li><b>{esc(name)}</b>: {esc(g['note'])}</li>" for name, g in found
             if g["status"] != "ran"]
    method = next((g["ratio_method"] for _, g in found if g["status"] == "ran"), "")
    out = ["<h2>Generated C (no interpreter)</h2>"]
    if rows:
        out.append(table(["board", "bit-exact with TFLM", "model flash (code + constants)",
                          "flash ÷ TFLM", "model RAM", "RAM ÷ TFLM arena",
                          "instructions per inference (emulated)"], rows, "boards"))
        out.append('<p class="note">Flash and RAM are measured on the linked ELF '
                   "(arm-none-eabi-size); the stack is measured by painting it. Instruction "
                   "counts come from qemu -icount: an emulated count, not time. "
                   f"{esc(method)}.</p>")
    if notes:
        out.append("<ul>" + "".join(notes) + "</ul>")
    return "".join(out)
