"""Cross sections (brief Sec. 8): DMG4 ETL references, photon flux, shape normalisation, k-factor."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import integrate

from na64ana import published
from na64ana.errors import InputError
from na64ana.physics.production import brem as xs


@pytest.mark.parametrize("e0", [20.0, 100.0])
def test_sigma_etl_reproduces_dmg4_references(e0):
    ref = published.entry("physics.etl_reference_pb")
    expected = ref["value"][f"E0_{int(e0)}"]
    got = xs.sigma_etl(np.array(ref["masses_GeV"]), e0, ref["eps"])
    np.testing.assert_allclose(got, expected, rtol=0.01)


def test_sigma_scales_as_eps_squared():
    a = xs.sigma_total(0.05, 100.0, 1e-4)
    b = xs.sigma_total(0.05, 100.0, 3e-4)
    assert b / a == pytest.approx(9.0, rel=1e-12)


@pytest.mark.parametrize("e0", [20.0, 100.0])
@pytest.mark.parametrize("mass", np.geomspace(0.001, 1.0, 9))
def test_phi_closed_form_equals_numerical_integral(mass, e0):
    assert xs.phi_numeric(mass, e0) == pytest.approx(float(xs.phi_elastic(mass, e0)), rel=1e-6)


def test_inelastic_form_factor_is_a_small_positive_correction():
    # ~1/Z suppressed for lead (brief 8.2): a percent-level addition, never a reduction
    for m in (0.001, 0.1, 1.0):
        r = xs.phi_numeric(m, 100.0, inelastic=True) / xs.phi_numeric(m, 100.0)
        assert 1.0 < r < 1.0 + 5.0 / published.get("physics.pb_Z")


def _quad_shape(mass, e0):
    xmin, xmax = (float(v) for v in xs.x_range(mass, e0))
    pts = [xmax - d for d in (1e-2, 1e-3, 1e-4, 1e-5) if xmax - d > xmin]
    return integrate.quad(lambda x: float(xs.shape_s(x, mass, e0)), xmin, xmax, points=pts, limit=500,
                          epsrel=1e-10)[0]


@pytest.mark.parametrize("mass", [0.002, 0.0167, 0.1, 0.5, 1.0])
def test_shape_integral_matches_adaptive_quadrature(mass):
    assert float(xs.shape_integral(mass, 100.0)) == pytest.approx(_quad_shape(mass, 100.0), rel=1e-5)


@pytest.mark.parametrize("xsec", ["ww", "etl"])
@pytest.mark.parametrize("mass", [0.002, 0.1, 1.0])
def test_dsigma_dx_integrates_to_the_total_used(mass, xsec):
    e0 = 80.0
    xmin, xmax = (float(v) for v in xs.x_range(mass, e0))
    pts = [xmax - d for d in (1e-2, 1e-3, 1e-4, 1e-5) if xmax - d > xmin]
    total = integrate.quad(lambda x: float(xs.dsigma_dx(x, mass, e0, 1e-4, xsec)), xmin, xmax, points=pts,
                           limit=500, epsrel=1e-10)[0]
    assert total == pytest.approx(float(xs.sigma_total(mass, e0, 1e-4, xsec)), rel=1e-5)


def test_shape_is_zero_outside_kinematic_range_and_positive_inside():
    m, e0 = 0.1, 100.0
    xmin, xmax = (float(v) for v in xs.x_range(m, e0))
    assert xs.shape_s(np.array([0.5 * xmin, xmax + 1e-7, 1.0]), m, e0).tolist() == [0.0, 0.0, 0.0]
    assert np.all(xs.shape_s(np.linspace(xmin + 1e-6, xmax - 1e-9, 200), m, e0) > 0)


def test_heavier_aprime_peaks_at_larger_x():
    # S001 Figs. 3-4: heavier A' take a larger energy fraction
    def mean_x(m):
        x = np.linspace(float(xs.x_range(m, 100.0)[0]), float(xs.x_range(m, 100.0)[1]), 200_001)
        s = xs.shape_s(x, m, 100.0)
        return float(np.sum(x * s) / np.sum(s))

    assert mean_x(0.002) < mean_x(0.02) < mean_x(0.2)


def test_k_factor_is_bilinear_between_grid_nodes():
    k00, k10 = xs.k_factor(0.01, 100.0), xs.k_factor(0.02, 100.0)
    k01, k11 = xs.k_factor(0.01, 120.0), xs.k_factor(0.02, 120.0)
    assert float(xs.k_factor(0.015, 110.0)) == pytest.approx(float(k00 + k10 + k01 + k11) / 4, rel=1e-12)
    # brief 8.4 table row (m = 100 MeV, E0 = 100 GeV) and the interpolated 16.7 MeV value of brief 8.5
    assert float(xs.k_factor(0.1, 100.0)) == pytest.approx(1.6512, abs=1e-4)
    assert float(xs.k_factor(0.0167, 100.0)) == pytest.approx(1.1614, abs=1e-4)


def test_k_factor_energy_clamp_is_warned_not_silent():
    with pytest.warns(UserWarning, match="clamped"):
        low = xs.k_factor(0.05, 10.0)
    assert float(low) == pytest.approx(float(xs.k_factor(0.05, 20.0)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        xs.k_factor(0.05, np.array([20.0, 160.0]))  # the grid edges themselves are not clamped


def test_k_factor_mass_off_grid_is_an_error():
    with pytest.raises(InputError) as exc:
        xs.k_factor(5.0, 100.0)
    assert exc.value.field == "mass"


