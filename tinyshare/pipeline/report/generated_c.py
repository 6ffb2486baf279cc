"""The report's ``footprint.generated_c``: the generated C (no interpreter) of one board.

Measured: ELF section sizes (``arm-none-eabi-size -A``), the painted-stack high-water and
qemu's instruction count (``-icount shift=0``; an emulated count, not time). The ratios set
the generated C against TFLM running the same model on the board's CPU (``TflmSide``):

* RAM ratio = (arena + stack high-water inside ``model_invoke`` + the model's other
  data/bss) ÷ TFLM's measured arena (64-bit host build);
* flash ratio = the model's code + constants (model.c and its kernels) ÷ (the model file
  TFLM would flash + TFLM's runtime code estimate). That file is the int8 .tflite the C was
  generated from, or its LUT-compressed copy (with the DECODE code counted) where the board
  flashes that; on an Ethos-U board it is not the Vela file the board flashes.
"""

from __future__ import annotations

from dataclasses import dataclass

from tinyshare.pipeline.report.checks import Check

CHECK_NAME = "generated C bit-exact with TFLM"


@dataclass(frozen=True)
class TflmSide:
    """What TFLM needs for the same model on the board's CPU: the basis of the ratios.

    Attributes:
        model_file: the .tflite TFLM would flash (plain, or its LUT-compressed copy).
        model_file_bytes: its size, bytes (measured).
        runtime_code_bytes: TFLM's runtime code for it, bytes (an estimate; None: unknown,
            so no flash ratio).
        arena_bytes: TFLM's measured arena for it, bytes (64-bit host build).
    """

    model_file: str
    model_file_bytes: int
    runtime_code_bytes: int | None
    arena_bytes: int


def generated_c(check, tflm: TflmSide, macs: int) -> tuple[Check, dict]:
    """The bit-exact check and the ``footprint.generated_c`` dict of one board.

    Args:
        check: the board's ``CodegenCheck`` (``tinyshare.pipeline.codegen_check``).
        tflm: TFLM's side of the comparison.
        macs: MACs per inference (the per-layer table's total).

    Returns:
        (the check: PASS when bit-exact, FAIL on a difference or an error, INFO when not
        run; the dict, schema ``footprint.generated_c``).
    """
    if check.skipped is not None:
        return (Check(CHECK_NAME, "INFO", check.skipped, kind="codegen"),
                {"status": "not run", "note": check.skipped, "model_file": check.model_file})
    if check.error is not None:
        return (Check(CHECK_NAME, "FAIL", check.error, kind="codegen"),
                {"status": "error", "note": check.error, "model_file": check.model_file})
    f, a = check.figures, check.agreement
    fp = f.footprint
    model_ram = fp.model_ram_bytes + f.invoke_stack_bytes
    tflm_flash = (tflm.model_file_bytes + tflm.runtime_code_bytes
                  if tflm.runtime_code_bytes is not None else None)
    status = "PASS" if check.bit_exact else "FAIL"
    detail = (f"{a.n_samples} samples built for {f.cpu} and run under qemu-system-arm -M "
              f"{f.machine}: max abs diff {a.max_abs_diff_lsb} LSB against TFLM on "
              f"{check.model_file} (must be 0), {a.n_values_differing} values differ")
    data = {
        "status": "ran", "note": "", "model_file": check.model_file, "cpu": f.cpu,
        "machine": f.machine, "samples": f.samples,
        "image_flash_bytes": fp.flash_bytes, "image_ram_bytes": fp.ram_bytes,
        "model_flash_bytes": fp.model_flash_bytes, "model_data_bss_bytes": fp.model_ram_bytes,
        "arena_bytes": fp.arena_bytes,
        "codebook_buffer_count": len(check.generated.codebook_buffers) if check.generated else 0,
        "codebook_saved_bytes": check.generated.codebook_saved_bytes if check.generated else 0,
        "other_data_bss_bytes": fp.model_ram_bytes - fp.arena_bytes,
        "stack_reserved_bytes": fp.stack_bytes,
        "stack_high_water_bytes": f.stack_high_water_bytes,
        "invoke_stack_high_water_bytes": f.invoke_stack_bytes,
        "model_ram_bytes": model_ram,
        "instructions_per_inference": f.instructions_per_inference,
        "macs_per_inference": macs,
        "macs_per_instruction": macs / f.instructions_per_inference,
        "bit_exact": check.bit_exact, "max_abs_diff_lsb": a.max_abs_diff_lsb,
        "n_values_differing": a.n_values_differing,
        "tflm_arena_bytes": tflm.arena_bytes,
        "ram_ratio_vs_tflm_arena": model_ram / tflm.arena_bytes,
        "tflm_model_file": tflm.model_file,
        "tflm_model_file_bytes": tflm.model_file_bytes,
        "tflm_runtime_code_bytes": tflm.runtime_code_bytes,
        "tflm_flash_bytes": tflm_flash,
        "flash_ratio_vs_tflm": (fp.model_flash_bytes / tflm_flash) if tflm_flash else None,
        "footprint_method": fp.method, "stack_method": f.stack_method,
        "instructions_method": f.instructions_method,
        "ratio_method": (
            "RAM ratio = (arena + stack high-water inside model_invoke + other data/bss of "
            "model.c and its kernels) / TFLM's measured arena (64-bit host build, so TFLM's "
            "side is larger than on a 32-bit core); flash ratio = model code + constants "
            "(model.c and its kernels, object files before --gc-sections) / (the model file "
            f"TFLM would flash to run it on the board's CPU, {tflm.model_file}, + TFLM's "
            "runtime code estimate, x86-64 code of the used kernels and core)"),
    }
    return Check(CHECK_NAME, status, detail, kind="codegen"), data


def generated_c_section(fp: dict) -> list[str]:
    """The "Generated C (no interpreter)" subsection of a board's report.md."""
    g = fp.get("generated_c")
    if not g:
        return []
    head = ["### Generated C (no interpreter)", ""]
    if g["status"] != "ran":
        return head + [g["note"] if g["status"] == "not run" else f"**error**: {g['note']}", ""]

    def b(n) -> str:
        return "unknown" if n is None else f"{n:,} B"

    ratio = g["flash_ratio_vs_tflm"]
    rows = [
        ["model code + constants (flash)", b(g["model_flash_bytes"]),
         "measured: ELF sizes of model.c and its kernels"],
        ["whole test image (flash)", b(g["image_flash_bytes"]),
         "measured: ELF, includes the harness and newlib semihosting stdio"],
        *([["codebook weights (packed)", f"{g['codebook_buffer_count']} tensors",
            f"counted (emitted array bytes): packed indices + per-channel tables save "
            f"{b(g['codebook_saved_bytes'])} of constants; each is decoded before the op that "
            "reads it into arena bytes the plan finds free (the arena figure includes them)"]]
          if g.get("codebook_buffer_count") else []),
        ["RAM data + bss (model)", b(g["model_data_bss_bytes"]),
         f"measured: ELF; arena {b(g['arena_bytes'])} + other {b(g['other_data_bss_bytes'])}"],
        ["RAM data + bss (whole image)", b(g["image_ram_bytes"]), "measured: ELF"],
        ["stack high-water in model_invoke", b(g["invoke_stack_high_water_bytes"]),
         f"measured: painted stack (whole run: {b(g['stack_high_water_bytes'])} of "
         f"{b(g['stack_reserved_bytes'])} reserved)"],
        ["instructions per inference", f"{g['instructions_per_inference']:,}",
         "emulated instruction count (qemu -icount), not time"],
        ["MACs per instruction", f"{g['macs_per_instruction']:.3f}",
         f"{g['macs_per_inference']:,} MACs (per-layer table) / instructions"],
        ["bit-exact with TFLM", "yes" if g["bit_exact"] else "**no**",
         f"max abs diff {g['max_abs_diff_lsb']} LSB on {g['samples']} samples"],
        ["RAM ÷ TFLM arena", f"{g['ram_ratio_vs_tflm_arena']:.3f}",
         f"{b(g['model_ram_bytes'])} ÷ {b(g['tflm_arena_bytes'])}"],
        ["model flash ÷ TFLM (file + runtime code estimate)",
         "unknown" if ratio is None else f"{ratio:.3f}",
         f"{b(g['model_flash_bytes'])} ÷ {b(g['tflm_flash_bytes'])}: the divisor holds "
         "an estimate (TFLM's runtime code)"],
    ]
    from tinyshare.pipeline.report.markdown_table import table

    return head + [
        f"`{g['model_file']}` as C with no interpreter, built with arm-none-eabi-gcc for "
        f"{g['cpu']} and run under qemu-system-arm -M {g['machine']}. Sizes, stack and "
        "instruction counts are measured; instruction counts are emulated, not time.", "",
        table(["figure", "value", "how"], rows), "", g["ratio_method"] + ".", ""]


def generated_c_summary(reports: list[dict]) -> list[str]:
    """The summary report's "Generated C" table: one row per board whose model ran as C.

    Args:
        reports: the boards' ``report.json`` dicts (version 2).

    Returns:
        Markdown lines; empty when no board has ``footprint.generated_c``.
    """
    from tinyshare.pipeline.report.markdown_table import bytes_text, table

    found = [(r["board"]["name"], r["footprint"].get("generated_c")) for r in reports]
    found = [(name, g) for name, g in found if g]
    if not found:
        return []
    rows, notes = [], []
    for name, g in found:
        if g["status"] != "ran":
            notes.append(f"- {name}: {g['note']}")
            continue
        flash = g["flash_ratio_vs_tflm"]
        rows.append([name, g["cpu"], "yes" if g["bit_exact"] else "**NO**",
                     f"{g['max_abs_diff_lsb']} LSB / {g['samples']:,}",
                     bytes_text(g["model_flash_bytes"]),
                     "n/a" if flash is None else f"{flash:.3f}",
                     bytes_text(g["model_ram_bytes"]), f"{g['ram_ratio_vs_tflm_arena']:.3f}",
                     f"{g['instructions_per_inference']:,}"])
    lines = ["## Generated C (no interpreter)", ""]
    if rows:
        lines += [table(["board", "core", "bit-exact with TFLM", "max diff / samples",
                         "model flash", "flash ÷ TFLM (file + runtime code estimate)",
                         "model RAM", "RAM ÷ TFLM arena",
                         "instructions per inference (emulated)"], rows), "",
                  "Flash and RAM measured on the linked ELF (arm-none-eabi-size), the stack "
                  "by painting it; model RAM = arena + stack high-water in model_invoke + "
                  "other data/bss. The flash ratio divides by an estimate (TFLM's runtime "
                  "code). Instruction counts are emulated under qemu-system-arm, not time.",
                  ""]
    return lines + notes + ([""] if notes else [])
