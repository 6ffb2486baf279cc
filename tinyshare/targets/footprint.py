"""Does a model fit a board? Flash and RAM needs against the board's budgets.

Pure functions over plain numbers: nothing here runs a model or imports a runtime.
The caller measures (file sizes, the TFLM arena, runtime code size) and says how
(``ram_method``, ``runtime_flash_method``); ``assess`` compares and, on a
rejection, returns the reasons (budget, need, have) rather than raising.

Budgets: ``flash_budget_bytes = flash_bytes - reserved_flash_bytes`` and
``ram_budget_bytes = ram_bytes - reserved_ram_bytes`` (see ``BoardProfile``).
A need equal to its budget fits (headroom 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from tinyshare.errors import BudgetExceededError

if TYPE_CHECKING:
    from tinyshare.targets.board import BoardProfile

Budget = Literal["flash", "ram"]
Verdict = Literal["PASS", "FAIL"]


@dataclass(frozen=True)
class Violation:
    """One budget the model does not fit.

    Attributes:
        budget: which budget, ``"flash"`` or ``"ram"``.
        need_bytes: what the model needs, in bytes.
        have_bytes: the board's budget, in bytes.
        message: one line for people, with the breakdown and how it was measured.
    """

    budget: Budget
    need_bytes: int
    have_bytes: int
    message: str

    @property
    def over_bytes(self) -> int:
        """By how much the need exceeds the budget, in bytes (> 0)."""
        return self.need_bytes - self.have_bytes


@dataclass(frozen=True)
class Footprint:
    """A model's flash and RAM needs on one board, the headroom left, and the verdict.

    Attributes:
        board: board name.
        model_file_bytes: size of the model file stored in flash, in bytes.
        weights_bytes: bytes of stored weights inside that file (informational;
            the file size is what occupies flash).
        runtime_flash_bytes: runtime code size in bytes, or None when unknown
            (then ``flash_needed_bytes`` counts the model file only; see ``notes``).
        runtime_flash_method: how ``runtime_flash_bytes`` was measured, or None.
        flash_needed_bytes: model file + runtime code (when known), in bytes.
        flash_budget_bytes: board flash minus reserved flash, in bytes.
        flash_headroom_bytes: budget minus need, in bytes; negative when it does not fit.
        ram_needed_bytes: peak RAM (e.g. the TFLM arena), in bytes.
        ram_method: how ``ram_needed_bytes`` was measured.
        ram_budget_bytes: board RAM minus reserved RAM, in bytes.
        ram_headroom_bytes: budget minus need, in bytes; negative when it does not fit.
        verdict: ``"PASS"`` when both needs fit their budgets, else ``"FAIL"``.
        reasons: the violations behind a ``"FAIL"`` (empty on ``"PASS"``).
        notes: caveats that do not change the verdict (e.g. unknown runtime size).
    """

    board: str
    model_file_bytes: int
    weights_bytes: int
    runtime_flash_bytes: int | None
    runtime_flash_method: str | None
    flash_needed_bytes: int
    flash_budget_bytes: int
    flash_headroom_bytes: int
    ram_needed_bytes: int
    ram_method: str
    ram_budget_bytes: int
    ram_headroom_bytes: int
    verdict: Verdict
    reasons: tuple[Violation, ...]
    notes: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        """True when the verdict is ``"PASS"``."""
        return self.verdict == "PASS"

    @property
    def flash_used_percent(self) -> float:
        """Flash need as a percentage of the flash budget (> 100 when it does not fit)."""
        return percent_of(self.flash_needed_bytes, self.flash_budget_bytes)

    @property
    def ram_used_percent(self) -> float:
        """RAM need as a percentage of the RAM budget (> 100 when it does not fit)."""
        return percent_of(self.ram_needed_bytes, self.ram_budget_bytes)


def percent_of(part_bytes: int, whole_bytes: int) -> float:
    """``100 * part_bytes / whole_bytes``.

    Raises:
        ValueError: ``whole_bytes`` is not positive.
    """
    if whole_bytes <= 0:
        raise ValueError(f"whole_bytes must be positive, got {whole_bytes}")
    return 100.0 * part_bytes / whole_bytes


def assess(
    board: BoardProfile,
    *,
    model_file_bytes: int,
    weights_bytes: int,
    ram_needed_bytes: int,
    ram_method: str,
    runtime_flash_bytes: int | None,
    runtime_flash_method: str | None,
) -> Footprint:
    """Compare a model's flash and RAM needs with ``board``'s budgets.

    Args:
        board: the board profile.
        model_file_bytes: size of the model file (.tflite / .onnx) in bytes.
        weights_bytes: stored weight bytes inside the model file.
        ram_needed_bytes: peak RAM the model needs (TFLM arena, or process peak), in bytes.
        ram_method: how ``ram_needed_bytes`` was measured, e.g.
            ``"tflm arena, smallest working size (host 64-bit build)"``.
        runtime_flash_bytes: runtime code size in bytes, or None if unknown.
        runtime_flash_method: how ``runtime_flash_bytes`` was measured; required
            exactly when ``runtime_flash_bytes`` is given.

    Returns:
        The footprint, with verdict ``"FAIL"`` and one ``Violation`` per budget
        exceeded, or ``"PASS"`` with no reasons.

    Raises:
        ValueError: a negative or non-integer size, weights larger than the file,
            an empty ``ram_method``, or a runtime size without its method (or the reverse).
    """
    for field, value in (
        ("model_file_bytes", model_file_bytes),
        ("weights_bytes", weights_bytes),
        ("ram_needed_bytes", ram_needed_bytes),
        ("runtime_flash_bytes", runtime_flash_bytes),
    ):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ValueError(f"{field} must be a non-negative int, got {value!r}")
    if weights_bytes > model_file_bytes:
        raise ValueError(f"weights_bytes ({weights_bytes}) exceeds model_file_bytes ({model_file_bytes})")
    if not ram_method:
        raise ValueError("ram_method must say how ram_needed_bytes was measured")
    if (runtime_flash_bytes is None) != (not runtime_flash_method):
        raise ValueError("runtime_flash_bytes and runtime_flash_method must be given together")

    notes: list[str] = []
    flash_needed_bytes = model_file_bytes
    flash_breakdown = f"model file {model_file_bytes:,} B"
    if runtime_flash_bytes is None:
        notes.append("runtime code size unknown: flash need counts the model file only")
    else:
        flash_needed_bytes += runtime_flash_bytes
        flash_breakdown += f" + runtime code {runtime_flash_bytes:,} B ({runtime_flash_method})"

    flash_budget_bytes = board.flash_budget_bytes
    ram_budget_bytes = board.ram_budget_bytes
    reasons: list[Violation] = []
    if flash_needed_bytes > flash_budget_bytes:
        reasons.append(
            Violation(
                budget="flash",
                need_bytes=flash_needed_bytes,
                have_bytes=flash_budget_bytes,
                message=(
                    f"flash: needs {flash_needed_bytes:,} B ({flash_breakdown}) but {board.name} has "
                    f"{flash_budget_bytes:,} B ({board.flash_bytes:,} B flash - {board.reserved_flash_bytes:,} B "
                    f"reserved); over by {flash_needed_bytes - flash_budget_bytes:,} B"
                ),
            )
        )
    if ram_needed_bytes > ram_budget_bytes:
        reasons.append(
            Violation(
                budget="ram",
                need_bytes=ram_needed_bytes,
                have_bytes=ram_budget_bytes,
                message=(
                    f"ram: needs {ram_needed_bytes:,} B ({ram_method}) but {board.name} has "
                    f"{ram_budget_bytes:,} B ({board.ram_bytes:,} B RAM - {board.reserved_ram_bytes:,} B "
                    f"reserved); over by {ram_needed_bytes - ram_budget_bytes:,} B"
                ),
            )
        )
    return Footprint(
        board=board.name,
        model_file_bytes=model_file_bytes,
        weights_bytes=weights_bytes,
        runtime_flash_bytes=runtime_flash_bytes,
        runtime_flash_method=runtime_flash_method,
        flash_needed_bytes=flash_needed_bytes,
        flash_budget_bytes=flash_budget_bytes,
        flash_headroom_bytes=flash_budget_bytes - flash_needed_bytes,
        ram_needed_bytes=ram_needed_bytes,
        ram_method=ram_method,
        ram_budget_bytes=ram_budget_bytes,
        ram_headroom_bytes=ram_budget_bytes - ram_needed_bytes,
        verdict="FAIL" if reasons else "PASS",
        reasons=tuple(reasons),
        notes=tuple(notes),
    )


def require_fit(footprint: Footprint) -> Footprint:
    """Return ``footprint`` if it passed; otherwise raise with every reason on one line.

    For callers that must stop on a rejection (e.g. a ``--fail-on-budget`` run);
    reports should keep the ``Footprint`` and its reasons instead.

    Raises:
        BudgetExceededError: the verdict is ``"FAIL"``.
    """
    if not footprint.passed:
        raise BudgetExceededError(
            f"model does not fit {footprint.board}: " + "; ".join(r.message for r in footprint.reasons)
        )
    return footprint
