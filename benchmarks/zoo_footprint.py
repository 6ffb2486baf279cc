"""Benchmark: footprint of every zoo model, shared against its unshared twin, and against
the MLPerf Tiny reference sizes.

Two measurements per model:

* **real config** (``configs/<model>.toml``, the MLPerf-sized width): the model is built
  and quantized (PTQ, 8 calibration samples of its data) without training; stored int8
  weight bytes and file bytes of the int8 .tflite do not depend on the trained values.
* **tiny config** (``configs/<model>_tiny.toml``): the whole pipeline on the bundled digits
  for the STM32F746G board: top-1 (float, int8 on the reference kernels, shared and twin),
  stored int8 weight bytes, and the measured TFLM arena.

    .venv/bin/python benchmarks/zoo_footprint.py [--skip-tiny]

Writes benchmarks/results/zoo_footprint-<date>.json and .md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from _record import write_record

ROOT = Path(__file__).resolve().parents[1]
# model -> (real config, tiny config)
ZOO = {"digits_cnn": ("digits", "digits_tiny"), "ds_cnn": ("ds_cnn", "ds_cnn_tiny"),
       "resnet8": ("resnet8", "resnet8_tiny"),
       "mobilenet_v1_025": ("mobilenet_v1_025", "mobilenet_v1_025_tiny")}


def _real(config: str, tmp: Path) -> dict:
    """Stored int8 bytes of the real config's shared model and twin (untrained)."""
    import torch

    from tinyshare.config import load_config
    from tinyshare.data import load_splits
    from tinyshare.export.inspect import inspect_model
    from tinyshare.export.tflite import export_tflite_int8
    from tinyshare.models.sharing import unique_parameters, unshared_twin
    from tinyshare.models.zoo import build_model, reference_size
    from tinyshare.pipeline.quantization import deploy_copy
    from tinyshare.quantize.ptq import quantize_ptq

    cfg = load_config(ROOT / "configs" / f"{config}.toml")
    splits = load_splits(cfg.data, cfg.seed)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model.name, input_shape=splits.input_shape,
                        num_classes=splits.num_classes, width=cfg.model.width).eval()
    twin = unshared_twin(model).eval()
    # The twin starts as copies of the shared values; untrained, its copies of a reused
    # block are byte-identical and the converter would store them once. Training makes
    # them differ; a fresh initialization does the same here.
    for m in twin.modules():
        if hasattr(m, "reset_parameters") and m is not twin:
            m.reset_parameters()
    out = {"config": f"configs/{config}.toml", "width": cfg.model.width,
           "input_shape_nchw": [1, *splits.input_shape],
           "unique_params": unique_parameters(model), "twin_params": unique_parameters(twin)}
    for key, m in (("shared", model), ("twin", twin)):
        qm = quantize_ptq(deploy_copy(m), splits.x_calib[:8])
        info = inspect_model(export_tflite_int8(qm, tmp / f"{config}_{key}.tflite"))
        out[f"{key}_stored_int8_bytes"] = info.stored_weight_bytes
        out[f"{key}_tflite_bytes"] = info.file_bytes
    ref = reference_size(cfg.model.name)
    out["mlperf_reference"] = ref
    return out


def _tiny(config: str, tmp: Path) -> dict:
    """The tiny config through the whole pipeline for the STM32F746G board."""
    from tinyshare.config import load_config
    from tinyshare.pipeline.stages import run

    cfg = load_config(ROOT / "configs" / f"{config}.toml",  # C figures: generated_c.py
                      [f'output_dir="{tmp}"', 'boards=["stm32f746g-disco"]',
                       'validation.codegen="off"'])
    result = run(cfg, command=f"benchmarks/zoo_footprint.py ({config})")
    report = json.loads((result.run_dir / "boards" / "stm32f746g-disco" / "report.json")
                        .read_text())
    acc, storage, fp = report["accuracy"], report["storage"], report["footprint"]
    return {
        "config": f"configs/{config}.toml", "n_test_samples": acc["n_samples"],
        "float_top1": acc["float_pytorch"], "int8_top1": acc["int8_reference"]["accuracy"],
        "twin_float_top1": acc["twin_float_pytorch"],
        "twin_int8_top1": acc["twin_int8_litert_ref"],
        "shared_stored_int8_bytes": storage["tflite_int8"]["stored_weight_bytes"],
        "twin_stored_int8_bytes": storage["twin_tflite_int8"]["stored_weight_bytes"],
        "arena_bytes": fp["arena"]["arena_bytes"],
        "twin_arena_bytes": fp["arena"]["twin_arena_bytes"],
        "verdict": report["verdict"],
    }


def _kb(n: int | None) -> str:
    return "–" if n is None else f"{n / 1000:.1f} KB"


def _markdown(record: dict) -> str:
    lines = [f"# Zoo footprint ({record['date']})", "",
             "Stored int8 weight bytes of the int8 .tflite (each stored tensor once). Real: "
             "the MLPerf-sized config, untrained; tiny: the tiny config trained on the "
             "bundled digits (top-1 on litert-ref, the test split).", "",
             "| model | config width | unique params (shared / twin) | int8 weights shared | "
             "int8 weights twin | saving | int8 .tflite shared / twin | MLPerf Tiny reference "
             "(int8 .tflite) | tiny: top-1 shared / twin (int8) | tiny: int8 weights shared / "
             "twin |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in record["models"].items():
        real, tiny = r["real"], r.get("tiny")
        ref = real["mlperf_reference"]
        saving = 1 - real["shared_stored_int8_bytes"] / real["twin_stored_int8_bytes"]
        lines.append(
            f"| {name} | {real['width']} | {real['unique_params']:,} / {real['twin_params']:,} "
            f"| {_kb(real['shared_stored_int8_bytes'])} | {_kb(real['twin_stored_int8_bytes'])} "
            f"| {100 * saving:.0f} % | {_kb(real['shared_tflite_bytes'])} / "
            f"{_kb(real['twin_tflite_bytes'])} | {ref['label'] if ref else '–'} | "
            + (f"{100 * tiny['int8_top1']:.1f} % / {100 * tiny['twin_int8_top1']:.1f} % | "
               f"{tiny['shared_stored_int8_bytes']:,} B / {tiny['twin_stored_int8_bytes']:,} B |"
               if tiny else "– | – |"))
    lines += ["", f"Machine: {record['machine']}; command: `{record['command']}`.", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-tiny", action="store_true", help="only the real configs")
    args = parser.parse_args()
    models = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (real, tiny) in ZOO.items():
            entry = {"real": _real(real, Path(tmp))}
            if tiny and not args.skip_tiny:
                entry["tiny"] = _tiny(tiny, Path(tmp))
            models[name] = entry
            print(name, json.dumps(entry), flush=True)
    write_record("zoo_footprint", {"models": models}, _markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
