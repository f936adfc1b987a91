"""``na64ana summary``: run output + background.json + efficiency.json -> DIR/summary.json.

The yields summary handed to ``na64ana limits``: EOT per run (datasets file, minus skipped input files),
efficiency vs mass (signal MC), background and its uncertainty, observed box counts (null when the run
output is blinded: expected limits only). The same builder as ``na64ana demo``.
"""

from __future__ import annotations

import argparse

from .common import add_out, setup_logging

DEFAULT_MASSES = "31 log-spaced, 1 MeV - 1 GeV (the demo's grid)"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("summary", help="yields summary for the limits (summary.json)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-dir", required=True,
                   help="output folder of 'na64ana run' (the observed box counts)")
    p.add_argument("--background", required=True, metavar="PATH",
                   help="background.json or the output folder of 'na64ana background'")
    p.add_argument("--efficiency", required=True, metavar="PATH",
                   help="efficiency.json or the output folder of 'na64ana efficiency'")
    p.add_argument("--datasets", default="datasets.json", help="datasets file of the data (EOT per run)")
    p.add_argument("--campaign", default=None, help="campaign (default: background.json's)")
    add_out(p)
    p.add_argument("--masses", nargs="+", type=float, default=None, metavar="GEV",
                   help=f"A' masses of the limit scan (default: {DEFAULT_MASSES})")
    p.add_argument("--analysis", default=None, help="label of the analysis (default: campaign and data kind)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import summary
    from ..errors import InputError
    from ..pipeline import LIMIT_MASSES_GEV

    masses = LIMIT_MASSES_GEV if args.masses is None else tuple(args.masses)
    if any(not m > 0 for m in masses):
        raise InputError("masses must be positive (GeV)", field="--masses")
    setup_logging(args.out, "summary")
    summary.run_stage(args.run_dir, args.background, args.efficiency, args.datasets, args.out,
                      masses_GeV=masses, analysis=args.analysis, campaign=args.campaign)
    return 0
