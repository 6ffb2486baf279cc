"""Offline arena planning from tensor lifetimes, and our estimate of a TFLM arena.

Two jobs that belong together:

* ``plan_arena``: pack buffers with known sizes and lifetimes into one arena, the way TFLM's
  ``GreedyMemoryPlanner`` does: buffers sorted by size (largest first, ties in tensor
  order), each placed at the lowest offset where it overlaps no placed buffer that is live
  at the same time; sizes rounded up to 16 bytes. Pure function, reused by anything that
  needs static offsets.
* ``estimate_tflm_arena``: our own estimate of the arena TFLM needs for a ``.tflite`` model,
  without running it: the planned activations (``plan_arena`` over ``ModelInfo.lifetimes``) plus
  a model of TFLM's persistent allocations (interpreter structs, per-op data, per-channel
  requantization tables). The persistent sizes are those of the **64-bit host build** of
  tflite-micro (the build the measured figure comes from; a 32-bit Cortex-M build has
  smaller structs). They are approximate, so the result is an estimate, and the report
  shows it next to the measured figure with the difference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tinyshare.export.inspect import ModelInfo

__all__ = ["ALIGN_BYTES", "ArenaEstimate", "ArenaPlan", "Buffer", "estimate_tflm_arena",
           "plan_arena"]

ALIGN_BYTES = 16  # TFLM's buffer alignment (MicroArenaBufferAlignment)

# Persistent allocations of the 64-bit host build of tflite-micro, in bytes (approximate).
_EVAL_TENSOR_BYTES = 24  # TfLiteEvalTensor: data pointer, dims pointer, type
_NODE_BYTES = 64  # NodeAndRegistration, one per op
_IO_TENSOR_BYTES = 96  # persistent TfLiteTensor (64) + its quantization data (32), per graph I/O
_FIXED_BYTES = 256  # subgraph tables, interpreter bookkeeping
# Kernel OpData (Init's AllocatePersistentBuffer) + the parsed builtin options, per op code.
_OP_BYTES: Mapping[str, int] = {
    "CONV_2D": 128, "DEPTHWISE_CONV_2D": 128, "TRANSPOSE_CONV": 128, "FULLY_CONNECTED": 80,
    "ADD": 112, "SUB": 112, "MUL": 64, "MAX_POOL_2D": 80, "AVERAGE_POOL_2D": 80,
    "RESHAPE": 48, "SOFTMAX": 64, "MEAN": 80, "QUANTIZE": 48, "DEQUANTIZE": 48,
}
_DEFAULT_OP_BYTES = 64
# Temporary allocations in the head while TFLM plans (freed afterwards, but the head must
# hold them): one AllocationInfo per tensor, the GreedyMemoryPlanner's per-buffer
# bookkeeping (BufferRequirements + two sort arrays + ListEntry + offset), and the
# TfLiteTensor structs a kernel's Prepare borrows.
_ALLOCATION_INFO_BYTES = 32
_PLANNER_BYTES_PER_BUFFER = 40
_PREPARE_TEMP_BYTES = 4 * 64
# Ops that keep a per-output-channel multiplier and shift (2 × int32) for requantization.
_PER_CHANNEL_OPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED"})


def _align(n: int) -> int:
    return -(-n // ALIGN_BYTES) * ALIGN_BYTES


@dataclass(frozen=True)
class Buffer:
    """One buffer to place: ``size_bytes`` live from op ``first`` to op ``last`` inclusive."""

    name: str
    size_bytes: int
    first: int
    last: int


@dataclass(frozen=True)
class ArenaPlan:
    """Where each buffer lives in the arena.

    Attributes:
        offsets: buffer name -> offset in bytes from the arena start.
        total_bytes: the arena size the plan needs (the highest buffer end).
    """

    offsets: Mapping[str, int]
    total_bytes: int


def plan_arena(buffers: Sequence[Buffer]) -> ArenaPlan:
    """Pack ``buffers`` greedily, largest first (see the module docstring).

    Args:
        buffers: the buffers with their sizes in bytes and lifetimes in op indices.

    Returns:
        ``ArenaPlan``; two buffers whose lifetimes overlap never share bytes.

    Raises:
        ValueError: a negative size or a lifetime that ends before it starts.
    """
    for b in buffers:
        if b.size_bytes < 0 or b.last < b.first:
            raise ValueError(f"buffer {b.name!r}: size {b.size_bytes}, lifetime "
                             f"[{b.first}, {b.last}]")
    # TFLM lists the buffers from the tail, then sorts by size with a stable sort.
    order = sorted(reversed(range(len(buffers))), key=lambda i: -_align(buffers[i].size_bytes))
    placed: list[tuple[int, int, Buffer]] = []  # (offset, aligned size, buffer)
    offsets: dict[str, int] = {}
    for i in order:
        b = buffers[i]
        size = _align(b.size_bytes)
        live = sorted((off, sz) for off, sz, p in placed
                      if p.first <= b.last and b.first <= p.last)
        offset = 0
        for off, sz in live:
            if offset + size <= off:
                break
            offset = max(offset, off + sz)
        placed.append((offset, size, b))
        offsets[b.name] = offset
    total = max((off + sz for off, sz, _ in placed), default=0)
    return ArenaPlan(offsets=offsets, total_bytes=total)


@dataclass(frozen=True)
class ArenaEstimate:
    """Our offline estimate of the TFLM arena of one model.

    Attributes:
        estimate_bytes: head + persistent, in bytes, where the head is the larger of
            ``planned_bytes`` and ``planning_temp_bytes``.
        planned_bytes: the activations packed by ``plan_arena`` (TFLM's non-persistent head).
        planning_temp_bytes: the temporary bookkeeping TFLM keeps in the head while it
            plans (modelled); it sets the head of models with small activations.
        persistent_bytes: modelled persistent allocations (TFLM's tail), 64-bit host build.
        method: how the figure was made, in words, for reports.
    """

    estimate_bytes: int
    planned_bytes: int
    persistent_bytes: int
    method: str
    planning_temp_bytes: int = 0


def _out_channels(info: ModelInfo, op) -> int:
    out = info.tensor(op.outputs[0]) if op.outputs and op.outputs[0] else None
    return out.shape[-1] if out is not None and out.shape else 1


def estimate_tflm_arena(info: ModelInfo) -> ArenaEstimate:
    """Estimate the TFLM arena of a ``.tflite`` model from its tensor lifetimes.

    Args:
        info: the ``.tflite`` file read back by ``inspect_model``.

    Returns:
        ``ArenaEstimate`` (see the module docstring for the method).

    Raises:
        ValueError: ``info`` is not a TFLite model.
    """
    if info.format != "tflite":
        raise ValueError(f"{info.path.name}: the TFLM arena estimate needs a .tflite model")
    lifetimes = info.lifetimes()
    by_name = {t.name: t for t in info.tensors}
    plan = plan_arena([Buffer(name, by_name[name].data_bytes, first, last)
                       for name, (first, last) in lifetimes.items()])
    persistent = (_FIXED_BYTES + _EVAL_TENSOR_BYTES * len(info.tensors)
                  + _NODE_BYTES * len(info.ops)
                  + _IO_TENSOR_BYTES * (len(info.inputs) + len(info.outputs)))
    for op in info.ops:
        persistent += _OP_BYTES.get(op.op_code, _DEFAULT_OP_BYTES)
        if op.op_code in _PER_CHANNEL_OPS:
            persistent += _align(4 * _out_channels(info, op)) * 2
    planning = _align(_ALLOCATION_INFO_BYTES * len(info.tensors)
                      + _PLANNER_BYTES_PER_BUFFER * len(lifetimes) + _PREPARE_TEMP_BYTES)
    method = ("estimate: activations packed offline from tensor lifetimes (greedy by size, "
              f"{ALIGN_BYTES}-byte aligned, as TFLM's GreedyMemoryPlanner), or the planner's "
              "own temporary bookkeeping where that is larger, plus TFLM's persistent "
              "allocations modelled per tensor, per op and per output channel with the "
              "struct sizes of the 64-bit host build")
    return ArenaEstimate(estimate_bytes=max(plan.total_bytes, planning) + persistent,
                         planned_bytes=plan.total_bytes, persistent_bytes=persistent,
                         method=method, planning_temp_bytes=planning)
