"""'na64ana efficiency': signal MC per run and mass -> invisible processor -> efficiency.json/.md.

Simulates the A' samples into 'DIR/signal_mc/' (unless '--signal-datasets' names existing ones), runs
the invisible selection over them ('DIR' is then a complete run output with the 'signal_ecal' and
N-1 histograms) and writes 'DIR/efficiency.json' and 'DIR/efficiency.md', printed at the end.
"""

from __future__ import annotations

import argparse

from . import common


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

    common.setup_logging(args.out, "efficiency")
    rec = efficiency.run_stage(args.datasets, args.out, signal_datasets=args.signal_datasets,
                               masses=args.masses, n_events=args.n_events, eps=args.eps, seed=args.seed,
                               campaign=args.campaign, runs=args.runs, executor=args.executor,
                               workers=args.workers, scheduler=args.scheduler, chunksize=args.chunksize,
                               syst=not args.no_syst, progress=common.show_progress())
    print(efficiency.markdown(rec), end="")
    return 0
