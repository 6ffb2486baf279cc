"""The record every benchmark writes: machine, versions, command, its results, as JSON and
Markdown under ``benchmarks/results/<name>-<date>.{json,md}``."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def write_record(name: str, fields: dict, markdown: Callable[[dict], str],
                 stem: str | None = None) -> dict:
    """Write ``benchmarks/results/<name>-<date>.json`` and ``.md``; print the Markdown.

    Args:
        name: the benchmark's name (file prefix and ``benchmark`` field).
        fields: its results, merged into the record (e.g. ``{"models": {...}}``).
        markdown: renders the whole record as Markdown.
        stem: the file name without suffix instead of ``<name>-<date>`` (the suite's
            ``<date>``).

    Returns:
        The record: ``benchmark``, ``date`` (ISO), ``machine``, ``versions`` (installed
        packages), ``command`` and ``fields``.
    """
    from tinyshare.artifacts import package_versions

    date = os.environ.get("BENCH_DATE") or dt.date.today().isoformat()  # the suite's date
    record = {"benchmark": name, "date": date,
              "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, "
                         f"{os.cpu_count()} cores",
              "versions": package_versions(), "command": " ".join(["python", *sys.argv]),
              **fields}
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = stem or f"{name}-{record['date']}"
    (RESULTS / f"{stem}.json").write_text(json.dumps(record, indent=1))
    text = markdown(record)
    (RESULTS / f"{stem}.md").write_text(text)
    print(text)
    return record


def pick(text: str, known, flag: str) -> list[str]:
    """The comma-separated names in ``text``, each one of ``known``.

    Raises:
        SystemExit: exit code 2, with one line naming ``flag`` and the unknown names.
    """
    names = [n for n in text.split(",") if n]
    unknown = sorted(set(names) - set(known))
    if unknown:
        print(f"{flag}: unknown {unknown}; expected some of {list(known)}", file=sys.stderr)
        raise SystemExit(2)
    return names
