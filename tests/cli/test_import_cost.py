"""Import cost: the quick commands never load the heavy runtimes (STYLE.md: heavy runtimes
are imported inside the functions that need them). Each command runs in a fresh
interpreter, which then lists the modules it loaded."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "torchao", "litert_torch", "ai_edge_litert", "onnxruntime", "onnx",
         "tflite_micro", "ethosu", "matplotlib", "sklearn", "numpy")

_PROBE = """
import contextlib, io, json, sys
from tinyshare.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        code = main(sys.argv[1:])
    except SystemExit as exc:
        code = exc.code
print(json.dumps({"code": code, "modules": sorted(m.split(".")[0] for m in sys.modules)}))
"""


def _loaded(*argv: str) -> tuple[int, set[str]]:
    proc = subprocess.run([sys.executable, "-c", _PROBE, *argv], capture_output=True,
                          text=True, timeout=120, check=True)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return out["code"], set(out["modules"])


@pytest.mark.parametrize("argv", [("--help",), ("boards", "list"), ("run", "--help")])
def test_quick_commands_do_not_import_heavy_runtimes(argv):
    code, modules = _loaded(*argv)
    assert code == 0
    assert {"tinyshare", "rich", "argparse"} <= modules  # the probe sees what loaded
    assert sorted(modules & set(HEAVY)) == []
