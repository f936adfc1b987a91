"""The invisible processor on synthetic inputs whose cut flow is known by construction (see conftest)."""

from __future__ import annotations

import hist
import numpy as np
import pytest
from coffea.processor import accumulate
from na64ana.processors.base import new_hist, stack_runs

from na64ana.processing import execute, outputs

# First cut each synthetic category fails ("" = passes all cuts); hcal0 only where the run has HCAL0.
FIRST_FAIL = {
    "golden_c": "signal_box", "fail_track": "track", "nan_track_p": "track", "box_fail_track": "track",
    "fail_srd": "srd", "fail_shower": "shower", "nan_chi2": "shower", "fail_straw": "straw",
    "fail_veto": "veto", "fail_pileup": "pileup", "fail_hcal0": "hcal0", "inf_hcal": "hcal_zero",
    "sideband_a": "hcal_zero", "validation": "hcal_zero", "box": "",
}
IN_BOX = {"box", "box_fail_track"}  # E_ECAL = 30, E_HCAL = 0.4
CUTS = ["track", "srd", "shower", "straw", "veto", "pileup", "hcal0", "hcal_zero", "signal_box"]


def expected_rows(cats: np.ndarray, *, hcal0: bool, blinded: bool) -> list[int]:
    cuts = [c for c in CUTS if hcal0 or c != "hcal0"]
    order = {c: i for i, c in enumerate(cuts)}

    def survives(cat: str) -> int:  # number of cuts passed
        first = FIRST_FAIL[cat]
        if first == "hcal0" and not hcal0:
            first = "signal_box"  # fail_hcal0 events sit at E_ECAL = 70 GeV
        return len(cuts) if first == "" else order[first]

    passed = np.array([survives(c) for c in cats])
    visible = ~np.isin(cats, list(IN_BOX)) if blinded else np.ones(len(cats), bool)
    return [len(cats)] + [int(np.count_nonzero((passed > i) & visible)) for i in range(len(cuts))]


@pytest.fixture(scope="module")
def unblinded_and_blinded(tiny_campaign, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("proc")
    ns = tiny_campaign  # read-only: the processor only reads the files
    jobs = execute.plan(ns.datasets, samples=["campaign", "signal"])
    res = {ub: execute.run(jobs, "invisible", chunksize=120, unblind=ub) for ub in (True, False)}
    out = {}
    for ub, r in res.items():
        outputs.write_run(tmp / f"out_{ub}", r, processor="invisible", unblind=ub, datasets_file=ns.datasets)
        out[ub] = tmp / f"out_{ub}"
    return ns, out


@pytest.mark.parametrize("unblind", [True, False])
@pytest.mark.parametrize("run,hcal0", [("A", False), ("B", True)])
def test_cutflow_matches_construction(unblinded_and_blinded, unblind, run, hcal0):
    ns, out = unblinded_and_blinded
    rec = outputs.load_cutflow(out[unblind], run)
    cats = ns.cats[run]
    want = expected_rows(cats, hcal0=hcal0, blinded=not unblind)
    assert [r["cut"] for r in rec["rows"]] == ["all", *[c for c in CUTS if hcal0 or c != "hcal0"]]
    got = [r["events"] for r in rec["rows"]]
    assert got[0] == len(cats), "row 0 must be every event read"
    if unblind:
        assert got == want
        assert rec["blinded"] is False
    else:
        assert got[:-1] == want[:-1]
        assert got[-1] is None and rec["rows"][-1]["blinded"] is True
        assert rec["blinded"] is True and "outside the blinded region" in rec["note"]


def test_regions_and_planes(unblinded_and_blinded):
    ns, out = unblinded_and_blinded
    regions = {ub: outputs.load_regions(out[ub]) for ub in out}
    cats = ns.cats["A"]

    def n(*names):
        return int(np.isin(cats, names).sum())

    want = {"signal_box": n("box"), "sideband_a": n("sideband_a", "validation"),
            "sideband_c": n("golden_c", "fail_hcal0"), "validation": n("validation")}
    assert regions[True]["A"] == want
    assert regions[False]["A"] == {**want, "signal_box": None}
    # run B has HCAL0: fail_hcal0 events leave side band C
    assert regions[True]["B"]["sideband_c"] == int((ns.cats["B"] == "golden_c").sum())

    for ub, d in out.items():
        rows = {r["cut"]: r["events"] for r in outputs.load_cutflow(d, "A")["rows"]}
        final = outputs.load_hist(d, "plane_final")[{"run": "A"}]
        # plane_final holds every event passing the cuts before hcal_zero (inf E_HCAL lands in overflow)
        assert final.sum(flow=True).value == rows["pileup"]
        loose = outputs.load_hist(d, "plane_loose")[{"run": "A"}]
        # data: the loose plane after the beam preselection (track, SRD), never "all outside the box"
        assert loose.sum(flow=True).value == rows["srd"]
        sbc = outputs.load_hist(d, "ecal_sideband_c")[{"run": "A"}]
        assert sbc.sum(flow=True).value == want["sideband_c"] + (want["signal_box"] if ub else 0)
        assert outputs.load_hist(d, "ecal_validation")[{"run": "A"}].sum().value == want["validation"]


def test_nminus1(unblinded_and_blinded):
    ns, out = unblinded_and_blinded
    cats = ns.cats["A"]
    for ub, d in out.items():
        h = outputs.load_hist(d, "nminus1_signal_box_ecal_e")[{"run": "A"}]
        # all cuts but the box: side-band-C-like events (65, 70 GeV) and the box events (30 GeV) if unblinded
        assert h[60j:80j:sum].value == np.isin(cats, ["golden_c", "fail_hcal0"]).sum()
        assert h[:50j:sum].value == (np.isin(cats, ["box"]).sum() if ub else 0)
        # the shower failures sit at 70 GeV (fail the box too): the shower N-1 holds only box events
        shower = outputs.load_hist(d, "nminus1_shower_ecal_chi2")[{"run": "A"}]
        assert shower.sum(flow=True).value == ((cats == "box").sum() if ub else 0)


def test_mc_weighted_and_never_blinded(unblinded_and_blinded):
    ns, out = unblinded_and_blinded
    w = ns.arrays["sig"]["weight"].astype(float)
    cats = ns.cats["B-signal"]
    for d in out.values():
        rec = outputs.load_cutflow(d, "B-signal")
        assert rec["kind"] == "mc" and rec["blinded"] is False
        assert rec["rows"][0]["weighted"] == pytest.approx(w.sum())
        assert rec["rows"][-1]["events"] == (cats == "box").sum()
        assert rec["rows"][-1]["weighted"] == pytest.approx(w[cats == "box"].sum())
        assert rec["rows"][-1]["eff_abs"] == pytest.approx(w[cats == "box"].sum() / w.sum())
        sig = outputs.load_hist(d, "signal_ecal")[{"run": "B-signal"}]
        assert sig.sum(flow=True).value == pytest.approx(w[cats != "fail_veto"].sum())
        assert outputs.load_regions(d)["B-signal"]["signal_box"] == (cats == "box").sum()


def test_markdown_and_metrics(unblinded_and_blinded):
    _, out = unblinded_and_blinded
    md = (out[False] / "cutflows" / "A.md").read_text()
    assert "| blinded |" in md and "outside the blinded region" in md
    import json

    m = json.loads((out[False] / "metrics.json").read_text())
    assert m["events"] == sum(m["events_per_key"].values())
    assert m["chunks"] >= 4 and m["executor"] == "iterative" and m["peak_rss_MB"] > 0
    prov = json.loads((out[False] / "provenance.json").read_text())["stages"]["run"]
    assert prov["blinding"] == "blinded" and prov["blinded_keys"] == ["A", "B"]
    assert prov["selection_hashes"]["A"] == outputs.load_cutflow(out[False], "A")["selection_hash"]


def test_dimuon_processor(tmp_path, synth):
    n_mu, n_other = 37, 50
    a = synth.golden(n_mu + n_other)
    a["ecal_e"][:n_mu] = 40.0
    for i in range(3):
        a[f"veto_e{i}"][:n_mu] = 25.0
    for i in range(4):
        a[f"hcal_e{i}"][:n_mu] = 2.5
    p = synth.write_tree(tmp_path / "mu.root", a)
    entry = synth.file_entry(p, len(a["ecal_e"]), eot=1e7)
    dsets = synth.write_datasets(tmp_path / "datasets.json", {"I": (False, [entry])})
    jobs = execute.plan(dsets, processor="dimuon")
    res = execute.run(jobs, "dimuon", chunksize=1000)
    outputs.write_run(tmp_path / "out", res, processor="dimuon", unblind=False, datasets_file=dsets)
    rec = outputs.load_cutflow(tmp_path / "out", "I")
    assert rec["selection"] == "dimuon"
    assert rec["rows"][0]["events"] == n_mu + n_other and rec["rows"][-1]["events"] == n_mu
    reg = outputs.load_regions(tmp_path / "out")["I"]
    assert reg["dimuon"] == n_mu and reg["rate_per_eot"]["dimuon"] == pytest.approx(n_mu / 1e7)
    mod = outputs.load_hist(tmp_path / "out", "dimuon_hcal_module")[{"run": "I"}]
    assert mod[{"module": "HCAL2"}].sum().value == n_mu
    assert outputs.load_hist(tmp_path / "out", "dimuon_hcal").sum().value == n_mu


def test_stacked_runs_equal_boost_histograms_own_merge():
    """Chunk outputs keep one histogram per run until postprocess stacks them: the stacked histogram equals
    boost-histogram's own merge of the run categories (values, variances, flow bins), whatever the order in
    which chunks of the runs arrive, and with the runs sorted."""
    rng = np.random.default_rng(5)
    keys = ["III", "I", "II", "I", "III", "II", "I"]  # chunks of three runs, interleaved
    chunks = []
    for key in keys:
        h = new_hist(key, hist.axis.Regular(10, 0.0, 1.0, name="x"), hist.axis.Regular(4, -1, 1, name="y"))
        n = 500
        h.fill(run=key, x=rng.uniform(-0.2, 1.2, n), y=rng.normal(0, 1, n), weight=rng.uniform(0.5, 2.0, n))
        chunks.append(h)
    reference = chunks[0].copy()  # boost-histogram's own merge of the differing categories
    for h in chunks[1:]:
        reference = reference + h
    for order in (list(range(len(keys))), list(reversed(range(len(keys)))), list(rng.permutation(len(keys)))):
        merged = accumulate([{"h": {keys[i]: chunks[i].copy()}} for i in order])["h"]
        stacked = stack_runs(merged)
        assert list(stacked.axes["run"]) == ["I", "II", "III"]
        for key in ("I", "II", "III"):
            np.testing.assert_allclose(stacked[{"run": key}].values(flow=True),
                                       reference[{"run": key}].values(flow=True), rtol=1e-12)
            np.testing.assert_allclose(stacked[{"run": key}].variances(flow=True),
                                       reference[{"run": key}].variances(flow=True), rtol=1e-12)
        assert stacked.sum(flow=True).value == pytest.approx(reference.sum(flow=True).value, rel=1e-12)
    wrong = new_hist("II", hist.axis.Regular(2, 0, 1, name="x"))
    with pytest.raises(ValueError, match="'I' has run categories \\['II'\\]"):
        stack_runs({"I": wrong})
