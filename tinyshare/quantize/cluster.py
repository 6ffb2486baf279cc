"""Codebook (k-means) weight clustering, with fine-tuning that keeps the assignment.

``cluster_weights(model, k)`` replaces every conv / linear weight (shared layers
included) by its k-means centroids, per output channel (axis 0) or per tensor, in place:
the same ``Parameter`` objects, written with ``copy_`` under ``no_grad``.

Fine-tuning keeps the assignment with a gradient hook on each clustered Parameter: the
hook replaces the gradient of every element by the *sum* of the gradients of its
cluster. That sum is exactly the gradient of the centroid when the weight is written
as ``W = centroids[assignment]`` (autograd of a gather), i.e. the straight-through
estimator of Deep Compression (Han et al., 2016) and TF-MOT's clustering. Every member
of a cluster then gets the same gradient at every step, so any elementwise optimizer
(SGD, momentum, Adam, weight decay, norm clipping) moves the members identically and
they stay equal: the forward pass reads ordinary weights, no module class changes, and
ties by Parameter identity survive. Two clusters may meet at one value (fewer distinct
values, never more). ``strip_clustering`` removes the hooks and snaps each cluster to its
mean, so quantization and export see ordinary modules.

int8 per-channel quantization maps ≤ k distinct floats per channel to ≤ k distinct int8
values, also after BN folding (a per-output-channel factor); see
``tests/quantize/test_cluster.py``.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tinyshare.errors import ConfigError

__all__ = [
    "ALLOWED_K",
    "ClusterResult",
    "ClusteredTensor",
    "cluster_weights",
    "clusterable_weights",
    "clustered_parameters",
    "distinct_values_per_channel",
    "strip_clustering",
]

ALLOWED_K = (4, 8, 16, 32)
_KMEANS_N_INIT = 4

# id(Parameter) -> (weakref to it, hook handle, (numel,) int64 global cluster ids, id count).
# Keyed by id: tensors compare elementwise, so a WeakKeyDictionary cannot hold them.
_REGISTRY: dict[int, tuple] = {}


def _entry(p) -> tuple | None:
    entry = _REGISTRY.get(id(p))
    return entry if entry is not None and entry[0]() is p else None


@dataclass(frozen=True)
class ClusteredTensor:
    """One clustered weight tensor.

    Attributes:
        name: the parameter's qualified name (first name if the Parameter is tied).
        shape: the parameter's shape.
        per_channel: True if clustered per slice along axis 0, False per tensor.
        assignment: (C, M) int64 cluster index of every element, per channel (C = shape[0]
            and M = numel / C when ``per_channel``; C = 1 otherwise); indices in [0, k).
        clusters_per_channel: (C,) int64 clusters used per channel (≤ k; fewer when the
            channel held fewer distinct values than k).
    """

    name: str
    shape: tuple[int, ...]
    per_channel: bool
    assignment: np.ndarray
    clusters_per_channel: np.ndarray


@dataclass(frozen=True)
class ClusterResult:
    """What ``cluster_weights`` did.

    Attributes:
        k: clusters requested per channel (or per tensor).
        tensors: the clustered parameters, in ``named_parameters`` order.
        skipped: names of weight parameters left alone (fewer than ``min_elements``).
    """

    k: int
    tensors: tuple[ClusteredTensor, ...]
    skipped: tuple[str, ...]


def _weight_params(model) -> list[tuple[str, object]]:
    """(name, Parameter) of every conv / linear weight, each tied Parameter once."""
    from torch import nn

    from tinyshare.models.layers import SharedConv2d, SharedDepthwiseConv2d, SharedLinear

    kinds = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
             nn.Linear, SharedConv2d, SharedDepthwiseConv2d, SharedLinear)
    seen: set[int] = set()
    out = []
    for mod_name, mod in model.named_modules():
        if not isinstance(mod, kinds):
            continue
        # SharedLinear's ``scale`` (out, 1) is the weight of its second FULLY_CONNECTED.
        attrs = ("weight", "scale") if isinstance(mod, SharedLinear) else ("weight",)
        for attr in attrs:
            p = getattr(mod, attr, None)
            if p is None or id(p) in seen:
                continue
            seen.add(id(p))
            out.append((f"{mod_name}.{attr}" if mod_name else attr, p))
    return out


def clusterable_weights(model, min_elements: int = 64) -> list[str]:
    """Names of the conv / linear weights ``cluster_weights`` would cluster: those with at
    least ``min_elements`` elements, each tied Parameter once."""
    return [name for name, p in _weight_params(model) if p.numel() >= min_elements]


def _cluster_1d(values: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """k-means of one slice.

    Args:
        values: (M,) float64.
        k: clusters wanted.
        seed: KMeans random_state.

    Returns:
        labels (M,) int64 in [0, n) and centroids (n,) float32, n ≤ k. A slice with at
        most k distinct values keeps them exactly.
    """
    uniq, inverse = np.unique(values, return_inverse=True)
    if len(uniq) <= k:
        return inverse.astype(np.int64), uniq.astype(np.float32)
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=k, n_init=_KMEANS_N_INIT, random_state=seed)
    labels = km.fit_predict(values.reshape(-1, 1)).astype(np.int64)
    # Centroid = mean of its members in float32, the value the weights will hold.
    centroids = np.array([values[labels == j].mean() if np.any(labels == j) else 0.0
                          for j in range(k)], dtype=np.float32)
    return labels, centroids


def _make_hook(flat_ids, n_ids: int) -> Callable:
    """A gradient hook summing the gradient over each cluster (see module docstring)."""

    def hook(grad):
        import torch

        g = grad.reshape(-1)
        sums = torch.zeros(n_ids, dtype=g.dtype, device=g.device).index_add_(0, flat_ids, g)
        return sums[flat_ids].reshape(grad.shape)

    return hook


def cluster_weights(
    model,
    k: int,
    *,
    per_channel: bool = True,
    min_elements: int = 64,
    seed: int = 0,
) -> ClusterResult:
    """Cluster every conv / linear weight of ``model`` into k centroids, in place.

    Biases are never clustered. Weights are replaced by their centroids with
    ``Parameter.copy_`` (the same Parameter objects), and a gradient hook is registered
    on each so fine-tuning trains only the centroids (see module docstring). Clustering a
    parameter again replaces its earlier assignment.

    Args:
        model: a float ``torch.nn.Module`` (any form; shared layers included).
        k: centroids per output channel (or per tensor): one of 4, 8, 16, 32.
        per_channel: cluster each slice along axis 0 (output channel) separately.
        min_elements: parameters with fewer elements are skipped (left unchanged).
        seed: ``random_state`` of scikit-learn's KMeans (``n_init`` fixed at 4).

    Returns:
        The ``ClusterResult`` (assignments, clusters used per channel, skipped names).

    Raises:
        ConfigError: ``k`` is not one of 4, 8, 16, 32, or ``min_elements`` < 1.
    """
    import torch

    if isinstance(k, bool) or k not in ALLOWED_K:
        raise ConfigError(f"cluster k must be one of {ALLOWED_K}, got k={k!r}")
    if min_elements < 1:
        raise ConfigError(f"cluster min_elements must be >= 1, got {min_elements!r}")
    done, skipped = [], []
    for name, p in _weight_params(model):
        if p.numel() < min_elements:
            skipped.append(name)
            continue
        w = p.detach().cpu().double().numpy()
        rows = w.reshape(w.shape[0], -1) if per_channel else w.reshape(1, -1)
        labels = np.empty(rows.shape, dtype=np.int64)
        values = np.empty(rows.shape, dtype=np.float32)
        used = np.empty(rows.shape[0], dtype=np.int64)
        for c, row in enumerate(rows):
            lab, cen = _cluster_1d(row, k, seed)
            labels[c], values[c], used[c] = lab, cen[lab], len(np.unique(lab))
        with torch.no_grad():
            p.copy_(torch.from_numpy(values.reshape(w.shape)).to(p.dtype))
        _register(p, labels, k)
        done.append(ClusteredTensor(name=name, shape=tuple(w.shape), per_channel=per_channel,
                                    assignment=labels, clusters_per_channel=used))
    return ClusterResult(k=k, tensors=tuple(done), skipped=tuple(skipped))


def _register(p, labels: np.ndarray, k: int) -> None:
    """Attach the cluster-sum gradient hook to ``p`` (replacing an earlier one)."""
    import torch

    _unregister(p)
    offsets = np.arange(labels.shape[0], dtype=np.int64)[:, None] * k
    flat_ids = torch.from_numpy((labels + offsets).reshape(-1)).to(p.device)
    handle = p.register_hook(_make_hook(flat_ids, labels.shape[0] * k))
    key = id(p)
    ref = weakref.ref(p, lambda _r: _REGISTRY.pop(key, None))
    _REGISTRY[key] = (ref, handle, flat_ids, labels.shape[0] * k)


def _unregister(p) -> None:
    if _entry(p) is not None:
        _REGISTRY.pop(id(p))[1].remove()


def clustered_parameters(model) -> list[str]:
    """Names of ``model``'s parameters that currently carry a cluster assignment."""
    return [n for n, p in model.named_parameters() if _entry(p) is not None]


def strip_clustering(model) -> list[str]:
    """Remove the clustering hooks and bake the centroids into plain weights, in place.

    Each cluster is snapped to the float32 mean of its members (a no-op after fine-tuning
    with an elementwise optimizer, which keeps the members equal). The Parameter objects
    are kept.

    Returns:
        The names of the parameters that were stripped.
    """
    import torch

    stripped = []
    for name, p in model.named_parameters():
        entry = _entry(p)
        if entry is None:
            continue
        _, _, flat_ids, n_ids = entry
        with torch.no_grad():
            flat = p.detach().reshape(-1).double()
            ids = flat_ids.to(p.device)
            sums = torch.zeros(n_ids, dtype=torch.float64, device=p.device).index_add_(
                0, ids, flat)
            counts = torch.zeros(n_ids, dtype=torch.float64, device=p.device).index_add_(
                0, ids, torch.ones_like(flat))
            means = (sums / counts.clamp_min(1.0)).to(p.dtype)
            p.copy_(means[ids].reshape(p.shape))
        _unregister(p)
        stripped.append(name)
    return stripped


def distinct_values_per_channel(array, axis: int | None = 0) -> np.ndarray:
    """How many distinct values each slice along ``axis`` holds.

    Args:
        array: any numeric ndarray (or tensor convertible with ``np.asarray``).
        axis: the channel axis; ``None`` counts the whole tensor as one channel.

    Returns:
        (C,) int64 distinct-value counts, C = ``array.shape[axis]`` (1 when axis is None).

    Raises:
        ConfigError: ``axis`` is out of range for the array.
    """
    a = np.asarray(array)
    if axis is None:
        return np.array([len(np.unique(a))], dtype=np.int64)
    if not -a.ndim <= axis < a.ndim:
        raise ConfigError(f"axis {axis} out of range for an array of shape {a.shape}")
    rows = np.moveaxis(a, axis, 0).reshape(a.shape[axis], -1)
    return np.array([len(np.unique(r)) for r in rows], dtype=np.int64)
