"""Pre-deployment op check: does a board runtime support every (op code, version) a model uses?

What is checked, and how, is read from the runtime capability table
(``tinyshare.targets.runtimes.registry``):

* ``op_check = "tflm-resolver"`` (TFLM): every op code must be registered by the TFLM
  build's op resolver (probed once per process, ``tflm_registered_ops``);
* ``op_check = "host-run"`` (LiteRT, onnxruntime, tflite-runtime): not checked statically;
  the host validation run of the model proves support;
* ``max_op_versions``, where the table declares it for a runtime build, bounds the version
  of each listed op. This tflite-micro build's resolver ignores versions, so its entry
  declares none; a table for an older build (field case C5: TRANSPOSE only up to version 1)
  makes a model using TRANSPOSE version 2 fail here, before anything is flashed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tinyshare.errors import ModelFileError
from tinyshare.targets.runtimes.registry import RUNTIMES, RuntimeSpec

if TYPE_CHECKING:
    from tinyshare.export.inspect import ModelInfo
    from tinyshare.registry import Registry

__all__ = ["OpSupport", "op_support"]

OpVersion = tuple[str, int | None]


@dataclass(frozen=True)
class OpSupport:
    """Whether one runtime supports every op of one model, with the reasons when it does not.

    Attributes:
        runtime: the runtime's table name, e.g. ``"tflm"``.
        ok: no op is missing and no op version is above a declared maximum.
        missing_ops: op codes the runtime does not register, sorted.
        missing_nodes: ``(op code, op index, first output tensor)`` of every node using a
            missing op, in graph order.
        version_violations: ``(op code, version used, highest version declared)`` for each
            op above the table's ``max_op_versions``, sorted.
        version_policy: the table's op-version policy, e.g.
            ``"versions not checked by the resolver"``.
        pairs: every distinct ``(op code, version)`` the model uses, sorted.
        checked_statically: the op codes were compared with a registered-op list (TFLM);
            False where the table leaves op support to the host run.
        checked_against: what the op codes were compared with, e.g.
            ``"tflite-micro 0.dev20261023 op resolver (host build)"``; ``""`` when not
            checked statically.
    """

    runtime: str
    ok: bool
    missing_ops: tuple[str, ...]
    missing_nodes: tuple[tuple[str, int, str], ...]
    version_violations: tuple[tuple[str, int, int], ...]
    version_policy: str
    pairs: tuple[OpVersion, ...]
    checked_statically: bool
    checked_against: str

    @property
    def reasons(self) -> tuple[str, ...]:
        """One sentence per violation, naming the op and the versions; empty when ``ok``."""
        nodes = {op: [f"op {i} '{name}'" for o, i, name in self.missing_nodes if o == op]
                 for op in self.missing_ops}
        return (
            *(f"{op} ({', '.join(nodes[op]) or 'no node'}) is not registered by "
              f"{self.checked_against}" for op in self.missing_ops),
            *(f"{op} version {used} is used; {self.runtime} registers {op} only up to version {top}"
              for op, used, top in self.version_violations),
        )

    def describe(self) -> str:
        """One line for a report: the verdict's reasons (or what was checked) and the pairs."""
        used = ", ".join(_pair_text(p) for p in self.pairs) or "no ops"
        if not self.ok:
            return f"{self.runtime}: " + "; ".join(self.reasons) + f" (model uses {used})"
        if not self.checked_statically:
            return (f"{self.runtime}: ops not checked statically ({self.version_policy}); "
                    f"model uses {used}")
        return (f"{self.runtime}: {self.checked_against} registers every op used: {used} "
                f"(op versions: {self.version_policy})")


def _pair_text(pair: OpVersion) -> str:
    op, version = pair
    return op if version is None else f"{op} v{version}"


def _sorted_pairs(pairs: set[OpVersion]) -> tuple[OpVersion, ...]:
    return tuple(sorted(pairs, key=lambda p: (p[0], -1 if p[1] is None else p[1])))


def op_support(
    model_info: ModelInfo,
    runtime_name: str,
    *,
    runtimes: Registry[RuntimeSpec] = RUNTIMES,
) -> OpSupport:
    """Check a model's ops and op versions against what a runtime registers.

    Args:
        model_info: the model file read back (``tinyshare.export.inspect.inspect_model``).
        runtime_name: a runtime in the table, e.g. ``"tflm"`` (a board's ``runtimes``).
        runtimes: the capability table to read (the packaged ``RUNTIMES`` by default; pass
            another, e.g. one describing an older build, to check against it).

    Returns:
        ``OpSupport``; ``ok`` is False when an op is missing or an op version is above
        the table's declared maximum, and ``reasons`` name each.

    Raises:
        BoardError: an unknown runtime name (the message lists the known names).
        ModelFileError: the model's format is not the one the runtime runs.
        RuntimeUnavailableError: the TFLM op probe cannot run (tflite-micro missing).
    """
    spec = runtimes.get(runtime_name)
    if model_info.format != spec.model_format:
        raise ModelFileError(f"{model_info.path.name}: {spec.name} runs {spec.model_format} models, "
                             f"not {model_info.format}")
    pairs = _sorted_pairs(model_info.op_versions())
    if spec.op_check == "tflm-resolver":
        from tinyshare.targets.runtimes.tflm import tflm_registered_ops

        registered = tflm_registered_ops()
        missing = tuple(sorted({op for op, _ in pairs} - registered.builtin_ops))
        checked_against = f"tflite-micro {registered.tflm_version} op resolver (host build)"
    else:
        missing, checked_against = (), ""
    missing_nodes = tuple((op.op_code, op.index, op.outputs[0] if op.outputs else "")
                          for op in model_info.ops if op.op_code in missing)
    violations = tuple(
        (op, version, spec.max_op_versions[op])
        for op, version in pairs
        if op in spec.max_op_versions and version is not None and version > spec.max_op_versions[op]
    )
    return OpSupport(
        runtime=spec.name,
        ok=not missing and not violations,
        missing_ops=missing,
        missing_nodes=missing_nodes,
        version_violations=violations,
        version_policy=spec.op_version_policy,
        pairs=pairs,
        checked_statically=spec.op_check == "tflm-resolver",
        checked_against=checked_against,
    )
