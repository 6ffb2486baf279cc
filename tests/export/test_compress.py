"""TFLM LUT compression of a clustered int8 model: TFLM runs the compressed file with
bit-identical outputs, and the file measured on disk is smaller."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tinyshare.errors import ConfigError, ExportError

K = 4  # clusters per output channel → 2-bit LUT indices


class FcNet(nn.Module):
    """(N, 3, 8, 8) → (N, 10): a conv and a 1024→10 linear (10 KB of int8 weights)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.fc = nn.Linear(16 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.relu(self.conv(x)).flatten(1))


@pytest.fixture(scope="module")
def clustered_tflite(tmp_path_factory):
    from tinyshare.export.tflite import export_tflite_int8
    from tinyshare.quantize.cluster import cluster_weights, strip_clustering
    from tinyshare.quantize.ptq import quantize_ptq

    torch.manual_seed(0)
    m = FcNet()
    cluster_weights(m, K)
    strip_clustering(m)
    rng = np.random.default_rng(0)
    qm = quantize_ptq(m.eval(), rng.random((16, 3, 8, 8), dtype=np.float32))
    return export_tflite_int8(qm, tmp_path_factory.mktemp("lut") / "m.tflite")


def test_lut_compressed_model_runs_in_tflm_bit_identically_and_is_smaller(clustered_tflite,
                                                                          tmp_path):
    from tinyshare.export.compress import compress_tflite, lut_candidates
    from tinyshare.targets.runtimes.tflm import find_arena_bytes, run_tflm

    cands = lut_candidates(clustered_tflite)
    assert len(cands) == 2 and all(c.max_distinct_values <= K for c in cands)
    assert all(c.min_bits == 2 for c in cands)
    fc = max(cands, key=lambda c: c.data_bytes)
    assert fc.data_bytes == 10 * 1024 and fc.axis == 0
    res = compress_tflite(clustered_tflite, tmp_path / "m_lut.tflite", {fc.index: 2})
    assert res.source_bytes == os.stat(clustered_tflite).st_size
    assert res.compressed_bytes == os.stat(res.path).st_size
    # 10240 int8 weights → 2560 bytes of 2-bit indices (+ tables, DECODE): > 6 KB saved
    assert res.saved_bytes > 6000
    x = np.random.default_rng(1).random((20, 8, 8, 3), dtype=np.float32)  # NHWC
    outs = []
    for path in (clustered_tflite, res.path):
        arena = find_arena_bytes(path, x[:1]).arena_bytes
        outs.append(run_tflm(path, x, arena_bytes=arena).raw)
    np.testing.assert_array_equal(outs[0], outs[1])
    assert len(np.unique(outs[0])) > 5  # the outputs are not a constant


def test_too_few_bits_and_bad_keys_are_typed_errors(clustered_tflite, tmp_path):
    from tinyshare.export.compress import compress_tflite, lut_candidates

    fc = max(lut_candidates(clustered_tflite), key=lambda c: c.data_bytes)
    with pytest.raises(ExportError, match="at most 2"):
        compress_tflite(clustered_tflite, tmp_path / "a.tflite", {fc.index: 1})
    with pytest.raises(ConfigError, match="got 8"):
        compress_tflite(clustered_tflite, tmp_path / "b.tflite", {fc.index: 8})
    with pytest.raises(ExportError, match="not a constant int8 tensor"):
        compress_tflite(clustered_tflite, tmp_path / "c.tflite", {"no such tensor": 2})
    assert not list(tmp_path.iterdir())  # nothing written on failure
