"""Small HTML helpers shared by the ``report.html`` renderers: escaping and tables."""

from __future__ import annotations

import re
from html import escape

_NUMBER = re.compile(r"[+\-−]?\d[\d,.]*(\s|<|$)")  # a cell that starts with a number


def esc(value: object) -> str:
    """``value`` as text, HTML-escaped (quotes included)."""
    return escape(str(value), quote=True)


def pct(x: float | None) -> str:
    """A fraction in [0, 1] as a percentage with two decimals; ``None -> "n/a"``."""
    return "n/a" if x is None else f"{100.0 * x:.2f} %"


def get_path(d: dict | None, *keys: str):
    """``d[k1][k2]...``, or None where a level is missing or null."""
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def row(cells: list[str], tag: str = "td") -> str:
    """One table row; ``cells`` are HTML already (escaped by the caller). Cells that start
    with a number are right-aligned (class ``num``)."""
    out = []
    for c in cells:
        cls = ' class="num"' if _NUMBER.match(c) else ""
        out.append(f"<{tag}{cls}>{c}</{tag}>")
    return "<tr>" + "".join(out) + "</tr>"


def table(header: list[str], rows: list[list[str]], cls: str = "", foot=None) -> str:
    """A ``<table>``: ``header`` is plain text (escaped here), ``rows`` and ``foot`` HTML."""
    head = row([esc(h) for h in header], "th")
    body = "".join(row(r) for r in rows)
    tfoot = f"<tfoot>{row(foot)}</tfoot>" if foot else ""
    return f'<table class="{cls}"><thead>{head}</thead><tbody>{body}</tbody>{tfoot}</table>'
