"""Fixed, seeded train/val/test/calib splits as plain arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DataSplits:
    """Seeded splits of one dataset.

    Attributes:
        x_*: (N, C, H, W) float32 inputs, NCHW as PyTorch trains on them.
        y_*: (N,) int64 class labels.
        x_calib: (N_calib, C, H, W) float32, a seeded subset of the train split used to
            calibrate int8 activation ranges.
        num_classes: number of classes.
        source: a short description of where the data came from.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_calib: np.ndarray
    num_classes: int
    source: str

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one sample."""
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]

    def sizes(self) -> dict[str, int]:
        return {
            "train": len(self.y_train),
            "val": len(self.y_val),
            "test": len(self.y_test),
            "calib": len(self.x_calib),
        }


_MIN_PER_CLASS = 5


def split_arrays(
    x: np.ndarray,
    y: np.ndarray,
    *,
    seed: int,
    test_fraction: float,
    val_fraction: float,
    calib_samples: int,
    source: str,
) -> DataSplits:
    """Split ``(x, y)`` into stratified train/val/test splits plus a calib subset of train.

    Args:
        x: (N, C, H, W) float32.
        y: (N,) int64.
        seed: the split seed; the same seed always gives the same splits.
        test_fraction / val_fraction: fractions of N.
        calib_samples: size of the calibration subset (capped at the train size).
        source: where the data came from, for messages and reports.

    Raises:
        DataError: fewer than two classes, or a class too small to stratify.
    """
    from sklearn.model_selection import train_test_split

    from tinyshare.errors import DataError

    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2 or counts.min() < _MIN_PER_CLASS:
        worst = int(classes[counts.argmin()])
        raise DataError(
            f"{source}: every class needs at least {_MIN_PER_CLASS} samples for seeded "
            f"stratified train/val/test splits; class {worst} has {int(counts.min())} "
            f"({len(classes)} classes in all)")
    idx = np.arange(len(y))
    rest, test = train_test_split(
        idx, test_size=test_fraction, random_state=seed, stratify=y
    )
    val_share = val_fraction / (1.0 - test_fraction)
    train, val = train_test_split(
        rest, test_size=val_share, random_state=seed + 1, stratify=y[rest]
    )
    rng = np.random.default_rng(seed + 2)
    calib = rng.choice(train, size=min(calib_samples, len(train)), replace=False)
    return DataSplits(
        x_train=x[train], y_train=y[train],
        x_val=x[val], y_val=y[val],
        x_test=x[test], y_test=y[test],
        x_calib=x[np.sort(calib)],
        num_classes=int(y.max()) + 1,
        source=source,
    )
