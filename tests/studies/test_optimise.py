"""Box-edge optimisation: blinding of the side-band fits, signal vs cut, limits, and the CLI output format."""

from __future__ import annotations

import json
import math

import hist
import numpy as np
import pytest

from na64ana import workers
from na64ana.errors import InputError
from na64ana.presentation import results
from na64ana.records import EfficiencyTable, OptimisationRecord
from na64ana.stats import cls
from na64ana.stats.model import counting_model_from_spec
from na64ana.studies import optimise as opt

pytestmark = pytest.mark.filterwarnings("ignore")
P2 = 0.35


def _sideband(n_box: float = 0.05, garbage_below: float | None = None) -> hist.Hist:
    """Asimov side band C, dN/dE = exp(p1 + p2 E), n_box events in [0, 50); bins < 50 empty (blinded)."""
    h = hist.Hist(hist.axis.Regular(240, 0, 120, name="ecal"), storage=hist.storage.Weight())
    e = h.axes[0].edges
    p1 = math.log(n_box * P2 / (math.exp(50 * P2) - 1))
    mu = np.exp(p1) * (np.exp(P2 * e[1:]) - np.exp(P2 * e[:-1])) / P2
    mu[(e[:-1] < 50) | (e[1:] > 80)] = 0.0
    if garbage_below is not None:
        mu[e[1:] <= 50] = garbage_below  # would ruin any fit that used the blinded box
    h.view().value[:] = mu
    h.view().variance[:] = mu
    return h


def _truth(cut: float, n_box: float = 0.05) -> float:
    return n_box * (math.exp(P2 * cut) - 1) / (math.exp(50 * P2) - 1)


def _run(h, others=0.0):
    return opt.RunInputs("I", 1e10, h, 50.0, others, 0.0, 0.1)


@pytest.mark.parametrize("cut", [35.0, 50.0, 60.0])
def test_background_extrapolation_recovers_the_truth(cut):
    value, unc, info = opt.background_at_cut(_run(_sideband()), cut, fit_max=80.0)
    assert info["fit_range"][0] == max(cut, 50.0)
    assert abs(value - _truth(cut)) < 0.05 * _truth(cut)
    assert unc > 0


@pytest.mark.parametrize("cut", [30.0, 45.0])
def test_fit_never_reads_the_blinded_box(cut):
    clean = opt.background_at_cut(_run(_sideband()), cut, fit_max=80.0)[0]
    dirty = opt.background_at_cut(_run(_sideband(garbage_below=1e3)), cut, fit_max=80.0)[0]
    assert dirty == clean


def test_other_components_are_added():
    v0 = opt.background_at_cut(_run(_sideband()), 50.0, fit_max=80.0)[0]
    v1 = opt.background_at_cut(_run(_sideband(), others=0.03), 50.0, fit_max=80.0)[0]
    assert math.isclose(v1 - v0, 0.03, rel_tol=1e-9)


def test_signal_direct_below_coverage_and_physics_above():
    h = hist.Hist(hist.axis.Regular(240, 0, 120, name="ecal"), storage=hist.storage.Weight())
    h.fill(ecal=np.full(100, 20.25), weight=np.full(100, 1e-9))  # 1e-7 per EOT at E_ECAL = 20.25
    h.fill(ecal=np.full(100, 45.25), weight=np.full(100, 1e-9))
    calls = []

    def yield_fn(emiss_min):
        calls.append(emiss_min)
        return 1e-7 * (100.0 - emiss_min) / 25.0

    vals, src = opt.signal_per_eot(h, [10.0, 30.0, 50.0, 60.0], yield_fn=yield_fn, e0=100.0, box=50.0,
                                   coverage=57.0)
    assert vals[:3].tolist() == pytest.approx([0.0, 1e-7, 2e-7])
    eff_box = 2e-7 / yield_fn(50.0)
    assert vals[3] == pytest.approx(yield_fn(40.0) * eff_box)
    assert src == ["signal MC"] * 3 + ["physics x eff(box)"]


def test_no_background_limit_is_n90_and_scales_as_one_over_sqrt_signal():
    """b = 0, no systematics: the expected limit is 2.30 signal events, i.e. eps ~ 1/sqrt(S)."""
    res = opt.expected_limit([3.0, 1.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0], shared_rel=0.0, cl=0.9)
    n90 = cls.poisson_upper_limit(0, 0.0, 0.9)
    # signal events at the limit: mu x (total scaled signal = N_REF)
    assert res["mu"]["median"] * opt.N_REF == pytest.approx(n90, rel=2e-3)
    res2 = opt.expected_limit([6.0, 2.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0], shared_rel=0.0, cl=0.9)
    # eps_lim^2 ~ mu x scale: doubling the signal halves it
    assert res2["mu"]["median"] * res2["scale"] == pytest.approx(res["mu"]["median"] * res["scale"] / 2,
                                                                 rel=2e-3)


def test_gaussian_limits_agree_with_exact_cls_at_large_background():
    s, b = np.array([1.0]), np.array([25.0])
    exact = cls.limits(cls.CountingModel.build(s, b, [25]), 0.9).mu_exp["median"]
    gauss = opt.gaussian_limits(s, b, np.zeros(1), 0.9)["median"]
    assert gauss == pytest.approx(exact, rel=0.15)


def test_best_cut_prefers_the_loosest_of_equal_limits():
    assert opt.best_cut([40, 45, 50, 55], [2.0, 1.0, 1.0, 3.0]) == 50.0
    assert opt.best_cut([40, 45], [None, None]) is None


def test_an_efficiency_output_without_the_signal_mc_coverage_is_one_error(tmp_path):
    """The signal-MC coverage comes from efficiency.json (the study never imports the simulator)."""
    (tmp_path / "eff").mkdir()
    EfficiencyTable(campaign="prd2018", runs={}).dump(tmp_path / "eff" / "efficiency.json")
    with pytest.raises(InputError) as err:
        opt.load_inputs(tmp_path / "run", tmp_path / "eff")
    assert err.value.field == "signal_ea_min_fraction" and "efficiency.json" in str(err.value)
    assert "\n" not in str(err.value)


def test_expected_limits_of_one_model_are_computed_once(monkeypatch):
    """Every mass of a one-run scan is the same CLs model at a cut (signal normalised): one computation."""
    opt._EXPECTED_MU.clear()
    calls = []
    real = cls.limits
    monkeypatch.setattr(cls, "limits", lambda *a, **k: calls.append(1) or real(*a, **k))
    a = opt.expected_limit([3.0], [0.2], [0.05], [0.1], shared_rel=0.1, cl=0.9)
    b = opt.expected_limit([7.0], [0.2], [0.05], [0.1], shared_rel=0.1, cl=0.9)
    assert len(calls) == 1 and a["mu"] == b["mu"] and a["scale"] != b["scale"]


def test_expected_limits_prefetched_on_two_processes_equal_the_direct_ones(monkeypatch):
    """The scan's prefetch (forked pool) fills the cache with what expected_limit would compute itself."""
    opt._EXPECTED_MU.clear()
    models = [([3.0, 1.0], [0.2, 0.4], [0.05, 0.2]), ([1.0, 3.0], [0.2, 0.4], [0.05, 0.2]),
              ([2.0, 2.0], [0.9, 0.1], [0.5, 0.05])]
    specs = [opt._exact_spec(np.array(s), np.array(b), np.array(u), [0.1, 0.1], shared_rel=0.1)
             for s, b, u in models]
    monkeypatch.setenv(workers.ENV_WORKERS, "2")
    opt._prefetch_expected_mu(specs, 0.9)
    calls = []
    real = cls.limits
    monkeypatch.setattr(cls, "limits", lambda *a, **k: calls.append(1) or real(*a, **k))
    for (s, b, u), spec in zip(models, specs, strict=True):
        got = opt.expected_limit(s, b, u, [0.1, 0.1], shared_rel=0.1, cl=0.9)["mu"]
        direct = real(counting_model_from_spec(json.loads(spec)), 0.9, method="exact").mu_exp
        assert got == {k: float(v) for k, v in direct.items()}
    assert not calls  # every expected limit came from the prefetch


@pytest.fixture(scope="module")
def optimised(tmp_path_factory):
    """Run III of prd2018 at a tenth of its EOT + a small signal MC at one mass, through the CLI."""
    from na64ana.cli import main
    from na64ana.studies.closure import scaled_datasets

    root = tmp_path_factory.mktemp("opt")
    small = scaled_datasets("datasets.json", root / "datasets_tenth.json", 0.1)
    common = ["--datasets", str(small), "--campaign", "prd2018", "--runs", "III"]
    assert main(["simulate", *common, "--out", str(root / "sim"), "--seed", "5"]) == 0
    assert main(["run", "--datasets", str(root / "sim" / "datasets.json"), "--campaign", "prd2018",
                 "--out", str(root / "run")]) == 0
    assert main(["efficiency", *common, "--masses", "0.01", "--n-events", "4000", "--out", str(root / "eff"),
                 "--seed", "5"]) == 0
    assert main(["optimise", "--run-dir", str(root / "run"), "--efficiency-dir", str(root / "eff"),
                 "--out", str(root / "opt"), "--cuts", "40", "60", "5"]) == 0
    return root


@pytest.mark.slow  # `optimised` simulates prd2018 run III (a tenth of its EOT) and runs the chain
def test_cli_output_is_read_by_the_plotting_adapter(optimised):
    rec = json.loads((optimised / "opt" / "optimisation.json").read_text())
    assert rec["blinded"] is True and (optimised / "opt" / "provenance.json").exists()
    typed = OptimisationRecord.load(optimised / "opt")
    eff = EfficiencyTable.load(optimised / "eff")
    assert typed.signal_ea_min_fraction == eff.signal_ea_min_fraction is not None
    assert typed.signal_mc_coverage_GeV == pytest.approx(opt.coverage_GeV(
        float(eff.beam_energy_GeV or 0), float(eff.emiss_min_GeV or 0), eff.signal_ea_min_fraction))
    parsed = results.Results(optimised / "opt").optimisation()
    assert set(parsed) == {"0.01"}
    d = rec["optimisation"]["0.01"]
    assert parsed["0.01"]["cut"].tolist() == d["cut_GeV"] == [40.0, 45.0, 50.0, 55.0, 60.0]
    assert parsed["0.01"]["best"] == d["optimum_GeV"]
    assert d["eps_exp_at_box"] == d["eps_exp"][2]


@pytest.mark.slow  # the chain of `optimised`
def test_signal_and_background_grow_with_the_cut(optimised):
    d = json.loads((optimised / "opt" / "optimisation.json").read_text())["optimisation"]["0.01"]
    assert np.all(np.diff(d["signal_events"]) > 0)
    assert np.all(np.diff(d["background"]) > 0)
    assert d["signal_source"][-1] == "physics x eff(box)" and d["signal_source"][0] == "signal MC"


@pytest.mark.slow  # the chain of `optimised`
def test_limit_at_the_box_matches_the_limits_stage(optimised):
    """Same inputs through stats.limits.scan (summary with the cut-flow efficiency): same expected eps."""
    from na64ana import summary
    from na64ana.stats import limits

    rec = json.loads((optimised / "opt" / "optimisation.json").read_text())
    d = rec["optimisation"]["0.01"]
    eff = json.loads((optimised / "eff" / "efficiency.json").read_text())["runs"]["III"]
    cf = json.loads((optimised / "run" / "cutflows" / "III.json").read_text())
    i = d["cut_GeV"].index(50.0)
    b, bu = d["background"][i], d["background_unc"][i]
    s = summary.validate({
        "analysis": "t", "beam_energy_GeV": 100.0, "emiss_min_GeV": 50.0, "cross_section": "etl", "cl": 0.9,
        "correlated": {"xsec": rec["systematics"]["xsec_rel"]},
        "runs": [{"name": "III", "eot": cf["eot"], "eot_unc": rec["systematics"]["eot_rel"],
                  "efficiency": eff["efficiency"][0], "efficiency_unc": eff["syst_rel"], "background": b,
                  "background_unc": min(bu, 0.99 * b), "observed": 0}],
        "masses_GeV": [0.01]})
    point = limits.scan(s)["points"][0]
    assert d["eps_exp"][i] == pytest.approx(point["eps_exp"], rel=0.03)


def test_other_background_counts_upper_limits_at_the_limit_with_full_uncertainty():
    """prl2019: dimuon and decay in flight are measured, target interactions and punch-through are upper
    limits; the run's other background must hold the limits at 100% (as background.json), at any EOT
    fraction."""
    from na64ana import published
    from na64ana.studies.optimise import other_background

    table = published.table()["background"]["prl2019"]
    comps = {k: v for k, v in table.items() if k in ("dimuon", "decay_in_flight", "target_interactions",
                                                      "punch_through")}
    assert sum(bool(v.get("limit")) for v in comps.values()) == 2
    for frac in (1.0, 0.25):
        value, unc = other_background("prl2019", frac)
        assert value == pytest.approx(frac * sum(v["value"] for v in comps.values()), rel=1e-12)
        want = [frac * (v["value"] if v.get("limit") else v["unc"]) for v in comps.values()]
        assert unc == pytest.approx(sum(u * u for u in want) ** 0.5, rel=1e-12)
