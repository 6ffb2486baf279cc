"""The handwritten digits bundled with scikit-learn: 1,797 real 8×8 images, no download.

Source: the UCI "Optical Recognition of Handwritten Digits" test set, as shipped in
``sklearn.datasets.load_digits``; pixel values 0..16 are scaled to [0, 1].
"""

from __future__ import annotations

import numpy as np


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """Return ``x: (1797, 1, 8, 8) float32`` in [0, 1] and ``y: (1797,) int64``."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[:, None, :, :]
    y = bunch.target.astype(np.int64)
    return x, y
