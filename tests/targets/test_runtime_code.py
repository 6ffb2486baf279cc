"""Runtime code size: the TFLM per-kernel estimate read from the wheel's host build, and
the installed size of Linux runtime packages.

The TFLM numbers are recomputed here independently where binutils is available: symbol
sizes from ``nm -S``, direct references from ``objdump -d``, names from ``c++filt``.
"""

from __future__ import annotations

import bisect
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tinyshare.errors import BoardError, RuntimeUnavailableError
from tinyshare.targets import _elf_code
from tinyshare.targets._mangled import qualified_name
from tinyshare.targets.runtime_code import (
    host_runtime_package_dir,
    image_runtime_package_dir,
    linux_runtime_code,
    linux_runtime_code_bytes,
    tflm_code_estimate,
    tflm_code_symbols,
    tflm_kernel_ops,
    tflm_library_path,
)

DIGITS_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "MAX_POOL_2D", "RESHAPE")

needs_tflm = pytest.mark.skipif(importlib.util.find_spec("tflite_micro") is None, reason="tflite-micro not installed")
needs_nm = pytest.mark.skipif(shutil.which("nm") is None, reason="binutils nm not on PATH")


def _tool(*argv: str) -> str:
    return subprocess.run(list(argv), capture_output=True, text=True, check=True, timeout=120).stdout


@pytest.fixture(scope="module")
def nm_sizes() -> dict[str, int]:
    """Mangled name -> st_size of every sized symbol, as ``nm -S`` prints it."""
    sizes = {}
    for line in _tool("nm", "--defined-only", "-S", str(tflm_library_path())).splitlines():
        parts = line.split()
        if len(parts) == 4:
            sizes[parts[3]] = int(parts[1], 16)
    return sizes


def _demangled(names) -> list[str]:
    return _tool_input("c++filt", "\n".join(names)).splitlines() if shutil.which("c++filt") else list(names)


def _tool_input(tool: str, text: str) -> str:
    return subprocess.run([tool], input=text, capture_output=True, text=True, check=True, timeout=60).stdout


# --- TFLM estimate -------------------------------------------------------------------------------

@needs_tflm
def test_digits_estimate_parts_add_up_and_are_labelled():
    est = tflm_code_estimate(DIGITS_OPS)
    assert sorted(est.per_kernel_bytes) == sorted(DIGITS_OPS)
    assert est.unmatched_ops == ()
    assert est.core_bytes > 0 and est.shared_helpers_bytes > 0
    assert all(n > 0 for n in est.per_kernel_bytes.values())
    assert est.total_bytes == est.core_bytes + est.shared_helpers_bytes + sum(est.per_kernel_bytes.values())
    assert est.method.startswith("Estimate, not measured on a board: x86-64")
    assert "Thumb-2" in est.method and "Likely direction: too high" in est.method
    assert "https://www.tensorflow.org/lite/microcontrollers" in est.source
    assert tflm_code_estimate([op.lower() for op in DIGITS_OPS] + ["ADD"]) is est  # cached per op set


@needs_tflm
@needs_nm
@pytest.mark.parametrize("ops", [("CONV_2D",), DIGITS_OPS], ids=["conv", "digits"])
def test_each_part_equals_the_nm_sizes_of_its_symbols(ops, nm_sizes):
    est = tflm_code_estimate(ops)
    parts = tflm_code_symbols(ops)
    assert parts.keys() == {"core", "shared", *ops}
    assert sum(nm_sizes[n] for n in parts["core"]) == est.core_bytes
    assert sum(nm_sizes[n] for n in parts["shared"]) == est.shared_helpers_bytes
    for op in ops:
        assert sum(nm_sizes[n] for n in parts[op]) == est.per_kernel_bytes[op]
    every = [n for names in parts.values() for n in names]
    assert len(every) == len(set(every))  # each function counted in one part only


@needs_tflm
def test_conv_kernel_holds_its_register_prepare_eval_parse_and_reference_code():
    names = {"::".join(qualified_name(n)) for n in tflm_code_symbols(["CONV_2D"])["CONV_2D"]}
    for want in ("tflite::micro::Register_CONV_2D", "tflite::micro::ConvPrepare",
                 "tflite::micro::(anonymous namespace)::ConvEval", "tflite::micro::ParseConv2D",
                 "tflite::micro::CalculateOpDataConv", "tflite::micro::reference_integer_ops::ConvPerChannel"):
        assert want in names


@needs_tflm
def test_helpers_of_two_used_kernels_are_shared_once():
    populate = "tflite::micro::PopulateConvolutionQuantizationParams"
    alone = tflm_code_symbols(["CONV_2D"])
    both = tflm_code_symbols(["CONV_2D", "DEPTHWISE_CONV_2D"])
    assert populate in {"::".join(qualified_name(n)) for n in alone["CONV_2D"]}
    assert populate not in {"::".join(qualified_name(n)) for n in both["CONV_2D"] + both["DEPTHWISE_CONV_2D"]}
    assert populate in {"::".join(qualified_name(n)) for n in both["shared"]}
    assert tflm_code_estimate(["CONV_2D"]).shared_helpers_bytes == 0
    conv, dw = tflm_code_estimate(["CONV_2D"]), tflm_code_estimate(["DEPTHWISE_CONV_2D"])
    pair = tflm_code_estimate(["CONV_2D", "DEPTHWISE_CONV_2D"])
    assert pair.total_bytes < conv.total_bytes + dw.total_bytes - pair.core_bytes


@needs_tflm
def test_a_kernel_the_model_does_not_use_is_not_counted():
    conv = tflm_code_estimate(["CONV_2D"])
    names = [n for part in tflm_code_symbols(["CONV_2D"]).values() for n in part]
    assert not [n for n in names if "Softmax" in n or "SOFTMAX" in n or "Register_ADD" in n]
    with_softmax = tflm_code_estimate(["CONV_2D", "SOFTMAX"])
    assert set(conv.per_kernel_bytes) == {"CONV_2D"}
    assert with_softmax.total_bytes > conv.total_bytes
    assert with_softmax.core_bytes == conv.core_bytes


@needs_tflm
def test_unknown_and_stub_ops_land_in_unmatched_ops():
    est = tflm_code_estimate(["CONV_2D", "NOT_AN_OP", "CUSTOM:ethos-u"])
    assert est.unmatched_ops == ("CUSTOM:ethos-u", "NOT_AN_OP")  # the wheel's Register_ETHOSU is a stub
    assert est.total_bytes == tflm_code_estimate(["CONV_2D"]).total_bytes
    assert "nor CUSTOM:ethos-u, NOT_AN_OP" in est.method
    detection = tflm_code_estimate(["CUSTOM:TFLite_Detection_PostProcess"])
    assert detection.per_kernel_bytes["CUSTOM:TFLite_Detection_PostProcess"] > 0


@needs_tflm
def test_core_is_the_framework_without_bindings_recording_or_decompression():
    core = tflm_code_symbols([])["core"]
    qualified = {"::".join(qualified_name(n)) for n in core}
    for want in ("tflite::micro::MicroInterpreter::Invoke", "tflite::micro::MicroInterpreter::AllocateTensors",
                 "tflite::micro::MicroAllocator::Create", "tflite::micro::GreedyMemoryPlanner::AddBuffer",
                 "MicroPrintf", "tflite::micro::MicroMutableOpResolver::FindOp"):
        assert want in qualified
    assert not [n for n in core if re.search(r"pybind11|Recording|PythonOpsResolver|InterpreterWrapper|ompress", n)]
    assert not [q for q in qualified if q.rsplit("::", 1)[-1].startswith(("Register_", "Parse"))]  # no kernel
    assert tflm_code_estimate([]).total_bytes == tflm_code_estimate([]).core_bytes > 10_000


@needs_tflm
def test_every_builtin_the_resolver_registers_has_a_kernel():
    from tinyshare.targets.runtimes.tflm import tflm_registered_ops

    assert tflm_registered_ops().builtin_ops <= set(tflm_kernel_ops())
    assert "ETHOSU" not in tflm_kernel_ops()


# --- reading the library -------------------------------------------------------------------------

@needs_tflm
@pytest.mark.skipif(shutil.which("objdump") is None, reason="binutils objdump not on PATH")
def test_direct_references_match_objdump():
    code = _elf_code.read_elf_code(tflm_library_path())
    starts = sorted(code.sizes)
    want: dict[int, set[int]] = {a: set() for a in starts}
    current = None
    insn = re.compile(r"^\s*([0-9a-f]+):\s+\S+.*?(?:# |\s)([0-9a-f]+) <[^>]*>$")
    for line in _tool("objdump", "-d", "--no-show-raw-insn", str(tflm_library_path())).splitlines():
        m = insn.match(line)
        if not m:
            continue
        at, target = int(m.group(1), 16), int(m.group(2), 16)
        if current is None or not current <= at < current + code.sizes[current]:
            i = bisect.bisect_right(starts, at) - 1
            current = starts[i] if i >= 0 and at < starts[i] + code.sizes[starts[i]] else None
        if current is not None and target in code.sizes and target != current and "$" not in line:
            want[current].add(target)
    got = {}
    sections = _elf_code._read_binutils(code.path).code
    for a in starts:  # direct references only: no pointer tables
        base, data = next((b, d) for b, d in sections if b <= a < b + len(d))
        got[a] = set(_elf_code._scan(data[a - base:a - base + code.sizes[a]], a, code.sizes, lambda t: []))
    diff = {hex(a): (sorted(map(hex, got[a] - want[a])), sorted(map(hex, want[a] - got[a])))
            for a in starts if got[a] != want[a]}
    assert diff == {}


@needs_tflm
@needs_nm
@pytest.mark.skipif(importlib.util.find_spec("elftools") is None, reason="pyelftools not installed")
def test_pyelftools_and_binutils_readers_agree(monkeypatch):
    with_pyelftools = _elf_code.read_elf_code(tflm_library_path())
    monkeypatch.setitem(sys.modules, "elftools", None)  # import elftools -> ImportError
    with_binutils = _elf_code.read_elf_code(tflm_library_path())
    assert with_pyelftools.reader.startswith("pyelftools ") and with_binutils.reader.startswith("binutils ")
    assert dict(with_pyelftools.sizes) == dict(with_binutils.sizes)
    assert dict(with_pyelftools.names) == dict(with_binutils.names)
    assert dict(with_pyelftools.references) == dict(with_binutils.references)


@needs_tflm
def test_no_reader_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "elftools", None)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RuntimeUnavailableError, match=r"pyelftools \(pip install pyelftools==0.33\) or binutils"):
        _elf_code.read_elf_code(tflm_library_path())


@needs_tflm
@pytest.mark.skipif(shutil.which("objcopy") is None, reason="binutils objcopy not on PATH")
def test_a_stripped_library_is_refused(tmp_path):
    stripped = tmp_path / "stripped.so"
    subprocess.run(["objcopy", "--strip-all", str(tflm_library_path()), str(stripped)], check=True, timeout=60)
    with pytest.raises(RuntimeUnavailableError, match="no .symtab"):
        _elf_code.read_elf_code(stripped)


def test_qualified_name_reads_mangled_names():
    assert qualified_name("_ZNK6tflite5micro16MicroInterpreter5inputEm") == (
        "tflite", "micro", "MicroInterpreter", "input")
    assert qualified_name("_ZN6tflite5micro16Register_CONV_2DEv") == ("tflite", "micro", "Register_CONV_2D")
    assert qualified_name("_ZN6tflite5micro12_GLOBAL__N_18ConvEvalEPNS0_13TfLiteContextEPNS0_10TfLiteNodeE") == (
        "tflite", "micro", "(anonymous namespace)", "ConvEval")
    # template arguments and parameter types are not part of the name
    assert qualified_name("_ZN6tflite5micro21GetOptionalTensorDataIiEEPKT_PNS0_12MicroContextEPKNS0_16"
                          "TfLiteEvalTensorEPKNS0_21CompressionTensorDataEi") == (
        "tflite", "micro", "GetOptionalTensorData")
    assert qualified_name("_ZN6tflite5micro22MicroMutableOpResolverILj200EE10AddBuiltinENS_15BuiltinOperatorE") == (
        "tflite", "micro", "MicroMutableOpResolver", "AddBuiltin")
    assert qualified_name("_ZN6tflite5micro16MicroInterpreterD2Ev") == (
        "tflite", "micro", "MicroInterpreter", "~MicroInterpreter")
    assert qualified_name("_ZThn8_N6tflite5micro26SingleArenaBufferAllocatorD1Ev.cold") == (
        "tflite", "micro", "SingleArenaBufferAllocator", "~SingleArenaBufferAllocator")
    assert qualified_name("_Z11MicroPrintfPKcz") == ("MicroPrintf",)
    assert qualified_name("DebugLog") == ("DebugLog",)


@needs_tflm
@needs_nm
@pytest.mark.skipif(shutil.which("c++filt") is None, reason="c++filt not on PATH")
def test_qualified_name_agrees_with_cxxfilt_on_every_function():
    code = _elf_code.read_elf_code(tflm_library_path())
    mangled = sorted({n for names in code.names.values() for n in names if n.startswith("_Z")})
    wrong = []
    for name, text in zip(mangled, _demangled(mangled), strict=True):
        if re.search(r"lambda|operator|\{", text):
            continue  # forms qualified_name does not read (and no matching relies on)
        if qualified_name(name) != _cxxfilt_qualified(text):
            wrong.append((name, text))
    assert wrong == []


def _cxxfilt_qualified(text: str) -> tuple[str, ...]:
    """``void a::b<int>::c(int) const [clone .isra.0]`` -> ``("a", "b", "c")``."""
    text = re.sub(r" \[clone [^\]]*\]|\[abi:\w+\]", "", text)
    text = re.sub(r"^(non-)?virtual thunk to ", "", text).replace("(anonymous namespace)", "@")
    depth, name = 0, ""
    for ch in text:
        if ch in "<>":
            depth += 1 if ch == "<" else -1
        elif depth == 0:
            if ch == "(":
                break
            name += ch
    return tuple(p.replace("@", "(anonymous namespace)") for p in name.split(" ")[-1].split("::"))


# --- Linux packages ------------------------------------------------------------------------------

def test_linux_runtime_code_bytes_counts_libraries_and_python_sources(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "_core.so").write_bytes(b"x" * 10)
    (pkg / "libthing.so.1.32.0").write_bytes(b"x" * 20)
    (pkg / "__init__.py").write_bytes(b"x" * 5)
    (pkg / "sub" / "util.py").write_bytes(b"x" * 3)
    (pkg / "sub" / "util.pyc").write_bytes(b"x" * 100)  # bytecode: not counted
    (pkg / "model.bin").write_bytes(b"x" * 7)  # data: not counted
    (pkg / "notes.so.txt").write_bytes(b"x" * 11)  # not a library name
    os.link(pkg / "_core.so", pkg / "_core_again.so")  # a hard link: once
    (pkg / "link.so").symlink_to(pkg / "libthing.so.1.32.0")  # a symlink: not followed
    assert linux_runtime_code_bytes(pkg) == 10 + 20 + 5 + 3
    with pytest.raises(RuntimeUnavailableError, match="does not exist"):
        linux_runtime_code_bytes(tmp_path / "missing")


def test_host_package_dirs():
    for runtime, top in (("litert", "ai_edge_litert"), ("onnxruntime", "onnxruntime")):
        found = host_runtime_package_dir(runtime)
        if importlib.util.find_spec(top) is not None:
            assert found is not None and found.name == top and (found / "__init__.py").is_file()
    if importlib.util.find_spec("tflite_runtime") is None:
        assert host_runtime_package_dir("tflite-runtime") is None
        assert linux_runtime_code("tflite-runtime") is None
    with pytest.raises(BoardError, match="tflm_code_estimate"):
        host_runtime_package_dir("tflm")
    with pytest.raises(BoardError, match="known: litert, onnxruntime, tflite-runtime"):
        host_runtime_package_dir("tensorrt")


@pytest.mark.skipif(importlib.util.find_spec("ai_edge_litert") is None, reason="ai-edge-litert not installed")
def test_host_litert_code_is_labelled_as_the_x86_64_wheel():
    code = linux_runtime_code("litert")
    assert code.package_dir == host_runtime_package_dir("litert")
    assert code.code_bytes == linux_runtime_code_bytes(code.package_dir) == code.shared_library_bytes + code.python_bytes
    assert code.machine == "x86_64" and code.wheel.startswith("ai-edge-litert ")
    assert "not measured on an ARM image" in code.method and "*.so" in code.method


def _fake_image(root: Path, arch: str = "arm64", complete: bool = True) -> Path:
    site = root / "site" / "litert" / "ai_edge_litert"
    site.mkdir(parents=True)
    (site / "libLiteRt.so").write_bytes(b"x" * 1000)
    (site / "interpreter.py").write_bytes(b"x" * 40)
    (root / "site" / "litert" / "numpy").mkdir()
    (root / "site" / "litert" / "numpy" / "_core.so").write_bytes(b"x" * 500)  # a dependency: not counted
    wheel = {"file": "ai_edge_litert-2.3.0-cp311-cp311-manylinux_2_27_aarch64.whl", "sha256": "ab" * 32,
             "size_bytes": 1}
    numpy = {"file": "numpy-2.4.6-cp311-cp311-manylinux_2_27_aarch64.whl", "sha256": "cd" * 32, "size_bytes": 1}
    (root / "manifest.json").write_text(json.dumps({
        "spec": {"arch": arch, "runtimes": [{"name": "litert", "import_name": "ai_edge_litert.interpreter"}]},
        "wheels": {"litert": [numpy, wheel]}}))
    if complete:
        (root / "COMPLETE").write_text("key\n")
    return root


def test_device_image_package_is_the_boards_arm_wheel(tmp_path):
    root = _fake_image(tmp_path / "arm64-0123456789abcdef")
    assert image_runtime_package_dir(root, "litert") == root / "site" / "litert" / "ai_edge_litert"
    assert image_runtime_package_dir(root, "onnxruntime") is None
    code = linux_runtime_code("litert", root)
    assert code.code_bytes == 1040 and code.shared_library_bytes == 1000 and code.python_bytes == 40
    assert code.machine == "aarch64"
    assert code.wheel == "ai_edge_litert-2.3.0-cp311-cp311-manylinux_2_27_aarch64.whl"
    assert "device image arm64-0123456789abcdef" in code.method and "sha256 abababababab" in code.method
    assert linux_runtime_code("onnxruntime", root) is None


def test_an_incomplete_image_is_refused(tmp_path):
    root = _fake_image(tmp_path / "arm64-x", complete=False)
    with pytest.raises(RuntimeUnavailableError, match="not a complete device image"):
        image_runtime_package_dir(root, "litert")
