"""Mass scans, limits.json, the merged-runs N90 cross-check, DM interpretation and the CLI."""

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest

from na64ana import summary
from na64ana.cli import main
from na64ana.stats import interpret, limits

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "summaries"
BASE = {"analysis": "t", "beam_energy_GeV": 100, "emiss_min_GeV": 50, "cross_section": "etl", "cl": 0.9,
        "correlated": {"xsec": 0.10},
        "runs": [{"name": "I", "eot": 1e10, "eot_unc": 0.0, "efficiency": 1.0, "efficiency_unc": 0.0,
                  "background": 0.0, "background_unc": 0.0, "observed": 0}],
        "masses_GeV": [0.01, 0.1]}


def test_no_syst_one_run_gives_n90_in_eps():
    d = copy.deepcopy(BASE)
    d["correlated"] = {}
    s = summary.validate(d)
    yields = np.array([1e-10, 1e-12])  # per EOT at eps = EPS0: plain numbers, no physics needed
    res = limits.scan(s, yields=yields)
    for p, y in zip(res["points"], yields, strict=True):
        # N(eps) = 1e10 * y * (eps/EPS0)^2 = 2.303
        expected = limits.EPS0 * math.sqrt(-math.log(0.1) / (1e10 * y))
        assert p["eps_obs"] == pytest.approx(expected, rel=1e-5)
        assert p["eps_simple"] == pytest.approx(expected, rel=1e-6)


def test_cl95_differs():
    s = summary.validate(BASE)
    p90 = limits.scan(s, yields=np.array([1e-10, 1e-10]))["points"][0]
    p95 = limits.scan(s, cl=0.95, yields=np.array([1e-10, 1e-10]))["points"][0]
    assert p95["eps_obs"] / p90["eps_obs"] == pytest.approx(math.sqrt(2.996 / 2.303), rel=0.02)


def test_bad_mass_reported_not_nan():
    s = summary.validate(BASE)
    res = limits.scan(s, yields=np.array([0.0, 1e-10]))
    assert "error" in res["points"][0] and "eps_obs" not in res["points"][0]
    assert res["points"][1]["eps_obs"] > 0 and res["n_failed"] == 1


def test_combined_agrees_with_simplified_for_published_2016():
    s = summary.load(EXAMPLES / "prd2018_published.json")
    s = s.model_copy(update={"masses_GeV": [0.01, 0.1]})
    res = limits.scan(s, yields=np.array([1e-9, 1e-11]))
    for p in res["points"]:
        assert abs(p["simple_rel_diff"]) < 0.03  # "agree within a few %" (S001 Sec. IX)
        # n = 0 and P_b(0) > 0.5: the median expected limit is the observed one
        assert p["eps_exp"] == pytest.approx(p["eps_obs"], rel=1e-6)
        assert p["eps_exp_m2"] <= p["eps_exp_m1"] <= p["eps_exp"] <= p["eps_exp_p1"] <= p["eps_exp_p2"]


def test_asymptotic_is_too_strong_at_n0():
    s = summary.validate(BASE)
    a = limits.scan(s, method="asymptotic", yields=np.array([1e-10, 1e-10]))["points"][0]
    e = limits.scan(s, yields=np.array([1e-10, 1e-10]))["points"][0]
    assert a["eps_obs"] < 0.9 * e["eps_obs"]  # lessons.md: ~1.4 vs 2.3 events


def test_interpretation_formulas():
    pts = [{"mass_GeV": 0.03, "eps_obs": 1e-4, "eps_exp": 1e-4}]
    y = interpret.y_limits(pts, alpha_ds=[0.5])
    # y = eps^2 alpha_D / 81 at m_A' = 3 m_chi (brief Sec. 10)
    assert y.bands["alpha_d=0.5"].y_obs[0] == pytest.approx(1e-8 * 0.5 / 81)
    a = interpret.alpha_d_limits(pts)
    m_chi = 0.01
    expected = 0.02 * 3.0 * (1e-3 / 1e-4) ** 2 * (0.03 / 0.1) ** 4 * (0.01 / m_chi) ** 2
    assert a.majorana.alpha_d_min_obs[0] == pytest.approx(expected, rel=1e-9)


@pytest.mark.slow
def test_cli_on_published_summary(tmp_path):
    d = json.loads((EXAMPLES / "prl2019_published.json").read_text())
    d["masses_GeV"] = [0.001, 0.1]
    f = tmp_path / "s.json"
    f.write_text(json.dumps(d))
    assert main(["limits", "--summary", str(f), "--out", str(tmp_path / "out")]) == 0
    res = json.loads((tmp_path / "out" / "limits.json").read_text())
    assert res["cl"] == 0.9 and len(res["points"]) == 2
    assert all(p["eps_obs"] > 0 for p in res["points"])
    assert res["points"][0]["eps_obs"] < res["points"][1]["eps_obs"]
    assert (tmp_path / "out" / res["points"][0]["workspace"]).exists()
    assert "alpha_d=0.1" in res["y_limits"] and "majorana" in res["alpha_d_limits"]


def test_cli_bad_summary_exit_code(tmp_path, capsys):
    d = copy.deepcopy(BASE)
    d["runs"][0]["eot"] = -1
    f = tmp_path / "s.json"
    f.write_text(json.dumps(d))
    assert main(["limits", "--summary", str(f), "--out", str(tmp_path / "o")]) == 2
    assert "runs.0.eot" in capsys.readouterr().err


@pytest.mark.parametrize("words, expected", [(["OK", "WARNING"], True), (["OK", "FAILED"], False),
                                             (["OK", None], None)])
def test_limits_record_carries_the_background_validation_and_the_assumed_defaults(words, expected):
    d = copy.deepcopy(BASE)
    d["correlated"] = {}
    run2 = {**d["runs"][0], "name": "II"}
    del run2["eot_unc"]  # a default the record must list
    d["runs"].append(run2)
    for r, w in zip(d["runs"], words, strict=True):
        if w is not None:
            r["notes"] = {"background_validation": f"validation region run {r['name']} (...): p = 0.3: {w}"}
    rec = limits.compute(summary.validate(d), yields=np.array([1e-10, 1e-12]))
    assert rec.details is not None
    assert rec.details["background_validated"] is expected
    flags = rec.details["background_validation"]
    flag_of = {"OK": "ok", "FAILED": "fail", "WARNING": "warn", None: None}
    assert [flags["I"], flags["II"]] == [flag_of[w] for w in words]
    assert "runs.II.eot_unc" in rec.details["assumed_defaults"]
    assert "runs.I.eot_unc" not in rec.details["assumed_defaults"]
