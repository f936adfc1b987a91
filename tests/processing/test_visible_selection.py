"""The visible-mode selection (selections/visible.toml) and processor (processors/visible.py).

Synthetic events, one category per cut built to fail exactly that cut (the conftest pattern): the
expected cut flow follows from the category sizes alone. The processor runs through the package's
planner and executor on a synthetic campaign; blinded data must carry nothing from the box
E_WCAL + E_ECAL in [0.9, 1.1] E0.
"""

from __future__ import annotations

import json
from pathlib import Path

import na64ana.processors  # noqa: F401  (registers the visible-mode variables)
import numpy as np
import pytest

from na64ana import contract, selection
from na64ana.processing import execute, outputs
from na64ana.simulation.visible import write_visible_tree

E0 = 100.0
# category -> number of events; "golden" passes everything inside the box (E_WCAL + E_ECAL = 100 GeV)
CATEGORIES: dict[str, int] = {
    "golden": 11, "fail_track": 13, "fail_srd": 7, "fail_early_shower": 5, "fail_no_v2": 9,
    "fail_s4_two_mip": 6, "fail_timing": 4, "fail_ecal_min": 8, "fail_ecal_single": 3, "fail_no_v3": 2,
    "fail_hcal_zero": 10, "low_side": 12, "high_side": 14, "nan_s4": 2,
}
CUTS = ["track", "srd", "early_shower", "no_v2", "s4_two_mip", "timing", "ecal_min", "ecal_single", "no_v3",
        "hcal_zero", "energy_sum"]


def golden(n: int) -> dict[str, np.ndarray]:
    """``n`` signal-like events passing every visible-mode cut: E_WCAL = 40, E_ECAL = 60 GeV."""
    a = {name: np.zeros(n, dtype=dt) for name, dt in contract.visible_branch_types(mc=True).items()}
    a["run"][:] = 2017
    a["event"][:] = np.arange(n)
    a["trigger"][:] = 1
    a["track_n"][:] = 1
    a["track_p"][:] = E0
    for i in range(3):
        a[f"srd_e{i}"][:] = 10.0
        a[f"srd_t{i}"][:] = 0.1
    a["wcal_e"][:] = 40.0
    a["wcal_ps_e"][:] = 2.0
    a["s1_e"][:] = a["s2_e"][:] = a["s3_e"][:] = 1.0
    a["s4_e"][:] = 2.0
    a["ecal_e"][:] = 60.0
    a["ecal_chi2"][:] = 1.0
    a["ecal_ncl"][:] = 1
    for i in range(4):
        a[f"hcal_e{i}"][:] = 0.05
    a["weight"][:] = 1.0
    return a


def _apply(a: dict[str, np.ndarray], sl: slice, cat: str) -> None:
    match cat:
        case "fail_track":
            a["track_p"][sl] = 90.0
        case "fail_srd":
            a["srd_e2"][sl] = 0.3
        case "fail_early_shower":
            a["wcal_ps_e"][sl] = 0.02
        case "fail_no_v2":
            a["v2_e"][sl] = 1.0
        case "fail_s4_two_mip":
            a["s4_e"][sl] = 1.0
        case "fail_timing":
            a["ecal_t"][sl] = 5.0
        case "fail_ecal_min":  # E_WCAL + E_ECAL = 100 GeV, E_ECAL below the box edge: no candidate
            a["wcal_e"][sl] = 80.0
            a["ecal_e"][sl] = 20.0
        case "fail_ecal_single":
            a["ecal_ncl"][sl] = 2
        case "fail_no_v3":
            a["v3_e"][sl] = 1.0
        case "fail_hcal_zero":
            a["hcal_e1"][sl] = 3.0
        case "low_side":  # passes everything before the box, E_WCAL + E_ECAL = 80 GeV
            a["wcal_e"][sl] = 20.0
        case "high_side":  # 130 GeV (pile-up like)
            a["wcal_e"][sl] = 70.0
        case "nan_s4":
            a["s4_e"][sl] = np.nan


def make_arrays(counts: dict[str, int] = CATEGORIES, seed: int = 1
                ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    n = sum(counts.values())
    a = golden(n)
    cats = np.empty(n, dtype=object)
    start = 0
    for cat, k in counts.items():
        _apply(a, slice(start, start + k), cat)
        cats[start:start + k] = cat
        start += k
    perm = np.random.default_rng(seed).permutation(n)
    a = {k: v[perm] for k, v in a.items()}
    a["event"][:] = np.arange(n)
    return a, cats[perm]


def expected_cutflow(counts: dict[str, int]) -> list[int]:
    """Row k: the events failing none of the first k cuts, from the category definitions alone."""
    fails = {c: f"fail_{c}" for c in CUTS[:-1]}
    fails["s4_two_mip"] = ("fail_s4_two_mip", "nan_s4")  # NaN fails
    out = [sum(counts.values())]
    alive = dict(counts)
    for cut in CUTS:
        if cut == "energy_sum":
            drop = ("low_side", "high_side")
        else:
            drop = fails[cut] if isinstance(fails[cut], tuple) else (fails[cut],)
        for d in drop:
            alive.pop(d, None)
        out.append(sum(alive.values()))
    return out


def test_selection_loads_and_resolves_per_campaign():
    sel = selection.resolve("visible", campaign="visible2017", run="2017a", hcal0=False)
    assert [c.name for c in sel.cuts] == CUTS
    sel18 = selection.resolve("visible", campaign="visible2018", run="2018", hcal0=False)
    window = {c.name: c.requires for c in sel18.cuts}
    assert (window["energy_sum"][0].min, window["energy_sum"][0].max) == (135.0, 165.0)
    assert window["ecal_min"][0].min == 45.0 and window["track"][1].min == 145.5
    assert sel.hash != sel18.hash


def test_each_cut_removes_exactly_its_category():
    a, cats = make_arrays()
    sel = selection.resolve("visible", campaign="visible2017", run="2017a", hcal0=False)
    masks = selection.cut_masks(sel, selection.compute(a, sel.variables))
    rows, m = [len(cats)], np.ones(len(cats), bool)
    for name in CUTS:
        m &= masks[name]
        rows.append(int(m.sum()))
    assert rows == expected_cutflow(CATEGORIES)
    for cut in CUTS[:-1]:  # N-1: failing only this cut means passing all the others
        others = np.all([masks[c] for c in CUTS[:-1] if c != cut], axis=0)
        assert set(cats[others & ~masks[cut]]) <= {f"fail_{cut}", "nan_s4"}
    assert set(cats[m]) == {"golden"}


def test_2018_windows_scale_with_the_beam_energy():
    a = golden(3)
    a["track_p"][:] = 150.0
    a["wcal_e"][:] = 60.0
    a["ecal_e"][:] = 90.0
    sel = selection.resolve("visible", campaign="visible2018", run="2018", hcal0=False)
    masks = selection.cut_masks(sel, selection.compute(a, sel.variables))
    assert all(m.all() for m in masks.values())
    sel17 = selection.resolve("visible", campaign="visible2017", run="2017a", hcal0=False)
    masks17 = selection.cut_masks(sel17, selection.compute(a, sel17.variables))
    assert not masks17["track"].any() and not masks17["energy_sum"].any()


def _campaign(tmp_path: Path, arrays: dict[str, np.ndarray]) -> Path:
    write_visible_tree(tmp_path / "v.root", arrays)
    run = {"year": 2017, "setup": "2017_40X0", "eot": 1e9, "intensity_e_per_spill": [1e6, 2e6],
           "hcal0": False, "efficiency": 0.8, "efficiency_unc": 0.03,
           "files": [{"path": "v.root", "nevents": len(arrays["run"]), "eot": 1e9, "kind": "data"}],
           "sources": {"eot": "test", "intensity_e_per_spill": "test", "efficiency": "test"}}
    raw = {"schema_version": 1, "default_campaign": "visible2017", "sources": {"T": "synthetic"},
           "campaigns": {"visible2017": {"description": "synthetic", "source": "T", "selection": "visible",
                                         "runs": {"2017a": run}}}}
    p = tmp_path / "datasets.json"
    p.write_text(json.dumps(raw))
    return p


def _hist_total(hists: dict) -> float:
    return float(sum(h.values(flow=True).sum() for h in hists.values()))


def test_processor_cutflow_and_blinding(tmp_path):
    a, cats = make_arrays()
    jobs = execute.plan(_campaign(tmp_path, a), processor="visible")
    opened = execute.run(jobs, "visible", unblind=True).output
    blind = execute.run(jobs, "visible", unblind=False).output
    key = jobs[0].key
    assert opened["cutflow"][key]["events"].tolist() == expected_cutflow(CATEGORIES)
    assert opened["regions"][key]["signal_box"][0] == CATEGORIES["golden"]
    assert opened["regions"][key]["sideband_low"][0] == CATEGORIES["low_side"]
    assert opened["regions"][key]["sideband_high"][0] == CATEGORIES["high_side"]
    assert not opened["blinded"] and blind["blinded"] == {key}

    # blinded: every event with E_WCAL + E_ECAL in [90, 110) GeV and E_ECAL >= 30 GeV (the ecal_min edge) is
    # gone from every row, hist and region; the same sum with E_ECAL < 30 GeV (fail_ecal_min) stays
    in_box = {c for c in CATEGORIES if c not in ("low_side", "high_side", "fail_ecal_min")}
    outside = {c: k for c, k in CATEGORIES.items() if c not in in_box}
    rows = blind["cutflow"][key]["events"].tolist()
    assert rows[0] == sum(CATEGORIES.values())  # events read
    assert rows[1:] == expected_cutflow(outside)[1:]
    assert rows[-1] == 0
    # the box events are removed before counting (0 here), and the written record hides the box count
    assert blind["regions"][key]["signal_box"].tolist() == [0.0, 0.0]
    assert outputs.regions_record(jobs[0], blind, blinded=True, rule="visible")["signal_box"] is None
    assert blind["regions"][key]["sideband_low"][0] == CATEGORIES["low_side"]
    # the loose plane of data is the beam after the preselection (track, srd), never "all outside the box"
    assert blind["hists"]["plane_loose"].values(flow=True).sum() == rows[2]
    box_bins = blind["hists"]["esum_final"][{"run": key}].values()[90:110]
    assert box_bins.sum() == 0
    # and the opened run sees the box
    assert opened["hists"]["esum_final"][{"run": key}].values()[90:110].sum() == CATEGORIES["golden"]
    assert _hist_total(blind["hists"]) < _hist_total(opened["hists"])


def test_mc_is_never_blinded(tmp_path):
    a, _ = make_arrays({"golden": 5, "fail_no_v2": 2})
    p = _campaign(tmp_path, a)
    raw = json.loads(p.read_text())
    raw["campaigns"]["visible2017"]["runs"]["2017a"]["files"][0].update(kind="mc", sample="signal", eot=0.0)
    p.write_text(json.dumps(raw))
    jobs = execute.plan(p, processor="visible", samples=("signal",))
    out = execute.run(jobs, "visible", unblind=False).output
    key = jobs[0].key
    assert out["cutflow"][key]["events"][-1] == 5 and not out["blinded"]
    assert out["hists"]["signal_esum"][{"run": key}].values().sum() == 5


def test_no_box_cut_is_an_error():
    from na64ana.processors.visible import box_window

    sel = selection.resolve("invisible", campaign="prl2019", run="I", hcal0=False)
    with pytest.raises(ValueError, match="no visible box"):
        box_window(sel)


def test_simulated_run_end_to_end(tmp_path):
    """simulation -> ROOT file -> planner -> VisibleProcessor: the processor's final row equals the
    selection applied directly to the simulated arrays; blinded, the injected signal is invisible."""
    from na64ana.physics import visible as vis
    from na64ana.simulation.visible import generate_visible_events

    setups = vis.load_setups()
    a = generate_visible_events(setups.setups["2017_40X0"], 5000, np.random.default_rng(21), n_signal=40,
                                signal=(0.0167, 3e-4), n_k0=20)
    sel = selection.resolve("visible", campaign="visible2017", run="2017a", hcal0=False)
    passed = np.all(list(selection.cut_masks(sel, selection.compute(a, sel.variables)).values()), axis=0)
    assert 0 < passed.sum() <= 40
    data = {k: v for k, v in a.items() if not contract.VISIBLE_BY_NAME[k].mc_only}
    jobs = execute.plan(_campaign(tmp_path, data), processor="visible")
    key = jobs[0].key
    opened = execute.run(jobs, "visible", unblind=True).output
    assert opened["cutflow"][key]["events"][-1] == passed.sum()
    assert opened["regions"][key]["signal_box"][0] == passed.sum()
    blind = execute.run(jobs, "visible").output
    assert blind["cutflow"][key]["events"][-1] == 0
    assert blind["regions"][key]["signal_box"][0] == 0  # removed before counting; null when written
