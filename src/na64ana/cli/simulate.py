"""``na64ana simulate``: NA64-like ntuples for a campaign (skim or trigger level) or signal MC samples."""

from __future__ import annotations

import argparse
import time

from . import common


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "simulate", help="simulate NA64-like ROOT ntuples (+ a filled datasets.json)",
        description="Simulate triggered NA64 events per run. 'skim' = the SR-tagged loose plane at the "
        "run's full EOT; 'trigger' = --n-events triggered events with the full trigger composition. "
        "--signal-sample writes signal MC per run, production and mass for efficiency studies instead "
        "(--production brem,annihilation: both mechanisms in one datasets.json; annihilation masses whose "
        "line misses a run's window are left out; primakoff: ALPs with --eps = g_agg; visible: a "
        "visible-mode campaign).")
    common.add_campaign(p)
    common.add_out(p)
    common.add_seed(p)
    p.add_argument("--level", choices=("skim", "trigger"), default="skim", help="(default: %(default)s)")
    p.add_argument("--n-events", type=int, default=None,
                   help="triggered events per run (trigger level) or generated A' per mass (signal sample)")
    p.add_argument("--signal-mass", type=float, default=None, metavar="GEV",
                   help="add A' events of this mass")
    p.add_argument("--signal-eps", type=float, default=None, metavar="EPS",
                   help="mixing strength of the added A'")
    p.add_argument("--signal-sample", action="store_true", help="write signal MC samples (see --masses)")
    p.add_argument("--dimuon-sample", action="store_true",
                   help="write the dimuon MC prediction per run (sample dimuon_mc, --n-events generated)")
    p.add_argument("--masses", type=float, nargs="+", default=None, metavar="GEV",
                   help="A' masses (signal sample)")
    p.add_argument("--eps", type=float, default=1e-4,
                   help="eps for the signal-sample weights (default: %(default)s)")
    p.add_argument("--production", default=None, type=_productions, metavar="LIST",
                   help="signal-sample production(s), comma separated: brem, annihilation, primakoff, "
                        "visible "
                        "(default: brem; visible for a visible-mode campaign)")
    p.add_argument("--compression", choices=("lz4", "zstd", "zlib"), default="lz4",
                   help="(default: %(default)s)")
    p.set_defaults(func=run)


def _productions(text: str) -> list[str]:
    """``brem,annihilation`` -> ["brem", "annihilation"] (checked against the campaign when simulating)."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    known = ("brem", "annihilation", "primakoff", "visible")
    bad = [t for t in items if t not in known]
    if not items or bad:
        raise argparse.ArgumentTypeError(f"productions must be from {', '.join(known)}, got '{text}'")
    return items


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..simulation import simulate_campaign, simulate_dimuon_samples, simulate_signal_samples

    common.setup_logging(None, "simulate")
    report: list[dict] = []
    t0 = time.perf_counter()
    if args.dimuon_sample:
        path = simulate_dimuon_samples(args.datasets, out_dir=args.out, n_events=args.n_events or 100_000,
                                       campaign=args.campaign, runs=args.runs, seed=args.seed,
                                       compression=args.compression, progress=common.show_progress(),
                                       report=report)
    elif args.signal_sample:
        if not args.masses:
            raise InputError("--signal-sample needs --masses", field="masses")
        production = args.production
        if production is None:
            from ..datasets import load

            visible = load(args.datasets).campaign(args.campaign).selection == "visible"
            production = ["visible" if visible else "brem"]
        path = simulate_signal_samples(args.datasets, out_dir=args.out, masses_GeV=args.masses,
                                       n_events=args.n_events or 20_000, eps=args.eps, campaign=args.campaign,
                                       runs=args.runs, seed=args.seed, compression=args.compression,
                                       progress=common.show_progress(), report=report, production=production)
    else:
        path = simulate_campaign(args.datasets, out_dir=args.out, campaign=args.campaign, runs=args.runs,
                                 level=args.level, seed=args.seed, n_events=args.n_events,
                                 signal_mass=args.signal_mass, signal_eps=args.signal_eps,
                                 compression=args.compression, progress=common.show_progress(), report=report)
    print(summary(report, time.perf_counter() - t0, path))
    return 0


def summary(report: list[dict], seconds: float, path) -> str:
    """One screen: events, EOT, time and rate per file, and the totals."""
    lines = [f"{'file':44s} {'events':>10s} {'EOT':>10s} {'time/s':>7s} {'events/s':>10s}"]
    for r in report:
        rate = r["events"] / r["seconds"] if r["seconds"] > 0 else float("nan")
        lines.append(f"{r['path']:44s} {r['events']:10d} {r['eot']:10.3g} {r['seconds']:7.1f} {rate:10.3g}")
    n = sum(r["events"] for r in report)
    lines.append(f"{'total':44s} {n:10d} {sum(r['eot'] for r in report):10.3g} {seconds:7.1f} "
                 f"{n / seconds if seconds > 0 else float('nan'):10.3g}")
    lines.append(f"datasets: {path}")
    return "\n".join(lines)
