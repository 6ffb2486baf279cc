"""tinyshare: take weight-shared tiny neural networks to embedded boards.

The public API is small; heavy libraries load only when a function needs them::

    from tinyshare import load_config, run, Stage
    result = run(load_config("configs/digits.toml"), until=Stage.REPORT)
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["Stage", "load_board", "load_config", "run"]


def __getattr__(name: str):
    if name in ("run", "Stage"):
        from tinyshare.pipeline import stages

        return getattr(stages, name)
    if name == "load_config":
        from tinyshare.config import load_config

        return load_config
    if name == "load_board":
        from tinyshare.targets.board_registry import load_board

        return load_board
    raise AttributeError(f"module 'tinyshare' has no attribute {name!r}")
