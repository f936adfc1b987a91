"""Shared fixtures: small synthetic ntuples with the contract branches and *controlled* contents.

Every event belongs to a named category built to fail exactly one cut (or to land in one region of the
(E_ECAL, E_HCAL) plane), so tests derive the expected cut flow from the category sizes, independently of
the selection code. Categories (per file; sizes in CATEGORIES):

- ``golden_c``: passes every cut, E_ECAL = 65 GeV, E_HCAL = 0.4 GeV (side band C)
- ``fail_<cut>``: fails only ``<cut>`` (at E_ECAL = 70, E_HCAL = 0.4, i.e. side band C, outside the box)
- ``nan_track_p`` / ``nan_chi2`` / ``inf_hcal``: non-finite cut variable (must count as failing)
- ``sideband_a``: passes everything except the HCAL veto, E_ECAL = 30, E_HCAL = 8
- ``validation``: E_ECAL = 40, E_HCAL = 15 (also in side band A)
- ``box``: signal-like, passes everything, E_ECAL = 30, E_HCAL = 0.4 (inside the box)
- ``box_fail_track``: inside the box but fails the track cut
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import uproot

from na64ana import contract


def pytest_configure(config: pytest.Config) -> None:
    """The identity store (na64ana.processing.identity) of this test process lives in a fresh folder:
    tests never write into the user's ~/.cache, and the store holds only this session's files (every run
    reads and rewrites it, so its cost stays small). Subprocesses inherit it."""
    if "NA64ANA_CACHE" not in os.environ:
        folder = tempfile.mkdtemp(prefix="na64ana-test-identity-")
        os.environ["NA64ANA_CACHE"] = folder
        config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))


CATEGORIES: dict[str, int] = {
    "golden_c": 40,
    "fail_track": 50,
    "fail_srd": 40,
    "fail_shower": 30,
    "fail_straw": 20,
    "fail_veto": 10,
    "fail_pileup": 8,
    "fail_hcal0": 6,
    "nan_track_p": 2,
    "nan_chi2": 4,
    "inf_hcal": 3,
    "sideband_a": 25,
    "validation": 15,
    "box": 12,
    "box_fail_track": 7,
}


def golden(n: int) -> dict[str, np.ndarray]:
    """``n`` events passing every invisible-mode cut, E_ECAL = 65 GeV, E_HCAL = 0.4 GeV."""
    types = contract.branch_types(mc=True)
    a = {name: np.zeros(n, dtype=dt) for name, dt in types.items()}
    a["run"][:] = 1
    a["event"][:] = np.arange(n)
    a["trigger"][:] = 1
    a["track_n"][:] = 1
    a["track_p"][:] = 100.0
    a["track_theta"][:] = 0.3
    a["straw_nhits"][:] = 4
    for i in range(3):
        a[f"srd_e{i}"][:] = 10.0
        a[f"srd_t{i}"][:] = 0.1
        a[f"veto_e{i}"][:] = 1.0
    a["ecal_e"][:] = 65.0
    a["ecal_ps_e"][:] = 1.0
    a["ecal_chi2"][:] = 1.0
    for i in range(4):
        a[f"hcal_e{i}"][:] = 0.1
    a["hcal0_e"][:] = 0.1
    a["weight"][:] = 1.0
    return a


def _apply(a: dict[str, np.ndarray], sl: slice, cat: str) -> None:
    def hcal(total: float) -> None:
        for i in range(4):
            a[f"hcal_e{i}"][sl] = total / 4

    if cat.startswith("fail_"):
        a["ecal_e"][sl] = 70.0
    match cat:
        case "fail_track":
            a["track_p"][sl] = 90.0
        case "fail_srd":
            a["srd_e1"][sl] = 0.5
        case "fail_shower":
            a["ecal_chi2"][sl] = 20.0
        case "fail_straw":
            a["straw_nhits"][sl] = 12
        case "fail_veto":
            a["veto_e2"][sl] = 50.0
        case "fail_pileup":
            a["ecal_pileup"][sl] = 1
        case "fail_hcal0":
            a["hcal0_e"][sl] = 5.0
        case "nan_track_p":
            a["track_p"][sl] = np.nan
        case "nan_chi2":
            a["ecal_chi2"][sl] = np.nan
        case "inf_hcal":
            a["hcal_e0"][sl] = np.inf
        case "sideband_a":
            a["ecal_e"][sl] = 30.0
            hcal(8.0)
        case "validation":
            a["ecal_e"][sl] = 40.0
            hcal(15.0)
        case "box":
            a["ecal_e"][sl] = 30.0
        case "box_fail_track":
            a["ecal_e"][sl] = 30.0
            a["track_p"][sl] = 90.0


def make_arrays(counts: dict[str, int] | None = None, *, seed: int = 1, shuffle: bool = True,
                weight: float | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Arrays with the given category sizes; also the per-event category names."""
    counts = dict(CATEGORIES if counts is None else counts)
    n = sum(counts.values())
    a = golden(n)
    cats = np.empty(n, dtype=object)
    start = 0
    for cat, k in counts.items():
        _apply(a, slice(start, start + k), cat)
        cats[start:start + k] = cat
        start += k
    if weight is not None:
        a["weight"][:] = weight
    if shuffle:
        perm = np.random.default_rng(seed).permutation(n)
        a = {k: v[perm] for k, v in a.items()}
        cats = cats[perm]
    a["event"][:] = np.arange(n)
    return a, cats


def write_tree(path: Path, arrays: dict[str, np.ndarray], *, mc: bool = False, tree: str = "events",
               basket: int = 100, drop: tuple[str, ...] = ()) -> Path:
    """Write a TTree (mktree + extend, several baskets so that chunking is exercised)."""
    types = {k: v for k, v in contract.branch_types(mc=mc).items() if k not in drop}
    n = len(arrays["ecal_e"])
    with uproot.recreate(path) as f:
        t = f.mktree(tree, types)
        for s in range(0, max(n, 1), basket):
            if n:
                t.extend({k: arrays[k][s:s + basket] for k in types})
    return path


def _run(hcal0: bool, files: list[dict]) -> dict:
    return {"year": 2018 if hcal0 else 2016, "eot": 1.0e9, "intensity_e_per_spill": [1e6, 2e6],
            "hcal0": hcal0, "efficiency": 0.5, "efficiency_unc": 0.1, "files": files,
            "sources": {"eot": "test", "intensity_e_per_spill": "test", "efficiency": "test"}}


def write_datasets(path: Path, runs: dict[str, tuple[bool, list[dict]]], campaign: str = "test") -> Path:
    raw = {"schema_version": 1, "default_campaign": campaign, "sources": {"T": "synthetic test data"},
           "campaigns": {campaign: {"description": "synthetic", "source": "T", "selection": "invisible",
                                    "runs": {r: _run(h, f) for r, (h, f) in runs.items()}}}}
    path.write_text(json.dumps(raw, indent=1))
    return path


def file_entry(path: Path, n: int, *, kind: str = "data", sample: str = "campaign", eot: float = 1e9) -> dict:
    return {"path": path.name, "nevents": n, "eot": eot, "kind": kind, "sample": sample}


@pytest.fixture(scope="session")
def synth():
    """Helpers to build synthetic inputs (see the module docstring); pure functions, so one per session."""
    return SimpleNamespace(CATEGORIES=CATEGORIES, golden=golden, make_arrays=make_arrays,
                           write_tree=write_tree, write_datasets=write_datasets, file_entry=file_entry)


def make_synth_campaign(tmp_path: Path) -> SimpleNamespace:
    """Write the synthetic campaign of :func:`synth_campaign` into ``tmp_path``."""
    a1, c1 = make_arrays(seed=1)
    a2, c2 = make_arrays(seed=2)
    b1, cb = make_arrays(seed=3)
    mc, cm = make_arrays({"box": 30, "golden_c": 10, "fail_veto": 5}, seed=4, weight=0.25)
    mc["weight"][:5] = 2.0  # non-uniform weights
    p = {name: tmp_path / f"{name}.root" for name in ("a1", "a2", "b1", "sig")}
    write_tree(p["a1"], a1)
    write_tree(p["a2"], a2)
    write_tree(p["b1"], b1)
    write_tree(p["sig"], mc, mc=True)
    dsets = write_datasets(tmp_path / "datasets.json", {
        "A": (False, [file_entry(p["a1"], len(c1)), file_entry(p["a2"], len(c2))]),
        "B": (True, [file_entry(p["b1"], len(cb)), file_entry(p["sig"], len(cm), kind="mc", sample="signal",
                                                               eot=0.0)]),
    })
    return SimpleNamespace(datasets=dsets, cats={"A": np.concatenate([c1, c2]), "B": cb, "B-signal": cm},
                           arrays={"a1": a1, "a2": a2, "b1": b1, "sig": mc}, paths=p)


@pytest.fixture
def synth_campaign(tmp_path):
    """A campaign 'test' with run A (no HCAL0, two data files) and run B (HCAL0, one data file)
    and a signal-MC file in run B, in the test's own folder (a test may change its files).
    Returns a namespace: datasets (path), cats ({run key: category per event}), arrays, paths."""
    return make_synth_campaign(tmp_path)


# ------------------------------------------------------------------------------------------------------
# One tiny campaign and its run output per session, for the tests that only need "some small campaign,
# processed": made once instead of once per module or test. READ-ONLY: a test that changes files takes
# its own copy (tiny_run_copy) or its own synth_campaign.


@pytest.fixture(scope="session")
def tiny_campaign(tmp_path_factory) -> SimpleNamespace:
    """The synth_campaign content, written once per session (do not modify)."""
    return make_synth_campaign(tmp_path_factory.mktemp("tiny_campaign"))


@pytest.fixture(scope="session")
def tiny_run(tiny_campaign) -> Path:
    """``na64ana run`` (blinded, default chunk cache, chunk size 100) of tiny_campaign, written once per
    session into ``<tiny_campaign folder>/out`` (do not modify)."""
    from na64ana.cli import main as cli_main

    out = tiny_campaign.datasets.parent / "out"
    assert cli_main(["run", "--datasets", str(tiny_campaign.datasets), "--out", str(out),
                     "--chunksize", "100"]) == 0
    return out


@pytest.fixture
def tiny_run_copy(tiny_run, tmp_path) -> Path:
    """A private copy of tiny_run for a test that tampers with it: the inputs are copied along, so the
    recorded relative input paths (and the content hashes) still hold; the copy verifies clean."""
    dst = tmp_path / "tiny"
    shutil.copytree(tiny_run.parent, dst)
    return dst / tiny_run.name


def assert_same_hists(h0: dict, h1: dict, *, variance_rtol: float = 0.0) -> None:
    """Two ``{name: hist.Hist}`` outputs hold the same histograms: values exactly (flow bins included),
    variances within ``variance_rtol`` (sums of w^2 depend on the chunk merge order at ~1e-13)."""
    assert h0.keys() == h1.keys() and len(h0) > 10
    for name in h0:
        a, b = h0[name], h1[name]
        assert set(a.axes["run"]) == set(b.axes["run"]), name
        for run in a.axes["run"]:
            x, y = a[{"run": run}], b[{"run": run}]
            np.testing.assert_array_equal(x.values(flow=True), y.values(flow=True), err_msg=f"{name} {run}")
            np.testing.assert_allclose(x.variances(flow=True), y.variances(flow=True), rtol=variance_rtol,
                                       atol=0, err_msg=f"{name} {run}")


def load_run_outputs(out: Path) -> tuple[dict, dict, dict]:
    """Cut flows, regions and every histogram of a complete ``na64ana run`` folder (through the package's
    readers, which refuse an incomplete folder)."""
    from na64ana.processing import outputs

    cutflows = {p.stem: outputs.load_cutflow(out, p.stem) for p in sorted((out / "cutflows").glob("*.json"))}
    hists = {name: outputs.load_hist(out, name) for name in outputs.list_hists(out)}
    return cutflows, outputs.load_regions(out), hists


@pytest.fixture(scope="session")
def built_reports(tmp_path_factory) -> dict[str, Path]:
    """Full reports (every figure, report.md/html) of the synthetic results folder of
    tests/results_factory.py, unblinded ("open", PNG and PDF) and blinded ("blind", PNG), built once per
    session. READ-ONLY: a test that writes into a report folder copies it first."""
    from na64ana.presentation.report import build_report, make_plots  # matplotlib: only report tests pay

    try:
        from results_factory import make_results
    except ImportError:  # tests collected as a package
        from tests.results_factory import make_results

    out = {}
    for name, blinded in (("open", False), ("blind", True)):
        root = make_results(tmp_path_factory.mktemp(f"report_{name}"), blinded=blinded)
        build_report(root, plots_made=make_plots(root, pdf=not blinded))
        out[name] = root
    return out
