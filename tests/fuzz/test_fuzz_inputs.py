"""Bad input to ``tinyshare check``: seeded, bounded fuzzing through the command line.

Every case runs ``tinyshare.cli.main(["check", ...])`` in-process (a few through
``python -m tinyshare`` with a timeout) in a fresh folder that is also the working folder
and, through ``tempfile.tempdir``, the temporary folder. For a malformed input it asserts:
exit code 2, exactly one line on stderr (file-descriptor level, so native runtime logs
count) that names the file or option, no traceback, no output folder and no new file
anywhere else, within ``TIME_BOUND_S``. Mutations that may leave a valid model (bytes
overwritten inside a valid flatbuffer or protobuf) may also end in 0 or 1, with exactly
``check.json`` and ``check.md`` in the output folder and a verdict matching the exit code.

Hypothesis runs derandomized (a fixed seed per test) with a deadline and a small
``max_examples``; ``FUZZ_CASES`` (conftest) counts every case and the terminal summary
prints the total.
"""

from __future__ import annotations

import ast
import io
import json
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tinyshare.cli import main

ROOT = Path(__file__).resolve().parents[2]
BOARDS = ("rpi4b", "nano33-ble-sense")  # host runtimes only; TFLM in a child process
TIME_BOUND_S = 60.0  # one case, on a busy machine (they take 0.01-2 s)
ONNX_INITIALIZERS = ("W", "B", "x_scale", "x_zp", "w_scale", "w_zp", "y_scale", "y_zp")
GIB4 = 1 << 32  # tinyshare.pipeline.check_model.MAX_TENSOR_BYTES


def fuzz_settings(max_examples: int):
    """Derandomized (seeded by the test's name), with a deadline, bounded."""
    return settings(max_examples=max_examples, derandomize=True, database=None,
                    deadline=timedelta(seconds=TIME_BOUND_S), print_blob=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


def _listing(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


class _Fuzz:
    """Runs one case in a fresh folder and checks the bad-input contract."""

    def __init__(self, root: Path, capfd, monkeypatch, cases) -> None:
        self.root, self.capfd, self.monkeypatch, self.cases = root, capfd, monkeypatch, cases
        self.sys_tmp = root / "sys-tmp"
        self.sys_tmp.mkdir()
        monkeypatch.setattr(tempfile, "tempdir", str(self.sys_tmp))

    def folder(self) -> Path:
        d = Path(tempfile.mkdtemp(dir=self.root, prefix="case-"))
        self.monkeypatch.chdir(d)
        return d

    def check(self, kind: str, work: Path, model: Path, board: str = "rpi4b", *,
              data: Path | None = None, out: Path | None = None, strict: bool = True,
              names: tuple[str, ...] = ()) -> int:
        """Run ``tinyshare check`` on files inside ``work``; assert the contract.

        ``names``: what the one error line must mention (default: the model's file name).
        """
        out = work / "out" if out is None else out
        out_existed = out.exists()
        argv = ["check", str(model), "--board", board, "--out", str(out)]
        argv += ["--data", str(data)] if data is not None else []
        before = _listing(work)
        self.capfd.readouterr()
        start = time.perf_counter()
        code = main(argv)
        seconds = time.perf_counter() - start
        cap = self.capfd.readouterr()
        err = cap.err.strip().splitlines()
        rel_out = str(out.relative_to(work)) if out.is_relative_to(work) else None
        outside = {p for p in _listing(work) - before
                   if rel_out is None or not (p == rel_out or p.startswith(rel_out + "/"))}
        self.cases[f"{kind}: exit {code}"] += 1
        assert not outside, f"{kind}: files written outside the output folder: {outside}"
        assert not any(self.sys_tmp.iterdir()), list(self.sys_tmp.iterdir())
        assert "Traceback" not in cap.err + cap.out
        assert seconds < TIME_BOUND_S, (kind, seconds)
        assert code in ((2,) if strict else (0, 1, 2)), (kind, code, err)
        self.last_error = err[0] if err else ""
        if code == 2:
            assert len(err) == 1 and err[0].startswith("tinyshare: error: "), (kind, err)
            assert any(n in err[0] for n in (names or (model.name,))), (kind, names, err)
            assert cap.out == ""
            assert out_existed or not out.exists(), f"{kind}: output folder left on exit 2"
        else:
            assert {p.name for p in out.iterdir()} == {"check.json", "check.md"}
            verdict = json.loads((out / "check.json").read_text())["verdict"]
            assert verdict == ("PASS" if code == 0 else "FAIL")
            assert err == [] if code == 0 else (len(err) == 1 and "check: FAIL" in err[0]), err
        return code


@pytest.fixture
def fuzz(tmp_path, capfd, monkeypatch, fuzz_cases) -> _Fuzz:
    return _Fuzz(tmp_path, capfd, monkeypatch, fuzz_cases)


def _write(work: Path, name: str, data: bytes) -> Path:
    p = work / "in" / name
    p.parent.mkdir(exist_ok=True)
    p.write_bytes(data)
    return p


# --- model files -------------------------------------------------------------------------

@fuzz_settings(40)
@given(cut=st.integers(0, 1 << 20), fmt=st.sampled_from(["tflite", "onnx"]),
       board=st.sampled_from(BOARDS))
def test_truncated_model(fuzz, seeds, cut, fmt, board):
    data = getattr(seeds, fmt).read_bytes()
    work = fuzz.folder()
    model = _write(work, f"cut.{fmt}", data[:cut % len(data)])
    fuzz.check(f"truncated .{fmt}", work, model, board)


@fuzz_settings(50)
@given(blob=st.binary(max_size=3000), fmt=st.sampled_from(["tflite", "onnx"]),
       identifier=st.booleans(), board=st.sampled_from(BOARDS))
def test_random_bytes(fuzz, blob, fmt, identifier, board):
    blob = bytearray(blob)
    if fmt == "tflite" and identifier and len(blob) >= 8:
        blob[4:8] = b"TFL3"  # past the identifier check, into the flatbuffer parser
    work = fuzz.folder()
    fuzz.check(f"random bytes .{fmt}", work, _write(work, f"rand.{fmt}", bytes(blob)), board)


@fuzz_settings(15)
@given(value=st.integers(1 << 20, (1 << 32) - 1), board=st.sampled_from(BOARDS))
def test_root_offset_out_of_range(fuzz, seeds, value, board):
    data = bytearray(seeds.tflite.read_bytes())
    data[0:4] = struct.pack("<I", value)  # the root table offset, far past the end
    work = fuzz.folder()
    fuzz.check("root offset out of range", work, _write(work, "root.tflite", bytes(data)), board)


@fuzz_settings(50)
@given(slot=st.integers(0, 1 << 20),
       value=st.one_of(st.sampled_from([0, 0x7FFFFFFF, 0x80000000, 0xFFFFFFF0, 0xFFFFFFFF]),
                       st.integers(0, (1 << 32) - 1)),
       board=st.sampled_from(BOARDS), with_data=st.booleans())
def test_overwritten_uint32_in_tflite(fuzz, seeds, slot, value, board, with_data):
    """Offsets, lengths and indices overwritten with out-of-range values: the file may still
    be valid (the word was weight data), so 0 and 1 are allowed besides the one-line 2."""
    data = bytearray(seeds.tflite.read_bytes())
    pos = 4 * (slot % (len(data) // 4))
    data[pos:pos + 4] = struct.pack("<I", value)
    work = fuzz.folder()
    model = _write(work, "ow.tflite", bytes(data))
    fuzz.check("overwritten uint32 .tflite", work, model, board,
               data=seeds.data if with_data else None, strict=False,
               names=(model.name, seeds.data.name))


@fuzz_settings(30)
@given(flips=st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)),
                      min_size=1, max_size=4), with_data=st.booleans())
def test_flipped_bytes_in_onnx(fuzz, seeds, flips, with_data):
    data = bytearray(seeds.onnx.read_bytes())
    for pos, value in flips:
        data[pos % len(data)] = value
    work = fuzz.folder()
    model = _write(work, "flip.onnx", bytes(data))
    fuzz.check("flipped bytes .onnx", work, model, data=seeds.data if with_data else None,
               strict=False, names=(model.name, seeds.data.name))


def _onnx_model(seeds):
    import onnx

    return onnx.load(str(seeds.onnx))


def _save_onnx(work: Path, name: str, model) -> Path:
    return _write(work, name, model.SerializeToString())


@fuzz_settings(12)
@given(data=st.data())
def test_onnx_cycle(fuzz, seeds, data):
    """Node i reads node j's output with j >= i: a cycle (or a self-loop) in the graph."""
    model = _onnx_model(seeds)
    nodes = model.graph.node
    i = data.draw(st.integers(0, len(nodes) - 1), label="reader")
    j = data.draw(st.integers(i, len(nodes) - 1), label="producer")
    nodes[i].input[0] = nodes[j].output[0]
    work = fuzz.folder()
    fuzz.check("onnx cycle", work, _save_onnx(work, "cycle.onnx", model))


@fuzz_settings(10)
@given(name=st.sampled_from(ONNX_INITIALIZERS), dangling=st.booleans())
def test_onnx_missing_initializer(fuzz, seeds, name, dangling):
    """An initializer removed, or a node input renamed to a name nothing defines."""
    model = _onnx_model(seeds)
    if dangling:
        node = next(n for n in model.graph.node if name in n.input)
        node.input[list(node.input).index(name)] = name + "_missing"
    else:
        kept = [t for t in model.graph.initializer if t.name != name]
        del model.graph.initializer[:]
        model.graph.initializer.extend(kept)
    work = fuzz.folder()
    fuzz.check("onnx missing initializer", work, _save_onnx(work, "missing.onnx", model))


@fuzz_settings(12)
@given(dims=st.lists(st.integers((1 << 16) + 1, (1 << 31) - 1), min_size=2, max_size=3),
       board=st.sampled_from(BOARDS))
def test_huge_declared_tflite_shape(fuzz, seeds, dims, board):
    """An activation declared > 4 GiB: refused from the header, before anything allocates."""
    so = seeds.module._single_op()
    work = fuzz.folder()
    model = so.write_model(work / "huge.tflite", "RELU", [so.T(tuple(dims), scale=0.1)],
                           so.T(tuple(dims), scale=0.1))
    fuzz.check("huge declared shape .tflite", work, model, board)


@fuzz_settings(12)
@given(dims=st.lists(st.integers(1, 1 << 40), min_size=2, max_size=4),
       where=st.sampled_from(["input", "initializer"]))
def test_huge_declared_onnx_shape(fuzz, dims, where):
    import onnx
    from onnx import TensorProto, helper

    assume(int(np.prod(dims, dtype=object)) * 4 > GIB4)
    if where == "input":
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)
        graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "huge", [x],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, dims)])
    else:  # 16 stored bytes under a huge declared shape
        w = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=dims, raw_data=bytes(16))
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
        graph = helper.make_graph([helper.make_node("Add", ["x", "W"], ["y"])], "huge", [x],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
                                  initializer=[w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    work = fuzz.folder()
    path = work / "huge.onnx"
    onnx.save(model, str(path))
    fuzz.check(f"huge declared shape .onnx {where}", work, path)


# --- data files --------------------------------------------------------------------------

@fuzz_settings(15)
@given(values=st.lists(st.one_of(st.integers(), st.text(max_size=4), st.none(),
                                 st.floats(allow_nan=False)), min_size=1, max_size=6),
       which=st.sampled_from(["x", "y"]), fmt=st.sampled_from(["tflite", "onnx"]))
def test_npz_with_object_arrays(fuzz, seeds, values, which, fmt):
    arrays = {"x": np.zeros((len(values), seeds.n_in), np.float32),
              "y": np.zeros(len(values), np.int64)}
    arrays[which] = np.array([*values, object()], dtype=object)[:len(values)]
    work = fuzz.folder()
    npz = work / "in" / "objects.npz"
    npz.parent.mkdir()
    np.savez(npz, **arrays)
    code = fuzz.check("npz object array", work, getattr(seeds, fmt), data=npz,
                      names=(npz.name,))
    assert code == 2


X_DTYPES = ["float32", "float64", "float16", "int8", "int32", "uint8", "bool", "complex64"]
Y_KINDS = ["ok", "none", "float", "2d", "negative", "short", "label_too_big"]


@fuzz_settings(50)
@given(x_dtype=st.sampled_from(X_DTYPES), shape=st.lists(st.integers(0, 20), max_size=4),
       y_kind=st.sampled_from(Y_KINDS), nan=st.booleans(), fmt=st.sampled_from(["tflite", "onnx"]),
       board=st.sampled_from(BOARDS))
def test_npz_with_wrong_dtypes_and_shapes(fuzz, seeds, x_dtype, shape, y_kind, nan, fmt, board):
    n = shape[0] if shape else 0
    x_ok = x_dtype == "float32" and len(shape) == 2 and n >= 1 and shape[1] == seeds.n_in
    assume(not (x_ok and y_kind in ("ok", "none") and not nan))
    x = np.ones(shape, dtype=x_dtype)
    if nan and x.size and x_dtype.startswith(("float", "complex")):
        x.flat[0] = np.nan
    elif nan:
        assume(not (x_ok and y_kind in ("ok", "none")))
    m = max(n, 1)
    y = {"ok": np.zeros(m, np.int64), "float": np.zeros(m, np.float32),
         "2d": np.zeros((m, 2), np.int64), "negative": -np.ones(m, np.int64),
         "short": np.zeros(m + 1, np.int64), "label_too_big": np.full(m, seeds.n_out, np.int64)}
    arrays = {"x": x} if y_kind == "none" else {"x": x, "y": y[y_kind]}
    work = fuzz.folder()
    npz = work / "in" / "wrong.npz"
    npz.parent.mkdir()
    np.savez(npz, **arrays)
    model = getattr(seeds, fmt)
    if fmt == "onnx" and board != "rpi4b":
        board = "rpi4b"  # the TFLM board refuses .onnx before reading the data
    fuzz.check(f"npz wrong dtype/shape ({y_kind})", work, model, board, data=npz,
               names=(npz.name,))


def _npy(shape, dtype=np.float32, payload: bytes = b"") -> bytes:
    header = np.lib.format.header_data_from_array_1_0(np.zeros(1, dtype))
    header["shape"] = tuple(shape)
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue() + payload


NPZ_DAMAGE = ["truncated", "random", "huge_header", "npy_renamed", "bad_deflate",
              "bad_version", "no_x", "negative_dim"]


@pytest.mark.parametrize("damage", NPZ_DAMAGE)
@fuzz_settings(6)
@given(cut=st.integers(0, 1 << 20), blob=st.binary(min_size=1, max_size=600),
       dims=st.lists(st.integers(1 << 16, 1 << 40), min_size=1, max_size=3))
def test_corrupt_npz(fuzz, seeds, damage, cut, blob, dims):
    """Damaged npz files: every member header is read (and refused) before any data."""
    good = seeds.data.read_bytes()
    work = fuzz.folder()
    npz = work / "in" / "bad.npz"
    npz.parent.mkdir()
    if damage == "truncated":
        npz.write_bytes(good[:cut % len(good)])
    elif damage == "random":
        npz.write_bytes(blob)
    elif damage == "npy_renamed":
        buf = io.BytesIO()
        np.save(buf, np.zeros((4, seeds.n_in), np.float32))
        npz.write_bytes(buf.getvalue())
    else:
        compression = zipfile.ZIP_DEFLATED if damage == "bad_deflate" else zipfile.ZIP_STORED
        x = {"huge_header": _npy(dims, payload=bytes(16)),
             "bad_version": b"\x93NUMPY\x07\x00" + _npy((4, seeds.n_in))[8:],
             "negative_dim": _npy((-4, seeds.n_in), payload=bytes(16))}.get(
                 damage, _npy((64, seeds.n_in), payload=bytes(64 * seeds.n_in * 4)))
        with zipfile.ZipFile(npz, "w", compression=compression) as z:
            z.writestr("x.npy" if damage != "no_x" else "z.npy", x)
        if damage == "bad_deflate":
            raw = bytearray(npz.read_bytes())
            start = raw.index(b"x.npy") + 5  # the deflate stream follows the local header
            for k in range(start + 2, min(start + 40, len(raw))):
                raw[k] ^= 0x5A
            npz.write_bytes(bytes(raw))
    fuzz.check(f"corrupt npz ({damage})", work, seeds.tflite, data=npz, names=(npz.name,))


# --- output folder -----------------------------------------------------------------------

@pytest.mark.parametrize("where", ["a_file", "foreign_folder", "under_a_file"])
def test_bad_out_folder(fuzz, seeds, where):
    work = fuzz.folder()
    (work / "f").write_text("mine")
    out = {"a_file": work / "f", "foreign_folder": work, "under_a_file": work / "f" / "out"}[where]
    fuzz.check(f"bad --out ({where})", work, seeds.tflite, out=out, names=("--out",))
    assert (work / "f").read_text() == "mine"


# --- a real process ----------------------------------------------------------------------

def _subprocess_inputs(seeds, work: Path) -> dict[str, tuple[Path, Path | None]]:
    data = seeds.tflite.read_bytes()
    model = _onnx_model(seeds)
    model.graph.node[0].input[0] = model.graph.node[-1].output[0]
    obj = work / "objects.npz"
    np.savez(obj, x=np.array([object()] * 3, dtype=object))
    so = seeds.module._single_op()
    return {
        "truncated_tflite": (_write(work, "cut.tflite", data[: len(data) // 2]), None),
        "random_onnx": (_write(work, "rand.onnx", bytes(range(256)) * 3), None),
        "cycle_onnx": (_write(work, "cycle.onnx", model.SerializeToString()), None),
        "huge_tflite": (so.write_model(work / "huge.tflite", "RELU", [so.T((1 << 30, 1 << 30), scale=0.1)],
                                       so.T((1 << 30, 1 << 30), scale=0.1)), None),
        "object_npz": (seeds.tflite, obj),
    }


@pytest.mark.parametrize("case", ["truncated_tflite", "random_onnx", "cycle_onnx", "huge_tflite",
                                  "object_npz"])
def test_real_process_exits_2_with_one_line(seeds, tmp_path, fuzz_cases, case):
    """``python -m tinyshare check`` in a child: no hang (timeout), no crash, one line."""
    work = tmp_path / "work"
    work.mkdir()
    model, data = _subprocess_inputs(seeds, work)[case]
    before = _listing(work)
    argv = [sys.executable, "-m", "tinyshare", "check", str(model), "--board",
            "nano33-ble-sense", "--out", str(work / "out")]
    argv += ["--data", str(data)] if data is not None else []
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=work, timeout=120,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    fuzz_cases[f"subprocess {case}: exit {proc.returncode}"] += 1
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("tinyshare: error: "), lines
    assert (data or model).name in lines[0]
    assert proc.stdout == "" and _listing(work) == before


# --- no unpickling anywhere --------------------------------------------------------------

def _calls(tree: ast.AST, module: str, attr: str):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr == attr and isinstance(node.func.value, ast.Name) \
                and node.func.value.id == module:
            yield node


def _sources():
    for folder in ("tinyshare", "tests", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            yield path, ast.parse(path.read_text(), filename=str(path))


def _keyword(call: ast.Call, name: str):
    kw = next((k for k in call.keywords if k.arg == name), None)
    return None if kw is None or not isinstance(kw.value, ast.Constant) else kw.value.value


def test_torch_load_always_uses_weights_only():
    """Every ``torch.load(...)`` in the code base passes ``weights_only=True``."""
    bad = [f"{path.relative_to(ROOT)}:{call.lineno}" for path, tree in _sources()
           for call in _calls(tree, "torch", "load") if _keyword(call, "weights_only") is not True]
    assert bad == [], f"torch.load without weights_only=True: {bad}"


def test_numpy_load_never_allows_pickle():
    """No ``np.load(..., allow_pickle=True)`` anywhere; the user-data loader passes False."""
    bad = [f"{path.relative_to(ROOT)}:{call.lineno}" for path, tree in _sources()
           for mod in ("np", "numpy") for call in _calls(tree, mod, "load")
           if _keyword(call, "allow_pickle") is not False and any(
               k.arg == "allow_pickle" for k in call.keywords)]
    assert bad == [], f"np.load with allow_pickle: {bad}"
    npz = (ROOT / "tinyshare" / "data" / "npz.py").read_text()
    assert "allow_pickle=False" in npz and "allow_pickle=True" not in npz


# --- the crashes the fuzzing found, pinned -----------------------------------------------

def _edited_tflite(seeds, work: Path, edit) -> Path:
    """The seed .tflite with ``edit(model)`` applied through the schema's object API."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    model = s.ModelT.InitFromPackedBuf(seeds.tflite.read_bytes(), 0)
    edit(model.subgraphs[0].tensors)
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return _write(work, "edited.tflite", bytes(b.Output()))


def _set(tensor, **fields):
    for key, value in fields.items():
        setattr(tensor, key, value)


FOUND = {  # what each crashed with before the fix
    # LiteRT's get_input_details: UnicodeDecodeError
    "non_utf8_name": (lambda t: _set(t[0], name=b"\xf0(x"), "is not UTF-8"),
    # LiteRT's invoke: RuntimeError "Input tensor 1 lacks data"
    "weights_without_data": (lambda t: _set(t[1], buffer=0), "holds no data"),
    # check.json: ValueError "Out of range float values are not JSON compliant: nan"
    "nan_input_scale": (lambda t: _set(t[0].quantization, scale=[float("nan")]), "scale nan"),
    # agreement: ValueError "operands could not be broadcast" (TFLM keeps the declared shape)
    "declared_output_shape": (lambda t: _set(t[3], shape=[1, 752]), "shapes are inconsistent"),
}


@pytest.mark.parametrize("found,board", [
    *((f, b) for f in FOUND if f != "declared_output_shape" for b in BOARDS),
    ("declared_output_shape", "nano33-ble-sense"),  # LiteRT alone recomputes it: no clash
])
def test_found_crashes_now_exit_2(fuzz, seeds, found, board):
    edit, needle = FOUND[found]
    work = fuzz.folder()
    model = _edited_tflite(seeds, work, edit)
    fuzz.check(f"found: {found}", work, model, board, data=seeds.data)
    err = fuzz.last_error
    assert needle in err, err


def test_rich_markup_in_file_and_tensor_names_is_printed_verbatim(fuzz, seeds):
    """A tensor named ``[/x]`` in a FAIL reason and a path ``.../m[/b].tflite``: before,
    rich read them as markup and raised ``MarkupError`` (a traceback on exit 1)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    work = fuzz.folder()
    (work / "m[").mkdir()  # the path reads .../m[/b].tflite
    model = seeds.module.gelu_tflite(work / "m[" / "b].tflite")  # GELU: TFLM lacks it
    m = s.ModelT.InitFromPackedBuf(model.read_bytes(), 0)
    m.subgraphs[0].tensors[1].name = b"[/x]"
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    model.write_bytes(bytes(b.Output()))
    assert fuzz.check("markup in names", work, model, "nano33-ble-sense", strict=False) == 1
    assert "'[/x]'" in fuzz.last_error and "GELU" in fuzz.last_error
