"""'na64ana efficiency': signal MC per run and mass -> the search's processor -> efficiency.json/.md.

Simulates the signal samples into 'DIR/signal_mc/' (unless '--signal-datasets' names existing ones; the
simulation is called here, the efficiency stage only reads signal-MC datasets), runs the selection of
the production over them ('DIR' is then a complete run output with the signal and N-1 histograms) and
writes 'DIR/efficiency.json' and 'DIR/efficiency.md', printed at the end. '--production': brem (default),
annihilation (invisible selection), primakoff (ALPs, alp selection; '--eps' is g_agg), visible (a
visible-mode campaign).
"""

from __future__ import annotations

import argparse

from ..errors import InputError
from . import common


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("efficiency", help="signal efficiency per run and A' mass (efficiency.json)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_campaign(p)
    common.add_out(p)
    common.add_seed(p)
    p.add_argument("--masses", nargs="+", type=float, default=None, metavar="GEV",
                   help="A' masses in GeV (default: the analysis grid, 1 MeV - 1 GeV, 10 points)")
    p.add_argument("--n-events", type=int, default=20_000,
                   help="generated A' per run and mass (default: %(default)s)")
    p.add_argument("--eps", type=float, default=1e-4,
                   help="eps of the sample weights; the efficiency does not depend on it "
                   "(default: %(default)s)")
    p.add_argument("--signal-datasets", default=None, metavar="FILE",
                   help="use the signal samples listed in this datasets file instead of simulating")
    p.add_argument("--production", default=None, choices=("brem", "annihilation", "primakoff", "visible"),
                   help="signal production (default: brem; visible for a visible-mode campaign)")
    p.add_argument("--no-syst", action="store_true",
                   help="'unc' statistical only (default: with the run's published relative systematic)")
    common.add_executor(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import efficiency, pipeline

    common.setup_logging(args.out, "efficiency")
    if args.masses is not None and not all(m > 0 for m in args.masses):
        raise InputError(f"--masses: every mass must be > 0 GeV, got {args.masses}", field="--masses")
    rec = pipeline.signal_efficiency(
        args.datasets, args.out, masses=args.masses, n_events=args.n_events, eps=args.eps,
        campaign=args.campaign, runs=args.runs, seed=args.seed, production=args.production,
        signal_datasets=args.signal_datasets, executor=args.executor, workers=args.workers,
        scheduler=args.scheduler, chunksize=args.chunksize, syst=not args.no_syst,
        progress=common.show_progress())
    print(efficiency.markdown(rec), end="")
    return 0
