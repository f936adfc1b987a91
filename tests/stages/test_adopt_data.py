"""``demo --data`` with the README's relative branch map, from any folder: the adopted ``data/`` copy
inlines the map (it was relative to the user's datasets file), so the run stage reads the renamed branches
whatever the working directory; a missing map is one error naming the file and the field."""

from __future__ import annotations

import json

import pytest
import uproot

from na64ana import datasets as dsets
from na64ana import pipeline
from na64ana.cli import main
from na64ana.errors import InputError

RENAMED = {"track_p": "mom_in", "ecal_e": "ecal_total"}  # README "Running on real NA64 ntuples"


@pytest.fixture
def user_folder(tmp_path, synth):
    """A user's project folder: ntuples with renamed branches, mymap.toml, my_datasets.json (relative)."""
    proj = tmp_path / "proj"
    proj.mkdir()
    arrays, _ = synth.make_arrays(seed=11)
    with uproot.recreate(proj / "run_a.root") as f:  # as a collaborator's ntuple names them
        cols = {RENAMED.get(k, k): v for k, v in arrays.items()}
        f.mktree("events", {k: v.dtype for k, v in cols.items()})
        f["events"].extend(cols)
    (proj / "mymap.toml").write_text('[branches]\ntrack_p = "mom_in"\necal_e = "ecal_total"\n')
    ds = synth.write_datasets(proj / "my_datasets.json",
                              {"A": (False, [synth.file_entry(proj / "run_a.root", len(arrays["ecal_e"]))])})
    raw = json.loads(ds.read_text())
    raw["campaigns"]["test"]["branch_map"] = "mymap.toml"
    ds.write_text(json.dumps(raw, indent=1))
    return proj


def test_adopted_data_runs_from_any_folder(user_folder, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # neither the project folder nor the results folder
    copy = pipeline.adopt_data("../proj/my_datasets.json", tmp_path / "results" / "data", campaign="test",
                               runs=["A"])
    camp = dsets.load(copy).campaign("test")
    assert camp.branch_map == RENAMED  # inlined: the copy stands alone
    monkeypatch.chdir(tmp_path / "results")
    assert main(["run", "--datasets", str(copy.relative_to(tmp_path / "results")), "--out", "run",
                 "--no-cache"]) == 0
    rows = json.loads((tmp_path / "results" / "run" / "cutflows" / "A.json").read_text())["rows"]
    listed = camp.runs["A"].files[0].nevents
    assert rows[0]["cut"] == "all" and rows[0]["events"] == listed
    assert 0 < rows[1]["events"] < rows[0]["events"]  # the renamed track_p was read and cut on


def test_missing_branch_map_is_one_error_naming_the_field(user_folder, tmp_path):
    (user_folder / "mymap.toml").unlink()
    with pytest.raises(InputError) as err:
        pipeline.adopt_data(user_folder / "my_datasets.json", tmp_path / "data", campaign="test", runs=["A"])
    assert err.value.field == "campaigns.test.branch_map" and "mymap.toml" in str(err.value)
