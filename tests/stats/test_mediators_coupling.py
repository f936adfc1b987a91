"""Limits on any vector model's coupling from the missing-energy data (na64ana.stats.coupling).

The reference is the dark-photon limit of the same data computed by na64ana.stats.limits (pyhf-spec exact
CLs per mass); the model limit must follow from it by eps_eff(g)^2 BR_inv(g) = eps_lim^2, with the loop
factor computed here independently by quadrature."""

from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
from scipy import integrate

from na64ana import published
from na64ana import summary as summ_mod
from na64ana.errors import InputError
from na64ana.physics import models, yields
from na64ana.stats import coupling, limits

ROOT = Path(__file__).resolve().parents[2]
EX = ROOT / "examples" / "summaries"
E = math.sqrt(4 * math.pi * published.get("physics.alpha_em"))
MMU = published.get("physics.muon_mass_GeV")
MTAU = published.get("physics.models.tau_mass_GeV")


def _raw(name: str) -> dict:
    return json.loads((EX / f"{name}_published.json").read_text())


@pytest.fixture(scope="module")
def aprime_2016_2018():
    """The dark-photon scan of the 2016-2018 summary at the masses the L_mu-L_tau test compares (each mass
    is computed on its own: the same numbers as at these masses of the full 16-mass grid)."""
    raw = _raw("prl2019")
    raw["masses_GeV"] = [0.001, 0.1]
    return limits.scan(summ_mod.validate(raw))


def _loop_per_g(mass: float) -> float:
    q2 = mass**2
    f = lambda x: x * (1 - x) * math.log((MTAU**2 - x * (1 - x) * q2) / (MMU**2 - x * (1 - x) * q2))  # noqa: E731
    return E / (2 * math.pi**2) * integrate.quad(f, 0, 1, epsabs=0, epsrel=1e-12)[0]


def test_lmu_ltau_at_1_mev_is_the_dark_photon_limit_times_the_loop_factor(aprime_2016_2018):
    rec = coupling.limits_from_summary(EX / "lmu_ltau_2016_2018_published.json", masses=[0.001, 0.1])
    ap = {round(p["mass_GeV"], 6): p for p in aprime_2016_2018["points"]}
    for p in rec["points"]:
        eps = ap[round(p["mass_GeV"], 6)]
        factor = 1.0 / _loop_per_g(p["mass_GeV"])  # BR_inv = 1 below 2 m_mu for the Z' and the A'
        for key in ("obs", "exp", "exp_m1", "exp_p1", "exp_m2", "exp_p2"):
            assert p[f"coupling_{key}"] == pytest.approx(eps[f"eps_{key}"] * factor, rel=2e-3), key
    p1 = rec["points"][0]
    assert p1["coupling"] == "g_mu-tau" and rec["coupling"] == "g_mu-tau"
    assert p1["coupling_obs"] / p1["eps_obs"] == pytest.approx(69.3, abs=0.05)


def test_lmu_ltau_above_the_dimuon_threshold_includes_the_invisible_fraction():
    m = 0.4
    rec = coupling.limits_from_summary(EX / "lmu_ltau_2016_2018_published.json", masses=[m])
    p = rec["points"][0]
    r = MMU**2 / m**2
    br = 1.0 / (1.0 + (1 + 2 * r) * math.sqrt(1 - 4 * r))  # nu nu (2 x LH) vs mu mu, both g^2 m/(12 pi)
    assert p["br_invisible_at_unit_coupling"] == pytest.approx(br, rel=1e-9)
    assert p["coupling_obs"] == pytest.approx(p["eps_obs"] / (float(models.get("lmu_ltau").eps_eff(m))
                                                              * math.sqrt(br)), rel=1e-9)


def test_b_l_is_the_eps_limit_over_e_and_sqrt_br():
    rec = coupling.limits_from_summary(EX / "b_l_2016_2021_published.json", masses=[0.01, 0.5])
    me = published.get("physics.electron_mass_GeV")
    for p in rec["points"]:
        m = p["mass_GeV"]
        ll = sum((1 + 2 * ml**2 / m**2) * math.sqrt(1 - 4 * ml**2 / m**2) for ml in (me, MMU) if m > 2 * ml)
        br = 3.0 / (3.0 + ll)  # Dirac nu nu: g^2 m/(4 pi) = 3 x g^2 m/(12 pi); leptons g^2 m/(12 pi) (...)
        assert p["br_invisible_at_unit_coupling"] == pytest.approx(br, rel=1e-9)
        assert p["coupling_exp"] == pytest.approx(p["eps_exp"] * E / math.sqrt(br), rel=1e-9)
    assert rec["points"][0]["br_invisible_at_unit_coupling"] == pytest.approx(0.75, rel=1e-4)
    # the dark-photon eps limit of this summary equals a direct pyhf-spec CLs scan of the same numbers
    raw = _raw("b_l_2016_2021")
    raw.pop("model")
    raw["masses_GeV"] = [0.01]
    ref = limits.scan(summ_mod.validate(raw))["points"][0]
    assert rec["points"][0]["eps_obs"] == pytest.approx(ref["eps_obs"], rel=2e-3)


def test_coupling_dependent_br_is_solved_and_reproduces_s_up():
    raw = _raw("b_l_2016_2021")
    raw["model"] = {"name": "vector", "c_e": 1.0, "alpha_d": 3e-10, "m_chi": 0.001}
    raw["masses_GeV"] = [0.05]
    rec = coupling.limits_from_summary(raw)
    assert rec["br_inv_depends_on_coupling"]
    p = rec["points"][0]
    g = p["coupling_obs"]
    model = models.get("vector", g=g, c_e=1.0, alpha_d=3e-10, m_chi=0.001)
    y = yields.model_signal_yield(model, [0.05], mechanisms=["brem"]).total[0]
    s = summ_mod.validate({k: v for k, v in raw.items() if k != "model"})
    n = y * sum(r.eot * float(r.efficiency_at(0.05)) for r in s.runs)
    assert n == pytest.approx(p["s_up"]["obs"], rel=1e-6)
    # eps_eff(g)^2 BR(g) = eps_lim^2, with BR(g) well below 1 here
    assert 0.2 < float(model.br_invisible(0.05)) < 0.7
    lhs = float(model.eps_eff(0.05)) ** 2 * float(model.br_invisible(0.05))
    assert lhs == pytest.approx(p["eps_obs"] ** 2, rel=1e-6)
    # a fixed alpha_D bounds the invisible signal (g^2 BR_inv -> 4 pi alpha_D): too small, no exclusion
    raw["model"]["alpha_d"] = 1e-14
    none = coupling.limits_from_summary(raw)["points"][0]
    assert none["coupling_obs"] is None and "no exclusion" in none["note"]


def test_coupling_from_eps_limits():
    out = coupling.coupling_from_eps(models.get("b_l", neutrinos="majorana"), [0.001, 0.0011],
                                     {"eps_obs": [1e-5, None], "eps_exp": [2e-5, 3e-5]})
    # below 2 m_e only nu nu is open: BR_inv = 1
    assert out[0]["coupling_obs"] == pytest.approx(1e-5 * E, rel=1e-9)
    r = (published.get("physics.electron_mass_GeV") / 0.0011) ** 2
    br = 1.5 / (1.5 + (1 + 2 * r) * math.sqrt(1 - 4 * r))  # 3 LH nu: g^2 m/(8 pi) vs e+e- g^2 m/(12 pi) (...)
    assert out[1]["coupling_obs"] is None
    assert out[1]["coupling_exp"] == pytest.approx(3e-5 * E / math.sqrt(br), rel=1e-9)
    # the dark photon itself: the identity
    same = coupling.coupling_from_eps(models.get("dark_photon", alpha_d=0.5), [0.05], {"eps_obs": [1e-5]})
    assert same[0]["coupling_obs"] == pytest.approx(1e-5, rel=1e-6)


@pytest.mark.parametrize("spec, field, words", [
    ({"name": "zprime"}, "model.name", "unknown model 'zprime'"),
    ({"name": "lmu_ltau", "gee": 1.0}, "model.gee", "no parameter 'gee'"),
    ({"name": "lmu_ltau", "g": 1e-3}, "model.g", "limited coupling"),
    ({"name": "vector", "c_e": 1.0}, "model.c_nu_e", "BR(invisible) = 0"),
    ({"name": "vector", "c_e": 1.0, "c_chi": 0.0}, "model.c_chi", "BR(invisible) = 0"),
    ({"name": "dark_photon", "alpha_d": 0.0}, "model.alpha_d", "BR(invisible) = 0"),
    ({"name": "vector", "c_tau": 1.0, "c_nu_tau": 1.0}, "model.c_e", "neither electron nor muon"),
    ({"name": "b_l", "neutrinos": "sterile"}, "model.neutrinos", "neutrino convention"),
    ({"name": "b_l", "production": ["primakoff"]}, "model.production", "does not make a vector"),
    ({"name": "alp_photon", "production": ["brem"]}, "model.production", "does not make an ALP"),
    ({"production": ["brem"]}, "model.name", "Field required"),
])
def test_model_block_errors_name_the_field(spec, field, words):
    with pytest.raises(InputError) as exc:
        coupling.from_spec(spec, file="s.json")
    assert exc.value.field == field and words in exc.value.message
    assert "\n" not in str(exc.value) and str(exc.value).startswith(f"s.json:{field}: ")


def test_alp_mass_that_no_photon_can_make_names_the_mass():
    with pytest.raises(InputError) as exc:
        coupling.from_spec({"name": "alp_photon"}, masses=[0.01, 60.0], e0=100.0)
    assert exc.value.field == "masses_GeV.1" and "no photon" in exc.value.message


def test_summary_without_model_block_and_with_a_bad_run_are_one_line_errors(tmp_path):
    raw = _raw("lmu_ltau_2016_2018")
    raw.pop("model")
    p = tmp_path / "s.json"
    p.write_text(json.dumps(raw))
    with pytest.raises(InputError) as exc:
        coupling.limits_from_summary(p)
    assert exc.value.field == "model" and exc.value.file == str(p)
    raw = _raw("lmu_ltau_2016_2018")
    raw["runs"][1]["eot"] = -1
    with pytest.raises(InputError) as exc:
        coupling.limits_from_summary(raw)
    assert exc.value.field == "runs.1.eot"


def test_blinded_summary_gives_expected_limits_only():
    raw = copy.deepcopy(_raw("lmu_ltau_2016_2018"))
    for r in raw["runs"]:
        r["observed"] = None
    rec = coupling.limits_from_summary(raw, masses=[0.01])
    p = rec["points"][0]
    assert rec["blinded"] and p["coupling_obs"] is None and p["coupling_exp"] > 0 and p["blinded"]


@pytest.mark.slow  # a speed budget of a 100-mass scan (other tests cover the scan)
def test_speed_100_masses_with_bands():
    raw = _raw("lmu_ltau_2016_2018")
    masses = np.geomspace(1e-3, 1.0, 100)
    coupling.limits_from_summary(raw, masses=[0.01])  # warm the shower table and imports
    t0 = time.perf_counter()
    rec = coupling.limits_from_summary(raw, masses=masses)
    dt = time.perf_counter() - t0
    assert rec["n_failed"] == 0 and all(p["coupling_exp_p2"] > p["coupling_exp_m2"] for p in rec["points"])
    assert dt < 15.0, f"100-mass scan took {dt:.1f} s"


def test_figures_are_written(tmp_path):
    from na64ana.physics import g2
    from na64ana.presentation import search_plots as coupling_plots

    masses = [0.001, 0.01, 0.1]
    rec = coupling.limits_from_summary(EX / "lmu_ltau_2016_2018_published.json", masses=masses)
    lo, hi = g2.preferred_band(masses)
    files = coupling_plots.save(coupling_plots.plot_coupling_limits(rec, g2_band=(masses, lo, hi)),
                                tmp_path / "lmu_ltau")
    alp_rec = coupling.limits_from_summary(EX / "alp_2016_2018_published.json", masses=[0.005, 0.02, 0.05])
    files += coupling_plots.save(coupling_plots.plot_closed_region(alp_rec), tmp_path / "alp")
    assert all(f.exists() and f.stat().st_size > 5000 for f in files)


def test_annihilation_adds_to_bremsstrahlung_for_an_electron_coupled_vector():
    raw = _raw("b_l_2016_2021")
    m = 0.25  # inside the resonant window E_R > 50 GeV (docs/physics.md 2.2)
    brem = coupling.limits_from_summary(raw, masses=[m])["points"][0]
    raw["model"]["production"] = ["brem", "annihilation"]
    both = coupling.limits_from_summary(raw, masses=[m])["points"][0]
    y = yields.signal_yield([m], 1.0)
    ratio = float(y.total[0] / y["brem"][0])  # same BR_inv and eps_eff for both mechanisms
    assert ratio > 10
    assert both["coupling_exp"] == pytest.approx(brem["coupling_exp"] / math.sqrt(ratio), rel=2e-3)
