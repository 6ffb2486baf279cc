"""Files on disk: atomic writes, sha256, and the per-stage ``manifest.json``."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

MANIFEST_SCHEMA_VERSION = 1

_VERSIONED = (
    "torch", "torchao", "litert-torch", "ai-edge-litert", "onnx", "onnxscript",
    "onnxruntime", "tflite-micro", "numpy", "scikit-learn", "pydantic",
)


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to a temporary file in the same folder, then rename it into place."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p


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


def package_versions() -> dict[str, str]:
    """Installed versions of the packages whose behaviour the results depend on."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "machine": platform.machine()}
    for name in _VERSIONED:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
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
