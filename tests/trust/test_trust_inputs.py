"""Issue #13: datasets.json values and names an adversary (or a typo) can use, and data relabelled as MC.

Every case fails on the old code (it was accepted: infinity into the outputs, a string or a boolean
coerced, a run name writing outside --out, data processed unblinded as "mc") and now stops the run before
anything is written, with one line naming the file and the field (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from na64ana import datasets as ds
from na64ana.cli import main as cli_main
from na64ana.errors import InputError


def _edit(path: Path, edit) -> Path:
    raw = json.loads(path.read_text())
    edit(raw)
    path.write_text(json.dumps(raw))
    return path


def _run0(raw):
    return raw["campaigns"]["test"]["runs"]["A"]


BAD_VALUES = {
    "inf-eot": (lambda r: _run0(r).__setitem__("eot", float("inf")), "Infinity"),
    "1e400-eot": (None, "runs.A.eot"),
    "nan-efficiency": (lambda r: _run0(r).__setitem__("efficiency", float("nan")), "NaN"),
    "string-eot": (lambda r: _run0(r).__setitem__("eot", "1e9"), "runs.A.eot"),
    "bool-nevents": (lambda r: _run0(r)["files"][0].__setitem__("nevents", True), "files.0.nevents"),
    "absurd-eot": (lambda r: _run0(r).__setitem__("eot", 1e300), "runs.A.eot"),
    "bool-year": (lambda r: _run0(r).__setitem__("year", False), "runs.A.year"),
}


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_bad_values_rejected_at_load(case, synth_campaign, tmp_path, capsys):
    edit, field = BAD_VALUES[case]
    path = synth_campaign.datasets
    if edit is None:  # the literal text 1e400 (json parses it as infinity)
        path.write_text(path.read_text().replace('"eot": 1000000000.0', '"eot": 1e400', 1))
    else:
        _edit(path, edit)
    with pytest.raises(InputError) as exc:
        ds.load(path)
    assert field in str(exc.value) and str(path) in str(exc.value)
    out = tmp_path / "out"
    assert cli_main(["run", "--datasets", str(path), "--out", str(out), "--no-cache"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and field in err[0]
    assert not (out / "cutflows").exists() and not (out / "run.complete").exists()


def test_deeply_nested_json_is_one_line(synth_campaign, tmp_path, capsys):
    path = synth_campaign.datasets
    text = path.read_text()
    path.write_text(text[:-1] + ', "x": ' + "[" * 5000 + "]" * 5000 + "}")
    assert cli_main(["run", "--datasets", str(path), "--out", str(tmp_path / "o"), "--no-cache"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.mark.parametrize("name", ["../../x", "/abs", "a/b", "..", ".hidden"])
def test_run_names_cannot_leave_the_output_folder(name, synth_campaign, tmp_path, capsys):
    def rename(raw):
        runs = raw["campaigns"]["test"]["runs"]
        runs[name] = runs.pop("A")

    path = _edit(synth_campaign.datasets, rename)
    with pytest.raises(InputError, match="plain name"):
        ds.load(path)
    assert cli_main(["run", "--datasets", str(path), "--out", str(tmp_path / "o" / "p"), "--no-cache"]) == 2
    assert not (tmp_path / "x").exists() and not (tmp_path / "o" / "x.json").exists()


def test_sample_names_cannot_leave_the_output_folder(synth_campaign):
    path = _edit(synth_campaign.datasets,
                 lambda r: r["campaigns"]["test"]["runs"]["B"]["files"][1].__setitem__("sample", "../sig"))
    with pytest.raises(InputError, match="sample"):
        ds.load(path)


def test_data_relabelled_as_mc_with_a_weight_map_is_refused(synth_campaign, tmp_path, capsys):
    """Old code: kind "mc" + a branch map supplying some float branch as weight processed data unblinded."""
    def relabel(raw):
        camp = raw["campaigns"]["test"]
        camp["branch_map"] = {"weight": "ecal_e", "truth_process": "ecal_pileup", "truth_e0": "ecal_e"}
        for f in camp["runs"]["A"]["files"]:
            f["kind"] = "mc"

    path = _edit(synth_campaign.datasets, relabel)
    out = tmp_path / "out"
    assert cli_main(["run", "--datasets", str(path), "--out", str(out), "--no-cache"]) == 2
    err = capsys.readouterr().err
    assert "branch_map.weight" in err or "branch_map.truth" in err
    assert not (out / "cutflows").exists()


def test_data_relabelled_as_mc_without_truth_is_refused(synth_campaign, tmp_path, synth, capsys):
    """A data file (no truth branches) with a weight branch added is still data: kind "mc" refused."""
    arrays, _ = synth.make_arrays(seed=9)
    from na64ana import contract

    drop = tuple(b for b in contract.branch_types(mc=True) if b.startswith("truth_"))
    synth.write_tree(synth_campaign.paths["a1"], arrays, mc=True, drop=drop)
    path = _edit(synth_campaign.datasets,
                 lambda r: r["campaigns"]["test"]["runs"]["A"]["files"][0].__setitem__("kind", "mc"))

    def split(raw):  # one kind per dataset key: the relabelled file alone in run A
        raw["campaigns"]["test"]["runs"]["A"]["files"] = raw["campaigns"]["test"]["runs"]["A"]["files"][:1]

    _edit(path, split)
    out = tmp_path / "out"
    assert cli_main(["run", "--datasets", str(path), "--out", str(out), "--no-cache"]) == 3
    assert "truth_" in capsys.readouterr().err
    assert not (out / "cutflows").exists()
