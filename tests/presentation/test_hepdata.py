"""HEPData export: validates with hepdata-validator, has the tables, never exports blinded content."""

from __future__ import annotations

import tarfile

import pytest
import yaml

from na64ana.presentation.hepdata import export_hepdata, validate_archive

try:
    from results_factory import BOX_COUNT, RUNS, make_results
except ImportError:  # tests collected as a package
    from tests.results_factory import BOX_COUNT, RUNS, make_results


def _tables(out) -> dict[str, str]:
    docs = list(yaml.safe_load_all((out / "submission" / "submission.yaml").read_text()))
    return {d["name"]: d["data_file"] for d in docs if "name" in d}


@pytest.mark.parametrize("blinded", [False, True])
def test_submission_validates_and_has_the_tables(tmp_path, blinded):
    root = make_results(tmp_path / "res", blinded=blinded)
    archive = export_hepdata(root, tmp_path / "hd")
    ok, msgs = validate_archive(archive)
    assert ok, msgs
    names = set(_tables(tmp_path / "hd"))
    expected = {f"Cut flow run {r}" for r in RUNS} | {f"Background run {r}" for r in RUNS}
    expected |= {f"Signal efficiency run {r}" for r in RUNS} | {"Limits on epsilon"}
    expected |= {"Limits on y (alpha_d=0.5)", "Limits on y (alpha_d=0.1)"}
    assert expected <= names
    with tarfile.open(archive) as tar:
        members = set(tar.getnames())
    assert "submission.yaml" in members
    assert ("ws_m0.01.json" in members) is (not blinded)  # workspaces carry observations


def test_blinded_export_has_no_box_content(tmp_path):
    root = make_results(tmp_path / "res", blinded=True)
    export_hepdata(root, tmp_path / "hd")
    text = "".join(p.read_text() for p in (tmp_path / "hd" / "submission").glob("*.yaml"))
    assert "Observed" not in text
    assert str(BOX_COUNT) not in text
    eps = yaml.safe_load((tmp_path / "hd" / "submission" / _tables(tmp_path / "hd")["Limits on epsilon"])
                         .read_text())
    dep = eps["dependent_variables"]
    assert [d["header"]["name"] for d in dep] == ["Expected epsilon"]
    assert {e["label"] for e in dep[0]["values"][0]["errors"]} == {"1 sigma", "2 sigma"}


def test_unblinded_export_has_observed_limits_and_box_row(tmp_path):
    root = make_results(tmp_path / "res", blinded=False)
    export_hepdata(root, tmp_path / "hd")
    eps = yaml.safe_load((tmp_path / "hd" / "submission" / _tables(tmp_path / "hd")["Limits on epsilon"])
                         .read_text())
    assert "Observed epsilon" in [d["header"]["name"] for d in eps["dependent_variables"]]
    cut = yaml.safe_load((tmp_path / "hd" / "submission" / _tables(tmp_path / "hd")["Cut flow run I"])
                         .read_text())
    assert BOX_COUNT in [v["value"] for v in cut["dependent_variables"][0]["values"]]


def test_export_cli(tmp_path):
    from na64ana.cli import main

    root = make_results(tmp_path / "res", blinded=True)
    assert main(["export", "hepdata", "--results", str(root), "--out", str(tmp_path / "hd")]) == 0
    assert (tmp_path / "hd" / "submission.tar.gz").stat().st_size > 0
    assert main(["export", "hepdata", "--results", str(tmp_path / "nope"), "--out", str(tmp_path / "x")]) == 2


def test_record_metadata_reader_tables_and_no_warnings(tmp_path, capsys):
    import json

    root = make_results(tmp_path / "res", blinded=True)
    (root / "cutflows" / "I-signal-m0.01.json").write_text(json.dumps(
        {"key": "I-signal-m0.01", "run": "I", "sample": "signal", "kind": "mc", "selection": "invisible",
         "rows": [{"cut": "all", "label": "all", "events": 10, "weighted": 1e-12}]}))
    archive = export_hepdata(root, tmp_path / "hd")
    assert validate_archive(archive) == (True, [])
    assert "Warning" not in capsys.readouterr().out
    docs = [d for d in yaml.safe_load_all((tmp_path / "hd" / "submission" / "submission.yaml").read_text())
            if "name" in d]
    assert not any("signal" in d["name"] for d in docs)  # MC cut flows are summarised by the efficiencies
    for d in docs:
        assert d["location"] != "Example location"
        kw = {k["name"]: k["values"] for k in d["keywords"]}
        assert kw["reactions"] == ["E- NUCLEUS --> E- NUCLEUS A'"] and kw["cmenergies"] == [13.73]
        assert kw["phrases"] and kw["observables"]
