"""How much flash a runtime's code takes: TFLM per used kernel (an estimate), Linux packages.

TFLM (``tflm_code_estimate``): a firmware links TFLM as a library with
``--gc-sections``, so it keeps the framework core and the code reachable from the kernels
its op resolver registers. The estimate reads the same structure out of the host build
the ``tflite-micro`` wheel ships (``tflite_micro/python/tflite_micro/_runtime.so``, x86-64
with a symbol table), at run time:

* functions and their sizes come from the symbol table; what each function references
  (calls, jumps, address loads, vtables) from its bytes and the dynamic relocations
  (``tinyshare.targets._elf_code``);
* **core** = everything reachable from ``MicroInterpreter`` and ``MicroMutableOpResolver``
  (allocator, memory planners, flatbuffer reading, ``MicroPrintf``/``DebugLog``);
* **kernel** of an op = everything reachable from the op's ``Register_<OP>()`` and from the
  flatbuffer parser the resolver registers with it, minus the core. Which ``Register_``
  function and parser belong to an op is read from the resolver's registration code
  (``PythonOpsResolver``'s constructor: each ``Register_X()`` call is followed by the
  ``ParseX`` it passes); ``_REUSED_PARSERS`` names the parsers the compiler kept in a
  register instead of loading them again;
* code reachable from two or more used kernels (and not from the core) is counted once,
  as **shared kernel helpers**;
* the Python bindings, the recording allocator and unused kernels are not reachable from
  these roots, so they are not counted; tensor-decompression code (compiled in by the
  wheel's ``USE_TFLM_COMPRESSION``, off in a default firmware build) is cut out
  (``_COMPRESSION_RE``).

Op codes are spelled as ``ModelInfo`` spells them: ``"CONV_2D"``, ``"CUSTOM:<code>"``
(``_CUSTOM_OPS`` maps the custom codes TFLM's resolver knows to their kernels).

Linux boards (``linux_runtime_code``, in ``tinyshare.targets._package_code``): the
runtime's code is its installed package, from a device image's ARM wheel or, labelled as
such, the host's x86_64 wheel; ``linux_runtime_code_bytes`` says what is counted.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from tinyshare.artifacts.files import sha256_file

from tinyshare.errors import RuntimeUnavailableError
from tinyshare.targets._elf_code import ElfCode, read_elf_code
from tinyshare.targets._mangled import qualified_name
from tinyshare.targets._package_code import (
    LinuxRuntimeCode,
    host_runtime_package_dir,
    image_runtime_package_dir,
    linux_runtime_code,
    linux_runtime_code_bytes,
)

__all__ = ["CodeSizeEstimate", "LinuxRuntimeCode", "host_runtime_package_dir", "image_runtime_package_dir",
           "linux_runtime_code", "linux_runtime_code_bytes", "tflm_code_estimate", "tflm_code_symbols",
           "tflm_kernel_ops", "tflm_library_path"]

_CORE_CLASSES = {("tflite", "micro", "MicroInterpreter"), ("tflite", "micro", "MicroMutableOpResolver")}
_RESOLVER_CTOR = ("tflite", "PythonOpsResolver", "PythonOpsResolver")
# Ops whose registration passes a parser already loaded for an earlier op (TFLM's
# micro_mutable_op_resolver.h: AddAveragePool2D / AddMaxPool2D / AddL2Pool2D all pass
# ParsePool; the reductions pass ParseReducer). Used only where the registration code
# references no parser of its own.
_REUSED_PARSERS = {"AVERAGE_POOL_2D": "ParsePool", "MAX_POOL_2D": "ParsePool", "L2_POOL_2D": "ParsePool",
                   "MEAN": "ParseReducer", "SUM": "ParseReducer", "REDUCE_MAX": "ParseReducer",
                   "REDUCE_MIN": "ParseReducer", "REDUCE_PROD": "ParseReducer"}
# Custom op codes ("CUSTOM:<code>" in ModelInfo) -> the kernel TFLM's resolver registers for
# them (micro_mutable_op_resolver.h: AddEthosU, AddDetectionPostprocess, AddCircularBuffer).
_CUSTOM_OPS = {"ethos-u": "ETHOSU", "TFLite_Detection_PostProcess": "DETECTION_POSTPROCESS",
               "CIRCULAR_BUFFER": "CIRCULAR_BUFFER"}
# Identifiers of the tensor-decompression feature (DecompressionState, compression::Metadata,
# MicroContext::DecompressTensorToBuffer, DecodeState*, SetCustomDecodeRegistrations, ...).
_COMPRESSION_RE = re.compile(r"ompress|Decode|^compression$")

# Published TFLM figures for a cross-check (documentation, not measurements of this build).
_PUBLISHED = (
    "published cross-check: the TensorFlow Lite for Microcontrollers overview says the core "
    "runtime fits in 16 KB on an Arm Cortex-M3 (https://www.tensorflow.org/lite/microcontrollers); "
    "an earlier version of that overview gives 16 KB for the core and 22 KB with the operators of "
    "a speech keyword model (https://www.tensorflow.org/lite/microcontrollers/overview?hl=zh-cn). "
    "Those figures are for an older, smaller TFLM built for Thumb-2 and are not measurements of this build.")
_DIRECTION = (
    "Likely direction: too high for the code it counts. x86-64 instructions are longer than "
    "Thumb-2's 16/32-bit ones, pointers and size_t are 64-bit, and the host build is optimized for "
    "speed (inlined, cloned .isra/.constprop functions) where firmware is usually built with -Os. "
    "Partly offset by what is not counted: read-only data (strings, lookup tables, vtables), "
    "libc/libm/libgcc routines (memcpy, expf, and soft-float or 64-bit arithmetic helpers on cores "
    "without an FPU or divider), startup code and alignment padding. A firmware built with "
    "CMSIS-NN kernels links different (usually larger) conv, depthwise and fully-connected kernels.")


@dataclass(frozen=True)
class CodeSizeEstimate:
    """TFLM code a firmware links for a set of ops: an estimate, never a board measurement.

    Attributes:
        total_bytes: ``core_bytes + shared_helpers_bytes + sum(per_kernel_bytes.values())``.
        per_kernel_bytes: op code -> bytes of code only that op's kernel uses (its
            ``Register_``, Init/Prepare/Eval, parser and the reference templates it calls),
            for the used ops the resolver registers.
        shared_helpers_bytes: bytes of code two or more of the used kernels share
            (e.g. ``PopulateConvolutionQuantizationParams``, quantization utilities), once.
        core_bytes: bytes of the framework core every TFLM firmware links.
        method: how the numbers were made, the build they come from, and which way they
            are likely off for a Cortex-M build.
        source: the file and reader the sizes come from, and a published figure to compare.
        unmatched_ops: used op codes the resolver registers no kernel for (not counted).
        decompression_bytes: code of TFLM's tensor-decompression feature reachable from the
            used kernels and the core (USE_TFLM_COMPRESSION); not in ``total_bytes``: only a
            firmware that runs LUT-compressed models (DECODE) links it.
    """

    total_bytes: int
    per_kernel_bytes: Mapping[str, int]
    shared_helpers_bytes: int
    core_bytes: int
    method: str
    source: str
    unmatched_ops: tuple[str, ...]
    decompression_bytes: int = 0


@dataclass(frozen=True)
class _TflmCode:
    code: ElfCode
    core: frozenset[int]
    blocked: frozenset[int]
    kernels: Mapping[str, tuple[int, ...]]  # op code -> roots (Register_ function, parser)
    library: Path
    sha256: str
    version: str


def tflm_library_path() -> Path:
    """The host TFLM build the estimate reads: the wheel's ``_runtime.so``.

    Raises:
        RuntimeUnavailableError: tflite-micro is not installed or ships no ``_runtime.so``.
    """
    spec = importlib.util.find_spec("tflite_micro")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeUnavailableError("tflite-micro is not installed; the TFLM code estimate reads its _runtime.so")
    path = Path(spec.submodule_search_locations[0]) / "python" / "tflite_micro" / "_runtime.so"
    if not path.is_file():
        raise RuntimeUnavailableError(f"tflite-micro ships no {path}; the TFLM code estimate cannot be made")
    return path


@functools.lru_cache(maxsize=1)
def _tflm_code() -> _TflmCode:
    library = tflm_library_path()
    code = read_elf_code(library)
    names = {a: qualified_name(code.name(a)) for a in code.sizes}
    blocked = frozenset(a for a, q in names.items() if any(_COMPRESSION_RE.search(i) for i in q))
    core_roots = [a for a, q in names.items() if tuple(q[:3]) in _CORE_CLASSES and len(q) > 3]
    ctors = [a for a, q in names.items() if q == _RESOLVER_CTOR]
    if not core_roots or not ctors:
        raise RuntimeUnavailableError(f"{library} has no MicroInterpreter or op resolver symbols; "
                                      "the TFLM code estimate cannot be made")
    kernels = _kernel_roots(code, names, max(ctors, key=lambda a: code.sizes[a]))
    return _TflmCode(code=code, core=code.reachable(core_roots, blocked), blocked=blocked,
                     kernels=MappingProxyType(kernels), library=library,
                     sha256=sha256_file(library),
                     version=importlib.metadata.version("tflite-micro"))


def _kernel_roots(code: ElfCode, names: Mapping[int, tuple[str, ...]], ctor: int) -> dict[str, tuple[int, ...]]:
    """op code -> (Register_ function, parsers), read from the resolver's registration code."""
    parsers = {q[-1]: a for a, q in names.items() if q[:2] == ("tflite", "micro") and len(q) == 3}
    kernels: dict[str, list[int]] = {}
    op = None
    for target in code.references[ctor]:
        last = names[target][-1] if names[target] else ""
        if last.startswith("Register_"):
            op = last.removeprefix("Register_")
            kernels.setdefault(op, []).append(target)
        elif last.startswith("Parse") and op is not None and target not in kernels[op]:
            kernels[op].append(target)
    for op, roots in kernels.items():
        if len(roots) == 1 and _REUSED_PARSERS.get(op) in parsers:
            roots.append(parsers[_REUSED_PARSERS[op]])
    # A Register_ function that references no code returns an empty registration: a stub
    # (this wheel's Register_ETHOSU), not a kernel.
    return {op: tuple(roots) for op, roots in sorted(kernels.items()) if code.references[roots[0]]}


def _kernel_of(op: str) -> str:
    """The resolver's kernel name for an op code: ``"CONV_2D"``; ``"CUSTOM:ethos-u"`` -> ``"ETHOSU"``."""
    return _CUSTOM_OPS.get(op.split(":", 1)[1], op) if op.startswith("CUSTOM:") else op


def _partition(ops: frozenset[str]) -> tuple[_TflmCode, dict[str, frozenset[int]], frozenset[int], tuple[str, ...]]:
    """(code, op -> its own functions, shared functions, unmatched ops) for the used ops."""
    tflm = _tflm_code()
    used = {op: tflm.kernels[_kernel_of(op)] for op in sorted(ops) if _kernel_of(op) in tflm.kernels}
    stop = tflm.blocked | tflm.core
    reach = {op: tflm.code.reachable(roots, stop) for op, roots in used.items()}
    uses = Counter(a for found in reach.values() for a in found)
    shared = frozenset(a for a, n in uses.items() if n > 1)
    own = {op: found - shared for op, found in reach.items()}
    return tflm, own, shared, tuple(sorted(ops - used.keys()))


def _op_set(op_codes: Iterable[str]) -> frozenset[str]:
    """Op codes as ``ModelInfo`` spells them: builtins upper-cased, ``CUSTOM:<code>`` kept."""
    ops = (str(op).strip() for op in op_codes)
    return frozenset("CUSTOM:" + op.split(":", 1)[1] if op.upper().startswith("CUSTOM:") else op.upper() for op in ops)


def tflm_code_estimate(op_codes: Iterable[str]) -> CodeSizeEstimate:
    """Estimate the TFLM code a Cortex-M firmware links for a model's ops.

    Args:
        op_codes: the model's builtin op codes, e.g. ``{"CONV_2D", "ADD"}`` (case and
            repeats do not matter).

    Returns:
        A ``CodeSizeEstimate`` in bytes of x86-64 code of the wheel's host build (cached
        per process and op set).

    Raises:
        RuntimeUnavailableError: tflite-micro is missing, or its library cannot be read
            (neither pyelftools nor binutils ``nm``/``readelf`` available, or stripped).
    """
    return _estimate(_op_set(op_codes))


@functools.lru_cache(maxsize=64)
def _estimate(ops: frozenset[str]) -> CodeSizeEstimate:
    tflm, own, shared, unmatched = _partition(ops)
    code = tflm.code
    per_kernel = {op: code.size_bytes(found) for op, found in own.items()}
    core_bytes, shared_bytes = code.size_bytes(tflm.core), code.size_bytes(shared)
    roots = [a for op in own for a in tflm.kernels[_kernel_of(op)]] + sorted(tflm.core)
    cut_bytes = code.size_bytes(code.reachable(roots) - code.reachable(roots, tflm.blocked))
    method = (
        f"Estimate, not measured on a board: x86-64 machine code of the host build of TFLM in the "
        f"tflite-micro {tflm.version} wheel ({tflm.library.name}, sha256 {tflm.sha256[:12]}), "
        "standing in for a Cortex-M (Thumb-2) build. Counted: the sizes of the functions a "
        "--gc-sections link keeps, i.e. those reachable through calls, jumps, address loads and "
        "vtables from MicroInterpreter and MicroMutableOpResolver (core) and from each used op's "
        "Register_ function and flatbuffer parser (kernels, minus the core); code reachable from "
        "two or more used kernels is counted once as shared kernel helpers. Not counted: the "
        "Python bindings, the recording allocator, unused kernels, and "
        f"{cut_bytes} bytes of tensor-decompression code this wheel compiles in "
        "(USE_TFLM_COMPRESSION, off in a default firmware build)"
        + (f", nor {', '.join(unmatched)}: this build registers no kernel code for them" if unmatched else "")
        + ". " + _DIRECTION)
    source = (f"symbol table, code bytes and dynamic relocations of {tflm.library} read with "
              f"{code.reader}; op -> Register_/parser from the op resolver's registration code. "
              f"This build's core: {core_bytes} bytes of x86-64 code; " + _PUBLISHED)
    return CodeSizeEstimate(
        total_bytes=core_bytes + shared_bytes + sum(per_kernel.values()),
        per_kernel_bytes=MappingProxyType(per_kernel), shared_helpers_bytes=shared_bytes,
        core_bytes=core_bytes, method=method, source=source, unmatched_ops=unmatched,
        decompression_bytes=cut_bytes)


def tflm_code_symbols(op_codes: Iterable[str]) -> Mapping[str, tuple[str, ...]]:
    """The functions behind ``tflm_code_estimate(op_codes)``, by part.

    Returns:
        ``"core"``, ``"shared"`` and each used op code -> the mangled names of the functions
        counted there (one name per function, by address); their ``st_size`` values add up
        to the estimate's ``core_bytes``, ``shared_helpers_bytes`` and ``per_kernel_bytes``.

    Raises:
        RuntimeUnavailableError: as ``tflm_code_estimate``.
    """
    tflm, own, shared, _ = _partition(_op_set(op_codes))
    parts = {"core": tflm.core, "shared": shared, **own}
    return MappingProxyType({part: tuple(tflm.code.name(a) for a in sorted(found)) for part, found in parts.items()})


def tflm_kernel_ops() -> tuple[str, ...]:
    """The kernels the host TFLM build's op resolver registers, by name, sorted.

    Builtin ops by op code (``"CONV_2D"``); custom kernels by their ``Register_`` name
    (``"DETECTION_POSTPROCESS"``, ``"CIRCULAR_BUFFER"``, the signal-library ops). Stubs that
    register no code (this wheel's ``ETHOSU``) are left out.

    Raises:
        RuntimeUnavailableError: as ``tflm_code_estimate``.
    """
    return tuple(_tflm_code().kernels)
