"""``na64ana limits`` options: --seed reaches the toys (cross-check and provenance)."""

from __future__ import annotations

import json

from na64ana.cli import main

SUMMARY = {"masses_GeV": [0.001, 0.1],
           "runs": [{"name": "A", "eot": 3e11, "efficiency": 0.6, "background": 0.5, "background_unc": 0.1,
                     "observed": 0}]}


def _limits(tmp_path, *extra: str) -> tuple[dict, dict]:
    f = tmp_path / "s.json"
    f.write_text(json.dumps(SUMMARY))
    out = tmp_path / ("lim" + "_".join(extra))
    assert main(["limits", "--summary", str(f), "--out", str(out), "--crosscheck-toys", "10", *extra]) == 0
    prov = json.loads((out / "provenance.json").read_text())["stages"]["limits"]
    return json.loads((out / "limits.json").read_text()), prov


def test_seed_reaches_the_toy_crosscheck_and_provenance(tmp_path):
    rec, prov = _limits(tmp_path, "--seed", "7")
    assert prov["seeds"] == {"toys_seed": 7}
    assert [p["seed"] for p in rec["crosscheck"]["points"]] == [7, 8]  # one seed per workspace
    rec_default, prov_default = _limits(tmp_path)
    assert prov_default["seeds"] == {"toys_seed": 1}
    assert [p["seed"] for p in rec_default["crosscheck"]["points"]] == [1, 2]


def test_negative_seed_is_refused(tmp_path, capsys):
    f = tmp_path / "s.json"
    f.write_text(json.dumps(SUMMARY))
    assert main(["limits", "--summary", str(f), "--out", str(tmp_path / "o"), "--seed", "-3"]) == 2
    assert "--seed" in capsys.readouterr().err
