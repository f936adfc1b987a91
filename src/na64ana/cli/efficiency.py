"""``na64ana efficiency``: signal MC per run and mass -> invisible processor -> efficiency.json/.md.

Simulates the A' samples into ``DIR/signal_mc/`` (unless ``--signal-datasets`` names existing ones), runs
the invisible selection over them (``DIR`` is then a complete run output with the ``signal_ecal`` and
N-1 histograms) and writes ``DIR/efficiency.json`` and ``DIR/efficiency.md``, printed at the end.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from . import common

log = logging.getLogger("na64ana.efficiency")


def register(sub: argparse._SubParsersAction) -> None:
    from ..efficiency import DEFAULT_EPS, DEFAULT_MASSES_GeV

    p = sub.add_parser("efficiency", help="signal efficiency per run and A' mass (efficiency.json)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_campaign(p)
    common.add_out(p)
    common.add_seed(p)
    p.add_argument("--masses", nargs="+", type=float, default=list(DEFAULT_MASSES_GeV), metavar="GEV",
                   help="A' masses in GeV (default: 1 MeV - 1 GeV, 10 points)")
    p.add_argument("--n-events", type=int, default=20_000,
                   help="generated A' per run and mass (default: %(default)s)")
    p.add_argument("--eps", type=float, default=DEFAULT_EPS,
                   help="eps of the sample weights; the efficiency does not depend on it "
                   "(default: %(default)s)")
    p.add_argument("--signal-datasets", default=None, metavar="FILE",
                   help="use the signal samples listed in this datasets file instead of simulating")
    p.add_argument("--no-syst", action="store_true",
                   help="'unc' statistical only (default: with the run's published relative systematic)")
    common.add_executor(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import efficiency
    from ..bookkeeping import provenance
    from ..simulation import simulate_signal_samples

    out = provenance.prepare_outdir(args.out, stage="efficiency")
    common.setup_logging(out, "efficiency")
    if args.signal_datasets:
        sig = Path(args.signal_datasets)
    else:
        log.info("simulating %d A' per run and mass (%d masses) into %s", args.n_events, len(args.masses),
                 out / "signal_mc")
        sig = simulate_signal_samples(args.datasets, out_dir=out / "signal_mc", masses_GeV=args.masses,
                                      n_events=args.n_events, eps=args.eps, campaign=args.campaign,
                                      runs=args.runs, seed=args.seed, progress=common.show_progress())
    efficiency.measure(sig, out=out, campaign=args.campaign, runs=args.runs, masses=args.masses,
                       executor=args.executor, workers=args.workers, scheduler=args.scheduler,
                       chunksize=args.chunksize, syst=not args.no_syst)
    print((out / "efficiency.md").read_text(), end="")
    log.info("wrote %s", out / "efficiency.json")
    return 0
