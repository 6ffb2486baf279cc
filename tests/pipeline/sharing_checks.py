"""Sharing invariants of one pipeline run, shared by the tiny-run, zoo and code generator
tests.

Each function asserts; ``run`` is a ``RunResult`` of a run that reached EXPORT.
"""

from __future__ import annotations

import re

import numpy as np

from tinyshare.export.inspect import inspect_model
from tinyshare.export.storage import expected_storage


def export_files(run) -> dict:
    e = run.run_dir / "export"
    return {"tflite_int8": e / "model_int8.tflite", "onnx_int8": e / "model_int8.onnx",
            "twin_tflite_int8": e / "twin" / "model_int8.tflite",
            "twin_onnx_int8": e / "twin" / "model_int8.onnx"}


def check_stored_bytes(run, fmt: str) -> None:
    """Stored weight bytes are exactly what sharing predicts, and the twin stores more."""
    files, q = export_files(run), run.quantized
    shared = inspect_model(files[f"{fmt}_int8"]).stored_weight_bytes
    twin = inspect_model(files[f"twin_{fmt}_int8"]).stored_weight_bytes
    exp_shared = expected_storage(q.shared, fmt).total_bytes
    exp_twin = expected_storage(q.twin, fmt).total_bytes
    assert shared == exp_shared
    assert twin == exp_twin
    assert twin - shared == exp_twin - exp_shared > 0


def check_stored_once(run, fmt: str) -> None:
    """One int8 tensor per unique weight; each shared one read once per call site."""
    info = inspect_model(export_files(run)[f"{fmt}_int8"])
    weights = run.quantized.shared.weights
    assert len([t for t in info.weight_tensors if t.dtype == "int8"]) == len(weights)
    int8_groups = sorted(
        (g.nbytes, len(g.consumer_ops)) for g in info.sharing_groups
        if all(info.tensor(n).dtype == "int8" for n in g.tensor_names))
    assert int8_groups == sorted((w.values.size, w.call_sites) for w in weights if w.call_sites > 1)


def _sorted_key(values: np.ndarray, scales) -> tuple:
    return (values.dtype.str, tuple(np.sort(values.ravel()).tolist()),
            tuple(np.round(np.atleast_1d(np.asarray(scales, dtype=np.float64)), 12).tolist()))


def check_same_int8_tensors(run) -> None:
    """Every int8 weight and int32 bias in the ONNX file is also in the TFLite file, with
    the same values (layouts differ: OIHW vs OHWI) and the same scales."""
    import onnx
    from ai_edge_litert.interpreter import Interpreter
    from onnx import numpy_helper

    from tinyshare.targets.runtimes.litert import tensor_quant_params

    files = export_files(run)
    model = onnx.load(str(files["onnx_int8"]))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    dq_scale = {n.input[0]: inits[n.input[1]] for n in model.graph.node
                if n.op_type == "DequantizeLinear" and n.input[0] in inits}
    onnx_keys = {_sorted_key(v, dq_scale[k]) for k, v in inits.items()
                 if v.dtype in (np.int8, np.int32) and v.size > 1 and k in dq_scale}
    interp = Interpreter(str(files["tflite_int8"]))
    params = {p.index: p for p in tensor_quant_params(files["tflite_int8"])}
    tfl_keys = set()
    for d in interp.get_tensor_details():
        if d["dtype"] not in (np.int8, np.int32) or np.prod(d["shape"]) <= 1:
            continue
        try:
            buf = interp.get_tensor(d["index"])
        except ValueError:
            continue
        tfl_keys.add(_sorted_key(buf, params[d["index"]].scales))
    assert onnx_keys, "no int8/int32 initializers found in the ONNX file"
    assert onnx_keys <= tfl_keys
    assert sum(1 for k in onnx_keys if k[0] == "|i1") == len(run.quantized.shared.weights)


def check_generated_c(gen, tflite) -> None:
    """The generated C of ``tflite`` keeps sharing true: constants = the file's weight
    storages, each emitted once and named in every op that reads it, + the requantization
    tables; the arena comes from the TFLM estimate's planner and is below TFLM's."""
    from tinyshare.targets.arena_plan import estimate_tflm_arena
    from tinyshare.targets.runtimes.tflm import find_arena_bytes

    info = inspect_model(tflite)
    source = gen.model_c.read_text()
    assert gen.weight_bytes == info.stored_weight_bytes
    assert {b.buffer for b in gen.buffers} == {int(s.storage) for s in info.weight_storages}
    tables = re.findall(r"static const (int32_t|int8_t) ts_rq\d+_(?:mult|shift)\[(\d+)\]", source)
    assert gen.table_bytes == sum(int(n) * (4 if t == "int32_t" else 1) for t, n in tables) > 0
    assert gen.const_bytes == info.stored_weight_bytes + gen.table_bytes
    for group in info.sharing_groups:
        name = f"ts_buf{group.storage}"
        assert len(re.findall(rf"static const \w+ {name}\[", source)) == 1, name
        calls = dict(re.findall(r"/\* op (\d+): \w+ \*/\n\s*(.*)", source))
        for op in group.consumer_ops:
            assert re.search(rf"\b{name}\b", calls[str(op)]), (name, op)
        (buf,) = [b for b in gen.buffers if b.c_name == name]
        assert buf.shared and buf.reader_ops == group.consumer_ops
    # the same planner and lifetimes as our TFLM estimate; aliasing only ever helps
    planned = estimate_tflm_arena(info).planned_bytes
    assert gen.arena_bytes_without_aliasing == planned >= gen.arena_bytes
    x0 = np.zeros((1, *gen.input_shape[1:]), np.float32)
    assert gen.arena_bytes < find_arena_bytes(tflite, x0).arena_bytes  # TFLM adds its structs
