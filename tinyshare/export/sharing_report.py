"""The sharing report of any ``.tflite`` / ``.onnx`` file (``tinyshare inspect MODEL``).

Read from the file alone, so it works on files tinyshare did not make:

* file size, stored weight bytes and the number of stored weight tensors (distinct storages:
  TFLite buffers, ONNX initializers), as ``inspect_model`` counts them;
* the sharing groups: each storage read by more than one op, with the tensors pointing at it
  and the ops reading it;
* unique parameters (elements of every weight storage, counted once) and parameters as used
  (each storage's elements times the number of ops reading it: a weight read by two ops
  counts twice);
* stored weights that are expanded copies of a smaller tensor
  (``tinyshare.export.copies.find_expanded_copies``), with the bytes storing them once would
  save.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tinyshare.export.copies import ExpandedCopy

__all__ = ["SharedStorage", "SharingReport", "sharing_report"]


@dataclass(frozen=True)
class SharedStorage:
    """A stored weight read by more than one op.

    Attributes:
        storage: TFLite buffer index (decimal string) or ONNX initializer name.
        tensor_names: the constant tensors pointing at it.
        ops: ``(op index, op code)`` of each op reading it, by index.
        nbytes: its stored bytes, counted once.
        numel: its elements.
    """

    storage: str
    tensor_names: tuple[str, ...]
    ops: tuple[tuple[int, str], ...]
    nbytes: int
    numel: int

    def as_dict(self) -> dict:
        """Plain JSON-ready dict; ``ops`` as ``[{"index": i, "op": code}, ...]``."""
        return {"storage": self.storage, "tensor_names": list(self.tensor_names),
                "ops": [{"index": i, "op": code} for i, code in self.ops],
                "nbytes": self.nbytes, "numel": self.numel}


@dataclass(frozen=True)
class SharingReport:
    """What one model file stores and shares (see the module docstring).

    Attributes:
        path: the file read.
        format: ``"tflite"`` or ``"onnx"``.
        file_bytes: size of the file.
        stored_weight_bytes: bytes of the distinct weight storages.
        stored_weight_tensors: number of distinct weight storages.
        unique_params: elements of the weight storages, each counted once.
        params_as_used: elements summed over the ops reading each storage.
        groups: the storages read by more than one op, in tensor order.
        expanded_copies: stored weights that repeat a smaller tensor.
    """

    path: Path
    format: str
    file_bytes: int
    stored_weight_bytes: int
    stored_weight_tensors: int
    unique_params: int
    params_as_used: int
    groups: tuple[SharedStorage, ...]
    expanded_copies: tuple[ExpandedCopy, ...]

    @property
    def expanded_saved_bytes(self) -> int:
        """Bytes saved if every flagged expanded copy were stored once."""
        return sum(c.saved_bytes for c in self.expanded_copies)

    def as_dict(self) -> dict:
        """Plain JSON-ready dict of every field, with ``expanded_saved_bytes``."""
        return {
            "path": str(self.path), "format": self.format, "file_bytes": self.file_bytes,
            "stored_weight_bytes": self.stored_weight_bytes,
            "stored_weight_tensors": self.stored_weight_tensors,
            "unique_params": self.unique_params, "params_as_used": self.params_as_used,
            "groups": [g.as_dict() for g in self.groups],
            "expanded_copies": [c.as_dict() for c in self.expanded_copies],
            "expanded_saved_bytes": self.expanded_saved_bytes,
        }


def sharing_report(path: str | Path) -> SharingReport:
    """Read ``path`` and build its sharing report.

    Args:
        path: a ``.tflite`` or ``.onnx`` file, ours or not.

    Returns:
        The report; ``stored_weight_bytes`` and ``groups`` match ``inspect_model(path)``.

    Raises:
        ModelFileError: the file is missing, empty, truncated, unparsable, has another
            suffix, or a weight's stored data does not match its shape.
    """
    from tinyshare.export.copies import find_expanded_copies
    from tinyshare.export.inspect import inspect_model

    path = Path(path)
    info = inspect_model(path)
    op_codes = {op.index: op.op_code for op in info.ops}
    groups = tuple(
        SharedStorage(g.storage, g.tensor_names, tuple((i, op_codes[i]) for i in g.consumer_ops),
                      g.nbytes, g.numel)
        for g in info.sharing_groups
    )
    return SharingReport(
        path=path,
        format=info.format,
        file_bytes=info.file_bytes,
        stored_weight_bytes=info.stored_weight_bytes,
        stored_weight_tensors=len(info.weight_storages),
        unique_params=sum(s.numel for s in info.weight_storages),
        params_as_used=sum(s.numel * len(s.consumer_ops) for s in info.weight_storages),
        groups=groups,
        expanded_copies=find_expanded_copies(path, info),
    )
