"""ALP physics (brief_extensions 5): the Primakoff cross section, the T_gamma fold, the decay length and the
two signal regions' decay probabilities in their limits -- all against formulas written out here."""

from __future__ import annotations

import math
import tomllib
from importlib import resources

import numpy as np
import pytest

from na64ana import published
from na64ana.errors import InputError
from na64ana.physics import alp, models, shower
from na64ana.physics.production import primakoff

HBARC_GEV_CM = 1.973269804e-14  # CODATA hbar c, typed here independently of published.toml
ALPHA = 7.2973525693e-3
GEV2_TO_PB = 3.893793721e8


def _geometry_numbers() -> dict[str, float]:
    raw = tomllib.loads(resources.files("na64ana").joinpath("data/alp_geometry.toml").read_text())
    return {k: float(v["value"]) for k, v in raw["geometry"].items()}


def test_primakoff_cross_section_is_341_pb_for_lead_at_small_mass():
    z, a, me = 82.0, 207.2, 0.51099895e-3
    ta = (me / (111 * z ** (-1 / 3))) ** 2
    td = 0.164 * a ** (-2 / 3)
    g = 1e-4
    expected = 0.125 * g**2 * ALPHA * z**2 * (math.log(td / ta) - 2) * GEV2_TO_PB
    assert expected == pytest.approx(341, abs=1)  # brief_extensions 5 [DERIVED]
    assert float(primakoff.sigma(50.0, 1e-5, g)) == pytest.approx(expected, rel=1e-6)
    # t_min grows with m_a and falls with E: the cross section follows
    e, m = 20.0, 0.05
    tmin = m**4 / (4 * e**2)
    full = 0.125 * g**2 * ALPHA * z**2 * (math.log((td + tmin) / (ta + tmin)) - 2) * GEV2_TO_PB
    assert float(primakoff.sigma(e, m, g)) == pytest.approx(full, rel=1e-9)
    assert float(primakoff.sigma(e, m, 2 * g)) == pytest.approx(4 * full, rel=1e-12)


def test_primakoff_threshold_and_bad_inputs():
    assert float(primakoff.sigma(0.099, 0.05, 1e-4)) == 0.0
    assert float(primakoff.sigma(0.101, 0.05, 1e-4)) > 0.0
    with pytest.raises(InputError) as exc:
        primakoff.sigma(10.0, -1.0)
    assert exc.value.field == "mass"


def test_alp_width_and_decay_length():
    g, m, e = 3e-4, 0.02, 40.0
    a = models.get("alp_photon", g_agg=g)
    gamma = g**2 * m**3 / (64 * math.pi)
    assert float(a.width(m)) == pytest.approx(gamma, rel=1e-12)
    lam = math.sqrt(e**2 - m**2) / m * HBARC_GEV_CM / gamma
    assert float(a.decay_length_cm(e, m)) == pytest.approx(lam, rel=1e-6)
    assert float(a.br_invisible(m)) == 0.0 and a.limited_coupling == "g_agg"


def test_yield_is_the_photon_track_length_fold():
    m = 0.01
    ay = alp.AlpYield(m)
    tab = shower.track_length_table()
    e0 = 100.0
    # independent fold: T_gamma read bin by bin (ShowerTable.at), times sigma, times the bin width
    edges = tab.edges * e0
    centres = 0.5 * (edges[:-1] + edges[1:])
    above = centres > 50.0
    t_gamma = shower.differential_track_length(centres[above], e0, particle="gamma")
    pub = published.get
    n_x0 = pub("physics.avogadro") * pub("physics.pb_X0_g_cm2") / pub("physics.pb_A")
    fold = n_x0 * published.get("physics.ecal_pb_fraction_X0") * 1e-36 * np.sum(
        t_gamma * np.diff(edges)[above] * primakoff.sigma(centres[above], m, 1.0))
    assert ay.produced("beyond") == pytest.approx(fold, rel=2e-3)
    # and the order of magnitude from Rossi approximation A (0.572 E0/k^2) for the E > 15 GeV region
    ks = np.linspace(15.0, 100.0, 2001)
    rossi = 0.572 * e0 / ks**2 * primakoff.sigma(ks, m, 1.0)
    approx = n_x0 * published.get("physics.ecal_pb_fraction_X0") * 1e-36 * np.trapezoid(rossi, ks)
    assert ay.produced("hcal") == pytest.approx(approx, rel=0.15)


def test_region_decay_windows_follow_the_geometry_file():
    g = _geometry_numbers()
    geo = alp.load_geometry()
    hcal1_end = g["ecal_length_m"] + g["ecal_to_hcal1_m"] + g["hcal_module_length_m"]
    hcal4_end = hcal1_end + 3 * (g["hcal_gap_m"] + g["hcal_module_length_m"])
    la, lb = geo.decay_window_cm("hcal")
    assert la == pytest.approx(100 * (hcal1_end - g["production_depth_m"]))
    assert lb == pytest.approx(100 * (hcal4_end - g["production_depth_m"]))
    assert geo.decay_window_cm("beyond") == (pytest.approx(lb), math.inf)
    assert alp.region_energy_min("hcal") == 15.0 and alp.region_energy_min("beyond") == 50.0


@pytest.mark.parametrize("m", [0.005, 0.03])
def test_acceptance_limits_long_and_short_lifetime(m):
    geo = alp.load_geometry()
    la, lb = geo.decay_window_cm("hcal")
    e = np.array([20.0, 60.0, 95.0])

    def lam(g: float) -> np.ndarray:
        gamma = g**2 * m**3 / (64 * math.pi)
        return np.sqrt(e**2 - m**2) / m * HBARC_GEV_CM / gamma

    g_long = 1e-9  # decay length >> detector
    p_h = alp.decay_probability(e, m, g_long, "hcal", geo)
    p_b = alp.decay_probability(e, m, g_long, "beyond", geo)
    np.testing.assert_allclose(p_h, (lb - la) / lam(g_long), rtol=1e-5)
    np.testing.assert_allclose(p_b, 1 - lb / lam(g_long), rtol=1e-12)  # -> 1
    # short lifetime: P_beyond = exp(-L/l) exactly, P_hcal -> exp(-L_a/l) (the far edge negligible), -> 0
    g_mid = math.sqrt(64 * math.pi * HBARC_GEV_CM * 60.0 / (m**4 * 100.0))  # l(60 GeV) ~ 1 m
    np.testing.assert_allclose(alp.decay_probability(e, m, g_mid, "beyond", geo), np.exp(-lb / lam(g_mid)),
                               rtol=1e-7)
    np.testing.assert_allclose(alp.decay_probability(e, m, g_mid, "hcal", geo),
                               np.exp(-la / lam(g_mid)) - np.exp(-lb / lam(g_mid)), rtol=1e-7)
    assert np.all(alp.decay_probability(e, m, 1e3 * g_mid, "hcal", geo) == 0.0)


def test_region_yields_scale_as_expected_at_small_coupling():
    ay = alp.AlpYield(0.02)
    g = np.array([1e-8, 2e-8])
    per = ay.per_region(g)
    assert per["beyond"][0] == pytest.approx(g[0] ** 2 * ay.produced("beyond"), rel=1e-6)  # P -> 1
    assert per["hcal"][1] / per["hcal"][0] == pytest.approx(16.0, rel=1e-4)  # g^2 yield x g^2 decay
    big = ay.per_region([1.0])
    assert big["hcal"][0] == 0.0 and big["beyond"][0] == 0.0  # everything decays in the ECAL


def test_mass_no_photon_can_make_and_bad_geometry(tmp_path):
    with pytest.raises(InputError) as exc:
        alp.AlpYield(50.0)
    assert exc.value.field == "mass" and "no photon" in exc.value.message
    text = resources.files("na64ana").joinpath("data/alp_geometry.toml").read_text()
    bad = tmp_path / "geo.toml"
    bad.write_text(text.replace('ecal_length_m = { value = 0.49,', 'ecal_length_m = { value = -0.49,'))
    with pytest.raises(InputError) as exc:
        alp.load_geometry(bad)
    assert exc.value.field == "geometry.ecal_length_m" and exc.value.file == str(bad)
    with pytest.raises(InputError) as exc:
        alp.decay_probability(50.0, 0.01, 1e-4, "ecal")
    assert exc.value.field == "region"
