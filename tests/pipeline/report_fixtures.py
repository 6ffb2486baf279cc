"""Realistic version-2 board reports (the report.json contract) for the report tests.

The numbers follow the digits run (``configs/digits.toml``: DigitsCNN, width 16, the
shared residual block used twice) as its version-1 reports and its int8 .tflite show them;
the fields added by version 2 (per-layer rows, flash/RAM breakdowns, Vela) are filled in
with values of the right kind and size. Three board kinds:

* ``"tflm"``: a bare-metal Cortex-M board running TFLM (arena measured, no Vela);
* ``"linux"``: a Linux board (LiteRT, onnxruntime; no arena, RSS not measured);
* ``"ethosu"``: a Cortex-M55 + Ethos-U55 board (TFLM + Vela; per-layer Vela columns).

The test modules load this file by path (pytest runs in importlib mode, so the tests folder
is not a package). The Ethos-U board here, ``alif-e7-u55``, is made up for the tests; it is
not a board profile. Real reports are checked against the schema by tests/pipeline/
test_tiny_run.py.
"""

from __future__ import annotations

import copy

RUN = "digits"

# (op, version, input_shapes, output_shapes, macs, unique_params, weight_bytes, shared,
#  activation_bytes, lifetime): the 16 ops of the digits int8 .tflite in graph order.
_DW_SHARED = [{"storage": "buffer 16", "first_op": 2, "bytes": 9},
              {"storage": "buffer 9", "first_op": 2, "bytes": 4}]
_BIAS_SHARED = [{"storage": "buffer 11", "first_op": 4, "bytes": 16}]
_PW_SHARED = [{"storage": "buffer 20", "first_op": 5, "bytes": 256}]
_A = [1, 8, 8, 16]
_R = [1, 8, 128, 1]
_TFLITE_OPS = [
    ("DEPTHWISE_CONV_2D", 3, [[1, 8, 8, 1], [1, 3, 3, 16], [16]], [_A], 9216, 160, 208, [],
     1024, [0, 6]),
    ("RESHAPE", 1, [_A, [4]], [_R], 0, 0, 0, [], 1024, [1, 2]),
    ("DEPTHWISE_CONV_2D", 3, [_R, [1, 3, 3, 1], [1]], [_R], 9216, 10, 13, _DW_SHARED, 1024,
     [2, 3]),
    ("RESHAPE", 1, [_R, [4]], [_A], 0, 0, 0, [], 1024, [3, 4]),
    ("ADD", 2, [_A, [16]], [_A], 0, 16, 16, _BIAS_SHARED, 1024, [4, 5]),
    ("CONV_2D", 3, [_A, [16, 1, 1, 16], [16]], [_A], 16384, 272, 320, _PW_SHARED, 1024, [5, 6]),
    ("ADD", 2, [_A, _A], [_A], 0, 0, 0, [], 1024, [6, 12]),
    ("RESHAPE", 1, [_A, [4]], [_R], 0, 0, 0, [], 1024, [7, 8]),
    ("DEPTHWISE_CONV_2D", 3, [_R, [1, 3, 3, 1], [1]], [_R], 9216, 0, 0, _DW_SHARED, 1024, [8, 9]),
    ("RESHAPE", 1, [_R, [4]], [_A], 0, 0, 0, [], 1024, [9, 10]),
    ("ADD", 2, [_A, [16]], [_A], 0, 0, 0, _BIAS_SHARED, 1024, [10, 11]),
    ("CONV_2D", 3, [_A, [16, 1, 1, 16], [16]], [_A], 16384, 16, 64, _PW_SHARED, 1024, [11, 12]),
    ("ADD", 2, [_A, _A], [_A], 0, 0, 0, [], 1024, [12, 13]),
    ("MAX_POOL_2D", 2, [_A], [[1, 4, 4, 16]], 0, 0, 0, [], 256, [13, 14]),
    ("RESHAPE", 1, [[1, 4, 4, 16], [2]], [[1, 256]], 0, 0, 0, [], 256, [14, 15]),
    ("FULLY_CONNECTED", 5, [[1, 256], [10, 256], [10]], [[1, 10]], 2560, 2570, 2600, [], 10,
     [15, 15]),
]
_ONNX_OPS = [
    ("Conv", 21, [[1, 1, 8, 8], [16, 1, 3, 3], [16]], [[1, 16, 8, 8]], 9216, 160, 208, []),
    ("Conv", 21, [[1, 16, 8, 8], [16, 1, 3, 3], [16]], [[1, 16, 8, 8]], 9216, 25, 25, []),
    ("Conv", 21, [[1, 16, 8, 8], [16, 16, 1, 1], [16]], [[1, 16, 8, 8]], 16384, 272, 320, []),
    ("Add", 14, [[1, 16, 8, 8], [1, 16, 8, 8]], [[1, 16, 8, 8]], 0, 0, 0, []),
    ("Conv", 21, [[1, 16, 8, 8], [16, 1, 3, 3], [16]], [[1, 16, 8, 8]], 9216, 0, 0,
     [{"storage": "blocks.block.dw.weight", "first_op": 1, "bytes": 9},
      {"storage": "blocks.block.dw.bias", "first_op": 1, "bytes": 16}]),
    ("Conv", 21, [[1, 16, 8, 8], [16, 16, 1, 1], [16]], [[1, 16, 8, 8]], 16384, 16, 64,
     [{"storage": "blocks.block.pw.weight", "first_op": 2, "bytes": 256}]),
    ("Add", 14, [[1, 16, 8, 8], [1, 16, 8, 8]], [[1, 16, 8, 8]], 0, 0, 0, []),
    ("MaxPool", 12, [[1, 16, 8, 8]], [[1, 16, 4, 4]], 0, 0, 0, []),
    ("Reshape", 21, [[1, 16, 4, 4], None], [[1, 256]], 0, 0, 0, []),
    ("Gemm", 13, [[1, 256], [10, 256], [10]], [[1, 10]], 2560, 2570, 2600, []),
]


def _peak_live(rows: list[dict]) -> int:
    """Largest sum of output bytes live at one op (lifetimes in op indices, inclusive)."""
    peak = 0
    for i in range(len(rows)):
        peak = max(peak, sum(r["activation_bytes"] for r in rows
                             if r["lifetime"][0] <= i <= r["lifetime"][1]))
    return peak


def _table(file: str, rows: list[dict], peak: int | None) -> dict:
    return {"file": file, "rows": rows, "totals": {
        "macs": sum(r["macs"] for r in rows),
        "unique_params": sum(r["unique_params"] for r in rows),
        "weight_bytes": sum(r["weight_bytes"] for r in rows), "peak_live_activation_bytes": peak}}


def per_layer(with_vela: bool) -> dict:
    """The ``per_layer`` section; Vela's per-op estimate in each TFLite row if ``with_vela``."""
    tfl = []
    for i, (op, ver, ins, outs, macs, up, wb, shared, act, life) in enumerate(_TFLITE_OPS):
        vela = None
        if with_vela:
            cycles = 420 + macs // 8 + act // 4
            vela = {"placement": "NPU", "cycles": cycles, "staging_sram_bytes": 2 * act + wb,
                    "macs": macs, "utilisation_percent": round(100.0 * macs / (cycles * 128), 2)}
        tfl.append({"index": i, "name": f"tfl.op{i}_{op.lower()};digits/out", "op": op,
                    "version": ver, "input_shapes": ins, "output_shapes": outs, "macs": macs,
                    "unique_params": up, "weight_bytes": wb, "shared": copy.deepcopy(shared),
                    "activation_bytes": act, "lifetime": life, "vela": vela})
    onnx = []
    for i, (op, ver, ins, outs, macs, up, wb, shared) in enumerate(_ONNX_OPS):
        act = 1
        for d in outs[0]:
            act *= d
        onnx.append({"index": i, "name": f"/{op.lower()}_{i}/output_0", "op": op,
                     "version": ver, "input_shapes": ins, "output_shapes": outs, "macs": macs,
                     "unique_params": up, "weight_bytes": wb, "shared": copy.deepcopy(shared),
                     "activation_bytes": act, "lifetime": None, "vela": None})
    return {"tflite_int8": _table("model_int8.tflite", tfl, _peak_live(tfl)),
            "onnx_int8": _table("model_int8.onnx", onnx, None)}  # no lifetimes: no peak


def _storage_file(file: str, file_bytes: int, weight_bytes: int, tensors: int,
                  groups: list[tuple[str, list[int], int]]) -> dict:
    return {"file": file, "file_bytes": file_bytes, "stored_weight_bytes": weight_bytes,
            "stored_weight_tensors": tensors, "shared_storage_groups": [
                {"storage": s, "tensors": [f"tensor_{s}"], "consumer_ops": ops, "bytes": b}
                for s, ops, b in groups]}


def model_and_storage() -> tuple[dict, dict]:
    """The run-level ``model`` and ``storage`` dicts (the same in every board's report)."""
    model = {
        "name": "digits_cnn", "width": 16, "input_shape_nchw": [1, 1, 8, 8], "num_classes": 10,
        "unique_params": 3027, "twin_params": 3594, "mlperf_reference": None, "cluster": None,
        "sharing_groups": [
            {"name": "blocks.block.dw.weight", "shape": [1, 1, 3, 3], "stored_params": 9,
             "call_sites": 2, "kind": "filter shared across channels; block reused",
             "twin_params": 288},
            {"name": "blocks.block.pw.weight", "shape": [16, 16, 1, 1], "stored_params": 256,
             "call_sites": 2, "kind": "block reused", "twin_params": 512}],
        "int8_weight_tensors": [
            {"name": "stem.weight", "shape": [16, 1, 3, 3], "scales": 16, "call_sites": 1},
            {"name": "blocks.block.dw.weight", "shape": [1, 1, 3, 3], "scales": 1,
             "call_sites": 2},
            {"name": "head.weight", "shape": [10, 256], "scales": 10, "call_sites": 1}],
        "data": {"source": "scikit-learn digits (1,797 real 8x8 handwritten digits)",
                 "sizes": {"train": 1167, "val": 270, "test": 360, "calib": 256}},
    }
    storage = {
        "tflite_int8": _storage_file("model_int8.tflite", 11224, 3221, 10,
                                     [("9", [2, 8], 4), ("20", [5, 11], 256)]),
        "onnx_int8": _storage_file("model_int8.onnx", 16086, 3217, 9,
                                   [("blocks.block.pw.weight", [31, 58], 256)]),
        "tflite_float": _storage_file("model_float.tflite", 22148, 12112, 9, []),
        "onnx_float": _storage_file("model_float.onnx", 18652, 12108, 8, []),
        "twin_tflite_int8": _storage_file("model_int8.tflite", 11896, 3864, 12, []),
        "twin_onnx_int8": _storage_file("model_int8.onnx", 14749, 3864, 12, []),
        "saved_by_sharing_bytes": {"tflite": 643, "onnx": 647},
    }
    return model, storage


_BOARDS = {
    "tflm": {
        "name": "stm32f746g-disco", "display_name": "STM32F746G-DISCO", "cpu": "Cortex-M7",
        "clock_hz": 216_000_000, "os": "baremetal", "runtimes": ["tflm"],
        "flash_bytes": 1_048_576, "ram_bytes": 327_680, "reserved_flash_bytes": 131_072,
        "reserved_ram_bytes": 65_536,
        "sources": ["https://www.st.com/resource/en/datasheet/stm32f746ng.pdf"]},
    "linux": {
        "name": "rpi4b", "display_name": "Raspberry Pi 4 Model B (4 GB)", "cpu": "Cortex-A72",
        "clock_hz": 1_800_000_000, "os": "linux",
        "runtimes": ["litert", "onnxruntime", "tflite-runtime"],
        "flash_bytes": 16_000_000_000, "ram_bytes": 4_294_967_296,
        "reserved_flash_bytes": 8_000_000_000, "reserved_ram_bytes": 1_073_741_824,
        "sources": ["https://datasheets.raspberrypi.com/rpi4/raspberry-pi-4-product-brief.pdf"]},
    # Illustrative Cortex-M55 + Ethos-U55 board: figures of the right kind, not a profile.
    "ethosu": {
        "name": "alif-e7-u55", "display_name": "Alif Ensemble E7 (Cortex-M55 + Ethos-U55-256)",
        "cpu": "Cortex-M55", "clock_hz": 400_000_000, "os": "baremetal",
        "runtimes": ["tflm-ethos-u"], "flash_bytes": 5_767_168, "ram_bytes": 4_194_304,
        "reserved_flash_bytes": 524_288, "reserved_ram_bytes": 262_144,
        "sources": ["https://alifsemi.com/download/AQB0004"]},
}
_INT8_RUNTIMES = {
    "tflm": {"tflm": (0.9694444444444444, 1, 48)},
    "linux": {"litert-xnnpack": (0.9694444444444444, 1, 219),
              "onnxruntime[ORT_ENABLE_ALL]": (0.9694444444444444, 3, 667),
              "litert-ref": (0.9694444444444444, 0, 0)},
    "ethosu": {"tflm-ethos-u (Corstone-300 FVP)": (0.9666666666666667, 1, 61)},
}
_PER_KERNEL_BYTES = {"ADD": 3_412, "CONV_2D": 9_876, "DEPTHWISE_CONV_2D": 11_204,
                     "FULLY_CONNECTED": 4_388, "MAX_POOL_2D": 2_140, "RESHAPE": 712}


def _checks_and_violations(kind: str) -> tuple[list[dict], list[dict]]:
    checks = [{"name": "flash and RAM budgets", "status": "PASS",
               "detail": "flash and RAM within budget"}]
    violations = []
    for rt, (acc, lsb, _) in _INT8_RUNTIMES[kind].items():
        checks.append({"name": f"int8 accuracy on {rt}", "status": "PASS",
                       "detail": f"{100 * acc:.2f} % (float 96.94 %, limit 1.5 points)"})
        ok = lsb <= 1
        checks.append({"name": f"agreement of {rt} with litert-ref",
                       "status": "PASS" if ok else "FAIL",
                       "detail": f"max abs diff {lsb} LSB (tolerance ±1 LSB)"})
        if not ok:
            violations.append({"kind": "agreement", "check": checks[-1]["name"],
                               "detail": checks[-1]["detail"]})
    checks.append({"name": "weight sharing kept", "status": "PASS",
                   "detail": "5 unique int8 weight tensors; stored: tflite_int8 5, onnx_int8 5"})
    return checks, violations


def _flash(board: dict, kind: str) -> dict:
    code = None if kind == "linux" else sum(_PER_KERNEL_BYTES.values()) + 48_000
    needed = 11_224 + (code or 0)
    budget = board["flash_bytes"] - board["reserved_flash_bytes"]
    return {
        "model_file": "model_int8.tflite", "model_file_bytes": 11_224, "weights_bytes": 3_221,
        "graph_overhead_bytes": 8_003, "tensor_names_bytes": 3_184, "names_stripped": False,
        "names_stripped_saving_bytes": 3_184, "runtime_code_bytes": code,
        "runtime_code_method": ("not measured: the Linux runtimes' wheels are outside the "
                                "model's flash need" if code is None else
                                "estimate: TFLM core + per-kernel .text sizes of a Cortex-M "
                                "build (arm-none-eabi-size), summed over the model's ops"),
        "runtime_code_per_kernel_bytes": {} if code is None else dict(_PER_KERNEL_BYTES),
        "reserved_bytes": board["reserved_flash_bytes"], "total_bytes": board["flash_bytes"],
        "budget_bytes": budget, "needed_bytes": needed, "headroom_bytes": budget - needed}


def _ram(board: dict, kind: str) -> dict:
    budget = board["ram_bytes"] - board["reserved_ram_bytes"]
    arena = None
    if kind != "linux":
        arena = {"measured_bytes": 8_320, "estimate_bytes": 7_936,
                 "estimate_planned_bytes": 7_168, "estimate_persistent_bytes": 768,
                 "difference_bytes": 384, "difference_percent": 4.84,
                 "build": "64-bit host build of tflite-micro", "twin_measured_bytes": 7_664,
                 "twin_estimate_bytes": 7_568}
    needed = 8_320 if arena else 11_224 + 8_320
    return {"needed_bytes": needed,
            "method": ("TFLM tensor arena, smallest size that allocates and invokes" if arena
                       else "estimate: model file bytes + activations; RSS not measured"),
            "reserved_bytes": board["reserved_ram_bytes"], "total_bytes": board["ram_bytes"],
            "budget_bytes": budget, "headroom_bytes": budget - needed, "arena": arena,
            "peak_rss_bytes": None, "model_bytes": 0 if arena else 11_224,
            "activation_bytes": 3_072}


def _vela() -> dict:
    return {"vela_version": "5.2.0",
            "command": "vela --accelerator-config ethos-u55-256 model_int8.tflite",
            "accelerator_config": "ethos-u55-256", "system_config": "Ethos_U55_High_End_Embedded",
            "memory_mode": "Shared_Sram", "sram_bytes": 6_016, "offchip_flash_bytes": 9_872,
            "npu_ops": 16, "cpu_ops": [], "total_cycles": 21_480, "inference_time_ms": 0.0429,
            "npu_clock_hz": 500_000_000, "label": "Vela's estimate, not a measurement"}


def board_report(kind: str, *, name: str | None = None) -> dict:
    """A version-2 ``report.json`` dict of one board.

    Args:
        kind: ``"tflm"``, ``"linux"`` or ``"ethosu"``.
        name: overrides the board's ``name`` (e.g. to check escaping).
    """
    board = copy.deepcopy(_BOARDS[kind])
    if name is not None:
        board["name"] = name
    model, storage = model_and_storage()
    checks, violations = _checks_and_violations(kind)
    flash, ram = _flash(board, kind), _ram(board, kind)
    runtimes = _INT8_RUNTIMES[kind]
    return {
        "schema_version": 2, "run": RUN, "board": board,
        "verdict": "FAIL" if violations else "PASS",
        "reasons": [c for c in checks if c["status"] == "FAIL"], "checks": checks,
        "violations": violations, "model": model, "storage": storage,
        "accuracy": {
            "split": "test", "n_samples": 360, "float_pytorch": 0.9694444444444444,
            "float_host_runtimes": {"litert (float .tflite)": 0.9694444444444444},
            "int8_pytorch_pt2e": 0.9694444444444444,
            "int8_reference": {"runtime": "litert-ref", "accuracy": 0.9694444444444444},
            "twin_float_pytorch": 0.9777777777777777, "twin_int8_litert_ref": 0.975,
            "int8_runtimes": {rt: acc for rt, (acc, _, _) in runtimes.items()},
            "quantization": {"method": "ptq", "float_pytorch": 0.9694444444444444,
                             "int8_pytorch": 0.9694444444444444, "qat": None,
                             "ptq_int8_pytorch": None, "control_int8_pytorch": None,
                             "qat_recovered_fraction": None}},
        "agreement": {
            "reference": "litert-ref", "tolerance_lsb": 1,
            "reference_description": "LiteRT's reference int8 kernels (OpResolverType.BUILTIN_REF)",
            "output_scale": 0.20629183948040009, "output_zero_point": 38,
            "compared_on": "int8 output values (LSB of the output tensor)",
            "runtimes": {rt: {"runtime_version": "2.3.0", "model_file": "model_int8.tflite",
                              "input_layout": "NHWC", "accuracy": acc, "top1_agreement": 1.0,
                              "max_abs_diff_lsb": lsb, "n_values_differing": n,
                              "within_tolerance": lsb <= 1, "compared_on": "raw",
                              "host_wall_ms": 28.3}
                         for rt, (acc, lsb, n) in runtimes.items()}},
        "footprint": {
            "flash_budget_bytes": flash["budget_bytes"], "ram_budget_bytes": ram["budget_bytes"],
            "model_file_bytes": 11_224, "weights_bytes": 3_221,
            "flash_needed_bytes": flash["needed_bytes"],
            "flash_headroom_bytes": flash["headroom_bytes"],
            "ram_needed_bytes": ram["needed_bytes"],
            "ram_method": ram["method"], "ram_headroom_bytes": ram["headroom_bytes"],
            "arena": {"arena_bytes": 8_320, "planner_reported_bytes": 8_320, "search_steps": 14,
                      "note": "64-bit host build", "twin_arena_bytes": 7_664},
            "notes": [], "flash": flash, "ram": ram, "lut_compression": None},
        "emulated": None,
        "ops": [{"index": i, "op": op[0], "version": op[1]} for i, op in enumerate(_TFLITE_OPS)],
        "per_layer": per_layer(with_vela=kind == "ethosu"),
        "vela": _vela() if kind == "ethosu" else None,
        "provenance": {"command": "tinyshare run configs/digits.toml", "seed": 0,
                       "versions": {"python": "3.11.7", "ai-edge-litert": "2.3.0"},
                       "execution": "host runs use each runtime's x86_64 build",
                       "stage_seconds": {"export": 14.7}},
    }


def fail_flash_budget(report: dict, need_bytes: int = 1_200_000) -> dict:
    """The same report with a flash need over the budget: verdict FAIL, one budget violation."""
    r = copy.deepcopy(report)
    flash = r["footprint"]["flash"]
    flash["needed_bytes"] = need_bytes
    flash["headroom_bytes"] = flash["budget_bytes"] - need_bytes
    r["footprint"]["flash_needed_bytes"] = need_bytes
    r["footprint"]["flash_headroom_bytes"] = flash["headroom_bytes"]
    check = {"name": "flash budget", "status": "FAIL",
             "detail": f"flash need {need_bytes:,} B > budget {flash['budget_bytes']:,} B"}
    r["checks"][0] = check
    r["reasons"].insert(0, check)
    r["violations"].insert(0, {"kind": "budget", "check": "flash budget", "detail": check["detail"],
                               "budget": "flash", "need_bytes": need_bytes,
                               "have_bytes": flash["budget_bytes"],
                               "reserved_bytes": flash["reserved_bytes"]})
    r["verdict"] = "FAIL"
    return r


def summary(reports: list[dict]) -> dict:
    """The run-level summary ``run_html`` takes, built from board reports."""
    return {"run": RUN, "model": reports[0]["model"], "storage": reports[0]["storage"],
            "boards": reports}
