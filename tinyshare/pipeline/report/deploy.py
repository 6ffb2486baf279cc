"""``runs/<run>/<board>/``: what a board needs, ready to copy onto it.

For every board: the int8 model files its runtimes load, a tiny example script per runtime
(numpy and the runtime only), a README with the I/O quantization, and the board's report.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tinyshare.artifacts import atomic_write_text

_TFLITE_EXAMPLE = '''"""Run {model} with {display} on the device: python3 {script} input.npy

input.npy: float32 array (N, {layout_shape}) in {layout} layout. Prints the top-1 class of
each sample. Needs only numpy and {package}.
"""
import sys
from pathlib import Path

import numpy as np
from {module} import Interpreter

interpreter = Interpreter(model_path=str(Path(__file__).with_name("{model}")), num_threads=1)
interpreter.allocate_tensors()
inp = interpreter.get_input_details()[0]
out = interpreter.get_output_details()[0]
in_scale, in_zp = inp["quantization_parameters"]["scales"][0], inp["quantization_parameters"]["zero_points"][0]
out_scale, out_zp = out["quantization_parameters"]["scales"][0], out["quantization_parameters"]["zero_points"][0]
x = np.load(sys.argv[1]).astype(np.float32)
for sample in x:
    v = sample / in_scale
    q = np.clip(np.sign(v) * np.floor(np.abs(v) + 0.5) + in_zp, -128, 127).astype(np.int8)
    interpreter.set_tensor(inp["index"], q[None])
    interpreter.invoke()
    y = (interpreter.get_tensor(out["index"])[0].astype(np.float32) - out_zp) * out_scale
    print(int(y.argmax()))
'''

_ONNX_EXAMPLE = '''"""Run {model} with ONNX Runtime on the device: python3 {script} input.npy

input.npy: float32 array (N, {layout_shape}) in NCHW layout. Prints the top-1 class of
each sample. Needs only numpy and onnxruntime. The model's I/O is int8: input scale
{in_scale!r}, zero point {in_zp}; output scale {out_scale!r}, zero point {out_zp}.
"""
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

session = ort.InferenceSession(str(Path(__file__).with_name("{model}")),
                               providers=["CPUExecutionProvider"])
name = session.get_inputs()[0].name
x = np.load(sys.argv[1]).astype(np.float32)
for sample in x:
    v = sample / {in_scale!r}
    q = np.clip(np.sign(v) * np.floor(np.abs(v) + 0.5) + {in_zp}, -128, 127).astype(np.int8)
    y = (session.run(None, {{name: q[None]}})[0][0].astype(np.float32) - {out_zp}) * {out_scale!r}
    print(int(y.argmax()))
'''

_RUNTIME_MODULES = {
    "litert": ("ai_edge_litert.interpreter", "LiteRT", "ai-edge-litert"),
    "tflite-runtime": ("tflite_runtime.interpreter", "tflite-runtime", "tflite-runtime"),
}


def write_deploy_folder(out: Path, board, files: dict[str, Path], quantized, input_shape,
                        report_dir: Path, npu_model: Path | None = None,
                        codegen=None, generated_c: dict | None = None) -> Path:
    """Write ``out`` (``runs/<run>/<board>/``) for ``board``; returns ``out``.

    Args:
        files: ``{"tflite": int8 .tflite, "onnx": int8 .onnx}`` as this board flashes them
            (the .tflite without tensor names where the board strips them).
        npu_model: Vela's optimized .tflite for a board with an Ethos-U NPU, if any.
        quantized: the ``QuantizedModel`` (I/O scales and zero points).
        input_shape: (C, H, W) of one sample.
        report_dir: the folder holding the board's ``report.json`` / ``report.md``.
        codegen: the board's ``CodegenCheck`` when its model ran as generated C; a
            bit-exact one adds ``c/`` (``write_firmware_folder``: sources, Makefile, README).
        generated_c: the board report's ``footprint.generated_c`` (TFLM figures for the
            README's comparison).
    """
    from tinyshare.targets.runtimes.registry import RUNTIMES

    out.mkdir(parents=True, exist_ok=True)
    c, h, w = input_shape
    lines = [f"# {board.display_name}: deployable int8 model", "",
             "| runtime | model file | example |", "|---|---|---|"]
    for rt in board.runtimes:
        fmt = RUNTIMES.get(rt).model_format
        model = files[fmt].name
        shutil.copyfile(files[fmt], out / model)
        script = f"run_{rt.replace('-', '_')}.py"
        if fmt == "onnx":
            text = _ONNX_EXAMPLE.format(
                model=model, script=script, layout_shape=f"{c}, {h}, {w}",
                in_scale=quantized.input_scale, in_zp=quantized.input_zero_point,
                out_scale=quantized.output_scale, out_zp=quantized.output_zero_point)
        elif rt in _RUNTIME_MODULES:
            module, display, package = _RUNTIME_MODULES[rt]
            text = _TFLITE_EXAMPLE.format(
                model=model, script=script, display=display, package=package, module=module,
                layout="NHWC", layout_shape=f"{h}, {w}, {c}")
        else:
            lines.append(f"| {rt} | {model} | (linked into firmware; no script) |")
            continue
        atomic_write_text(out / script, text)
        lines.append(f"| {rt} | `{model}` | `python3 {script} input.npy` |")
    if npu_model is not None:
        shutil.copyfile(npu_model, out / npu_model.name)
        lines.append(f"| tflm + Ethos-U driver | `{npu_model.name}` | Vela-compiled for "
                     f"{board.npu.accelerator_config}: the NPU part runs as one custom op; "
                     "flash this file on the board |")
    lines += _firmware_lines(out, board, codegen, generated_c)
    lines += [
        "", "The int8 model quantizes its input with scale "
        f"{quantized.input_scale!r} and zero point {quantized.input_zero_point}; the "
        f"output has scale {quantized.output_scale!r} and zero point "
        f"{quantized.output_zero_point}. "
        + ("The .tflite takes NHWC, the .onnx NCHW." if any(
            RUNTIMES.get(rt).model_format == "onnx" for rt in board.runtimes)
           else "The .tflite takes NHWC input."), "",
        "The board's report is `report.md` / `report.json` in this folder.", "",
    ]
    atomic_write_text(out / "README.md", "\n".join(lines))
    for name in ("report.md", "report.json"):
        shutil.copyfile(report_dir / name, out / name)
    return out


def _firmware_lines(out: Path, board, codegen, g: dict | None) -> list[str]:
    """Write ``out/c`` for a bit-exact generated C; the README rows that say what it is."""
    if codegen is None or codegen.generated is None:
        return []
    if not codegen.bit_exact:
        return [f"| generated C | – | not written: its outputs differ from TFLM's "
                f"({codegen.agreement.n_values_differing} values; see report.md) |"]
    from tinyshare.targets.codegen import TflmFigures, write_firmware_folder

    tflm = None
    if g is not None and g.get("status") == "ran":
        tflm = TflmFigures(
            arena_bytes=g["tflm_arena_bytes"], model_file=g["tflm_model_file"],
            model_file_bytes=g["tflm_model_file_bytes"],
            runtime_code_bytes=g["tflm_runtime_code_bytes"],
            arena_method=("measured: smallest TFLM arena that allocates and invokes, on the "
                          "64-bit host build (a 32-bit core needs somewhat less)"),
            runtime_code_method=("x86-64 code of the used TFLM kernels and core "
                                 "in the installed tflite-micro host build"))
    write_firmware_folder(codegen.generated, board, out / "c", figures=codegen.figures,
                          tflm=tflm)
    return [f"| generated C (no interpreter) | `c/` ({codegen.model_file} as C99) | "
            f"`make -C c` builds `model.elf` for {board.cpu}; add `c/model.c`, its kernels "
            "and headers to your firmware and call `model_invoke` (see `c/README.md`) |"]
