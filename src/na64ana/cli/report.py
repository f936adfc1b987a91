"""'na64ana report': every figure the report shows (DIR/plots/, PNG; --pdf adds PDFs) and DIR/report.md
+ report.html.

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
    p.add_argument("--compare", action="append", default=[], metavar="FILE[:LABEL]",
                   help="overlay your own eps(m_A') curve on the limit plot: a CSV with two columns, A' mass "
                   "in GeV and the eps limit ('#' comments and a header line allowed); repeatable")
    p.add_argument("--pdf", action="store_true",
                   help="also write every figure as PDF (for a paper; about doubles the drawing time)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..presentation import report

    if not Path(args.results).is_dir():
        raise InputError("results folder not found", file=str(args.results))
    setup_logging(args.results, "report")
    for spec in args.compare:
        report.read_curve(spec)  # a bad curve file is a one-line input error before anything is drawn
    report.run_stage(args.results, compare=args.compare or None, pdf=args.pdf)
    return 0
