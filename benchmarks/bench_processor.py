"""Throughput of the invisible processor against the plain-uproot floor, iterative and on dask (issue 7).

Generates its own seeded trigger-level sample with the simulator (``na64ana.simulation``; cached under
``--workdir`` and reused when the same size/seed/compression is asked again), then prints, for each of

  (a) floor: ``uproot.iterate`` over exactly the processor's columns + the numpy cuts + the 2D plane fill
  (b) ``na64ana.processing.execute.run(..., executor="iterative")`` (coffea ``processor.Runner``, one core)
  (c) the same through the dask executor on a ``LocalCluster`` of 1 and of 2 worker processes
      (cluster started once per size, outside the timing; its start-up time is printed separately)
  (p) 1 and 2 copies of (b) at once in forked processes, each reading on one thread as a dask worker
      does (``--only p1 p2``): this machine's own 2-process ceiling for the same work, the peer of the
      dask ratio (c2)/(c1)
  (d) optionally ROOT RDataFrame, on 1 and on 2 threads (``--rdf-threads``), on the same files and cuts
      (``--rdf-python`` = a Python with the pip ``ROOT`` wheel, e.g. a venv under /tmp: never a runtime
      dependency of na64ana)

the median of ``--reps`` wall times, events/s and events/s per core, plus the load average before each
measurement. All paths must agree on the number of events passing the final cut (checked).

    .venv/bin/python benchmarks/bench_processor.py --events 20000000          # the issue-7 figures
    .venv/bin/python benchmarks/bench_processor.py --quick                    # 1e6 events, 3 reps
    .venv/bin/python benchmarks/bench_processor.py --events 6e7 --only p1 p2 c1 c2 --chunksize 1000000
                                                                    # the dask ratio beside its ceiling
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


ROOT_LEVELS = {"lz4": 4, "zlib": 1, "zstd": 5}  # ROOT's recommended settings: 404, 101, 505

SNAPSHOT_SCRIPT = r"""
import json, sys, time
import ROOT
ROOT.ROOT.DisableImplicitMT()
cfg = json.loads(sys.argv[1])
alg = {"lz4": ROOT.RCompressionSetting.EAlgorithm.kLZ4, "zlib": ROOT.RCompressionSetting.EAlgorithm.kZLIB,
       "zstd": ROOT.RCompressionSetting.EAlgorithm.kZSTD}[cfg["codec"]]
out = []
for src, dst in cfg["files"]:
    t0 = time.perf_counter()
    opts = ROOT.RDF.RSnapshotOptions()  # default basket size (32 kB) and auto-flush (~30 MB clusters)
    opts.fCompressionAlgorithm = alg
    opts.fCompressionLevel = cfg["level"]
    df = ROOT.RDataFrame(cfg["tree"], src)
    df.Snapshot(cfg["tree"], dst, df.GetColumnNames(), opts)
    out.append(time.perf_counter() - t0)
print(json.dumps(out))
"""


def root_layout(dj: Path, codec: str, python: str) -> Path | None:
    """The sample of ``dj`` rewritten by ROOT itself (``RDataFrame::Snapshot`` with ROOT's default TTree
    layout: 32 kB baskets, ~30 MB clusters) with ``codec`` at ROOT's recommended level; returns its
    datasets.json (cached), or None when ``python`` has no ROOT. Same events, same EOT, no sha256."""
    out = dj.parent.with_name(f"{dj.parent.name}_root-{codec}")
    new_dj = out / "datasets.json"
    if new_dj.is_file():
        return new_dj
    if not Path(python).exists():
        print(f"ROOT layout skipped: no {python} (a Python with the pip ROOT wheel)")
        return None
    data = json.loads(dj.read_text())
    pairs = []
    for camp in data["campaigns"].values():
        for run in camp["runs"].values():
            for f in run.get("files", []):
                src = (dj.parent / f["path"]).resolve()
                dst = out / f["path"]
                dst.parent.mkdir(parents=True, exist_ok=True)
                pairs.append((str(src), str(dst)))
                f.pop("sha256", None)
    tree = next(iter(data["campaigns"].values())).get("tree", "events")
    cfg = {"files": pairs, "codec": codec, "level": ROOT_LEVELS[codec], "tree": tree}
    t0 = time.perf_counter()
    res = subprocess.run([python, "-c", SNAPSHOT_SCRIPT, json.dumps(cfg)], capture_output=True, text=True)
    if res.returncode != 0:
        print(f"ROOT layout skipped: {python} failed: {res.stderr.strip().splitlines()[-1:]}")
        return None
    new_dj.write_text(json.dumps(data, indent=1) + "\n")
    print(f"rewrote {len(pairs)} files with ROOT (RDataFrame Snapshot, {codec}:{ROOT_LEVELS[codec]}) in "
          f"{time.perf_counter() - t0:.1f} s ({load()})")
    return new_dj


def layout_summary(dj: Path) -> str:
    """Baskets per branch, entries per cluster and size of the first file of a sample (what layout it has)."""
    import uproot

    from na64ana import datasets as ds

    camp = ds.load(dj)
    run = next(iter(camp.campaign(camp.default_campaign).runs.values()))
    path = ds.resolve_path(run.files[0], dj)
    with uproot.open(path) as f:
        t = f[run.files[0].tree or "events"]
        b = t["ecal_e"]
        clusters = t.common_entry_offsets()
        mb = path.stat().st_size / 1e6
        return (f"{path.name}: {t.num_entries} entries, {mb:.0f} MB, {b.num_baskets} baskets per branch "
                f"(ecal_e), {len(clusters) - 1} clusters ({t.num_entries / max(len(clusters) - 1, 1):.3g} "
                f"entries, ~{mb / max(len(clusters) - 1, 1):.1f} MB each), {b.compression}")


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


def interleaved(items: list[tuple[str, Callable[[], dict], int]], reps: int) -> list[dict]:
    """Median wall and CPU time (all processes involved) of ``reps`` calls of each peer's function (which
    returns a dict with 'events' and 'final'), interleaved: rep 1 of every item, then rep 2, ...

    On a shared machine the load changes from minute to minute; measuring the peers in turn puts each
    ratio's numerator and denominator under the same conditions. Returns one result per item."""
    acc: list[dict] = [{"walls": [], "cpus": [], "load1": [], "res": {}} for _ in items]
    for _ in range(reps):
        for (_label, fn, _cores), a in zip(items, acc, strict=True):
            a["load1"].append(os.getloadavg()[0])
            c0, t0 = cpu_seconds(), time.perf_counter()
            a["res"] = fn()
            a["walls"].append(time.perf_counter() - t0)
            a["cpus"].append(cpu_seconds() - c0)
    out = []
    for (label, _fn, cores), a in zip(items, acc, strict=True):
        r = dict(a["res"])
        r.update(label=label, walls=a["walls"], wall=statistics.median(a["walls"]),
                 cpu=statistics.median(a["cpus"]), cpus=a["cpus"], load1=a["load1"], cores=cores)
        out.append(r)
    return out


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


# (p) the machine's own 2-process ceiling for this work: n copies of (b) at once, each in its own forked
# process over the whole sample, nothing shared but the machine. The dask ratio (c2)/(c1) is read beside
# (p2)/(p1): two busy processes on this machine's 2 vCPUs may not reach 2x (memory bandwidth, caches, the
# host's scheduling of the vCPUs), and no executor can beat that.
_POOL_JOBS: list = []


def _one_copy(chunksize: int) -> dict:
    from na64ana.processing import execute

    # like a dask worker: the chunk is read and decompressed on the one thread that processes it (the
    # iterative executor's 2 decompression threads would make one copy use ~1.25 cores)
    execute.READ_THREADS = 1
    return processor_run(_POOL_JOBS, chunksize)


def copies_at_once(jobs: list, chunksize: int, copies: int) -> dict:
    """(p1)/(p2): ``copies`` processes each running (b) with one read thread on the whole sample at the same
    time; events and the final count are per copy times ``copies`` (the throughput of the machine)."""
    import multiprocessing as mp

    _POOL_JOBS[:] = jobs
    with mp.get_context("fork").Pool(copies) as pool:
        outs = pool.map(_one_copy, [chunksize] * copies, chunksize=1)
    return {"events": sum(o["events"] for o in outs), "final": outs[0]["final"],
            "chunks": sum(o["chunks"] for o in outs)}


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
    """A LocalCluster as ``execute.make_executor`` makes it (worker malloc settings and config included)."""
    import dask
    from distributed import LocalCluster

    from na64ana.processing import execute

    t0 = time.perf_counter()
    with dask.config.set(execute.local_cluster_config()):
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
    return cluster, time.perf_counter() - t0


# ------------------------------------------------------------------------------------------------------
# (e) end to end: `na64ana run` against a floor process doing the same physics with uproot + numpy + hist

E2E_FLOOR = r"""
import json, pickle, sys
from pathlib import Path
import hist, numpy as np, uproot
from na64ana import blinding, selection as selmod
from na64ana.contract import resolve
from na64ana.processing import execute  # plan only (no coffea import)

dj, out, step = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
out.mkdir(parents=True, exist_ok=True)
jobs = execute.plan(dj, samples=["trigger"])
hists, flows = {}, {}
def H(name, key, *axes):  # one histogram per (name, run), summed at the end
    if (name, key) not in hists:
        hists[(name, key)] = hist.Hist(hist.axis.StrCategory([key], growth=True, name="run"), *axes,
                                       storage=hist.storage.Weight())
    return hists[(name, key)]
def pick(v, m):  # as the processor: sparse masks select by take(flatnonzero(m)) (faster than v[m])
    return v.take(np.flatnonzero(m)) if 8 * np.count_nonzero(m) < len(m) else v[m]
def reg(name, v):
    return hist.axis.Regular(*selmod.VARIABLES[v].bins, name=v) if name is None else hist.axis.Regular(
        240, 0.0, 120.0, name=name)
for job in jobs:
    sel = job.selection
    variables = tuple(dict.fromkeys(sel.variables))
    branches = selmod.branches_for(variables)
    names = {resolve(b, job.branch_map): b for b in branches}
    ncut = len(sel.cuts)
    flow = np.zeros(ncut + 1, dtype=np.int64)
    regions = {n: 0 for n, _ in sel.regions}
    for arrays in uproot.iterate({str(p): job.tree for p in job.files}, list(names), step_size=step,
                                 library="np"):
        cols = {names[k]: v for k, v in arrays.items()}
        values = selmod.compute(cols, variables)
        keep = ~blinding.region_mask(sel, values)
        masks = [c for c in selmod.cut_masks(sel, values).values()]
        passed = [keep]
        for m in masks:
            passed.append(passed[-1] & m)
        flow += [len(keep)] + [np.count_nonzero(m) for m in passed[1:]]  # row 0: all events read
        e, h = values["ecal_e"], values["hcal_e"]
        k_iv, k_final = len(sel.plane_i_iv), len(sel.plane_final)
        # the loose plane of data: after the beam preselection, as processors/base.py fills it; of
        # simulation: every event outside the box
        loose = keep if job.kind == "mc" else passed[sel.preselection_rows]
        planes = (("plane_loose", loose), ("plane_i_iv", passed[k_iv]), ("plane_final", passed[k_final]))
        for name, m in planes:
            hp = H(name, job.key, reg("ecal", None), reg("hcal", None))
            hp.fill(run=job.key, ecal=pick(e, m), hcal=pick(h, m))
        after = [None] * (ncut + 1)  # AND of the cuts after i: N-1 = passed[i] & after[i + 1]
        for i in range(ncut - 1, -1, -1):
            after[i] = masks[i] if after[i + 1] is None else masks[i] & after[i + 1]
        for i, cut in enumerate(sel.cuts):
            m = passed[i] if after[i + 1] is None else passed[i] & after[i + 1]
            for v in cut.variables:
                hn = H(f"nminus1_{cut.name}_{v}", job.key, reg(None, v))
                hn.fill(run=job.key, **{v: pick(values[v], m)})
        final = passed[k_final]
        side_c = final & (h < sel.box_hcal_max)
        H("ecal_sideband_c", job.key, reg("ecal", None)).fill(run=job.key, ecal=pick(e, side_c))
        rm = selmod.region_masks(sel, values)
        if "validation" in rm:
            valid = final & rm["validation"]
            H("ecal_validation", job.key, reg("ecal", None)).fill(run=job.key, ecal=pick(e, valid))
        for n, m in rm.items():
            regions[n] += int(np.count_nonzero(final & m))
    flows[job.key] = {"events": flow.tolist(), "regions": regions}
(out / "hists").mkdir(exist_ok=True)
merged = {}
for (name, _key), h in hists.items():
    merged[name] = h if name not in merged else merged[name] + h
for name, h in merged.items():
    with open(out / "hists" / f"{name}.pkl", "wb") as f:
        pickle.dump(h, f, protocol=pickle.HIGHEST_PROTOCOL)
(out / "cutflows.json").write_text(json.dumps(flows))
final = sum(flows[j.key]["events"][len(j.selection.plane_final)] for j in jobs)
nev = sum(v["events"][0] for v in flows.values())
print(json.dumps({"final": final, "events": nev, "hists": len(merged)}))
"""


def e2e_floor(dj: Path, out: Path, step: int) -> dict:
    """(e0) a separate process: imports, uproot.iterate, the cuts, the processor's histograms, write (with
    the malloc settings of execute.WORKER_ENV, which na64ana applies to itself)."""
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    from na64ana.processing.execute import WORKER_ENV

    # the heap settings na64ana gives its own processes (execute.tune_malloc), so both peers run alike
    env = {**os.environ, **WORKER_ENV}
    res = subprocess.run([sys.executable, "-c", E2E_FLOOR, str(dj), str(out), str(step)], capture_output=True,
                         text=True, check=True, env=env)
    return json.loads(res.stdout.strip().splitlines()[-1])


def same_hists(floor_dir: Path, cli_out: Path) -> str:
    """Whether the floor process filled the same histograms (names, run categories, bin contents) as the
    run folder ``cli_out`` holds (its hists/*.json, read as the package reads them)."""
    import pickle

    from na64ana.processing import outputs

    names = outputs.list_hists(cli_out)
    missing = [n for n in names if not (floor_dir / f"{n}.pkl").exists()]
    differ = []
    for n in names:
        if n in missing:
            continue
        with open(floor_dir / f"{n}.pkl", "rb") as f0:  # our own file, written by E2E_FLOOR above
            h0 = pickle.load(f0)
        h1 = outputs.load_hist(cli_out, n)
        h0 = h0[{"run": sorted(h0.axes["run"])}] if list(h0.axes["run"]) != sorted(h0.axes["run"]) else h0
        if list(h0.axes["run"]) != list(h1.axes["run"]) or not np.array_equal(h0.values(flow=True),
                                                                               h1.values(flow=True)):
            differ.append(n)
    ok = bool(names) and not missing and not differ  # no histogram compared is no agreement
    return (f"{len(names)} histograms, {'all identical' if ok else 'MISMATCH'}"
            + (f"; missing in the floor: {missing}" if missing else "")
            + (f"; differ: {differ}" if differ else ""))


def e2e_cli(dj: Path, out: Path, jobs: list) -> dict:
    """(e1) ``na64ana run`` in a separate process (default options: iterative, chunk cache in OUT/.cache)."""
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    exe = Path(sys.executable).with_name("na64ana")
    subprocess.run([str(exe), "run", "--datasets", str(dj), "--samples", "trigger", "--out", str(out)],
                   capture_output=True, text=True, check=True)
    m = json.loads((out / "metrics.json").read_text())
    idx = {j.key: len(j.selection.plane_final) for j in jobs}
    final = 0
    for k, i in idx.items():
        rows = json.loads((out / "cutflows" / f"{k}.json").read_text())["rows"]
        final += int(rows[i]["events"])
    return {"events": m["events"], "final": final, "chunks": m["chunks"]}


# ------------------------------------------------------------------------------------------------------
# (d) RDataFrame (in a separate Python that has ROOT)

RDF_SCRIPT = r"""
import json, sys, time
import ROOT
cfg = json.loads(sys.argv[1])
if cfg["threads"] > 1:
    ROOT.ROOT.EnableImplicitMT(cfg["threads"])
else:
    ROOT.ROOT.DisableImplicitMT()
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


def rdf(jobs: list, python: str, reps: int, threads: int = 1) -> dict | None:
    """Same columns, derived variables and final cut in RDataFrame (``threads`` > 1: implicit
    multithreading on that many threads); None if ``python`` has no ROOT."""
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
    cfg = {"jobs": cfg_jobs, "defines": defines, "reps": reps, "threads": threads}
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
    r.update(label=f"(d) RDataFrame, {threads} thread{'s' if threads > 1 else ''}",
             wall=statistics.median(r["walls"]), load1=[os.getloadavg()[0]],
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
    ap.add_argument("--chunksize", type=int, default=None,
                    help="events per chunk (default: na64ana's DEFAULT_CHUNKSIZE)")
    ap.add_argument("--align-clusters", action="store_true", help="coffea align_clusters=True for (b), (c)")
    ap.add_argument("--compression", default="lz4", choices=("lz4", "zstd", "zlib", "none"))
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--workdir", type=Path, default=DEFAULT_WORK)
    ap.add_argument("--only", nargs="+", default=["a", "a2", "b", "c1", "c2", "d"],
                    choices=["a", "a2", "b", "c1", "c2", "p1", "p2", "d", "e"],
                    help="measurements to run (default: all but e); a, a2, b run interleaved")
    ap.add_argument("--layout", choices=("uproot", "root"), default="uproot",
                    help="uproot: the simulator's files (1e6-entry baskets = clusters); root: the same "
                         "events rewritten by ROOT (RDataFrame Snapshot: 32 kB baskets, ~30 MB clusters), "
                         "needs --rdf-python (default: %(default)s)")
    ap.add_argument("--e2e-events", type=float, default=3e7,
                    help="events of the end-to-end comparison e (default: %(default)g)")
    ap.add_argument("--rdf-python", default="/tmp/rootvenv/bin/python",
                    help="a Python with the ROOT wheel for (d); skipped if absent (default: %(default)s)")
    ap.add_argument("--rdf-threads", type=int, nargs="+", default=[1, 2],
                    help="RDataFrame thread counts for (d); > 1 is implicit multithreading "
                         "(default: %(default)s)")
    ap.add_argument("--quick", action="store_true", help="1e6 events, 3 reps (a smoke run)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    args = ap.parse_args(argv)
    if args.quick:
        args.events = 1e6
        args.e2e_events = min(args.e2e_events, 1e6)
    if args.chunksize is None:
        from na64ana.processing.execute import DEFAULT_CHUNKSIZE

        args.chunksize = DEFAULT_CHUNKSIZE
    print_machine()
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    dj = make_sample(int(args.events), workdir=args.workdir, seed=args.seed, compression=args.compression,
                     nfiles=args.files)
    if args.layout == "root":
        rdj = root_layout(dj, args.compression, args.rdf_python)
        if rdj is None:
            return 1
        dj = rdj
    print(f"layout {args.layout}: {layout_summary(dj)}")
    jobs = plan_trigger(dj)
    branches, _ = processor_columns(jobs[0])
    print(f"sample: {dj.parent} ({sum(j.nevents for j in jobs):.3g} events, {sum(len(j.files) for j in jobs)}"
          f" files); processor columns ({len(branches)}): {', '.join(branches)}")
    print(f"chunksize {args.chunksize}, align_clusters {args.align_clusters}, reps {args.reps}")
    results = []
    hists_verdict = ""  # the end-to-end peers' histograms compared (e)

    def report(r: dict | None, cores: int) -> None:
        if r is None:
            return
        r["cores"] = cores
        results.append(r)
        print(show(r, cores), flush=True)

    cs, al = args.chunksize, args.align_clusters
    peers: list[tuple[str, Callable[[], dict], int]] = []
    if "a" in args.only:
        peers.append(("(a) floor: uproot.iterate + numpy + hist", lambda: floor(jobs, cs), 1))
    if "a2" in args.only:
        peers.append(("(a2) process() on uproot.iterate", lambda: bare_process(jobs, cs), 1))
    if "b" in args.only:
        peers.append(("(b) processor, Runner + IterativeExecutor",
                      lambda: processor_run(jobs, cs, align_clusters=al), 1))
    if peers:
        # the processor's first run hashes new inputs once (identity store): not what the reps measure
        if "b" in args.only:
            processor_run(jobs, cs, align_clusters=al)
        print(f"interleaved: {', '.join(p[0][:4] for p in peers)} x {args.reps}", flush=True)
        for r in interleaved(peers, args.reps):
            report(r, r["cores"])
    ppeers = [(f"(p) {n} cop{'ies' if n > 1 else 'y'} of (b) at once",
               lambda n=n: copies_at_once(jobs, cs, n), n) for n in (1, 2) if f"p{n}" in args.only]
    if ppeers:
        for r in interleaved(ppeers, args.reps):
            report(r, r["cores"])
    # both clusters up at once, their repetitions interleaved (c1, c2, c1, ...): the ratio's numerator and
    # denominator under the same load (an idle cluster costs its heartbeats only)
    clusters = {}
    try:
        for n in (1, 2):
            if f"c{n}" not in args.only:
                continue
            cluster, startup = local_cluster(n)
            clusters[n] = cluster
            print(f"LocalCluster({n} worker process(es)) started in {startup:.1f} s ({load()})")
            t0 = time.perf_counter()
            processor_run(jobs, cs, scheduler=cluster.scheduler_address, align_clusters=al)  # worker imports
            print(f"  warm-up run (worker imports) {time.perf_counter() - t0:.1f} s", flush=True)
        cpeers = [(f"(c) processor, DaskExecutor, {n} worker{'s' if n > 1 else ''}",
                   lambda a=c.scheduler_address: processor_run(jobs, cs, scheduler=a, align_clusters=al), n)
                  for n, c in clusters.items()]
        if cpeers:
            print(f"interleaved: {len(cpeers)} cluster(s) x {args.reps}", flush=True)
            for r in interleaved(cpeers, args.reps):
                report(r, r["cores"])
    finally:
        for c in clusters.values():
            c.close()
    if "e" in args.only:
        edj = make_sample(int(args.e2e_events), workdir=args.workdir, seed=args.seed,
                          compression=args.compression, nfiles=args.files)
        if args.layout == "root":
            edj = root_layout(edj, args.compression, args.rdf_python) or edj
        ejobs = plan_trigger(edj)
        tmp = args.workdir / "e2e"
        e2e_cli(edj, tmp / "cli", ejobs)  # warm-up: first sight of the inputs is hashed (identity store)
        print(f"end to end on {sum(j.nevents for j in ejobs):.3g} events ({edj.parent.name}), interleaved x "
              f"{args.reps}", flush=True)
        epeers = [("(e0) end-to-end floor process", lambda: e2e_floor(edj, tmp / "floor", cs), 1),
                  ("(e1) na64ana run (CLI process)", lambda: e2e_cli(edj, tmp / "cli", ejobs), 1)]
        for r in interleaved(epeers, args.reps):
            report(r, r["cores"])
        hists_verdict = same_hists(tmp / 'floor' / 'hists', tmp / 'cli')
        print(f"end-to-end peers: {hists_verdict}")
    if "d" in args.only:
        if Path(args.rdf_python).exists():
            for n in args.rdf_threads:
                report(rdf(jobs, args.rdf_python, args.reps, n), n)
        else:
            print(f"(d) skipped: no {args.rdf_python} (create a venv with the ROOT wheel there)")

    main_results = [r for r in results if not r["label"].startswith(("(e", "(p"))]
    finals = {r["final"] for r in main_results}
    events = {r["events"] for r in main_results}
    e2e = [r for r in results if r["label"].startswith("(e")]
    if len({r["final"] for r in e2e}) > 1 or len({r["events"] for r in e2e}) > 1 \
            or "MISMATCH" in hists_verdict:
        finals.add(-1)  # the end-to-end peers disagree
    ok = len(finals) <= 1 and len(events) <= 1
    print(f"consistency: events {sorted(events)}, final-cut counts {sorted(finals)} -> "
          f"{'OK' if ok else 'MISMATCH'}")
    by = {r["label"].split(")")[0] + ")" + str(r["cores"]): r for r in results}

    def ratio(x: str, y: str) -> str:
        a, b = by[x], by[y]
        wall = (a["events"] / a["wall"]) / (b["events"] / b["wall"])
        cpu = (a["events"] / a["cpu"]) / (b["events"] / b["cpu"]) if a.get("cpu") and b.get("cpu") else None
        return f"{wall:.3f} (wall)" + (f", {cpu:.3f} (per CPU-second)" if cpu else "")

    if "(a)1" in by and "(b)1" in by:
        print(f"ratio (b)/(a) = {ratio('(b)1', '(a)1')}  (target >= 0.85)")
    if "(e0)1" in by and "(e1)1" in by:
        print(f"ratio (e1)/(e0) = {ratio('(e1)1', '(e0)1')}  (target >= 0.7)")
    if "(c)1" in by and "(c)2" in by:
        print(f"ratio (c, 2 workers)/(c, 1 worker) = {ratio('(c)2', '(c)1')} (wall; target >= 1.8; per CPU-s "
              "the ideal is 1.0)")
    if "(p)1" in by and "(p)2" in by:
        print(f"ratio (p, 2 copies)/(p, 1 copy) = {ratio('(p)2', '(p)1')} (events/s of the machine: its "
              "2-process ceiling for this work, no dask, nothing shared)")
    print(f"{load()} at end")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "args": vars(args), "results": results},
                                        indent=1, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
