"""A clustered model in a board's report: the codebook check, and whether the board flashes
the TFLM LUT-compressed copy (with both sides of the flash / RAM trade, all measured)."""

from __future__ import annotations

from tinyshare.pipeline.report.checks import Check

DECODE_CODE_METHOD = (
    "estimate, not measured on a board: x86-64 code of TFLM's tensor-decompression feature "
    "(USE_TFLM_COMPRESSION) reachable from the used kernels and the core in the installed "
    "tflite-micro host build (targets.runtime_code); net_flash_saved_bytes inherits it")
NOT_FOR_VELA = ("not applied: Vela does not read TFLM's DECODE op, so this Ethos-U board "
                "flashes Vela's compile of the uncompressed int8 .tflite")
NOT_FOR_RUNTIMES = ("not applied: only TFLM runs DECODE; this board's runtimes ({}) load the "
                    "uncompressed files")


def lut_status(board, lut) -> tuple[bool, str]:
    """Whether ``board`` flashes the LUT-compressed copy, and why in one line.

    Args:
        board: the board profile.
        lut: the run's ``LutExport`` (``ExportedModels.lut``), or None without clustering.

    Returns:
        ``(can_apply, reason)``: whether the board's runtime can flash the compressed copy
        and it is smaller, with a one-line reason. ``with_lut`` makes the final decision
        (``cluster.lut = "auto"`` also weighs the decompression code).
    """
    if lut is None:
        return False, "not applied: no [cluster] in the config"
    if board.npu is not None:
        return False, NOT_FOR_VELA
    if board.os != "baremetal" or "tflm" not in board.runtimes:
        return False, NOT_FOR_RUNTIMES.format(", ".join(board.runtimes))
    if lut.named is None:
        return False, f"not applied: {lut.reason}"
    copy = flashed_copy(board, lut)
    if copy.saved_bytes <= 0:  # the named copy: DECODE's new tensors carry long names
        return False, (f"not applied: the compressed copy of the file this board flashes, "
                       f"{copy.path.name}, is {-copy.saved_bytes:,} B larger "
                       f"({copy.compressed_bytes:,} B against {copy.source_bytes:,} B)")
    return True, (f"applied: {len(lut.tensors_bits)} of {len(lut.tensors)} eligible int8 "
                  "weight tensors LUT-compressed (the others made the file larger)")


def flashed_copy(board, lut):
    """The ``CompressedModel`` ``board`` flashes (stripped or named, as the board asks)."""
    return lut.stripped if board.strip_tensor_names else lut.named


def with_lut(ctx, board, facts):
    """``facts`` of a board that flashes the LUT-compressed copy, and its report entry.

    Args:
        ctx: the report context (``ctx.lut``: the ``LutExport`` or None; ``ctx.infos``
            holds ``tflite_int8_lut`` / ``tflite_int8_lut_stripped`` when it was written).
        board: the board profile.
        facts: the board's ``MemoryFacts`` for the uncompressed file.

    Returns:
        ``(facts, lut_compression)``: the facts of the compressed copy where the board
        flashes it (flash: its ``os.stat`` size and the weights read back from it; RAM: its
        measured TFLM arena), else ``facts`` unchanged; and the report's
        ``footprint.lut_compression`` (None without clustering).
    """
    from dataclasses import replace

    from tinyshare.export.lut import decode_input_bytes

    lut = ctx.lut
    if lut is None:
        return facts, None
    applied, reason = lut_status(board, lut)
    entry = {"applied": applied, "reason": reason, "k": lut.k, "bits": lut.bits}
    lv = ctx.validation.lut
    if applied and lv is None:
        entry.update(applied=False, reason="not applied: the compressed copies were not run on "
                     "TFLM, so nothing about them is measured")
    if not entry["applied"]:
        return facts, entry
    copy = flashed_copy(board, lut)
    code = ctx.runtime_code(board)
    decode_code = code.decompression_bytes if code is not None else None
    saved = facts.model_file_bytes - copy.compressed_bytes
    if (ctx.cfg.cluster.lut == "auto" and decode_code is not None and saved <= decode_code):
        entry.update(
            applied=False,
            reason=(f"not applied (cluster.lut = \"auto\"): the compressed copy is {saved:,} B "
                    f"smaller ({copy.compressed_bytes:,} B against {facts.model_file_bytes:,} "
                    f"B, measured), less than the {decode_code:,} B (estimate) of TFLM's "
                    "tensor-decompression code running it needs; cluster.lut = \"always\" "
                    "flashes it anyway"),
            compressed_model_file=copy.path.name, compressed_model_file_bytes=copy.compressed_bytes,
            compressed_arena_bytes=lv.arena.arena_bytes, decompression_code_bytes=decode_code,
            decompression_code_method=DECODE_CODE_METHOD)
        return facts, entry
    info = ctx.infos["tflite_int8_lut_stripped" if board.strip_tensor_names else "tflite_int8_lut"]
    new = replace(
        facts, model_file=copy.path.name, model_file_bytes=copy.compressed_bytes,
        weights_bytes=info.stored_weight_bytes + decode_input_bytes(info),
        weights_method="measured: read back from the file (uncompressed int8 weights + int32 "
                       "biases, and the packed LUT indices + value tables the DECODE ops read, "
                       "each stored buffer once)",
        tensor_names_bytes=lut.named.compressed_bytes - lut.stripped.compressed_bytes,
        ram_needed_bytes=lv.arena.arena_bytes,
        ram_method=("measured: TFLM tensor arena of the LUT-compressed model (it holds the "
                    "decoded weights), smallest size that allocates and invokes (binary "
                    f"search, verified by a run at exactly that size); {lv.arena.note}"),
        **_with_decompression_code(facts, decode_code))
    entry.update({
        "tensors": [{"index": t.index, "name": t.name, "shape": list(t.shape),
                     "data_bytes": t.data_bytes, "max_distinct_values": t.max_distinct_values,
                     "bits": t.bits, "kept": t.kept, "saved_bytes": t.saved_bytes}
                    for t in lut.tensors],
        "uncompressed_model_file": facts.model_file,
        "uncompressed_model_file_bytes": facts.model_file_bytes,
        "uncompressed_weights_bytes": facts.weights_bytes,
        "uncompressed_arena_bytes": ctx.validation.arena.arena_bytes,
        "compressed_model_file": new.model_file,
        "compressed_model_file_bytes": new.model_file_bytes,
        "compressed_weights_bytes": new.weights_bytes,
        "compressed_arena_bytes": lv.arena.arena_bytes,
        "flash_saved_bytes": facts.model_file_bytes - new.model_file_bytes,
        "decompression_code_bytes": decode_code,
        "decompression_code_method": DECODE_CODE_METHOD,
        "net_flash_saved_bytes": (None if decode_code is None else
                                  facts.model_file_bytes - new.model_file_bytes - decode_code),
        "arena_increase_bytes": lv.arena.arena_bytes - ctx.validation.arena.arena_bytes,
        "method": "measured: file sizes with os.stat; weights read back from each file; both "
                  "arenas by the same binary search on the TFLM host build (the "
                  "decompression code and the net flash saved are estimates, see "
                  "decompression_code_method)",
    })
    return new, entry


def _with_decompression_code(facts, decode_code: int | None) -> dict:
    """The runtime-code fields of ``facts`` plus TFLM's tensor-decompression code, which a
    firmware links to run DECODE (an estimate like the rest of the runtime code)."""
    if decode_code is None or facts.runtime_code_bytes is None:
        return {}
    per = dict(facts.runtime_code_per_kernel_bytes)
    per["tensor decompression (DECODE)"] = decode_code
    return {"runtime_code_bytes": facts.runtime_code_bytes + decode_code,
            "runtime_code_per_kernel_bytes": per,
            "runtime_code_method": facts.runtime_code_method + (
                f"; plus {decode_code:,} B of TFLM's tensor-decompression code "
                "(USE_TFLM_COMPRESSION), which a firmware links to run this LUT-compressed "
                "file's DECODE ops")}


def cluster_checks(board, codebook, lut, lut_val) -> list[Check]:
    """The codebook check (every board of a clustered run) and the LUT check of ``board``."""
    if codebook is None:
        return []
    checks = [Check("codebook kept after int8", "PASS" if codebook.ok else "FAIL",
                    codebook.describe(), kind="cluster")]
    applied, reason = lut_status(board, lut)
    if not applied:
        checks.append(Check("LUT-compressed model", "INFO", reason, kind="export"))
    elif lut_val is None:
        checks.append(Check("LUT-compressed model", "FAIL", "the compressed copies were not "
                            "run on TFLM (validation did not reach them)", kind="export"))
    else:
        ok = lut_val.identical
        checks.append(Check(
            "LUT-compressed model", "PASS" if ok else "FAIL",
            f"TFLM outputs of {lut_val.model_file} and {lut_val.stripped_model_file} differ "
            f"from the uncompressed files' by at most {lut_val.max_diff_lsb} / "
            f"{lut_val.stripped_max_diff_lsb} LSB (must be 0; {lut_val.n_values_differing} "
            f"values differ); TFLM's DECODE kernel ran on the host build; top-1 "
            f"{100 * lut_val.accuracy:.2f} %", kind="export"))
    return checks
