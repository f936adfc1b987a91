"""Issue 14 in the background stage: upper-limit components, the validation verdict, the asymmetric shape
uncertainty (see docs/inference.md section 5)."""

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from na64ana import background as bg
from na64ana import summary as summ
from na64ana.datasets import load as load_datasets
from na64ana.errors import InputError
from na64ana.records import BackgroundTable, EfficiencyRun, EfficiencyTable
from na64ana.simulation import rates
from na64ana.simulation.config import tune
from na64ana.stats import limits
from na64ana.stats.model import counting_model_from_spec

EDGES = np.arange(0.0, 101.0, 1.0)
REPO = Path(__file__).resolve().parents[2]


def _expected(p2, n_box, edges=EDGES, hi=80.0):
    p1 = math.log(n_box * p2 / (math.exp(50 * p2) - 1))
    mu = np.exp(p1) * (np.exp(p2 * edges[1:]) - np.exp(p2 * edges[:-1])) / p2
    mu[edges[1:] > hi] = 0.0
    return mu


def test_published_total_with_upper_limits_prl2019():
    """S003 Table I: 0.024 + 0.02 + 0.43 + 0.044 (<) + 0.01 (<) = 0.528, sqrt(0.007^2 + 0.01^2 + 0.16^2 +
    0.044^2 + 0.01^2) = 0.167 ('0.53 +- 0.17'): the limits count as value = limit +- 100%."""
    est = bg.estimate_upstream(_expected(0.3, 0.43), EDGES)
    est = dataclasses.replace(est, value=0.43, stat=0.16, syst=0.0, kappa_up=1.0, kappa_down=1.0)
    comps = bg.published_components("prl2019", 1.0)
    assert {n for n, c in comps.items() if c.limit} == {"target_interactions", "punch_through"}
    assert all("100% uncertainty" in c.source for c in comps.values() if c.limit)
    row = bg.run_table("all", est, components=comps)
    assert row.total.value == pytest.approx(0.528, abs=1e-12)
    quad = math.sqrt(0.007**2 + 0.01**2 + 0.16**2 + 0.044**2 + 0.01**2)
    assert row.total.unc == pytest.approx(quad, rel=1e-9)
    assert round(row.total.unc, 2) == 0.17


def test_simulator_generates_limits_at_the_limit():
    """Same convention in the simulator calibration: a limit component is generated at the limit."""
    assert tune("selection_model.limit_fraction") == 1.0
    assert rates._pub_value({"value": 0.044, "limit": True}) == pytest.approx(0.044)
    assert rates._pub_value({"value": 0.024, "unc": 0.007}) == pytest.approx(0.024)


# ---------------------------------------------------------------------------------------- 5.1 validation

def _validation_pair(seed, *, sideband_slope=0.30, validation_slope=0.30, n_side=3000, n_val=2000, floor=0.5):
    """Side band C (E_HCAL < 1 GeV) and validation region (E_HCAL > 10 GeV) of the same upstream mechanism:
    exponentials in 50-80 GeV with n events each, plus a flat contamination (events/GeV) in the validation
    region only."""
    rng = np.random.default_rng(seed)

    def expo(p2, n):
        w = np.exp(p2 * EDGES)
        mu = np.diff(w)
        mu[(EDGES[:-1] < 50) | (EDGES[1:] > 80)] = 0.0
        return mu / mu.sum() * n

    side = rng.poisson(expo(sideband_slope, n_side))
    flat = np.where((EDGES[:-1] >= 1) & (EDGES[1:] <= 80), floor * np.diff(EDGES), 0.0)
    val = rng.poisson(expo(validation_slope, n_val) + flat)
    return side, val


def test_validation_passes_when_the_mechanism_is_the_same():
    flags = []
    for seed in range(12):
        side, val = _validation_pair(seed)
        fit = bg.fit_sideband(side, EDGES)
        v = bg.validate_shape(val, EDGES, sideband_fit=fit, run="I")
        flags.append(v["flag"])
        assert v["fit_range"] == [50.0, 80.0] and v["contamination_events"] > 0
    assert flags.count("fail") <= 1 and flags.count("ok") >= 9, flags  # p < 0.01 or > 3 sigma: rare


def test_validation_fails_when_the_side_band_slope_is_shifted():
    """Side band C 0.1/GeV steeper than the validation region (another mechanism): the check fails."""
    for seed in range(5):
        side, val = _validation_pair(seed, sideband_slope=0.40)
        v = bg.validate_shape(val, EDGES, sideband_fit=bg.fit_sideband(side, EDGES), run="III")
        assert v["flag"] == "fail" and abs(v["slope_diff_sigma"]) > 3
        assert v["message"].startswith("validation region run III") and v["message"].endswith("FAILED")
        assert v["thresholds"] == {"fail_p_value": 0.01, "warn_p_value": 0.05, "fail_slope_sigma": 3.0,
                                   "warn_slope_sigma": 2.0}


def test_validation_fails_on_a_wrong_shape():
    """A validation region that is not exponential (two slopes) fails the goodness of fit."""
    side, _ = _validation_pair(1)
    _, a = _validation_pair(2, validation_slope=0.15, n_val=3000, floor=0.0)
    _, b = _validation_pair(3, validation_slope=0.6, n_val=3000, floor=0.0)
    v = bg.validate_shape(a + b, EDGES, sideband_fit=bg.fit_sideband(side, EDGES))
    assert v["p_value"] < 0.01 and v["flag"] == "fail"


def test_verdict_thresholds():
    assert bg.verdict(0.5, 0.5) == "ok"
    assert bg.verdict(0.03, 0.0) == "warn" and bg.verdict(0.5, -2.5) == "warn"
    assert bg.verdict(0.005, 0.0) == "fail" and bg.verdict(0.5, 3.5) == "fail"
    assert bg.verdict(None, None) == "ok"


def test_merged_gof_bins_expect_at_least_five():
    side, _ = _validation_pair(4)
    fit = bg.fit_sideband(side, EDGES)
    dev, ndf, nbins = bg.merged_gof(fit)
    assert nbins < fit.counts.size and ndf == nbins - 2 and dev > 0


# ----------------------------------------------------------------------------------- 5.2 shape nuisance

def test_shape_kappa_in_log_space_never_capped():
    k_up, k_down = bg.shape_kappa(1.0, [0.1, 0.25, 2.0])
    assert k_up == pytest.approx(2.0)  # the one alternative above
    assert k_down == pytest.approx(math.exp(-math.hypot(math.log(0.1), math.log(0.25))))  # ~0.035
    assert 0 < k_down < 0.1  # a factor 10 below is a log-normal, not a width reaching below zero
    assert bg.shape_kappa(1.0, []) == (1.0, 1.0)
    assert bg.shape_kappa(1.0, [float("nan"), 0.0, -1.0]) == (1.0, 1.0)  # failed fits are not used


def test_upstream_statistics_counted_once_and_fit_ranges_not_added():
    side, val = _validation_pair(5)
    est = bg.estimate_upstream(side, EDGES, validation=(val, EDGES))
    alts = est.alternatives
    assert alts["range_55-80"]["admitted"] is False and alts["range_50-75"]["admitted"] is False
    shape_vals = [a["value"] for k, a in alts.items() if k.startswith("shape_") and a.get("admitted")]
    assert (est.kappa_up, est.kappa_down) == pytest.approx(bg.shape_kappa(est.value, shape_vals))
    assert est.syst == pytest.approx(max(est.syst_up, est.syst_down))
    comps = bg.published_components("prl2019", 0.1)
    row = bg.run_table("I", est, components=comps)
    others = [bg.counted(c) for c in comps.values()]
    assert row.nuisances.uncorrelated == pytest.approx(math.sqrt(est.stat**2 + sum(u * u for _, u in others)))
    assert row.nuisances.shape_down == pytest.approx(est.value * (1 - est.kappa_down))
    assert row.total.unc == pytest.approx(math.hypot(row.nuisances.uncorrelated, est.syst))


def test_alternative_rejected_by_the_validation_region_is_left_out():
    """A validation region that is exactly exponential with many events rejects a power law whose
    curvature differs: the power law is recorded (admitted false), not used."""
    side, val = _validation_pair(6, n_side=20000, n_val=200000, floor=0.0)
    est = bg.estimate_upstream(side, EDGES, validation=(val, EDGES))
    power = est.alternatives["shape_power"]
    assert power["admitted"] is False and power["validation_p_value"] < 0.01
    admitted = [a["value"] for k, a in est.alternatives.items() if k.startswith("shape_") and a["admitted"]]
    assert (est.kappa_up, est.kappa_down) == pytest.approx(bg.shape_kappa(est.value, admitted))


# --------------------------------------------------- 5.2 the shape nuisance in the summary and the limits

def _summary(runs):
    base = {"name": "I", "eot": 1e11, "efficiency": 0.5, "background": 0.3, "observed": 0}
    return summ.validate({"runs": [{**base, **r} for r in runs], "masses_GeV": [0.01]})


def _bkg_mods(spec, i):
    return {m["name"]: m["data"] for m in spec["channels"][i]["samples"][1]["modifiers"]
            if m["type"] == "normsys"}


def test_shape_nuisance_is_one_parameter_shared_by_the_runs():
    s = _summary([{"name": "I", "background_unc": 0.03, "background_shape_unc_up": 0.01,
                   "background_shape_unc_down": 0.27},
                  {"name": "II", "background": 0.1, "background_unc": 0.02, "background_shape_unc_up": 0.0,
                   "background_shape_unc_down": 0.08}])
    spec = limits.mass_spec(s, 0.01, 2.3)
    m0, m1 = _bkg_mods(spec, 0), _bkg_mods(spec, 1)
    assert m0["bkg_shape"] == {"hi": pytest.approx(1 + 0.01 / 0.3), "lo": pytest.approx(1 - 0.27 / 0.3)}
    assert m1["bkg_shape"] == {"hi": pytest.approx(1.0), "lo": pytest.approx(0.2)}
    assert m0["bkg_run_I"]["hi"] == pytest.approx(1.1) and m1["bkg_run_II"]["hi"] == pytest.approx(1.2)
    model = counting_model_from_spec(spec)  # the exact CLs reads one shared background nuisance
    assert model is not None


def test_single_run_shape_merges_in_log_space():
    s = _summary([{"background_unc": 0.03, "background_shape_unc_up": 0.06,
                   "background_shape_unc_down": 0.2}])
    (name, k), = _bkg_mods(limits.mass_spec(s, 0.01, 2.3), 0).items()
    assert name == "bkg_run_I"
    assert k["hi"] == pytest.approx(math.exp(math.hypot(math.log(1.1), math.log(1.2))))
    assert k["lo"] == pytest.approx(math.exp(-math.hypot(math.log(1.1), math.log(1 / 3))))


def test_asymmetric_background_convention_and_refusals():
    s = _summary([{"background": 0.1, "background_unc_up": 0.3, "background_unc_down": 0.09}])
    assert s.runs[0].background_kappa() == {"hi": pytest.approx(4.0), "lo": pytest.approx(0.1)}
    with pytest.raises(InputError, match="background_unc_down"):
        _summary([{"background": 0.1, "background_unc_up": 0.3, "background_unc_down": 0.1}])
    with pytest.raises(InputError, match="background_shape_unc_down"):
        _summary([{"background_unc": 0.1, "background_shape_unc_up": 0.1, "background_shape_unc_down": 0.3}])
    with pytest.raises(InputError, match="background_shape_unc_up"):
        _summary([{"background_unc": 0.1, "background_shape_unc_up": 0.1}])
    assert _summary([{"background_unc": 0.9}]).runs[0].background_kappa() == pytest.approx(3.0)  # 300%


def test_summary_from_the_background_record_carries_the_nuisances():
    side, val = _validation_pair(7)
    est = bg.estimate_upstream(side, EDGES, validation=(val, EDGES))
    camp = load_datasets(REPO / "datasets.json").campaign("prl2019")
    rows = [bg.run_table(name, est, components=bg.published_components("prl2019", 0.3),
                         validation=bg.validate_shape(val, EDGES, sideband_fit=est.fit, run=name))
            for name in camp.runs]
    table = BackgroundTable(campaign="prl2019", blinded=True, runs=rows)
    eff = EfficiencyTable.model_construct(campaign="prl2019", runs={
        n: EfficiencyRun.model_construct(mass_GeV=[0.01, 1.0], efficiency=[0.5, 0.4]) for n in camp.runs})
    s = summ.compute(analysis="t", campaign=camp, background=table, efficiency=eff, observed=None,
                     masses_GeV=[0.01])
    for r, row in zip(s.runs, rows, strict=True):
        assert r.background == pytest.approx(row.total.value)
        assert r.background_unc == pytest.approx(row.nuisances.uncorrelated)
        assert r.background_shape_unc_down == pytest.approx(row.nuisances.shape_down)
        assert r.notes["background_validation"].startswith(f"validation region run {r.name}")


def test_validation_without_events_in_the_fit_range_is_not_checked_and_says_so():
    side, _ = _validation_pair(8)
    low = np.where(EDGES[:-1] < 40, 5.0, 0.0)  # events only below the box edge
    v = bg.validate_shape(low, EDGES, sideband_fit=bg.fit_sideband(side, EDGES), run="II")
    assert v["flag"] == "warn" and "not checked" in v["message"] and "run II" in v["message"]


def test_a_failed_validation_is_a_warning_or_with_strict_an_error(tiny_run, tiny_campaign, monkeypatch,
                                                                  caplog):
    """The background stage wiring: a run whose validation fails is logged as a warning and recorded;
    strict_validation makes it an error naming the run."""
    def failing(*args, **kwargs):
        return {"flag": "fail", "message": f"validation region run {kwargs.get('run')}: (test) FAILED"}

    monkeypatch.setattr(bg, "validate_shape", failing)
    table = bg.compute(tiny_run, tiny_campaign.datasets)
    checked = [r for r in table.runs if r.validation.flag is not None]
    assert checked, "the tiny campaign has events in the validation region"
    assert all(r.validation.flag == "fail" for r in checked)
    assert any("FAILED" in rec.getMessage() and rec.levelname == "WARNING" for rec in caplog.records)
    with pytest.raises(bg.ValidationFailed, match="FAILED"):
        bg.compute(tiny_run, tiny_campaign.datasets, strict_validation=True)
