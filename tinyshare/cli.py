"""Command line: parse arguments, build the config, call one library function, say where.

    tinyshare run CONFIG [--until STAGE] [--board NAME ...] [--set key=value ...]
    tinyshare boards list
    tinyshare boards show NAME
    tinyshare inspect MODEL [--json]
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys

from tinyshare.errors import TinyshareError
from tinyshare.targets.runtimes.registry import OS_NAMES

STRICT_FAIL_EXIT = 1  # `run --strict` and a board FAILed; 2 stays "bad input"


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
        result = run(cfg, until=until, progress=progress, command=command)
    finally:
        if tasks:
            bar.stop()
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
    ``STRICT_FAIL_EXIT`` (1) when ``run --strict`` finds a board FAIL, 3 when a report does
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
        return _cmd_boards(args, console)
    except TinyshareError as e:
        print(f"tinyshare: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("tinyshare: interrupted; no partial run folder was kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
