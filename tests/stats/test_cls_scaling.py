"""How the exact CLs scales (#15, #19): the on-demand free fits and the matrix-product Newton steps give
the same numbers as fitting everything the plain way; large counts fall back to seeded toys and say so;
the limits stage hands its exact limit to the toy cross-check, which still fails on a wrong one."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from na64ana.stats import cls
from na64ana.stats.crosscheck import toys_crosscheck
from na64ana.stats.model import counting_model_from_spec, workspace_spec


def _three_runs(observed=(0, 0, 0)) -> cls.CountingModel:
    """The prl2019 shape: three runs, ~0.5 background events in total."""
    return cls.CountingModel.build([0.27, 0.33, 1.70], [0.08, 0.10, 0.35], list(observed), shared_rel=[0.1],
                                   signal_rel=[[0.13, 0.02], [0.17, 0.02], [0.17, 0.02]],
                                   background_rel=[0.32] * 3)


@pytest.mark.parametrize("observed", [(0, 0, 0), (1, 0, 2)])
def test_fits_on_demand_equal_fitting_every_outcome_first(observed):
    model = _three_runs(observed)
    lazy = cls.ExactCLs(model)
    eager = cls.ExactCLs(model)
    eager._profiles(np.arange(eager.outcomes.shape[0]))  # every outcome fitted up front (as before)
    assert lazy._fitted.sum() == 0 and eager._fitted.all()
    for mu in (0.3, 1.0, 2.5):
        assert lazy.cls(mu)[0] == pytest.approx(eager.cls(mu)[0], rel=1e-12)
    assert lazy._fitted.sum() < eager._fitted.size  # outcomes without probability were never fitted
    # the grid scan (expected band: its fits start from each outcome's free fit) agrees too
    a, b = lazy.limits(0.9), eager.limits(0.9)
    assert a.mu_obs == pytest.approx(b.mu_obs, rel=1e-9)
    assert a.mu_exp == pytest.approx(b.mu_exp, rel=1e-9)


def test_matrix_product_newton_step_equals_the_general_one():
    """The symmetric-prior shortcut (2-D products with per-bin outer products) against the general
    (rows, bins, P) path of asymmetric priors, run on the same symmetric design."""
    design = cls._Design.of(_three_runs())
    general = dataclasses.replace(design, sym=False)
    outcomes = cls.enumerate_outcomes(3, 12)
    start = np.zeros((outcomes.shape[0], design.npar))
    for mu in (np.zeros(1), np.asarray(1.7)):
        a = cls._fit(design, outcomes, mu, start)
        b = cls._fit(general, outcomes, mu, start)
        np.testing.assert_allclose(a[0], b[0], rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(a[1], b[1], rtol=1e-7, atol=1e-8)


@pytest.mark.slow  # ~400k outcomes' probabilities, 2 x 600 toys
def test_large_counts_use_seeded_toys_and_say_so():
    """Three runs with ~20 events each: the enumeration (~400k outcomes) is too thin to give a band
    (it came out +inf above the median) and costs minutes per mass; toys give a finite, ordered band."""
    model = cls.CountingModel.build([1.0, 1.0, 1.0], [20.0, 20.0, 20.0], [20, 20, 20], shared_rel=[0.1],
                                    signal_rel=[0.1] * 3, background_rel=[0.15] * 3)
    exact = cls.ExactCLs(model)
    assert exact.large_counts and exact.band_rows_cover < cls.QUANTILES["p2"]
    res = cls.limits(model, 0.9, ntoys=600, seed=3)
    assert res.info["large_counts"] is True
    assert res.method.startswith("toys-hybrid(600, seed 3): large counts")
    band = [res.mu_exp[k] for k in ("m2", "m1", "median", "p1", "p2")]
    assert all(np.isfinite(band)) and band == sorted(band)
    again = cls.limits(model, 0.9, ntoys=600, seed=3)
    assert again.mu_obs == res.mu_obs  # seeded


def test_small_counts_stay_exact():
    res = cls.limits(_three_runs(), 0.9)
    assert res.method == "exact-hybrid" and "large_counts" not in res.info


@pytest.mark.slow  # pyhf toys (2 x 200)
def test_a_wrong_limit_handed_to_the_crosscheck_fails():
    """The limits stage passes (mu limit, CLs) instead of recomputing them: a wrong one must still fail."""
    pytest.importorskip("pyhf")
    spec = workspace_spec([{"name": "run_I", "signal": [2.3], "background": [0.3], "observed": [0],
                            "signal_sys": {"eff_run_I": 0.15}, "background_sys": {"bkg_run_I": 0.4}}],
                          shared={"xsec": 0.1})
    exact = cls.ExactCLs(counting_model_from_spec(spec)).limits(0.9, expected=False)
    good = toys_crosscheck([spec], cl=0.9, ntoys=200, seed=5,
                           exact_limits=[(exact.mu_obs, exact.cls_obs_at_limit)])
    bad = toys_crosscheck([spec], cl=0.9, ntoys=200, seed=5, exact_limits=[(0.4 * exact.mu_obs, 0.1)])
    assert good.passed and good.points[0].mu_limit == exact.mu_obs
    assert not bad.passed and bad.points[0].cls_toys > 0.2
    assert "minuit" in good.optimizer
