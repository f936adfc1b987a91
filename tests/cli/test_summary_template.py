"""The hand-written summary contract: the template validates, the shipped JSON schema and
docs/summary_contract.md are not stale, every problem of a file is reported at once, --template."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from na64ana import summary
from na64ana.cli import main
from na64ana.cli import summary as cli_summary
from na64ana.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
REGEN = "regenerate with: .venv/bin/python -m na64ana.cli.summary"


def test_template_is_a_valid_blinded_summary():
    s = summary.validate(cli_summary.template())
    assert s.blinded and s.runs[0].name == "I"


def test_shipped_schema_is_not_stale():
    shipped = resources.files("na64ana.data").joinpath("summary.schema.json").read_text()
    assert shipped == cli_summary.schema_text(), REGEN
    doc = json.loads(shipped)
    assert set(doc["required"]) == {"runs", "masses_GeV"} and "Run" in doc["$defs"]
    assert set(doc["$defs"]["Run"]["required"]) == {"name", "eot", "efficiency", "background", "observed"}


def test_contract_doc_is_not_stale():
    assert (ROOT / "docs" / "summary_contract.md").read_text() == cli_summary.contract_markdown(), REGEN


def test_every_missing_field_is_reported_at_once():
    incomplete = {"runs": [{"name": "I", "efficiency": 0.6}, {"name": "II", "eot": 1e11}]}
    with pytest.raises(InputError) as err:
        summary.validate(incomplete, file="mine.json")
    msg = str(err.value)
    assert msg.startswith("mine.json:") and "more)" not in msg
    for field in ("masses_GeV", "runs.0.eot", "runs.0.background", "runs.0.observed", "runs.1.efficiency"):
        assert field in msg
    assert "missing fields: " in msg and len(msg.splitlines()) == 1


MINIMAL = {"masses_GeV": [0.001, 0.1],
           "runs": [{"name": "A", "eot": 3e11, "efficiency": 0.6, "background": 0.5, "observed": 0},
                    {"name": "B", "eot": 1e11, "efficiency": 0.5, "background": 0.1, "observed": 1,
                     "eot_unc": 0.05}]}


def test_minimal_summary_takes_the_documented_defaults_and_says_which():
    s = summary.validate(MINIMAL)
    assert (s.analysis, s.beam_energy_GeV, s.emiss_min_GeV, s.cross_section, s.cl, s.correlated) == (
        "unnamed summary", 100.0, 50.0, "etl", 0.9, {})
    assumed = s.assumed_defaults()
    assert assumed["beam_energy_GeV"] == 100.0 and assumed["runs.A.background_unc"] == 0.0
    assert "runs.B.eot_unc" not in assumed and assumed["runs.A.eot_unc"] == 0.0  # given for B only
    assert s.runs[0].background_kappa() == 0.0  # no background uncertainty: a fixed background
    doc = (ROOT / "docs" / "summary_contract.md").read_text()
    for field in summary.SUMMARY_DEFAULTED + summary.RUN_DEFAULTED:
        assert f"`{field}`" in doc.split("## Summary")[0], field  # each default explained up front


def test_complete_summary_assumes_nothing():
    assert summary.validate(cli_summary.template()).assumed_defaults() == {}


def test_minimal_summary_through_limits_cli(tmp_path, caplog):
    f = tmp_path / "mine.json"
    f.write_text(json.dumps(MINIMAL))
    with caplog.at_level("WARNING"):
        rc = main(["limits", "--summary", str(f), "--out", str(tmp_path / "lim"), "--crosscheck-toys", "0"])
    assert rc == 0
    rec = json.loads((tmp_path / "lim" / "limits.json").read_text())
    assert rec["cl"] == 0.9 and rec["beam_energy_GeV"] == 100.0 and rec["emiss_min_GeV"] == 50.0
    assert rec["n_failed"] == 0 and all(p["eps_obs"] > 0 for p in rec["points"])
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "assumed" in said and "runs.A.efficiency_unc = 0.0" in said and "runs.B.eot_unc" not in said


def test_cli_template_writes_a_file_and_never_overwrites(tmp_path, capsys):
    out = tmp_path / "mine.json"
    assert main(["summary", "--template", str(out)]) == 0
    summary.load(out)
    assert main(["summary", "--template", str(out)]) == 2
    assert main(["summary", "--template", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["notes"]["runs.observed"]


def test_cli_without_template_names_every_missing_option(capsys):
    assert main(["summary"]) == 2
    err = capsys.readouterr().err
    assert "--run-dir" in err and "--background" in err and "--efficiency" in err
