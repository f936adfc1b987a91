"""``na64ana background``: side-band-C fits of a run output -> DIR2/background.json (per-run table)."""

from __future__ import annotations

import argparse
import logging

from .common import add_out, setup_logging

log = logging.getLogger("na64ana.background")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("background", help="background in the box from the side bands (background.json)",
                       description=__doc__)
    p.add_argument("--run-dir", required=True, help="output folder of 'na64ana run'")
    add_out(p)
    p.add_argument("--datasets", default="datasets.json", help="datasets file for the EOT per run")
    p.add_argument("--thresholds", nargs="*", type=float, default=[0.5, 2.0], metavar="GEV",
                   help="alternative HCAL zero thresholds for the systematic (default: %(default)s)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import background as bg
    from ..bookkeeping import provenance

    out = provenance.prepare_outdir(args.out, stage="background")
    setup_logging(out, "background")
    result = bg.table_from_run(args.run_dir, args.datasets, thresholds=args.thresholds)
    provenance.write_json(out / "background.json", result)
    provenance.write(out, "background", run_dir=str(args.run_dir), thresholds=args.thresholds)
    log.info("wrote %s", out / "background.json")
    return 0
