"""'na64ana closure': signal-injection closure (inject A', run the chain unblinded, fit mu; null limit).

Writes 'DIR/closure.json' and 'DIR/closure.md' plus every intermediate stage output (simulated
campaigns, run outputs, background tables, summaries, efficiency) under DIR. See na64ana.studies.closure.
"""

from __future__ import annotations

import argparse

from . import common


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("closure", help="signal-injection closure test (closure.json)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_campaign(p)
    common.add_out(p)
    common.add_seed(p)
    p.add_argument("--mass", type=float, required=True, metavar="GEV", help="injected A' mass")
    p.add_argument("--eps", type=float, required=True, help="injected mixing strength")
    p.add_argument("--eot-scale", type=float, default=1.0,
                   help="multiply every run's EOT (reduced-EOT closure; default: %(default)s)")
    p.add_argument("--n-signal-mc", type=int, default=20_000,
                   help="generated A' per run for the efficiency (default: %(default)s)")
    p.add_argument("--efficiency-dir", default=None,
                   help="reuse an 'na64ana efficiency' output with this mass instead of simulating")
    common.add_executor(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import pipeline
    from ..studies import closure

    common.setup_logging(None, "closure")
    rec = pipeline.closure_study(args.datasets, args.out, mass=args.mass, eps=args.eps, seed=args.seed,
                                 campaign=args.campaign, runs=args.runs, eot_scale=args.eot_scale,
                                 n_signal_mc=args.n_signal_mc, efficiency_dir=args.efficiency_dir,
                                 executor=args.executor, workers=args.workers)
    print(closure.markdown(rec), end="")
    return 0
