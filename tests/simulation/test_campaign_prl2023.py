"""Campaign prl2023 (2016-2022, 9.37e11 EOT): datasets.json values, per-run box edges through the selection,
the published-input summary, the search definition, and the skim written in parts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from na64ana import datasets as dsets
from na64ana import searches
from na64ana import selection as selmod
from na64ana.errors import InputError
from na64ana.simulation import campaign as simcamp
from na64ana.simulation import rates

REPO = Path(__file__).resolve().parents[2]
DS = dsets.load(REPO / "datasets.json")
CAMP = DS.campaign("prl2023")
SUMMARY = REPO / "examples" / "summaries" / "prl2023_published.json"


def test_runs_eot_and_sources():
    assert list(CAMP.runs) == ["2016", "2017", "2018", "2021", "2022"]
    assert math.isclose(CAMP.total_eot, 9.37e11, rel_tol=1e-12)  # S004 total kept exact
    prl2019 = DS.campaign("prl2019")
    for old, new in (("I", "2016"), ("II", "2017"), ("III", "2018")):
        assert CAMP.runs[new].eot == prl2019.runs[old].eot
    for year in ("2021", "2022"):  # unresolved split and unpublished efficiencies: APPROX, stated
        src = CAMP.runs[year].sources
        assert "APPROX" in src["eot"] and "APPROX" in src["efficiency"]
        assert "box_ecal_max_GeV" in src
    assert CAMP.beam == "e-" and DS.campaign("prl2019").beam == "e-"


def test_box_edges_per_run():
    edges = {r: CAMP.box_ecal_max(run) for r, run in CAMP.runs.items()}
    assert edges == {"2016": 50.0, "2017": 50.0, "2018": 50.0, "2021": 50.0, "2022": 47.0}
    assert CAMP.emiss_min(CAMP.runs["2022"]) == 53.0
    assert all(47.0 <= e <= 50.0 for e in edges.values())  # S004: 47-50 GeV
    # campaigns without per-run edges are unchanged
    p = DS.campaign("prl2019")
    assert all(p.emiss_min(r) == p.emiss_min_GeV for r in p.runs.values())


@pytest.mark.parametrize("cname", ["prl2019", "prd2018", "prl2023", "positron2022"])
def test_resolved_selection_box_is_the_datasets_box(cname):
    camp = DS.campaign(cname)
    for rname, run in camp.runs.items():
        res = selmod.resolve("invisible", campaign=cname, run=rname, hcal0=run.hcal0)
        assert res.box_ecal_max == camp.box_ecal_max(run), (cname, rname)
        box_cut = next(c for c in res.cuts if c.name == "signal_box")
        assert box_cut.requires[0].max == res.box_ecal_max
        regions = dict(res.regions)
        assert regions["sideband_c"][0].min == res.box_ecal_max  # side band C moves with the edge
        if camp.box_ecal_max(run) != 50.0:
            assert f"{camp.box_ecal_max(run):g} GeV" in box_cut.label


def test_box_override_changes_the_hash_only_where_it_applies():
    h = {r: selmod.resolve("invisible", campaign="prl2023", run=r, hcal0=True).hash for r in ("2018", "2022")}
    ref = selmod.resolve("invisible", campaign="prl2019", run="III", hcal0=True).as_dict()
    r2018 = selmod.resolve("invisible", campaign="prl2023", run="2018", hcal0=True).as_dict()
    assert {k: v for k, v in ref.items() if k not in ("campaign", "run")} == \
        {k: v for k, v in r2018.items() if k not in ("campaign", "run")}
    assert h["2018"] != h["2022"]


def test_background_components_sum_to_the_published_total():
    total = sum(run.background for run in CAMP.runs.values())
    assert total == pytest.approx(0.5, abs=1e-3)  # S004 ~0.5
    for run in CAMP.runs.values():
        comps = run.background_components
        assert comps is not None and max(comps, key=comps.__getitem__) == "upstream"
        assert rates.published_backgrounds("prl2023", run) == pytest.approx(
            {k: comps.get(k, 0.0) for k in comps})


def test_box_normalisation_follows_the_run_edge():
    run = CAMP.runs["2022"]
    at47 = {s.name: s.rate_per_eot for s in rates.skim_sources("prl2023", "2022", run, e_nominal=100.0,
                                                                box_ecal_max=47.0)}
    at50 = {s.name: s.rate_per_eot for s in rates.skim_sources("prl2023", "2022", run, e_nominal=100.0)}
    # the same published count below a lower edge needs more generated upstream events
    assert at47["upstream"] > at50["upstream"]
    assert at47["dimuon"] == at50["dimuon"]  # plane processes do not depend on the box


def test_datasets_validation_of_new_fields():
    raw = json.loads((REPO / "datasets.json").read_text())
    bad = json.loads(json.dumps(raw))
    bad["campaigns"]["prl2023"]["runs"]["2022"]["box_ecal_max_GeV"] = 120.0
    with pytest.raises(InputError, match="box_ecal_max_GeV") as exc:
        dsets.validate(bad)
    assert "\n" not in str(exc.value)
    bad = json.loads(json.dumps(raw))
    del bad["campaigns"]["prl2023"]["runs"]["2021"]["sources"]["box_ecal_max_GeV"]
    with pytest.raises(InputError, match="box_ecal_max_GeV"):
        dsets.validate(bad)
    bad = json.loads(json.dumps(raw))
    bad["campaigns"]["prl2023"]["runs"]["2021"]["background"] = 1.0
    with pytest.raises(InputError, match="sum of background_components"):
        dsets.validate(bad)
    bad = json.loads(json.dumps(raw))
    bad["campaigns"]["positron2022"]["beam_particle"] = "mu+"
    with pytest.raises(InputError, match="beam_particle"):
        dsets.validate(bad)


def test_published_summary_matches_the_campaign():
    s = json.loads(SUMMARY.read_text())
    assert s["beam_particle"] == "e-" and s["production"] == ["brem", "annihilation"]
    assert s["alpha_D"] > 0 and s["dm"] in ("fermion", "scalar") and s["mass_ratio"] > 2
    assert [r["name"] for r in s["runs"]] == list(CAMP.runs)
    for r in s["runs"]:
        run = CAMP.runs[r["name"]]
        assert r["eot"] == run.eot and r["observed"] == 0
        assert r["emiss_min_GeV"] == CAMP.emiss_min(run) < s["beam_energy_GeV"]
        assert 0 < r["background_unc"] < r["background"]
        assert r["efficiency"]["value"] == [run.efficiency, run.efficiency_heavy]
        assert set(r["notes"]) >= {"eot", "efficiency", "background", "emiss_min_GeV"}
    assert sum(r["background"] for r in s["runs"]) == pytest.approx(0.5, abs=1e-3)
    assert sum(r["eot"] for r in s["runs"]) == pytest.approx(9.37e11)
    m = s["masses_GeV"]
    assert m == sorted(m) and sum(0.226 <= x <= 0.32 for x in m) >= 8  # the annihilation window is scanned
    assert "2021" in s["notes"]["eot"] and "NOT PUBLISHED" in s["notes"]["efficiency"]


def test_search_definition():
    s = searches.load("prl2023")
    assert s.campaigns == ["prl2023"] and s.signal.production == ["brem", "annihilation"]
    assert s.signal.beam == "e-" and s.selection == "invisible"
    assert s.campaigns[0] in DS.campaigns


def test_large_runs_are_written_in_parts():
    assert simcamp.run_parts(CAMP.runs["2022"].eot) == 4
    assert simcamp.run_parts(DS.campaign("prl2019").runs["III"].eot) == 1  # 2016-2018 files unchanged
    assert simcamp.run_parts(2.0e11) == 1 and simcamp.run_parts(2.0001e11) == 2


def test_parts_cover_the_run(tmp_path, monkeypatch):
    raw = json.loads((REPO / "datasets.json").read_text())
    raw["campaigns"]["prl2023"]["runs"]["2022"]["eot"] = 3.0e8
    src = tmp_path / "datasets.json"
    src.write_text(json.dumps(raw))
    monkeypatch.setattr(simcamp, "MAX_EOT_PER_FILE", 1.0e8)
    report: list[dict] = []
    path = simcamp.simulate_campaign(src, out_dir=tmp_path / "sim", campaign="prl2023", runs=["2022"],
                                     seed=5, report=report)
    files = dsets.load(path).campaign("prl2023").runs["2022"].files
    assert [f.path for f in files] == [f"prl2023/run_2022_part{i}.root" for i in range(3)]
    assert sum(f.eot for f in files) == pytest.approx(3.0e8)
    assert len({f.seed for f in files}) == 3
    import uproot

    spills = [uproot.open(tmp_path / "sim" / f.path)["events"]["spill"].array(library="np") for f in files]
    assert all(s.size for s in spills)
    assert all(a.max() < b.min() for a, b in zip(spills, spills[1:], strict=False))  # no shared spill
    assert np.all(np.concatenate(spills) >= 1)
