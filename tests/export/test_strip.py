"""Stripping tensor names: smaller file, same ops and weights, identical TFLM outputs."""

from __future__ import annotations

import numpy as np
import pytest

from tinyshare.errors import ModelFileError
from tinyshare.export.inspect import inspect_model
from tinyshare.export.strip import strip_tensor_names


def test_stripped_model_is_smaller_and_keeps_weights(twice_conv_tflite, tmp_path):
    result = strip_tensor_names(twice_conv_tflite, tmp_path / "s.tflite")
    before, after = inspect_model(twice_conv_tflite), inspect_model(result.path)
    names = sum(len(t.name.encode()) for t in before.tensors)
    assert result.source_bytes == twice_conv_tflite.stat().st_size
    assert result.stripped_bytes == result.path.stat().st_size
    # each string: its bytes + a 4-byte length + NUL + up to 3 bytes of padding
    assert names <= result.saved_bytes <= names + 8 * len(before.tensors)
    assert [(o.op_code, o.version) for o in after.ops] == [(o.op_code, o.version) for o in before.ops]
    assert after.stored_weight_bytes == before.stored_weight_bytes
    assert len(after.sharing_groups) == len(before.sharing_groups)
    assert all(t.name.startswith("tensor_") for t in after.tensors)  # empty names, read back


def test_tflm_outputs_are_identical(twice_conv_tflite, tmp_path):
    from tinyshare.targets.runtimes.tflm import find_arena_bytes, run_tflm

    stripped = strip_tensor_names(twice_conv_tflite, tmp_path / "s.tflite").path
    x = np.random.default_rng(3).normal(size=(16, 8, 8, 1)).astype(np.float32)
    arena = find_arena_bytes(twice_conv_tflite, x[:1]).arena_bytes
    a = run_tflm(twice_conv_tflite, x, arena_bytes=arena).raw
    b = run_tflm(stripped, x, arena_bytes=arena).raw
    np.testing.assert_array_equal(a, b)


def test_bad_input_is_a_model_file_error(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"")
    with pytest.raises(ModelFileError):
        strip_tensor_names(bad, tmp_path / "out.tflite")
    assert not (tmp_path / "out.tflite").exists()
