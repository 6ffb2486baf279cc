"""The board registry: every packaged board TOML, validated once, plus user board files.

``load_board("rpi4b")`` returns a registered board; ``load_board("my/board.toml")``
validates and returns a user's own board file without registering it. Every
failure is a ``BoardError`` with a one-line message that names the file, the
field and what was expected, e.g.::

    boards/x.toml: field 'ram_bytes': expected a positive integer, got 'abc'
"""

from __future__ import annotations

import functools
import logging
import os
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from tinyshare.errors import BoardError
from tinyshare.registry import Registry
from tinyshare.targets.board import BoardProfile

log = logging.getLogger(__name__)

_PACKAGE = "tinyshare.targets"
_BOARDS_DIR = "boards"
_MAX_GOT_CHARS = 60


def board_registry() -> Registry[BoardProfile]:
    """The registry of packaged boards, loaded and validated on first use.

    Raises:
        BoardError: a packaged board file does not validate (a packaging bug).
    """
    return _packaged_registry()


@functools.cache
def _packaged_registry() -> Registry[BoardProfile]:
    registry: Registry[BoardProfile] = Registry("board", BoardError)
    folder = resources.files(_PACKAGE).joinpath(_BOARDS_DIR)
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".toml"):
            continue
        label = f"{_BOARDS_DIR}/{entry.name}"
        board = parse_board(entry.read_bytes(), label)
        stem = entry.name.removesuffix(".toml")
        if board.name != stem:
            raise BoardError(f"{label}: field 'name': expected {stem!r} (the file name), got {board.name!r}")
        registry.register(board.name, board)
    log.debug("loaded %d packaged boards: %s", len(registry), ", ".join(registry.names()))
    return registry


def list_boards() -> list[BoardProfile]:
    """All packaged boards, sorted by name."""
    registry = board_registry()
    return [registry.get(name) for name in registry.names()]


def load_board(name_or_path: str | os.PathLike[str]) -> BoardProfile:
    """Return a registered board by name, or validate a user's board TOML by path.

    A ``PathLike``, or a string that ends in ``.toml`` or contains a path
    separator, is read as a file; any other string is a registered name.

    Args:
        name_or_path: e.g. ``"rpi4b"`` or ``"boards/my-board.toml"``.

    Raises:
        BoardError: unknown name (the message lists the known names), missing or
            unreadable file, invalid TOML, or a field that does not validate.
    """
    if isinstance(name_or_path, os.PathLike) or _looks_like_path(name_or_path):
        return load_board_file(Path(name_or_path).expanduser())
    return board_registry().get(name_or_path)


def load_board_file(path: Path) -> BoardProfile:
    """Read and validate one board TOML file (not registered).

    Raises:
        BoardError: the file is missing or unreadable, is not TOML, or does not validate.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        hint = ""
        if path.stem in board_registry() and path.parent == Path():
            hint = f" (for the packaged board, pass the name {path.stem!r})"
        raise BoardError(f"{path}: board file not found{hint}") from None
    except OSError as exc:
        raise BoardError(f"{path}: cannot read board file: {exc.strerror or exc}") from None
    return parse_board(data, str(path))


def parse_board(data: bytes, label: str) -> BoardProfile:
    """Validate TOML bytes into a ``BoardProfile``.

    Args:
        data: the TOML file's bytes (UTF-8).
        label: how errors name the file, e.g. ``"boards/rpi4b.toml"``.

    Raises:
        BoardError: invalid UTF-8 or TOML, or the first failing field (one line).
    """
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise BoardError(f"{label}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise BoardError(f"{label}: not valid TOML: {exc}") from None
    try:
        return BoardProfile.model_validate(raw)
    except ValidationError as exc:
        raise BoardError(format_validation_error(label, exc, BoardProfile)) from None


def _looks_like_path(text: str) -> bool:
    return text.endswith(".toml") or "/" in text or os.sep in text


# --- one-line validation messages -------------------------------------------------------


def format_validation_error(label: str, exc: ValidationError, model: type[BaseModel]) -> str:
    """Format pydantic's first error as one line: ``label: field 'f': expected X, got Y``.

    Args:
        label: the file name to start the line with.
        exc: the validation error.
        model: the model that was validated (to read field constraints and names).
    """
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = tuple(first["loc"])
    where = _loc_text(loc)
    kind = first["type"]
    if kind == "missing":
        line = f"{label}: field '{where}': required but missing"
    elif kind == "extra_forbidden":
        known = ", ".join(_field_names(model, loc[:-1]))
        line = f"{label}: field '{where}': unknown field (known: {known})"
    elif first["input"] is None:
        line = f"{label}: field '{where}': expected {_expected(first, model, loc)}, but it is not set"
    else:
        line = f"{label}: field '{where}': expected {_expected(first, model, loc)}, got {_got(first['input'])}"
    if len(errors) > 1:
        line += f" (+{len(errors) - 1} more error{'s' if len(errors) > 2 else ''})"
    return line


def _loc_text(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"


def _got(value: Any) -> str:
    text = repr(value)
    if isinstance(value, dict):
        text = "a table " + text
    return text if len(text) <= _MAX_GOT_CHARS else text[: _MAX_GOT_CHARS - 3] + "..."


def _field_info(model: type[BaseModel], loc: tuple[Any, ...]) -> Any:
    """The pydantic FieldInfo at ``loc`` (following nested models), or None."""
    current: Any = model
    info = None
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return None
        info = fields[part]
        current = _nested_model(info.annotation)
    return info


def _nested_model(annotation: Any) -> Any:
    for candidate in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _field_names(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    target: Any = model
    if loc:
        info = _field_info(model, loc)
        target = _nested_model(info.annotation) if info is not None else None
    return list(target.model_fields) if target is not None else []


def _int_expectation(info: Any) -> str:
    for item in getattr(info, "metadata", ()):
        if getattr(item, "gt", None) == 0:
            return "a positive integer"
        if getattr(item, "ge", None) == 0:
            return "a non-negative integer"
    return "an integer"


_TYPE_WORDS = {
    "string_type": "a string",
    "string_too_short": "a non-empty string",
    "tuple_type": "a list",
    "list_type": "a list",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "dict_type": "a table",
    "bool_type": "true or false",
}
_INT_TYPES = {"int_type", "int_parsing", "int_from_float", "greater_than", "greater_than_equal"}


def _expected(error: Any, model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind in _INT_TYPES:
        return _int_expectation(_field_info(model, loc))
    if kind == "literal_error":
        return f"one of {ctx.get('expected', '?')}"
    if kind == "too_short":
        return f"at least {ctx.get('min_length', 1)} item(s)"
    if kind == "value_error":
        message = str(ctx.get("error", error["msg"]))
        return message.removeprefix("expected ")
    if kind in _TYPE_WORDS:
        return _TYPE_WORDS[kind]
    message = error["msg"]
    return message.removeprefix("Input should be ")
