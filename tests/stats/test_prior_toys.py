"""The exact expected band against pyhf's toy calculator with toys from the prior predictive (issue #14,
item 3: "a test at kappa = 4 against pyhf toys on the exported workspace")."""

import numpy as np
import pytest

from na64ana.stats.cls import ExactCLs, asymmetric_kappa
from na64ana.stats.model import counting_model_from_spec, pyhf_model, workspace_spec
from na64ana.stats.prior_toys import PriorToyCalculator, band_check

ASYM = dict(zip(("hi", "lo"), asymmetric_kappa(0.1, 0.3, 0.09), strict=True))


def _one_run(b: float, bsys, n: int = 0) -> dict:
    return workspace_spec([{"name": "r", "signal": [1.0], "background": [b], "observed": [n],
                            "signal_sys": {"eff": 0.1}, "background_sys": {"bkg": bsys}}], shared={})


@pytest.mark.parametrize("case", ["kappa4", "asymmetric"])
def test_exact_band_equals_pyhf_prior_toys(case):
    """b = 0.5 at 300% (kappa = 4; +2 sigma ~ 14 signal events) and 0.1 +0.3 -0.09 (asymmetric)."""
    spec = _one_run(0.5, 3.0) if case == "kappa4" else _one_run(0.1, ASYM)
    check = band_check(spec, ntoys=3000, seed=11)
    assert check.passed, check.line()
    mus = [check.quantiles[k]["mu_exact"] for k in ("m2", "m1", "median", "p1", "p2")]
    assert all(np.isfinite(mus)) and mus == sorted(mus)
    if case == "kappa4":
        assert check.quantiles["p2"]["mu_exact"] > 10  # the wide prior's tail, which the band must cover


@pytest.mark.slow  # ~35 s: a few hundred distinct count vectors, two fits each, at five mu
def test_three_runs_sharing_one_background_nuisance():
    """The demo's structure: per-run background terms, one shape nuisance shared by the runs, the signal's
    cross-section term shared."""
    chs = [{"name": c, "signal": [s], "background": [b], "observed": [0], "signal_sys": {f"eff_{c}": 0.13},
            "background_sys": {"bkg_shape": ASYM, f"bkg_{c}": 0.3}}
           for c, s, b in (("I", 0.4, 0.09), ("II", 0.5, 0.15), ("III", 1.4, 0.36))]
    check = band_check(workspace_spec(chs, shared={"xsec": 0.1}), ntoys=3000, seed=5)
    assert check.passed, check.line()


def test_a_wrong_band_fails():
    """The frequentist (nominal-Poisson) +2 sigma of pyhf's own ToyCalculator, ~4 events, in place of the
    hybrid ~14; and a median 30% too strong."""
    spec = _one_run(0.5, 3.0)
    wrong = {k: float(v) for k, v in ExactCLs(counting_model_from_spec(spec)).limits(0.9).mu_exp.items()}
    wrong["p2"], wrong["median"] = 4.0, 0.7 * wrong["median"]
    check = band_check(spec, ntoys=3000, seed=11, mu_exp=wrong, keys=("m1", "median", "p2"))
    assert not check.passed
    assert {k for k, v in check.quantiles.items() if not v["passed"]} == {"p2", "median"}  # m1 untouched
    assert check.quantiles["p2"]["cls_toys"] > 0.3 and check.quantiles["median"]["cls_toys"] > 0.15


def test_toys_are_drawn_from_the_prior_and_fits_run_once_per_outcome():
    """Background-only toys: the mean count is b E[kappa^theta] (the prior predictive), not b; each
    distinct count is fitted once."""
    spec = _one_run(0.5, 3.0)
    model, data = pyhf_model(spec)
    calc = PriorToyCalculator(data, model, ntoys=20000, seed=3)
    counts = calc._sample_main(0.0)[:, 0]
    prior_mean = 0.5 * np.exp(np.log(4.0) ** 2 / 2)  # E[4^theta], theta ~ N(0, 1): 1.31
    assert counts.mean() == pytest.approx(prior_mean, rel=0.05)
    assert counts.mean() > 2 * 0.5  # a nominal-Poisson generator would give 0.5
    calc.ntoys = 2000
    sb, b = calc.distributions(2.3)
    assert calc.distinct_outcomes() < 60  # 4000 toys, a few dozen count values
    # the band's central values are pyhf's own expected_pvalues of these distributions
    band = calc.expected_pvalues(sb, b)[2]
    per_toy = [float(calc.pvalues(t, sb, b)[2]) for t in b.samples]
    assert float(band[2]) == pytest.approx(float(np.percentile(per_toy, 50.0)), abs=1e-12)


def test_a_modifier_without_a_unit_normal_prior_is_refused():
    spec = _one_run(0.5, 0.3)
    spec["channels"][0]["samples"][1]["modifiers"].append(
        {"name": "stat", "type": "staterror", "data": [0.1]})
    model, data = pyhf_model(spec)
    with pytest.raises(ValueError, match=r"prior toys: modifiers \['staterror'\]"):
        PriorToyCalculator(data, model, ntoys=10, seed=1)
