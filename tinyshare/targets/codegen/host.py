"""Build the generated C for the host with gcc and run it on int8 samples.

The host build is the reference check of the generator: the same C that later goes to a
board, compiled with ``gcc -O2 -std=c99 -Wall -Wextra -Werror`` together with a small
harness (``main.c``) that reads N int8 input vectors from a binary file and writes N int8
output vectors. ``<exe> --info`` prints the input and output dimensions.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from tinyshare.errors import DataError, RuntimeUnavailableError
from tinyshare.targets import _proc
from tinyshare.targets.codegen._model import GeneratedModel

CFLAGS = ("-O2", "-std=c99", "-Wall", "-Wextra", "-Werror")
_BUILD_TIMEOUT_S = 120.0

_HARNESS = r"""/* Host harness for the generated model (written by tinyshare).
 * usage: model_host IN.bin OUT.bin   N int8 inputs in, N int8 outputs out
 *        model_host --info            prints the input and output dimensions */
#include <stdio.h>
#include <string.h>

#include "model.h"

static int8_t in_buf[MODEL_INPUT_BYTES];
static int8_t out_buf[MODEL_OUTPUT_BYTES];

static void print_dims(const char *what, const int *dims, int rank)
{
    int i;
    printf("%s", what);
    for (i = 0; i < rank; ++i) {
        printf(" %d", dims[i]);
    }
    printf("\n");
}

int main(int argc, char **argv)
{
    static const int in_dims[] = MODEL_INPUT_DIMS;
    static const int out_dims[] = MODEL_OUTPUT_DIMS;
    FILE *fin, *fout;
    size_t got;
    if (argc == 2 && strcmp(argv[1], "--info") == 0) {
        print_dims("input", in_dims, MODEL_INPUT_RANK);
        print_dims("output", out_dims, MODEL_OUTPUT_RANK);
        return 0;
    }
    if (argc != 3) {
        fprintf(stderr, "usage: %s IN.bin OUT.bin | --info\n", argv[0]);
        return 2;
    }
    fin = fopen(argv[1], "rb");
    fout = fopen(argv[2], "wb");
    if (fin == NULL || fout == NULL) {
        fprintf(stderr, "cannot open %s or %s\n", argv[1], argv[2]);
        return 2;
    }
    while ((got = fread(in_buf, 1, sizeof in_buf, fin)) == sizeof in_buf) {
        if (model_invoke(in_buf, out_buf) != 0
                || fwrite(out_buf, 1, sizeof out_buf, fout) != sizeof out_buf) {
            fprintf(stderr, "model_invoke or write failed\n");
            return 1;
        }
    }
    if (got != 0 || ferror(fin)) {
        fprintf(stderr, "input is not a whole number of %d-byte samples\n", MODEL_INPUT_BYTES);
        return 1;
    }
    fclose(fin);
    return fclose(fout) == 0 ? 0 : 1;
}
"""


def build_host(generated: GeneratedModel, out_dir: str | Path | None = None, *,
               compiler: str = "gcc", extra_flags: tuple[str, ...] = ()) -> Path:
    """Compile the generated model and the harness into a host executable.

    Args:
        generated: what ``generate_c`` returned.
        out_dir: where to write ``main.c`` and the executable; default ``generated.out_dir``.
        compiler: the C compiler on ``PATH`` (gcc or clang; flags ``CFLAGS``).
        extra_flags: more compiler flags, e.g. ``("-DTS_SINGLE_ROUNDING=0",)``.

    Returns:
        Path of the executable (``model_host``).

    Raises:
        RuntimeUnavailableError: the compiler is missing, fails (the message quotes its
            last lines) or takes longer than 120 s.
    """
    out = Path(out_dir) if out_dir is not None else generated.out_dir
    out.mkdir(parents=True, exist_ok=True)
    main_c = out / "main.c"
    main_c.write_text(_HARNESS)
    exe = out / "model_host"
    cc = _proc.find_tool(compiler)
    _proc.run([cc, *CFLAGS, *extra_flags, f"-I{generated.out_dir}", "-o", exe, main_c, *generated.sources],
              timeout_s=_BUILD_TIMEOUT_S, what=f"{compiler} build of {generated.model_c}")
    return exe


def _dims(exe: Path, timeout_s: float) -> tuple[tuple[int, ...], tuple[int, ...]]:
    text = _proc.run([exe, "--info"], timeout_s=timeout_s, what=f"{exe.name} --info").stdout
    rows = {line.split()[0]: tuple(int(v) for v in line.split()[1:]) for line in text.splitlines()
            if line.strip()}
    if set(rows) != {"input", "output"}:
        raise RuntimeUnavailableError(f"{exe}: unexpected --info output {text!r}")
    return rows["input"], rows["output"]


def run_host(exe: str | Path, x_int8: np.ndarray, *, timeout_s: float = 120.0) -> np.ndarray:
    """Run a host build on N int8 samples.

    Args:
        exe: the executable from ``build_host``.
        x_int8: (N, *input_shape[1:]) int8 samples, already quantized with the model's
            input scale and zero point (NHWC for image models).
        timeout_s: wall-clock limit in seconds.

    Returns:
        (N, *output_shape[1:]) int8 outputs.

    Raises:
        DataError: ``x_int8`` is not int8 or does not hold whole input samples.
        RuntimeUnavailableError: the executable fails, is missing or times out.
    """
    exe = Path(exe)
    x = np.asarray(x_int8)
    in_dims, out_dims = _dims(exe, timeout_s)
    sample = int(np.prod(in_dims[1:], dtype=np.int64))
    if x.dtype != np.int8:
        raise DataError(f"x_int8 must be int8, got {x.dtype}")
    if x.ndim < 1 or int(np.prod(x.shape[1:], dtype=np.int64)) != sample:
        raise DataError(f"x_int8 has shape {x.shape}; expected (N, {', '.join(map(str, in_dims[1:]))})")
    n = x.shape[0]
    with tempfile.TemporaryDirectory(prefix="tinyshare-host-") as tmp:
        src, dst = Path(tmp) / "x.bin", Path(tmp) / "y.bin"
        src.write_bytes(np.ascontiguousarray(x).tobytes())
        _proc.run([exe, src, dst], timeout_s=timeout_s, what=f"{exe.name} on {n} samples")
        y = np.frombuffer(dst.read_bytes(), dtype=np.int8)
    return y.reshape(n, *out_dims[1:]).copy()
