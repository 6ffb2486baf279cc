"""Host side of the emulated runner, exercised on the host's own Python.

``run_emulated`` takes the guest command as an argv prefix; here it is
``[sys.executable]`` (the host venv has ai_edge_litert and onnxruntime), so the guest
script, the file protocol and the error paths are checked without qemu or an image.
The int8 models come from tinyshare's own pipeline (``quantize_ptq`` ->
``export_tflite_int8`` / ``export_onnx_int8``) on a tiny seeded CNN; the same host
builds must give the same integers in and out of the guest process.
Seeds: ``TORCH_SEED`` (model init), ``CALIB_SEED`` (calibration), ``INPUT_SEED`` (inputs).
"""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tinyshare.errors import DataError, ModelFileError, RuntimeUnavailableError
from tinyshare.targets.emulation.run import (
    GUEST_RUNNER,
    EmulatedRun,
    IoQuant,
    emulated_run_name,
    image_prefix,
    onnx_io_quant,
    run_emulated,
    stderr_tail,
)
from tinyshare.targets.runtimes.base import package_version

TORCH_SEED = 20261130
CALIB_SEED = 20261131
INPUT_SEED = 20261132
N_SAMPLES = 24
HOST = [sys.executable]
TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny int8 CNN as .tflite (NHWC int8 I/O) and .onnx (NCHW int8 I/O), plus inputs."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("litert_torch")
    pytest.importorskip("onnx")
    from tinyshare.export.onnx import export_onnx_int8
    from tinyshare.export.tflite import export_tflite_int8
    from tinyshare.models.layers import switch_to_deploy
    from tinyshare.quantize.ptq import quantize_ptq

    class TinyCnn(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = torch.nn.Conv2d(1, 4, 3, padding=1)
            self.conv = torch.nn.Conv2d(4, 8, 3, stride=2, padding=1)
            self.fc = torch.nn.Linear(8 * 4 * 4, 10)

        def forward(self, x):  # x: (N, 1, 8, 8)
            x = torch.relu(self.stem(x))  # (N, 4, 8, 8)
            x = torch.relu(self.conv(x))  # (N, 8, 4, 4)
            return self.fc(torch.flatten(x, 1))  # (N, 10)

    torch.manual_seed(TORCH_SEED)
    model = switch_to_deploy(TinyCnn().eval())
    calib = np.random.default_rng(CALIB_SEED).normal(size=(16, 1, 8, 8)).astype(np.float32)
    qm = quantize_ptq(model, calib, per_channel=True)
    folder = tmp_path_factory.mktemp("emulation_models")
    x = np.random.default_rng(INPUT_SEED).normal(size=(N_SAMPLES, 1, 8, 8)).astype(np.float32)
    return SimpleNamespace(
        tflite=export_tflite_int8(qm, folder / "tiny_int8.tflite"),
        onnx=export_onnx_int8(qm, folder / "tiny_int8.onnx"),
        qm=qm,
        x_nchw=x,
        x_nhwc=np.ascontiguousarray(x.transpose(0, 2, 3, 1)),
    )


# ------------------------------------------------------------------ agreement with host


@pytest.mark.parametrize("runtime, reference_kernels", [("litert-ref", True), ("litert", False)])
def test_litert_guest_equals_host_run_litert(models, runtime, reference_kernels):
    from tinyshare.targets.runtimes.litert import run_litert

    got = run_emulated(HOST, {}, runtime, models.tflite, models.x_nhwc, timeout_s=TIMEOUT_S)
    want = run_litert(models.tflite, models.x_nhwc, reference_kernels=reference_kernels)
    assert isinstance(got, EmulatedRun)
    assert got.outputs.runtime == f"{want.runtime} (emulated)"
    assert got.outputs.raw.dtype == np.int8 and got.outputs.raw.shape == (N_SAMPLES, 10)
    np.testing.assert_array_equal(got.outputs.raw, want.raw)
    assert (got.outputs.output_scale, got.outputs.output_zero_point) == (
        want.output_scale, want.output_zero_point)
    np.testing.assert_array_equal(got.outputs.dequantized, want.dequantized)
    assert got.outputs.runtime_version == want.runtime_version == package_version("ai-edge-litert")
    # the guest read the same input quantization as the pipeline wrote
    assert got.stats["input_scale"] == pytest.approx(models.qm.input_scale, rel=1e-6)
    assert got.stats["input_zero_point"] == models.qm.input_zero_point


@pytest.mark.parametrize("level", ["all", "disable"])
def test_onnxruntime_guest_equals_host_run_onnxruntime(models, level):
    from tinyshare.targets.runtimes.onnxruntime import run_onnxruntime

    got = run_emulated(HOST, {}, "onnxruntime", models.onnx, models.x_nchw,
                       timeout_s=TIMEOUT_S, ort_level=level)
    want = run_onnxruntime(models.onnx, models.x_nchw, optimization=level)
    assert got.outputs.runtime == f"{want.runtime} (emulated)"
    assert got.outputs.raw.dtype == np.int8 and got.outputs.raw.shape == (N_SAMPLES, 10)
    np.testing.assert_array_equal(got.outputs.raw, want.raw)
    assert (got.outputs.output_scale, got.outputs.output_zero_point) == pytest.approx(
        (want.output_scale, want.output_zero_point), rel=1e-6)
    assert got.outputs.runtime_version == package_version("onnxruntime")


def test_onnx_io_quant_reads_the_pipeline_scales(models):
    q = onnx_io_quant(models.onnx)
    qm = models.qm
    assert q.input_scale == pytest.approx(qm.input_scale, rel=1e-6)
    assert q.output_scale == pytest.approx(qm.output_scale, rel=1e-6)
    assert (q.input_zero_point, q.output_zero_point) == (qm.input_zero_point, qm.output_zero_point)


def test_stats_and_command_describe_the_run(models, tmp_path):
    import platform

    run = run_emulated(HOST, {}, "litert-ref", models.tflite, models.x_nhwc,
                       timeout_s=TIMEOUT_S, work_dir=tmp_path)
    s = run.stats
    assert s["runtime"] == "litert-ref" and s["runtime_version"] == package_version("ai-edge-litert")
    assert s["n_samples"] == N_SAMPLES
    assert s["machine"] == platform.machine()
    assert s["python_version"] == platform.python_version()
    assert s["load_ms"] > 0 and s["run_ms"] > 0 and s["peak_rss_kb"] > 10_000
    assert s["output_dtype"] == "int8" and s["input_dtype"] == "int8"
    assert run.outputs.extra["peak_rss_kb"] == s["peak_rss_kb"]
    assert run.outputs.extra["emulated"] == 1
    assert run.wall_s > 0 and run.outputs.wall_ms == pytest.approx(run.wall_s * 1e3)
    argv = shlex.split(run.command)
    assert argv[:2] == [sys.executable, str(GUEST_RUNNER)]
    assert argv[argv.index("--runtime") + 1] == "litert-ref"
    assert argv[argv.index("--model") + 1] == str(Path(models.tflite).resolve())
    # work_dir keeps the exchanged files; the inputs went over unchanged
    with np.load(tmp_path / "in.npz") as data:
        np.testing.assert_array_equal(data["x"], models.x_nhwc)
    assert (tmp_path / "stats.json").is_file() and (tmp_path / "out.npz").is_file()


def test_onnx_command_carries_the_host_io_quant(models):
    q = IoQuant(0.25, -3, 0.5, 7)
    run = run_emulated(HOST, {}, "onnxruntime", models.onnx, models.x_nchw,
                       timeout_s=TIMEOUT_S, io_quant=q, ort_level="disable")
    argv = shlex.split(run.command)
    assert argv[argv.index("--ort-level") + 1] == "disable"
    assert float(argv[argv.index("--input-scale") + 1]) == 0.25
    assert int(argv[argv.index("--input-zero-point") + 1]) == -3
    # the guest used what it was given, not what the file says
    assert (run.outputs.output_scale, run.outputs.output_zero_point) == (0.5, 7)
    assert (run.stats["input_scale"], run.stats["input_zero_point"]) == (0.25, -3)


# ------------------------------------------------------------------------ failures


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_truncated_tflite_reports_the_guest_stderr(models, tmp_path):
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(Path(models.tflite).read_bytes()[:200])
    with pytest.raises(RuntimeUnavailableError) as exc:
        run_emulated(HOST, {}, "litert-ref", broken, models.x_nhwc, timeout_s=TIMEOUT_S)
    text = _one_line(exc)
    assert text.startswith("litert-ref (emulated) on broken.tflite exited with status 3")
    assert f"guest stderr: guest_runner: loading {broken.resolve()} with litert-ref" in text
    assert text.split(" | ")[-1].startswith("guest_runner: error: cannot load")


def test_random_bytes_onnx_reports_the_guest_stderr(models, tmp_path):
    broken = tmp_path / "noise.onnx"
    broken.write_bytes(np.random.default_rng(INPUT_SEED).bytes(512))
    with pytest.raises(RuntimeUnavailableError) as exc:
        run_emulated(HOST, {}, "onnxruntime", broken, models.x_nchw, timeout_s=TIMEOUT_S,
                     io_quant=IoQuant(0.1, 0, 0.1, 0))
    text = _one_line(exc)
    assert "onnxruntime[ORT_ENABLE_ALL] (emulated) on noise.onnx exited with status 3" in text
    assert "guest_runner: error: cannot load" in text


def test_inputs_in_the_wrong_layout_are_reported(models):
    with pytest.raises(RuntimeUnavailableError, match="status 4.*do not fit the model input"):
        run_emulated(HOST, {}, "litert", models.tflite, models.x_nchw, timeout_s=TIMEOUT_S)


def test_guest_killed_by_a_signal_is_named(models):
    crash = [sys.executable, "-c", "import os, signal, sys; "
             "print('loading model', file=sys.stderr, flush=True); "
             "os.kill(os.getpid(), signal.SIGSEGV)"]
    with pytest.raises(RuntimeUnavailableError) as exc:
        run_emulated(crash, {}, "litert", models.tflite, models.x_nhwc, timeout_s=TIMEOUT_S)
    text = _one_line(exc)
    assert "litert-xnnpack (emulated) on tiny_int8.tflite was killed by SIGSEGV" in text
    assert text.endswith("guest stderr: loading model")


def test_timeout_kills_the_guest_and_its_children(models, tmp_path):
    pid_file = tmp_path / "child.pid"
    hang = [sys.executable, "-c", "import subprocess, sys, time; "
            "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
            f"open({str(pid_file)!r}, 'w').write(str(p.pid)); "
            "print('started', file=sys.stderr, flush=True); time.sleep(60)"]
    start = time.perf_counter()
    with pytest.raises(RuntimeUnavailableError) as exc:
        run_emulated(hang, {}, "litert-ref", models.tflite, models.x_nhwc, timeout_s=1.5)
    assert time.perf_counter() - start < 10
    text = _one_line(exc)
    assert "litert-ref (emulated) on tiny_int8.tflite timed out after 1.5 s" in text
    assert text.endswith("guest stderr: started")
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def test_a_guest_past_the_memory_limit_is_killed(models):
    hog = [sys.executable, "-c", "import sys, time; b = b'x' * (300 << 20); "
           "print('allocated', file=sys.stderr, flush=True); time.sleep(60)"]
    start = time.perf_counter()
    with pytest.raises(RuntimeUnavailableError) as exc:
        run_emulated(hog, {}, "litert-ref", models.tflite, models.x_nhwc, timeout_s=60,
                     memory_limit_bytes=100 << 20)
    assert time.perf_counter() - start < 20  # the watchdog, not the 60 s timeout
    text = _one_line(exc)
    assert "litert-ref (emulated) on tiny_int8.tflite passed the memory limit of 100 MiB" in text
    resident = int(text.split("(resident ")[1].split(" MiB")[0])
    assert resident > 100


def test_stopping_guests_kills_the_running_ones_and_refuses_the_next(models):
    """An interrupted run stops the guests its worker threads wait on (validate runs boards
    side by side, each board's runtimes one after another): every running guest is killed,
    and the next one a worker starts is refused, so the workers end at once."""
    import threading

    from tinyshare.targets.emulation.run import allow_guests, stop_guests

    hang = [sys.executable, "-c", "import sys, time; "
            "print('started', file=sys.stderr, flush=True); time.sleep(60)"]
    from tinyshare.targets.emulation import run as run_module

    errors: list[str] = []

    def board():  # two runtimes, one after the other, failures recorded (emulate_board)
        for _ in range(2):
            try:
                run_emulated(hang, {}, "litert-ref", models.tflite, models.x_nhwc,
                             timeout_s=60)
            except RuntimeUnavailableError as exc:
                errors.append(str(exc))

    threads = [threading.Thread(target=board) for _ in range(2)]
    start = time.perf_counter()
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        while len(run_module._LIVE) < 2:  # both boards' first guests are running
            assert time.monotonic() < deadline, "the guests did not start"
            time.sleep(0.02)
        killed = stop_guests()
        for t in threads:
            t.join(timeout=20)
    finally:
        allow_guests()
    assert not any(t.is_alive() for t in threads)
    assert time.perf_counter() - start < 20  # not the 60 s sleeps
    assert killed == 2
    assert sum("killed by SIGKILL" in e for e in errors) == 2, errors
    assert sum("not started: the run was interrupted" in e for e in errors) == 2, errors


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def test_env_is_passed_and_exit_status_reported(models):
    probe = [sys.executable, "-c", "import os, sys; "
             "sys.stderr.write('mark=' + os.environ.get('TS_MARK', 'unset') + '\\n'); sys.exit(7)"]
    with pytest.raises(RuntimeUnavailableError) as exc:
        run_emulated(probe, {"TS_MARK": "image-7"}, "tflite-runtime", models.tflite,
                     models.x_nhwc, timeout_s=TIMEOUT_S)
    text = _one_line(exc)
    assert "tflite-runtime (emulated) on tiny_int8.tflite exited with status 7" in text
    assert text.endswith("guest stderr: mark=image-7")


def test_guest_that_writes_nothing_is_an_error(models):
    with pytest.raises(RuntimeUnavailableError, match="wrote no readable results"):
        run_emulated([sys.executable, "-c", "pass"], {}, "litert", models.tflite,
                     models.x_nhwc, timeout_s=TIMEOUT_S)


def test_a_prefix_that_cannot_start_is_an_error(models, tmp_path):
    with pytest.raises(RuntimeUnavailableError, match="cannot start"):
        run_emulated([str(tmp_path / "no-such-qemu")], {}, "litert", models.tflite,
                     models.x_nhwc, timeout_s=TIMEOUT_S)


def test_bad_arguments_fail_before_starting(tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(b"\0" * 16)
    x = np.zeros((2, 8, 8, 1), np.float32)
    with pytest.raises(DataError, match="unknown runtime 'tflm'"):
        run_emulated(HOST, {}, "tflm", model, x, timeout_s=5)
    with pytest.raises(DataError, match="ort_level"):
        run_emulated(HOST, {}, "onnxruntime", model, x, timeout_s=5, ort_level="basic")
    with pytest.raises(DataError, match="timeout_s"):
        run_emulated(HOST, {}, "litert", model, x, timeout_s=0)
    with pytest.raises(DataError, match="batch"):
        run_emulated(HOST, {}, "litert", model, x, timeout_s=5, batch=0)
    with pytest.raises(ModelFileError, match="not found"):
        run_emulated(HOST, {}, "litert", tmp_path / "absent.tflite", x, timeout_s=5)
    with pytest.raises(DataError):
        run_emulated(HOST, {}, "litert", model, np.zeros((0, 8, 8, 1), np.float32), timeout_s=5)


def test_image_prefix_strips_the_script_from_the_image_command():
    calls = []

    class FakeImage:
        def command(self, runtime, script, args=(), core=None):
            calls.append((runtime, script, tuple(args), core))
            return ["qemu-aarch64-static", "-cpu", "cortex-a72", "python3.11", script], {"A": "1"}

    assert image_prefix(FakeImage(), "litert-ref", "cortex-a72") == (
        ["qemu-aarch64-static", "-cpu", "cortex-a72", "python3.11"], {"A": "1"})
    assert calls == [("litert", GUEST_RUNNER, (), "cortex-a72")]
    image_prefix(FakeImage(), "tflite-runtime")
    assert calls[-1][0] == "tflite-runtime"
    with pytest.raises(DataError):
        image_prefix(FakeImage(), "tflm")


def test_run_names():
    assert emulated_run_name("litert") == "litert-xnnpack (emulated)"
    assert emulated_run_name("litert-ref") == "litert-ref (emulated)"
    assert emulated_run_name("onnxruntime", "disable") == "onnxruntime[ORT_DISABLE_ALL] (emulated)"
    assert emulated_run_name("tflite-runtime") == "tflite-runtime (emulated)"


def test_stderr_tail_keeps_the_last_five_nonempty_lines():
    text = "\n".join(f"line {i}" for i in range(8)) + "\n\n  \n"
    assert stderr_tail(text) == "line 3 | line 4 | line 5 | line 6 | line 7"
    assert stderr_tail("") == ""
