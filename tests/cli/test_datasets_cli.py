"""'na64ana datasets add': real ntuples listed with nevents and sha256 filled in; every bad file in one
error and nothing written then."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import uproot

from na64ana import datasets as ds
from na64ana.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _ntuple(path: Path, n: int, tree: str = "events") -> Path:
    with uproot.recreate(path) as f:
        f[tree] = {"ecal_e": np.linspace(1, 100, n)}
    return path


def test_add_fills_nevents_sha256_and_shares_the_run_eot(tmp_path):
    dfile = tmp_path / "datasets.json"
    shutil.copy(ROOT / "datasets.json", dfile)
    a, b = _ntuple(tmp_path / "a.root", 30), _ntuple(tmp_path / "b.root", 10)
    assert main(["datasets", "add", str(a), str(b), "--datasets", str(dfile), "--campaign", "prl2019",
                 "--run", "I"]) == 0
    run = ds.load(dfile).campaigns["prl2019"].runs["I"]
    got = {f.path: (f.nevents, f.sha256, f.eot) for f in run.files}
    assert got["a.root"][:2] == (30, ds.sha256sum(a)) and got["b.root"][0] == 10
    assert abs(got["a.root"][2] + got["b.root"][2] - run.eot) < 1e-6 * run.eot
    assert abs(got["a.root"][2] / got["b.root"][2] - 3) < 1e-9


def test_every_bad_file_is_reported_at_once_and_nothing_written(tmp_path, capsys):
    dfile = tmp_path / "datasets.json"
    shutil.copy(ROOT / "datasets.json", dfile)
    before = dfile.read_text()
    good = _ntuple(tmp_path / "good.root", 5)
    wrong = _ntuple(tmp_path / "wrong.root", 5, tree="other")
    junk = tmp_path / "junk.root"
    junk.write_text("not root")
    rc = main(["datasets", "add", str(good), str(wrong), str(junk), "--datasets", str(dfile),
               "--campaign", "prl2019", "--run", "I"])
    err = capsys.readouterr().err
    assert rc == 3 and "2 file(s) not added" in err and "wrong.root" in err and "junk.root" in err
    assert len(err.strip().splitlines()) == 1 and dfile.read_text() == before
    assert main(["datasets", "add", str(good), "--datasets", str(dfile), "--campaign", "prl2019",
                 "--run", "IX"]) == 2
    assert "have: I, II, III" in capsys.readouterr().err
    json.loads(dfile.read_text())
