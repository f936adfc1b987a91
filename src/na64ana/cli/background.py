"""'na64ana background': side-band-C fits of a run output -> DIR2/background.json (per-run table)."""

from __future__ import annotations

import argparse

from .common import add_out, setup_logging


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("background", help="background in the box from the side bands (background.json)",
                       description=__doc__)
    p.add_argument("--run-dir", required=True, help="output folder of 'na64ana run'")
    add_out(p)
    p.add_argument("--datasets", default="datasets.json", help="datasets file for the EOT per run")
    p.add_argument("--thresholds", nargs="*", type=float, default=[0.5, 2.0], metavar="GEV",
                   help="alternative HCAL zero thresholds for the systematic (default: %(default)s)")
    p.add_argument("--strict-validation", action="store_true",
                   help="a FAILED validation-region verdict (runs[].validation.flag) is an error (exit 3), "
                        "not only a warning recorded in background.json")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import background

    setup_logging(args.out, "background")
    background.run_stage(args.run_dir, args.datasets, args.out, thresholds=args.thresholds,
                         strict_validation=args.strict_validation)
    return 0
