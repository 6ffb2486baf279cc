"""Find stored weights that are broadcast, tiled or rank-1 expansions of a smaller tensor.

Exporters fold constants: a filter shared across channels (a depthwise filter repeated per
channel, a ``SharedLinear`` scaled per output, ``W = s ⊗ w``) can reach the file as a
full-size tensor. This module reads each stored weight's values back from the file (TFLite
buffers with the flatbuffer schema in ``ai_edge_litert``; ONNX initializers and ``Constant``
outputs with ``onnx.numpy_helper``; both imported lazily) and flags those that are

* identical along an axis (every slice equals the first): ``(C, K, K, 1)`` whose channels
  all equal channel 0 repeats a ``(1, K, K, 1)`` filter;
* tiled (``np.tile``) or element-repeated (``np.repeat``) from a smaller block along one or
  more axes;
* rank-1 along an axis: every slice along it is a scalar multiple of one tensor
  (``W[i] = s[i] · w``), storable as ``s`` and ``w``.

Which tensors are looked at: stored weights (``ModelInfo.weight_storages``) of dtype int8,
uint8, int16 (compared exactly) or float16/32/64 with at least ``MIN_ELEMENTS`` elements.
Constant tensors (every element equal, all-zero included) are skipped: they are trivially
"repeated" along every axis, so flagging them (zero biases, unit scales) would be noise, and
they are not a folded shared filter. Float tensors with NaN or infinity are skipped too.

Float tolerance: two values match when ``|a - b| <= FLOAT_EPS_FACTOR · eps(dtype) · max|A|``
(float32: about 9.5e-7 of the tensor's largest magnitude), computed in float64. Folded
copies are bit-exact; the slack covers the rounding of a rank-1 reconstruction.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tinyshare.errors import ModelFileError

if TYPE_CHECKING:
    import numpy as np

    from tinyshare.export.inspect import ModelInfo, TensorInfo

__all__ = ["FLOAT_EPS_FACTOR", "MIN_ELEMENTS", "ExpandedCopy", "find_expanded_copies"]

MIN_ELEMENTS = 16  # smaller tensors are not worth flagging and repeat by chance
FLOAT_EPS_FACTOR = 8  # float tolerance, in machine epsilons of the tensor's dtype
_EXACT_DTYPES = {"int8": "i1", "uint8": "u1", "int16": "<i2"}
_FLOAT_DTYPES = {"float16": "<f2", "float32": "<f4", "float64": "<f8"}


@dataclass(frozen=True)
class ExpandedCopy:
    """A stored weight that repeats a smaller tensor.

    Attributes:
        tensor: the (first) tensor name pointing at the storage.
        storage: TFLite buffer index (decimal string) or ONNX initializer name.
        shape: the stored tensor's shape.
        dtype: its element type, e.g. ``"float32"``.
        smaller_shape: the shape of the tensor it repeats (for rank-1: the shared vector ``w``,
            with the scaled axis set to 1).
        how: e.g. ``"identical along axis 0"``, ``"tiled 4x along axis 1"``,
            ``"rank-1 outer product along axis 0"``.
        stored_bytes: bytes the file stores for it.
        once_bytes: bytes it would need stored once (the smaller tensor; for rank-1 also the
            per-slice scales, in the same dtype).
    """

    tensor: str
    storage: str
    shape: tuple[int, ...]
    dtype: str
    smaller_shape: tuple[int, ...]
    how: str
    stored_bytes: int
    once_bytes: int

    @property
    def saved_bytes(self) -> int:
        """Bytes saved by storing the smaller tensor instead."""
        return max(self.stored_bytes - self.once_bytes, 0)

    def as_dict(self) -> dict:
        """Plain JSON-ready dict (shapes as lists), with ``saved_bytes``."""
        d = asdict(self)
        d["shape"], d["smaller_shape"] = list(self.shape), list(self.smaller_shape)
        d["saved_bytes"] = self.saved_bytes
        return d


def find_expanded_copies(path: str | Path, info: ModelInfo) -> tuple[ExpandedCopy, ...]:
    """Flag the stored weights of ``path`` that expand a smaller tensor (module docstring).

    Args:
        path: the ``.tflite`` / ``.onnx`` file ``info`` was read from.
        info: ``inspect_model(path)``.

    Returns:
        One ``ExpandedCopy`` per flagged storage, in ``info.weight_storages`` order.

    Raises:
        ModelFileError: the file cannot be read, or a buffer's size does not match its shape.
    """
    import numpy as np

    path = Path(path)
    wanted = {}
    for s in info.weight_storages:
        t = info.tensor(s.tensor_names[0])
        if (t.dtype in _EXACT_DTYPES or t.dtype in _FLOAT_DTYPES) and t.shape is not None \
                and all(d > 0 for d in t.shape) and math.prod(t.shape) >= MIN_ELEMENTS:
            wanted[s.storage] = t
    if not wanted:
        return ()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read ({type(exc).__name__}: {exc.strerror})") from exc
    read = _tflite_values if info.format == "tflite" else _onnx_values
    values = read(path, data, wanted)

    found = []
    for s in info.weight_storages:
        if s.storage not in values:
            continue
        t = wanted[s.storage]
        hit = _expansion(np.asarray(values[s.storage]).reshape(t.shape))
        if hit is not None:
            smaller, how, once_numel = hit
            itemsize = np.dtype(_EXACT_DTYPES.get(t.dtype) or _FLOAT_DTYPES[t.dtype]).itemsize
            found.append(ExpandedCopy(t.name, s.storage, tuple(t.shape), t.dtype, smaller, how,
                                      s.nbytes, once_numel * itemsize))
    return tuple(found)


def _tflite_values(path: Path, data: bytes, wanted: dict[str, TensorInfo]) -> dict:
    """storage (buffer index) -> flat array of its data, read lazily from the flatbuffer."""
    import numpy as np
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(data, 0)
    out = {}
    for key, t in wanted.items():
        buf = model.Buffers(int(key))
        if buf is None:
            continue
        if buf.DataLength():
            raw = buf.DataAsNumpy().tobytes()
        elif buf.Offset() > 1:
            raw = data[buf.Offset(): buf.Offset() + buf.Size()]
        else:
            continue
        dtype = np.dtype(_EXACT_DTYPES.get(t.dtype) or _FLOAT_DTYPES[t.dtype])
        if len(raw) != math.prod(t.shape) * dtype.itemsize:
            raise ModelFileError(f"{path}: buffer {key} holds {len(raw)} bytes; tensor "
                                 f"{t.name!r} {t.dtype} {list(t.shape)} needs "
                                 f"{math.prod(t.shape) * dtype.itemsize}")
        out[key] = np.frombuffer(raw, dtype=dtype)
    return out


def _onnx_values(path: Path, data: bytes, wanted: dict[str, TensorInfo]) -> dict:
    """storage (initializer / Constant output name) -> its array (external data beside path)."""
    import onnx
    from onnx import numpy_helper

    from tinyshare.export.inspect_onnx import _constants

    consts = _constants(onnx.load_model_from_string(data).graph)
    out = {}
    for key in wanted:
        if key in consts:
            try:
                out[key] = numpy_helper.to_array(consts[key], base_dir=str(path.parent))
            except (ValueError, OSError, TypeError) as exc:
                raise ModelFileError(f"{path}: cannot read the values of {key!r} "
                                     f"({type(exc).__name__}: {exc})") from exc
    return out


def _expansion(a: np.ndarray) -> tuple[tuple[int, ...], str, int] | None:
    """``(smaller_shape, how, elements stored once)`` when ``a`` expands a smaller tensor."""
    import numpy as np

    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)):
            return None
        peak = float(np.max(np.abs(a)))
        tol = FLOAT_EPS_FACTOR * float(np.finfo(a.dtype).eps) * peak
        a = a.astype(np.float64)
        if float(a.max() - a.min()) <= tol:
            return None  # constant
    else:
        tol = None
        a = a.astype(np.int64)
        if np.all(a == a.flat[0]):
            return None  # constant

    candidates = []
    peak = tuple(int(i) for i in np.unravel_index(int(np.argmax(np.abs(a))), a.shape))
    block, notes = _reduce_axes(a, tol)
    if notes:
        candidates.append((block.size, 0, 0, tuple(block.shape), "; ".join(notes)))
    for axis in range(a.ndim):
        d, rest = a.shape[axis], a.size // a.shape[axis]
        if d >= 2 and rest >= 2 and d + rest < a.size and _rank1(a, axis, peak, tol):
            smaller = tuple(1 if k == axis else n for k, n in enumerate(a.shape))
            candidates.append((d + rest, 1, axis, smaller,
                               f"rank-1 outer product along axis {axis}"))
    if not candidates:
        return None
    numel, _, _, smaller, how = min(candidates)  # fewest elements; then tiles; then low axis
    return smaller, how, numel


def _same(x: np.ndarray, y: np.ndarray, tol: float | None) -> bool:
    """Elementwise match (broadcasting): exact for integers, within ``tol`` for floats."""
    import numpy as np

    if tol is None:
        return bool(np.all(x == y))
    return bool(np.all(np.abs(x - y) <= tol))


def _reduce_axes(a: np.ndarray, tol: float | None) -> tuple[np.ndarray, list[str]]:
    """Shrink ``a`` axis by axis to the smallest block it tiles, repeats or broadcasts."""
    notes: list[str] = []
    for axis in range(a.ndim):
        while (step := _axis_step(a, axis, tol)) is not None:
            a, note = step
            notes.append(note)
    return a, notes


def _axis_step(a: np.ndarray, axis: int, tol: float | None) -> tuple[np.ndarray, str] | None:
    """The first (smallest) block along ``axis`` that ``a`` tiles or repeats, if any."""
    d = a.shape[axis]
    pre, post = math.prod(a.shape[:axis]), math.prod(a.shape[axis + 1:])
    v = a.reshape(pre, d, post)
    for p in (q for q in range(1, d // 2 + 1) if d % q == 0):
        k = d // p
        tiles = v.reshape(pre, k, p, post)  # k copies of a p-block (np.tile); p=1: broadcast
        if _same(tiles[0, 1, :8, :8], tiles[0, 0, :8, :8], tol) \
                and _same(tiles, tiles[:, :1], tol):
            note = (f"identical along axis {axis}" if p == 1
                    else f"tiled {k}x along axis {axis}")
            return _with_axis(tiles[:, 0], a.shape, axis, p), note
        reps = v.reshape(pre, p, k, post)  # each of p slices repeated k times (np.repeat)
        if p > 1 and _same(reps[0, :8, 1, :8], reps[0, :8, 0, :8], tol) \
                and _same(reps, reps[:, :, :1], tol):
            return (_with_axis(reps[:, :, 0], a.shape, axis, p),
                    f"each slice repeated {k}x along axis {axis}")
    return None


def _with_axis(block: np.ndarray, shape: tuple[int, ...], axis: int, size: int) -> np.ndarray:
    return block.reshape(*shape[:axis], size, *shape[axis + 1:])


def _rank1(a: np.ndarray, axis: int, peak: tuple[int, ...], tol: float | None) -> bool:
    """True when every slice of ``a`` along ``axis`` is a multiple of one tensor.

    With ``a[peak]`` the largest magnitude, ``w`` the slice through it and ``s`` the fibre
    along ``axis`` through it, ``a`` is rank-1 iff ``a · a[peak] == s ⊗ w`` (exact in int64;
    for floats ``|a - s ⊗ w / a[peak]| <= tol``). Slice 0 is checked first, to reject fast.
    """
    shared = a.take([peak[axis]], axis=axis)  # w, with the axis kept at size 1
    index = list(peak)
    index[axis] = slice(None)
    scale = a[tuple(index)].reshape([-1 if k == axis else 1 for k in range(a.ndim)])
    pivot = a[peak]
    first = a.take([0], axis=axis)
    first_scale = scale.take([0], axis=axis)
    if tol is None:
        return _same(first * pivot, first_scale * shared, None) \
            and _same(a * pivot, scale * shared, None)
    return _same(first, first_scale * shared / pivot, tol) \
        and _same(a, scale * shared / pivot, tol)
