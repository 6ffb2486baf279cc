"""Which int8 weight tensors of a clustered model to LUT-compress for TFLM, and the copies.

A tensor is eligible when every channel holds at most ``2**bits`` distinct values, with
``bits = ceil(log2(k))`` for a codebook of k centroids; it is written with the narrowest
index width its values need (≤ ``bits``). Compression has a fixed cost (a DECODE op, a value
table per channel, metadata), so small tensors make the file larger: tensors are tried
largest first and kept only if the file, measured with ``os.stat``, gets smaller. The choice
is made on the file a TFLM board flashes (without tensor names) and the same tensors are
compressed in the named file, so both copies hold the same graph.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from tinyshare.export.compress import CompressedModel, compress_tflite, lut_candidates

__all__ = ["LutExport", "LutTensor", "decode_input_bytes", "lut_bits", "write_lut_copies"]

DECODE_OP = "CUSTOM:TFLM_DECODE"


@dataclass(frozen=True)
class LutTensor:
    """One eligible int8 weight tensor and what compressing it did.

    Attributes:
        index: tensor index in subgraph 0 (the same in the named and stripped files).
        name: tensor name in the named file.
        shape: TFLite shape.
        data_bytes: int8 bytes before compression.
        max_distinct_values: most distinct values in one channel.
        bits: LUT index width it was (or would be) written with.
        kept: compressed in the written copies.
        saved_bytes: how much smaller the flashed file got when it was added (measured;
            ≤ 0 for a tensor that was not kept).
    """

    index: int
    name: str
    shape: tuple[int, ...]
    data_bytes: int
    max_distinct_values: int
    bits: int
    kept: bool
    saved_bytes: int


@dataclass(frozen=True)
class LutExport:
    """The LUT-compressed copies of one int8 model.

    Attributes:
        k: centroids per channel of the clustered weights.
        bits: ``ceil(log2(k))``, the widest index an eligible tensor may need.
        tensors: every eligible tensor, largest first, kept or not.
        ineligible: ``"index:name (n values)"`` of int8 weights with more than ``2**bits``
            values in a channel (not clustered, e.g. too small).
        named / stripped: the compressed copies of the named and the stripped file, or None
            when no tensor's compression made the file smaller (``reason`` says so).
        reason: why nothing was written ("" when the copies were written).
    """

    k: int
    bits: int
    tensors: tuple[LutTensor, ...]
    ineligible: tuple[str, ...]
    named: CompressedModel | None
    stripped: CompressedModel | None
    reason: str = ""

    @property
    def tensors_bits(self) -> dict[int, int]:
        """Tensor index → index width of every compressed tensor."""
        return {t.index: t.bits for t in self.tensors if t.kept}


def lut_bits(k: int) -> int:
    """LUT index bits for k centroids: ``ceil(log2(k))`` (4 for k = 16)."""
    return max(1, math.ceil(math.log2(k)))


def _choose(src: Path, k: int, scratch: Path) -> tuple[list[LutTensor], list[str]]:
    """Greedy, measured choice of the tensors to compress in ``src`` (see module docstring)."""
    bits = lut_bits(k)
    cands = sorted(lut_candidates(src), key=lambda c: (-c.data_bytes, c.index))
    eligible = [c for c in cands if c.max_distinct_values <= 2**bits]
    ineligible = [f"{c.index}:{c.name or '?'} ({c.max_distinct_values} values)"
                  for c in cands if c.max_distinct_values > 2**bits]
    best, chosen, out = os.stat(src).st_size, {}, []
    for c in eligible:
        width = min(bits, c.min_bits)
        trial = compress_tflite(src, scratch / f"t{c.index}.tflite", {**chosen, c.index: width})
        saved = best - trial.compressed_bytes
        if saved > 0:
            chosen[c.index], best = width, trial.compressed_bytes
        out.append(LutTensor(index=c.index, name=c.name, shape=c.shape, data_bytes=c.data_bytes,
                             max_distinct_values=c.max_distinct_values, bits=width,
                             kept=saved > 0, saved_bytes=saved))
    return out, ineligible


def write_lut_copies(named: str | Path, stripped: str | Path, named_dst: str | Path,
                     stripped_dst: str | Path, k: int) -> LutExport:
    """Write LUT-compressed copies of an int8 .tflite and of its copy without tensor names.

    Args:
        named: the int8 .tflite (e.g. ``model_int8.tflite``).
        stripped: the same model without tensor names (``model_int8_nonames.tflite``).
        named_dst / stripped_dst: where to write the compressed copies.
        k: centroids per channel of the clustered weights (4, 8, 16 or 32).

    Returns:
        The ``LutExport``; the copies are written only when at least one tensor pays.

    Raises:
        ModelFileError: an input is missing or not a .tflite file.
        ExportError: the compressor rejects the model.
        RuntimeUnavailableError: the ``tflite-micro`` package cannot be imported.
    """
    named, stripped = Path(named), Path(stripped)
    with tempfile.TemporaryDirectory(prefix="tinyshare-lut-") as tmp:
        tensors, ineligible = _choose(stripped, k, Path(tmp))
    # The names (and the tensor names' part of the file) are the only difference.
    found = {c.index: c.name for c in lut_candidates(named)}
    tensors = [replace(t, name=found.get(t.index, t.name)) for t in tensors]
    base = dict(k=k, bits=lut_bits(k), tensors=tuple(tensors), ineligible=tuple(ineligible))
    chosen = {t.index: t.bits for t in tensors if t.kept}
    if not chosen:
        why = (f"no int8 weight tensor holds ≤ {2 ** lut_bits(k)} values per channel"
               if not tensors else "no tensor's compression made the file smaller "
               f"(tried {len(tensors)}, largest {tensors[0].data_bytes} B)")
        return LutExport(**base, named=None, stripped=None, reason=why)
    return LutExport(**base, named=compress_tflite(named, named_dst, chosen),
                     stripped=compress_tflite(stripped, stripped_dst, chosen))


def decode_input_bytes(info) -> int:
    """Bytes of the distinct buffers the DECODE ops of a compressed file read (the packed
    indices and the value tables), from ``inspect_model``'s ``ModelInfo``; 0 without DECODE.

    ``ModelInfo.stored_weight_bytes`` does not count them (DECODE is not a weight reader),
    so a compressed file's weights are ``stored_weight_bytes + decode_input_bytes``.
    """
    by_name = {t.name: t for t in info.tensors}
    buffers: dict[int, int] = {}
    for op in info.ops:
        if op.op_code != DECODE_OP:
            continue
        for name in op.inputs:
            t = by_name.get(name) if name else None
            if t is not None and t.is_constant:
                buffers[t.buffer_index] = t.nbytes
    return sum(buffers.values())
