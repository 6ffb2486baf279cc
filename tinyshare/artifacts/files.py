"""Files on disk: atomic writes, sha256, and the per-stage ``manifest.json``."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import platform
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from tinyshare.errors import ModelFileError, OutputWriteError

MANIFEST_SCHEMA_VERSION = 1
_SUFFIX_FORMATS = {".tflite": "tflite", ".onnx": "onnx"}
TFLITE_FILE_IDENTIFIER = b"TFL3"  # bytes 4-8 of every .tflite flatbuffer
_UMASK = os.umask(0)
os.umask(_UMASK)

_VERSIONED = (
    "torch", "torchao", "litert-torch", "ai-edge-litert", "onnx", "onnxscript",
    "onnxruntime", "tflite-micro", "ethos-u-vela", "numpy", "scikit-learn", "pydantic",
)


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to a temporary file in the same folder, then rename it into place.

    Readers see the old file or the whole new one, never a part; the temporary file is
    removed when writing fails.

    Raises:
        OSError: the folder cannot be written (read-only, no permission) or the disk is full
            (``ENOSPC``); ``path`` is then unchanged.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # a full disk shows here, before the rename, not after a crash
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give reports the usual mode
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p


_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)


def output_write_error(exc: OSError, run_dir: str | Path) -> OutputWriteError | None:
    """The one-line error for an environment fault while writing the run ``run_dir``.

    Args:
        exc: the error a writer raised.
        run_dir: the run folder ``runs/<name>/``; the message names it and its parent.

    Returns:
        An ``OutputWriteError`` saying what to do for a full disk (``ENOSPC``, ``EDQUOT``,
        ``EFBIG``) or a read-only / not writable folder (``EROFS``, ``EACCES``, ``EPERM``);
        None for any other error, which is not an environment fault to translate.
    """
    run_dir = Path(run_dir)
    out_dir = run_dir.parent
    what = Path(os.fsdecode(exc.filename)) if exc.filename is not None else out_dir
    inside = what == out_dir or out_dir in what.parents  # else e.g. a cache folder
    reason = exc.strerror or os.strerror(exc.errno or 0)
    kept = f"{run_dir} was left as it was"
    if exc.errno in _FULL:
        fix = ("free some space or set output_dir to another disk (--set output_dir=PATH)"
               if inside else f"free some space on the disk of {what.parent}")
    elif exc.errno in _READ_ONLY:
        fix = (f"make {out_dir} writable or set output_dir to a writable folder "
               "(--set output_dir=PATH)" if inside else f"make {what.parent} writable")
    else:
        return None
    return OutputWriteError(f"cannot write {what}: {reason}; {fix}; {kept}")


@contextlib.contextmanager
def write_errors_as_output_errors(run_dir: str | Path) -> Iterator[None]:
    """Turn a full disk or a read-only folder met in the ``with`` block into one line.

    Args:
        run_dir: the run folder being written (``runs/<name>/``), named in the message.

    Raises:
        OutputWriteError: an ``OSError`` that ``output_write_error`` recognises (chained
            from it); other errors pass through unchanged.
    """
    try:
        yield
    except OSError as exc:
        err = output_write_error(exc, run_dir)
        if err is None:
            raise
        raise err from exc


def _jsonable(obj: Any) -> Any:
    import numpy as np

    if is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(asdict(obj))
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    text = json.dumps(_jsonable(obj), indent=2, sort_keys=False, allow_nan=False)
    return atomic_write_bytes(path, (text + "\n").encode("utf-8"))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_npy(path: str | Path, array) -> Path:
    """``numpy.save`` of ``array`` through ``atomic_write_bytes`` (no half-written .npy).

    Raises:
        OSError: as ``atomic_write_bytes``.
    """
    import io

    import numpy as np

    buf = io.BytesIO()
    np.save(buf, array)
    return atomic_write_bytes(path, buf.getvalue())


def atomic_write_npz(path: str | Path, **arrays) -> Path:
    """``numpy.savez`` of ``arrays`` through ``atomic_write_bytes`` (no half-written .npz).

    Raises:
        OSError: as ``atomic_write_bytes``.
    """
    import io

    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return atomic_write_bytes(path, buf.getvalue())


def package_version(name: str) -> str:
    """The installed version of distribution ``name``, or ``"not installed"``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def package_versions() -> dict[str, str]:
    """Installed versions of the packages whose behaviour the results depend on."""
    out = {"python": platform.python_version(), "machine": platform.machine()}
    out.update({name: package_version(name) for name in _VERSIONED})
    return out


def write_manifest(
    stage_dir: str | Path,
    *,
    stage: str,
    inputs: dict[str, Any],
    seconds: float,
    seed: int,
) -> Path:
    """Write ``stage_dir/manifest.json`` last, with the sha256 of every file in the folder.

    Returns:
        The manifest path.
    """
    d = Path(stage_dir)
    files = {
        str(p.relative_to(d)): {"sha256": sha256_file(p), "bytes": p.stat().st_size}
        for p in sorted(d.rglob("*"))
        if p.is_file() and p.name != "manifest.json" and not p.name.endswith(".tmp")
    }
    return atomic_write_json(d / "manifest.json", {
        "schema_version": MANIFEST_SCHEMA_VERSION,
        "stage": stage,
        "seed": seed,
        "seconds": round(seconds, 3),
        "inputs": inputs,
        "versions": package_versions(),
        "files": files,
    })


def require_model_file(path: str | os.PathLike[str], model_format: str | None = None) -> Path:
    """Check that ``path`` is a readable, non-empty model file before anything loads it.

    This is the one file check for model files: the inspector and every runtime harness
    (``tinyshare.targets.runtimes``) call it. A ``.tflite`` model must carry the flatbuffer
    identifier ``TFL3`` at byte 4.

    Args:
        path: the model file.
        model_format: ``"tflite"`` or ``"onnx"``; None takes it from the suffix
            (``.tflite`` / ``.onnx``, any other suffix is an error).

    Returns:
        The absolute path.

    Raises:
        ModelFileError: unknown suffix (when ``model_format`` is None), no such file, not
            readable, empty, or a TFLite file without the ``TFL3`` identifier. One line,
            naming the file.
    """
    path = Path(path)
    fmt = model_format if model_format is not None else _SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt not in ("tflite", "onnx"):
        got = repr(model_format) if model_format is not None else repr(path.suffix)
        raise ModelFileError(f"{path}: unknown model format {got} (expected .tflite or .onnx)")
    try:
        with path.open("rb") as f:
            head = f.read(8)
    except FileNotFoundError as exc:
        raise ModelFileError(f"{path}: no such file") from exc
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read ({type(exc).__name__}: {exc.strerror})") from exc
    if not head:
        raise ModelFileError(f"{path}: empty file")
    if fmt == "tflite" and head[4:8] != TFLITE_FILE_IDENTIFIER:
        raise ModelFileError(f"{path}: not a TFLite flatbuffer (no 'TFL3' file identifier)")
    return path.absolute()
