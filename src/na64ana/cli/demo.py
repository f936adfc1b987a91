"""``na64ana demo``: the main job on the embedded default -- simulate runs I-III, cut flows, dimuon benchmark,
side-band background, signal efficiency, summary, combined limits, cut optimisation, plots, report and
HEPData export, all into one folder (``make demo`` -> results/). Blinded unless --unblind."""

from __future__ import annotations

import argparse

from .common import add_seed, add_unblind, setup_logging, show_progress


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the whole chain on the default campaign into one results folder",
                       description=__doc__)
    p.add_argument("--datasets", default="datasets.json", help="datasets file (default: %(default)s)")
    p.add_argument("--campaign", default=None, help="campaign (default: the datasets file's default)")
    p.add_argument("--out", default="results", help="results folder (default: %(default)s)")
    add_seed(p)
    add_unblind(p)
    p.add_argument("--n-signal", type=int, default=20_000,
                   help="generated A' per run and mass (default: %(default)s)")
    p.add_argument("--executor", choices=("iterative", "futures", "dask"), default="iterative")
    p.add_argument("--workers", type=int, default=2)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import pipeline, provenance

    out = provenance.prepare_outdir(args.out, stage="demo")
    log = setup_logging(out, "demo")
    timings = pipeline.demo(out, datasets_file=args.datasets, campaign=args.campaign, seed=args.seed,
                            unblind=args.unblind, n_signal=args.n_signal, executor=args.executor,
                            workers=args.workers, progress=show_progress())
    steps = ", ".join(f"{k} {v:.0f}s" for k, v in timings.items())
    log.info("done in %.0f s: %s", sum(timings.values()), steps)
    log.info("report: %s", out / "report.md")
    return 0
