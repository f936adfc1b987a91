"""Scale test: >= 1e8 trigger-level events through the dask executor, with memory of every process (issue 7).

A ``dask scheduler`` and a ``dask worker --nworkers N --nthreads 1`` are started as separate processes
(as on a batch site) and the campaign is processed with ``na64ana.processing.execute.run(..., scheduler=tcp://...)``
(= ``na64ana run --scheduler``). While it runs, psutil samples the RSS of the client (this process), the
scheduler, the nannies and the workers every 0.1 s. Prints wall time, events/s (total, per worker) and the
peak RSS per process, then extrapolates to the full NA64 invisible-mode data set (9.37e11 EOT, ~1e9
triggered events per 1e11 EOT) on N workers.

The input is ``--copies`` samples of ``--unique`` events each (default 5 x 2e7), each of its own seed: a
file listed twice, even as a hard link or a copy under another name, is refused (same sha256: its events
and EOT would be counted twice), so the copies are generated (~0.5-0.75 M events/s on one core, ~90
bytes/event on disk, cached under ``--workdir``, gitignored).

    .venv/bin/python benchmarks/bench_scale.py                        # 2e7 unique x 5 = 1e8 events, 2 workers
    .venv/bin/python benchmarks/bench_scale.py --quick                # 1e6 x 4
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_memory as bm  # noqa: E402
import bench_processor as bp  # noqa: E402

FULL_EOT = 9.37e11
TRIGGERED_PER_EOT = 1e9 / 1e11


def start_cluster(workdir: Path, nworkers: int, memory_limit: str) -> tuple[str, list[subprocess.Popen]]:
    dask = Path(sys.executable).with_name("dask")
    sfile = workdir / "scheduler.json"
    sfile.unlink(missing_ok=True)
    logs = workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    procs = [subprocess.Popen([str(dask), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(sfile)], cwd=workdir,
                              stdout=subprocess.DEVNULL, stderr=open(logs / "scheduler.log", "w"))]
    t0 = time.monotonic()
    while not sfile.exists():
        if procs[0].poll() is not None or time.monotonic() - t0 > 60:
            raise RuntimeError(f"scheduler did not start; see {logs / 'scheduler.log'}")
        time.sleep(0.1)
    # execute.local_cluster_config() (malloc, no profiler) through a dask config file (docs/distributed.md)
    from na64ana.processing import execute

    cfg = workdir / "dask-config"
    cfg.mkdir(exist_ok=True)
    nested: dict = {}
    for dotted, value in execute.local_cluster_config().items():
        *parents, leaf = dotted.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    (cfg / "na64ana-workers.yaml").write_text(yaml.safe_dump(nested))
    env = dict(os.environ, DASK_CONFIG=str(cfg))
    procs.append(subprocess.Popen([str(dask), "worker", "--scheduler-file", str(sfile), "--nworkers",
                                   str(nworkers), "--nthreads", "1", "--no-dashboard", "--memory-limit",
                                   memory_limit, "--local-directory", str(workdir / "dask-space")],
                                  cwd=workdir, stdout=subprocess.DEVNULL, env=env,
                                  stderr=open(logs / "worker.log", "w")))
    from distributed import Client

    with Client(scheduler_file=str(sfile), timeout=60) as c:
        c.wait_for_workers(nworkers, timeout=120)
        return c.scheduler.address, procs


def stop(procs: list[subprocess.Popen]) -> None:
    for p in reversed(procs):
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def role(cmd: str) -> str:
    if "resource_tracker" in cmd:
        return "resource tracker"
    if "dask scheduler" in cmd or "scheduler --host" in cmd:
        return "scheduler"
    if "dask worker" in cmd or "worker --scheduler-file" in cmd:
        return "nanny/worker launcher"
    if "multiprocessing" in cmd or "spawn" in cmd:
        return "worker"
    return cmd[:40]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--unique", type=float, default=2e7, help="unique events (default: %(default)g)")
    ap.add_argument("--copies", type=int, default=5, help="times each file is listed (default: %(default)s)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--chunksize", type=int, default=1_000_000, help="(default: %(default)s)")
    ap.add_argument("--memory-limit", default="2GB", help="per worker (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--workdir", type=Path, default=bp.DEFAULT_WORK)
    ap.add_argument("--cleanup", action="store_true", help="delete the extra samples afterwards")
    ap.add_argument("--quick", action="store_true", help="1e6 unique events x 4")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.unique, args.copies = 1e6, 4
    from na64ana.processing import execute

    bp.print_machine()
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    dj = bp.make_sample(int(args.unique), workdir=args.workdir, seed=args.seed, nfiles=3)
    jobs = bm.replicated_jobs(dj, args.copies, args.workdir, int(args.unique), args.seed)
    nfiles = sum(len(j.files) for j in jobs)
    ntot = sum(j.nevents for j in jobs)
    size = sum(p.stat().st_size for j in jobs for p in j.files)
    print(f"input: {ntot:.3g} events in {nfiles} files ({args.unique:.3g} unique x {args.copies}, "
          f"distinct seeds), {size / 1e9:.1f} GB, {size / ntot:.0f} bytes/event")
    cl_dir = args.workdir / "scale_cluster"
    cl_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    address, procs = start_cluster(cl_dir, args.workers, args.memory_limit)
    print(f"cluster: dask scheduler + dask worker --nworkers {args.workers} --nthreads 1 at {address} "
          f"(up in {time.perf_counter() - t0:.1f} s)")
    load0 = bp.load()
    try:
        c0 = bp.cpu_seconds()
        t0 = time.perf_counter()
        with bm.RSSSampler(interval=0.1) as rss:
            res = execute.run(jobs, "invisible", scheduler=address, chunksize=args.chunksize)
        wall = time.perf_counter() - t0
        cpu = bp.cpu_seconds() - c0
    finally:
        stop(procs)
    m = res.metrics
    n = m["events"]
    rate = n / wall
    print(f"processed {n:.4g} events in {m['chunks']} chunks: wall {wall:.1f} s "
          f"(runner {m['wall_time_s']:.1f} s), "
          f"{rate / 1e6:.3f} M events/s total, {rate / args.workers / 1e6:.3f} M events/s per worker; "
          f"CPU {cpu:.0f} s of all processes = {n / cpu / 1e6:.3f} M events per CPU-second")
    print(f"load before: {load0}; after: {bp.load()}")
    print("peak RSS per process (MB):")
    print(f"  client (this process, planning + checks + merging the outputs): {rss.main_mb:.0f}")
    for pid, (name, mb) in sorted(rss.procs.items(), key=lambda kv: -kv[1][1]):
        print(f"  pid {pid:7d} {role(name):22s} {mb:7.0f}   [{name}]")
    print(f"  all processes together (peak of the sum): {rss.total_mb:.0f}")
    full = FULL_EOT * TRIGGERED_PER_EOT
    per_worker = rate / args.workers
    print(f"extrapolation to the full data set: {FULL_EOT:.3g} EOT x {TRIGGERED_PER_EOT:.0e} triggered/EOT = "
          f"{full:.3g} events, {full * size / ntot / 1e12:.2f} TB at {size / ntot:.0f} bytes/event (lz4), "
          f"assuming the measured {per_worker / 1e6:.3f} M events/s per worker and linear scaling:")
    for nw in (2, 10, 50, 100, 500):
        t = full / (per_worker * nw)
        bw = per_worker * nw * size / ntot * 20 / 34 / 1e9  # 20 of 34 branches are read
        print(f"  {nw:4d} workers: {t / 3600:8.3f} h = {t / 60:7.1f} min  "
              f"(reading ~{bw:.2f} GB/s of compressed columns in total)")
    if args.json:
        args.json.write_text(json.dumps({"events": n, "wall": wall, "cpu": cpu, "chunks": m["chunks"],
                                         "workers": args.workers, "client_MB": rss.main_mb,
                                         "procs": {str(k): v for k, v in rss.procs.items()}}, indent=1))
    if args.cleanup:
        import shutil

        for k in range(1, args.copies):
            for j in jobs:
                for p in j.files:
                    if f"_s{args.seed + 1000 * k}_" in str(p):
                        shutil.rmtree(p.parent.parent, ignore_errors=True)
    if not math.isclose(n, ntot):
        print("MISMATCH: events read != events listed")
        return 1
    return 0


if __name__ == "__main__":
    os.environ.setdefault("NA64ANA_NO_PROGRESS", "1")
    sys.exit(main())
