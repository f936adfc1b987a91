"""The foundation: datasets.json validates with every published condition cited, the README documents the
exact ntuple contract, published numbers resolve, and branch maps reject unknown names."""

import json
from pathlib import Path

import pytest

from na64ana import contract, datasets, published
from na64ana.errors import InputError

ROOT = Path(__file__).resolve().parents[2]


def test_repo_datasets_json_validates_and_matches_published_eot():
    ds = datasets.load(ROOT / "datasets.json")
    prl = ds.campaign("prl2019")
    assert [r for r in prl.runs] == ["I", "II", "III"]
    assert prl.total_eot == pytest.approx(published.get("exposure.prl2019_eot"))
    assert ds.campaign("prd2018").total_eot == pytest.approx(published.get("exposure.prd2018_eot"))
    for camp in ds.campaigns.values():
        for run in camp.runs.values():
            assert {"eot", "intensity_e_per_spill", "efficiency"} <= set(run.sources)


def test_readme_carries_the_contract_table():
    assert contract.markdown_table() in (ROOT / "README.md").read_text()


@pytest.mark.parametrize(("path", "value", "field"), [
    (("campaigns", "prl2019", "runs", "II", "eot"), -1.0, "campaigns.prl2019.runs.II.eot"),
    (("campaigns", "prl2019", "runs", "I", "efficiency"), 1.5, "campaigns.prl2019.runs.I.efficiency"),
    (("default_campaign",), "nope", "default_campaign"),
])
def test_invalid_datasets_name_the_field(tmp_path, path, value, field):
    raw = json.loads((ROOT / "datasets.json").read_text())
    node = raw
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    f = tmp_path / "datasets.json"
    f.write_text(json.dumps(raw))
    with pytest.raises(InputError) as err:
        datasets.load(f)
    assert str(f) in str(err.value)
    assert field.split(".")[-1] in str(err.value)


def test_missing_eot_and_uncited_numbers_are_errors(tmp_path):
    raw = json.loads((ROOT / "datasets.json").read_text())
    del raw["campaigns"]["prd2018"]["runs"]["I"]["eot"]
    with pytest.raises(InputError, match="eot"):
        datasets.validate(raw)
    raw = json.loads((ROOT / "datasets.json").read_text())
    del raw["campaigns"]["prd2018"]["runs"]["I"]["sources"]["background"]
    with pytest.raises(InputError, match="sources missing"):
        datasets.validate(raw)


def test_unknown_campaign_and_run():
    ds = datasets.load(ROOT / "datasets.json")
    with pytest.raises(InputError, match="unknown campaign 'x'"):
        ds.campaign("x")
    with pytest.raises(InputError, match=r"unknown run\(s\) \['IV'\]"):
        ds.runs("prl2019", ["IV"])


def test_branch_map_rejects_unknown_canonical_names(tmp_path):
    f = tmp_path / "map.toml"
    f.write_text('[branches]\ntrack_p = "mom"\nnot_a_branch = "x"\n')
    with pytest.raises(ValueError, match="not_a_branch"):
        contract.load_branch_map(f)
    f.write_text('[branches]\ntrack_p = "mom"\n')
    assert contract.resolve("track_p", contract.load_branch_map(f)) == "mom"
    assert contract.resolve("ecal_e", contract.load_branch_map(f)) == "ecal_e"


def test_published_lookup_names_missing_keys():
    assert published.get("trigger.ecal_max_GeV") > 0
    assert published.source("trigger.ecal_max_GeV")
    with pytest.raises(KeyError, match="trigger.nope"):
        published.get("trigger.nope")
