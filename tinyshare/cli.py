"""Command line: parse arguments, build the config, call one library function, say where.

    tinyshare run CONFIG [--until STAGE] [--board NAME ...] [--set key=value ...]
    tinyshare boards list
    tinyshare boards show NAME
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
        return _cmd_boards(args, console)
    except TinyshareError as e:
        print(f"tinyshare: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("tinyshare: interrupted; no partial run folder was kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
