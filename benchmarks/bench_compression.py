"""Which compression should the simulator write? File size, write speed and read speed per codec (issue 7).

Generates one seeded trigger-level run in memory with ``na64ana.simulation.generate_events`` (timed
separately: generation vs writing), then for each codec writes it with the simulator's own
``write_tree`` (level 1, as ``na64ana simulate --compression`` does) and reads back (i) exactly the
invisible processor's columns and (ii) every branch, with ``uproot`` into numpy. Medians of ``--reps``;
reads are warm-cache (the file was just written), i.e. they measure decompression + deserialisation, not
the disk. ``--levels`` adds other levels (written through uproot directly, same tree layout).

    .venv/bin/python benchmarks/bench_compression.py                # 5e6 events, 3 reps
    .venv/bin/python benchmarks/bench_compression.py --quick        # 1e6 events
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_processor as bp  # noqa: E402  (shared helpers: machine, load, processor columns)


def generate(n: int, seed: int) -> tuple[dict[str, np.ndarray], float]:
    from na64ana import datasets as ds
    from na64ana.simulation import generate_events

    d = ds.load(bp.DATASETS)
    cname = d.default_campaign
    camp = d.campaign(cname)
    rname, run = next(iter(d.runs(cname, None).items()))
    t0 = time.perf_counter()
    arrays = generate_events(run, campaign=cname, run_name=rname, level="trigger",
                             rng=np.random.default_rng(seed), n_events=n, beam_energy=camp.beam_energy_GeV,
                             emiss_min=camp.emiss_min_GeV)
    return arrays, time.perf_counter() - t0


def write_level(path: Path, arrays: dict[str, np.ndarray], codec: str, level: int) -> None:
    """Same layout as ``write_tree`` (mktree + extend in 1e6-event batches) at a chosen level."""
    import uproot

    from na64ana.contract import BRANCHES
    from na64ana.simulation.writer import DEFAULT_CHUNK

    comp = {"lz4": uproot.LZ4, "zstd": uproot.ZSTD, "zlib": uproot.ZLIB}[codec](level)
    names = [b.name for b in BRANCHES if b.name in arrays]
    types = {k: np.dtype(next(b.dtype for b in BRANCHES if b.name == k)) for k in names}
    n = len(arrays[names[0]])
    with uproot.recreate(path, compression=comp) as f:
        t = f.mktree("events", types)
        for s in range(0, n, DEFAULT_CHUNK):
            t.extend({k: np.ascontiguousarray(arrays[k][s:s + DEFAULT_CHUNK], dtype=types[k]) for k in names})


def median_time(fn, reps: int) -> float:
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def median_cpu(fn, reps: int) -> tuple[float, float]:
    """(median wall, median CPU seconds of this process and its children)."""
    ws, cs = [], []
    for _ in range(reps):
        c0, t0 = bp.cpu_seconds(), time.perf_counter()
        fn()
        ws.append(time.perf_counter() - t0)
        cs.append(bp.cpu_seconds() - c0)
    return statistics.median(ws), statistics.median(cs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=float, default=5e6, help="events (default: %(default)g)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--codecs", nargs="+", default=["none", "lz4", "zstd", "zlib"])
    ap.add_argument("--levels", nargs="*", default=[], metavar="CODEC:LEVEL",
                    help="extra codec levels, e.g. zstd:3 lz4:4 zlib:6")
    ap.add_argument("--baskets", nargs="*", default=["1e5"], metavar="EVENTS",
                    help="extra lz4 files written with this many events per basket (write_tree chunk; "
                         "default: 1e5; the writer's default is 1e6)")
    ap.add_argument("--chunksize", type=int, default=500_000, help="processor chunk size (default: 500000)")
    ap.add_argument("--workdir", type=Path, default=bp.DEFAULT_WORK)
    ap.add_argument("--keep", action="store_true", help="keep the written files")
    ap.add_argument("--quick", action="store_true", help="1e6 events")
    args = ap.parse_args(argv)
    if args.quick:
        args.events = 1e6
    n = int(args.events)
    import uproot

    from na64ana.simulation.writer import write_tree

    bp.print_machine()
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    arrays, tgen = generate(n, args.seed)
    n = len(arrays["ecal_e"])
    print(f"generate_events (trigger level, {n:.3g} events): {tgen:.2f} s = {n / tgen:.3g} events/s, "
          f"{len(arrays)} branches, {sum(a.nbytes for a in arrays.values()) / n:.0f} bytes/event in memory "
          f"({bp.load()})")
    out = args.workdir / "compression"
    out.mkdir(parents=True, exist_ok=True)

    job = bp.plan_trigger(bp.make_sample(int(1e6), workdir=args.workdir, nfiles=3))[0]
    cols, _ = bp.processor_columns(job)
    variants = [(c, None, None) for c in args.codecs]
    variants += [(c.split(":")[0], int(c.split(":")[1]), None) for c in args.levels]
    variants += [("lz4", None, int(float(b))) for b in args.baskets]
    rows = []
    print("write = write_tree; read20 = the processor's 20 columns, readall = all branches (uproot -> numpy);"
          f" proc = execute.run iterative, chunksize {args.chunksize}, not cluster-aligned (CPU s)")
    print(f"{'variant':14s} {'MB':>7s} {'B/ev':>5s} {'write s':>7s} {'w Mev/s':>7s} {'read20 s':>8s} "
          f"{'r20 Mev/s':>9s} {'readall s':>9s} {'rall Mev/s':>10s} {'proc s':>6s} {'proc cpu':>8s} "
          f"{'p Mev/cpu-s':>11s}  load1")
    for codec, level, basket in variants:
        name = codec if level is None else f"{codec}:{level}"
        name += f" b{basket:.0e}".replace("+0", "") if basket else ""
        path = out / f"c_{name.replace(':', '_').replace(' ', '_')}.root"
        if level is None:
            kw = {"chunk": basket} if basket else {}
            tw = median_time(lambda c=codec, p=path, kw=kw: write_tree(p, arrays, compression=c, **kw),
                             args.reps)
        else:
            tw = median_time(lambda c=codec, lv=level, p=path: write_level(p, arrays, c, lv), args.reps)
        size = path.stat().st_size
        load1 = bp.os.getloadavg()[0]
        tree = uproot.open(path)["events"]
        tr = median_time(lambda t=tree: t.arrays(cols, library="np"), args.reps)
        ta = median_time(lambda t=tree: t.arrays(library="np"), args.reps)
        pj = [dataclasses.replace(job, files=[path], nevents=n)]
        pw, pc = median_cpu(lambda pj=pj: bp.processor_run(pj, args.chunksize), args.reps)
        rows.append((name, size, tw, tr, ta, pw, pc))
        print(f"{name:14s} {size / 1e6:7.1f} {size / n:5.1f} {tw:7.2f} {n / tw / 1e6:7.3f} {tr:8.3f} "
              f"{n / tr / 1e6:9.2f} {ta:9.3f} {n / ta / 1e6:10.2f} {pw:6.2f} {pc:8.2f} {n / pc / 1e6:11.2f}  "
              f"{load1:.1f}", flush=True)
        if not args.keep:
            path.unlink()
    best = min((r for r in rows if r[0] != "none"), key=lambda r: r[3])
    print(f"fastest compressed read of the processor columns: {best[0]}")
    print(f"{bp.load()} at end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
