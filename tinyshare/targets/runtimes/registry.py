"""The runtime capability table: which runtimes a board may name, and what each one can do.

The table is data (``_TABLE`` below), validated into frozen ``RuntimeSpec`` entries and
registered in ``RUNTIMES``, the project's generic ``Registry``. Dispatch reads it:

* board profiles check their ``runtimes`` names and OS against it (``tinyshare.targets.board``);
* the report picks the host validation runs that stand for a board's runtimes
  (``host_runs_for``);
* the pre-deployment op check reads each runtime's op-support policy and any declared
  op-version limits (``tinyshare.targets.op_support``).

Importing this module is cheap: it imports no runtime, no numpy and no pydantic.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, get_args

from tinyshare.errors import BoardError
from tinyshare.registry import Registry

__all__ = ["OS_NAMES", "RUNTIMES", "RuntimeSpec", "host_runs_for", "runtime_registry"]

ModelFormat = Literal["tflite", "onnx"]
OsName = Literal["linux", "baremetal"]
OpCheck = Literal["tflm-resolver", "host-run"]

MODEL_FORMATS: tuple[str, ...] = get_args(ModelFormat)
OS_NAMES: tuple[str, ...] = get_args(OsName)
OP_CHECKS: tuple[str, ...] = get_args(OpCheck)


@dataclass(frozen=True)
class RuntimeSpec:
    """One inference runtime a board may use, and what it supports.

    Attributes:
        name: registry key, as board profiles spell it (e.g. ``"tflm"``).
        display_name: human name, e.g. ``"TensorFlow Lite Micro"``.
        model_format: the model file it runs: ``"tflite"`` or ``"onnx"``.
        os: the board operating systems it runs on: ``{"linux"}``, ``{"baremetal"}`` or both.
        host_runs: names of the host validation runs (``RuntimeOutputs.runtime``) that stand
            for this runtime on a board, e.g. ``("litert-xnnpack",)``.
        op_check: how op support is established before deployment: ``"tflm-resolver"``
            (compare the model's ops with what the TFLM build's op resolver registers) or
            ``"host-run"`` (not checked statically; the host validation run proves it).
        op_version_policy: what the runtime does with op versions, in words, e.g.
            ``"versions not checked by the resolver"``.
        max_op_versions: op code -> highest version the runtime build registers, where the
            table declares it (e.g. ``{"TRANSPOSE": 1}`` for an older TFLM build); ops not
            listed are not version-checked. Empty by default.
        notes: anything a reader of the report should know about this entry.

    Raises:
        BoardError: a field holds a value outside its allowed set (the message names it).
    """

    name: str
    display_name: str
    model_format: ModelFormat
    os: frozenset[str]
    host_runs: tuple[str, ...]
    op_check: OpCheck = "host-run"
    op_version_policy: str = "checked by running the model on the host build"
    max_op_versions: Mapping[str, int] = field(default_factory=dict)
    notes: str = ""

    def __post_init__(self) -> None:
        where = f"runtime {self.name!r}"
        if not self.name or not self.display_name:
            raise BoardError(f"{where}: name and display_name must be non-empty")
        if self.model_format not in MODEL_FORMATS:
            raise BoardError(f"{where}: field 'model_format': expected one of {_quoted(MODEL_FORMATS)}, "
                             f"got {self.model_format!r}")
        os_names = frozenset(self.os)
        if not os_names or not os_names <= set(OS_NAMES):
            raise BoardError(f"{where}: field 'os': expected a non-empty set of {_quoted(OS_NAMES)}, "
                             f"got {sorted(os_names)}")
        host_runs = tuple(self.host_runs)
        if not host_runs or not all(isinstance(r, str) and r for r in host_runs):
            raise BoardError(f"{where}: field 'host_runs': expected at least one run name, got {host_runs!r}")
        if self.op_check not in OP_CHECKS:
            raise BoardError(f"{where}: field 'op_check': expected one of {_quoted(OP_CHECKS)}, "
                             f"got {self.op_check!r}")
        limits = dict(self.max_op_versions)
        bad = {op: v for op, v in limits.items() if type(v) is not int or v < 1}
        if bad:
            raise BoardError(
                f"{where}: field 'max_op_versions': expected positive integer versions, got {bad}")
        object.__setattr__(self, "os", os_names)
        object.__setattr__(self, "host_runs", host_runs)
        object.__setattr__(self, "max_op_versions", MappingProxyType(limits))


def _quoted(names: Iterable[str]) -> str:
    return ", ".join(repr(n) for n in names)


# The capability table. host_runs name the host (x86_64) runs of VALIDATE that stand for the
# runtime on a board until emulated runs of the board's own build exist.
_TABLE: tuple[RuntimeSpec, ...] = (
    RuntimeSpec(
        name="litert",
        display_name="LiteRT (ai-edge-litert)",
        model_format="tflite",
        os=frozenset({"linux"}),
        host_runs=("litert-xnnpack",),
        notes="A Linux board runs LiteRT's default op resolver, which applies the XNNPACK "
              "delegate; the host run uses the same resolver.",
    ),
    RuntimeSpec(
        name="onnxruntime",
        display_name="ONNX Runtime",
        model_format="onnx",
        os=frozenset({"linux"}),
        host_runs=("onnxruntime[ORT_ENABLE_ALL]", "onnxruntime[ORT_DISABLE_ALL]"),
        notes="Run at both graph-optimization levels; a difference between them is a finding "
              "(field case C3).",
    ),
    RuntimeSpec(
        name="tflite-runtime",
        display_name="TensorFlow Lite runtime (tflite-runtime)",
        model_format="tflite",
        os=frozenset({"linux"}),
        host_runs=("litert-ref",),
        notes="tflite-runtime's builtin kernels are stood in for by LiteRT's builtin (reference) "
              "kernels on the host until emulated runs of the board's tflite-runtime exist.",
    ),
    RuntimeSpec(
        name="tflm",
        display_name="TensorFlow Lite Micro",
        model_format="tflite",
        os=frozenset({"baremetal", "linux"}),
        host_runs=("tflm",),
        op_check="tflm-resolver",
        op_version_policy="versions not checked by the resolver",
        notes="Linked into firmware as a library. This tflite-micro build's op resolver finds "
              "a builtin op by code alone (a CONV_2D version 99 resolves), so op versions are "
              "checked only where this table declares max_op_versions.",
    ),
)


def runtime_registry(specs: Iterable[RuntimeSpec]) -> Registry[RuntimeSpec]:
    """Build a runtime registry (a capability table) from specs, e.g. an older build's table.

    Raises:
        BoardError: two specs share a name.
    """
    registry: Registry[RuntimeSpec] = Registry("runtime", BoardError)
    for spec in specs:
        registry.register(spec.name, spec)
    return registry


RUNTIMES: Registry[RuntimeSpec] = runtime_registry(_TABLE)


def host_runs_for(
    runtime_names: Iterable[str], runtimes: Registry[RuntimeSpec] = RUNTIMES
) -> tuple[str, ...]:
    """The host validation runs that stand for the given board runtimes.

    Args:
        runtime_names: board runtime names, e.g. ``board.runtimes``.
        runtimes: the capability table to read (the packaged ``RUNTIMES`` by default).

    Returns:
        Run names in the order the runtimes and their ``host_runs`` list them, each once,
        e.g. ``("litert-xnnpack", "onnxruntime[ORT_ENABLE_ALL]", "onnxruntime[ORT_DISABLE_ALL]")``.

    Raises:
        BoardError: an unknown runtime name (the message lists the known names).
    """
    runs: dict[str, None] = {}
    for name in runtime_names:
        runs.update(dict.fromkeys(runtimes.get(name).host_runs))
    return tuple(runs)
