"""Small Markdown helpers shared by the report renderers."""

from __future__ import annotations


def bytes_text(n: int | None) -> str:
    """``1234 -> "1,234 B"``; ``None -> "n/a"``."""
    return "n/a" if n is None else f"{n:,} B"


def percent_text(x: float) -> str:
    """A fraction in [0, 1] as a percentage with two decimals."""
    return f"{100.0 * x:.2f} %"


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(header: list[str], rows: list[list[object]]) -> str:
    """A Markdown table; ``|`` inside cells is escaped so every row keeps its columns."""
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)
