"""Load a user's own arrays from an ``.npz`` file, never unpickling objects.

An ``.npz`` is a zip of ``.npy`` members. ``read_npz`` reads each wanted member's header
first and refuses object (pickled) arrays and any declared size that the member does not
hold (or that is above ``MAX_ARRAY_BYTES``) before a byte of array data is allocated; only
then is the data read, with ``allow_pickle=False``.
"""

from __future__ import annotations

import math
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from tinyshare.errors import DataError

__all__ = ["MAX_ARRAY_BYTES", "load_npz_arrays", "load_samples", "read_npz"]

MAX_ARRAY_BYTES = 1 << 30  # one array of user data, in bytes (1 GiB)

# What zipfile, zlib and numpy's .npy reader raise on corrupt or unsupported members.
_READ_ERRORS = (ValueError, OSError, zipfile.BadZipFile, zlib.error, EOFError,
                NotImplementedError, RuntimeError, SyntaxError, UnicodeDecodeError)


def read_npz(
    path: str | Path,
    required: Iterable[str],
    optional: Iterable[str] = (),
    *,
    max_array_bytes: int = MAX_ARRAY_BYTES,
    expected: str = "",
) -> dict[str, np.ndarray]:
    """Read named arrays from an ``.npz`` file, checking each header before reading data.

    Args:
        path: the ``.npz`` file.
        required: array names that must be present, e.g. ``("x",)``.
        optional: array names read when present.
        max_array_bytes: the largest array accepted, in bytes.
        expected: what the arrays should be, appended to "missing array" messages.

    Returns:
        ``{name: array}`` for the required names and the optional names present.

    Raises:
        DataError: missing file, not a zip of ``.npy`` arrays, a required array missing,
            an object (pickled) array, a declared shape larger than the member's data or
            than ``max_array_bytes``, or corrupt data. One line, naming the file.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: npz file not found")
    required, optional = tuple(required), tuple(optional)
    try:
        with zipfile.ZipFile(p) as zf:
            members = {i.filename.removesuffix(".npy"): i for i in zf.infolist()
                       if i.filename.endswith(".npy")}
            missing = [k for k in required if k not in members]
            if missing:
                raise DataError(f"{p}: missing array(s) {', '.join(missing)}"
                                + (f"; expected {expected}" if expected else ""))
            out = {}
            for key in (*required, *(k for k in optional if k in members)):
                info = members[key]
                with zf.open(info) as f:
                    _check_header(p, key, f, info.file_size, max_array_bytes)
                with zf.open(info) as f:
                    out[key] = np.lib.format.read_array(f, allow_pickle=False)
            return out
    except _READ_ERRORS as e:
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise DataError(f"{p}: not a readable npz without pickled objects ({first})") from None


def _check_header(p: Path, key: str, f, stored_bytes: int, max_bytes: int) -> None:
    """Refuse object arrays and declared sizes the member cannot hold, from the header alone."""
    fmt = np.lib.format
    version = fmt.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = fmt.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, _, dtype = fmt.read_array_header_2_0(f)
    else:  # (3, 0) holds utf-8 field names, which plain arrays never need
        raise DataError(f"{p}: array {key!r} uses .npy format version {version}; expected "
                        "1.0 or 2.0 (plain arrays saved by numpy.savez)")
    if dtype.hasobject:
        raise DataError(f"{p}: array {key!r} holds pickled Python objects (dtype {dtype}); "
                        "they are never loaded (allow_pickle is off)")
    if any(d < 0 for d in shape):
        raise DataError(f"{p}: array {key!r} declares a negative dimension {shape}")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > min(stored_bytes, max_bytes):
        raise DataError(f"{p}: array {key!r} declares shape {shape} {dtype} ({nbytes:,} bytes) "
                        f"but the file holds {stored_bytes:,} bytes for it (limit "
                        f"{max_bytes:,} bytes)")


def load_npz_arrays(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Load ``x`` and ``y`` from an npz file.

    Expected arrays: ``x: (N, C, H, W) float32`` and ``y: (N,) int64`` with labels
    in [0, num_classes).

    Raises:
        DataError: missing file, not an npz, missing key, wrong shape or dtype, object
            arrays (``allow_pickle`` is always off), or N mismatch.
    """
    p = Path(path)
    arrays = read_npz(p, ("x", "y"), expected="x (N,C,H,W) float32 and y (N,) int64")
    x, y = arrays["x"], arrays["y"]
    if x.dtype != np.float32 or x.ndim != 4:
        raise DataError(
            f"{p}: array 'x' must be (N, C, H, W) float32, got {x.shape} {x.dtype}"
        )
    if y.dtype != np.int64 or y.ndim != 1:
        raise DataError(f"{p}: array 'y' must be (N,) int64, got {y.shape} {y.dtype}")
    if len(x) != len(y):
        raise DataError(f"{p}: x has {len(x)} samples but y has {len(y)}")
    if len(y) < 20:
        raise DataError(f"{p}: need at least 20 samples to split, got {len(y)}")
    if y.min() < 0:
        raise DataError(f"{p}: labels in 'y' must be >= 0, got {int(y.min())}")
    if not np.isfinite(x).all():
        raise DataError(f"{p}: array 'x' holds NaN or inf values")
    return x, y


def load_samples(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Load samples to run a model on: ``x`` and, when present, labels ``y``.

    Expected arrays: ``x: (N, ...) float32`` in the model's input layout (N >= 1, finite)
    and optionally ``y: (N,)`` integer labels >= 0. The shape of one sample is checked
    against a model by the caller.

    Returns:
        ``(x, y)``; ``y`` is None when the file has no ``y``, else int64.

    Raises:
        DataError: as ``read_npz``, or ``x`` not float32 with N >= 1, NaN / inf in ``x``,
            ``y`` not a 1-D integer array of N labels >= 0.
    """
    p = Path(path)
    arrays = read_npz(p, ("x",), ("y",),
                      expected="x (N, ...) float32 in the model's input layout, optional y (N,) int")
    x, y = arrays["x"], arrays.get("y")
    if x.dtype != np.float32 or x.ndim < 1 or x.shape[0] < 1:
        raise DataError(f"{p}: array 'x' must be (N, ...) float32 with N >= 1, "
                        f"got {x.shape} {x.dtype}")
    if not np.isfinite(x).all():
        raise DataError(f"{p}: array 'x' holds NaN or inf values")
    if y is None:
        return x, None
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{p}: array 'y' must be (N,) integer labels, got {y.shape} {y.dtype}")
    if len(y) != len(x):
        raise DataError(f"{p}: x has {len(x)} samples but y has {len(y)}")
    if y.min() < 0 or y.max() > np.iinfo(np.int64).max:
        raise DataError(f"{p}: labels in 'y' must be in [0, 2**63), got {y.min()}..{y.max()}")
    return x, y.astype(np.int64)
