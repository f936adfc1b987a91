"""The ALP selection and processor on synthetic events built to land in each region (selections/alp.toml,
processors/alp.py): cut flow, both signal regions blinded in data, control region, MC never blinded."""

from __future__ import annotations

import json
from pathlib import Path

import na64ana.processors  # noqa: F401  (registers hcal234_e)
import numpy as np
import pytest

from na64ana import blinding, contract, selection
from na64ana.processing import execute, outputs
from na64ana.simulation.writer import write_tree

# category -> (E_ECAL, E_HCAL1, E_HCAL2, E_HCAL3, E_HCAL4, VETO counter MeV)
CATEGORIES = {
    "hcal_decay": (40.0, 0.2, 12.0, 9.0, 0.3, 0.0),     # region 1: HCAL1 empty, HCAL2-4 = 21.3 GeV
    "hcal_decay_hi_ecal": (82.0, 0.0, 0.0, 0.0, 17.0, 0.0),  # region 1 up to E_ECAL < 85, decay in HCAL4
    "beyond": (30.0, 0.1, 0.1, 0.1, 0.1, 0.0),          # region 2: the A' box
    "hcal1_active": (60.0, 20.0, 5.0, 0.0, 0.0, 0.0),   # control: HCAL1 fired (decay too early)
    "between": (70.0, 0.0, 0.0, 0.0, 0.0, 0.0),         # passes every cut, in no region
    "ecal_high": (90.0, 0.0, 12.0, 9.0, 0.0, 0.0),      # fails E_ECAL < 85
    "veto_fired": (40.0, 0.2, 12.0, 9.0, 0.3, 50.0),    # region-1 energies but the VETO fired
    "hcal234_low": (40.0, 0.2, 8.0, 5.0, 0.0, 0.0),     # HCAL2-4 = 13 GeV < 15: no region
}
COUNTS = {"hcal_decay": 4, "hcal_decay_hi_ecal": 2, "beyond": 3, "hcal1_active": 5, "between": 6,
          "ecal_high": 7, "veto_fired": 2, "hcal234_low": 3}


def make_arrays(counts: dict[str, int] = COUNTS) -> tuple[dict[str, np.ndarray], list[str]]:
    n = sum(counts.values())
    a = {b.name: np.zeros(n, dtype=b.dtype) for b in contract.BRANCHES if not b.mc_only}
    a["run"][:] = 1
    a["spill"][:] = 1
    a["event"][:] = np.arange(1, n + 1)
    a["trigger"][:] = 1
    a["track_n"][:] = 1
    a["track_p"][:] = 100.0
    a["track_theta"][:] = 0.2
    a["straw_nhits"][:] = 4
    for i in range(3):
        a[f"srd_e{i}"][:] = 20.0
    a["ecal_chi2"][:] = 1.0
    a["ecal_ps_e"][:] = 2.0
    cats: list[str] = []
    i = 0
    for cat, k in counts.items():
        e, h1, h2, h3, h4, veto = CATEGORIES[cat]
        sl = slice(i, i + k)
        a["ecal_e"][sl] = e
        for j, h in enumerate((h1, h2, h3, h4)):
            a[f"hcal_e{j}"][sl] = h
        a["veto_e0"][sl] = veto
        cats += [cat] * k
        i += k
    return a, cats


def _campaign(tmp_path: Path, arrays: dict[str, np.ndarray], kind: str = "data") -> Path:
    write_tree(tmp_path / "alp.root", arrays)
    entry = {"path": "alp.root", "nevents": len(arrays["run"]), "eot": 1e9 if kind == "data" else 0.0,
             "kind": kind, **({"sample": "signal_alp"} if kind == "mc" else {})}
    run = {"year": 2018, "eot": 1e9, "intensity_e_per_spill": [1e6, 2e6], "hcal0": False, "efficiency": 0.5,
           "efficiency_unc": 0.1, "files": [entry],
           "sources": {"eot": "test", "intensity_e_per_spill": "test", "efficiency": "test"}}
    raw = {"schema_version": 1, "default_campaign": "alp", "sources": {"T": "synthetic"},
           "campaigns": {"alp": {"description": "synthetic", "source": "T", "selection": "alp",
                                 "runs": {"A": run}}}}
    p = tmp_path / "datasets.json"
    p.write_text(json.dumps(raw))
    return p


def test_selection_resolves_with_two_signal_regions():
    sel = selection.resolve("alp", campaign="prl2019", run="III", hcal0=True)
    assert [c.name for c in sel.cuts][-1] == "ecal_max"
    assert {n for n, _ in sel.regions} == {"hcal_decay", "beyond", "hcal1_active"}
    a, cats = make_arrays()
    vals = selection.compute(a, {*sel.variables, "hcal234_e"})
    regions = selection.region_masks(sel, vals)
    cats_a = np.array(cats)
    assert set(cats_a[regions["hcal_decay"]]) == {"hcal_decay", "hcal_decay_hi_ecal", "veto_fired"}
    assert set(cats_a[regions["beyond"]]) == {"beyond"}
    assert set(cats_a[regions["hcal1_active"]]) == {"hcal1_active"}


def test_processor_regions_and_blinding(tmp_path):
    a, _ = make_arrays()
    jobs = execute.plan(_campaign(tmp_path, a), processor="alp")
    key = jobs[0].key
    opened = execute.run(jobs, "alp", unblind=True).output
    blind = execute.run(jobs, "alp", unblind=False).output
    n = sum(COUNTS.values())
    # opened: every cut but ecal_max and veto keeps all; the regions count after the cuts before ecal_max
    rows = opened["cutflow"][key]["events"].tolist()
    assert rows[0] == n and rows[-1] == n - COUNTS["ecal_high"] - COUNTS["veto_fired"]
    reg = opened["regions"][key]
    assert reg["hcal_decay"][0] == COUNTS["hcal_decay"] + COUNTS["hcal_decay_hi_ecal"]
    assert reg["beyond"][0] == COUNTS["beyond"]
    assert reg["hcal1_active"][0] == COUNTS["hcal1_active"]
    # blinded: both signal regions (before any cut) are gone from every row, hist and count
    in_regions = COUNTS["hcal_decay"] + COUNTS["hcal_decay_hi_ecal"] + COUNTS["veto_fired"] + COUNTS["beyond"]
    brows = blind["cutflow"][key]["events"].tolist()
    assert brows[0] == n and brows[1] == n - in_regions
    assert brows[-1] == n - in_regions - COUNTS["ecal_high"]
    # the signal-region events are removed before counting (0 here), and the written record hides them
    assert blind["regions"][key]["hcal_decay"].tolist() == [0.0, 0.0]
    assert blind["regions"][key]["beyond"].tolist() == [0.0, 0.0]
    assert blinding.hidden_regions(jobs[0].selection, "alp") == {"hcal_decay", "beyond"}
    rec = outputs.regions_record(jobs[0], blind, blinded=True, rule="alp")
    assert rec["hcal_decay"] is None and rec["beyond"] is None
    assert blind["regions"][key]["hcal1_active"][0] == COUNTS["hcal1_active"]
    # the loose plane of data is the beam after the preselection (track, srd), never "all outside the box"
    assert blind["hists"]["plane_loose"].values(flow=True).sum() == brows[2] == n - in_regions
    assert opened["hists"]["plane_loose"].values().sum() == n
    assert blind["blinded"] == {key} and not opened["blinded"]


def test_mc_is_never_blinded_and_fills_the_efficiency_inputs(tmp_path):
    a, _ = make_arrays({"hcal_decay": 5, "beyond": 2, "between": 1})
    a["weight"] = np.full(8, 0.5, dtype=np.float32)
    for k in ("truth_process", "truth_pdg", "truth_e0", "truth_eaprime"):
        a[k] = np.zeros(8, dtype=next(b.dtype for b in contract.BRANCHES if b.name == k))
    jobs = execute.plan(_campaign(tmp_path, a, kind="mc"), processor="alp", samples=("signal_alp",))
    out = execute.run(jobs, "alp", unblind=False).output
    key = jobs[0].key
    assert not out["blinded"]
    assert out["regions"][key]["hcal_decay"].tolist() == [5.0, 2.5]
    assert out["hists"]["signal_ecal_hcal_decay"][{"run": key}].values().sum() == pytest.approx(2.5)
    assert out["hists"]["signal_ecal_beyond"][{"run": key}].values().sum() == pytest.approx(1.0)
