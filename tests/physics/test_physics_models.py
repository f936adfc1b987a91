"""Mediator models (brief 8.1, brief_extensions 5): widths from couplings, BR_inv, eps_eff, the registry."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pytest

from na64ana import published
from na64ana.errors import InputError
from na64ana.physics import models
from na64ana.physics.models import widths

ALPHA = published.get("physics.alpha_em")
ME = published.get("physics.electron_mass_GeV")
MMU = published.get("physics.muon_mass_GeV")
E = math.sqrt(4 * math.pi * ALPHA)


def test_dark_photon_widths_are_the_s001_formulas():
    m, eps, ad = np.array([0.05, 0.3]), 1e-4, 0.5
    ap = models.get("dark_photon", eps=eps, alpha_d=ad, ratio=3.0)
    w = ap.partial_widths(m)
    r = ME**2 / m**2
    np.testing.assert_allclose(w["ee"], ALPHA * eps**2 / 3 * m * (1 + 2 * r) * np.sqrt(1 - 4 * r), rtol=1e-12)
    assert w["mumu"][0] == 0.0 and w["mumu"][1] > 0  # opens at 2 m_mu
    rc = 1 / 9
    np.testing.assert_allclose(w["chi_chi"], ad / 3 * m * (1 + 2 * rc) * math.sqrt(1 - 4 * rc), rtol=1e-12)
    np.testing.assert_allclose(ap.total_width(m), sum(w.values()), rtol=1e-12)
    np.testing.assert_allclose(ap.br_invisible(m), w["chi_chi"] / ap.total_width(m), rtol=1e-12)
    np.testing.assert_allclose(ap.eps_eff(m), eps, rtol=1e-12)


def test_scalar_dark_matter_width():
    m = 0.1
    scalar = models.get("dark_photon", eps=1e-4, alpha_d=0.5, dm="scalar", m_chi=m / 3)
    assert float(scalar.partial_widths(m)["chi_chi"]) == pytest.approx(0.5 / 12 * m * (5 / 9) ** 1.5)
    # fixed m_chi: the channel closes below 2 m_chi
    assert float(scalar.partial_widths(0.6 * m)["chi_chi"]) == 0.0


def test_widths_helpers():
    m = 0.1
    assert float(widths.width_ll(m, 1e-3)) == pytest.approx(ALPHA * 1e-6 * m / 3, rel=1e-3)
    assert float(widths.width_ll(1.5 * ME, 1e-3)) == 0.0  # below threshold: closed, not NaN
    assert float(widths.width_chichi_dirac(m, 0.5, ME)) == pytest.approx(
        float(widths.width_ll(m, 1.0)) * 0.5 / ALPHA, rel=1e-12)
    assert float(widths.width_chichi_scalar(m, 0.5, 1e-9)) == pytest.approx(
        float(widths.width_chichi_dirac(m, 0.5, 1e-9)) / 4, rel=1e-9)
    # one neutrino flavour, left-handed: g^2 m / (24 pi) (brief_extensions 5)
    g = 1e-3
    expected = g**2 * m / (24 * math.pi)
    assert float(widths.vector_to_neutrinos(m, g**2 / (4 * math.pi))) == pytest.approx(expected)


def test_invisible_branching_ratio_limits():
    m = 0.1
    ap = models.get("dark_photon", eps=1e-4, alpha_d=0.5)
    assert float(ap.br_invisible(m)) == pytest.approx(1.0, abs=1e-8)
    assert float(models.get("dark_photon", eps=1e-4, alpha_d=0.0).br_invisible(m)) == 0.0
    no_dm = models.DarkPhoton(eps=1e-4, dark=None)
    assert float(no_dm.br_invisible(m)) == 0.0


@models.register("test_b_minus_l")
@dataclass(frozen=True)
class _BminusL(models.VectorMediator):
    """A B-L-like vector written against the interface, as a user would (brief_extensions 5)."""

    limited_coupling = "g"
    g: float = 1e-4
    dark: models.DarkMatter | None = field(default=None)

    def lepton_couplings(self) -> models.VectorCouplings:
        g = self.g
        return models.VectorCouplings(e=g, mu=g, tau=g, nu_e=g, nu_mu=g, nu_tau=g)


def test_a_new_model_is_a_class():
    assert "test_b_minus_l" in models.available()
    bl = models.get("test_b_minus_l", g=2e-4)
    m = 0.3
    w = bl.partial_widths(m)
    assert float(w["nu_nu"]) == pytest.approx(3 * (2e-4) ** 2 * m / (24 * math.pi), rel=1e-12)  # g^2 m/(8 pi)
    r = MMU**2 / m**2
    expected = (2e-4) ** 2 * m / (12 * math.pi) * (1 + 2 * r) * math.sqrt(1 - 4 * r)
    assert float(w["mumu"]) == pytest.approx(expected)
    assert float(bl.eps_eff(m)) == pytest.approx(2e-4 / E, rel=1e-12)  # production: eps e -> g
    # invisible through neutrinos only: Gamma_nu / (Gamma_nu + Gamma_ee + Gamma_mumu)
    assert float(bl.br_invisible(m)) == pytest.approx(float(w["nu_nu"] / bl.total_width(m)), rel=1e-12)
    assert bl.parameters() == {"g": 2e-4, "dark": None}


@pytest.mark.parametrize("params, field", [
    ({"name": "z_prime_x"}, "model"),
    ({"name": "dark_photon", "epsilon": 1e-4}, "epsilon"),
    ({"name": "dark_photon", "eps": -1.0}, "eps"),
    ({"name": "dark_photon", "alpha_d": -0.1}, "alpha_d"),
    ({"name": "dark_photon", "dm": "majorana"}, "dm"),
    ({"name": "dark_photon", "m_chi": 0.01, "ratio": 3.0}, "m_chi"),
    ({"name": "dark_photon", "ratio": 0.0}, "ratio"),
])
def test_registry_rejects_bad_parameters(params, field):
    name = params.pop("name")
    with pytest.raises(InputError) as exc:
        models.get(name, **params)
    assert exc.value.field == field


def test_dark_matter_defaults_are_the_published_conventions():
    dm = models.DarkMatter()
    assert dm.ratio == published.get("darkmatter.mass_ratio_aprime_chi")
    assert dm.alpha_d == published.get("darkmatter.alpha_d_benchmarks")[0]
    np.testing.assert_allclose(dm.mass([0.03, 0.3]), [0.01, 0.1])
    assert float(models.DarkMatter(m_chi=0.02).mass(0.3)) == 0.02
