"""Datasets as fixed, seeded splits of plain arrays."""

from __future__ import annotations

from tinyshare.config import DataConfig
from tinyshare.data.splits import DataSplits, split_arrays
from tinyshare.errors import ConfigError

__all__ = ["DataSplits", "load_splits"]


def load_splits(cfg: DataConfig, seed: int) -> DataSplits:
    """Load the configured dataset and split it with ``seed``.

    Raises:
        ConfigError: ``source = "npz"`` without ``path``.
        DataError: a bad npz file.
    """
    if cfg.source == "digits":
        from tinyshare.data.digits import load_digits_arrays

        x, y = load_digits_arrays()
        source = "scikit-learn digits (1,797 real 8x8 handwritten digits)"
    else:
        from tinyshare.data.npz import load_npz_arrays

        if not cfg.path:
            raise ConfigError("data.path: required when data.source = 'npz'")
        x, y = load_npz_arrays(cfg.path)
        source = f"npz: {cfg.path}"
    return split_arrays(
        x, y, seed=seed, test_fraction=cfg.test_fraction, val_fraction=cfg.val_fraction,
        calib_samples=cfg.calib_samples, source=source,
    )
