"""Write ``model.c`` / ``model.h`` for one int8 ``.tflite``: constants, arena, ``model_invoke``.

* Constants: one ``static const`` array per TFLite *buffer* that an op reads as data, named
  ``ts_buf<index>``. Tensors that point at the same buffer (weight sharing, or the
  converter's deduplication of equal biases) all use that one array.
* Requantization tables (per-channel multipliers and shifts) are added by the generator,
  deduplicated by content, and reported apart from the file's own bytes.
* Activations live in one ``static int8_t arena[]``; offsets come from
  ``tinyshare.targets.arena_plan.plan_arena`` over the tensor lifetimes TFLM uses. A RESHAPE
  whose input dies at the RESHAPE shares its input's bytes (no copy).
* Codebooks (``pack_codebooks=True``): an int8 buffer read only as the filter of CONV_2D,
  DEPTHWISE_CONV_2D or FULLY_CONNECTED, with at most 16 distinct values per channel, is
  stored as ``ts_idx<index>`` (uint8, 1-, 2- or 4-bit indices) + ``ts_lut<index>`` (int8,
  channels x 2**bits values; see ``_codebook``) when that takes fewer bytes, still once
  however many ops read it. Before each reading op, ``ts_unpack_codebook`` decodes it into
  a scratch region of the arena, planned with the activations and live during that op
  only; the op reads the scratch, so its int8 values are exactly the file's.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from tinyshare.errors import UnsupportedOpError
from tinyshare.targets.arena_plan import Buffer, plan_arena
from tinyshare.targets.codegen._codebook import Codebook, pack_codebook
from tinyshare.targets.codegen._graph import Graph, Op, Tensor, read_graph
from tinyshare.targets.codegen._model import GeneratedModel
from tinyshare.targets.codegen._ops import lower
from tinyshare.targets.codegen._render import (
    const_block,
    header_text,
    source_text,
    table_block,
)

KERNEL_DIR = Path(__file__).resolve().parent / "kernels"
HEADERS = ("ts_kernels.h", "ts_quant.h")
UNPACK_KERNEL = "unpack"
# ops whose input 1 (the filter) may be a codebook, and the filter's channel axis
_FILTER_AXIS = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 0}


@dataclass
class _Emitter:
    """The ``Context`` the lowerings see (see ``_ops.Context``); collects what they use."""

    g: Graph
    offsets: dict[int, int]  # tensor index -> arena offset (after aliasing)
    alias_ops: set[int]
    single_rounding: bool
    codebooks: dict[int, Codebook] = field(default_factory=dict)  # buffer -> packed form
    scratch: dict[tuple[int, int], int] = field(default_factory=dict)  # (op, buffer) -> offset
    op_index: int = -1
    unpacks: dict[int, list[str]] = field(default_factory=dict)  # op -> decode calls before it
    buffers_used: dict[int, list[Tensor]] = field(default_factory=dict)  # buffer -> tensors
    buffer_readers: dict[int, set[int]] = field(default_factory=dict)
    tables: dict[tuple[tuple[int, ...], tuple[int, ...]], str] = field(default_factory=dict)

    def ptr(self, tensor: int) -> str:
        t = self.g.tensors[tensor]
        if t.data is None:
            if tensor not in self.offsets:
                op = self.g.ops[self.op_index]
                raise UnsupportedOpError(f"{op.code} (node {op.index}): tensor {t.name!r} has "
                                         "no data and no producer (variable tensors are not "
                                         "supported)")
            return f"(arena + {self.offsets[tensor]})"
        tensors = self.buffers_used.setdefault(t.buffer, [])
        if all(u.index != t.index for u in tensors):
            tensors.append(t)
        self.buffer_readers.setdefault(t.buffer, set()).add(self.op_index)
        cb = self.codebooks.get(t.buffer)
        if cb is None:
            return f"ts_buf{t.buffer}"
        dst = f"(arena + {self.scratch[(self.op_index, t.buffer)]})"
        call = (f"ts_unpack_codebook(ts_idx{t.buffer}, ts_lut{t.buffer}, {cb.bits}, "
                f"{cb.channels}, {cb.inner}, {cb.numel}, {dst});")
        calls = self.unpacks.setdefault(self.op_index, [])
        if call not in calls:
            calls.append(call)
        return dst

    def table(self, mults: Sequence[int], shifts: Sequence[int]) -> str:
        key = (tuple(int(m) for m in mults), tuple(int(s) for s in shifts))
        if not all(-31 <= s <= 30 for s in key[1]):
            op = self.g.ops[self.op_index]
            raise UnsupportedOpError(f"{op.code} (node {op.index}): a requantization shift "
                                     f"outside [-31, 30] ({min(key[1])}..{max(key[1])})")
        name = self.tables.setdefault(key, f"ts_rq{len(self.tables)}")
        return f"{{{name}_mult, {name}_shift, {int(len(key[0]) > 1)}}}"

    def aliased(self, op: Op) -> bool:
        return op.index in self.alias_ops


def _codebooks(g: Graph) -> dict[int, Codebook]:
    """Buffer index -> its codebook, for the buffers worth packing (see the module docstring).

    A buffer qualifies when every read of it, by any op and any tensor, is input 1 of an op
    in ``_FILTER_AXIS`` and int8. The channel axis is the op's filter axis when the first
    reading tensor has per-channel scales, else one table for the whole buffer.
    """
    reads: dict[int, list[tuple[Op, int]]] = {}  # buffer -> (op, input position)
    for op in g.ops:
        for pos, i in enumerate(op.inputs):
            if i >= 0 and g.tensors[i].data is not None:
                reads.setdefault(g.tensors[i].buffer, []).append((op, pos))
    found = {}
    for buf, where in reads.items():
        if not all(op.code in _FILTER_AXIS and pos == 1 and g.tensors[op.inputs[1]].dtype == "int8"
                   for op, pos in where):
            continue
        op = where[0][0]
        w = g.tensors[op.inputs[1]]
        axis = _FILTER_AXIS[op.code]
        per_channel = len(w.scales) > 1 and axis < w.data.ndim
        cb = pack_codebook(w.data, axis if per_channel else None)
        if cb is not None:
            found[buf] = cb
    return found


def _scratch(g: Graph, codebooks: dict[int, Codebook]) -> dict[tuple[int, int], Buffer]:
    """(op, buffer) -> the region that op decodes the buffer into, live during that op only."""
    out = {}
    for op in g.ops:
        bufs = {g.tensors[i].buffer for i in op.inputs if i >= 0 and g.tensors[i].data is not None}
        for b in sorted(bufs & codebooks.keys()):
            out[(op.index, b)] = Buffer(f"cb{op.index}_{b}", codebooks[b].numel, op.index, op.index)
    return out


def _plan(g: Graph, alias_reshapes: bool, scratch: Mapping[tuple[int, int], Buffer] | None = None,
          ) -> tuple[dict[int, int], dict[tuple[int, int], int], set[int], int]:
    """Arena offsets per activation tensor and per (op, buffer) decode scratch, the RESHAPE
    ops that alias, and the arena size in bytes."""
    scratch = scratch or {}
    index_of = {t.name: t.index for t in g.tensors}
    life = {index_of[name]: span for name, span in g.info.lifetimes().items()}
    root = {i: i for i in life}
    alias_ops: set[int] = set()
    if alias_reshapes:
        for op in g.ops:
            x, y = op.inputs[0] if op.inputs else -1, op.outputs[0]
            if (op.code == "RESHAPE" and x in life and y in life and life[x][1] == op.index
                    and x not in g.outputs):
                root[y] = root[x]
                alias_ops.add(op.index)
    groups: dict[int, list[int]] = {}
    for t in life:
        groups.setdefault(root[t], []).append(t)
    plan = plan_arena([*(Buffer(str(r), max(g.tensors[t].numel for t in members),
                                min(life[t][0] for t in members), max(life[t][1] for t in members))
                         for r, members in groups.items()), *scratch.values()])
    offsets = {t: plan.offsets[str(root[t])] for t in life}
    scratch_offsets = {key: plan.offsets[b.name] for key, b in scratch.items()}
    return offsets, scratch_offsets, alias_ops, plan.total_bytes


def generate_c(tflite_path: str | Path, out_dir: str | Path, *,
               alias_reshapes: bool = True, rounding: str = "double",
               pack_codebooks: bool = False) -> GeneratedModel:
    """Generate portable C99 for an int8 ``.tflite`` model, with no interpreter.

    Writes ``model.c``, ``model.h`` and the kernels the model uses (``<op>.c``,
    ``ts_kernels.h``, ``ts_quant.h``) into ``out_dir``. The C entry point is
    ``int model_invoke(const int8_t *in, int8_t *out)``: ``in`` holds
    ``MODEL_INPUT_BYTES`` int8 values in the model's input layout (NHWC for images),
    ``out`` receives ``MODEL_OUTPUT_BYTES``; it returns 0 (-1 for a NULL pointer).

    Args:
        tflite_path: the int8 ``.tflite`` file (int8 input and output).
        out_dir: where to write the sources (created; files are overwritten).
        alias_reshapes: let a RESHAPE reuse its input's arena bytes when the input dies there.
        rounding: ``"double"`` (gemmlowp, as the tflite-micro Python package is built: our
            bit-exact reference) or ``"single"`` (``TFLITE_SINGLE_ROUNDING`` builds of
            TFLM); written to ``ts_config.h`` and used for the multipliers.
        pack_codebooks: store clustered conv / depthwise / FC filters (at most 16 distinct
            int8 values per channel) as 1-, 2- or 4-bit indices + per-channel value tables
            when that saves flash, decoded into arena scratch before each reading op (see
            the module docstring). Costs arena bytes and decode time; outputs are unchanged.

    Returns:
        ``GeneratedModel``: paths, arena bytes, constant bytes (packed sizes for the
        codebooks, ``ConstBuffer.packed_bits`` set) and per-buffer sharing.

    Raises:
        ModelFileError: the file is missing, corrupt or not a ``.tflite``.
        ValueError: ``rounding`` is neither "double" nor "single".
        UnsupportedOpError: an op without a C kernel, or outside what its kernel
            implements (the message names the op and node), or I/O that is not one int8
            input and one int8 output.
    """
    if rounding not in ("double", "single"):
        raise ValueError(f"rounding must be 'double' or 'single', got {rounding!r}")
    g = read_graph(tflite_path)
    if len(g.inputs) != 1 or len(g.outputs) != 1:
        raise UnsupportedOpError(f"{g.path.name}: {len(g.inputs)} inputs and {len(g.outputs)} "
                                 "outputs; the C generator needs one of each")
    x, y = g.tensors[g.inputs[0]], g.tensors[g.outputs[0]]
    for t, what in ((x, "input"), (y, "output")):
        if t.dtype != "int8":
            raise UnsupportedOpError(f"{g.path.name}: the {what} {t.name!r} is {t.dtype}; "
                                     "the C generator needs int8 I/O")
    codebooks = _codebooks(g) if pack_codebooks else {}
    scratch = _scratch(g, codebooks)
    offsets, scratch_offsets, alias_ops, arena_bytes = _plan(g, alias_reshapes, scratch)
    emitter = _Emitter(g, offsets, alias_ops, single_rounding=rounding == "single",
                       codebooks=codebooks, scratch=scratch_offsets)
    lowered = []
    for op in g.ops:
        emitter.op_index = op.index
        low = lower(g, op, emitter)
        if emitter.unpacks.get(op.index):
            low = replace(low, call="\n    ".join([*emitter.unpacks[op.index], low.call]))
        lowered.append((op, low))
    const_lines, buffers = const_block(emitter)
    table_lines, table_bytes = table_block(emitter)
    out = Path(out_dir).resolve()  # absolute: builds run with the output as cwd
    out.mkdir(parents=True, exist_ok=True)
    kernels = sorted({low.kernel for _, low in lowered if low.kernel}
                     | ({UNPACK_KERNEL} if emitter.unpacks else set()))
    for name in (*HEADERS, *(f"{k}.c" for k in kernels)):
        shutil.copyfile(KERNEL_DIR / name, out / name)
    (out / "ts_config.h").write_text(
        "/* Generated by tinyshare: kernel build settings. */\n"
        f"#define TS_SINGLE_ROUNDING {int(rounding == 'single')} /* {rounding} rounding */\n")
    arena_size = max(arena_bytes, 16)
    weight_bytes = sum(b.nbytes for b in buffers)
    packed = [b for b in buffers if b.packed_bits is not None]
    codebook_note = (f" ({len(packed)} packed as codebooks, {sum(b.plain_nbytes for b in packed)}"
                     f" bytes plain)" if packed else "")
    summary = (f"{len(g.ops)} ops; constants: {weight_bytes} bytes from the file's buffers"
               f"{codebook_note} + {table_bytes} bytes of requantization tables; arena: "
               f"{arena_size} bytes.")
    digest = hashlib.sha256(g.path.read_bytes()).hexdigest()
    (out / "model.h").write_text(header_text(g.path.name, x, y, arena_size,
                                             source_sha256=digest, rounding=rounding))
    (out / "model.c").write_text(source_text(g.path.name, lowered, const_lines, table_lines,
                                             (offsets[x.index], offsets[y.index]), summary))
    no_alias = _plan(g, False, scratch)[3] if alias_ops else arena_bytes
    return GeneratedModel(
        tflite_path=g.path, out_dir=out, model_c=out / "model.c", model_h=out / "model.h",
        sources=(out / "model.c", *(out / f"{k}.c" for k in kernels)),
        arena_bytes=arena_size, arena_bytes_without_aliasing=max(no_alias, 16),
        weight_bytes=weight_bytes, table_bytes=table_bytes, rounding=rounding,
        buffers=tuple(buffers), ops=tuple(op.code for op in g.ops), kernels=tuple(kernels),
        aliased_reshapes=len(alias_ops),
        input_shape=x.shape, output_shape=y.shape,
        input_scale=x.scale, input_zero_point=x.zero_point,
        output_scale=y.scale, output_zero_point=y.zero_point)
