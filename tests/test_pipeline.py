"""The whole chain (``make demo``) on a small campaign: every stage runs, the report links existing
figures, the limits are expected-only because the box stays closed, and the HEPData export validates."""

import json
import re

import pytest

from na64ana import pipeline
from na64ana.hepdata import validate_archive

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "results"
    timings = pipeline.demo(out, campaign="prd2018", seed=5, n_signal=3000,
                            efficiency_masses=(0.002, 0.5), limit_masses=(0.001, 0.01, 0.1, 1.0))
    return out, timings


def test_every_stage_ran_and_is_recorded(results):
    out, timings = results
    stages = ["simulate", "run", "dimuon", "background", "efficiency", "summary", "limits", "optimisation",
              "report", "hepdata"]
    assert list(timings) == stages
    prov = json.loads((out / "provenance.json").read_text())["stages"]
    assert prov["demo"]["unblind"] is False and prov["demo"]["campaign"] == "prd2018"


def test_limits_are_expected_only_while_blinded(results):
    out, _ = results
    lim = json.loads((out / "limits" / "limits.json").read_text())
    assert lim["blinded"] is True and lim["cl"] == pytest.approx(0.9)
    for p in lim["points"]:
        assert "error" not in p
        assert p["eps_obs"] is None
        assert p["eps_exp_m2"] <= p["eps_exp"] <= p["eps_exp_p2"]
    eps = [p["eps_exp"] for p in lim["points"]]
    assert eps == sorted(eps), "the expected eps limit rises with the A' mass"
    summ = json.loads((out / "summary.json").read_text())
    assert all(r["observed"] is None for r in summ["runs"])
    regions = json.loads((out / "run" / "regions.json").read_text())
    assert all(v["signal_box"] is None for v in regions.values())


def test_report_links_existing_figures(results):
    out, _ = results
    md = (out / "report.md").read_text()
    links = re.findall(r"\]\((plots/[^)]+)\)", md)
    assert len(links) >= 10
    for link in links:
        assert (out / link).stat().st_size > 0, link
    assert (out / "report.html").exists()
    for name in ("planes", "cutflow", "eps_limits", "y_limits", "alpha_d_limits", "efficiency",
                 "signal_spectra", "optimisation"):
        assert (out / "plots" / f"{name}.png").exists(), name


def test_hepdata_submission_validates(results):
    out, _ = results
    ok, msgs = validate_archive(out / "hepdata" / "submission.tar.gz")
    assert ok, msgs
