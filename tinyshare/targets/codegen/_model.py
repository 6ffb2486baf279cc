"""What ``generate_c`` returns: the generated files and their measured sizes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

_ITEM_BYTES = {"int8": 1, "int32": 4}


@dataclass(frozen=True)
class ConstBuffer:
    """One constant array of ``model.c``: one TFLite buffer, emitted once.

    Attributes:
        buffer: the TFLite buffer index.
        c_name: the array's name in ``model.c``: ``ts_buf<buffer>``, or for a codebook its
            index array ``ts_idx<buffer>`` (uint8), whose value table is ``ts_lut<buffer>``
            (int8, channels x 2**packed_bits).
        dtype: "int8" (weights) or "int32" (biases): the type of the values it holds.
        shape: the first reading tensor's shape.
        nbytes: bytes emitted for it (flash): the plain array, or a codebook's indices +
            table.
        tensors: names of the tensors that point at this buffer.
        reader_ops: indices of the ops that read it.
        packed_bits: index width (1, 2 or 4 bits) of a codebook; None for a plain array.
    """

    buffer: int
    c_name: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int
    tensors: tuple[str, ...]
    reader_ops: tuple[int, ...]
    packed_bits: int | None = None

    @property
    def shared(self) -> bool:
        """True when more than one op reads this array."""
        return len(self.reader_ops) > 1

    @property
    def plain_nbytes(self) -> int:
        """Bytes of the values as a plain array (= ``nbytes`` unless packed)."""
        numel = 1
        for d in self.shape:
            numel *= d
        return numel * _ITEM_BYTES[self.dtype]


@dataclass(frozen=True)
class GeneratedModel:
    """The C sources generated for one ``.tflite`` file.

    Attributes:
        tflite_path: the model file.
        out_dir: the folder holding every generated file.
        model_c, model_h: the model's source and header.
        sources: every ``.c`` file to compile (``model.c`` and the kernels it calls).
        arena_bytes: size of the static activation arena, bytes (RAM); with codebooks
            it also holds the regions they are decoded into.
        arena_bytes_without_aliasing: what it would be if every RESHAPE copied, bytes
            (the same plan TFLM's planner makes for the activations, plus any codebook
            decode regions).
        weight_bytes: bytes of constant arrays that hold the file's own buffers (weights,
            biases), each buffer once; codebooks count their indices + tables.
        table_bytes: bytes of the requantization tables the generator adds (int32
            multiplier + int8 shift per entry), deduplicated.
        rounding: "double" or "single": the requantization arithmetic built in.
        buffers: one entry per constant array, in buffer order.
        ops: op codes in execution order.
        kernels: kernel sources used (``conv2d``, ``add``...).
        aliased_reshapes: RESHAPE ops that reuse their input's bytes instead of copying.
        input_shape, output_shape: I/O shapes (NHWC for images).
        input_scale, input_zero_point, output_scale, output_zero_point: I/O quantization.
    """

    tflite_path: Path
    out_dir: Path
    model_c: Path
    model_h: Path
    sources: tuple[Path, ...]
    arena_bytes: int
    arena_bytes_without_aliasing: int
    weight_bytes: int
    table_bytes: int
    rounding: str
    buffers: tuple[ConstBuffer, ...]
    ops: tuple[str, ...]
    kernels: tuple[str, ...]
    aliased_reshapes: int
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    input_scale: float
    input_zero_point: int
    output_scale: float
    output_zero_point: int

    @property
    def const_bytes(self) -> int:
        """All constant bytes (flash): ``weight_bytes + table_bytes``."""
        return self.weight_bytes + self.table_bytes

    @property
    def shared_buffers(self) -> tuple[ConstBuffer, ...]:
        """The constant arrays read by more than one op."""
        return tuple(b for b in self.buffers if b.shared)

    @property
    def codebook_buffers(self) -> tuple[ConstBuffer, ...]:
        """The buffers emitted as codebooks (``packed_bits`` set)."""
        return tuple(b for b in self.buffers if b.packed_bits is not None)

    @property
    def codebook_unpacked_bytes(self) -> int:
        """Bytes the codebook buffers would take as plain int8 arrays (flash); 0 if none."""
        return sum(b.plain_nbytes for b in self.codebook_buffers)

    @property
    def codebook_saved_bytes(self) -> int:
        """Flash bytes the codebooks save: plain bytes minus indices + tables; 0 if none."""
        return sum(b.plain_nbytes - b.nbytes for b in self.codebook_buffers)
