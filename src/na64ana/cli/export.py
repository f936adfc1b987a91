"""'na64ana export hepdata': HEPData submission (tables + pyhf workspaces), validated (hepdata-validator).

Blinded inputs are never exported: no box counts, no observed limits, no workspaces (they hold observations).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import add_out, setup_logging


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export results (HEPData)", description=__doc__)
    formats = p.add_subparsers(dest="format", metavar="<format>", required=True)
    h = formats.add_parser("hepdata", help="HEPData submission tarball, validated", description=__doc__)
    h.add_argument("--results", required=True, metavar="DIR", help="results folder (as for 'na64ana report')")
    add_out(h)
    h.set_defaults(func=run_hepdata)


def run_hepdata(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..presentation import hepdata

    if not Path(args.results).is_dir():
        raise InputError("results folder not found", file=str(args.results))
    setup_logging(args.out, "export")
    hepdata.run_stage(args.results, args.out)
    return 0
