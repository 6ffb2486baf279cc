"""Codebook clustering inside the TRAIN stage: k-means, fine-tuning with the assignment
fixed, then plain weights again (``tinyshare.quantize.cluster``)."""

from __future__ import annotations

from dataclasses import dataclass

from tinyshare.config import ClusterConfig, TrainConfig
from tinyshare.data.splits import DataSplits
from tinyshare.pipeline.train import Progress, TrainResult, predict, relabel, top1, train_model


@dataclass(frozen=True)
class ClusterSummary:
    """What clustering did to one model (the shared model or its twin).

    Attributes:
        k: centroids per output channel (or per tensor).
        per_channel: clustered per output channel (axis 0) rather than per tensor.
        tensors: qualified names of the clustered weight parameters.
        skipped: weight parameters left alone (fewer than ``min_elements`` elements).
        test_accuracy_before: float top-1 on the test split before clustering, in [0, 1].
        test_accuracy_kmeans: float top-1 right after k-means, before fine-tuning.
        after: float metrics after fine-tuning (``test_accuracy`` is the final top-1).
    """

    k: int
    per_channel: bool
    tensors: tuple[str, ...]
    skipped: tuple[str, ...]
    test_accuracy_before: float
    test_accuracy_kmeans: float
    after: TrainResult

    def as_dict(self) -> dict:
        """Plain data for ``train/metrics.json`` and the reports."""
        return {"k": self.k, "per_channel": self.per_channel, "tensors": list(self.tensors),
                "skipped": list(self.skipped),
                "test_accuracy_before": self.test_accuracy_before,
                "test_accuracy_kmeans": self.test_accuracy_kmeans,
                "test_accuracy_after": self.after.test_accuracy}


def cluster_and_finetune(
    model, before: TrainResult, ccfg: ClusterConfig, batch_size: int, splits: DataSplits,
    seed: int, progress: Progress | None = None, label: str = "cluster",
) -> ClusterSummary:
    """Cluster ``model``'s weights in place, fine-tune the centroids, strip the hooks.

    Args:
        model: a trained float ``torch.nn.Module`` (training form; shared layers kept).
        before: its metrics from training.
        ccfg: ``[cluster]`` of the run config (k, per_channel, epochs, lr, min_elements).
        batch_size: fine-tuning batch size (the training one).
        splits: the data (fine-tuning on train, top-1 on test).
        seed: k-means ``random_state`` and the fine-tuning seed.
        progress: ``progress(label, epoch, epochs)`` after each fine-tuning epoch.
        label: the progress task name, e.g. "cluster" or "cluster twin".

    Returns:
        The ``ClusterSummary``; ``model`` holds plain weights with at most k distinct
        values per channel of every clustered tensor.
    """
    from tinyshare.quantize.cluster import cluster_weights, strip_clustering

    result = cluster_weights(model, ccfg.k, per_channel=ccfg.per_channel,
                             min_elements=ccfg.min_elements, seed=seed)
    kmeans_acc = top1(predict(model, splits.x_test), splits.y_test)
    schedule = TrainConfig(epochs=ccfg.epochs, batch_size=batch_size, lr=ccfg.lr)
    after = train_model(model, splits, schedule, seed,
                        relabel(progress, label))
    strip_clustering(model)  # snaps each cluster to its mean: top-1 measured again after it

    def acc(x, y) -> float:
        return top1(predict(model, x), y)

    after = TrainResult(train_accuracy=acc(splits.x_train, splits.y_train),
                        val_accuracy=acc(splits.x_val, splits.y_val),
                        test_accuracy=acc(splits.x_test, splits.y_test),
                        epochs=after.epochs, final_loss=after.final_loss)
    return ClusterSummary(k=ccfg.k, per_channel=ccfg.per_channel,
                          tensors=tuple(t.name for t in result.tensors), skipped=result.skipped,
                          test_accuracy_before=before.test_accuracy,
                          test_accuracy_kmeans=kmeans_acc, after=after)
