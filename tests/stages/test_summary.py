"""The yields-summary contract: the published examples load, bad input names the field."""

import copy
import json
from pathlib import Path

import pytest

from na64ana import summary
from na64ana.errors import InputError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "summaries"
GOOD = {"analysis": "t", "beam_energy_GeV": 100, "emiss_min_GeV": 50, "cross_section": "etl", "cl": 0.9,
        "correlated": {"xsec": 0.10},
        "runs": [{"name": "I", "eot": 2.3e10, "eot_unc": 0.02, "efficiency": 0.7, "efficiency_unc": 0.09,
                  "background": 0.043, "background_unc": 0.017, "observed": 0}],
        "masses_GeV": [0.01, 0.1]}


@pytest.mark.parametrize("name", ["prd2018_published.json", "prl2019_published.json"])
def test_examples_validate(name):
    s = summary.load(EXAMPLES / name)
    assert [r.name for r in s.runs] == ["I", "II", "III"]
    assert all(r.observed == 0 for r in s.runs)


def test_published_eot_in_examples():
    prd = summary.load(EXAMPLES / "prd2018_published.json")
    prl = summary.load(EXAMPLES / "prl2019_published.json")
    assert sum(r.eot for r in prd.runs) == pytest.approx(4.3e10)
    assert sum(r.eot for r in prl.runs) == pytest.approx(2.84e11)
    assert sum(r.background for r in prl.runs) == pytest.approx(0.53, rel=1e-3)  # S003 Table I total


def test_mass_dependent_efficiency_interpolates_in_log_mass():
    d = copy.deepcopy(GOOD)
    d["runs"][0]["efficiency"] = {"mass_GeV": [0.001, 1.0], "value": [0.69, 0.55]}
    r = summary.validate(d).runs[0]
    assert float(r.efficiency_at(0.0316227766)) == pytest.approx(0.62)
    assert float(r.efficiency_at(5.0)) == pytest.approx(0.55)


@pytest.mark.parametrize("path,value,field", [
    (("runs", 0, "eot"), -1.0, "runs.0.eot"),
    (("runs", 0, "efficiency"), 1.2, "runs.0.efficiency"),
    (("runs", 0, "efficiency"), 0.0, "runs.0.efficiency"),
    (("runs", 0, "background_unc"), -0.05, "runs.0.background_unc"),
    (("runs", 0, "observed"), 1.5, "runs.0.observed"),
    (("runs", 0, "observed"), "1", "runs.0.observed"),
    (("masses_GeV",), [], "masses_GeV"),
    (("cross_section",), "xyz", "cross_section"),
])
def test_bad_input_names_field(path, value, field):
    d = copy.deepcopy(GOOD)
    node = d
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    with pytest.raises(InputError) as exc:
        summary.validate(d, file="s.json")
    assert exc.value.field.startswith(field)
    assert "s.json" in str(exc.value)


def test_missing_key_named():
    d = copy.deepcopy(GOOD)
    del d["runs"][0]["background"]
    with pytest.raises(InputError, match="background"):
        summary.validate(d)


def test_background_unc_above_value_is_accepted():
    """Issue 14: kappa = 1 + r defines the log-normal for any r (no '< 100%' rule, no cap)."""
    d = copy.deepcopy(GOOD)
    d["runs"][0]["background_unc"] = 0.1
    assert summary.validate(d).runs[0].background_kappa() == pytest.approx(0.1 / 0.043)


def test_zero_background_allowed_without_uncertainty(tmp_path):
    d = copy.deepcopy(GOOD)
    d["runs"][0].update(background=0.0, background_unc=0.0)
    f = tmp_path / "s.json"
    f.write_text(json.dumps(d))
    assert summary.load(f).runs[0].background == 0.0


def test_unreadable_file(tmp_path):
    f = tmp_path / "s.json"
    f.write_text("{")
    with pytest.raises(InputError):
        summary.load(f)


def test_the_chain_summary_keeps_a_wide_background_width_and_says_so():
    """summary.compute (demo, na64ana summary, closure): an uncertainty >= the background is kept (issue 14:
    no cap) and noted; the EOT of skipped input files is subtracted and noted."""
    from types import SimpleNamespace

    from na64ana.records import BackgroundTable, EfficiencyTable

    camp = SimpleNamespace(beam_energy_GeV=100.0, emiss_min_GeV=50.0, xsec_unc=0.1,
                           runs={"I": SimpleNamespace(eot=1e10, eot_unc=0.02, efficiency_unc=0.07)})
    fit = {"model": "exp", "params": [0.0, 0.0], "cov": [[1, 0], [0, 1]], "fit_range": [50, 80],
           "edges": [50, 80], "counts": [1], "nll": 0, "chi2": 0, "ndf": 0, "converged": True, "pulls": [0],
           "reference_energy_GeV": 50}
    bkg = BackgroundTable.model_validate({"campaign": "c", "blinded": False, "runs": [{
        "run": "I", "fit": fit,
        "upstream": {"value": 0.2, "stat": 0.3, "syst": 0, "unc": 0.3, "syst_parts": {}, "alternatives": {}},
        "components": {}, "total": {"value": 0.2, "unc": 0.3}, "validation": {}, "eot_skipped": 1e9,
        "skipped_files": ["a.root"]}]})
    n = 2
    eff = EfficiencyTable.model_validate({"campaign": "c", "runs": {"I": {
        "mass_GeV": [0.002, 0.01], "efficiency": [0.6, 0.5], "unc": [0.06] * n, "unc_stat": [0.01] * n,
        "syst_rel": 0.07, "factors": {}, "factors_unc": {}, "cuts": {}, "n_eff": [1.0] * n,
        "weighted_pass_per_eot": [1.0] * n, "denominator_per_eot": [1.0] * n}}})
    s = summary.compute(analysis="t", campaign=camp, background=bkg, efficiency=eff, observed={"I": 4},
                        masses_GeV=[0.01])
    (r,) = s.runs
    assert (r.observed, r.background, r.eot, r.efficiency_unc) == (4, 0.2, 9e9, 0.07)
    assert r.background_unc == pytest.approx(0.3)
    assert "not capped" in r.notes["background_unc"] and "a.root" in r.notes["eot"]
    blind = summary.compute(analysis="t", campaign=camp, background=bkg, efficiency=eff, observed={"I": None},
                            masses_GeV=[0.01])
    assert blind.blinded and summary.to_json(blind)["runs"][0]["observed"] is None
