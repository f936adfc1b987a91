"""The small-count-correct CLs: analytic values and agreement with pyhf's toy calculator."""

import math

import numpy as np
import pytest
from scipy import stats

from na64ana.stats.cls import CountingModel, ExactCLs, enumerate_outcomes, limits, poisson_upper_limit


def test_n0_b0_no_syst_is_the_textbook_n90():
    m = CountingModel.build([1.0], [0.0], [0])
    r90, r95 = limits(m, 0.90), limits(m, 0.95)
    assert r90.mu_obs == pytest.approx(-math.log(0.10), rel=1e-5)  # 2.303
    assert r95.mu_obs == pytest.approx(-math.log(0.05), rel=1e-5)  # 2.996
    assert r95.mu_obs > r90.mu_obs * 1.2


def test_n0_limit_independent_of_background_without_syst():
    # CLs = exp(-s) for n = 0 whatever b is
    for b in (0.1, 0.5, 2.0):
        assert limits(CountingModel.build([1.0], [b], [0]), 0.9, expected=False).mu_obs == pytest.approx(
            2.302585, rel=1e-5)


def test_one_bin_with_events_matches_classical_cls():
    n, b = 2, 1.0
    r = limits(CountingModel.build([1.0], [b], [n]), 0.9, expected=False)
    # classical: CLs = P(<=n | s+b) / P(<=n | b) = 0.1
    assert stats.poisson.cdf(n, r.mu_obs + b) / stats.poisson.cdf(n, b) == pytest.approx(0.1, rel=1e-4)
    assert r.mu_obs == pytest.approx(poisson_upper_limit(n, b, 0.9), rel=1e-5)


def test_expected_band_is_quantile_of_discrete_limit_distribution():
    b = 1.0
    r = limits(CountingModel.build([1.0], [b], [0]), 0.9)
    # outcomes n = 0, 1, 2, ... under b-only have P = Pois(n; 1); the limit for n is the classical one
    cdf = stats.poisson.cdf(np.arange(10), b)
    for name, p in {"m2": 0.02275, "m1": 0.1587, "median": 0.5, "p1": 0.8413, "p2": 0.97725}.items():
        n_q = int(np.searchsorted(cdf, p))
        assert r.mu_exp[name] == pytest.approx(poisson_upper_limit(n_q, b, 0.9), rel=1e-4), name


def test_scaled_signal_scales_the_limit():
    a = limits(CountingModel.build([1.0, 1.0], [0.2, 0.1], [0, 0], signal_rel=[0.1, 0.1]), 0.9,
               expected=False)
    b = limits(CountingModel.build([4.0, 4.0], [0.2, 0.1], [0, 0], signal_rel=[0.1, 0.1]), 0.9,
               expected=False)
    assert a.mu_obs == pytest.approx(4 * b.mu_obs, rel=1e-4)


def test_signal_systematics_weaken_the_n0_limit_slightly():
    # hybrid: CLs(n=0) = E[exp(-s k)] with log-normal k -> a bit above 2.303
    plain = limits(CountingModel.build([1.0], [0.1], [0]), 0.9, expected=False).mu_obs
    syst = limits(CountingModel.build([1.0], [0.1], [0], shared_rel=[0.1], signal_rel=[0.09]), 0.9,
                  expected=False).mu_obs
    assert plain < syst < plain * 1.05


def test_enumeration_counts():
    out = enumerate_outcomes(3, 4)
    assert out.shape == (math.comb(4 + 3, 3), 3)
    assert out.sum(axis=1).max() == 4 and len({tuple(r) for r in out}) == out.shape[0]


def test_bad_model_refused():
    with pytest.raises(ValueError):
        CountingModel.build([0.0], [1.0], [0])
    with pytest.raises(ValueError):
        CountingModel.build([1.0], [1.0], [1.5])


def _pyhf_tails(spec, mu, ntoys, seed):
    import pyhf

    from na64ana.stats.model import pyhf_model

    pyhf.set_backend("numpy")
    model, data = pyhf_model(spec)
    np.random.seed(seed)  # noqa: NPY002 -- pyhf's numpy backend samples from the global state
    cls, (clsb, clb) = pyhf.infer.hypotest(mu, data, model, test_stat="qtilde", calctype="toybased",
                                           ntoys=ntoys, return_tail_probs=True, track_progress=False)
    return float(cls), float(clsb), float(clb)


@pytest.mark.slow
@pytest.mark.parametrize("observed", [[0, 0], [0, 1]])
def test_exact_equals_pyhf_toys(observed):
    """Exact hybrid CLs vs pyhf ToyCalculator (qtilde) on a 2-run model with log-normal systematics."""
    from na64ana.stats.model import counting_model_from_spec, workspace_spec

    chs = [{"name": "run1", "signal": [1.2], "background": [0.3], "observed": [observed[0]],
            "signal_sys": {"eff_run1": 0.1}, "background_sys": {"bkg_run1": 0.4}},
           {"name": "run2", "signal": [0.8], "background": [0.5], "observed": [observed[1]],
            "signal_sys": {"eff_run2": 0.15}, "background_sys": {"bkg_run2": 0.3}}]
    spec = workspace_spec(chs, shared={"xsec": 0.1})
    exact = ExactCLs(counting_model_from_spec(spec))
    ntoys, mu = 400, 1.0
    cls_t, clsb_t, clb_t = _pyhf_tails(spec, mu, ntoys, seed=11)
    clsb_e, clb_e, cls_e = (float(x[0]) for x in exact.tail_probs(mu))
    # binomial toy precision of the ratio
    rel = math.sqrt((1 - clsb_t) / (ntoys * clsb_t) + (1 - clb_t) / (ntoys * clb_t))
    assert abs(cls_e - cls_t) < 3 * rel * cls_t + 0.01
    # The tails alone differ (pyhf randomises the auxiliary data, which spreads the outcomes tied with the
    # observation around q_obs; both tails shrink by the same factor), so only their ratio is compared.
    assert 0 < clsb_e <= clb_e <= 1
