"""Peak memory of a processor run for 1x and 4x the data: bounded by the chunk size, not the file count.

Each measurement runs in a fresh child process (peak RSS is a high-water mark) on a seeded trigger-level
file of ``--events`` events (1x), or four such files of different seeds (4x; a file listed twice, even
as a hard link or a copy, is refused since it would be counted twice). The child samples, every 0.1 s
with psutil, its own RSS and the RSS of every worker process it started (dask LocalCluster workers), and
reports the maxima together with ``ru_maxrss``.

    .venv/bin/python benchmarks/bench_memory.py                     # 5e6 events/file, iterative + dask
    .venv/bin/python benchmarks/bench_memory.py --quick             # 1e6 events/file
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_processor as bp  # noqa: E402


class RSSSampler:
    """Max RSS (MB) of this process and of each descendant process, sampled in a background thread.

    ``extra_pids`` adds processes that are not descendants (e.g. a separately started scheduler).
    """

    def __init__(self, interval: float = 0.1, extra_pids: tuple[int, ...] = ()):
        import psutil

        self._psutil = psutil
        self.interval = interval
        self.me = psutil.Process()
        self.extra = [psutil.Process(p) for p in extra_pids]
        self.main_mb = 0.0
        self.procs: dict[int, tuple[str, float]] = {}
        self.total_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        ps = self._psutil
        total = 0.0
        try:
            rss = self.me.memory_info().rss / 2**20
        except ps.Error:
            rss = 0.0
        self.main_mb = max(self.main_mb, rss)
        total += rss
        try:
            others = self.me.children(recursive=True) + self.extra
        except ps.Error:
            others = self.extra
        for p in others:
            try:
                mb = p.memory_info().rss / 2**20
                name = " ".join(p.cmdline()[1:4])[:60] or p.name()
            except ps.Error:
                continue
            total += mb
            old = self.procs.get(p.pid, ("", 0.0))[1]
            self.procs[p.pid] = (name, max(old, mb))
        self.total_mb = max(self.total_mb, total)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> RSSSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def workers_mb(self, min_mb: float = 50.0) -> list[float]:
        """Peak RSS of the sampled non-main processes big enough to be workers (skips tiny helpers)."""
        return sorted((mb for _, mb in self.procs.values() if mb >= min_mb), reverse=True)


def replicated_jobs(dj: Path, copies: int, workdir: Path, events: int, seed: int) -> list:
    """The jobs of ``dj`` plus ``copies - 1`` more files of the same size, each a sample of its own seed.

    Distinct contents: na64ana refuses a file listed twice, also under another name (a hard link or a
    copy: same sha256), since its events and EOT would be counted twice."""
    jobs = bp.plan_trigger(dj)
    for k in range(1, copies):
        dk = bp.make_sample(events, workdir=workdir, seed=seed + 1000 * k, nfiles=len(jobs))
        other = bp.plan_trigger(dk)
        for j, o in zip(jobs, other, strict=True):
            j.files += o.files
            j.file_eot += o.file_eot
            j.eot += o.eot
            j.nevents += o.nevents
    return jobs


def child(args: argparse.Namespace) -> None:
    from na64ana.processing import execute

    dj = bp.make_sample(int(args.events), workdir=args.workdir, seed=args.seed, nfiles=1)
    jobs = replicated_jobs(dj, args.copies, args.workdir, int(args.events), args.seed)
    t0 = time.perf_counter()
    with RSSSampler() as s:
        res = execute.run(jobs, "invisible", executor=args.executor, workers=args.workers,
                          chunksize=args.chunksize)
    wall = time.perf_counter() - t0
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"events": res.metrics["events"], "chunks": res.metrics["chunks"], "wall": wall,
                      "main_peak_MB": s.main_mb, "ru_maxrss_MB": maxrss, "workers_peak_MB": s.workers_mb(),
                      "total_peak_MB": s.total_mb}))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=float, default=5e6, help="events per file (default: %(default)g)")
    ap.add_argument("--chunksize", type=int, default=None, help="default: na64ana's DEFAULT_CHUNKSIZE")
    ap.add_argument("--executors", nargs="+", default=["iterative", "dask"], choices=["iterative", "dask"])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--factors", nargs="+", type=int, default=[1, 4], help="data copies (default: 1 4)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--workdir", type=Path, default=bp.DEFAULT_WORK)
    ap.add_argument("--quick", action="store_true", help="1e6 events per file")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--executor", default="iterative", help=argparse.SUPPRESS)
    ap.add_argument("--copies", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.quick:
        args.events = 1e6
    if args.chunksize is None:
        from na64ana.processing.execute import DEFAULT_CHUNKSIZE

        args.chunksize = DEFAULT_CHUNKSIZE
    if args.child:
        child(args)
        return 0
    bp.print_machine()
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    for k in range(max(args.factors)):
        bp.make_sample(int(args.events), workdir=args.workdir, seed=args.seed + 1000 * k, nfiles=1)
    print(f"{'executor':10s} {'data':>5s} {'events':>10s} {'chunks':>6s} {'wall s':>7s} {'main MB':>8s} "
          f"{'workers MB (each)':>22s} {'all procs MB':>12s}  load1")
    for ex in args.executors:
        for f in args.factors:
            cmd = [sys.executable, __file__, "--child", "--executor", ex, "--copies", str(f), "--events",
                   str(args.events), "--chunksize", str(args.chunksize), "--workers", str(args.workers),
                   "--seed", str(args.seed), "--workdir", str(args.workdir)]
            load1 = os.getloadavg()[0]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            wk = r["workers_peak_MB"][: args.workers]
            workers = ", ".join(f"{x:.0f}" for x in wk) if ex == "dask" else "-"
            print(f"{ex:10s} {f:4d}x {r['events']:10d} {r['chunks']:6d} {r['wall']:7.1f} "
                  f"{r['main_peak_MB']:8.0f} {workers:>22s} {r['total_peak_MB']:12.0f}  {load1:.1f}",
                  flush=True)
    print(f"chunksize {args.chunksize}; {bp.load()} at end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
