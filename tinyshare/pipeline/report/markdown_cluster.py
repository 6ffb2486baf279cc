"""Markdown for a clustered model: the codebook, its accuracy cost, and the TFLM LUT
compression trade (flash saved against arena grown), all from a board's report dict."""

from __future__ import annotations

from tinyshare.pipeline.report.markdown_table import bytes_text as _b
from tinyshare.pipeline.report.markdown_table import percent_text as _pct
from tinyshare.pipeline.report.markdown_table import table as _table


def lut_flash_rows(lut: dict | None) -> list[list[str]]:
    """Rows for the flash table: the uncompressed file beside the compressed one flashed."""
    if not lut or not lut["applied"]:
        return []
    return [[f"uncompressed model file `{lut['uncompressed_model_file']}` (not flashed)",
             _b(lut["uncompressed_model_file_bytes"]),
             f"measured: file size; its weights {_b(lut['uncompressed_weights_bytes'])}; LUT "
             f"compression saves {_b(lut['flash_saved_bytes'])} of flash"]]


def lut_ram_rows(lut: dict | None) -> list[list[str]]:
    """Rows for the RAM table: the arena of both models (the decoded weights live in it)."""
    if not lut or not lut["applied"]:
        return []
    return [["TFLM arena, LUT-compressed model (flashed)", _b(lut["compressed_arena_bytes"]),
             "measured; holds the decoded weights"],
            ["TFLM arena, uncompressed model", _b(lut["uncompressed_arena_bytes"]),
             f"measured; the compressed model needs {lut['arena_increase_bytes']:+,} B"]]


def lut_line(lut: dict | None) -> list[str]:
    """One line on LUT compression for the flash section (nothing without clustering)."""
    if not lut:
        return []
    if not lut["applied"]:
        return [f"LUT compression (k = {lut['k']}): {lut['reason']}.", ""]
    line = (f"The board flashes the TFLM LUT-compressed copy (k = {lut['k']}, index width ≤ "
            f"{lut['bits']} bits): model file {-lut['flash_saved_bytes']:+,} B, TFLM arena "
            f"{lut['arena_increase_bytes']:+,} B against the uncompressed model (measured; see "
            "'Codebook clustering').")
    dec = lut.get("decompression_code_bytes")
    if dec is not None:
        net = lut["net_flash_saved_bytes"]
        line += (f" The runtime code above includes {dec:,} B (estimate) of TFLM's "
                 "tensor-decompression code (USE_TFLM_COMPRESSION), which running DECODE "
                 f"needs: net flash {-net:+,} B (estimate)" + (", so on this model compression costs "
                 "flash rather than saving it." if net < 0 else "."))
    return [line, ""]


def cluster_section(r: dict) -> list[str]:
    """The clustering summary and, where applied, the LUT tensor choice (measured)."""
    c = r["model"].get("cluster")
    if not c:
        return []
    check = next((x for x in r["checks"] if x["name"] == "codebook kept after int8"), None)
    lines = [
        "## Codebook clustering", "",
        f"k = {c['k']} centroids {'per output channel' if c['per_channel'] else 'per tensor'} "
        f"in {len(c['tensors'])} weight tensors ({', '.join(f'`{t}`' for t in c['tensors'])}); "
        f"left alone (too small): {', '.join(f'`{t}`' for t in c['skipped']) or 'none'}. "
        f"Float top-1 on the test split: {_pct(c['test_accuracy_before'])} trained, "
        f"{_pct(c['test_accuracy_kmeans'])} right after k-means, "
        f"{_pct(c['test_accuracy_after'])} after fine-tuning with the assignment fixed.", ""]
    if check:
        lines += [f"Codebook after int8: **{check['status']}**, {check['detail']}.", ""]
    lut = r["footprint"].get("lut_compression")
    if lut and lut["applied"]:
        lines += [
            "LUT compression, measured: each eligible tensor is tried largest first and kept "
            "only if the flashed file gets smaller.", "",
            _table(["figure", "uncompressed", "LUT-compressed"], [
                ["model file", f"`{lut['uncompressed_model_file']}` "
                 f"{_b(lut['uncompressed_model_file_bytes'])}",
                 f"`{lut['compressed_model_file']}` {_b(lut['compressed_model_file_bytes'])}"],
                ["weights (read back)", _b(lut["uncompressed_weights_bytes"]),
                 _b(lut["compressed_weights_bytes"])],
                ["TFLM arena (measured)", _b(lut["uncompressed_arena_bytes"]),
                 _b(lut["compressed_arena_bytes"])]]), "",
            _table(["tensor", "shape", "int8 bytes", "max values / channel", "index bits",
                    "kept", "file bytes saved"],
                   [[f"{t['index']}", "×".join(map(str, t["shape"])), f"{t['data_bytes']:,}",
                     t["max_distinct_values"], t["bits"], "yes" if t["kept"] else "no",
                     f"{t['saved_bytes']:+,}"] for t in lut["tensors"]]), ""]
    return lines
