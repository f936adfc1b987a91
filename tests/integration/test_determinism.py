"""Determinism: the same inputs give the same outputs, whatever the executor, chunking, worker count, or run.

Processing: cut-flow counts and histogram contents are identical across executors (iterative, futures,
dask), chunk sizes and worker counts. Counts are exact. Floating sums cannot be bit-identical in general:
each chunk sums its events (boost-histogram sequentially, numpy pairwise), and coffea adds the chunk
results in completion order, so chunk boundaries and merge order change the rounding (float addition is
not associative). Measured on the inputs below:

- sums of weights (weighted cut flows, region sums, histogram values) are *bit-identical*: the weights are
  float32 (24-bit mantissa) summed in float64, which is exact while the weights' dynamic range plus
  log2(number of events) fits in 53 bits -- true here even for log-normal weights spanning ~6 decades;
- histogram variances (sums of w^2, 48-bit products) differ by up to 2.4e-13 relative (the constant-weight
  signal MC, ~1e4 equal w^2 added one by one per bin: the rounding error of a sequential sum of equal terms
  grows ~ n * 1.1e-16, so a bin of 1e6 events may reach ~1e-11). Asserted within 1e-12.

The order of the ``run`` categories of a merged histogram is the merge order (it differs between executors),
so histograms are compared category by category, by name.

Simulation: for a given seed the generated arrays, the written ROOT files (byte for byte) and the
datasets.json of a campaign are identical between calls and between processes. What defines a sample:
the seed and every generation argument (run, campaign, level, EOT or ``n_events``, beam settings), and the
code and numpy versions. Not invariant: ``n_events`` (the trigger-level generator sizes its candidate
batches from it and spreads the events over the spills of their EOT, so n + 1 events are a different
sample, not n plus one). The writer's ``chunk`` (basket size) and compression change the file bytes but not
the arrays read back; the file name is stored inside the file, so it is part of the bytes too. Byte identity
also assumes the same uproot/lz4/zstd versions (see na64ana.simulation.writer).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import hist
import numpy as np
import pytest
import uproot
import uproot.writing._cascade as cascade
import uproot.writing._cascadetree as tree_writer

from na64ana import datasets
from na64ana.processing import execute
from na64ana.simulation import (
    generate_events,
    simulate_campaign,
    simulate_dimuon_sample,
    simulate_signal_sample,
    simulate_signal_samples,
    write_tree,
)
from na64ana.simulation import writer as writer_mod

REPO = Path(__file__).resolve().parents[2]
DATASETS = REPO / "datasets.json"
RTOL = 1e-12
MASS = 0.0167
# chunk sizes: odd and unaligned with anything (a prime), mid, and one chunk per file
CHUNKS = (7_919, 20_000, 10_000_000)


# ------------------------------------------------------------------------------------------ comparing


class Diff:
    """Differences between two processor outputs: a list of the differing items and the largest relative
    difference seen on a floating-point sum (for the record: it is expected to be a few ulp)."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.max_rel = 0.0

    def ints(self, path: str, a: Any, b: Any) -> None:
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape or not np.array_equal(a, b):
            self.problems.append(f"{path}: {a.tolist()} != {b.tolist()}")

    def floats(self, path: str, a: Any, b: Any, rtol: float = RTOL) -> None:
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        if a.shape != b.shape:
            self.problems.append(f"{path}: shape {a.shape} != {b.shape}")
            return
        scale = np.maximum(np.abs(a), np.abs(b))
        rel = np.divide(np.abs(a - b), scale, out=np.zeros_like(scale), where=scale > 0)
        worst = float(rel.max(initial=0.0))
        self.max_rel = max(self.max_rel, worst)
        if worst > rtol:
            i = np.unravel_index(int(np.argmax(rel)), rel.shape)
            self.problems.append(f"{path}: relative difference {worst:.3g} at {i} ({a[i]!r} vs {b[i]!r})")

    def hist(self, path: str, a: hist.Hist, b: hist.Hist) -> None:
        if type(a.storage_type) is not type(b.storage_type) or a.axes[1:] != b.axes[1:]:
            self.problems.append(f"{path}: different storage or axes")
            return
        cats_a, cats_b = sorted(a.axes["run"]), sorted(b.axes["run"])
        if cats_a != cats_b:
            self.problems.append(f"{path}: run categories {cats_a} != {cats_b}")
            return
        for cat in cats_a:  # by name: the category order is the order in which chunks were merged
            ha, hb = a[{"run": cat}], b[{"run": cat}]
            self.floats(f"{path}[{cat}].values", ha.values(flow=True), hb.values(flow=True), rtol=0.0)
            self.floats(f"{path}[{cat}].variances", ha.variances(flow=True), hb.variances(flow=True))


def compare_outputs(ref: dict[str, Any], got: dict[str, Any]) -> Diff:
    """Compare every item of two invisible-processor outputs (but ``chunks``, which depends on the
    chunk size by definition): counts and sums of float32 weights exactly, variances within RTOL."""
    d = Diff()
    if set(ref) != set(got):
        d.problems.append(f"output keys {sorted(ref)} != {sorted(got)}")
    for name in ("nevents", "cutflow", "regions"):
        if set(ref[name]) != set(got[name]):
            d.problems.append(f"{name} keys {sorted(ref[name])} != {sorted(got[name])}")
    for key in ref["nevents"]:
        d.ints(f"nevents[{key}]", ref["nevents"][key], got["nevents"].get(key))
    for key, cf in ref["cutflow"].items():
        d.ints(f"cutflow[{key}].events", cf["events"], got["cutflow"][key]["events"])
        d.floats(f"cutflow[{key}].weighted", cf["weighted"], got["cutflow"][key]["weighted"], rtol=0.0)
    for key, regions in ref["regions"].items():
        if set(regions) != set(got["regions"][key]):
            d.problems.append(f"regions[{key}]: names differ")
            continue
        for rname, v in regions.items():
            w = got["regions"][key][rname]
            d.ints(f"regions[{key}][{rname}].count", v[0], w[0])
            d.floats(f"regions[{key}][{rname}].weighted", v[1], w[1], rtol=0.0)
    if ref["blinded"] != got["blinded"]:
        d.problems.append(f"blinded {sorted(ref['blinded'])} != {sorted(got['blinded'])}")
    if set(ref["hists"]) != set(got["hists"]):
        d.problems.append(f"hists {sorted(set(ref['hists']) ^ set(got['hists']))} only in one output")
    for name in sorted(set(ref["hists"]) & set(got["hists"])):
        d.hist(f"hists[{name}]", ref["hists"][name], got["hists"][name])
    return d


def test_compare_outputs_names_the_differing_item():
    """The helper itself: a variance a few ulp off passes; any other change is reported by its name."""
    h = hist.Hist(hist.axis.StrCategory(["I"], growth=True, name="run"), hist.axis.Regular(4, 0, 4, name="x"),
                  storage=hist.storage.Weight())
    h.fill(run="I", x=[0.5, 1.5, 1.5], weight=[0.1, 0.2, 0.7])
    ref = {"nevents": {"I": 3}, "chunks": {"I": 1}, "blinded": set(), "hists": {"h": h},
           "cutflow": {"I": {"events": np.array([3, 2]), "weighted": np.array([1.0, 0.9])}},
           "regions": {"I": {"A": np.array([1.0, 0.1])}}}

    def names(got: dict) -> list[str]:
        return [p.split(":")[0] for p in compare_outputs(ref, {**ref, **got}).problems]

    h_ulp = h.copy()
    h_ulp.view(flow=True).variance[0, 2] *= 1 + 1e-15
    assert names({"hists": {"h": h_ulp}, "chunks": {"I": 7}}) == []
    assert compare_outputs(ref, {**ref, "hists": {"h": h_ulp}}).max_rel > 0
    assert names({"cutflow": {"I": {"events": np.array([3, 1]), "weighted": np.array([1.0, 0.9])}}}) == \
        ["cutflow[I].events"]
    assert names({"cutflow": {"I": {"events": np.array([3, 2]), "weighted": np.array([1.0, 0.9 + 1e-16])}}}) \
        == ["cutflow[I].weighted"]  # sums of float32 weights must be exact (module docstring)
    assert names({"regions": {"I": {"A": np.array([2.0, 0.1])}}}) == ["regions[I][A].count"]
    h2 = h.copy()
    h2.fill(run="I", x=[1.5], weight=[1e-3])
    assert names({"hists": {"h": h2}}) == ["hists[h][I].values", "hists[h][I].variances"]
    h3 = h.copy()
    h3.fill(run="II", x=[1.5])
    assert names({"hists": {"h": h3}, "blinded": {"I"}}) == ["blinded [] != ['I']", "hists[h]"]


# ------------------------------------------------------------------------------------------ processing


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> list[execute.Job]:
    """Simulated trigger-level data (runs I, II), signal MC with its constant weight, and the same signal
    MC with log-normal per-event weights (sums of very different float32 weights, the hard case)."""
    tmp = tmp_path_factory.mktemp("det_inputs")
    sim = simulate_campaign(DATASETS, out_dir=tmp / "sim", campaign="prl2019", runs=["I", "II"],
                            level="trigger", n_events=25_000, seed=3)
    sig = simulate_signal_samples(sim, out_dir=tmp / "sig", masses_GeV=[MASS], n_events=20_000, runs=["I"],
                                  seed=3)
    run = datasets.load(sig).campaigns["prl2019"].runs["I"]
    a = simulate_signal_sample(run, mass_GeV=MASS, n_events=40_000, rng=np.random.default_rng(8),
                               run_name="I")
    rng = np.random.default_rng(9)
    a["weight"] = (a["weight"] * rng.lognormal(0.0, 1.5, a["weight"].size)).astype(np.float32)
    n = write_tree(tmp / "sig" / "prl2019" / "wsignal_run_I.root", a)
    raw = json.loads(sig.read_text())
    raw["campaigns"]["prl2019"]["runs"]["I"]["files"].append(
        {"path": "prl2019/wsignal_run_I.root", "nevents": n, "eot": 0.0, "kind": "mc", "sample": "wsignal",
         "signal_mass_GeV": MASS})
    sig.write_text(json.dumps(raw, indent=1))
    return execute.plan(sig, samples=["trigger", "signal", "wsignal"])


def _check_chunking(jobs: list[execute.Job], chunks: dict[str, int], chunksize: int) -> None:
    """The chunk sizes really split the files (odd, unaligned boundaries) or give one chunk per file."""
    if chunksize == CHUNKS[0]:
        assert all(chunks[j.key] >= 2 for j in jobs), chunks
    if chunksize == CHUNKS[-1]:
        assert chunks == {j.key: len(j.files) for j in jobs}


@pytest.fixture(scope="module")
def reference(inputs) -> dict[str, Any]:
    """Iterative executor, one chunk per file: each sum in plain event order."""
    out = execute.run(inputs, executor="iterative", chunksize=CHUNKS[-1]).output
    assert set(out["cutflow"]) == {"I-trigger", "II-trigger", f"I-signal-m{MASS:g}", f"I-wsignal-m{MASS:g}"}
    assert out["cutflow"][f"I-wsignal-m{MASS:g}"]["weighted"][-1] > 0  # weighted MC survives the cuts
    return out


def _check(inputs, reference, chunksize: int, **kw) -> None:
    res = execute.run(inputs, chunksize=chunksize, **kw)
    _check_chunking(inputs, res.output["chunks"], chunksize)
    diff = compare_outputs(reference, res.output)
    assert diff.problems == [], diff.problems
    assert diff.max_rel <= RTOL


@pytest.mark.parametrize("chunksize", CHUNKS)
def test_iterative_is_independent_of_the_chunk_size(inputs, reference, chunksize):
    _check(inputs, reference, chunksize, executor="iterative")


# Every worker count at the odd chunk size (most chunks, so most merges in completion order). Not every
# chunk size: coffea's futures executor spawns fresh (loky) worker processes that import coffea and na64ana
# on every run, seconds each on 2 cores; iterative and dask cover every chunk size.
@pytest.mark.parametrize("workers", [1, 2, 3])
def test_futures_agrees_for_every_worker_count(inputs, reference, workers):
    _check(inputs, reference, CHUNKS[0], executor="futures", workers=workers)


@pytest.fixture(scope="module", params=[1, 2], ids=lambda n: f"{n}workers")
def dask_scheduler(request):
    """One LocalCluster per worker count, shared by the chunk sizes (a cluster costs seconds to start)."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=request.param, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster:
        yield cluster.scheduler_address


@pytest.mark.dask
@pytest.mark.parametrize("chunksize", CHUNKS)
def test_dask_agrees_for_every_chunk_size_and_worker_count(inputs, reference, dask_scheduler, chunksize):
    _check(inputs, reference, chunksize, executor="dask", scheduler=dask_scheduler)


# ------------------------------------------------------------------------------------------ simulation


def _digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for k, v in arrays.items():
        h.update(f"{k}:{v.dtype.str}:{v.shape}:".encode())
        h.update(np.ascontiguousarray(v).tobytes())
    return h.hexdigest()


def generate_samples(seed: int = 21) -> dict[str, dict[str, np.ndarray]]:
    """One sample of every generator (skim, trigger level, signal MC, dimuon MC), all from ``seed``."""
    ds = datasets.load(DATASETS)
    prl, prd = ds.campaigns["prl2019"].runs, ds.campaigns["prd2018"].runs
    rng = np.random.default_rng
    return {
        "skim": generate_events(prd["III"], campaign="prd2018", run_name="III", level="skim", eot=3e8,
                                rng=rng(seed)),
        "trigger": generate_events(prl["I"], campaign="prl2019", run_name="I", level="trigger",
                                   n_events=20_000, rng=rng(seed)),
        "signal": simulate_signal_sample(prl["II"], mass_GeV=MASS, n_events=3000, rng=rng(seed),
                                         run_name="II"),
        "dimuon": simulate_dimuon_sample(prl["III"], n_events=5000, rng=rng(seed), campaign="prl2019",
                                         run_name="III"),
    }


def sample_digests(write_to: str | None = None) -> dict[str, str]:
    """sha256 of every generated sample; with ``write_to`` also writes the trigger sample there (the
    entry point of the second process in :func:`test_generation_is_identical_between_calls_and_processes`)."""
    samples = generate_samples()
    if write_to is not None:
        write_tree(write_to, samples["trigger"], chunk=7919)
    return {name: _digest(a) for name, a in samples.items()}


def _in_subprocess(code: str, *, hash_seed: str = "4242") -> str:
    """Run ``code`` in a fresh interpreter (another PYTHONHASHSEED: set/dict orders must not matter)."""
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    res = subprocess.run([sys.executable, "-c", code], env=env, cwd=Path(__file__).parent,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    return res.stdout


@pytest.fixture(scope="module")
def samples() -> dict[str, dict[str, np.ndarray]]:
    return generate_samples()


def test_generation_is_identical_between_calls_and_processes(samples, tmp_path):
    """(a) Same seed -> identical arrays: twice in this process (whatever the global RNG state: nothing
    draws from numpy's or Python's global generators) and in another process; the file that process writes
    is byte-identical to ours."""
    import random

    (tmp_path / "other").mkdir()

    first = {name: _digest(a) for name, a in samples.items()}
    np.random.seed(123)  # noqa: NPY002 -- the legacy global state, on purpose
    random.seed(5)
    again = {name: _digest(a) for name, a in generate_samples().items()}
    assert again == first
    out = _in_subprocess("import json, sys, test_determinism as t; "
                         f"print(json.dumps(t.sample_digests({str(tmp_path / 'other' / 'x.root')!r})))")
    assert json.loads(out.strip().splitlines()[-1]) == first
    write_tree(tmp_path / "x.root", samples["trigger"], chunk=7919)
    assert (tmp_path / "x.root").read_bytes() == (tmp_path / "other" / "x.root").read_bytes()
    other = {name: _digest(a) for name, a in generate_samples(seed=22).items()}
    assert all(other[k] != first[k] for k in first)  # the seed does matter


def _read(path: Path) -> dict[str, np.ndarray]:
    with uproot.open(path) as f:
        return f["events"].arrays(library="np")


@pytest.mark.parametrize("sample", ["trigger", "signal"])
def test_arrays_read_back_do_not_depend_on_the_writer_chunk_or_compression(samples, tmp_path, sample):
    """(b) ``chunk`` (events per basket) and the compression only change the file layout."""
    a = samples[sample]
    n = len(a["event"])
    layouts = {"default": {}, "odd": {"chunk": 7919}, "small": {"chunk": 1000}, "one": {"chunk": n},
               "zstd": {"compression": "zstd", "chunk": 4096}}
    for name, kw in layouts.items():
        assert write_tree(tmp_path / f"{name}.root", a, **kw) == n
        back = _read(tmp_path / f"{name}.root")
        assert list(back) == list(a), name
        for k in a:
            assert back[k].dtype == a[k].dtype and np.array_equal(back[k], a[k], equal_nan=True), (name, k)
    with uproot.open(tmp_path / "small.root") as f:
        assert f["events"]["ecal_e"].num_baskets == math.ceil(n / 1000)


def test_file_bytes_are_a_function_of_the_content(samples, tmp_path):
    """(c) Same arrays, name and options -> the same bytes, written at any time: the file carries a UUID
    derived from its content and a constant timestamp, and its own name (not the temporary one)."""
    a = samples["trigger"]
    for d in ("x", "y"):
        (tmp_path / d).mkdir()
        write_tree(tmp_path / d / "run_I.root", a, chunk=7919)
    data = (tmp_path / "x" / "run_I.root").read_bytes()
    assert data == (tmp_path / "y" / "run_I.root").read_bytes()
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["run_I.root"]  # no temporary left
    names = list(a)
    types = {k: v.dtype for k, v in a.items()}
    expected_uuid = writer_mod.content_uuid("run_I.root", a, names, types, tree="events", compression="lz4",
                                            chunk=7919)
    with uproot.open(tmp_path / "x" / "run_I.root") as f:
        assert f.file.uuid == expected_uuid
        stamps = {f.file.root_directory.created_on, f.file.root_directory.modified_on,
                  f.key("events").created_on}
        t = f["events"]
        stamps |= {t[k].basket_key(i).created_on for k in t.keys() for i in range(t[k].num_baskets)}
        assert stamps == {writer_mod.FILE_TIMESTAMP}
    assert b"run_I.root" in data[:400] and b".tmp" not in data  # ROOT keeps the file name inside
    assert cascade.datetime is datetime and tree_writer.datetime is datetime  # uproot's clock restored
    b = dict(a, ecal_e=a["ecal_e"].copy())
    b["ecal_e"][0] += 1.0
    write_tree(tmp_path / "y" / "run_I.root", b, chunk=7919)
    with uproot.open(tmp_path / "y" / "run_I.root") as f:
        assert f.file.uuid != expected_uuid  # other content, other UUID


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_simulated_campaign_folder_is_identical_between_runs_and_processes(tmp_path):
    """The whole output of ``na64ana simulate`` -- ROOT files and datasets.json with their sha256 -- is the
    same in two runs and in another process. Only provenance.json may differ (it records wall times, date
    and host by design)."""
    kw = dict(campaign="prl2019", runs=["I", "II"], level="trigger", n_events=5000, seed=11)
    p1 = simulate_campaign(DATASETS, out_dir=tmp_path / "a", **kw)
    p2 = simulate_campaign(DATASETS, out_dir=tmp_path / "b", **kw)
    _in_subprocess("from na64ana.cli import main; raise SystemExit(main(['simulate', '--datasets', "
                   f"{str(DATASETS)!r}, '--campaign', 'prl2019', '--runs', 'I', 'II', '--level', 'trigger', "
                   f"'--n-events', '5000', '--seed', '11', '--out', {str(tmp_path / 'c')!r}]))")
    a, b, c = (_tree(tmp_path / d) for d in "abc")
    for t in (a, b, c):
        t.pop("provenance.json")
    assert {"datasets.json", "prl2019/run_I.root", "prl2019/run_II.root"} <= set(a)
    assert a == b == c  # every other file too (markers, manifests): none may carry a time or a host
    files = [f for r in datasets.load(p1).campaigns["prl2019"].runs.values() for f in r.files]
    assert {f.path: f.sha256 for f in files} == {k: hashlib.sha256(v).hexdigest() for k, v in a.items()
                                                 if k.endswith(".root")}
    assert p1.read_bytes() == p2.read_bytes()
    s1 = simulate_signal_samples(p1, out_dir=tmp_path / "s1", masses_GeV=[MASS], n_events=2000, runs=["I"])
    s2 = simulate_signal_samples(p1, out_dir=tmp_path / "s2", masses_GeV=[MASS], n_events=2000, runs=["I"])
    sa, sb = _tree(s1.parent), _tree(s2.parent)
    sa.pop("provenance.json"), sb.pop("provenance.json")
    assert sa == sb and s1.read_bytes() == s2.read_bytes()
