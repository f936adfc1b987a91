"""Signal efficiency: arithmetic on hand-made cut flows, and signal MC through the real processor chain."""

from __future__ import annotations

import json
import math
from pathlib import Path

import hist
import numpy as np
import pytest
import uproot

from na64ana import datasets as ds
from na64ana import efficiency as E
from na64ana.errors import DataError, InputError
from na64ana.processing import outputs

REPO_DATASETS = Path(__file__).resolve().parents[2] / "datasets.json"
CUTS = ["track", "srd", "shower", "straw", "veto", "pileup", "hcal0", "hcal_zero", "signal_box"]


def rows_from_counts(counts: list[int], w: float = 1.0) -> list[dict]:
    """Cut-flow rows like outputs.cutflow_record for uniform weight ``w``: counts[0] = all events read."""
    names = ["all", *CUTS[: len(counts) - 1]]
    return [{"cut": c, "events": n, "weighted": n * w} for c, n in zip(names, counts, strict=True)]


COUNTS = [11_000, 8_800, 8_500, 8_100, 8_090, 7_800, 7_550, 7_400, 7_300, 5_600]


# ------------------------------------------------------------------------------------------------------
# Arithmetic


def test_factors_and_cuts_multiply_to_the_total():
    den = 10_000.0
    m = E.from_cutflow(rows_from_counts(COUNTS), den)
    assert m.efficiency == pytest.approx(COUNTS[-1] / den)
    assert math.prod(m.factors.values()) == pytest.approx(m.efficiency, rel=1e-12)
    assert math.prod(m.cuts.values()) == pytest.approx(m.efficiency, rel=1e-12)
    # grouping as in the published tables; the acceptance (trigger + migration, > 1 here) goes to ECAL
    c = dict(zip(["all", *CUTS], COUNTS, strict=True))
    assert m.cuts[E.ACCEPTANCE] == pytest.approx(c["all"] / den)
    assert m.factors["primary_e"] == pytest.approx(c["track"] / c["all"] * c["srd"] / c["track"]
                                                   * c["straw"] / c["shower"] * c["pileup"] / c["veto"])
    assert m.factors["veto"] == pytest.approx(c["veto"] / c["straw"])
    assert m.factors["hcal"] == pytest.approx(c["hcal0"] / c["pileup"] * c["hcal_zero"] / c["hcal0"])
    assert m.factors["ecal"] == pytest.approx(c["all"] / den * c["shower"] / c["srd"]
                                              * c["signal_box"] / c["hcal_zero"])
    assert list(m.factors) == ["primary_e", "ecal", "veto", "hcal"]


def test_unknown_cut_goes_to_other_and_product_still_holds():
    rows = [{"cut": "all", "events": 100, "weighted": 100.0},
            {"cut": "track", "events": 80, "weighted": 80.0},
            {"cut": "new_cut", "events": 60, "weighted": 60.0}]
    m = E.from_cutflow(rows, 100.0)
    assert m.factors["other"] == pytest.approx(0.75)
    assert math.prod(m.factors.values()) == pytest.approx(0.6)


def test_weight_scale_cancels_in_efficiency_but_sets_the_error():
    """Same weighted sums from 4x more events (weight / 4): same efficiency, half the error."""
    a = E.from_cutflow(rows_from_counts(COUNTS, w=2.0), 2.0 * 10_000)
    b = E.from_cutflow(rows_from_counts([4 * n for n in COUNTS], w=0.5), 2.0 * 10_000)
    assert a.efficiency == pytest.approx(b.efficiency)
    assert b.unc == pytest.approx(a.unc / 2)
    for g in a.factors:
        assert b.factors_unc[g] == pytest.approx(a.factors_unc[g] / 2)


def test_factor_errors_are_consistent_with_the_total_error():
    """Without migration (all ratios <= 1) the binomial chain's relative variances add up to the total's."""
    counts = [10_000, *COUNTS[1:]]
    m = E.from_cutflow(rows_from_counts(counts), 10_000.0)
    rel2 = sum((m.factors_unc[g] / m.factors[g]) ** 2 for g in m.factors)
    assert math.sqrt(rel2) == pytest.approx(m.unc / m.efficiency, rel=1e-4)


def test_binomial_error_matches_toy_spread():
    rng = np.random.default_rng(7)
    n, p = 400, 0.62
    toys = rng.binomial(n, p, size=4000) / n
    assert E.binomial_unc(p, n) == pytest.approx(toys.std(), rel=0.05)


def test_errors_at_0_and_100_percent_are_finite_and_positive():
    for k in (0, 50):
        rows = [{"cut": "all", "events": 50, "weighted": 50.0}, {"cut": "signal_box", "events": k,
                                                                 "weighted": float(k)}]
        m = E.from_cutflow(rows, 50.0)
        assert 0 < m.unc < 0.05 and math.isfinite(m.unc)


def test_systematic_in_quadrature():
    assert E.with_systematic(0.5, 0.03, 0.08) == pytest.approx(0.05)
    assert E.with_systematic(0.5, 0.03, 0.0) == pytest.approx(0.03)
    with pytest.raises(InputError):
        E.with_systematic(0.5, 0.03, -0.1)


@pytest.mark.parametrize("den", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_denominator_is_a_clear_error(den):
    with pytest.raises(DataError, match="denominator"):
        E.from_cutflow(rows_from_counts(COUNTS), den)


def test_blinded_nonmonotonic_or_empty_cutflows_are_errors():
    rows = rows_from_counts(COUNTS)
    rows[-1] = {**rows[-1], "weighted": None, "events": None}
    with pytest.raises(DataError, match="blinded"):
        E.from_cutflow(rows, 1e4)
    with pytest.raises(DataError, match="monoton"):
        E.from_cutflow(rows_from_counts([100, 50, 60]), 100.0)
    with pytest.raises(DataError):
        E.from_cutflow(rows_from_counts([0, 0, 0]), 100.0)
    with pytest.raises(DataError):
        E.from_cutflow(rows_from_counts([100]), 100.0)


def test_expected_signal_vs_cut_counts_entries_below_each_edge():
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 100, 5000)
    w = rng.uniform(0.5, 1.5, 5000)
    h = hist.Hist(hist.axis.StrCategory(["I"], name="run"), hist.axis.Regular(200, 0, 100, name="ecal"),
                  storage=hist.storage.Weight())
    h.fill(run="I", ecal=x, weight=w)
    cuts = [0.0, 20.0, 47.5, 50.0, 100.0]
    got = E.expected_signal_vs_cut(h, cuts)
    assert got == pytest.approx([w[x < c].sum() for c in cuts], rel=1e-9)
    eff = E.expected_signal_vs_cut(h, cuts, denominator=w.sum())
    assert eff[-1] == pytest.approx(1.0) and np.all(np.diff(eff) >= 0)
    inside = E.expected_signal_vs_cut(h, [50.25])[0]  # half of the bin [50, 50.5] by interpolation
    lo, hi = w[x < 50].sum(), w[x < 50.5].sum()
    assert inside == pytest.approx(0.5 * (lo + hi), rel=1e-9)


# ------------------------------------------------------------------------------------------------------
# Signal MC through the real chain (simulator -> invisible processor -> efficiency.json)

CAMPAIGN = "prl2019"
RUNS = ["I", "III"]  # low vs high intensity (S003)
MASSES = [0.001, 1.0]
N_EVENTS = 6000


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    from na64ana.simulation import simulate_signal_samples

    tmp = tmp_path_factory.mktemp("eff")
    sig = simulate_signal_samples(REPO_DATASETS, out_dir=tmp / "signal_mc", masses_GeV=MASSES,
                                  n_events=N_EVENTS, campaign=CAMPAIGN, runs=RUNS, seed=11)
    out = tmp / "out"
    rec = E.measure(sig, out=out, campaign=CAMPAIGN)
    return sig, out, rec


def test_efficiency_json_follows_the_interface(measured):
    _, out, rec = measured
    on_disk = json.loads((out / "efficiency.json").read_text())
    assert on_disk["campaign"] == CAMPAIGN and set(on_disk["runs"]) == set(RUNS)
    for r in on_disk["runs"].values():
        assert r["mass_GeV"] == MASSES
        for key in ("efficiency", "unc", "unc_stat"):
            assert len(r[key]) == len(MASSES)
        assert {"primary_e", "ecal", "veto", "hcal"} <= set(r["factors"])
        for i, eff in enumerate(r["efficiency"]):
            assert math.prod(f[i] for f in r["factors"].values()) == pytest.approx(eff, rel=1e-9)
            assert r["unc"][i] > r["unc_stat"][i] > 0  # published systematic added
    assert "| I | 1 |" in (out / "efficiency.md").read_text()


def test_efficiencies_are_physical_and_near_published(measured):
    """Within (0, 1], in the published 0.5-0.7 ballpark, falling with mass (the simulated efficiency,
    before the preshower-threshold correction, which removes most of the fall) and with beam intensity."""
    sig, _, rec = measured
    runs = ds.load(REPO_DATASETS).campaigns[CAMPAIGN].runs
    eff = {r: rec["runs"][r]["efficiency"] for r in RUNS}
    unc = {r: rec["runs"][r]["unc_stat"] for r in RUNS}
    for r in RUNS:
        assert all(0.3 < e <= 1.0 for e in eff[r])
        assert all(0 < u < 0.02 for u in unc[r])
        pub = runs[r]
        assert abs(eff[r][0] - pub.efficiency) < 2 * pub.efficiency * pub.efficiency_unc
        assert abs(eff[r][-1] - pub.efficiency_heavy) < 2 * pub.efficiency_heavy * pub.efficiency_unc
        raw = [e / f for e, f in zip(eff[r], rec["runs"][r]["ps_threshold_correction"], strict=True)]
        raw_unc = [u / f for u, f in zip(unc[r], rec["runs"][r]["ps_threshold_correction"], strict=True)]
        assert raw[0] - raw[-1] > 3 * math.hypot(raw_unc[0], raw_unc[-1])  # light > heavy A'
    for i in range(len(MASSES)):  # pile-up/VETO losses grow with intensity: I (low) > III (high)
        assert eff["I"][i] - eff["III"][i] > 3 * math.hypot(unc["I"][i], unc["III"][i])


def test_histogram_path_agrees_with_cutflow_path(measured):
    """signal_ecal (every cut but the box) integrated below the box edge / D = the cut-flow efficiency."""
    _, out, rec = measured
    h = outputs.load_hist(out, E.BOX_HIST)
    box = rec["runs"]["I"]
    for i, m in enumerate(MASSES):
        key = f"I-signal-m{m:g}"
        e = E.expected_signal_vs_cut(h[{"run": key}], [50.0], denominator=box["denominator_per_eot"][i])[0]
        assert e * box["ps_threshold_correction"][i] == pytest.approx(box["efficiency"][i], rel=1e-5)


def test_denominator_is_consistent_with_the_sample_weights(measured):
    """Weighted triggered A' with true E_A' > emiss_min cannot exceed D (all A' above emiss_min)."""
    sig, _, rec = measured
    camp = ds.load(sig).campaigns[CAMPAIGN]
    for f in camp.runs["I"].files:
        a = uproot.open(ds.resolve_path(f, sig))["events"].arrays(["truth_eaprime", "weight"], library="np")
        above = float(np.sum(a["weight"].astype(float) * (a["truth_eaprime"] > camp.emiss_min_GeV)))
        i = rec["runs"]["I"]["mass_GeV"].index(f.signal_mass_GeV)
        d = rec["runs"]["I"]["denominator_per_eot"][i]
        assert 0.5 * d < above < d * (1 + 3 / math.sqrt(N_EVENTS))


def test_cli_on_existing_samples_and_bad_masses(measured, tmp_path, capsys):
    from na64ana.cli import main

    sig, _, rec = measured
    code = main(["efficiency", "--datasets", str(sig), "--signal-datasets", str(sig), "--campaign", CAMPAIGN,
                 "--runs", "I", "--masses", "0.001", "--no-syst", "--out", str(tmp_path / "cli")])
    assert code == 0
    assert "| I | 1 |" in capsys.readouterr().out
    got = json.loads((tmp_path / "cli" / "efficiency.json").read_text())["runs"]["I"]
    assert got["efficiency"] == pytest.approx(rec["runs"]["I"]["efficiency"][:1])
    assert got["unc"] == got["unc_stat"]
    bad = main(["efficiency", "--signal-datasets", str(sig), "--campaign", CAMPAIGN, "--masses", "-1",
                "--out", str(tmp_path / "bad")])
    assert bad == InputError.exit_code
    none = main(["efficiency", "--signal-datasets", str(sig), "--campaign", CAMPAIGN, "--masses", "0.3",
                 "--out", str(tmp_path / "none")])
    assert none == InputError.exit_code


def test_efficiency_carries_the_generation_coverage_of_the_signal_mc(measured):
    """The signal MC records E_A' > 0.8 emiss_min in its provenance; efficiency.json carries it (the cut
    optimisation reads it there instead of importing the simulator)."""
    _, out, rec = measured
    assert rec["signal_ea_min_fraction"] == pytest.approx(0.8)
    assert json.loads((out / "efficiency.json").read_text())["signal_ea_min_fraction"] == pytest.approx(0.8)


def test_the_stage_needs_signal_mc(tmp_path):
    """(That it never imports the simulator: tests/test_front_door.py, for every analysis module.)"""
    with pytest.raises(InputError, match="signal-MC datasets"):
        E.run_stage(None, tmp_path / "e")  # type: ignore[arg-type]


def test_annihilation_efficiency_uses_each_runs_own_window(tmp_path):
    """Resonant signal MC of prl2023: the denominator of run 2022 (box 47 GeV) is the annihilation yield
    with E_R > 53 GeV, that of 2021 (box 50) with E_R > 50 GeV (the line at 0.237 GeV passes both)."""
    from na64ana.physics.yields import signal_yield
    from na64ana.simulation import simulate_signal_samples

    sig = simulate_signal_samples(REPO_DATASETS, out_dir=tmp_path / "sig", masses_GeV=[0.237],
                                  n_events=800, campaign="prl2023", runs=["2021", "2022"],
                                  production="annihilation", seed=5)
    rec = E.run_stage(sig, tmp_path / "eff", campaign="prl2023", production="annihilation")
    assert rec.production == "annihilation"
    assert rec.emiss_min_by_run_GeV == {"2021": 50.0, "2022": 53.0}
    for run, cut in (("2021", 50.0), ("2022", 53.0)):
        want = signal_yield([0.237], 1e-4, mechanisms=["annihilation"], emiss_min=cut)["annihilation"][0]
        assert rec.runs[run].denominator_per_eot[0] == pytest.approx(want, rel=1e-12)
        assert 0.3 < rec.runs[run].efficiency[0] <= 1.0
    with pytest.raises(InputError, match="production"):
        E.run_stage(sig, tmp_path / "eff2", campaign="prl2023", production="visible")
