"""Train a zoo model on the CPU, seeded, with progress reported through a callback."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tinyshare.config import TrainConfig
from tinyshare.data.splits import DataSplits

Progress = Callable[[str, int, int], None]  # (task, done, total)


def relabel(progress: Progress | None, task: str) -> Progress | None:
    """``progress`` reporting under ``task`` whatever task name its caller passes (None
    stays None): one training loop, shown as "train twin", "qat", "cluster", ..."""
    if progress is None:
        return None
    return lambda _task, done, total: progress(task, done, total)


@dataclass(frozen=True)
class TrainResult:
    """Float metrics of a trained model (top-1 accuracies in [0, 1])."""

    train_accuracy: float
    val_accuracy: float
    test_accuracy: float
    epochs: int
    final_loss: float


def predict(model, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Float logits ``(N, K) float32`` of ``model`` on ``x: (N, C, H, W) float32``."""
    import torch

    model.eval()
    outs = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            outs.append(model(torch.from_numpy(x[i : i + batch_size])).numpy())
    return np.concatenate(outs).astype(np.float32)


def top1(logits: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of ``logits: (N, K)`` against labels ``y: (N,)``."""
    return float((logits.argmax(axis=1) == y).mean())


def train_model(
    model, splits: DataSplits, cfg: TrainConfig, seed: int, progress: Progress | None = None
) -> TrainResult:
    """Train ``model`` in place with Adam and a cosine schedule.

    Args:
        model: a ``torch.nn.Module`` taking (N, C, H, W) float32.
        splits: the data; only train is used to fit, val and test are reported.
        cfg: epochs, batch size, learning rate.
        seed: seeds torch and the shuffling.
        progress: called as ``progress("train", epoch, epochs)`` after each epoch.
    """
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(splits.x_train)
    y = torch.from_numpy(splits.y_train)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    loss_value = float("nan")
    for epoch in range(cfg.epochs):
        model.train()
        perm = torch.randperm(len(y), generator=gen)
        for i in range(0, len(y), cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_value = float(loss.detach())
        sched.step()
        if progress:
            progress("train", epoch + 1, cfg.epochs)
    model.eval()
    return TrainResult(
        train_accuracy=top1(predict(model, splits.x_train), splits.y_train),
        val_accuracy=top1(predict(model, splits.x_val), splits.y_val),
        test_accuracy=top1(predict(model, splits.x_test), splits.y_test),
        epochs=cfg.epochs,
        final_loss=loss_value,
    )
