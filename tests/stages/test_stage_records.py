"""Typed stage records (na64ana.records), their documented schemas, and the one blinding rule.

Fast: the records are built from small synthetic folders (tests/results_factory.py) and the synthetic
run of conftest; the real chain's records are compared CLI vs demo in tests/integration/test_pipeline.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from results_factory import make_results

from na64ana import blinding, records
from na64ana.bookkeeping import audit
from na64ana.cli import main as cli_main
from na64ana.errors import InputError
from na64ana.processing import execute, outputs
from na64ana.selection import resolve

DOCS = Path(__file__).resolve().parents[2] / "docs" / "interfaces.md"


def test_docs_embed_the_current_record_schemas():
    """docs/interfaces.md holds the JSON schemas generated from the models; regenerate with
    ``python -c 'import na64ana.records as r; r.update_docs()'`` after changing a record."""
    assert records.docs_block(DOCS.read_text()) == records.schemas_markdown(), "docs/interfaces.md is stale"


@pytest.fixture
def folder(tmp_path):
    return make_results(tmp_path / "res", blinded=True)


def test_factory_folders_are_valid_records(folder):
    bkg = records.BackgroundTable.load(folder)
    eff = records.EfficiencyTable.load(folder)
    lim = records.LimitsRecord.load(folder / "limits")
    assert bkg.blinding == "blinded" and eff.blinding == "no-data" and lim.blinding == "blinded"
    assert {r.run for r in bkg.runs} == set(eff.runs)
    for p in sorted((folder / "cutflows").glob("*.json")):
        cf = records.Cutflow.load(p)
        assert cf.blinded and cf.rows[-1].events is None


@pytest.mark.parametrize("cls", [records.BackgroundTable, records.EfficiencyTable, records.LimitsRecord])
def test_records_round_trip_their_json_unchanged(folder, cls, tmp_path):
    path = folder / ("limits" if cls is records.LimitsRecord else "") / cls.file_name
    rec = cls.load(path)
    assert rec.to_json() == json.loads(path.read_text())
    rec.dump(tmp_path / "copy.json")
    assert cls.load(tmp_path / "copy.json") == rec


def test_a_wrong_key_is_one_error_naming_file_and_field(folder, tmp_path):
    doc = json.loads((folder / "background.json").read_text())
    doc["runs"][0]["total"]["valeu"] = doc["runs"][0]["total"].pop("value")
    bad = tmp_path / "background.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(InputError) as err:
        records.BackgroundTable.load(bad)
    assert str(bad) in str(err.value) and "runs.0.total" in str(err.value)


def test_run_output_record_reads_cutflows_and_regions(synth_campaign, tmp_path):
    res = execute.run(execute.plan(synth_campaign.datasets), "invisible")
    outputs.write_run(tmp_path / "run", res, processor="invisible", unblind=False)
    run = outputs.load_run(tmp_path / "run")
    assert set(run.cutflows) == {"A", "B"} and run.campaign_keys() == {"A": "A", "B": "B"}
    assert run.blinding == "blinded" and run.regions.keys["A"].signal_box is None
    assert run.regions.keys["A"].counts["sideband_c"] is not None
    assert run.regions.to_json() == json.loads((tmp_path / "run" / "regions.json").read_text())
    (tmp_path / "run" / outputs.COMPLETE).unlink()
    with pytest.raises(Exception, match="not a complete run output"):
        outputs.load_run(tmp_path / "run")


# ------------------------------------------------------------------------------------------------------
# One blinding rule


def test_the_blinding_rule_is_the_same_on_resolved_and_recorded_selections():
    sel = resolve("invisible", campaign="prl2019", run="III", hcal0=True)
    recorded = json.loads(json.dumps(sel.as_dict()))
    assert blinding.hidden_cuts(sel) == blinding.hidden_cuts(recorded) == {"signal_box"}
    assert blinding.hidden_regions(sel) == blinding.hidden_regions(recorded) == {"signal_box"}
    assert blinding.SignalBox.of(sel) == blinding.SignalBox.of(recorded) == blinding.SignalBox(50.0, 1.0)


def test_moving_the_box_moves_the_hidden_rows_and_regions():
    sel = json.loads(json.dumps(resolve("invisible", campaign="prl2019", run="III", hcal0=True).as_dict()))
    sel["box"]["hcal_max"] = 0.5  # no cut keeps E_HCAL below the box edge any more
    assert blinding.hidden_cuts(sel) == set() and blinding.hidden_regions(sel) == set()
    assert blinding.hidden_cuts({"cuts": []}) == set()  # no box recorded: nothing can be hidden


def test_one_blinding_field_with_three_states():
    assert [blinding.state(x) for x in (True, False, None)] == ["blinded", "unblinded", "no-data"]
    assert blinding.combine(["no-data", "unblinded"]) == "unblinded"
    assert blinding.combine(["unblinded", "blinded"]) == "blinded"
    assert blinding.combine([]) == "no-data"


def test_provenance_records_one_blinding_field(tmp_path):
    from na64ana.bookkeeping import provenance

    with pytest.raises(TypeError, match="one field"):
        provenance.write(tmp_path, "s", unblind=True)
    with pytest.raises(ValueError, match="blinding must be one of"):
        provenance.write(tmp_path, "s", blinding="open")  # type: ignore[arg-type]
    provenance.write(tmp_path, "s", blinding="no-data")
    rec = json.loads((tmp_path / "provenance.json").read_text())["stages"]["s"]
    assert rec["blinding"] == "no-data" and "blinded" not in rec and "unblind" not in rec


def test_audit_reads_the_blinding_field_and_the_older_flags(tmp_path):
    def folder(name: str, rec: dict) -> Path:
        d = tmp_path / name
        d.mkdir()
        (d / "provenance.json").write_text(json.dumps({"stages": {"limits": rec}}))
        return d

    assert audit._state({"blinding": "unblinded"}) is True and audit._state({"blinding": "blinded"}) is False
    assert audit._state({"unblind": True}) is True and audit._state({"blinded": True}) is False  # format 2
    assert audit._no_data({"blinding": "no-data"}) and audit._no_data({"blinded": None})
    quiet = audit.scan_blinding(folder("nodata", {"blinding": "no-data"}))
    assert [f for f in quiet if f.kind == "provenance"] == []
    silent = audit.scan_blinding(folder("silent", {"blinding": None}))
    assert [(f.kind, f.where) for f in silent] == [("provenance", "stages.limits")]


def test_a_mixed_folder_is_a_warning_not_an_error(tmp_path, capsys):
    """Limits of a published (unblinded) summary beside a blinded run: verify warns, does not fail."""
    res = make_results(tmp_path / "res", blinded=True, stages=("run",))
    prov = {"stages": {"run": {"blinding": "blinded"}}}
    (res / "provenance.json").write_text(json.dumps(prov))
    (res / "limits").mkdir()
    opened = {"stages": {"limits": {"blinding": "unblinded"}}}
    (res / "limits" / "provenance.json").write_text(json.dumps(opened))
    findings = audit.scan_blinding(res)
    assert any(f.kind == "provenance" and "mixed" in f.what for f in findings)
    assert cli_main(["verify", str(res), "--allow-extra"]) in (0, 3)
    assert "mixed: the box is opened in limits/provenance.json" in capsys.readouterr().out
