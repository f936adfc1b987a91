"""Every example summary through ``na64ana limits`` (CLI): finite limits of the right kind (issues 15-17).

prl2023 is the slow one (exact CLs enumeration of 5 runs, ~1 min per distinct run-share vector): two
masses only, no toy cross-check."""

import json
import math
from pathlib import Path

import pytest

from na64ana.cli import main

EX = Path(__file__).resolve().parents[2] / "examples" / "summaries"


def _limits(tmp_path, name, *extra, masses=None):
    src = EX / f"{name}_published.json"
    if masses is not None:
        d = json.loads(src.read_text())
        d["masses_GeV"] = masses
        src = tmp_path / f"{name}.json"
        src.write_text(json.dumps(d))
    out = tmp_path / f"lim_{name}"
    assert main(["limits", "--summary", str(src), "--out", str(out), "--crosscheck-toys", "0", *extra]) == 0
    return json.loads((out / "limits.json").read_text())


def _at(rec, mass):
    return min(rec["points"], key=lambda p: abs(math.log(p["mass_GeV"] / mass)))


@pytest.mark.slow  # exact CLs of 5 runs (~25 s CPU); test_positron_beam_dip covers the annihilation dip fast
def test_prl2023_annihilation_dip(tmp_path):
    rec = _limits(tmp_path, "prl2023", masses=[0.01, 0.237])
    assert rec["search"] == "dark_photon" and rec["production"] == ["brem", "annihilation"]
    p10, p237 = _at(rec, 0.01), _at(rec, 0.237)
    assert p10["eps_obs"] > 0 and p10["signal_per_mechanism_at_eps_ref"]["annihilation"] == 0
    # the resonance: at 237 MeV the limit with annihilation is >= 3x stronger than with brem only
    assert p237["eps_exp_brem_only"] / p237["eps_exp"] >= 3
    assert p237["signal_per_mechanism_at_eps_ref"]["annihilation"] > 0
    assert rec["y_limits"] and rec["alpha_d_limits"]


def test_positron_beam_dip(tmp_path):
    rec = _limits(tmp_path, "positron2022", masses=[0.1, 0.237, 0.3])
    assert rec["beam_particle"] == "e+"
    p = _at(rec, 0.237)
    assert p["eps_obs"] > 0 and p["eps_exp_brem_only"] / p["eps_exp"] > 3


def test_lmu_ltau_is_the_dark_photon_times_the_loop_factor(tmp_path):
    rec = _limits(tmp_path, "lmu_ltau_2016_2018", masses=[0.001, 0.01, 0.1])
    assert rec["search"] == "vector" and rec["coupling"] == "g_mu-tau"
    p = _at(rec, 0.001)
    assert p["coupling_obs"] / p["eps_obs"] == pytest.approx(69.3, rel=0.01)
    assert all(q["coupling_exp_m2"] <= q["coupling_exp"] <= q["coupling_exp_p2"] for q in rec["points"])


def test_b_l_limits_are_finite(tmp_path):
    rec = _limits(tmp_path, "b_l_2016_2021", masses=[0.001, 0.1])
    assert rec["search"] == "vector" and all(0 < p["coupling_obs"] < 1 for p in rec["points"])


def test_alp_closed_region(tmp_path):
    rec = _limits(tmp_path, "alp_2016_2018", masses=[0.001, 0.01, 0.05])
    assert rec["search"] == "alp"
    for p in rec["points"]:
        assert 0 < p["coupling_obs"] < p["coupling_obs_upper"]
        assert p["coupling_exp_upper"] is not None


def test_visible_band_around_x17(tmp_path):
    rec = _limits(tmp_path, "visible_2017_2018", masses=[0.0167])
    assert rec["search"] == "visible" and rec["signature"] == "visible"
    p = rec["points"][0]
    assert 1e-5 < p["eps_obs"] < 3e-4 < p["eps_obs_upper"] < 3e-3
    assert p["eps_exp"] is not None and p["eps_exp_upper"] > p["eps_exp"]
    assert p["coupling_obs_upper"] == p["eps_obs_upper"]


def test_search_figure_and_report_hook(tmp_path):
    from na64ana.presentation import search_plots

    rec = _limits(tmp_path, "lmu_ltau_2016_2018", masses=[0.001, 0.01, 0.1])
    name, fig, caption = search_plots.search_figure(rec)
    files = search_plots.save(fig, tmp_path / name)
    assert name == "search_lmu_ltau_coupling" and all(f.stat().st_size > 5000 for f in files)
