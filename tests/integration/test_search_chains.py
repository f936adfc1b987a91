"""Every search runs end to end on its simulated campaign through the same chain (issues #15, #16, #17).

``pipeline.demo(search=NAME)`` dispatches the one chain on the search definition (campaigns, selection and
processor, signal MC, summary kind). The chain tests run on a copy of datasets.json with every EOT scaled
down by 1e3 (seconds of simulation per campaign) and tiny signal samples; they check what each search
must produce: blinded outputs, the search's own cut flow, its signal MC, its summary and its limit record
and figure. The fast tests check the dispatch itself.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from na64ana import pipeline, searches, summary
from na64ana.physics.models.alp import AlpPhoton
from na64ana.physics.yields import signal_yield
from na64ana.records import EfficiencyRun, EfficiencyTable

REPO = Path(__file__).resolve().parents[2]
EOT_SCALE = 1e-3


@pytest.fixture(scope="module")
def tiny_datasets(tmp_path_factory) -> Path:
    """datasets.json with every run's EOT x 1e-3 (per-run box edges, setups and sources unchanged)."""
    data = json.loads((REPO / "datasets.json").read_text())
    for camp in data["campaigns"].values():
        for run in camp["runs"].values():
            run["eot"] *= EOT_SCALE
    path = tmp_path_factory.mktemp("tiny") / "datasets.json"
    path.write_text(json.dumps(data, indent=1))
    return path


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def _demo_stage(out: Path) -> dict:
    return _json(out / "provenance.json")["stages"]["demo"]


# ------------------------------------------------------------------------------------------------------
# Dispatch (fast)


def test_each_search_definition_picks_its_chain():
    prl = pipeline.chain_for(searches.load("prl2023"), "prl2019")
    assert (prl.kind, prl.campaigns, prl.processor, prl.productions) == \
        ("dark_photon", ("prl2023",), "invisible", ("brem", "annihilation"))
    alp = pipeline.chain_for(searches.load("alp_2016_2018"), "prl2019")
    assert (alp.kind, alp.campaigns, alp.processor, alp.productions) == \
        ("alp", ("prl2019",), "alp", ("primakoff",))
    vis = pipeline.chain_for(searches.load(pipeline.SEARCH_ALIASES["visible"]), "prl2019")
    assert (vis.kind, vis.campaigns, vis.processor, vis.productions) == \
        ("visible", ("visible2017", "visible2018"), "visible", ("visible",))
    assert vis.folder("run", "visible2018") == "run_visible2018" and prl.folder("run", "prl2023") == "run"
    default = pipeline.chain_for(None, "prd2018")
    assert (default.kind, default.campaigns, default.productions) == ("dark_photon", ("prd2018",), ("brem",))


def test_annihilation_searches_scan_the_dip_and_the_quoted_masses():
    chain = pipeline.chain_for(searches.load("prl2023"), "prl2023")
    grid = pipeline._limit_masses(chain, None)
    assert grid == sorted(grid)
    for m in (0.01, 0.1, 0.237, 0.3):
        assert any(math.isclose(m, g, rel_tol=1e-6) for g in grid)
    assert sum(0.226 <= g <= 0.32 for g in grid) >= 8  # the window, densely
    brem_only = pipeline.chain_for(searches.load("invisible_2016_2018"), "prl2019")
    assert pipeline._limit_masses(brem_only, None) == pytest.approx(list(pipeline.LIMIT_MASSES_GEV))


def test_alp_signal_mc_coupling_puts_the_decays_in_the_hcal():
    for m in pipeline.ALP_EFFICIENCY_MASSES_GEV:
        g = pipeline.alp_mc_coupling(m)
        length_m = float(AlpPhoton(g_agg=g).decay_length_cm(50.0, m)) / 100.0
        assert length_m == pytest.approx(3.0, rel=1e-3)


def _table(mass: list[float], eff: list[float]) -> EfficiencyTable:
    run = EfficiencyRun.model_construct(mass_GeV=mass, efficiency=eff)
    return EfficiencyTable.model_construct(campaign="c", runs={"r": run})


def test_combined_efficiency_weights_each_mechanism_by_its_yield():
    tabs = {"brem": _table([0.01, 0.3], [0.6, 0.4]), "annihilation": _table([0.21, 0.31], [0.9, 0.9])}
    masses = [0.01, 0.237]
    got = summary.combined_efficiency(masses, tabs, "r", beam="e-", e0=100.0, emiss_min=53.0)
    y = signal_yield(masses, 1.0, mechanisms=["brem", "annihilation"], emiss_min=53.0)
    assert y["annihilation"][0] == 0 and y["annihilation"][1] > 10 * y["brem"][1]
    brem_at = np.interp(np.log10(masses), np.log10([0.01, 0.3]), [0.6, 0.4])
    want = (brem_at * y["brem"] + 0.9 * y["annihilation"]) / (y["brem"] + y["annihilation"])
    assert got.mass_GeV == masses
    assert got.value == pytest.approx(list(want), rel=1e-12)
    assert got.value[0] == pytest.approx(0.6)  # no annihilation below the window: the brem efficiency


# ------------------------------------------------------------------------------------------------------
# The chains (tiny simulated campaigns)


@pytest.mark.slow
def test_alp_search_runs_end_to_end_blinded_with_its_own_cut_flow(tiny_datasets, tmp_path):
    out = tmp_path / "alp"
    t = pipeline.demo(out, datasets_file=tiny_datasets, search="alp_2016_2018", n_signal=1500,
                      efficiency_masses=[0.005, 0.02], limit_masses=[0.003, 0.005], crosscheck_toys=0)
    assert {"simulate", "run", "signal_mc", "efficiency", "summary", "limits", "report"} <= set(t)
    assert "background" not in t and "dimuon" not in t  # invisible-mode stages are not the ALP's
    cut_flow = _json(out / "run" / "cutflows" / "III.json")
    assert cut_flow["rows"][-1]["cut"] == "ecal_max" and cut_flow["blinded"]
    eff = _json(out / "efficiency" / "efficiency.json")
    assert eff["production"] == "primakoff" and {"III hcal", "III beyond"} <= set(eff["runs"])
    assert all(0 < v <= 1.2 for r in eff["runs"].values() for v in r["efficiency"])
    summ = _json(out / "summary.json")
    assert summ["model"] == {"name": "alp_photon"}
    assert sorted(r["region"] for r in summ["runs"]) == ["beyond", "hcal"]
    assert all(r["observed"] is None for r in summ["runs"])  # blinded: the regions stay closed
    lim = _json(out / "limits" / "limits.json")
    assert lim["coupling"] == "g_agg" and lim["blinded"] is True
    closed = [p for p in lim["points"] if p.get("coupling_exp") and p.get("coupling_exp_upper")]
    assert closed and all(p["coupling_exp"] < p["coupling_exp_upper"] for p in closed)
    assert all(p.get("coupling_obs") is None for p in lim["points"])
    stage = _demo_stage(out)
    assert stage["search"] == "alp_2016_2018" and stage["mode"] == "simulated-chain"
    assert stage["blinding"] == "blinded"
    assert (out / "plots" / "search_alp_region.png").exists()


@pytest.mark.slow
def test_visible_search_runs_both_campaigns_end_to_end_blinded(tmp_path):
    """The visible-mode data are n_events beam particles per run whatever the EOT (the EOT enters only the
    summary), so the repository's datasets file is used: at 16.7 MeV its EOT exclude a band."""
    out = tmp_path / "vis"
    t = pipeline.demo(out, datasets_file=REPO / "datasets.json", search=pipeline.SEARCH_ALIASES["visible"],
                      n_signal=800, n_events=4000, efficiency_masses=[0.0167], limit_masses=[0.0167, 0.02],
                      crosscheck_toys=0)
    assert {"run visible2017", "run visible2018", "efficiency visible2018", "summary", "limits"} <= set(t)
    for camp, run in (("visible2017", "2017a"), ("visible2018", "2018")):
        cf = _json(out / f"run_{camp}" / "cutflows" / f"{run}.json")
        assert cf["rows"][-1]["cut"] == "energy_sum" and cf["blinded"]
        assert cf["rows"][-1]["events"] is None  # the box row is hidden
    summ = _json(out / "summary.json")
    assert summ["signature"] == "visible"
    assert [r["name"] for r in summ["runs"]] == ["2017a", "2017b", "2018"]
    assert all(r["observed"] is None and 0 < r["efficiency"] <= 1 for r in summ["runs"])
    lim = _json(out / "limits" / "limits.json")
    x17 = lim["points"][0]
    assert lim["blinded"] is True and x17["mass_GeV"] == pytest.approx(0.0167)
    assert 0 < x17["eps_exp"] < x17["eps_exp_upper"] and x17.get("eps_obs") is None  # a band, expected only
    assert _demo_stage(out)["blinding"] == "blinded"
    assert (out / "plots" / "search_visible_band.png").exists()


@pytest.mark.slow
def test_prl2023_runs_blinded_with_per_run_windows_and_annihilation(tiny_datasets, tmp_path):
    out = tmp_path / "prl2023"
    t = pipeline.demo(out, datasets_file=tiny_datasets, search="prl2023", n_signal=600,
                      efficiency_masses=[0.01, 0.237], limit_masses=[0.237], crosscheck_toys=0)
    assert {"background", "efficiency", "efficiency_annihilation", "summary", "limits"} <= set(t)
    eff = _json(out / "efficiency_annihilation" / "efficiency.json")
    assert eff["production"] == "annihilation" and eff["emiss_min_by_run_GeV"]["2022"] == 53.0
    assert eff["signal_ea_min_fraction"] == pytest.approx(0.8)
    summ = _json(out / "summary.json")
    assert summ["production"] == ["brem", "annihilation"]
    assert {r["name"]: r["emiss_min_GeV"] for r in summ["runs"]} == \
        {"2016": 50.0, "2017": 50.0, "2018": 50.0, "2021": 50.0, "2022": 53.0}
    assert all(r["observed"] is None for r in summ["runs"])
    (point,) = _json(out / "limits" / "limits.json")["points"]
    assert point["blinded"] is True and point["eps_obs"] is None and point["eps_exp"] > 0
    per_mech = point["signal_per_mechanism_at_eps_ref"]
    assert per_mech["annihilation"] > 5 * per_mech["brem"]  # the resonance dominates at 237 MeV
    assert _demo_stage(out)["blinding"] == "blinded"
