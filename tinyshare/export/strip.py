"""Strip tensor names from a ``.tflite`` file, for boards whose flash is tight.

Tensor names are debug strings: no runtime needs them, and in a small model they are a
large share of the file (the converter names tensors after the PyTorch module path).
Stripping rewrites the flatbuffer with every tensor name empty, keeping ops, buffers,
quantization and the signature (its input/output keys stay), and then lets tflite-micro's
own ``tflite_flatbuffer_align`` tool re-serialize it so every buffer keeps the alignment
the C++ FlatBuffers API gives. The runtime outputs do not change; a test holds TFLM's int8
outputs of both files equal.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

from tinyshare.artifacts.files import require_model_file
from tinyshare.errors import ExportError, RuntimeUnavailableError

__all__ = ["StrippedModel", "strip_tensor_names"]


@dataclass(frozen=True)
class StrippedModel:
    """A stripped copy of a ``.tflite`` file.

    Attributes:
        path: the stripped file.
        source_bytes: size of the original file.
        stripped_bytes: size of the stripped file.
    """

    path: Path
    source_bytes: int
    stripped_bytes: int

    @property
    def saved_bytes(self) -> int:
        """Flash saved by stripping: ``source_bytes - stripped_bytes``."""
        return self.source_bytes - self.stripped_bytes


def strip_tensor_names(src: str | os.PathLike, dst: str | os.PathLike) -> StrippedModel:
    """Write ``src`` to ``dst`` with every tensor name emptied (see the module docstring).

    Args:
        src: a ``.tflite`` file.
        dst: where to write the stripped file (written atomically: a temporary name, then
            a rename).

    Returns:
        ``StrippedModel`` with both sizes in bytes.

    Raises:
        ModelFileError: ``src`` is missing, empty or not a ``.tflite`` file.
        RuntimeUnavailableError: tflite-micro's alignment tool is not installed.
        ExportError: the model cannot be unpacked or rewritten.
    """
    src, dst = require_model_file(src, "tflite"), Path(dst)
    try:
        import flatbuffers
        from ai_edge_litert import schema_py_generated as schema
    except ImportError as exc:  # pragma: no cover - both are pinned dependencies
        raise RuntimeUnavailableError(f"stripping names needs flatbuffers and ai-edge-litert: {exc}") from exc
    try:
        from tflite_micro.tensorflow.lite.micro.tools import tflite_flatbuffer_align_wrapper as align
    except ImportError as exc:
        raise RuntimeUnavailableError(
            f"stripping names needs tflite-micro's flatbuffer alignment tool ({exc}); "
            "reinstall with `make install`") from exc
    try:
        model = schema.ModelT.InitFromPackedBuf(src.read_bytes(), 0)
        for subgraph in model.subgraphs or []:
            for tensor in subgraph.tensors or []:
                tensor.name = ""
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        packed = bytes(builder.Output())
    except (ValueError, TypeError, IndexError, AttributeError, struct.error) as exc:
        raise ExportError(f"{src}: cannot rewrite without tensor names ({type(exc).__name__}: {exc})") from exc
    dst.parent.mkdir(parents=True, exist_ok=True)
    raw, tmp = dst.with_name(dst.name + ".raw.tmp"), dst.with_name(dst.name + ".tmp")
    try:
        raw.write_bytes(packed)
        try:
            align.align_tflite_model(str(raw), str(tmp))
        except RuntimeError as exc:  # the pybind11 wrapper's C++ errors
            raise ExportError(f"{src}: tflite-micro's alignment tool failed: {exc}") from exc
        os.replace(tmp, dst)
    finally:
        for leftover in (raw, tmp):
            leftover.unlink(missing_ok=True)
    return StrippedModel(path=dst, source_bytes=src.stat().st_size, stripped_bytes=dst.stat().st_size)
