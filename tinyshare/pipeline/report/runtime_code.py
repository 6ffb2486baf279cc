"""The runtime-code line of a board's flash breakdown (an estimate, with its method).

* Cortex-M boards (TFLM): the code of the kernels the model uses plus TFLM's core, from the
  installed tflite-micro build (``tinyshare.targets.runtime_code.tflm_code_estimate``).
* Linux boards: the installed size of the largest of the board's runtimes (the board runs
  one of them), from its ARM device image when one was built, else the host wheel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class RuntimeCode:
    """Runtime code bytes counted in a board's flash need.

    Attributes:
        total_bytes: the bytes counted.
        method: how, in one line (always says "estimate" or what was measured where).
        detail: the full method, its likely error and its cross-checks, for a paragraph.
        per_kernel_bytes: TFLM: op code -> bytes (plus "core" and "shared kernel helpers");
            Linux: runtime -> installed code bytes.
        decompression_bytes: TFLM: the tensor-decompression code a firmware adds to run
            LUT-compressed models (not in ``total_bytes``); 0 elsewhere.
    """

    total_bytes: int
    method: str
    detail: str = ""
    per_kernel_bytes: dict = field(default_factory=dict)
    decompression_bytes: int = 0


def runtime_code_for(board, info, image_root: Path | None = None) -> RuntimeCode | None:
    """The runtime code ``board`` needs for the model ``info`` (the int8 .tflite read back).

    Args:
        board: the board profile.
        info: ``ModelInfo`` of the int8 .tflite.
        image_root: the board's device image folder, when an emulated run built one.

    Returns:
        ``RuntimeCode``, or None when no runtime of the board has an estimate.
    """
    from tinyshare.targets.runtime_code import linux_runtime_code, tflm_code_estimate

    if board.os == "baremetal":
        est = tflm_code_estimate(op.op_code for op in info.ops)
        per = {"core": est.core_bytes, "shared kernel helpers": est.shared_helpers_bytes,
               **dict(est.per_kernel_bytes)}
        detail = f"{est.method} Cross-check: {est.source}"
        if est.unmatched_ops:
            detail += f" Not counted (no kernel found): {', '.join(est.unmatched_ops)}."
        method = ("estimate: x86-64 code of the used kernels and the core in the installed "
                  "tflite-micro host build (details below the table)")
        return RuntimeCode(total_bytes=est.total_bytes, method=method, detail=detail,
                           per_kernel_bytes=per, decompression_bytes=est.decompression_bytes)
    found = {rt: linux_runtime_code(rt, image_root) for rt in board.runtimes}
    sized = {rt: c for rt, c in found.items() if c is not None}
    if not sized:
        return None
    largest = max(sized.values(), key=lambda c: c.code_bytes)
    missing = sorted(set(found) - set(sized))
    method = (f"the largest of the board's runtimes, {largest.runtime}: {largest.method}"
              + (f"; no size for {', '.join(missing)}" if missing else ""))
    return RuntimeCode(total_bytes=largest.code_bytes, method=method,
                       per_kernel_bytes={rt: c.code_bytes for rt, c in sized.items()})
