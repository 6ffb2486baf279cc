"""Read back what Vela writes for one model: its CSVs, its debug database and its stdout.

``tinyshare.targets.vela.run_vela`` runs Vela; this module turns the files into typed rows.
Formats (ethos-u-vela 5.2.0, C++ "regor" core):

* ``<model>_summary_<system config>.csv``: one row; memory in KiB (bytes / 1024);
* ``<model>_per-layer.csv``: one row per scheduled op, comma-joined without quoting;
* ``<model>_debug.xml``: CSV tables in CDATA; ``perf`` rows are the per-layer rows in the
  same order, with a ``source_id`` whose ``source`` row's ``ext_key`` is the TFLite
  operator index;
* stdout: ``Warning (supported operators) operator: OP, ofm: 'NAME'`` then ``Reason: ...``
  (and further detail lines) for every op that fails an Ethos-U check.
"""

from __future__ import annotations

import csv
import re
import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tinyshare.errors import ModelFileError, RuntimeUnavailableError

_WARNING_RE = re.compile(r"^Warning \(supported operators\) operator: (\S+), ofm: '(.*)'$")
_SEMANTIC_RE = re.compile(r"^Error: (\S+) '(.*)' Does not have valid TFLite Semantics\.$")
_KIB = 1024


@dataclass(frozen=True)
class VelaLayer:
    """One row of Vela's per-layer table: one op as Vela scheduled it.

    One TFLite op can give several rows (Vela splits a fused activation into its own op,
    which then costs 0 cycles), and ops Vela folds away (e.g. a RESHAPE that only
    relabels memory) give none: see ``VelaReport.elided_ops``.

    Attributes:
        tflite_op_index: index of the source op in the input model's (first) subgraph, the
            key to match our per-layer table; None if Vela did not say.
        tflite_op: the source op's builtin name, e.g. ``"DEPTHWISE_CONV_2D"``.
        vela_op: the op Vela runs, e.g. ``"Conv2D"``, ``"MemoryCopy"``; ``"Passthrough"``
            for an op left on the CPU.
        target: ``"npu"`` or ``"cpu"``.
        name: Vela's name for the op's output tensor (TFLite's, or derived from it).
        staging_sram_bytes: SRAM Vela stages for this op (its "Staging Usage"), bytes.
        cycles: estimated cycles of the op (NPU and memory transfers overlapped).
        npu_cycles: estimated NPU compute cycles.
        sram_access_cycles / dram_access_cycles / onchip_flash_access_cycles /
            offchip_flash_access_cycles: estimated memory access cycles per memory.
        macs: multiply-accumulates.
        mac_utilisation_pct: MACs / (cycles x MACs per cycle), percent; None for an op
            with no cycles of its own (fused into its neighbour, or on the CPU).
    """

    tflite_op_index: int | None
    tflite_op: str
    vela_op: str
    target: Literal["npu", "cpu"]
    name: str
    staging_sram_bytes: int
    cycles: int
    npu_cycles: int
    sram_access_cycles: int
    dram_access_cycles: int
    onchip_flash_access_cycles: int
    offchip_flash_access_cycles: int
    macs: int
    mac_utilisation_pct: float | None


@dataclass(frozen=True)
class VelaCpuOp:
    """An op Vela leaves on the CPU (TFLM runs it), with Vela's reason.

    Attributes:
        tflite_op_index: index of the op in the input model's (first) subgraph.
        op: its TFLite builtin name, e.g. ``"DEPTH_TO_SPACE"``.
        name: its first output tensor.
        reason: Vela's reason(s), one line; a check on a split-off fused activation is
            prefixed with that op (e.g. ``"RELU: ..."``).
    """

    tflite_op_index: int
    op: str
    name: str
    reason: str


@dataclass(frozen=True)
class VelaFiles:
    """The files Vela writes for one model into ``folder``.

    Attributes:
        folder: Vela's ``--output-dir``.
        stem: the model file's name without ``.tflite`` (Vela names its files after it).
        system_config: Vela's ``--system-config`` (part of the summary CSV's name).

    Every reader raises ``RuntimeUnavailableError`` when its file is missing.
    """

    folder: Path
    stem: str
    system_config: str

    @property
    def optimized(self) -> Path:
        """The optimized model, ``<stem>_vela.tflite``."""
        return self._existing(self.folder / f"{self.stem}_vela.tflite")

    def clear(self) -> None:
        """Delete Vela's earlier files for this model, so a failed run cannot leave stale ones."""
        for name in (f"{self.stem}_vela.tflite", f"{self.stem}_per-layer.csv",
                     f"{self.stem}_debug.xml", f"{self.stem}_summary_{self.system_config}.csv"):
            (self.folder / name).unlink(missing_ok=True)

    def read_summary(self) -> dict[str, str]:
        """The summary CSV's one row, column name -> text."""
        path = self._existing(self.folder / f"{self.stem}_summary_{self.system_config}.csv")
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
        if len(rows) != 1:
            raise RuntimeUnavailableError(f"{path}: expected one summary row, found {len(rows)}")
        return rows[0]

    def read_per_layer_csv(self) -> list[dict[str, str]]:
        """The per-layer CSV's rows, column name -> text, in execution order."""
        # Vela joins the fields with "," and quotes nothing; "Name" is the last column
        # and the only one that can hold a comma, so each line splits into len(header) fields.
        path = self._existing(self.folder / f"{self.stem}_per-layer.csv")
        lines = path.read_text().splitlines()
        header = lines[0].split(",")
        return [dict(zip(header, line.split(",", len(header) - 1), strict=True))
                for line in lines[1:] if line]

    def read_debug_tables(self) -> dict[str, list[dict[str, str]]]:
        """The debug database's tables: name -> rows (column name -> text)."""
        path = self._existing(self.folder / f"{self.stem}_debug.xml")
        tables = {}
        for table in ET.parse(path).getroot().iter("table"):
            rows = list(csv.reader((table.text or "").strip().splitlines()))
            tables[table.get("name", "")] = [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]
        return tables

    def _existing(self, path: Path) -> Path:
        if not path.is_file():
            raise RuntimeUnavailableError(f"vela finished but did not write {path}")
        return path


def kib_to_bytes(kib: str) -> int:
    """Bytes from a summary-CSV memory figure, which Vela writes as bytes / 1024."""
    return round(float(kib) * _KIB)  # Vela writes bytes / 1024


def tflite_ops(model: Path) -> list[tuple[str, tuple[str, ...]]]:
    """The ops of the model's first subgraph, read with Vela's bundled flatbuffer classes.

    Args:
        model: a ``.tflite`` file.

    Returns:
        ``(builtin name, output tensor names)`` per op, in order, e.g.
        ``("CONV_2D", ("conv1",))``; custom ops read ``"CUSTOM:<code>"``.

    Raises:
        ModelFileError: the flatbuffer cannot be walked.
    """
    from ethosu.vela.tflite.BuiltinOperator import BuiltinOperator
    from ethosu.vela.tflite.Model import Model

    names = {v: k for k, v in vars(BuiltinOperator).items() if k.isupper()}
    try:
        m = Model.GetRootAsModel(model.read_bytes(), 0)
        codes = []
        for i in range(m.OperatorCodesLength()):
            code = m.OperatorCodes(i)
            name = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "UNKNOWN")
            if name == "CUSTOM":
                name = f"CUSTOM:{(code.CustomCode() or b'').decode()}"
            codes.append(name)
        graph = m.Subgraphs(0)
        ops = []
        for j in range(graph.OperatorsLength()):
            op = graph.Operators(j)
            outs = tuple((graph.Tensors(op.Outputs(k)).Name() or b"").decode()
                         for k in range(op.OutputsLength()))
            ops.append((codes[op.OpcodeIndex()], outs))
    except (IndexError, ValueError, TypeError, AttributeError, struct.error) as exc:  # malformed flatbuffer
        raise ModelFileError(f"{model}: cannot read its operators ({type(exc).__name__})") from None
    return ops


def per_layer_rows(files: VelaFiles, ops: list[tuple[str, tuple[str, ...]]]
                   ) -> tuple[tuple[VelaLayer, ...], dict[str, int]]:
    """Vela's per-layer rows, each keyed to its source TFLite op index.

    Args:
        files: Vela's files for the model.
        ops: the model's ops (``tflite_ops``).

    Returns:
        The rows, and Vela's source-op id -> TFLite op index (every op Vela read).

    Raises:
        RuntimeUnavailableError: a file is missing, or the CSV and the debug database do
            not list the same rows.
        KeyError, ValueError: a column is missing or not a number (the caller wraps these).
    """
    tables = files.read_debug_tables()
    if "source" not in tables or "perf" not in tables:
        raise RuntimeUnavailableError(f"{files.folder}: Vela's debug database has no source/perf table")
    source_index = {r["id"]: int(r["ext_key"]) for r in tables["source"]}
    perf = tables["perf"]
    rows = files.read_per_layer_csv()
    if len(perf) != len(rows) or any(p["name"] != r["Name"] for p, r in zip(perf, rows, strict=False)):
        raise RuntimeUnavailableError(f"{files.folder}: Vela's per-layer CSV and debug database "
                                      "list different ops; cannot key the rows to TFLite ops")
    layers = []
    for p, r in zip(perf, rows, strict=True):
        index = source_index.get(p["source_id"])
        if index is not None and not 0 <= index < len(ops):
            index = None
        cycles = int(r["Op Cycles"])
        layers.append(VelaLayer(
            tflite_op_index=index, tflite_op=ops[index][0] if index is not None else "",
            vela_op=r["NNG Operator"], target="cpu" if r["Target"] == "CPU" else "npu",
            name=r["Name"], staging_sram_bytes=int(r["Staging Usage"]), cycles=cycles,
            npu_cycles=int(r["NPU"]), sram_access_cycles=int(r["SRAM AC"]),
            dram_access_cycles=int(r["DRAM AC"]), onchip_flash_access_cycles=int(r["OnFlash AC"]),
            offchip_flash_access_cycles=int(r["OffFlash AC"]), macs=int(r["MAC Count"]),
            mac_utilisation_pct=float(r["Util% (MAC)"]) if cycles and r["Target"] != "CPU" else None,
        ))
    return tuple(layers), source_index


def cpu_reasons(stdout: str) -> list[tuple[str, str, str]]:
    """Vela's supported-operator failures, from its stdout.

    Args:
        stdout: what Vela printed.

    Returns:
        ``(Vela's op name, output tensor name, reason)`` per failed check; the reason joins
        Vela's ``Reason:`` line and the constraint lines after it with ``"; "``.
    """
    found: list[tuple[str, str, str]] = []
    lines = stdout.splitlines()
    for i, line in enumerate(lines):
        match = _WARNING_RE.match(line) or _SEMANTIC_RE.match(line)
        if not match:
            continue
        detail = []
        for following in lines[i + 1:]:
            if not following.strip() or _WARNING_RE.match(following) or _SEMANTIC_RE.match(following):
                break
            detail.append(following.strip().removeprefix("Reason: "))
        found.append((match.group(1), match.group(2), "; ".join(detail) or "no reason given"))
    return found


def op_split(source_index: dict[str, int], layers: tuple[VelaLayer, ...],
             ops: list[tuple[str, tuple[str, ...]]], reasons: list[tuple[str, str, str]]
             ) -> tuple[tuple[VelaCpuOp, ...], tuple[int, ...]]:
    """Split the model's ops into CPU ops (with Vela's reasons) and folded-away NPU ops.

    An op is on the CPU when one of its rows is (Vela's "Passthrough"), or when Vela did not
    list it at all; every other op is compiled for the NPU.

    Args:
        source_index: Vela's source-op id -> TFLite op index (``per_layer_rows``).
        layers: the per-layer rows.
        ops: the model's ops (``tflite_ops``).
        reasons: Vela's failed checks (``cpu_reasons``), matched to ops by output tensor.

    Returns:
        The CPU ops in model order, and the indices of NPU ops with no per-layer row.
    """
    seen = set(source_index.values())
    with_rows = {layer.tflite_op_index for layer in layers}
    on_cpu = {layer.tflite_op_index for layer in layers if layer.target == "cpu"}
    unseen = {i for i in range(len(ops)) if i not in seen}  # not in Vela's op list: not compiled
    elided = tuple(i for i in range(len(ops)) if i in seen and i not in with_rows)
    cpu_ops = []
    for index in sorted(i for i in on_cpu | unseen if i is not None):
        op, outputs = ops[index]
        said = [(w_op, why) for w_op, ofm, why in reasons if ofm in outputs]
        text = " | ".join(why if w_op == op else f"{w_op}: {why}" for w_op, why in said)
        if index in unseen:
            text = text or "Vela did not list this op (not in its source ops)"
        cpu_ops.append(VelaCpuOp(index, op, outputs[0] if outputs else "",
                                 text or "Vela gave no reason (no supported-operators warning for it)"))
    return tuple(cpu_ops), elided
