"""Resonant annihilation e+ e- -> A' -> invisible (brief_extensions 2): kinematics, Breit-Wigner, yields."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from scipy import integrate, stats

from na64ana import published
from na64ana.errors import InputError
from na64ana.physics import models, shower
from na64ana.physics import yields as y
from na64ana.physics.production import annihilation as ann

ME = published.get("physics.electron_mass_GeV")
ALPHA = published.get("physics.alpha_em")


def test_resonance_kinematics():
    m = np.array([0.1, 0.237, 0.3])
    e_r = ann.resonance_energy(m)
    np.testing.assert_allclose(ann.mandelstam_s(e_r), m**2, rtol=1e-12)  # on shell
    np.testing.assert_allclose(ann.mass_at_resonance(e_r), m, rtol=1e-12)
    assert float(ann.resonance_energy(0.237)) == pytest.approx(0.237**2 / (2 * ME), rel=1e-4)


def test_window_edges():
    entry = published.entry("physics.annihilation.window_GeV")
    lo, hi = ann.mass_window(entry["e0_GeV"], entry["e0_GeV"] - entry["ecal_max_GeV"])
    assert (lo, hi) == pytest.approx(tuple(entry["value"]), abs=1e-3)
    assert lo == pytest.approx(math.sqrt(2 * ME * 50.0), rel=1e-5)
    n = y.annihilation_yield_per_eot_grid([0.999 * lo, 1.001 * lo, 0.99 * hi, 1.001 * hi], 1e-4)
    assert n[0] == 0.0 and n[1] > 0 and n[2] > 0 and n[3] == 0.0
    with pytest.raises(InputError) as exc:
        ann.mass_window(100.0, 120.0)
    assert exc.value.field == "emiss_min"


@pytest.mark.parametrize("dm", ["fermion", "scalar"])
@pytest.mark.parametrize("alpha_d", [1e-4, 1e-3])
def test_breit_wigner_integrates_to_the_narrow_width_strength(dm, alpha_d):
    """integral sigma_BW dE_+ = Z 2 pi^2 alpha eps^2 BR_inv / m_e: the brief's two formulas agree."""
    m, eps, k = 0.25, 1e-4, 200.0
    model = models.get("dark_photon", eps=eps, alpha_d=alpha_d, dm=dm)
    gam = float(model.total_width(m))
    e_r = float(ann.resonance_energy(m))
    half = m * gam / (2 * ME)  # half width at half maximum in E_+
    f = lambda e: float(ann.sigma_breit_wigner(e, m, eps, alpha_d=alpha_d, m_chi=m / 3,  # noqa: E731
                                               total_width=gam, dm=dm))
    pts = [e_r - 10 * half, e_r - half, e_r, e_r + half, e_r + 10 * half]
    num = integrate.quad(f, e_r - k * half, e_r + k * half, points=pts, limit=500, epsrel=1e-10)[0]
    # a Lorentzian holds (2/pi) atan(k) of its area within +-k half widths
    expected = ann.narrow_width_strength(eps, float(model.br_invisible(m))) * 2 / math.pi * math.atan(k)
    assert num == pytest.approx(expected, rel=2e-3)


def test_wide_breit_wigner_has_off_shell_tails():
    """For alpha_D = 0.1 (Gamma/M ~ 3%) the energy-dependent numerator makes the area differ by O(Gamma/M)."""
    m, eps = 0.25, 1e-4
    model = models.get("dark_photon", eps=eps, alpha_d=0.1)
    gam = float(model.total_width(m))
    f = lambda e: float(ann.sigma_breit_wigner(e, m, eps, alpha_d=0.1, m_chi=m / 3,  # noqa: E731
                                               total_width=gam))
    e_r = float(ann.resonance_energy(m))
    num = integrate.quad(f, 1.001 * (2 * m / 3) ** 2 / (2 * ME), 4 * e_r, points=[e_r], limit=500)[0]
    ratio = num / ann.narrow_width_strength(eps, float(model.br_invisible(m)))
    assert 0.9 < ratio < 1.1


def test_narrow_width_constants_match_the_brief():
    assert ann.narrow_width_strength(1e-4, z=1) * 1e-36 == pytest.approx(
        published.get("physics.annihilation.narrow_width_coefficient_cm2_GeV"), rel=1e-3)
    z = published.get("physics.pb_Z")
    assert z * y.atoms_per_x0_cm2() == pytest.approx(
        published.get("physics.annihilation.atomic_electrons_per_x0_pb_cm2"), rel=2e-3)


def test_yield_check_number_and_ratio_to_bremsstrahlung():
    check = published.entry("physics.annihilation.check_yield_per_eot")
    got = y.signal_yield([check["mass_GeV"]], check["eps"], target="pb")
    assert float(got["annihilation"][0]) == pytest.approx(check["value"], rel=0.15)
    assert 15 < float(got["annihilation"][0] / got["brem"][0]) < 25  # "~20x the bremsstrahlung yield"


def test_narrow_width_yield_is_the_formula_with_the_shower_positrons():
    """N = (Z N_A X0/A) T_+(E_R) 2 pi^2 alpha eps^2 / m_e (hbar c)^2, written out independently."""
    m, eps = np.array([0.23, 0.26, 0.29]), 1e-4
    t_plus = shower.track_length_table().smoothed(ann.resonance_energy(m), 100.0, "e+")
    hbarc2_cm2 = published.get("physics.gev2_to_pb") * 1e-36
    n_e = published.get("physics.pb_Z") * published.get("physics.avogadro") * published.get(
        "physics.pb_X0_g_cm2") / published.get("physics.pb_A")
    expected = n_e * t_plus * 2 * math.pi**2 * ALPHA * eps**2 / ME * hbarc2_cm2
    np.testing.assert_allclose(y.annihilation_yield_per_eot_grid(m, eps, target="pb"), expected, rtol=1e-10)


@pytest.mark.parametrize("beam", ["e-", "e+"])
def test_narrow_width_limit_of_the_breit_wigner_yield(beam):
    """Numerical integration of sigma_BW(E) T_+(E) over the shower vs the narrow-width yield (~1%)."""
    masses = np.array([0.235, 0.26, 0.3])
    model = models.get("dark_photon", eps=1e-4, alpha_d=1e-3)
    narrow = y.model_signal_yield(model, masses, mechanisms=["annihilation"], target="pb", beam=beam)
    bw = y.model_signal_yield(model, masses, mechanisms=["annihilation"], target="pb", beam=beam,
                              lineshape="breit-wigner")
    np.testing.assert_allclose(bw["annihilation"], narrow["annihilation"], rtol=0.01)
    # and an independent adaptive quadrature for one mass
    tab = shower.track_length_table(beam)
    m = 0.26
    gam = float(model.total_width(m))
    e_r = float(ann.resonance_energy(m))
    def f(e: float) -> float:
        return float(ann.sigma_breit_wigner(e, m, 1e-4, alpha_d=1e-3, m_chi=m / 3, total_width=gam)
                     * tab.smoothed(e, 100.0, "e+"))

    half = m * gam / (2 * ME)
    # substitution E = E_R + half tan(theta) flattens the resonance; Simpson on a fine theta grid
    theta = np.linspace(math.atan((50.0 - e_r) / half), math.atan((100.0 - e_r) / half), 4001)
    e = e_r + half * np.tan(theta)
    quad = integrate.simpson(np.array([f(v) for v in e]) * half / np.cos(theta) ** 2, x=theta)
    assert quad * y.atoms_per_x0_cm2() * 1e-36 == pytest.approx(float(narrow["annihilation"][1]), rel=0.01)


def test_wide_resonance_differs_from_narrow_by_the_t_plus_slope():
    """alpha_D = 0.5 makes the line ~20 GeV wide: the BW average of a falling T_+ is not T_+(E_R)."""
    model = models.get("dark_photon", eps=1e-4, alpha_d=0.5)
    narrow = y.model_signal_yield(model, [0.26], mechanisms=["annihilation"])["annihilation"]
    wide = y.model_signal_yield(model, [0.26], mechanisms=["annihilation"], lineshape="breit-wigner")
    assert 0.5 < float(wide["annihilation"][0] / narrow[0]) < 2.0
    assert abs(float(wide["annihilation"][0] / narrow[0]) - 1) > 0.01


def test_yield_is_exactly_proportional_to_eps_squared():
    m = np.linspace(0.23, 0.31, 5)
    a = y.annihilation_yield_per_eot_grid(m, 1e-4)
    b = y.annihilation_yield_per_eot_grid(m, 3e-5)
    np.testing.assert_allclose(a / b, (1e-4 / 3e-5) ** 2, rtol=1e-12)
    assert np.all(y.annihilation_yield_per_eot_grid(m, 0.0) == 0.0)
    np.testing.assert_allclose(y.annihilation_yield_per_eot_grid(m, 1e-4, br_inv=0.25), 0.25 * a, rtol=1e-12)


def test_line_fraction_in_box_is_the_gaussian_cdf():
    e0, edge, a = 100.0, 50.0, 0.1
    e_r = np.array([45.0, 49.5, 50.0, 50.5, 55.0])
    e_ecal = e0 - e_r
    expected = stats.norm.cdf((edge - e_ecal) / (a * np.sqrt(e_ecal)))
    np.testing.assert_allclose(ann.line_fraction_in_box(e_r, e0, edge, stochastic=a), expected, rtol=1e-12)
    assert float(ann.line_fraction_in_box(50.0, e0, edge)) == 0.5
    np.testing.assert_array_equal(ann.line_fraction_in_box(e_r, e0, edge, stochastic=0.0), [0, 0, 0.5, 1, 1])


def test_smeared_line_at_the_box_edge_counts_half():
    m_edge = ann.mass_at_resonance(50.0)
    sharp = y.annihilation_yield_per_eot_grid([1.0005 * m_edge], 1e-4)
    smeared = y.annihilation_yield_per_eot_grid([m_edge], 1e-4, ecal_stochastic=0.1)
    assert float(smeared[0]) == pytest.approx(0.5 * float(sharp[0]), rel=0.02)
    inside = float(ann.mass_at_resonance(60.0))
    assert y.annihilation_yield_per_eot_grid([inside], 1e-4, ecal_stochastic=0.1)[0] == pytest.approx(
        y.annihilation_yield_per_eot_grid([inside], 1e-4)[0], rel=1e-6)


def test_doppler_broadening_widens_the_window():
    free = y.annihilation_yield_per_eot_grid([0.26], 1e-4)
    assert y.annihilation_yield_per_eot_grid([0.26], 1e-4, doppler=ann.DopplerModel.free())[0] == free[0]
    # a narrow momentum spread barely changes a mass inside the window ...
    assert y.annihilation_yield_per_eot_grid([0.26], 1e-4, doppler=ann.DopplerModel.gaussian(0.01))[0] == (
        pytest.approx(free[0], rel=0.02))
    # ... but opens masses just below the free-electron window (electrons moving towards the positron)
    lo, _ = ann.mass_window()
    assert y.annihilation_yield_per_eot_grid([0.98 * lo], 1e-4)[0] == 0.0
    assert y.annihilation_yield_per_eot_grid([0.98 * lo], 1e-4, doppler=ann.DopplerModel.gaussian(0.1))[0] > 0


def test_positron_beam_annihilates_its_primary():
    """brief_extensions 4: with an e+ beam T_+ includes the primary, so the reach is much larger."""
    m = np.array([0.24, 0.27, 0.31])
    e_minus = y.annihilation_yield_per_eot_grid(m, 1e-4, beam="e-")
    e_plus = y.annihilation_yield_per_eot_grid(m, 1e-4, beam="e+")
    assert np.all(e_plus > 3 * e_minus)
    # the ratio is T_+(e+ beam)/T_+(e- beam) at E_R (here from 4 GeV bins of the tables, not the smoothing)
    u = ann.resonance_energy(m[:2]) / 100.0
    t = [shower.track_length_table(b) for b in ("e+", "e-")]
    t4 = [tab.cumulative_above(u - 0.02, "e+") - tab.cumulative_above(u + 0.02, "e+") for tab in t]
    np.testing.assert_allclose(e_plus[:2] / e_minus[:2], t4[0] / t4[1], rtol=0.10)
    # the un-radiated primary at E0: with a beam-energy spread it is a peak around sqrt(2 m_e E0)
    top = float(ann.mass_at_resonance(100.0))
    spread = y.annihilation_yield_per_eot_grid([top], 1e-4, beam="e+", beam_spread=0.01)
    tab = shower.track_length_table("e+")
    peak = tab.spike / (0.01 * 100.0 * math.sqrt(2 * math.pi))  # X0/GeV at the centre of the Gaussian
    per_t = float(y.annihilation_yield_per_eot_grid([0.25], 1e-4, beam="e+")[0]) / float(
        tab.smoothed(ann.resonance_energy(0.25), 100.0, "e+"))
    assert float(spread[0]) > per_t * peak * 0.5  # the spike dominates at the top of the window


def test_positron_beam_bremsstrahlung_equals_electron_beam():
    m = [0.01, 0.1]
    a = y.signal_yield(m, 1e-4, mechanisms=["brem"], beam="e-")["brem"]
    b = y.signal_yield(m, 1e-4, mechanisms=["brem"], beam="e+")["brem"]
    np.testing.assert_allclose(b, a, rtol=0.02)  # charge-symmetric cascade, independent showers
    np.testing.assert_allclose(a, y.yield_per_eot_grid(m, 1e-4), rtol=1e-12)


def test_combined_yields_by_mechanism():
    m = np.array([0.01, 0.25, 0.5])
    res = y.signal_yield(m, 1e-4)
    assert res.mechanisms == ("brem", "annihilation")
    np.testing.assert_allclose(res.total, res["brem"] + res["annihilation"])
    assert res["annihilation"][0] == 0 and res["annihilation"][2] == 0 and res["annihilation"][1] > 0
    with pytest.raises(KeyError):
        res["primakoff"]


def test_model_yield_carries_the_invisible_branching_ratio():
    """Small alpha_D: A' -> e+e- competes, BR_inv < 1 scales both mechanisms."""
    model = models.get("dark_photon", eps=1e-3, alpha_d=1e-8)
    br = float(model.br_invisible(0.25))
    assert 0.05 < br < 0.95
    res = y.model_signal_yield(model, [0.25])
    ref = y.signal_yield([0.25], 1e-3)
    np.testing.assert_allclose(res.total, br * ref.total, rtol=1e-12)


@pytest.mark.parametrize("call, field", [
    (lambda: y.annihilation_yield_per_eot_grid([0.25], 1e-4, beam="mu+"), "beam"),
    (lambda: y.annihilation_yield_per_eot_grid([0.25], -1e-4), "eps"),
    (lambda: y.annihilation_yield_per_eot_grid([-0.25], 1e-4), "mass"),
    (lambda: y.annihilation_yield_per_eot_grid([0.25], 1e-4, br_inv=1.5), "br_inv"),
    (lambda: y.annihilation_yield_per_eot_grid([0.25], 1e-4, emiss_min=150.0), "emiss_min"),
    (lambda: y.signal_yield([0.25], 1e-4, mechanisms=["primakoff"]), "mechanisms"),
    (lambda: y.model_signal_yield(models.get("dark_photon"), [0.25], lineshape="lorentz"), "lineshape"),
    (lambda: ann.sigma_breit_wigner(60.0, 0.25, 1e-4, alpha_d=0.1, m_chi=0.08, total_width=1e-3, dm="x"),
     "dm"),
    (lambda: ann.DopplerModel((0.1,), (1.0, 2.0)), "doppler"),
])
def test_bad_input(call, field):
    with pytest.raises(InputError) as exc:
        call()
    assert exc.value.field == field


def test_hundred_masses_both_mechanisms_are_fast():
    masses = np.geomspace(1e-3, 1.0, 100)
    y.signal_yield(masses, 1e-4)  # warm caches
    t0 = time.perf_counter()
    y.signal_yield(masses, 1e-4)
    assert time.perf_counter() - t0 < 10.0  # target < 2 s on a free core; generous on a shared machine
