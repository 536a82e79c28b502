"""The `digitlab` command line: one module per command, each with `register(subparsers)`.

Printing, progress bars and exit codes live here; the library underneath returns values.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from digitlab import __version__
from digitlab.cli import data, evaluate, export, plot, predict, read, serve, train
from digitlab.errors import DigitlabError

COMMANDS = (data, train, evaluate, predict, read, export, plot, serve)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, every command registered."""
    parser = argparse.ArgumentParser(
        prog="digitlab",
        description="Learn, evaluate and serve MNIST-family image classifiers.",
    )
    parser.add_argument("--version", action="version", version=f"digitlab {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    return parser


EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what the shell reports for a Unix tool whose reader went away


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit code.

    When stdout's reader goes away (`digitlab predict RUN x.idx.gz | head -1`) the command stops
    quietly, as Unix tools do: no traceback, the rest of the output discarded, exit code 141
    (128 + SIGPIPE, what a shell shows for `yes | head -1`'s `yes`).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # inside the try: a reader gone during the last flush is a broken pipe too
        return code
    except BrokenPipeError:
        _discard_stdout()
        return EXIT_BROKEN_PIPE
    except DigitlabError as exc:
        print(f"digitlab: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("digitlab: interrupted", file=sys.stderr)
        return 130


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush of unwritten output cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real stdout (e.g. captured by a test): nothing to protect
        pass
