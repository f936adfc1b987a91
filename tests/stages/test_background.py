"""Side-band-C fit and extrapolation on spectra with a known exponential truth."""

import math

import numpy as np
import pytest

from na64ana import background as bg

EDGES = np.arange(0.0, 101.0, 2.0)


def _truth(p2=0.4, n_box=0.05):
    p1 = math.log(n_box * p2 / (math.exp(50 * p2) - 1))
    mu = np.exp(p1) * (np.exp(p2 * EDGES[1:]) - np.exp(p2 * EDGES[:-1])) / p2
    mu[EDGES[1:] > 80] = 0.0
    return p1, mu


def test_asimov_fit_recovers_slope_and_box_content():
    p1, mu = _truth()
    r = bg.fit_sideband(mu, EDGES)  # Asimov data: the expected counts
    assert r.params[1] == pytest.approx(0.4, rel=1e-4)
    assert r.integral(0.0, 50.0) == pytest.approx(0.05, rel=1e-3)
    assert r.fit_range == (50.0, 80.0)


def test_poisson_fit_pull_and_coverage_of_stat_unc():
    _, mu = _truth()
    rng = np.random.default_rng(3)
    pulls = []
    for _ in range(30):
        r = bg.fit_sideband(rng.poisson(mu), EDGES)
        pulls.append((r.params[1] - 0.4) / math.sqrt(r.cov[1, 1]))
    assert abs(np.mean(pulls)) < 0.6 and 0.6 < np.std(pulls) < 1.5


def test_extrapolation_has_stat_and_syst():
    _, mu = _truth()
    c = np.random.default_rng(1).poisson(mu)
    est = bg.estimate_upstream(c, EDGES, threshold_variations={"2GeV": (c * 1.1, EDGES)})
    assert est.value == pytest.approx(0.05, rel=0.5)
    assert est.stat > 0 and est.syst > 0
    assert set(est.syst_parts) == {"shape", "fit_range", "hcal_threshold"}
    assert est.syst_parts["hcal_threshold"] == pytest.approx(0.1 * est.value, rel=0.05)  # scales linearly


def test_band_contains_curve_and_hist_input():
    hist = pytest.importorskip("hist")
    _, mu = _truth()
    h = hist.Hist(hist.axis.Variable(EDGES, name="ecal"))
    h[...] = mu
    r = bg.fit_sideband(h)
    e = np.array([55.0, 70.0])
    lo, hi = r.band(e)
    assert np.all(lo < r.density(e)) and np.all(r.density(e) < hi)


def test_validation_region_reports_quality():
    _, mu = _truth(p2=0.05, n_box=1e4)
    edges_val = EDGES
    c = np.random.default_rng(2).poisson(mu)
    side = bg.fit_sideband(c, edges_val)
    v = bg.validate_shape(c, edges_val, sideband_fit=side, fit_range=(2.0, 80.0))
    assert 0.3 < v["chi2_ndf"] < 3 and abs(v["slope_diff_sigma"]) < 4


def test_run_table_total_and_published_components():
    _, mu = _truth()
    est = bg.estimate_upstream(mu, EDGES)
    comps = bg.published_components("prd2018", 1.0)
    assert comps["dimuon"].value == pytest.approx(0.005) and "no MC" in comps["dimuon"].source
    row = bg.run_table("I", est, components=comps)
    # S001 Table IV; the three '< 0.001' limits count as 0.001 +- 0.001 each (issue 14 item 4)
    counted = est.value + 0.005 + 0.02 + 0.008 + 3 * 0.001
    assert row.total.value == pytest.approx(counted)
    assert comps["punch_through"].limit and comps["punch_through"].unc == pytest.approx(0.001)
    assert row.fit.model == "exp" and row.fit.p2_unc is not None


def test_bad_model_and_empty_range():
    _, mu = _truth()
    with pytest.raises(ValueError):
        bg.fit_sideband(mu, EDGES, model="spline")
    with pytest.raises(ValueError):
        bg.fit_sideband(np.zeros_like(mu), EDGES)
