"""Signal-injection closure on a reduced-EOT prd2018 campaign (seeded), plus its small pure pieces.

The closure assertions are statistical: the fitted signal strength of one pseudo-experiment must agree
with the injected one within 3 sigma of its profile-likelihood interval (a correct chain fails this for
~0.3% of seeds; the seed is fixed, so the test is deterministic), and the null sample's observed limit
must lie inside the expected +-2 sigma band (fails for <~5% of seeds; with ~0.1 background events
the observation is n = 0 in ~90% of the seeds and then sits on the median).
"""

from __future__ import annotations

import json

import pytest
from scipy import stats

from na64ana import datasets
from na64ana.bookkeeping import provenance
from na64ana.errors import InputError
from na64ana.records import ClosureRecord
from na64ana.studies import closure

pytestmark = pytest.mark.filterwarnings("ignore")
MASS, EPS, SCALE = 0.01, 3.2e-4, 0.5  # ~15 signal events at half the prd2018 EOT (N90 = 2.3)


def test_pull_uses_the_interval_side_of_the_truth():
    assert closure.pull(5.0, [4.0, 7.0], 6.0) == pytest.approx(0.5)
    assert closure.pull(5.0, [4.0, 7.0], 3.0) == pytest.approx(-2.0)


def test_within_band_is_inclusive_and_handles_missing():
    pt = {"eps_obs": 1.0, "eps_exp_m2": 1.0, "eps_exp_p2": 2.0, "eps_exp_m1": 1.2, "eps_exp_p1": 1.5}
    assert closure.within_band(pt, 2) is True
    assert closure.within_band(pt, 1) is False
    assert closure.within_band({"eps_obs": None}, 2) is None


def test_the_closure_uses_the_summary_stage():
    """One summary builder: the closure's summaries are na64ana.summary's (no copy with its own cap)."""
    assert not hasattr(closure, "summary_dict") and not hasattr(closure, "BKG_UNC_CAP")


def test_scaled_datasets_scale_every_run(tmp_path):
    path = closure.scaled_datasets("datasets.json", tmp_path / "d.json", 0.25)
    new, old = datasets.load(path), datasets.load("datasets.json")
    for cname, camp in old.campaigns.items():
        for rname, run in camp.runs.items():
            assert new.campaigns[cname].runs[rname].eot == pytest.approx(0.25 * run.eot)


def test_run_closure_needs_an_efficiency_output(tmp_path):
    inputs = closure.ClosureInputs(injected_datasets=tmp_path / "i.json", null_datasets=tmp_path / "n.json",
                                   efficiency_dir=tmp_path / "no_eff", campaign="prd2018", mass_GeV=MASS,
                                   eps_injected=EPS, source_datasets=tmp_path / "d.json")
    with pytest.raises(InputError, match="efficiency.json"):
        closure.run_closure(inputs, out=tmp_path / "c")


@pytest.fixture(scope="module")
def rec(tmp_path_factory):
    """The pipeline's simulation half (the study itself never simulates), then the study."""
    from na64ana.pipeline import closure_inputs

    out = provenance.prepare_outdir(tmp_path_factory.mktemp("closure") / "c", stage="closure")
    inputs = closure_inputs("datasets.json", mass=MASS, eps=EPS, out=out, seed=7, campaign="prd2018",
                             runs=None, eot_scale=SCALE, n_signal_mc=3000, efficiency_dir=None,
                             executor="iterative", workers=2)
    return closure.run_closure(inputs, out=out), out


@pytest.mark.slow  # `rec` runs the whole closure (simulate, run, background, limits twice)
def test_injected_signal_is_recovered(rec):
    r, out = rec
    assert isinstance(r, ClosureRecord)
    inj = r.injected
    assert inj.eps_ref is not None and inj.mu_hat is not None and inj.mu_interval_68 is not None
    assert inj.expected_signal is not None and inj.pull is not None
    assert inj.mu_injected == pytest.approx((EPS / inj.eps_ref) ** 2)
    exp_sig = sum(inj.expected_signal.values())
    assert 10 < exp_sig < 25  # the injection is well above N90 = 2.3
    lo, hi = inj.mu_interval_68
    assert lo < inj.mu_hat < hi
    assert abs(inj.pull) < 3.0, inj
    # the box count itself is a Poisson draw of signal + background (two-sided p-value > 0.3%)
    n, mu = sum(int(v or 0) for v in inj.observed.values()), exp_sig + sum(inj.background.values())
    assert min(stats.poisson.cdf(n, mu), stats.poisson.sf(n - 1, mu)) > 0.0015


@pytest.mark.slow  # `rec` runs the whole closure (simulate, run, background, limits twice)
def test_null_limit_is_inside_the_expected_band(rec):
    r, out = rec
    null = r.null
    assert null.limit is not None and null.limit["eps_obs"] is not None
    assert null.within_2sigma is True
    assert null.limit["eps_obs"] < r.eps_injected  # the injected eps would have been excluded


@pytest.mark.slow  # `rec` runs the whole closure (simulate, run, background, limits twice)
def test_outputs_and_provenance(rec):
    r, out = rec
    on_disk = ClosureRecord.load(out)  # the typed record reads back what was written
    assert on_disk.injected.mu_hat == pytest.approx(r.injected.mu_hat)
    assert on_disk.seed == 7 and on_disk.eot_scale == SCALE
    assert "closure" in json.loads((out / "provenance.json").read_text())["stages"]
    assert (out / "closure.md").read_text().startswith("### Signal-injection closure")
    for label in ("injected", "null"):
        assert (out / label / "run" / "run.complete").exists()
        assert (out / label / "background" / "background.json").exists()
        summ = json.loads((out / label / "summary.json").read_text())
        assert summ["analysis"] == f"closure {label}" and summ["masses_GeV"] == [MASS]
        assert json.loads((out / label / "provenance.json").read_text())["stages"]["summary"]["inputs"]
    assert (out / "null" / "limits" / "limits.json").exists()
