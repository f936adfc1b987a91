"""``na64ana``: one command with a subcommand per analysis stage.

Stages, in the order data flows: simulate -> run -> background -> efficiency -> summary -> limits ->
report -> export (physics: yields and cross sections);
``demo`` chains them on the embedded default campaign; ``verify`` checks a results folder against its
provenance. Each subcommand lives in its own module here and
defines ``register(subparsers)``; a handler validates its arguments and makes one library call (the
stage's ``run_stage``). Exit codes: 0 ok, 1 internal error, 2 bad input, 3 bad data,
4 unusable output folder, 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from ..errors import Na64Error

# Subcommand modules in pipeline order (each: register(subparsers) -> sets func=callable(args) -> int).
SUBCOMMANDS = ("simulate", "run", "background", "physics", "efficiency", "summary", "limits", "optimise",
               "closure", "report", "export", "demo", "verify", "datasets")

log = logging.getLogger("na64ana")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every subcommand, or of ``command`` alone (the modules of the others, e.g. ``run``
    with uproot and coffea, ~0.3 s, are then not imported)."""
    parser = argparse.ArgumentParser(
        prog="na64ana",
        description="NA64 missing-energy search for A' -> invisible: simulate ntuples, run the cut flow, "
        "estimate backgrounds, compute the signal yield and the combined 90% CL limits, report.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run 'na64ana <command> --help' for the options of one stage.",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name in SUBCOMMANDS if command not in SUBCOMMANDS else (command,):
        importlib.import_module(f".{name}", __name__).register(sub)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("na64ana")
    except PackageNotFoundError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    # the command is the first word (the top level has only --help and --version, which take no value)
    parser = build_parser(words[0] if words and words[0] in SUBCOMMANDS else None)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from .common import reliable_interrupt

    try:
        with reliable_interrupt():  # Ctrl-C stops every command, even when it lands in a finalizer
            return int(args.func(args) or 0)
    except Na64Error as exc:
        print(f"na64ana {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"na64ana {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
