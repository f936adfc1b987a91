"""na64ana demo: the main job on the embedded default -- simulate runs I-III, cut flows, dimuon benchmark,
side-band background, signal efficiency, summary, combined limits, cut optimisation, plots, report and
HEPData export, all into one folder (make demo -> results/). Blinded unless --unblind.
With --data, the given datasets file lists the data (real ntuples or simulated elsewhere) and the
simulation of the data is skipped; the signal and dimuon MC are still simulated from --datasets."""

from __future__ import annotations

import argparse
import time

from .common import add_seed, add_unblind, setup_logging, show_progress


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the whole chain on the default campaign into one results folder",
                       description=__doc__)
    p.add_argument("--datasets", default="datasets.json", help="datasets file (default: %(default)s)")
    p.add_argument("--campaign", default=None, help="campaign (default: the datasets file's default)")
    p.add_argument("--data", default=None, metavar="FILE",
                   help="a datasets.json whose files are the data (e.g. real ntuples): skip the simulation "
                        "of the data; runs must match the campaign of --datasets")
    p.add_argument("--out", default="results", help="results folder (default: %(default)s)")
    add_seed(p)
    add_unblind(p)
    p.add_argument("--n-signal", type=int, default=20_000,
                   help="generated A' per run and mass (default: %(default)s)")
    p.add_argument("--efficiency-masses", type=float, nargs="+", default=None, metavar="GEV",
                   help="A' masses of the signal MC (default: the ten of the analysis, 1 MeV - 1 GeV)")
    p.add_argument("--limit-masses", type=float, nargs="+", default=None, metavar="GEV",
                   help="A' masses of the limit scan (default: 31 log-spaced, 1 MeV - 1 GeV)")
    p.add_argument("--search", default=None, metavar="NAME",
                   help="run the simulated chain of a search definition: prl2023, positron2022, "
                        "invisible_2016_2018_annihilation, alp_2016_2018 (alias alp), visible_2017_2018 "
                        "(alias visible), lmu_ltau_2016_2018, ... (default: the invisible prl2019 chain)")
    p.add_argument("--published-inputs", action="store_true",
                   help="with --search: run it from its PUBLISHED INPUTS instead (the paper's yields "
                        "summary -> limits -> report; not the simulated chain, labelled so)")
    p.add_argument("--n-events", type=int, default=None, metavar="N",
                   help="simulate the data at trigger level with N events per run (quick checks; visible "
                        "mode: N beam particles per run; default: the skim at the full EOT)")
    p.add_argument("--crosscheck-toys", type=int, default=None, metavar="N",
                   help="toys of the limits cross-check (default 100; 0 skips it)")
    p.add_argument("--executor", choices=("iterative", "futures", "dask"), default="iterative",
                   help="coffea executor of the processing stages (default: iterative)")
    p.add_argument("--workers", type=int, default=2, help="processes for futures/dask (default: 2)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import pipeline
    from ..errors import InputError

    log = setup_logging(args.out, "demo")
    search = pipeline.SEARCH_ALIASES.get(args.search, args.search) if args.search is not None else None
    if args.published_inputs:
        from ..stats import limits

        if search is None:
            raise InputError("needs --search NAME", field="--published-inputs")
        toys = limits.DEFAULT_CROSSCHECK_TOYS if args.crosscheck_toys is None else args.crosscheck_toys
        timings = pipeline.search_demo(search, args.out, masses=args.limit_masses, crosscheck_toys=toys)
        log.info("search %s from its published inputs (not the simulated chain): %s", args.search,
                 ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()))
        log.info("report: %s", f"{args.out}/report.md")
        return 0
    masses = {k: tuple(v) for k, v in (("efficiency_masses", args.efficiency_masses),
                                        ("limit_masses", args.limit_masses)) if v}
    t0 = time.perf_counter()
    timings = pipeline.demo(args.out, datasets_file=args.datasets, data=args.data, campaign=args.campaign,
                            seed=args.seed, unblind=args.unblind, n_signal=args.n_signal,
                            executor=args.executor, workers=args.workers, progress=show_progress(),
                            search=search, n_events=args.n_events, crosscheck_toys=args.crosscheck_toys,
                            **masses)
    steps = ", ".join(f"{k} {v:.0f}s" for k, v in timings.items())
    # wall clock: the signal MC and efficiency run beside the data stages, so the stages overlap
    log.info("done in %.0f s: %s", time.perf_counter() - t0, steps)
    log.info("report: %s", f"{args.out}/report.md")
    return 0
