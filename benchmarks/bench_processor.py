"""Throughput of the invisible processor against the plain-uproot floor, iterative and on dask (issue 7).

Generates its own seeded trigger-level sample with the simulator (``na64ana.simulation``; cached under
``--workdir`` and reused when the same size/seed/compression is asked again), then prints, for each of

  (a) floor: ``uproot.iterate`` over exactly the processor's columns + the numpy cuts + the 2D plane fill
  (b) ``na64ana.processing.execute.run(..., executor="iterative")`` (coffea ``processor.Runner``, one core)
  (c) the same through the dask executor on a ``LocalCluster`` of 1 and of 2 worker processes
      (cluster started once per size, outside the timing; its start-up time is printed separately)
  (d) optionally ROOT RDataFrame, single-threaded, on the same files and cuts (``--rdf-python`` = a Python
      with the pip ``ROOT`` wheel, e.g. a venv under /tmp: never a runtime dependency of na64ana)

the median of ``--reps`` wall times, events/s and events/s per core, plus the load average before each
measurement. All paths must agree on the number of events passing the final cut (checked).

    .venv/bin/python benchmarks/bench_processor.py --events 20000000          # the issue-7 figures
    .venv/bin/python benchmarks/bench_processor.py --quick                    # 1e6 events, 3 reps
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_WORK = HERE / "_work"
DATASETS = ROOT / "datasets.json"


# ------------------------------------------------------------------------------------------------------
# Machine, load, samples (shared with the other benchmark scripts)


def load() -> str:
    return "load {:.2f}/{:.2f}/{:.2f}".format(*os.getloadavg())


def machine() -> dict[str, str]:
    import coffea
    import distributed
    import uproot

    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024**2:.1f} GB"
    except (OSError, ValueError, IndexError):
        pass
    return {"cpu": cpu, "cores": str(os.cpu_count()), "memory": mem, "python": platform.python_version(),
            "os": platform.platform(), "coffea": coffea.__version__, "uproot": uproot.__version__,
            "distributed": distributed.__version__, "numpy": np.__version__}


def print_machine() -> None:
    m = machine()
    print("machine: " + ", ".join(f"{k} {v}" for k, v in m.items()))
    print(f"{load()} at start")


def make_sample(n_events: int, *, workdir: Path = DEFAULT_WORK, seed: int = 7, compression: str = "lz4",
                nfiles: int = 3, regen: bool = False) -> Path:
    """A trigger-level campaign of ``n_events`` split over ``nfiles`` runs (<= 3); returns datasets.json.

    Cached by (events, files, seed, compression): a second call returns the same files without regenerating.
    """
    from na64ana import datasets as ds
    from na64ana.simulation import simulate_campaign

    camp = ds.load(DATASETS)
    runs = list(camp.runs(camp.default_campaign, None, file=str(DATASETS)))[:nfiles]
    out = workdir / f"trigger_{n_events:.0e}_{len(runs)}f_s{seed}_{compression}".replace("+", "")
    dj = out / "datasets.json"
    if dj.is_file() and not regen:
        return dj
    per_run = -(-n_events // len(runs))
    t0 = time.perf_counter()
    report: list[dict] = []
    simulate_campaign(DATASETS, out_dir=out, runs=runs, level="trigger", seed=seed, n_events=per_run,
                      compression=compression, report=report)
    dt = time.perf_counter() - t0
    n = sum(r["events"] for r in report)
    print(f"generated {n:.3g} trigger-level events in {len(runs)} files ({compression}) in {dt:.1f} s = "
          f"{n / dt:.3g} events/s (generation + writing, one core; {load()})")
    return dj


def plan_trigger(dj: Path) -> list:
    from na64ana.processing import execute

    return execute.plan(dj, samples=["trigger"])


def processor_columns(job) -> tuple[list[str], tuple[str, ...]]:
    """(branches read, variables computed) by the invisible processor for ``job`` (the floor reads these)."""
    from na64ana.processors import PROCESSORS

    from na64ana import selection as selmod

    proc = PROCESSORS["invisible"]
    variables = tuple(dict.fromkeys((*job.selection.variables, *proc.extra_variables)))
    return selmod.branches_for(variables), variables


def cpu_seconds() -> float:
    """CPU time (user + system) of this process, its finished children and its live descendants (workers)."""
    import resource

    import psutil

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = time.process_time() + ru.ru_utime + ru.ru_stime
    for p in psutil.Process().children(recursive=True):
        try:
            c = p.cpu_times()
            total += c.user + c.system
        except psutil.Error:
            pass
    return total


def timed(fn: Callable[[], dict], reps: int, label: str) -> dict:
    """Median wall time (and CPU time) of ``reps`` calls of ``fn`` (returns dict with 'events' and 'final').

    The machine is shared: the CPU seconds of the measured processes give a load-independent events/s per
    busy core beside the wall-clock figure.
    """
    walls, cpus, loads, res = [], [], [], {}
    for _ in range(reps):
        loads.append(os.getloadavg()[0])
        c0, t0 = cpu_seconds(), time.perf_counter()
        res = fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(cpu_seconds() - c0)
    res = dict(res)
    res.update(label=label, walls=walls, wall=statistics.median(walls), cpu=statistics.median(cpus),
               load1=loads)
    return res


# ------------------------------------------------------------------------------------------------------
# (a) the floor


def floor(jobs: list, chunksize: int) -> dict:
    import hist
    import uproot

    from na64ana import selection as selmod
    from na64ana.contract import resolve as resolve_branch

    n = final_n = 0
    for job in jobs:
        branches, variables = processor_columns(job)
        sel = job.selection
        h = hist.Hist(hist.axis.Regular(240, 0.0, 120.0, name="ecal"),
                      hist.axis.Regular(240, 0.0, 120.0, name="hcal"))
        names = {resolve_branch(b, job.branch_map): b for b in branches}
        files = {str(p): job.tree for p in job.files}
        for arrays in uproot.iterate(files, list(names), step_size=chunksize, library="np"):
            cols = {names[k]: v for k, v in arrays.items()}
            values = selmod.compute(cols, variables)
            masks = selmod.cut_masks(sel, values)
            h.fill(ecal=values["ecal_e"], hcal=values["hcal_e"])  # the loose plane: every event
            final = np.ones(len(values["ecal_e"]), dtype=bool)
            for c in sel.plane_final:
                final &= masks[c]
            n += len(final)
            final_n += int(np.count_nonzero(final))
    return {"events": n, "final": final_n}


class _Chunk(dict):
    metadata: dict


def bare_process(jobs: list, chunksize: int) -> dict:
    """(a2) the processor's own ``process()`` fed by ``uproot.iterate``: no coffea Runner, no NanoEvents."""
    import uproot
    from na64ana.processors import PROCESSORS

    from na64ana.contract import resolve as resolve_branch

    proc = PROCESSORS["invisible"]({j.key: j.selection for j in jobs})
    n = final_n = 0
    for job in jobs:
        branches, _ = processor_columns(job)
        names = [resolve_branch(b, job.branch_map) for b in branches]
        files = {str(p): job.tree for p in job.files}
        for arrays in uproot.iterate(files, names, step_size=chunksize, library="np"):
            ev = _Chunk(arrays)
            ev.metadata = job.metadata
            out = proc.process(ev)
            n += out["nevents"][job.key]
            final_n += int(out["cutflow"][job.key]["events"][len(job.selection.plane_final)])
    return {"events": n, "final": final_n}


# ------------------------------------------------------------------------------------------------------
# (b), (c) the processor


def final_count(output: dict, jobs: list) -> int:
    idx = {j.key: len(j.selection.plane_final) for j in jobs}
    return int(sum(cf["events"][idx[k]] for k, cf in output["cutflow"].items()))


def processor_run(jobs: list, chunksize: int, *, executor: str = "iterative", scheduler: str | None = None,
                  align_clusters: bool = False) -> dict:
    from na64ana.processing import execute

    res = execute.run(jobs, "invisible", executor=executor, scheduler=scheduler, chunksize=chunksize,
                      align_clusters=align_clusters)
    return {"events": res.metrics["events"], "final": final_count(res.output, jobs),
            "chunks": res.metrics["chunks"], "runner_wall": res.metrics["wall_time_s"]}


def local_cluster(n: int):
    """A LocalCluster as ``execute.make_executor`` makes it (worker malloc settings included)."""
    import dask
    from distributed import LocalCluster

    from na64ana.processing import execute

    t0 = time.perf_counter()
    env = {f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in execute.WORKER_ENV.items()}
    with dask.config.set(env):
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
    return cluster, time.perf_counter() - t0


# ------------------------------------------------------------------------------------------------------
# (d) RDataFrame (in a separate Python that has ROOT)

RDF_SCRIPT = r"""
import json, sys, time
import ROOT
ROOT.ROOT.DisableImplicitMT()
cfg = json.loads(sys.argv[1])
walls, cpus = [], []
for _ in range(cfg["reps"]):
    t0, c0 = time.perf_counter(), time.process_time()
    n = fin = 0
    for job in cfg["jobs"]:
        df = ROOT.RDataFrame(job["tree"], job["files"])
        for name, expr in cfg["defines"]:
            df = df.Define(name, expr)
        h = df.Histo2D(("plane", "", 240, 0.0, 120.0, 240, 0.0, 120.0), "ecal_e", "hcal_e")
        cn = df.Count()
        cf = df.Filter(job["final"]).Count()
        n += cn.GetValue()
        fin += cf.GetValue()
        h.GetEntries()
    walls.append(time.perf_counter() - t0)
    cpus.append(time.process_time() - c0)
print(json.dumps({"events": int(n), "final": int(fin), "walls": walls, "cpus": cpus}))
"""

def _cpp_req(r) -> str:
    x = f"(double){r.variable}"
    parts = [f"std::isfinite({x})"]
    if r.equals is not None:
        parts.append(f"{x} == {r.equals!r}")
    if r.min is not None:
        parts.append(f"{x} >= {r.min!r}")
    if r.max is not None:
        parts.append(f"{x} < {r.max!r}")
    return "(" + " && ".join(parts) + ")"


def rdf(jobs: list, python: str, reps: int) -> dict | None:
    """Same columns, derived variables and final cut in RDataFrame; None if ``python`` has no ROOT."""
    defines = [
        ("hcal_e", "(double)hcal_e0 + (double)hcal_e1 + (double)hcal_e2 + (double)hcal_e3"),
        ("veto_e_max", "std::fmax(std::fmax(veto_e0, veto_e1), veto_e2) + 0*veto_e0*veto_e1*veto_e2"),
        ("srd_e_min", "std::fmin(std::fmin(srd_e0, srd_e1), srd_e2) + 0*srd_e0*srd_e1*srd_e2"),
        ("srd_e_max", "std::fmax(std::fmax(srd_e0, srd_e1), srd_e2) + 0*srd_e0*srd_e1*srd_e2"),
        ("srd_t_absmax", "std::fmax(std::fmax(std::fabs(srd_t0), std::fabs(srd_t1)), std::fabs(srd_t2))"
                         " + 0*srd_t0*srd_t1*srd_t2"),
    ]  # the "+ 0*a*b*c" keeps numpy's NaN propagation (fmax/fmin drop NaN)
    if any(j.branch_map for j in jobs):
        print("(d) skipped: a branch map is in use")
        return None
    cfg_jobs = []
    for j in jobs:
        cuts = {c.name: c for c in j.selection.cuts}
        final = " && ".join(_cpp_req(r) for c in j.selection.plane_final for r in cuts[c].requires)
        cfg_jobs.append({"tree": j.tree, "files": [str(p) for p in j.files], "final": final})
    cfg = {"jobs": cfg_jobs, "defines": defines, "reps": reps}
    try:
        out = subprocess.run([python, "-c", RDF_SCRIPT, json.dumps(cfg)], capture_output=True, text=True,
                             timeout=3600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"(d) skipped: {exc}")
        return None
    if out.returncode != 0:
        print(f"(d) skipped: {python} failed: {out.stderr.strip().splitlines()[-1:]}")
        return None
    r = json.loads(out.stdout.strip().splitlines()[-1])
    r.update(label="(d) RDataFrame, 1 thread", wall=statistics.median(r["walls"]), load1=[os.getloadavg()[0]],
             cpu=statistics.median(r["cpus"]))
    return r


# ------------------------------------------------------------------------------------------------------


def show(r: dict, cores: int) -> str:
    rate = r["events"] / r["wall"]
    walls = ", ".join(f"{w:.2f}" for w in r["walls"])
    extra = f", {r['chunks']} chunks" if "chunks" in r else ""
    cpu = f"  cpu {r['cpu']:6.2f} s = {r['events'] / r['cpu'] / 1e6:6.3f} MHz/cpu-s" if r.get("cpu") else ""
    return (f"{r['label']:44s} {r['events']:.3g} ev  median {r['wall']:7.2f} s  [{walls}]  "
            f"{rate / 1e6:6.3f} MHz  {rate / cores / 1e6:6.3f} MHz/core{cpu}  final={r['final']}{extra}  "
            f"load1 {'/'.join(f'{x:.1f}' for x in r['load1'])}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=float, default=2e7, help="trigger-level events (default: %(default)g)")
    ap.add_argument("--files", type=int, default=3, help="files = runs of the campaign, <= 3 (default: 3)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions per measurement (default: 3)")
    ap.add_argument("--chunksize", type=int, default=500_000, help="events per chunk (default: %(default)s)")
    ap.add_argument("--align-clusters", action="store_true", help="coffea align_clusters=True for (b), (c)")
    ap.add_argument("--compression", default="lz4", choices=("lz4", "zstd", "zlib", "none"))
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--workdir", type=Path, default=DEFAULT_WORK)
    ap.add_argument("--only", nargs="+", default=["a", "a2", "b", "c1", "c2", "d"],
                    choices=["a", "a2", "b", "c1", "c2", "d"], help="measurements to run (default: all)")
    ap.add_argument("--rdf-python", default="/tmp/rootvenv/bin/python",
                    help="a Python with the ROOT wheel for (d); skipped if absent (default: %(default)s)")
    ap.add_argument("--quick", action="store_true", help="1e6 events, 3 reps (a smoke run)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    args = ap.parse_args(argv)
    if args.quick:
        args.events = 1e6
    print_machine()
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    dj = make_sample(int(args.events), workdir=args.workdir, seed=args.seed, compression=args.compression,
                     nfiles=args.files)
    jobs = plan_trigger(dj)
    branches, _ = processor_columns(jobs[0])
    print(f"sample: {dj.parent} ({sum(j.nevents for j in jobs):.3g} events, {sum(len(j.files) for j in jobs)}"
          f" files); processor columns ({len(branches)}): {', '.join(branches)}")
    print(f"chunksize {args.chunksize}, align_clusters {args.align_clusters}, reps {args.reps}")
    results = []

    def report(r: dict | None, cores: int) -> None:
        if r is None:
            return
        r["cores"] = cores
        results.append(r)
        print(show(r, cores), flush=True)

    cs, al = args.chunksize, args.align_clusters
    if "a" in args.only:
        report(timed(lambda: floor(jobs, cs), args.reps, "(a) floor: uproot.iterate + numpy + hist"), 1)
    if "a2" in args.only:
        report(timed(lambda: bare_process(jobs, cs), args.reps, "(a2) process() on uproot.iterate"), 1)
    if "b" in args.only:
        report(timed(lambda: processor_run(jobs, cs, align_clusters=al), args.reps,
                     "(b) processor, Runner + IterativeExecutor"), 1)
    for n in (1, 2):
        if f"c{n}" not in args.only:
            continue
        cluster, startup = local_cluster(n)
        print(f"LocalCluster({n} worker process(es)) started in {startup:.1f} s ({load()})")
        try:
            addr = cluster.scheduler_address
            report(timed(lambda a=addr: processor_run(jobs, cs, scheduler=a, align_clusters=al), args.reps,
                         f"(c) processor, DaskExecutor, {n} worker{'s' if n > 1 else ''}"), n)
        finally:
            cluster.close()
    if "d" in args.only:
        if Path(args.rdf_python).exists():
            report(rdf(jobs, args.rdf_python, args.reps), 1)
        else:
            print(f"(d) skipped: no {args.rdf_python} (create a venv with the ROOT wheel there)")

    finals = {r["final"] for r in results}
    events = {r["events"] for r in results}
    ok = len(finals) <= 1 and len(events) <= 1
    print(f"consistency: events {sorted(events)}, final-cut counts {sorted(finals)} -> "
          f"{'OK' if ok else 'MISMATCH'}")
    by = {r["label"][:3] + str(r["cores"]): r for r in results}

    def ratio(x: str, y: str) -> str:
        a, b = by[x], by[y]
        wall = (a["events"] / a["wall"]) / (b["events"] / b["wall"])
        cpu = (a["events"] / a["cpu"]) / (b["events"] / b["cpu"]) if a.get("cpu") and b.get("cpu") else None
        return f"{wall:.3f} (wall)" + (f", {cpu:.3f} (per CPU-second)" if cpu else "")

    if "(a)1" in by and "(b)1" in by:
        print(f"ratio (b)/(a) = {ratio('(b)1', '(a)1')}  (target >= 0.85)")
    if "(c)1" in by and "(c)2" in by:
        print(f"ratio (c, 2 workers)/(c, 1 worker) = {ratio('(c)2', '(c)1')} (wall; target >= 1.7; per CPU-s "
              "the ideal is 1.0)")
    print(f"{load()} at end")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "args": vars(args), "results": results},
                                        indent=1, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
