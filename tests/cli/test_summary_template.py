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
    assert {"analysis", "runs", "masses_GeV"} <= set(doc["required"]) and "Run" in doc["$defs"]


def test_contract_doc_is_not_stale():
    assert (ROOT / "docs" / "summary_contract.md").read_text() == cli_summary.contract_markdown(), REGEN


def test_every_missing_field_is_reported_at_once():
    minimal = {"runs": [{"name": "I", "eot": 1e11, "efficiency": 0.6, "background": 0.1, "observed": 0}],
               "masses_GeV": [0.01]}
    with pytest.raises(InputError) as err:
        summary.validate(minimal, file="mine.json")
    msg = str(err.value)
    assert msg.startswith("mine.json:") and "more)" not in msg
    for field in ("analysis", "beam_energy_GeV", "emiss_min_GeV", "cross_section", "cl", "correlated",
                  "runs.0.eot_unc", "runs.0.efficiency_unc"):
        assert field in msg
    assert "missing fields: " in msg and len(msg.splitlines()) == 1


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
