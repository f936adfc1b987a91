"""Two-sided eps limits (stats/band.py) and the visible yields summary.

Independent expectations: s_up = -ln(0.1) = 2.303 for zero observed, zero background and no systematics
(CLs = e^-s); the band edges satisfy N(eps) = s_up recomputed here from physics.visible; in the
long-lifetime regime N is proportional to eps^4, so scaling every EOT by 16 halves the lower edge.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest

from na64ana.errors import InputError
from na64ana.physics import visible as vis
from na64ana.stats import band

SUMMARY = Path(__file__).parents[2] / "examples" / "summaries" / "visible_2017_2018_published.json"


@pytest.fixture(scope="module")
def raw() -> dict:
    return json.loads(SUMMARY.read_text())


@pytest.fixture(scope="module")
def summary() -> band.VisibleSummary:
    return band.load_summary(SUMMARY)


def _summary(raw: dict, **changes) -> band.VisibleSummary:
    d = copy.deepcopy(raw)
    d.update(changes)
    return band.validate_summary(d)


def test_published_summary(summary):
    assert summary.signature == "visible" and not summary.blinded
    assert [r.setup for r in summary.runs] == ["2017_40X0", "2017_30X0", "2018"]
    assert sum(r.eot for r in summary.runs) == pytest.approx(8.4e10)
    assert sum(r.background for r in summary.runs) == pytest.approx(0.076, abs=1e-4)
    assert len(summary.masses_GeV) >= 60 and 0.0167 in summary.masses_GeV


def test_summary_without_setup_names_the_field(raw):
    d = copy.deepcopy(raw)
    del d["runs"][1]["setup"]
    with pytest.raises(InputError) as e:
        band.validate_summary(d, file="s.json")
    assert e.value.field == "runs.1.setup" and str(e.value).startswith("s.json:runs.1.setup")


def test_summary_unknown_setup_and_signature(raw):
    d = copy.deepcopy(raw)
    d["runs"][0]["setup"] = "2016"
    with pytest.raises(InputError) as e:
        band.validate_summary(d)
    assert e.value.field == "runs.0.setup" and "unknown setup" in str(e.value)
    with pytest.raises(InputError) as e:
        _summary(raw, signature="invisible")
    assert e.value.field == "signature"
    d = copy.deepcopy(raw)
    d["runs"][0]["observed"] = None
    with pytest.raises(InputError, match="every run is blinded"):
        band.validate_summary(d)
    d = copy.deepcopy(raw)
    d["runs"][2]["background_unc"] = 10 * max(d["runs"][2]["background"], 1e-3)  # issue 14: any width
    if d["runs"][2]["background"] > 0:
        assert band.validate_summary(d).runs[2].background_unc == d["runs"][2]["background_unc"]


def test_load_summary_errors(tmp_path):
    p = tmp_path / "v.json"
    p.write_text("{")
    with pytest.raises(InputError, match="not valid JSON"):
        band.load_summary(p)
    with pytest.raises(InputError, match="cannot read"):
        band.load_summary(tmp_path / "missing.json")


def test_s_up_is_the_classical_limit_without_background(raw):
    d = copy.deepcopy(raw)
    d["correlated"] = {}
    for r in d["runs"]:
        r.update(background=0.0, background_unc=0.0, efficiency_unc=0.0, eot_unc=0.0)
    res = band.s_up(band.validate_summary(d), [0.3, 0.3, 0.4])
    assert res.mu_obs == pytest.approx(-math.log(0.1), rel=2e-3)


def test_band_at_x17(summary):
    setups = vis.load_setups()
    p = band.band_point(summary, 0.0167, setups=setups)
    lo, hi = p["eps_obs"], p["eps_obs_upper"]
    assert 1e-5 < lo < hi < 1e-2
    # 0 observed and tiny backgrounds: observed = expected median (and +-1 sigma)
    assert p["eps_exp"] == lo and p["eps_exp_upper"] == hi
    assert p["eps_exp_m1"] == p["eps_exp_p1"] == lo
    # +2 sigma (one background event) is a weaker s_up: a narrower band inside the median one
    assert lo < p["eps_exp_p2"] < p["eps_exp_p2_upper"] < hi
    # N(edge) = s_up, recomputed from physics.visible here
    for eps, s in ((lo, p["s_up"]["eps_obs"][0]), (hi, p["s_up"]["eps_obs"][1])):
        n = sum(r.eot * r.efficiency * float(vis.yield_per_eot(0.0167, eps, setups.setups[r.setup]))
                for r in summary.runs)
        assert n == pytest.approx(s, rel=1e-6)
        assert 2.30 < s < 2.40
    # inside the band more signal than s_up, outside less
    solver = band.EdgeSolver(0.0167, summary, setups)
    mid = math.sqrt(lo * hi)
    assert solver.total(mid)[0] > p["s_up"]["eps_obs"][0]
    assert solver.total(0.9 * lo)[0] < p["s_up"]["eps_obs"][0]
    assert solver.total(1.1 * hi)[0] < p["s_up"]["eps_obs"][1]
    # the coupling_* aliases
    assert p["coupling"] == "eps" and p["coupling_obs"] == lo
    assert p["coupling_exp_p2_upper"] == p["eps_exp_p2_upper"]


def test_lower_edge_scales_as_eot_to_the_minus_quarter(raw):
    """At 2 MeV the decay length at the lower edge is >> the decay volume: N ~ eps^4 EOT."""
    base = band.band_point(_summary(raw), 0.002)
    d = copy.deepcopy(raw)
    for r in d["runs"]:
        r["eot"] *= 16
    scaled = band.band_point(band.validate_summary(d), 0.002)
    assert scaled["eps_exp"] / base["eps_exp"] == pytest.approx(0.5, rel=0.01)
    assert scaled["eps_exp_upper"] > base["eps_exp_upper"]  # and more EOT always widens the band


def test_no_exclusion_gives_none_edges(summary, raw):
    p = band.band_point(summary, 0.001)  # below 2 m_e: the A' never decays to e+e-
    assert p["eps_obs"] is None and p["eps_obs_upper"] is None and p["eps_exp"] is None
    assert "no exclusion" in p["note"]
    d = copy.deepcopy(raw)
    for r in d["runs"]:
        r["eot"] = 1e6  # far too few electrons
    p = band.band_point(band.validate_summary(d), 0.0167)
    assert p["eps_exp"] is None and p["eps_exp_upper"] is None


def test_blinded_summary_has_no_observed_band(raw):
    d = copy.deepcopy(raw)
    for r in d["runs"]:
        r["observed"] = None
    s = band.validate_summary(d)
    rec = band.band_limits(s, [0.0167])
    p = rec["points"][0]
    assert rec["blinded"] and p["blinded"] and p["eps_obs"] is None and p["eps_obs_upper"] is None
    assert p["eps_exp"] is not None and p["coupling_obs"] is None


def test_band_limits_record_and_plot(summary, tmp_path):
    masses = np.geomspace(0.0011, 0.025, 3)
    rec = band.band_limits(summary, masses)
    assert rec["signature"] == "visible" and rec["n_failed"] == 0 and len(rec["points"]) == 3
    keys = {"mass_GeV", "coupling", "eps_obs", "eps_obs_upper", "eps_exp", "eps_exp_upper"}
    keys |= {f"eps_exp_{q}{u}" for q in ("m1", "p1", "m2", "p2") for u in ("", "_upper")}
    keys |= {k.replace("eps", "coupling", 1) for k in keys if k.startswith("eps")}
    for p in rec["points"]:
        assert keys <= set(p)
    json.dumps(rec)  # JSON-ready
    fig = band.plot_band(rec)
    from na64ana.presentation.plots import save

    paths = save(fig, tmp_path, "band")
    assert all(p.stat().st_size > 1000 for p in paths)


def test_bad_mass_is_reported_per_point(summary):
    rec = band.band_limits(summary, [0.0167, 1e-5])
    assert rec["n_failed"] == 1 and "error" in rec["points"][1]
    with pytest.raises(InputError):
        band.band_limits(summary.model_copy(update={"masses_GeV": []}))


def test_published_summary_agrees_with_the_setup_file(summary):
    """The example summary restates the setup file's EOT, efficiency and background per run."""
    setups = vis.load_setups()
    for r in summary.runs:
        s = setups.setups[r.setup]
        assert r.eot == s.eot.f
        assert r.efficiency == pytest.approx(setups.efficiency(s), abs=1e-4)
        assert r.efficiency_unc == pytest.approx(setups.efficiency_unc(), abs=1e-4)
        assert r.background == s.background.f and r.background_unc == s.background.unc
        assert r.observed == 0
    assert summary.correlated == {"aprime_yield": setups.a("aprime_yield_unc")}


def test_band_reaching_the_end_of_the_scan_is_open(summary, monkeypatch):
    """An excluded band that extends past the scanned eps range has a None edge on that side, never a
    spurious one (here the range stops at 3e-4, inside the 16.7 MeV band)."""
    full = band.band_point(summary, 0.0167)
    monkeypatch.setattr(band, "EPS_RANGE", (1e-7, 3e-4))
    p = band.band_point(summary, 0.0167)
    assert p["eps_obs"] == pytest.approx(full["eps_obs"], rel=1e-8)
    assert p["eps_obs_upper"] is None and p["open_edges"] == ["upper"] and "end of the scanned" in p["note"]
    monkeypatch.setattr(band, "EPS_RANGE", (1e-4, 1.0))
    p = band.band_point(summary, 0.0167)
    assert p["eps_obs"] is None and p["eps_obs_upper"] == pytest.approx(full["eps_obs_upper"], rel=1e-8)
    assert p["open_edges"] == ["lower"]
