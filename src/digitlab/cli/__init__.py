"""The `digitlab` command line: one module per command, each with `register(subparsers)`.

Printing, progress bars and exit codes live here; the library underneath returns values.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from digitlab import __version__
from digitlab.cli import data, evaluate, export, plot, predict, serve, train
from digitlab.errors import DigitlabError

COMMANDS = (data, train, evaluate, predict, export, plot, serve)


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


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except DigitlabError as exc:
        print(f"digitlab: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("digitlab: interrupted", file=sys.stderr)
        return 130
