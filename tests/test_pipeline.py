"""The whole chain (``make demo``) on a small campaign: every stage runs, the report links existing
figures, the limits are expected-only because the box stays closed, and the HEPData export validates."""

import json
import re

import pytest

from na64ana import pipeline
from na64ana.presentation.hepdata import validate_archive

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


def test_adopt_data_copies_the_datasets_with_rebased_paths(tmp_path, synth_campaign):
    from pathlib import Path

    from na64ana import datasets
    from na64ana.errors import InputError

    src = synth_campaign.datasets
    copy = pipeline.adopt_data(src, tmp_path / "out" / "data", campaign="test", runs=["A", "B"])
    old, new = datasets.load(src), datasets.load(copy)
    for rname, run in new.campaigns["test"].runs.items():
        before = old.campaigns["test"].runs[rname].files
        assert [datasets.resolve_path(f, copy).resolve() for f in run.files] == \
            [datasets.resolve_path(f, src).resolve() for f in before]
        assert [f.sha256 for f in run.files] == [f.sha256 for f in before]
    prov = json.loads((copy.parent / "provenance.json").read_text())["stages"]["data"]
    assert prov["source"] == str(src)
    with pytest.raises(InputError, match="differ from the runs"):
        pipeline.adopt_data(src, tmp_path / "x", campaign="test", runs=["A"])
    repo = Path(__file__).resolve().parents[1] / "datasets.json"  # campaigns without files
    with pytest.raises(InputError, match="no data files"):
        pipeline.adopt_data(repo, tmp_path / "y", campaign="prd2018", runs=["I", "II", "III"])
