"""Visible-mode physics: setup loader, A' widths/lifetime, decay probability limits, tungsten yield.

Expectations are derived independently of the code under test: CODATA hbar c typed in here, the decay
probability from a numerical integral of the exponential decay density, the eps -> 0 / eps -> large limits
from their closed forms, and the tungsten yield from the (separately tested) lead yield of
``physics.yields`` rescaled by target density and form factor.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import numpy as np
import pytest

from na64ana.errors import InputError
from na64ana.physics import visible as vis
from na64ana.physics import yields

HBAR_C_GEV_CM = 1.973269804e-14  # CODATA 2018
ALPHA = 7.2973525693e-3
M_E = 0.51099895e-3
SETUP_TOML = Path(vis.__file__).parents[1] / "data" / "visible_setup.toml"


@pytest.fixture(scope="module")
def setups() -> vis.VisibleSetups:
    return vis.load_setups()


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "setup.toml"
    p.write_text(text)
    return p


# ---------------------------------------------------------------------------------------------- setup


def test_default_setups(setups):
    assert set(setups.setups) == {"2017_40X0", "2017_30X0", "2018"}
    s40, s30, s18 = (setups.setups[k] for k in ("2017_40X0", "2017_30X0", "2018"))
    assert (s40.e0, s30.e0, s18.e0) == (100.0, 100.0, 150.0)
    assert s40.wcal_length_mm.f == 290.0 and s30.wcal_length_mm.f == 220.0
    assert s40.eot.f + s30.eot.f + s18.eot.f == pytest.approx(8.4e10)
    # (1 - 7%) x 0.95 x 0.97 and (1 - 10%) x 0.95 x 0.97
    assert setups.efficiency(s40) == pytest.approx(0.93 * 0.95 * 0.97)
    assert setups.efficiency(s30) == pytest.approx(0.90 * 0.95 * 0.97)
    assert setups.threshold_GeV(s40) == 25.0 and setups.threshold_GeV(s18) == 37.5
    assert s40.background.f + s30.background.f == pytest.approx(0.07)
    assert s40.decay_cm > 0 and s18.decay_cm > s40.decay_cm  # 2018: longer decay volume


def test_every_value_is_cited():
    data = tomllib.loads(SETUP_TOML.read_text())
    for name, setup in data["setups"].items():
        for key, q in setup.items():
            if isinstance(q, dict):
                assert q.get("source") or q.get("approx"), f"{name}.{key}"


def test_wcal_leaving_no_decay_volume_is_an_error(tmp_path):
    old = "wcal_length_mm = { value = 290.0"
    text = SETUP_TOML.read_text().replace(old, "wcal_length_mm = { value = 3790.0")
    with pytest.raises(InputError) as e:
        vis.load_setups(_write(tmp_path, text))
    assert e.value.field == "setups.2017_40X0.wcal_length_mm"
    assert "no decay volume" in str(e.value) and str(tmp_path) in str(e.value)
    assert "\n" not in str(e.value)


def test_beam_energy_mismatch_within_campaign(tmp_path):
    text = SETUP_TOML.read_text().replace(
        'beam_energy_GeV = { value = 100.0, source = "ABS; S000" }\nwcal_X0 = { value = 30.0',
        'beam_energy_GeV = { value = 120.0, source = "ABS; S000" }\nwcal_X0 = { value = 30.0')
    with pytest.raises(InputError) as e:
        vis.load_setups(_write(tmp_path, text))
    assert e.value.field == "setups.2017_30X0.beam_energy_GeV"


def test_beam_energy_must_match_the_campaign(setups):
    assert vis.setup_for_campaign(setups, "2018", campaign="visible2018", beam_energy_GeV=150.0).e0 == 150.0
    with pytest.raises(InputError) as e:
        vis.setup_for_campaign(setups, "2018", campaign="visible2018", beam_energy_GeV=100.0)
    assert e.value.field == "beam_energy_GeV"
    with pytest.raises(InputError, match="belongs to campaign"):
        vis.setup_for_campaign(setups, "2018", campaign="visible2017")
    with pytest.raises(InputError, match="unknown visible setup"):
        vis.setup_for_campaign(setups, "2019")


def test_uncited_value_is_an_error(tmp_path):
    old = 'eot = { value = 2.4e10, source = "BRIEF; S000 (40 X0 WCAL, 2.4e10 EOT)" }'
    text = SETUP_TOML.read_text().replace(old, "eot = { value = 2.4e10 }")
    with pytest.raises(InputError) as e:
        vis.load_setups(_write(tmp_path, text))
    assert e.value.field == "setups.2017_40X0.eot"


def test_broken_toml_is_one_line(tmp_path):
    with pytest.raises(InputError, match="not valid TOML"):
        vis.load_setups(_write(tmp_path, "[setups\n"))


# ---------------------------------------------------------------------------------------------- widths


def test_ctau_against_hand_calculation():
    m, eps = 0.0167, 1e-4
    r = M_E**2 / m**2
    gamma = ALPHA * eps**2 * m / 3 * (1 + 2 * r) * math.sqrt(1 - 4 * r)
    assert float(vis.width_ee(m, eps)) == pytest.approx(gamma, rel=1e-9)
    assert float(vis.ctau_cm(m, eps)) == pytest.approx(HBAR_C_GEV_CM / gamma, rel=1e-6)
    # leading order 3 hbar c / (alpha eps^2 m) = 0.0486 cm; the phase-space factor is 1 - O(r^2)
    assert float(vis.ctau_cm(m, eps)) == pytest.approx(3 * HBAR_C_GEV_CM / (ALPHA * eps**2 * m), rel=1e-5)


def test_width_thresholds_and_scaling():
    assert float(vis.width_ee(0.0010, 1e-3)) == 0.0  # below 2 m_e
    assert float(vis.width_mumu(0.2, 1e-3)) == 0.0  # below 2 m_mu
    assert float(vis.width_mumu(20.0, 1.0) / vis.width_ee(20.0, 1.0)) == pytest.approx(1.0, abs=1e-3)
    assert float(vis.width_total(0.3, 1e-3)) > float(vis.width_ee(0.3, 1e-3))
    assert float(vis.width_ee(0.01, 2e-4) / vis.width_ee(0.01, 1e-4)) == pytest.approx(4.0)
    assert math.isinf(float(vis.ctau_cm(0.001, 1e-4)))


def test_decay_length_boost():
    m, eps, e = 0.0167, 1e-4, 50.0
    l_expected = math.sqrt(e**2 - m**2) / m * float(vis.ctau_cm(m, eps))
    assert float(vis.decay_length_cm(e, m, eps)) == pytest.approx(l_expected)
    l_e_over_m = e / m * float(vis.ctau_cm(m, eps))
    assert float(vis.decay_length_cm(e, m, eps)) == pytest.approx(l_e_over_m, rel=1e-6)


# ---------------------------------------------------------------------------------- decay probability


@pytest.mark.parametrize("eps", [3e-5, 1e-4, 3e-4, 1e-3])
def test_decay_probability_is_the_integral_of_the_decay_density(eps):
    m, e, l_sh, l_dec = 0.0167, 60.0, 30.0, 350.0
    lam = float(vis.decay_length_cm(e, m, eps))
    z = np.linspace(l_sh, l_sh + l_dec, 200_001)
    density = np.exp(-z / lam) / lam
    integral = float(np.sum(0.5 * (density[1:] + density[:-1]) * np.diff(z)))
    p = float(vis.decay_probability(e, m, eps, l_sh, l_dec))
    assert p == pytest.approx(integral, rel=1e-6, abs=1e-300)


def test_decay_probability_limits():
    m, e, l_sh, l_dec = 0.0167, 60.0, 30.0, 350.0
    # eps -> 0: l -> infinity, P -> L_dec / l (proportional to eps^2)
    eps = 1e-8
    lam = float(vis.decay_length_cm(e, m, eps))
    p = float(vis.decay_probability(e, m, eps, l_sh, l_dec))
    assert p == pytest.approx(l_dec / lam, rel=1e-6)
    assert float(vis.decay_probability(e, m, 2 * eps, l_sh, l_dec)) / p == pytest.approx(4.0, rel=1e-6)
    # eps large: the A' decays inside the WCAL, P = exp(-L_sh/l) -> 0 (no NaN)
    for eps in (1e-3, 3e-3):
        lam = float(vis.decay_length_cm(e, m, eps))
        assert float(vis.decay_probability(e, m, eps, l_sh, l_dec)) == pytest.approx(math.exp(-l_sh / lam),
                                                                                      rel=1e-9)
    assert float(vis.decay_probability(e, m, 1.0, l_sh, l_dec)) == 0.0
    # the maximum over l is at l* = L_dec / ln(1 + L_dec/L_sh)
    lam_star = l_dec / math.log(1 + l_dec / l_sh)
    p_star = math.exp(-l_sh / lam_star) - math.exp(-(l_sh + l_dec) / lam_star)
    eps_grid = np.logspace(-5, -3, 2001)
    p_max = float(np.max(vis.decay_probability(e, m, eps_grid, l_sh, l_dec)))
    assert p_max == pytest.approx(p_star, rel=1e-4)


# ---------------------------------------------------------------------------------------------- yield


def test_tungsten_spectrum_against_the_lead_yield(setups):
    """W spectrum total = Pb yield (physics.yields, pure Pb) x (N_A X0/A)_W/(N_A X0/A)_Pb x Phi_W/Phi_Pb."""
    from na64ana.physics.production import brem

    m, e0, cut = 0.005, 100.0, 25.0
    w_total = vis.aprime_spectrum(m, e0, cut).total()
    pb = yields.yield_per_eot_grid([m], 1.0, e0=e0, emiss_min=cut, target="pb")[0]
    density = (6.76 / 183.84) / (6.37 / 207.2)
    phi = float(brem.phi_elastic(m, 60.0, z=74, a_mass=183.84) / brem.phi_elastic(m, 60.0))
    assert 0.7 < phi < 0.9  # ~ (74/82)^2 with a slightly different screening log
    assert w_total == pytest.approx(pb * density * phi, rel=5e-3)


def test_yield_limits_in_eps(setups):
    s = setups.setups["2017_40X0"]
    m = 0.0167
    small = vis.yield_per_eot(m, np.array([1e-7, 2e-7]), s)
    assert small[1] / small[0] == pytest.approx(16.0, rel=1e-4)  # eps^2 production x eps^2 decay
    big = vis.yield_per_eot(m, np.array([3e-3, 1e-2]), s)
    assert big[0] < 1e-30 and big[1] == 0.0
    n = vis.yield_per_eot(m, np.logspace(-6, -2, 200), s)
    k = int(np.argmax(n))
    assert 0 < k < 199 and np.all(np.diff(n[: k + 1]) > 0) and np.all(np.diff(n[k:]) <= 0)  # one peak
    assert float(vis.yield_per_eot(m, 0.0, s)) == 0.0


def test_yield_is_spectrum_times_probability(setups):
    s = setups.setups["2018"]
    m, eps = 0.01, 2e-4
    spec = vis.aprime_spectrum(m, s.e0, setups.threshold_GeV(s))
    p = vis.decay_probability(spec.centres, m, eps, s.shield_cm, s.decay_cm)
    assert float(vis.yield_per_eot(m, eps, s)) == pytest.approx(eps**2 * float(p @ spec.counts), rel=1e-12)


def test_yield_binning_converged(setups):
    s = setups.setups["2017_30X0"]
    for eps in (1e-4, 5e-4):
        a = float(vis.yield_per_eot(0.0167, eps, s, n_bins=150))
        b = float(vis.yield_per_eot(0.0167, eps, s, n_bins=600))
        assert a == pytest.approx(b, rel=2e-3)


def test_yield_bad_inputs(setups):
    s = setups.setups["2017_40X0"]
    with pytest.raises(InputError) as e:
        vis.yield_per_eot(0.0167, -1e-4, s)
    assert e.value.field == "eps"
    with pytest.raises(InputError) as e:
        vis.yield_per_eot(0.0001, 1e-4, s)  # below the k-factor table
    assert e.value.field == "mass"
