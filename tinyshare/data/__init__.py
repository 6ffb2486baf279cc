"""Datasets as fixed, seeded splits of plain arrays."""

from __future__ import annotations

from tinyshare.config import DataConfig
from tinyshare.data.splits import DataSplits, split_arrays
from tinyshare.errors import ConfigError

__all__ = ["DataSplits", "load_splits"]


def _fit_input(x, cfg: DataConfig, source: str):
    """Resize (bilinear) and repeat channels as ``data.input_hw`` / ``data.channels`` ask.

    Args:
        x: (N, C, H, W) float32.

    Returns:
        ``(x, source)``: (N, C', H', W') float32 and the source label naming the mapping.

    Raises:
        ConfigError: ``data.channels`` asks to change C > 1 channels.
    """
    import numpy as np

    notes = []
    if cfg.input_hw is not None and tuple(x.shape[2:]) != tuple(cfg.input_hw):
        import torch
        import torch.nn.functional as F

        h, w = cfg.input_hw
        with torch.no_grad():
            x = F.interpolate(torch.from_numpy(np.ascontiguousarray(x)), size=(h, w),
                              mode="bilinear", align_corners=False).numpy()
        notes.append(f"resized bilinearly to {h}x{w}")
    if cfg.channels is not None and x.shape[1] != cfg.channels:
        if x.shape[1] != 1:
            raise ConfigError(f"data.channels: the data has {x.shape[1]} channels; only "
                              f"1-channel data can be repeated to {cfg.channels}")
        x = np.repeat(x, cfg.channels, axis=1)
        notes.append(f"grey repeated to {cfg.channels} channels")
    label = source + (f", {', '.join(notes)}" if notes else "")
    return np.ascontiguousarray(x, dtype=np.float32), label


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
    x, source = _fit_input(x, cfg, source)
    return split_arrays(
        x, y, seed=seed, test_fraction=cfg.test_fraction, val_fraction=cfg.val_fraction,
        calib_samples=cfg.calib_samples, source=source,
    )
