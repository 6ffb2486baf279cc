"""Generated C (no interpreter) on each bare-metal board, checked bit-exact against TFLM.

For every board with ``os = "baremetal"`` whose core and qemu machine the code generator
knows (``tinyshare.targets.codegen``), the int8 .tflite the board flashes (without tensor
names where the board strips them) is turned into C, built with arm-none-eabi-gcc for the
board's core and run on the validation samples under qemu-system-arm. Its int8 outputs
must equal TFLM's outputs of the same file exactly (0 LSB).

``validation.codegen``: "auto" runs when both tools are on PATH and otherwise records why
not; "on" makes a missing tool an error (``require_codegen_tools``, called before any folder
is written); "off" skips. With ``[cluster]`` the C stores each clustered filter as packed
indices + a per-channel value table (``generate_c(pack_codebooks=True)``). Each board's
emulated run is bounded by ``validation.emulate_timeout_s``: past it, "auto" records why it
did not finish (a slow host is not a wrong result) and "on" fails the board.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tinyshare.errors import (
    BoardError,
    BudgetExceededError,
    DataError,
    ModelFileError,
    RuntimeUnavailableError,
    ToolTimeoutError,
    UnsupportedOpError,
)

if TYPE_CHECKING:
    from tinyshare.config import RunConfig
    from tinyshare.pipeline.train import Progress
    from tinyshare.targets.agreement import Agreement
    from tinyshare.targets.board import BoardProfile
    from tinyshare.targets.codegen import CortexMFigures, GeneratedModel
    from tinyshare.targets.runtimes.base import RuntimeOutputs

__all__ = ["CodegenCheck", "codegen_boards", "codegen_tools_on_path", "require_codegen_tools",
           "run_codegen_checks"]

TOOLS = (("arm-none-eabi-gcc", "apt-get install -y gcc-arm-none-eabi libnewlib-arm-none-eabi"),
         ("qemu-system-arm", "apt-get install -y qemu-system-arm"))


@dataclass(frozen=True)
class CodegenCheck:
    """The generated C of one board's model, built for its core and run under qemu.

    Attributes:
        board: the board's name.
        model_file: the int8 .tflite the C was generated from (the file the board flashes).
        skipped: why it did not run ("not run: ..."), or None when it ran.
        error: why the build or run failed, or None.
        figures: flash, RAM, stack and instruction figures of the emulated run, or None.
        agreement: its int8 outputs against TFLM's outputs of the same file (tolerance
            0 LSB), or None.
        generated: the generated C (sources and sizes), or None when it was not generated.
    """

    board: str
    model_file: str
    skipped: str | None = None
    error: str | None = None
    figures: CortexMFigures | None = None
    agreement: Agreement | None = None
    generated: GeneratedModel | None = None

    @property
    def bit_exact(self) -> bool:
        """The generated C ran and every output value equals TFLM's."""
        return self.agreement is not None and self.agreement.max_abs_diff_lsb == 0


def _supported(board: BoardProfile) -> bool:
    from tinyshare.targets.codegen._cortex_m_targets import cortex_m_target

    try:
        cortex_m_target(board)
    except BoardError:
        return False
    return True


def codegen_boards(boards) -> list:
    """The bare-metal boards whose core and qemu machine the code generator supports."""
    return [b for b in boards if b.os == "baremetal" and _supported(b)]


def codegen_tools_on_path() -> dict[str, bool]:
    """Tool name → whether it is on PATH, for the tools the C check needs (with
    ``validation.codegen = "auto"`` they decide whether it runs)."""
    return {tool: shutil.which(tool) is not None for tool, _ in TOOLS}


def _missing_tool() -> tuple[str, str] | None:
    """(tool, install hint) of the first tool not on PATH, or None."""
    on_path = codegen_tools_on_path()
    return next(((tool, hint) for tool, hint in TOOLS if not on_path[tool]), None)


def require_codegen_tools(cfg: RunConfig, boards) -> None:
    """With ``validation.codegen = "on"``, fail early when a needed tool is missing.

    Raises:
        RuntimeUnavailableError: a tool is not on PATH while some board needs it (one line
            that says how to install it).
    """
    if cfg.validation.codegen != "on" or not codegen_boards(boards):
        return
    missing = _missing_tool()
    if missing is not None:
        tool, hint = missing
        raise RuntimeUnavailableError(
            f"validation.codegen = \"on\" needs {tool}, which is not on PATH; `make test` "
            f"installs it, or {hint} (or set validation.codegen=\"off\")")


def run_codegen_checks(cfg: RunConfig, boards, exported, x_nchw: np.ndarray,
                       tflm: RuntimeOutputs, tflm_stripped: RuntimeOutputs,
                       out: Path, progress: Progress | None = None) -> dict[str, CodegenCheck]:
    """Generate, build and run the C of each supported bare-metal board's model.

    Args:
        cfg: the run config (``validation.codegen``).
        boards: the run's boards.
        exported: ``ExportedModels`` (``tflite_int8`` and ``tflite_int8_stripped``).
        x_nchw: (N, C, H, W) float32 validation samples.
        tflm: TFLM's outputs of ``tflite_int8`` on those samples.
        tflm_stripped: TFLM's outputs of ``tflite_int8_stripped``.
        out: folder for the generated C and the images (``<out>/<board>/``).
        progress: ``(task, done, total)`` callback, called once per board.

    Returns:
        ``{board: CodegenCheck}``; empty with ``validation.codegen = "off"``.

    Raises:
        RuntimeUnavailableError: ``validation.codegen = "on"`` and a tool is missing.
    """
    mode = cfg.validation.codegen
    targets = codegen_boards(boards) if mode != "off" else []
    if not targets:
        return {}
    missing = _missing_tool()
    if missing is not None and mode == "on":
        require_codegen_tools(cfg, boards)
    results = {}
    generated: dict[Path, object] = {}
    for i, board in enumerate(targets):
        if progress:
            progress("generated C under qemu-system-arm", i, len(targets))
        strip = board.strip_tensor_names
        path = exported.tflite_int8_stripped if strip else exported.tflite_int8
        if missing is not None:
            tool, hint = missing
            results[board.name] = CodegenCheck(
                board.name, path.name, skipped=f"not run: {tool} not installed; `make test` "
                f"installs it, or {hint}")
            continue
        results[board.name] = _check_board(board, path, x_nchw,
                                           tflm_stripped if strip else tflm, out, generated,
                                           cfg.validation.emulate_timeout_s,
                                           pack_codebooks=cfg.cluster is not None,
                                           mode=mode)
    if progress:
        progress("generated C under qemu-system-arm", len(targets), len(targets))
    return results


def _check_board(board, path: Path, x_nchw, reference, out: Path, generated: dict,
                 timeout_s: float, pack_codebooks: bool, mode: str) -> CodegenCheck:
    """Generate (once per file; a clustered model's codebooks packed), build and run one
    board's C; compare with TFLM."""
    from tinyshare.targets.agreement import compare
    from tinyshare.targets.codegen import build_cortex_m, generate_c, run_cortex_m
    from tinyshare.targets.runtimes.base import RuntimeOutputs, nchw_to_nhwc, quantize_input

    size = path.stat().st_size
    if size > board.flash_budget_bytes:  # the C's constants alone would not fit: no build
        return CodegenCheck(board.name, path.name, skipped=(
            f"not run: the model file ({size:,} B) exceeds {board.name}'s flash budget "
            f"({board.flash_budget_bytes:,} B), so its generated C would not fit either"))
    try:
        gen = generated.get(path)
        if gen is None:
            gen = generated[path] = generate_c(path, out / "c" / path.stem,
                                               pack_codebooks=pack_codebooks)
        image = build_cortex_m(gen, board, out / board.name)
        x = quantize_input(nchw_to_nhwc(x_nchw), gen.input_scale, gen.input_zero_point)
        run = run_cortex_m(image, x, timeout_s=timeout_s)
    except (UnsupportedOpError, BudgetExceededError) as exc:
        # a limit of the code generator or of the board, not a wrong result
        return CodegenCheck(board.name, path.name, skipped=f"not run: {exc}")
    except ToolTimeoutError as exc:
        # a slow host, not a wrong result: "auto" records it, "on" fails the board
        text = (f"{exc}; raise validation.emulate_timeout_s or lower "
                "validation.max_samples")
        if mode == "auto":
            return CodegenCheck(board.name, path.name, skipped=f"not run: {text}")
        return CodegenCheck(board.name, path.name, error=text)
    except (RuntimeUnavailableError, ModelFileError, DataError) as exc:
        return CodegenCheck(board.name, path.name, error=str(exc))
    raw = run.outputs.reshape(run.outputs.shape[0], -1)
    mine = RuntimeOutputs.from_raw(
        "generated-c", "", raw, (reference.output_scale, reference.output_zero_point), 0.0,
        {"board": board.name})
    return CodegenCheck(board.name, path.name, figures=run.figures,
                        agreement=compare(reference, mine, tolerance_lsb=0), generated=gen)
