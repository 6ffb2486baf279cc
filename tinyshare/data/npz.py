"""Load a user's own arrays from an ``.npz`` file, never unpickling objects."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from tinyshare.errors import DataError


def load_npz_arrays(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Load ``x`` and ``y`` from an npz file.

    Expected arrays: ``x: (N, C, H, W) float32`` and ``y: (N,) int64`` with labels
    in [0, num_classes).

    Raises:
        DataError: missing file, not an npz, missing key, wrong shape or dtype, object
            arrays (``allow_pickle`` is always off), or N mismatch.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: npz file not found")
    try:
        with np.load(p, allow_pickle=False) as f:
            missing = [k for k in ("x", "y") if k not in f.files]
            if missing:
                raise DataError(
                    f"{p}: missing array(s) {', '.join(missing)}; expected x (N,C,H,W) "
                    "float32 and y (N,) int64"
                )
            x, y = f["x"], f["y"]
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{p}: not a readable npz without pickled objects ({e})") from None
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
