"""The checks that make up a board's verdict."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    """One gate in a board's verdict.

    ``status`` is "PASS" or "FAIL" (a gate), "FINDING" (a measured difference reported as
    it is, e.g. between onnxruntime's optimization levels; it never changes the verdict on
    its own) or "INFO" (a fact, e.g. a host-build result when the board's own build ran
    under emulation). Only FAIL makes the verdict FAIL.

    ``kind`` types the gate for the report's ``violations``: "budget", "op_support",
    "accuracy", "agreement", "sharing", "emulation", "export", "cluster" (the codebook
    of a clustered model) or "codegen" (the generated C against TFLM). A budget check carries ``budget`` ("flash" / "ram") and
    ``need_bytes`` / ``have_bytes`` / ``reserved_bytes``.
    """

    name: str
    status: str
    detail: str
    kind: str
    budget: str | None = None
    need_bytes: int | None = None
    have_bytes: int | None = None
    reserved_bytes: int | None = None

    def as_dict(self) -> dict:
        """``{name, status, detail, kind}`` plus the budget fields on budget checks."""
        d = {"name": self.name, "status": self.status, "detail": self.detail, "kind": self.kind}
        if self.budget is not None:
            d.update(budget=self.budget, need_bytes=self.need_bytes, have_bytes=self.have_bytes,
                     reserved_bytes=self.reserved_bytes)
        return d

    def violation(self) -> dict:
        """The report's ``violations`` entry for a FAIL."""
        d = {"kind": self.kind, "check": self.name, "detail": self.detail}
        if self.budget is not None:
            d.update(budget=self.budget, need_bytes=self.need_bytes, have_bytes=self.have_bytes,
                     reserved_bytes=self.reserved_bytes)
        return d


def accuracy_check(label: str, accuracy: float, float_acc: float, vcfg) -> Check:
    """An int8 top-1 against the config's limits (``validation.max_accuracy_drop_points``
    below float, and the ``validation.min_top1`` floor)."""
    drop = (float_acc - accuracy) * 100.0
    limit = vcfg.max_accuracy_drop_points
    ok = drop <= limit and accuracy >= vcfg.min_top1
    floor = f", floor {100 * vcfg.min_top1:.2f} %" if vcfg.min_top1 > 0 else ""
    return Check(label, "PASS" if ok else "FAIL",
                 f"{100 * accuracy:.2f} % (float {100 * float_acc:.2f} %, drop {drop:+.2f} "
                 f"points, limit {limit:g} points{floor})", kind="accuracy")
