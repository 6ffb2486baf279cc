"""The JSON Schema (draft 2020-12) of a board's ``report.json``, and a validator for it.

The schema file, ``report.schema.json``, ships as package data next to this module.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

from tinyshare.errors import ReportError

__all__ = ["REPORT_SCHEMA_VERSION", "report_schema", "validate_report"]

REPORT_SCHEMA_VERSION = 2
_SCHEMA_FILE = "report.schema.json"
_MAX_ERRORS_SHOWN = 5
_MAX_MESSAGE_CHARS = 200


@lru_cache(maxsize=1)
def _schema_text() -> str:
    return resources.files(__name__).joinpath(_SCHEMA_FILE).read_text(encoding="utf-8")


def report_schema() -> dict:
    """The report JSON Schema, as a fresh dict (callers may change it freely).

    Returns:
        The parsed ``report.schema.json`` (draft 2020-12, ``schema_version`` const 2).
    """
    return json.loads(_schema_text())


def _short(message: str) -> str:
    if len(message) <= _MAX_MESSAGE_CHARS:
        return message
    return message[: _MAX_MESSAGE_CHARS - 1] + "…"


def _path_key(error) -> list[tuple[bool, object]]:
    """Sort key: document order of the paths, array indices compared as numbers."""
    return [(isinstance(p, str), p) for p in error.absolute_path]


def _line(error) -> str:
    return f"{error.json_path}: {_short(error.message)}"


def validate_report(data: dict) -> None:
    """Check one board's report dict against the schema.

    Args:
        data: a parsed ``runs/<run>/boards/<board>/report.json``.

    Raises:
        ReportError: the report does not match; the message names the JSON path of each
            mismatch (``$.footprint.flash.needed_bytes``) and what was expected there, the
            most relevant mismatch first (at most five are listed).
    """
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    validator = Draft202012Validator(report_schema())
    errors = list(validator.iter_errors(data))
    if not errors:
        return
    lines = [_line(best_match(errors))]
    for error in sorted(errors, key=_path_key):
        if _line(error) not in lines:
            lines.append(_line(error))
    more = len(lines) - _MAX_ERRORS_SHOWN
    lines = lines[:_MAX_ERRORS_SHOWN]
    if more > 0:
        lines.append(f"... and {more} more")
    raise ReportError("report.json does not match the report schema (version "
                      f"{REPORT_SCHEMA_VERSION}): " + "; ".join(lines))
