"""Vector mediators by their couplings (brief_extensions 5): L_mu - L_tau loop, widths, B-L conventions, a
user vector, the registry, and the muon g-2 band. Expectations are derived independently (quadrature of
the loop and g-2 integrals with scipy, the width formulas written out)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate

from na64ana import published
from na64ana.errors import InputError
from na64ana.physics import g2, models
from na64ana.physics.models import lmu_ltau

ALPHA = published.get("physics.alpha_em")
E = math.sqrt(4 * math.pi * ALPHA)
ME = published.get("physics.electron_mass_GeV")
MMU = published.get("physics.muon_mass_GeV")
MTAU = published.get("physics.models.tau_mass_GeV")


def _loop_quad(q2: float) -> complex:
    """integral_0^1 x(1-x) ln[(m_tau^2 - x(1-x) q^2)/(m_mu^2 - x(1-x) q^2)] with q^2 + i0, by quad."""
    def arg(x: float, m: float) -> complex:
        return complex(m**2 - x * (1 - x) * q2, -1e-300)

    def f(x: float, part: str) -> float:
        v = x * (1 - x) * (np.log(arg(x, MTAU)) - np.log(arg(x, MMU)))
        return v.real if part == "re" else v.imag

    pts = []
    for m in (MMU, MTAU):
        if q2 > 4 * m**2:
            b = math.sqrt(1 - 4 * m**2 / q2)
            pts += [(1 - b) / 2, (1 + b) / 2]
    kw = {"points": sorted(pts), "limit": 400, "epsabs": 1e-14, "epsrel": 1e-12} if pts else \
        {"limit": 400, "epsabs": 1e-14, "epsrel": 1e-12}
    re = integrate.quad(f, 0, 1, args=("re",), **kw)[0]
    return complex(re, integrate.quad(f, 0, 1, args=("im",), **kw)[0])


def test_loop_factor_is_69_3_at_small_mass_by_independent_integration():
    ratio = 1.0 / float(lmu_ltau.loop_mixing_per_g(1e-3)[0])
    independent = 1.0 / (E / (2 * math.pi**2) * abs(_loop_quad(1e-6)))
    assert ratio == pytest.approx(independent, rel=1e-6)
    assert ratio == pytest.approx(69.3, abs=0.05)
    # q^2 -> 0 closed form: (e / 12 pi^2) ln(m_tau^2/m_mu^2)
    assert ratio == pytest.approx(12 * math.pi**2 / (E * math.log(MTAU**2 / MMU**2)), rel=1e-5)


@pytest.mark.parametrize("mass", [0.01, 0.1, 0.2, 0.25, 0.5, 1.0, 3.0, 5.0])
def test_loop_matches_quadrature_below_and_above_the_muon_and_tau_thresholds(mass):
    analytic = complex(lmu_ltau.loop_integral(mass**2, MMU, MTAU)[0])
    ref = _loop_quad(mass**2)
    assert analytic.real == pytest.approx(ref.real, rel=1e-7, abs=1e-10)
    assert analytic.imag == pytest.approx(ref.imag, rel=1e-7, abs=1e-10)
    if mass > 2 * MMU:
        assert abs(ref.imag) > 0  # complex above 2 m_mu: |Pi| is used
    z = models.get("lmu_ltau", g=2e-3)
    assert float(z.eps_eff(mass)) == pytest.approx(2e-3 * E / (2 * math.pi**2) * abs(ref), rel=1e-7)


def test_lmu_ltau_widths_and_invisible_fraction():
    g, m = 1e-3, np.array([0.1, 0.3, 1.0])
    z = models.get("lmu_ltau", g=g)
    w = z.partial_widths(m)
    np.testing.assert_allclose(w["nu_nu"], g**2 * m / (12 * math.pi), rtol=1e-12)  # nu_mu + nu_tau, LH
    r = MMU**2 / m**2
    beta = np.sqrt(np.clip(1 - 4 * r, 0, None))
    mumu = np.where(m > 2 * MMU, g**2 * m / (12 * math.pi) * (1 + 2 * r) * beta, 0)
    np.testing.assert_allclose(w["mumu"], mumu, rtol=1e-12)
    assert float(w["ee"][0]) == 0.0 and float(w["tautau"][2]) == 0.0
    np.testing.assert_allclose(z.br_invisible(m), w["nu_nu"] / (w["nu_nu"] + w["mumu"]), rtol=1e-12)
    assert float(z.br_invisible(0.1)) == 1.0
    assert z.limited_coupling == "g" and type(z).coupling_label == "g_mu-tau"


def test_b_l_neutrino_conventions_and_electron_coupling():
    g, m = 3e-4, np.array([0.05, 0.5])
    dirac = models.get("b_l", g=g)
    maj = models.get("b_l", g=g, neutrinos="majorana")
    np.testing.assert_allclose(dirac.partial_widths(m)["nu_nu"], g**2 * m / (4 * math.pi), rtol=1e-12)
    np.testing.assert_allclose(maj.partial_widths(m)["nu_nu"], g**2 * m / (8 * math.pi), rtol=1e-12)
    r = ME**2 / m**2
    np.testing.assert_allclose(dirac.partial_widths(m)["ee"],
                               g**2 * m / (12 * math.pi) * (1 + 2 * r) * np.sqrt(1 - 4 * r), rtol=1e-12)
    assert float(dirac.br_invisible(0.05)) == pytest.approx(0.75, rel=1e-6)
    assert float(maj.br_invisible(0.05)) == pytest.approx(0.6, rel=1e-6)
    np.testing.assert_allclose(dirac.eps_eff(m), g / E, rtol=1e-12)
    with pytest.raises(InputError) as exc:
        models.get("b_l", neutrinos="sterile")
    assert exc.value.field == "neutrinos"


def test_user_vector_reproduces_the_named_models_and_the_loop_scale_drops_out():
    m = np.array([0.01, 0.3])
    lmt = models.get("lmu_ltau", g=1e-3)
    v = models.get("vector", g=1e-3, c_mu=1, c_tau=-1, c_nu_mu=1, c_nu_tau=-1)
    v2 = models.get("vector", g=1e-3, c_mu=1, c_tau=-1, c_nu_mu=1, c_nu_tau=-1, loop_scale_GeV=50.0)
    np.testing.assert_allclose(v.eps_eff(m), lmt.eps_eff(m), rtol=1e-10)
    np.testing.assert_allclose(v2.eps_eff(m), lmt.eps_eff(m), rtol=1e-10)
    np.testing.assert_allclose(v.br_invisible(m), lmt.br_invisible(m), rtol=1e-12)
    bl = models.get("b_l", g=1e-4, neutrinos="majorana")
    u = models.get("vector", g=1e-4, c_e=-1, c_mu=-1, c_tau=-1, c_nu_e=-1, c_nu_mu=-1, c_nu_tau=-1)
    np.testing.assert_allclose(u.br_invisible(m), bl.br_invisible(m), rtol=1e-12)
    # the tree coupling dominates; the mu/tau loop adds a per-mille correction here
    assert float(u.eps_eff(0.01)) == pytest.approx(1e-4 / E, rel=0.02)


def test_user_vector_chi_coupling_ratio_vs_fixed_alpha_d():
    m = 0.05
    ratio_model = models.get("vector", g=1e-4, c_e=1.0, c_chi=1.0, alpha_d=0.0, ratio=3.0)
    w = ratio_model.partial_widths(m)
    rc = 1 / 9
    expected = (1e-4) ** 2 / (4 * math.pi) / 3 * m * (1 + 2 * rc) * math.sqrt(1 - 4 * rc)
    assert float(w["chi_chi"]) == pytest.approx(expected, rel=1e-12)
    br_small = float(models.get("vector", g=1e-6, c_e=1.0, c_chi=1.0, alpha_d=0.0).br_invisible(m))
    assert float(ratio_model.br_invisible(m)) == pytest.approx(br_small, rel=1e-9)  # independent of g
    fixed_small = float(models.get("vector", g=1e-6, c_e=1.0, alpha_d=1e-10).br_invisible(m))
    fixed_large = float(models.get("vector", g=1e-2, c_e=1.0, alpha_d=1e-10).br_invisible(m))
    assert fixed_small > 0.99 and fixed_large < 0.01  # depends on g


def test_registry_knows_the_new_models():
    assert {"lmu_ltau", "b_l", "vector", "alp_photon", "dark_photon"} <= set(models.available())
    with pytest.raises(InputError) as exc:
        models.get("lmu_ltau", h=1.0)
    assert exc.value.field == "h"


@pytest.mark.parametrize("mass", [1e-3, 0.05, 0.1056, 0.5, 2.0])
def test_g2_integral_against_quadrature(mass):
    r = (mass / MMU) ** 2
    ref = integrate.quad(lambda x: x * (1 - x) ** 2 / ((1 - x) ** 2 + x * r), 0, 1, epsabs=0,
                         epsrel=1e-12, limit=200)[0] / (4 * math.pi**2)
    assert float(g2.delta_a_mu_per_g2(mass)[0]) == pytest.approx(ref, rel=1e-8)


def test_g2_limits_and_band():
    # m << m_mu: 1/(8 pi^2); m >> m_mu: m_mu^2/(12 pi^2 m^2)
    assert float(g2.delta_a_mu_per_g2(1e-5)[0]) == pytest.approx(1 / (8 * math.pi**2), rel=1e-3)
    assert float(g2.delta_a_mu_per_g2(50.0)[0]) == pytest.approx(MMU**2 / (12 * math.pi**2 * 2500), rel=1e-2)
    inp = g2.load_input()
    assert inp.value == pytest.approx(251e-11) and "141801" in inp.source
    lo, hi = g2.preferred_band([0.01, 0.1])
    width = inp.n_sigma * inp.sigma
    np.testing.assert_allclose(g2.delta_a_mu([0.01, 0.1], lo), inp.value - width, rtol=1e-10)
    np.testing.assert_allclose(g2.delta_a_mu([0.01, 0.1], hi), inp.value + width, rtol=1e-10)


def test_g2_input_is_replaceable_and_checked(tmp_path):
    p = tmp_path / "g2.toml"
    p.write_text('[delta_a_mu]\nvalue = 1e-9\nsigma = 1e-10\nsource = "test"\nn_sigma = 1\n')
    lo, hi = g2.preferred_band([0.01], g2=g2.load_input(p))
    per = float(g2.delta_a_mu_per_g2(0.01)[0])
    assert float(lo[0]) == pytest.approx(math.sqrt(0.9e-9 / per))
    assert float(hi[0]) == pytest.approx(math.sqrt(1.1e-9 / per))
    p.write_text('[delta_a_mu]\nvalue = 1e-9\nsource = "test"\n')
    with pytest.raises(InputError) as exc:
        g2.load_input(p)
    assert exc.value.field == "delta_a_mu.sigma" and exc.value.file == str(p)
