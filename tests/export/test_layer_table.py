"""The per-layer table: MACs from shapes, weights attributed once, lifetimes, totals."""

from __future__ import annotations

import json

from tinyshare.export.inspect import inspect_model
from tinyshare.export.layer_table import layer_table


def _shared_conv_rows(table):
    """The shared conv's two call sites: CONV_2D reading a 4-channel input."""
    rows = [r for r in table.rows if r.op == "CONV_2D" and r.input_shapes[0][-1] == 4]
    assert len(rows) == 2
    return rows


def test_weight_bytes_sum_to_the_stored_weights(twice_conv_tflite):
    info = inspect_model(twice_conv_tflite)
    table = layer_table(info)
    assert table.weight_bytes == info.stored_weight_bytes
    assert table.unique_params == sum(s.numel for s in info.weight_storages)
    json.dumps(table.as_dict())  # plain data for the report


def test_shared_weight_counted_at_its_first_reader_only(twice_conv_tflite, twice_conv):
    info = inspect_model(twice_conv_tflite)
    table = layer_table(info)
    first, second = _shared_conv_rows(table)
    w = twice_conv.model.shared.weight  # (4, 4, 3, 3): 144 int8 bytes, one copy
    # The first call site stores the filter (144 B) and its int32 bias (4 x 4 B); the
    # second stores only its own bias, its input scale being its own.
    assert first.weight_bytes == w.numel() + 4 * 4
    assert second.weight_bytes == 4 * 4
    assert second.unique_params == 4
    [shared] = [s for s in second.shared if s.bytes == w.numel()]
    assert shared.first_op == first.index
    assert any(s.first_op == first.index for s in first.shared)


def test_macs_follow_the_conv_shapes(twice_conv_tflite, twice_conv):
    table = layer_table(inspect_model(twice_conv_tflite))
    out_c, in_c, kh, kw = twice_conv.model.shared.weight.shape
    for row in _shared_conv_rows(table):
        assert row.macs == 8 * 8 * out_c * (kh * kw * in_c)  # 8x8 output, SAME padding
    fc = [r for r in table.rows if r.op == "FULLY_CONNECTED"][-1]
    assert fc.macs == 3 * 4  # Linear(4, 3), batch 1
    others = [r for r in table.rows if r.op in ("MEAN", "RESHAPE", "ADD")]
    assert others and all(r.macs == 0 for r in others)


def test_lifetimes_cover_every_reader(twice_conv_tflite):
    info = inspect_model(twice_conv_tflite)
    table = layer_table(info)
    readers: dict[str, list[int]] = {}
    for op in info.ops:
        for name in op.inputs:
            readers.setdefault(name, []).append(op.index)
    for row in table.rows:
        first, last = row.lifetime
        assert first == row.index
        if row.name in info.outputs:
            assert last == len(info.ops) - 1
        else:
            assert last == max(readers[row.name])
        out = info.tensor(row.name)
        assert row.activation_bytes == out.data_bytes


def test_onnx_table_has_no_lifetimes_and_the_same_weight_total(twice_conv_onnx):
    info = inspect_model(twice_conv_onnx)
    table = layer_table(info)
    assert table.format == "onnx" and table.peak_live_activation_bytes is None
    assert all(r.lifetime is None for r in table.rows)
    assert table.weight_bytes == info.stored_weight_bytes
    convs = [r for r in table.rows if r.op == "Conv"]
    assert len(convs) == 3 and all(c.macs > 0 for c in convs)
