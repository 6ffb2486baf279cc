"""Codebook (clustered) weights packed in the generated C: ``generate_c(pack_codebooks=True)``.

* the packer (``_codebook``, pure numpy): round trips, index widths, layout, byte counts and
  the cases that stay plain;
* single-op CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED models with <= 2 / 4 / 16 values
  per channel: host build bit-exact with TFLM running the plain file, flash smaller by
  exactly the codebook's saving;
* a filter read by two ops: one index array and one table, decoded before each op;
* the clustered digits model through the pipeline: ``tests/pipeline/test_cluster_pipeline.py``.
"""

from __future__ import annotations

import copy
import re
import zlib
from pathlib import Path

import numpy as np
import pytest

from codegen_harness import TFLM_ARENA_BYTES, int8_samples
from codegen_single_op import ACT, T, conv_options, write_model
from tinyshare.targets.codegen._codebook import (
    channel_layout,
    pack_codebook,
    packed_nbytes,
    unpack_codebook,
)

ROOT = Path(__file__).resolve().parents[2]


def _clustered(rng, shape: tuple[int, ...], axis: int | None, k: int,
               zero_channel: int | None = None) -> np.ndarray:
    """int8 of ``shape`` with exactly ``k`` distinct values in every channel along ``axis``
    (None: in the whole tensor); channel ``zero_channel`` all zeros."""
    moved = shape if axis is None else (shape[axis], *shape[:axis], *shape[axis + 1:])
    channels = 1 if axis is None else moved[0]
    per = int(np.prod(moved)) // channels
    assert per >= k
    pal = np.stack([rng.choice(255, k, replace=False) - 127 for _ in range(channels)])
    pick = rng.integers(0, k, (channels, per))
    pick[:, :k] = np.arange(k)  # every value used
    w = np.take_along_axis(pal, pick, axis=1).astype(np.int8)
    if zero_channel is not None:
        w[zero_channel] = 0
    w = w.reshape(moved)
    return w if axis is None else np.moveaxis(w, 0, axis).copy()


# ---- the packer -------------------------------------------------------------------------


@pytest.mark.parametrize("axis", [0, 3, None], ids=["axis0", "axis3", "per-tensor"])
@pytest.mark.parametrize("bits", [1, 2, 4])
def test_round_trip_and_byte_count(bits, axis):
    rng = np.random.default_rng(bits * 10 + (axis or 9))
    w = _clustered(rng, (6, 5, 3, 8), axis, 1 << bits)
    cb = pack_codebook(w, axis)
    assert cb is not None and cb.bits == bits
    channels = {0: 6, 3: 8, None: 1}[axis]
    assert (cb.channels, cb.inner) == channel_layout(w.shape, axis)
    assert cb.inner == {0: 120, 3: 1, None: 720}[axis]
    assert cb.indices.dtype == np.uint8 and cb.indices.shape == (720 * bits // 8,)
    assert cb.table.dtype == np.int8 and cb.table.shape == (channels, 1 << bits)
    assert cb.nbytes == 720 * bits // 8 + channels * (1 << bits) == packed_nbytes(720, channels, bits)
    assert cb.plain_nbytes == 720
    out = unpack_codebook(cb)
    assert out.dtype == np.int8 and np.array_equal(out, w.reshape(-1))


def test_indices_are_little_end_first_and_the_last_byte_is_padded():
    w = np.array([-3, 7, 7, -3, 7], np.int8)  # one table for the tensor: [-3, 7]
    cb = pack_codebook(w, None)
    assert cb.bits == 1 and cb.table.tolist() == [[-3, 7]]
    assert cb.indices.tolist() == [0b10110]  # element 0 in bit 0; bits 5..7 zero
    assert cb.nbytes == 3
    w = np.array([[5, -1, 9, 5, 0, 9]] * 4, np.int8).T.copy()  # (6, 4): 4 values per column
    cb = pack_codebook(w, 1)
    assert cb.bits == 2 and cb.table[:, :4].tolist() == [[-1, 0, 5, 9]] * 4
    # rows 0, 1 of the flat order: 5, 5, 5, 5, -1, -1, -1, -1 -> indices 2 2 2 2 | 0 0 0 0
    assert cb.indices[:2].tolist() == [0b10101010, 0]


def test_channels_with_fewer_values_and_an_all_zero_channel():
    rng = np.random.default_rng(1)
    w = _clustered(rng, (5, 64), 0, 16, zero_channel=2)
    w[3] = np.where(w[3] > 0, 11, -11)  # two values
    w[4] = 42  # one value
    cb = pack_codebook(w, 0)
    assert cb.bits == 4 and cb.nbytes == 160 + 5 * 16
    assert cb.table[2].tolist() == [0] * 16
    assert cb.table[3].tolist() == [-11, 11] + [0] * 14  # unused entries are 0
    assert cb.table[4].tolist() == [42] + [0] * 15
    assert np.array_equal(unpack_codebook(cb), w.reshape(-1))
    # only zeros: one value, 1-bit indices
    z = np.zeros((8, 3, 3, 4), np.int8)
    cb = pack_codebook(z, 0)
    assert cb.bits == 1 and cb.nbytes == 36 + 16 and not unpack_codebook(cb).any()


def test_more_than_16_values_in_a_channel_stays_plain():
    rng = np.random.default_rng(2)
    w = _clustered(rng, (4, 64), 0, 16)
    assert pack_codebook(w, 0) is not None
    w[1, 0] = 127 if 127 not in w[1] else -128  # a 17th value in channel 1 only
    assert pack_codebook(w, 0) is None
    # 16 values per channel but 64 over the tensor: per-tensor is refused, per-channel packs
    assert len(np.unique(w[[0, 2, 3]])) > 16 and pack_codebook(w[[0, 2, 3]], None) is None


def test_no_saving_stays_plain():
    # 1-bit, one table: ceil(n / 8) + 2 bytes; 3 elements take 3 bytes -> plain, 4 -> packed
    assert pack_codebook(np.array([1, -1, 1], np.int8), None) is None
    assert pack_codebook(np.array([1, -1, 1, 1], np.int8), None).nbytes == 3
    # a 1x1 conv with 16 values per output channel: 128 + 16 * 16 bytes >= 256 plain
    rng = np.random.default_rng(3)
    assert pack_codebook(_clustered(rng, (16, 1, 1, 16), 0, 16), 0) is None
    # the same with 4 values: 64 + 16 * 4 = 128 < 256
    assert pack_codebook(_clustered(rng, (16, 1, 1, 16), 0, 4), 0).nbytes == 128
    assert pack_codebook(np.zeros((0, 4), np.int8), 0) is None


def test_packer_refuses_what_it_cannot_pack():
    with pytest.raises(ValueError, match="int8"):
        pack_codebook(np.zeros((4, 4), np.int16), 0)
    with pytest.raises(ValueError, match="axis 2"):
        pack_codebook(np.zeros((4, 4), np.int8), 2)


# ---- single-op models vs TFLM ----------------------------------------------------------


def _conv(path: Path, rng, *, k: int, depthwise=False, x=(1, 6, 6, 3), out_c=4, kernel=(3, 3),
          zero_channel=None) -> Path:
    wshape = (1, *kernel, out_c) if depthwise else (out_c, *kernel, x[3])
    axis = 3 if depthwise else 0
    w = _clustered(rng, wshape, axis, k, zero_channel)
    scales = [float(v) for v in rng.uniform(0.002, 0.01, out_c)]
    if zero_channel is not None:
        scales[zero_channel] = 1e-12
    options = conv_options("SAME", act="RELU")
    if depthwise:
        options["depthMultiplier"] = out_c // x[3]
    return write_model(
        path, "DEPTHWISE_CONV_2D" if depthwise else "CONV_2D",
        [T(x, scale=0.02, zero_point=5), T(wshape, scale=scales, qdim=axis, data=w),
         T((out_c,), "int32", scale=[0.02 * s for s in scales],
           data=rng.integers(-3000, 3000, out_c))],
        T((1, x[1], x[2], out_c), scale=0.05, zero_point=-3),
        "DepthwiseConv2DOptions" if depthwise else "Conv2DOptions", options)


def _fc(path: Path, rng, *, k: int, n_in=64, n_out=10, per_tensor=False) -> Path:
    w = _clustered(rng, (n_out, n_in), None if per_tensor else 0, k)
    scales = [float(v) for v in rng.uniform(0.002, 0.01, 1 if per_tensor else n_out)]
    bias_scales = [0.03 * s for s in scales] * (n_out if per_tensor else 1)
    return write_model(
        path, "FULLY_CONNECTED",
        [T((1, n_in), scale=0.03, zero_point=-7),
         T((n_out, n_in), scale=scales[0] if per_tensor else scales, data=w),
         T((n_out,), "int32", scale=bias_scales[0] if per_tensor else bias_scales,
           data=rng.integers(-5000, 5000, n_out))],
        T((1, n_out), scale=0.2, zero_point=4), "FullyConnectedOptions",
        {"fusedActivationFunction": ACT["NONE"]})


# case -> (builder, kwargs, index bits, packed bytes = ceil(numel * bits / 8) + channels * 2**bits)
CASES = {
    "conv-2-values": (_conv, dict(k=2), 1, 14 + 4 * 2),  # (4, 3, 3, 3): 108
    "conv-4-values-zero-channel": (_conv, dict(k=4, x=(1, 6, 6, 4), out_c=8, zero_channel=2),
                                   2, 72 + 8 * 4),  # (8, 3, 3, 4): 288
    "conv-16-values": (_conv, dict(k=16, x=(1, 5, 5, 8), out_c=6), 4, 216 + 6 * 16),  # 432
    "dw-4-values-odd-size": (_conv, dict(k=4, depthwise=True, x=(1, 6, 6, 5), out_c=5),
                             2, 12 + 5 * 4),  # (1, 3, 3, 5): 45, last byte padded
    "dw-16-values-7x7-multiplier2": (_conv, dict(k=16, depthwise=True, x=(1, 9, 9, 3), out_c=6,
                                                 kernel=(7, 7)), 4, 147 + 6 * 16),  # 294
    "fc-4-values": (_fc, dict(k=4), 2, 160 + 10 * 4),  # (10, 64): 640
    "fc-16-values": (_fc, dict(k=16, n_in=96, n_out=12), 4, 576 + 12 * 16),  # 1152
    "fc-per-tensor-16-values": (_fc, dict(k=16, per_tensor=True), 4, 320 + 16),  # one table
}


def _host_vs_tflm(tflite: Path, out_dir: Path, x: np.ndarray | None = None):
    """(packed GeneratedModel, host outputs, TFLM outputs on the plain file) for int8
    samples ``x`` (default: 32 uniform and extreme ones)."""
    from tinyshare.targets.codegen import build_host, generate_c, run_host
    from tinyshare.targets.runtimes.tflm import run_tflm

    gen = generate_c(tflite, out_dir, pack_codebooks=True)
    if x is None:
        x = int8_samples(np.random.default_rng(0), gen.input_shape, 32)
    host = run_host(build_host(gen), x)
    xf = (x.astype(np.float32) - np.float32(gen.input_zero_point)) * np.float32(gen.input_scale)
    ref = run_tflm(tflite, xf, arena_bytes=TFLM_ARENA_BYTES).raw.reshape(host.shape)
    return gen, host, ref


def _assert_bit_exact(host: np.ndarray, ref: np.ndarray) -> None:
    diff = np.abs(host.astype(np.int32) - ref.astype(np.int32))
    assert diff.max() == 0, f"{int((diff > 0).sum())} of {diff.size} values differ"


def _arrays(source: str) -> dict[str, int]:
    """Constant array name -> element count, from model.c."""
    return {name: int(n) for name, n in re.findall(r"static const \w+ (ts_\w+)\[(\d+)\]", source)}


@pytest.mark.parametrize("case", list(CASES))
def test_single_op_codebook_is_bit_exact_and_smaller(case, tmp_path):
    from tinyshare.targets.codegen import generate_c

    build, kwargs, bits, packed_bytes = CASES[case]
    path = build(tmp_path / f"{case}.tflite", np.random.default_rng(zlib.crc32(case.encode())),
                 **kwargs)
    gen, host, ref = _host_vs_tflm(path, tmp_path / "packed")
    _assert_bit_exact(host, ref)
    assert len(np.unique(ref)) > 3, "outputs must not be constant"
    plain = generate_c(path, tmp_path / "plain")
    assert all(b.packed_bits is None for b in plain.buffers) and plain.codebook_unpacked_bytes == 0
    assert "ts_unpack_codebook" not in plain.model_c.read_text() and "unpack" not in plain.kernels

    (w,) = gen.codebook_buffers
    numel = int(np.prod(w.shape))
    assert w.packed_bits == bits and w.nbytes == packed_bytes and w.c_name == f"ts_idx{w.buffer}"
    assert gen.codebook_unpacked_bytes == numel == w.plain_nbytes
    assert plain.weight_bytes - gen.weight_bytes == numel - packed_bytes == gen.codebook_saved_bytes
    assert gen.table_bytes == plain.table_bytes and "unpack" in gen.kernels
    arrays = _arrays(gen.model_c.read_text())
    assert f"ts_buf{w.buffer}" not in arrays
    lut = arrays[f"ts_lut{w.buffer}"]
    assert arrays[f"ts_idx{w.buffer}"] + lut == packed_bytes and lut % (1 << bits) == 0
    # the decode region is planned with the activations; it cannot shrink the arena
    assert gen.arena_bytes >= plain.arena_bytes


def _two_convs_sharing_a_filter(path: Path, rng) -> Path:
    """x -> CONV_2D(w, b) -> CONV_2D(w', b') -> y, w' and b' other tensors on w's and b's
    buffers (how the converter stores a shared weight)."""
    from ai_edge_litert import schema_py_generated as s

    import flatbuffers

    _conv(path, rng, k=4, x=(1, 6, 6, 4), out_c=4)
    model = s.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    g = model.subgraphs[0]
    (op,) = g.operators
    x, w, b = op.inputs
    y = op.outputs[0]
    extra = [copy.deepcopy(g.tensors[i]) for i in (w, b, y)]
    for t, name in zip(extra, (b"w_again", b"b_again", b"z"), strict=True):
        t.name = name
    base = len(g.tensors)
    g.tensors += extra
    second = copy.deepcopy(op)
    second.inputs, second.outputs = [y, base, base + 1], [base + 2]
    g.operators.append(second)
    g.outputs = [base + 2]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))
    return path


def test_shared_filter_is_packed_once_and_decoded_by_each_op(tmp_path):
    path = _two_convs_sharing_a_filter(tmp_path / "shared.tflite", np.random.default_rng(7))
    gen, host, ref = _host_vs_tflm(path, tmp_path / "c")
    _assert_bit_exact(host, ref)
    assert gen.ops == ("CONV_2D", "CONV_2D")
    (w,) = gen.codebook_buffers
    assert w.shared and w.reader_ops == (0, 1) and len(w.tensors) == 2
    assert w.packed_bits == 2 and w.nbytes == 36 + 4 * 4  # (4, 3, 3, 4): 144 elements
    source = gen.model_c.read_text()
    assert len(re.findall(r"static const uint8_t ts_idx\d+\[", source)) == 1
    assert len(re.findall(r"static const int8_t ts_lut\d+\[", source)) == 1
    assert f"ts_idx{w.buffer}" in _arrays(source) and f"ts_buf{w.buffer}" not in _arrays(source)
    # each op decodes the one array into its scratch, then reads that scratch as its filter
    for k in (0, 1):
        block = re.search(rf"/\* op {k}: CONV_2D \*/\n(.*?);\n(.*?);", source, re.S)
        decode, conv = block.group(1).strip(), block.group(2).strip()
        m = re.fullmatch(rf"ts_unpack_codebook\(ts_idx{w.buffer}, ts_lut{w.buffer}, 2, 4, 36, "
                         r"144, (\(arena \+ \d+\))\)", decode)
        assert m, decode
        assert conv.split(", ")[2] == m.group(1), conv  # the filter argument
    assert source.count("ts_unpack_codebook(") == 2


# ---- a real clustered model ------------------------------------------------------------
