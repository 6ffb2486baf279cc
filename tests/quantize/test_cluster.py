"""k-means weight clustering: ≤ k distinct values per channel in float, after fine-tuning,
after BN folding + per-channel int8 PTQ and in the exported .tflite; all-zero channels
quantize to exact zeros with a positive finite scale; Parameters keep their identity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tinyshare.errors import ConfigError
from tinyshare.models.layers import SharedConv2d, switch_to_deploy
from tinyshare.quantize.cluster import (
    cluster_weights,
    clustered_parameters,
    distinct_values_per_channel,
    strip_clustering,
)

ZERO_CHANNEL = 3  # output channel of c1 zeroed before quantization


class ClusterNet(nn.Module):
    """(N, 3, 8, 8) → (N, 10): conv + BN (folded by PT2E), a shared conv, a linear."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 16, 3, padding=1)
        self.bn = nn.BatchNorm2d(16)
        self.c2 = SharedConv2d(16, 16, 3, padding=1, activation="relu")
        self.fc = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.c1(x)))  # (N, 16, 8, 8)
        x = F.max_pool2d(self.c2(x), 2)  # (N, 16, 4, 4)
        return self.fc(x.flatten(1))


def _net() -> ClusterNet:
    torch.manual_seed(0)
    m = ClusterNet()
    with torch.no_grad():  # non-trivial BN, so folding rescales each output channel
        m.bn.running_mean.uniform_(-0.5, 0.5)
        m.bn.running_var.uniform_(0.5, 2.0)
        m.bn.weight.uniform_(0.5, 2.0)
    return m


def _clustered_weights(m):
    return {"c1.weight": m.c1.weight, "c2.weight": m.c2.weight, "fc.weight": m.fc.weight}


def test_distinct_values_per_channel_counts_each_slice():
    a = np.array([[1, 1, 2], [3, 4, 5]], dtype=np.int8)
    assert distinct_values_per_channel(a, 0).tolist() == [2, 3]
    assert distinct_values_per_channel(a, 1).tolist() == [2, 2, 2]
    assert distinct_values_per_channel(a, None).tolist() == [5]
    with pytest.raises(ConfigError, match="axis 2"):
        distinct_values_per_channel(a, 2)


@pytest.mark.parametrize("k", [0, 3, 5, 64])
def test_bad_k_is_a_config_error_naming_k(k):
    with pytest.raises(ConfigError, match=f"k={k}"):
        cluster_weights(_net(), k)


@pytest.mark.parametrize("per_channel", [True, False], ids=["per_channel", "per_tensor"])
def test_clustering_leaves_at_most_k_values_and_keeps_parameters(per_channel):
    m = _net()
    before = {n: (p, p.detach().clone()) for n, p in _clustered_weights(m).items()}
    bias_before = m.c1.bias.detach().clone()
    res = cluster_weights(m, 8, per_channel=per_channel)
    assert sorted(t.name for t in res.tensors) == sorted(before)
    for name, (p, old) in before.items():
        now = _clustered_weights(m)[name]
        assert now is p  # same Parameter object, written in place
        counts = distinct_values_per_channel(p.detach().numpy(), 0 if per_channel else None)
        assert counts.max() <= 8
        assert not torch.equal(p.detach(), old) or old.reshape(old.shape[0], -1).shape[1] <= 8
        # centroids are close to the values they replace (k-means, not garbage)
        assert (p.detach() - old).abs().max() < 0.5 * old.abs().max()
    torch.testing.assert_close(m.c1.bias.detach(), bias_before, rtol=0, atol=0)
    # c2's channels hold 9 values each: per channel that is > 8, so they were clustered
    assert distinct_values_per_channel(m.c2.weight.detach().numpy(), 0).max() <= 8


def test_a_channel_with_few_distinct_values_keeps_them_exactly():
    m = _net()
    with torch.no_grad():
        m.fc.weight[0] = torch.tensor([0.25, -0.5]).repeat(128)
    cluster_weights(m, 4)
    assert sorted(set(m.fc.weight[0].tolist())) == [-0.5, 0.25]


def test_finetuning_trains_centroids_and_keeps_the_assignment():
    m = _net()
    res = cluster_weights(m, 4)
    params = list(m.parameters())
    snap = {n: p.detach().clone() for n, p in _clustered_weights(m).items()}
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2, weight_decay=1e-2)
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        x = torch.rand(8, 3, 8, 8, generator=g)
        y = torch.randint(0, 10, (8,), generator=g)
        opt.zero_grad()
        F.cross_entropy(m(x), y).backward()
        opt.step()
    assert all(a is b for a, b in zip(params, m.parameters(), strict=True))
    for t in res.tensors:
        w = _clustered_weights(m)[t.name].detach().numpy().reshape(t.assignment.shape)
        assert not np.array_equal(w, snap[t.name].numpy().reshape(w.shape)), t.name  # trained
        for c in range(w.shape[0]):  # every cluster's members still share one value
            for j in np.unique(t.assignment[c]):
                assert len(np.unique(w[c][t.assignment[c] == j])) == 1, (t.name, c, j)
        assert distinct_values_per_channel(w, 0).max() <= 4


def test_clustered_gradient_is_the_centroid_gradient():
    """The hook's gradient equals autograd's gradient of W = centroids[assignment]."""
    m = _net()
    res = cluster_weights(m, 4)
    t = next(t for t in res.tensors if t.name == "fc.weight")
    x = torch.rand(4, 3, 8, 8)
    m(x).square().sum().backward()
    hooked = m.fc.weight.grad.reshape(t.assignment.shape)
    # reference: the same loss with fc's weight rebuilt from trainable centroids
    assign = torch.from_numpy(t.assignment)
    w = m.fc.weight.detach().reshape(t.assignment.shape)
    cents = torch.zeros(w.shape[0], 4).scatter_reduce(1, assign, w, "amax", include_self=False)
    cents.requires_grad_(True)
    with torch.no_grad():
        feats = F.max_pool2d(m.c2(F.relu(m.bn(m.c1(x)))), 2).flatten(1)
    out = F.linear(feats, torch.gather(cents, 1, assign).reshape(m.fc.weight.shape), m.fc.bias)
    out.square().sum().backward()
    want = torch.gather(cents.grad, 1, assign)
    torch.testing.assert_close(hooked, want, rtol=1e-5, atol=1e-6)


def test_strip_clustering_removes_hooks_and_keeps_parameters():
    m = _net()
    cluster_weights(m, 16)
    p = m.fc.weight
    assert set(clustered_parameters(m)) == set(_clustered_weights(m))
    assert sorted(strip_clustering(m)) == sorted(_clustered_weights(m))
    assert clustered_parameters(m) == [] and m.fc.weight is p
    m(torch.rand(2, 3, 8, 8)).sum().backward()
    # without the hook, gradients differ inside a cluster again
    assert len(np.unique(p.grad.numpy()[0])) > 16


def _read_tflite_weights(path):
    """(values int8 ndarray, scales float32, quantized_dimension) of every constant int8
    tensor with a data buffer, read from the flatbuffer itself."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(path.read_bytes(), 0))
    out = []
    for t in model.subgraphs[0].tensors:
        buf = model.buffers[t.buffer].data
        if t.type != schema.TensorType.INT8 or buf is None or len(buf) == 0:
            continue
        q = t.quantization
        vals = np.asarray(buf, dtype=np.uint8).view(np.int8).reshape(t.shape)
        out.append((vals, np.asarray(q.scale, dtype=np.float32), int(q.quantizedDimension)))
    return out


@pytest.fixture(scope="module", params=[4, 16], ids=["k4", "k16"])
def quantized(request, tmp_path_factory):
    from tinyshare.export.tflite import export_tflite_int8
    from tinyshare.quantize.ptq import quantize_ptq

    k = request.param
    m = _net()
    cluster_weights(m, k)
    strip_clustering(m)
    with torch.no_grad():
        m.c1.weight[ZERO_CHANNEL].zero_()
    m = switch_to_deploy(m).eval()
    rng = np.random.default_rng(0)
    qm = quantize_ptq(m, rng.random((16, 3, 8, 8), dtype=np.float32), per_channel=True)
    path = export_tflite_int8(qm, tmp_path_factory.mktemp(f"cluster_k{k}") / "m.tflite")
    return {"k": k, "qm": qm, "tflite": path}


def test_int8_weights_hold_at_most_k_values_per_channel(quantized):
    k, qm = quantized["k"], quantized["qm"]
    names = {w.name for w in qm.weights}
    assert {"c1.weight", "fc.weight"} <= names  # c1 carries the folded BN
    for w in qm.weights:
        if w.values.ndim < 2:
            continue
        assert w.axis == 0, w.name
        counts = distinct_values_per_channel(w.values, w.axis)
        assert counts.max() <= k, (w.name, counts)
    fc = next(w for w in qm.weights if w.name == "fc.weight")
    assert distinct_values_per_channel(fc.values, 0).max() == k  # 256 values per channel


def test_zero_channel_quantizes_to_exact_zeros_with_a_positive_scale(quantized):
    qm = quantized["qm"]
    c1 = next(w for w in qm.weights if w.name == "c1.weight")
    assert np.all(c1.values[ZERO_CHANNEL] == 0)
    assert np.count_nonzero(np.delete(c1.values, ZERO_CHANNEL, axis=0)) > 0
    for w in qm.weights:
        assert np.all(np.isfinite(w.scales)) and np.all(w.scales > 0), w.name


def test_tflite_weights_hold_at_most_k_values_and_no_zero_scale(quantized):
    k = quantized["k"]
    tensors = _read_tflite_weights(quantized["tflite"])
    # c2's channel-sum filter: all ones, exact at int8 127 with one scale 1/127
    ones = [t for t in tensors if t[0].shape == (1, 1, 1, 16)]
    assert len(ones) == 1 and np.all(ones[0][0] == 127)
    np.testing.assert_allclose(ones[0][1], [1 / 127], rtol=1e-6)
    tensors = [t for t in tensors if t[0].shape != (1, 1, 1, 16)]
    assert len(tensors) == 3  # c1 (BN folded), c2 (shared, stored once), fc
    zero_rows = 0
    for vals, scales, axis in tensors:
        assert len(scales) == vals.shape[axis] > 1  # per-channel
        assert np.all(np.isfinite(scales)) and np.all(scales > 0)
        assert distinct_values_per_channel(vals, axis).max() <= k
        rows = np.moveaxis(vals, axis, 0).reshape(vals.shape[axis], -1)
        zero_rows += int(np.sum(~rows.any(axis=1)))
    assert zero_rows == 1  # the zeroed c1 channel, stored as exact int8 zeros
