"""Codebook packing of clustered int8 weights: b-bit indices into per-channel value tables.

A clustered weight holds few distinct int8 values per channel (k-means with k in
{4, 8, 16, 32} centroids, then int8 quantization). Such a tensor is stored as

* ``table``: (channels, 2**b) int8, row c the distinct values of channel c in ascending
  order, padded with zeros;
* ``indices``: ceil(numel * b / 8) uint8, one b-bit index per element in flat row-major
  order; element i sits in byte ``(i * b) // 8`` at bits ``(i * b) % 8`` upwards (the first
  element in the low bits), and the last byte is padded with zero bits.

Element i belongs to channel ``(i // inner) % channels``, with ``inner`` the product of the
dimensions after the quantized axis. ``b`` is the smallest of (1, 2, 4) with 2**b at least
the most distinct values of one channel. ``kernels/unpack.c`` (``ts_unpack_codebook``)
decodes exactly this layout; ``unpack_codebook`` is its numpy twin.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

BITS = (1, 2, 4)  # index widths, narrowest first


@dataclass(frozen=True)
class Codebook:
    """One int8 tensor packed as indices + per-channel tables.

    Attributes:
        bits: index width b, one of ``BITS``.
        channels: tables (1 for a per-tensor codebook).
        inner: elements per channel run (product of the dimensions after the axis).
        numel: elements of the tensor.
        indices: (ceil(numel * bits / 8),) uint8, packed as the module docstring says.
        table: (channels, 2**bits) int8 values.
    """

    bits: int
    channels: int
    inner: int
    numel: int
    indices: np.ndarray
    table: np.ndarray

    @property
    def nbytes(self) -> int:
        """Bytes stored (flash): indices + table."""
        return int(self.indices.size + self.table.size)

    @property
    def plain_nbytes(self) -> int:
        """Bytes of the tensor as a plain int8 array."""
        return self.numel


def channel_layout(shape: Sequence[int], axis: int | None) -> tuple[int, int]:
    """(channels, inner) of a tensor of ``shape`` split along ``axis`` (None: one channel).

    Raises:
        ValueError: ``axis`` is outside the shape.
    """
    numel = int(np.prod(shape, dtype=np.int64)) if len(shape) else 1
    if axis is None:
        return 1, numel
    if not 0 <= axis < len(shape):
        raise ValueError(f"axis {axis} is outside a rank-{len(shape)} shape {tuple(shape)}")
    return int(shape[axis]), int(np.prod(shape[axis + 1:], dtype=np.int64))


def packed_nbytes(numel: int, channels: int, bits: int) -> int:
    """Bytes of a packed tensor: ceil(numel * bits / 8) indices + channels * 2**bits values."""
    return -(-numel * bits // 8) + channels * (1 << bits)


def bits_for(distinct: int) -> int | None:
    """The narrowest index width in ``BITS`` for ``distinct`` values; None above 16."""
    return next((b for b in BITS if (1 << b) >= distinct), None)


def _channel_of(numel: int, channels: int, inner: int) -> np.ndarray:
    return (np.arange(numel, dtype=np.int64) // max(inner, 1)) % channels


def pack_codebook(values: np.ndarray, axis: int | None) -> Codebook | None:
    """Pack an int8 tensor when that takes fewer bytes than the plain array.

    Args:
        values: any-shape int8 array.
        axis: the quantized (channel) axis, one table per index along it; None for one
            table for the whole tensor (per-tensor quantization).

    Returns:
        The ``Codebook``, or None when a channel holds more than 16 distinct values, the
        tensor is empty, or the packed bytes are not fewer than ``values.size``.

    Raises:
        ValueError: ``values`` is not int8, or ``axis`` is outside its shape.
    """
    values = np.asarray(values)
    if values.dtype != np.int8:
        raise ValueError(f"codebook packing needs int8 values, got {values.dtype}")
    channels, inner = channel_layout(values.shape, axis)
    numel = int(values.size)
    if numel == 0:
        return None
    # one key per (channel, value): unique keys sort by channel, then by value
    keys = _channel_of(numel, channels, inner) * 256 + values.reshape(-1).astype(np.int64) + 128
    uniq, inverse = np.unique(keys, return_inverse=True)
    chan = uniq // 256
    rank = np.arange(uniq.size) - np.searchsorted(chan, chan, side="left")
    bits = bits_for(int(rank.max()) + 1)
    if bits is None or packed_nbytes(numel, channels, bits) >= numel:
        return None
    table = np.zeros((channels, 1 << bits), np.int8)
    table[chan, rank] = (uniq % 256 - 128).astype(np.int8)
    per_byte = 8 // bits
    idx = np.zeros(-(-numel // per_byte) * per_byte, np.uint8)
    idx[:numel] = rank[inverse.reshape(-1)]
    shifts = (np.arange(per_byte) * bits).astype(np.uint8)
    packed = np.bitwise_or.reduce(idx.reshape(-1, per_byte) << shifts, axis=1).astype(np.uint8)
    return Codebook(bits=bits, channels=channels, inner=inner, numel=numel, indices=packed,
                    table=table)


def unpack_codebook(cb: Codebook) -> np.ndarray:
    """The plain values: (numel,) int8 in flat row-major order (what the C kernel writes)."""
    per_byte = 8 // cb.bits
    shifts = (np.arange(per_byte) * cb.bits).astype(np.uint8)
    idx = ((cb.indices[:, None] >> shifts) & ((1 << cb.bits) - 1)).reshape(-1)[:cb.numel]
    return cb.table[_channel_of(cb.numel, cb.channels, cb.inner), idx]
