"""``na64ana report``: every available figure (DIR/plots/, PNG + PDF) and DIR/report.md + report.html.

Stages that did not run appear as "not available" sections; a blinded analysis shows no box content.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import setup_logging


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="plots + analysis report (markdown and HTML)", description=__doc__)
    p.add_argument("--results", required=True, metavar="DIR",
                   help="results folder (run output, or a folder holding the stage outputs one level down)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..presentation import report

    if not Path(args.results).is_dir():
        raise InputError("results folder not found", file=str(args.results))
    setup_logging(args.results, "report")
    report.run_stage(args.results)
    return 0
