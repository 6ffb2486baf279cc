"""Did a clustered model's codebook survive int8? Counts distinct int8 values per channel.

Per-channel int8 quantization maps the ≤ k distinct floats of a clustered channel to ≤ k
int8 values (``tinyshare.quantize.cluster``); this reads the ``QuantizedModel``'s weights
back and checks it, with the all-zero channels: they must quantize to exact zeros with a
positive, finite scale (a zero scale would make the int8 weights meaningless to a runtime).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from tinyshare.quantize.cluster import distinct_values_per_channel

__all__ = ["CodebookCheck", "CodebookTensor", "check_codebook"]


@dataclass(frozen=True)
class CodebookTensor:
    """One clustered weight after int8 quantization.

    Attributes:
        name: the parameter's qualified name (as in ``QuantizedWeight.name``).
        max_distinct_values: most distinct int8 values in one output channel (axis 0).
        zero_channels: output channels whose float weights are all zero.
        zero_channels_ok: every such channel is exact int8 zeros, and every channel holding
            only int8 zeros has a positive, finite scale.
    """

    name: str
    max_distinct_values: int
    zero_channels: int
    zero_channels_ok: bool


@dataclass(frozen=True)
class CodebookCheck:
    """The codebook check of one quantized model.

    Attributes:
        k: centroids per channel the weights were clustered to.
        tensors: the clustered weights found among the int8 weights.
        missing: clustered names with no int8 weight of that name (cannot be checked).
    """

    k: int
    tensors: tuple[CodebookTensor, ...]
    missing: tuple[str, ...]

    @property
    def max_distinct_values(self) -> int:
        """Most distinct int8 values in one channel over every clustered weight (0: none)."""
        return max((t.max_distinct_values for t in self.tensors), default=0)

    @property
    def ok(self) -> bool:
        """≤ k values per channel everywhere, zero channels exact, nothing missing."""
        return (not self.missing and bool(self.tensors)
                and self.max_distinct_values <= self.k
                and all(t.zero_channels_ok for t in self.tensors))

    def describe(self) -> str:
        """One line for a report: the counts against k and the zero channels."""
        worst = max(self.tensors, key=lambda t: t.max_distinct_values, default=None)
        text = (f"at most {self.max_distinct_values} distinct int8 values per output channel "
                f"(k = {self.k}" + (f"; most in {worst.name}" if worst else "")
                + f") over {len(self.tensors)} clustered weights")
        zeros = sum(t.zero_channels for t in self.tensors)
        bad = [t.name for t in self.tensors if not t.zero_channels_ok]
        if bad:
            text += ("; all-zero channels not exact int8 zeros or with a zero scale in: "
                     + ", ".join(bad))
        else:
            text += (f"; {zeros} all-zero float channel(s), exact int8 zeros" if zeros
                     else "; no all-zero float channel") + \
                "; every all-zero int8 channel has a positive scale"
        if self.missing:
            text += f"; no int8 weight named {', '.join(self.missing)}"
        return text


def _zero_channels_ok(values: np.ndarray, scales, float_w) -> tuple[int, bool]:
    """(all-zero float channels, whether the zero channels are right); see CodebookTensor."""
    rows = values.reshape(values.shape[0], -1)
    int8_zero = ~rows.any(axis=1)
    s = np.asarray(scales, dtype=np.float64).reshape(-1)
    if s.size == 1:
        s = np.full(rows.shape[0], s[0])
    ok = s.size == rows.shape[0] and bool(np.all(np.isfinite(s[int8_zero])
                                                 & (s[int8_zero] > 0)))
    f = None if float_w is None else np.asarray(float_w)
    if f is None or f.size != values.size:
        return 0, ok
    float_zero = ~f.reshape(rows.shape[0], -1).any(axis=1)
    return int(float_zero.sum()), ok and bool(np.all(int8_zero[float_zero]))


def check_codebook(
    weights: Iterable, clustered: Iterable[str], k: int,
    float_weights: Mapping[str, np.ndarray] | None = None,
) -> CodebookCheck:
    """Count distinct int8 values per output channel of every clustered weight.

    Args:
        weights: the ``QuantizedModel.weights`` (``QuantizedWeight``: name, values in the
            PyTorch shape with output channels on axis 0, scales).
        clustered: qualified names of the clustered parameters (``ClusterResult``).
        k: centroids per channel.
        float_weights: name → the float weight before quantization (to find all-zero
            channels); without it only int8 all-zero channels are checked (their scale).

    Returns:
        The ``CodebookCheck``.
    """
    by_name = {w.name: w for w in weights}
    found, missing = [], []
    for name in clustered:
        w = by_name.get(name)
        if w is None:
            missing.append(name)
            continue
        values = np.asarray(w.values)
        values = values.reshape(1, -1) if values.ndim < 2 else values
        zeros, zeros_ok = _zero_channels_ok(values, w.scales, (float_weights or {}).get(name))
        found.append(CodebookTensor(
            name=name, max_distinct_values=int(distinct_values_per_channel(values, 0).max()),
            zero_channels=zeros, zero_channels_ok=zeros_ok))
    return CodebookCheck(k=k, tensors=tuple(found), missing=tuple(missing))
