"""Command line: parse arguments, build the config, call one library function, say where.

    tinyshare run CONFIG [--until STAGE] [--board NAME ...] [--set key=value ...]
    tinyshare boards list
    tinyshare boards show NAME
    tinyshare inspect MODEL [--json]
    tinyshare verify RUN_DIR
    tinyshare check MODEL --board NAME [--data NPZ] [--out DIR]
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys

from tinyshare.errors import TinyshareError
from tinyshare.targets.runtimes.registry import OS_NAMES

STRICT_FAIL_EXIT = 1  # `run --strict` and a board FAILed; 2 stays "bad input"
VERIFY_FAIL_EXIT = 1  # `verify`: a file differs, is missing or is unlisted
CHECK_FAIL_EXIT = 1  # `check`: an op is unsupported or the model does not fit


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tinyshare",
        description="Train, quantize (int8), export and validate weight-shared tiny models "
        "for embedded boards.",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log each stage")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the pipeline for a config")
    r.add_argument("config", help="a TOML run config, e.g. configs/digits.toml")
    r.add_argument("--until", default="report",
                   help="last stage: data, train, quantize, export, validate, report")
    r.add_argument("--board", action="append", default=[], metavar="NAME",
                   help="target board (repeatable); replaces the config's boards")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. train.epochs=5 (repeatable)")
    r.add_argument("--strict", action="store_true",
                   help=f"exit {STRICT_FAIL_EXIT} when any board's verdict is FAIL (for CI gates)")
    r.add_argument("--fresh", action="store_true",
                   help="run every stage, reusing nothing from an earlier or interrupted run")
    b = sub.add_parser("boards", help="list or show board profiles")
    bsub = b.add_subparsers(dest="boards_command", required=True)
    bl = bsub.add_parser("list", help="list the known boards")
    bl.add_argument("--names", action="store_true", help="print only the names, one per line")
    bl.add_argument("--os", choices=OS_NAMES, help="only boards with this OS")
    s = bsub.add_parser("show", help="show one board profile")
    s.add_argument("name", help="a board name or a path to a board .toml")
    su = bsub.add_parser("setup", help="build (or check) a Linux board's device image")
    su.add_argument("name", help="a Linux board name or a path to a board .toml")
    i = sub.add_parser("inspect", help="print the sharing report of any .tflite / .onnx file")
    i.add_argument("model", help="a .tflite or .onnx file")
    i.add_argument("--json", action="store_true", help="print the report as JSON")
    v = sub.add_parser("verify", help="re-hash a run folder's files against its manifests")
    v.add_argument("run_dir", help="a run folder, e.g. runs/digits")
    c = sub.add_parser("check", help="check any .tflite / .onnx file against a board: op "
                       "support, footprint and, with --data, a validation run")
    c.add_argument("model", help="a .tflite or .onnx file")
    c.add_argument("--board", required=True, metavar="NAME",
                   help="a board name (tinyshare boards list) or a board .toml")
    c.add_argument("--data", metavar="NPZ", help="an .npz with x (N, ...) float32 in the "
                   "model's input layout and optional y (N,) int labels")
    c.add_argument("--out", metavar="DIR",
                   help="output folder for check.json and check.md (default runs/check-<stem>)")
    _one_line_usage_errors(c)
    return p


def _cmd_run(args, console) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    from rich.progress import TimeElapsedColumn

    from tinyshare.config import load_config
    from tinyshare.pipeline.stages import Stage, run

    cfg = load_config(args.config, list(args.set))
    if args.board:
        cfg = cfg.model_copy(update={"boards": list(args.board)})  # names checked by run()
    until = Stage.parse(args.until)
    _quiet_torch_logs(args.verbose)
    command = "tinyshare " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    bar = Progress(TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), console=console, transient=False)
    tasks: dict[str, int] = {}

    def progress(task: str, done: int, total: int) -> None:
        if not tasks:
            bar.start()  # only once work starts, so input errors print nothing but one line
        if task not in tasks:
            tasks[task] = bar.add_task(task, total=total)
        bar.update(tasks[task], completed=done, total=total)

    try:
        result = run(cfg, until=until, progress=progress, command=command,
                     resume=not args.fresh)
    finally:
        if tasks:
            bar.stop()
    if result.up_to_date:
        console.print(f"{result.run_dir} is up to date (same config, boards, versions and "
                      "code, files intact): nothing ran; --fresh runs it again", soft_wrap=True)
    elif result.reused:
        console.print(f"Reused from an earlier run: {', '.join(result.reused)} (same inputs, "
                      "files checked against their manifest)", soft_wrap=True)
    for board, verdict in result.verdicts.items():
        style = "green" if verdict == "PASS" else "red"
        console.print(f"  {board:<18} [{style}]{verdict}[/{style}]  "
                      f"{result.board_reports[board]}", soft_wrap=True)
    if result.summary_report:
        console.print(f"Report: {result.summary_report}", soft_wrap=True)
        if result.html_report:
            console.print(f"HTML:   {result.html_report}", soft_wrap=True)
    else:
        console.print(f"Run folder (stopped after {until.name.lower()}): {result.run_dir}",
                      soft_wrap=True)
    failed = [b for b, v in result.verdicts.items() if v != "PASS"]
    if args.strict and failed:
        print(f"tinyshare: --strict: FAIL on {', '.join(failed)} (violations in each board's "
              "report.md)", file=sys.stderr)
        return STRICT_FAIL_EXIT
    return 0


def _cmd_boards(args, console) -> int:
    from tinyshare.targets.board import board_details, boards_table
    from tinyshare.targets.board_registry import list_boards, load_board

    if args.boards_command == "list":
        boards = [b for b in list_boards() if args.os in (None, b.os)]
        if args.names:
            print("\n".join(b.name for b in boards))
        else:
            console.print(boards_table(boards))
    elif args.boards_command == "setup":
        from tinyshare.pipeline.emulate import board_image

        image = board_image(load_board(args.name))
        console.print(f"Device image for {args.name}: {image.root}", soft_wrap=True)
        console.print(f"Manifest: {image.manifest}", soft_wrap=True)
    else:
        console.print(board_details(load_board(args.name)))
    return 0


def _cmd_inspect(args, console) -> int:
    from tinyshare.export.sharing_report import sharing_report

    report = sharing_report(args.model)
    if args.json:
        import json

        print(json.dumps(report.as_dict(), indent=2))
    else:
        _print_sharing_report(report, console)
    return 0


def _cmd_verify(args, console) -> int:
    """Exit 0 when every file matches, ``VERIFY_FAIL_EXIT`` when one does not; a path that
    is not a run folder is a ``RunFolderError`` (exit 2)."""
    from rich.table import Table

    from tinyshare.pipeline.verify import verify_run

    result = verify_run(args.run_dir)
    stages = len(result.manifests) - 1
    if result.ok:
        console.print(f"[green]OK[/green]: all {result.files_checked} files of "
                      f"{result.run_dir} match manifest.json and {stages} stage manifests",
                      soft_wrap=True)
        return 0
    table = Table(title=f"{result.run_dir}: {len(result.problems)} of {result.files_checked} "
                  "files do not match", title_justify="left")
    for col in ("file", "problem", "detail", "manifests"):
        table.add_column(col, overflow="fold")
    for p in result.problems:
        table.add_row(p.path, f"[red]{p.kind}[/red]", p.detail, ", ".join(p.manifests))
    console.print(table)
    names = ", ".join(f"{p.path} ({p.kind})" for p in result.problems)
    print(f"tinyshare: verify: {len(result.problems)} files do not match: {names}",
          file=sys.stderr)
    return VERIFY_FAIL_EXIT


def _one_line_usage_errors(parser: argparse.ArgumentParser) -> None:
    """Make a (sub)parser's usage errors one line on stderr, exit 2, like every other bad input
    (argparse prints the usage line first)."""
    def error(message: str):
        parser.exit(2, f"{parser.prog}: error: {message} (see {parser.prog} --help)\n")

    parser.error = error


def _cmd_check(args, console) -> int:
    """Exit 0 when every op is supported and the model fits, ``CHECK_FAIL_EXIT`` when not."""
    from tinyshare.pipeline.check_model import check_model

    result = check_model(args.model, args.board, data=args.data, out=args.out)
    _print_check(result, console)
    if not result.passed:
        print(f"tinyshare: check: FAIL on {result.board.name}: {'; '.join(result.reasons)}",
              file=sys.stderr)
        return CHECK_FAIL_EXIT
    return 0


def _print_check(r, console) -> None:
    """Print a ``ModelCheck``: op support, footprint, the runs on the data, the verdict."""
    from rich.markup import escape
    from rich.table import Table

    def size(n: int | None) -> str:
        return "unknown" if n is None else f"{n:,} B"

    info, fp = r.info, r.footprint
    console.print(f"{r.model} ({info.format}, {info.file_bytes:,} bytes, {len(info.ops)} ops) "
                  f"on {r.board.name}", soft_wrap=True, markup=False)
    ops = Table(title="Op support", title_justify="left")
    for col in ("runtime", "ok", "how", "detail"):
        ops.add_column(col, overflow="fold")
    for o in r.runtimes:
        ok = "n/a" if not o.applies else "[green]yes[/green]" if o.ok else "[red]NO[/red]"
        ops.add_row(o.runtime, ok, o.method, escape(o.detail))  # names come from the file
    console.print(ops)
    mem = Table(title="Footprint", title_justify="left")
    for col in ("", "need", "budget", "headroom", "how"):
        mem.add_column(col, justify="left" if col in ("", "how") else "right", overflow="fold")
    code = f"; runtime code {size(fp.runtime_flash_bytes)}"
    mem.add_row("flash", size(fp.flash_needed_bytes), size(fp.flash_budget_bytes),
                size(fp.flash_headroom_bytes), f"model file {size(fp.model_file_bytes)}{code}")
    how = (f"TFLM arena measured {size(r.ram.measured_bytes)}, estimate "
           f"{size(r.ram.estimate_bytes)}" if r.ram.measured_bytes is not None
           else fp.ram_method.split(":")[0])
    mem.add_row("RAM", size(fp.ram_needed_bytes), size(fp.ram_budget_bytes),
                size(fp.ram_headroom_bytes), how)
    console.print(mem)
    if r.runs:
        runs = Table(title=f"Runs on {escape(str(r.data))} ({r.n_samples} samples)",
                     title_justify="left")
        for col in ("runtime", "top-1", "top-1 agreement", "max diff (LSB)", "differing"):
            runs.add_column(col, justify="left" if col == "runtime" else "right")
        for run in r.runs:
            runs.add_row(escape(run.runtime) + (" (reference)" if run.reference else ""),
                         "-" if run.top1 is None else f"{run.top1:.4f}",
                         f"{run.top1_agreement:.4f}",
                         "-" if run.max_abs_diff_lsb is None else str(run.max_abs_diff_lsb),
                         str(run.n_values_differing))
        console.print(runs)
    for note in r.notes:
        console.print(f"note: {note}", soft_wrap=True, markup=False)
    verdict = "[green]PASS[/green]" if r.passed else "[red]FAIL[/red]"
    console.print(f"{verdict}  {escape(str(r.out_dir / 'check.json'))}", soft_wrap=True)


def _print_sharing_report(report, console) -> None:
    """Print a ``SharingReport``: totals, then the sharing groups and expanded copies."""
    from rich.table import Table

    def label(storage: str) -> str:
        return f"buffer {storage}" if report.format == "tflite" else storage

    console.print(f"{report.path} ({report.format}): {report.file_bytes:,} bytes; "
                  f"stored weights {report.stored_weight_bytes:,} bytes in "
                  f"{report.stored_weight_tensors} tensors", soft_wrap=True)
    console.print(f"Parameters: {report.unique_params:,} unique, "
                  f"{report.params_as_used:,} as used", soft_wrap=True)
    if report.groups:
        groups = Table(title=f"Sharing groups ({len(report.groups)})", title_justify="left")
        for col in ("storage", "tensors", "ops reading it", "bytes"):
            groups.add_column(col, justify="right" if col == "bytes" else "left")
        for g in report.groups:
            groups.add_row(label(g.storage), "\n".join(g.tensor_names),
                           ", ".join(f"{i} {code}" for i, code in g.ops), f"{g.nbytes:,}")
        console.print(groups)
    else:
        console.print("Sharing groups: none (no stored weight is read by more than one op)")
    if not report.expanded_copies:
        console.print("Expanded copies: none")
        return
    copies = Table(title=f"Expanded copies ({len(report.expanded_copies)}): "
                   f"{report.expanded_saved_bytes:,} bytes to save", title_justify="left")
    for col in ("tensor", "storage", "shape", "repeats", "how", "bytes", "once", "saved"):
        copies.add_column(col, justify="right" if col in ("bytes", "once", "saved") else "left")
    for c in report.expanded_copies:
        copies.add_row(c.tensor, label(c.storage), f"{list(c.shape)} {c.dtype}",
                       str(list(c.smaller_shape)), c.how, f"{c.stored_bytes:,}",
                       f"{c.once_bytes:,}", f"{c.saved_bytes:,}")
    console.print(copies)


_NOISY_LOGGERS = ("torch", "torchao", "root", "absl", "litert_torch", "onnxscript", "jax")


def _quiet_third_party(verbose: bool) -> None:
    """Keep the terminal for our progress and results: silence libraries' chatter.

    C++ runtimes read their log levels from the environment, so this runs before any of
    them is imported. ``--verbose`` leaves everything on.
    """
    if verbose:
        return
    import os
    import warnings

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GLOG_minloglevel", "3")
    os.environ.setdefault("ORT_LOG_SEVERITY_LEVEL", "3")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"(torch|torchao|onnxscript)")
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def _quiet_torch_logs(verbose: bool) -> None:
    """torch configures its loggers when imported, so they are quieted after that."""
    if verbose:
        return
    import torch  # noqa: F401  (the run needs it anyway)

    for name in ("torch", "torch.onnx", "torch.utils._pytree", "torch.export"):
        logging.getLogger(name).setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    """Entry point. Returns the exit code: 0 ok, 2 bad input (one line on stderr),
    ``STRICT_FAIL_EXIT`` (1) when ``run --strict`` finds a board FAIL, ``VERIFY_FAIL_EXIT`` (1)
    when ``verify`` finds a file that does not match its manifests, 3 when a report does
    not match its schema (a tinyshare bug), 130 on Ctrl-C."""
    from rich.console import Console

    args = _parser().parse_args(argv)
    _quiet_third_party(args.verbose)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    # Piped output (CI logs, files) gets wide tables instead of rich's 80-column default.
    console = Console() if sys.stdout.isatty() else Console(width=160)
    try:
        if args.command == "run":
            return _cmd_run(args, console)
        if args.command == "inspect":
            return _cmd_inspect(args, console)
        if args.command == "verify":
            return _cmd_verify(args, console)
        if args.command == "check":
            return _cmd_check(args, console)
        return _cmd_boards(args, console)
    except TinyshareError as e:
        print(f"tinyshare: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("tinyshare: interrupted; no partial run folder was kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
