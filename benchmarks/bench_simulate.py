"""Simulator throughput (a script, not a test): events/s for full-EOT skims and trigger-level writing.

    .venv/bin/python benchmarks/bench_simulate.py [--campaign prl2019] [--n-trigger 2000000] [--repeat 3]

Prints one line per measurement (median of --repeat where cheap). Targets: the default campaign's skims at
full EOT in < 2 min total; trigger-level generation + lz4 writing >= 1e6 events/s per core.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from na64ana import datasets
from na64ana.simulation import generate_events, simulate_campaign, write_tree

REPO = Path(__file__).resolve().parents[1]


def _median_time(fn, repeat: int) -> tuple[float, float]:
    """(median wall, median CPU) seconds: CPU time is the per-core cost, robust to a shared machine."""
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default=str(REPO / "datasets.json"))
    ap.add_argument("--campaign", default=None)
    ap.add_argument("--n-trigger", type=int, default=2_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-skim", action="store_true", help="trigger-level measurement only")
    args = ap.parse_args()
    ds = datasets.load(args.datasets)
    cname = args.campaign or ds.default_campaign

    with tempfile.TemporaryDirectory() as tmp:
        report: list[dict] = []
        t0 = time.perf_counter()
        if not args.skip_skim:
            simulate_campaign(args.datasets, out_dir=Path(tmp) / "skim", campaign=cname, report=report)
        total = time.perf_counter() - t0
        n = sum(r["events"] for r in report)
        for r in report:
            print(f"skim {cname} run {r['run']:>4s}: {r['events']:9d} events, EOT {r['eot']:.3g}, "
                  f"{r['seconds']:6.1f} s, {r['events'] / r['seconds']:.3g} events/s (generate + write)")
        if report:
            print(f"skim {cname} total: {n} events in {total:.1f} s ({n / total:.3g} events/s, "
                  "incl. sha256/json)")

        run_name, run = next(reversed(ds.campaign(cname).runs.items()))
        arrays: dict = {}

        def gen() -> None:
            arrays.update(generate_events(run, campaign=cname, run_name=run_name, level="trigger",
                                          n_events=args.n_trigger, rng=np.random.default_rng(1)))

        def write() -> None:
            write_tree(Path(tmp) / "trigger.root", arrays, compression="lz4")

        (t_gen, c_gen), (t_write, c_write) = _median_time(gen, args.repeat), _median_time(write, args.repeat)
        n = args.n_trigger
        for what, g, w in (("wall", t_gen, t_write), ("CPU", c_gen, c_write)):
            print(f"trigger level run {run_name} ({what} time): generate {n / g:.3g} events/s, write lz4 "
                  f"{n / w:.3g} events/s, together {n / (g + w):.3g} events/s (median of {args.repeat})")


if __name__ == "__main__":
    main()
