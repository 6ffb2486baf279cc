"""VALIDATE stage: run the exported files on every host runtime and compare in LSB.

The int8 reference is LiteRT with its reference kernels (``BUILTIN_REF``) and no delegate.
The host runs use each runtime's own host build. With ``validation.emulate``, every Linux
board's runtimes also run from the board's device image under qemu-user
(``tinyshare.pipeline.emulate``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tinyshare.artifacts import atomic_write_json, atomic_write_npz, write_manifest
from tinyshare.config import RunConfig
from tinyshare.data.splits import DataSplits
from tinyshare.pipeline.codegen_check import run_codegen_checks
from tinyshare.pipeline.steps import ExportedModels, QuantizedPair, TrainedModel
from tinyshare.pipeline.train import Progress, predict, top1
from tinyshare.targets.runtimes.base import nchw_to_nhwc

if TYPE_CHECKING:
    from tinyshare.pipeline.codegen_check import CodegenCheck
    from tinyshare.pipeline.emulate import BoardEmulation
    from tinyshare.quantize.codebook import CodebookCheck
    from tinyshare.targets.agreement import Agreement
    from tinyshare.targets.runtimes.tflm import ArenaMeasurement
    from tinyshare.targets.vela import VelaReport

REFERENCE_RUNTIME = "litert-ref"


@dataclass(frozen=True)
class RuntimeCheck:
    """One runtime's int8 run on the test split, compared with the reference.

    Attributes:
        runtime: e.g. ``"tflm"``; version: the package version.
        model_file: the int8 file it ran; layout: "NHWC" or "NCHW" input.
        accuracy: top-1 on the test split, in [0, 1].
        agreement: ``tinyshare.targets.agreement.Agreement`` against the reference.
        host_wall_ms: host wall time for the whole split, model load included (never a
            device latency).
        n_outputs: K, output values per sample.
    """

    runtime: str
    version: str
    model_file: str
    layout: str
    accuracy: float
    agreement: Agreement
    host_wall_ms: float
    n_outputs: int


@dataclass(frozen=True)
class LutValidation:
    """TFLM on the LUT-compressed copies against TFLM on the uncompressed files.

    Attributes:
        model_file / stripped_model_file: the compressed copies (named, without names).
        arena: the compressed model's smallest working arena, measured like the
            uncompressed one (``find_arena_bytes`` on the named file); the decoded weights
            live in it.
        max_diff_lsb: largest |difference| of TFLM's int8 outputs, compressed named file
            against the uncompressed named file (must be 0).
        stripped_max_diff_lsb: the same for the two files without tensor names.
        n_values_differing: output values that differ over both comparisons.
        accuracy: TFLM top-1 of the compressed named file on the test samples.
    """

    model_file: str
    stripped_model_file: str
    arena: ArenaMeasurement
    max_diff_lsb: int
    stripped_max_diff_lsb: int
    n_values_differing: int
    accuracy: float

    @property
    def identical(self) -> bool:
        """Both compressed copies give exactly the uncompressed files' outputs."""
        return self.max_diff_lsb == 0 and self.stripped_max_diff_lsb == 0


@dataclass(frozen=True)
class ValidationResult:
    """All host runtime checks plus the TFLM arena of the int8 model.

    ``stripped_tflm_max_diff_lsb`` is the largest difference between TFLM's int8 outputs
    of the .tflite without tensor names and of the original (0 when they are identical).
    Every accuracy here is top-1 on the same ``n_samples`` test samples. The twin's int8
    accuracy is measured on LiteRT's reference kernels (the reference). With ``[cluster]``,
    ``codebook`` checks the int8 weights kept ≤ k values per channel and ``lut`` compares
    TFLM on the LUT-compressed copies with TFLM on the uncompressed files. ``codegen``
    holds, per bare-metal board, the generated C run under qemu-system-arm against TFLM
    (``tinyshare.pipeline.codegen_check``).
    """

    reference: str
    tolerance_lsb: int
    n_samples: int
    checks: dict[str, RuntimeCheck]
    float_pytorch_accuracy: float
    int8_pytorch_accuracy: float
    twin_float_pytorch_accuracy: float
    twin_int8_accuracy: float
    float_accuracy: dict[str, float]
    onnx_level_finding: str | None
    arena: ArenaMeasurement
    twin_arena: ArenaMeasurement
    stripped_tflm_max_diff_lsb: int
    emulation: dict[str, BoardEmulation] = field(default_factory=dict)
    vela: dict[str, VelaReport] = field(default_factory=dict)
    codebook: CodebookCheck | None = None
    lut: LutValidation | None = None
    codegen: dict[str, CodegenCheck] = field(default_factory=dict)


def validation_from_json(data: dict) -> ValidationResult:
    """The ``ValidationResult`` that ``validation.json`` holds (``data``, parsed), rebuilt
    with pydantic (resume: ``pipeline.reload``).

    Raises:
        pydantic.ValidationError: ``data`` does not describe a ``ValidationResult``.
    """
    from pydantic import TypeAdapter

    from tinyshare.pipeline.codegen_check import CodegenCheck
    from tinyshare.pipeline.emulate import BoardEmulation
    from tinyshare.quantize.codebook import CodebookCheck
    from tinyshare.targets.agreement import Agreement
    from tinyshare.targets.codegen import CortexMFigures, GeneratedModel
    from tinyshare.targets.runtimes.tflm import ArenaMeasurement
    from tinyshare.targets.vela import VelaReport

    adapter = TypeAdapter(ValidationResult)  # the types named only under TYPE_CHECKING
    adapter.rebuild(_types_namespace={
        t.__name__: t for t in (CodegenCheck, BoardEmulation, CodebookCheck, Agreement,
                                CortexMFigures, GeneratedModel, ArenaMeasurement, VelaReport)})
    return adapter.validate_python(data)


def validate_stage(
    cfg: RunConfig, trained: TrainedModel, exported: ExportedModels, quantized: QuantizedPair,
    splits: DataSplits, out: Path, progress: Progress | None = None, boards: tuple = (),
    key: str = "",
) -> ValidationResult:
    """Run int8 (and float) files on LiteRT, onnxruntime (both levels) and TFLM, Vela for
    each board with an Ethos-U NPU, and, with ``validation.emulate``, each Linux board's
    runtimes under emulation (``boards``), and the generated C of each supported bare-metal
    board under qemu-system-arm (``validation.codegen``). ``key`` (``resume.stage_keys``) goes
    into the manifest's inputs."""
    from tinyshare.targets.agreement import compare
    from tinyshare.targets.runtimes.litert import run_litert
    from tinyshare.targets.runtimes.onnxruntime import (
        run_onnx_both_levels,
        run_onnxruntime,
    )
    from tinyshare.targets.runtimes.tflm import find_arena_bytes, run_tflm

    t0 = time.perf_counter()
    n = cfg.validation.max_samples or len(splits.y_test)
    x, y = splits.x_test[:n], splits.y_test[:n]
    tol = cfg.validation.tolerance_lsb
    steps = 7 + (exported.lut is not None and exported.lut.named is not None)
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress:
            progress("validate", done, steps)

    arena = find_arena_bytes(exported.tflite_int8, nchw_to_nhwc(x[:1]))
    twin_arena = find_arena_bytes(exported.twin_tflite_int8, nchw_to_nhwc(x[:1]))
    tick()
    runs = {}
    runs[REFERENCE_RUNTIME] = ("NHWC", exported.tflite_int8,
                               run_litert(exported.tflite_int8, nchw_to_nhwc(x), reference_kernels=True))
    tick()
    runs["litert-xnnpack"] = ("NHWC", exported.tflite_int8,
                              run_litert(exported.tflite_int8, nchw_to_nhwc(x), reference_kernels=False))
    tick()
    enabled, disabled, finding = run_onnx_both_levels(exported.onnx_int8, x)
    runs[enabled.runtime] = ("NCHW", exported.onnx_int8, enabled)
    runs[disabled.runtime] = ("NCHW", exported.onnx_int8, disabled)
    tick()
    runs["tflm"] = ("NHWC", exported.tflite_int8,
                    run_tflm(exported.tflite_int8, nchw_to_nhwc(x), arena_bytes=arena.arena_bytes))
    stripped = run_tflm(exported.tflite_int8_stripped, nchw_to_nhwc(x), arena_bytes=arena.arena_bytes)
    stripped_diff = _max_diff(stripped, runs["tflm"][2])[0]
    tick()
    ref = runs[REFERENCE_RUNTIME][2]
    checks = {
        name: RuntimeCheck(
            runtime=name, version=o.runtime_version, model_file=Path(path).name, layout=layout,
            accuracy=top1(o.dequantized, y), agreement=compare(ref, o, tolerance_lsb=tol),
            host_wall_ms=o.wall_ms, n_outputs=int(o.raw.shape[1]),
        )
        for name, (layout, path, o) in runs.items()
    }
    float_acc = {
        "litert (float .tflite)": top1(
            run_litert(exported.tflite_float, nchw_to_nhwc(x), reference_kernels=True).dequantized, y),
    }
    tick()
    float_acc["onnxruntime (float .onnx)"] = top1(
        run_onnxruntime(exported.onnx_float, x, optimization="all").dequantized, y)
    tick()
    lut = None
    if exported.lut is not None and exported.lut.named is not None:
        lut = _lut(exported.lut, x, y, runs["tflm"][2], stripped)
        tick()
    emulation = _emulate(cfg, boards, exported, x, y, ref, progress)
    vela = _vela(boards, exported, out)
    codegen = run_codegen_checks(cfg, boards, exported, x, runs["tflm"][2], stripped,
                                 out / "codegen", progress)
    result = ValidationResult(
        reference=REFERENCE_RUNTIME, tolerance_lsb=tol, n_samples=int(n), checks=checks,
        float_pytorch_accuracy=top1(predict(trained.model, x), y),
        int8_pytorch_accuracy=top1(quantized.int8_test_outputs[:n], y),
        twin_float_pytorch_accuracy=top1(predict(trained.twin, x), y),
        twin_int8_accuracy=top1(run_litert(exported.twin_tflite_int8, nchw_to_nhwc(x)).dequantized, y),
        float_accuracy=float_acc, onnx_level_finding=finding, arena=arena,
        twin_arena=twin_arena, stripped_tflm_max_diff_lsb=stripped_diff, emulation=emulation,
        vela=vela, codebook=_codebook(trained, quantized), lut=lut, codegen=codegen,
    )
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_npz(out / "outputs_int8.npz", **{k: v[2].raw for k, v in runs.items()})
    atomic_write_json(out / "validation.json", result)
    write_manifest(out, stage="validate", inputs={"key": key, "n_samples": int(n),
                                                       "tolerance_lsb": tol},
                   seconds=time.perf_counter() - t0, seed=cfg.seed)
    return result


def _max_diff(a, b) -> tuple[int, int]:
    """(max |a - b| in LSB, count of differing values) of two runs' int8 outputs."""
    from tinyshare.targets.agreement import compare

    agreement = compare(b, a, tolerance_lsb=0)
    return agreement.max_abs_diff_lsb, agreement.n_values_differing


def _lut(lut, x, y, tflm, tflm_stripped) -> LutValidation:
    """TFLM on both compressed copies (at the compressed model's own measured arena)
    against TFLM's outputs of the uncompressed files (``tflm``, ``tflm_stripped``)."""
    from tinyshare.targets.runtimes.tflm import find_arena_bytes, run_tflm

    arena = find_arena_bytes(lut.named.path, nchw_to_nhwc(x[:1]))
    named = run_tflm(lut.named.path, nchw_to_nhwc(x), arena_bytes=arena.arena_bytes)
    stripped = run_tflm(lut.stripped.path, nchw_to_nhwc(x), arena_bytes=arena.arena_bytes)
    diff, n1 = _max_diff(named, tflm)
    stripped_diff, n2 = _max_diff(stripped, tflm_stripped)
    return LutValidation(model_file=lut.named.path.name,
                         stripped_model_file=lut.stripped.path.name, arena=arena,
                         max_diff_lsb=diff, stripped_max_diff_lsb=stripped_diff,
                         n_values_differing=n1 + n2, accuracy=top1(named.dequantized, y))


def _codebook(trained, quantized):
    """The int8 codebook check of the clustered shared model (None without clustering)."""
    if trained.cluster is None:
        return None
    from tinyshare.quantize.codebook import check_codebook

    floats = {n: p.detach().cpu().numpy() for n, p in trained.model.named_parameters()}
    return check_codebook(quantized.shared.weights, trained.cluster.tensors, trained.cluster.k,
                          floats)


def _vela(boards, exported, out: Path) -> dict:
    """Vela's compile of the int8 .tflite (without tensor names where the board strips them)
    for every board with an Ethos-U NPU, one folder per board under ``out`` (Vela's CSVs,
    debug database and the optimized model)."""
    from tinyshare.targets.vela import run_vela

    return {b.name: run_vela(exported.tflite_int8_stripped if b.strip_tensor_names
                             else exported.tflite_int8, b.npu, out / b.name)
            for b in boards if b.npu}


def _emulate(cfg, boards, exported, x, y, reference, progress) -> dict:
    """Emulated checks for every Linux board, when the config asks for them.

    Boards run side by side, one per usable host core: a guest process spends most of its
    wall time starting (qemu, the runtime's imports, the model load: 4.1-5.4 s of 4.5-6.5 s
    for 360 digits samples, measured by ``benchmarks/pipeline_time.py`` on 2 cores), not
    computing. An interrupt
    (Ctrl-C, SIGTERM: ``KeyboardInterrupt`` in this thread) stops every board's guests.
    """
    if not cfg.validation.emulate:
        return {}
    import os
    from concurrent.futures import ThreadPoolExecutor

    from tinyshare.pipeline.emulate import emulate_board, is_emulated
    from tinyshare.targets.emulation.run import allow_guests, stop_guests

    files = {"tflite": exported.tflite_int8, "onnx": exported.onnx_int8}
    emulated = [b for b in boards if is_emulated(b)]
    if not emulated:
        return {}

    def one(b):
        return emulate_board(b, files, x, y, reference,
                             tolerance_lsb=cfg.validation.tolerance_lsb,
                             timeout_s=cfg.validation.emulate_timeout_s, progress=progress)

    allow_guests()
    pool = ThreadPoolExecutor(max_workers=min(len(emulated), len(os.sched_getaffinity(0))))
    try:
        results = list(pool.map(one, emulated))
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        stop_guests()  # running guests killed, later ones refused: the workers end at once
        pool.shutdown(wait=True)
        raise
    pool.shutdown()
    return dict(zip((b.name for b in emulated), results, strict=True))
