"""TFLM look-up-table (LUT) compression of int8 weight tensors in a ``.tflite`` file.

Uses the ``tflite-micro`` package's compressor
(``tflite_micro.tensorflow.lite.micro.compression``): each chosen tensor is rewritten as
``bits``-wide indices into a value table (one table per channel along the tensor's
quantized dimension, or one per tensor), and a DECODE operator is inserted before its
readers. Only TFLM runs such files (LiteRT does not know DECODE). The decoded tensor
lives in the TFLM arena, so compression trades flash for RAM: measure both.

A tensor can be compressed with ``bits`` only if every channel holds at most
``2**bits`` distinct values, which clustered weights do (``tinyshare.quantize.cluster``).
Small tensors can grow (value tables, DECODE metadata): the sizes reported here are
measured with ``os.stat`` on the written files, never computed.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyshare.artifacts.files import atomic_write_bytes
from tinyshare.errors import ConfigError, ExportError, ModelFileError, RuntimeUnavailableError

__all__ = ["CompressedModel", "LutCandidate", "compress_tflite", "lut_candidates"]

_INT8 = 9  # tflite TensorType.INT8
_MAX_BITS = 7  # the compressor's index bit width range is 1..7


@dataclass(frozen=True)
class LutCandidate:
    """A constant int8 weight tensor of subgraph 0 that LUT compression could encode.

    Attributes:
        index: tensor index in subgraph 0.
        name: tensor name.
        shape: tensor shape (TFLite layout, e.g. OHWI).
        axis: quantized dimension for per-channel tensors, None for per-tensor.
        max_distinct_values: largest number of distinct values in one channel (or in
            the tensor when ``axis`` is None).
        data_bytes: bytes of the tensor's buffer before compression.
    """

    index: int
    name: str
    shape: tuple[int, ...]
    axis: int | None
    max_distinct_values: int
    data_bytes: int

    @property
    def min_bits(self) -> int:
        """Smallest LUT index width that can hold every channel's values."""
        return max(1, int(np.ceil(np.log2(max(self.max_distinct_values, 2)))))


@dataclass(frozen=True)
class CompressedModel:
    """A LUT-compressed ``.tflite`` file and its measured size.

    Attributes:
        path: the compressed file.
        source_bytes: size of the uncompressed file, measured with ``os.stat``.
        compressed_bytes: size of the compressed file, measured with ``os.stat``.
        tensors_bits: tensor index in subgraph 0 → LUT index bit width used.
    """

    path: Path
    source_bytes: int
    compressed_bytes: int
    tensors_bits: Mapping[int, int]

    @property
    def saved_bytes(self) -> int:
        """``source_bytes - compressed_bytes`` (negative if the file grew)."""
        return self.source_bytes - self.compressed_bytes


def _compression():
    """The ``tflite_micro`` compression package (imported lazily: it loads C++ code).

    Raises:
        RuntimeUnavailableError: ``tflite-micro`` is not installed or fails to load.
    """
    try:
        from tflite_micro.tensorflow.lite.micro import compression
    except ImportError as exc:
        raise RuntimeUnavailableError(
            f"TFLM LUT compression needs the tflite-micro package: {exc}") from exc
    return compression


def _read_model(src: Path):
    _compression()
    from tflite_micro.tensorflow.lite.micro.compression import model_editor

    if not src.is_file():
        raise ModelFileError(f"model file not found: {src}")
    data = src.read_bytes()
    try:
        return data, model_editor.read(data)
    except Exception as exc:  # flatbuffers raises assorted errors on bad input
        raise ModelFileError(f"{src} is not a readable .tflite file: {exc}") from exc


def _axis(tensor) -> int | None:
    q = tensor.quantization
    if q is None or q.axis is None or isinstance(q.scales, (int, float)) or len(q.scales) <= 1:
        return None
    return int(q.axis)


def _candidates(model) -> list[LutCandidate]:
    out = []
    for i, t in enumerate(model.subgraphs[0].tensors):
        data = t.buffer.data if t.buffer is not None else None
        if not data or int(t.dtype) != _INT8:
            continue
        shape = tuple(int(d) for d in t.shape)
        values = np.frombuffer(bytes(data), dtype=np.int8).reshape(shape)
        axis = _axis(t)
        if axis is None:
            distinct = len(np.unique(values))
        else:
            rows = np.moveaxis(values, axis, 0).reshape(shape[axis], -1)
            distinct = max(len(np.unique(r)) for r in rows)
        out.append(LutCandidate(index=i, name=t.name or "", shape=shape, axis=axis,
                                max_distinct_values=int(distinct), data_bytes=len(data)))
    return out


def lut_candidates(src: str | Path) -> tuple[LutCandidate, ...]:
    """The constant int8 tensors of subgraph 0, with their distinct values per channel.

    Raises:
        ModelFileError: ``src`` is missing or not a .tflite flatbuffer.
        RuntimeUnavailableError: the ``tflite-micro`` package cannot be imported.
    """
    return tuple(_candidates(_read_model(Path(src))[1]))


def _resolve(key: int | str, cands: list[LutCandidate]) -> LutCandidate:
    if isinstance(key, bool):
        raise ConfigError(f"tensor key must be an index or a name, got {key!r}")
    if isinstance(key, int):
        match = [c for c in cands if c.index == key]
    else:
        match = [c for c in cands if c.name == key]
    if len(match) != 1:
        known = ", ".join(f"{c.index}:{c.name}" for c in cands)
        why = "is ambiguous" if match else "is not a constant int8 tensor"
        raise ExportError(f"tensor {key!r} {why}; int8 weight tensors: {known}")
    return match[0]


def compress_tflite(
    src: str | Path, dst: str | Path, tensors_bits: Mapping[int | str, int]
) -> CompressedModel:
    """LUT-compress int8 weight tensors of ``src`` into ``dst`` (written atomically).

    Each tensor gets one value table per channel along its quantized dimension if it is
    per-channel quantized, else one table.

    Args:
        src: an int8 ``.tflite`` file.
        dst: where to write the compressed file (replaced atomically).
        tensors_bits: tensor (index in subgraph 0, or exact name) → index bit width
            (1..7); every channel must hold at most ``2**bits`` distinct values.

    Returns:
        The ``CompressedModel`` with both file sizes measured with ``os.stat``.

    Raises:
        ConfigError: empty mapping, or a bit width outside 1..7.
        ModelFileError: ``src`` is missing or not a .tflite flatbuffer.
        ExportError: a tensor is unknown, ambiguous, has more distinct values per
            channel than ``2**bits``, or the compressor rejects the model.
        RuntimeUnavailableError: the ``tflite-micro`` package cannot be imported.
    """
    _compression()
    from tflite_micro.tensorflow.lite.micro.compression import spec
    from tflite_micro.tensorflow.lite.micro.compression.compress import compress as lut_compress

    if not tensors_bits:
        raise ConfigError("tensors_bits is empty: name at least one tensor to compress")
    src, dst = Path(src), Path(dst)
    data, model = _read_model(src)
    cands = _candidates(model)
    chosen: dict[int, int] = {}
    specs = []
    for key, bits in tensors_bits.items():
        if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= _MAX_BITS:
            raise ConfigError(f"LUT bits for tensor {key!r} must be an int in 1..7, got {bits!r}")
        c = _resolve(key, cands)
        if c.max_distinct_values > 2**bits:
            raise ExportError(
                f"tensor {c.index} ({c.name}) holds {c.max_distinct_values} distinct values in "
                f"a channel; {bits}-bit LUT indices hold at most {2**bits}")
        mode = spec.PerTensor() if c.axis is None else spec.PerChannel(axis=c.axis)
        specs.append(spec.Tensor(subgraph=0, tensor=c.index, compression=[
            spec.LookUpTableCompression(index_bitwidth=bits, mode=mode)]))
        chosen[c.index] = bits
    try:
        with warnings.catch_warnings():  # "resulted in expansion": sizes are measured below
            warnings.simplefilter("ignore", UserWarning)
            out = lut_compress(data, specs)
    except Exception as exc:  # the compressor raises CompressionError, ValueError, ...
        raise ExportError(f"TFLM LUT compression of {src} failed: {exc}") from exc
    atomic_write_bytes(dst, bytes(out))  # temporary name + rename, like every export
    return CompressedModel(path=dst, source_bytes=os.stat(src).st_size,
                           compressed_bytes=os.stat(dst).st_size, tensors_bits=chosen)
