"""``na64ana physics`` subcommands."""

from __future__ import annotations

import csv
import json

import pytest

from na64ana.cli import main
from na64ana.physics.yields import signal_yield_per_eot, yield_per_eot_grid


def test_yield_json(capsys):
    assert main(["physics", "yield", "--mass", "0.0167", "--target", "pb", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["sigma_etl_pb"] == pytest.approx(row["sigma_ww_pb"] / row["k"])
    assert row["yield_per_eot"] == pytest.approx(signal_yield_per_eot(0.0167, 1e-4, target="pb"))


def test_yield_text(capsys):
    assert main(["physics", "yield", "--mass", "0.1", "--eps", "1e-3"]) == 0
    out = capsys.readouterr().out
    for word in ("sigma_WW", "k ", "sigma_ETL", "A'/EOT"):
        assert word in out


@pytest.mark.parametrize("argv, field", [
    (["--mass", "4.0"], "mass"),
    (["--mass", "0.01", "--eps", "-1"], "eps"),
    (["--mass", "0.01", "--target", "w"], "target"),
    (["--mass", "0.01", "--xsec", "exact"], "xsec"),
])
def test_yield_bad_input_exit_code(argv, field, capsys):
    assert main(["physics", "yield", *argv]) == 2
    assert field in capsys.readouterr().err


def test_scan_writes_table_and_provenance(tmp_path):
    out = tmp_path / "scan"
    assert main(["physics", "scan", "--masses", "0.002", "0.02", "0.2", "--out", str(out)]) == 0
    table = json.loads((out / "yields.json").read_text())
    assert table["mass_GeV"] == [0.002, 0.02, 0.2]
    assert table["yield_per_eot"] == pytest.approx(list(yield_per_eot_grid([0.002, 0.02, 0.2], 1e-4)))
    rows = list(csv.reader((out / "yields.csv").open()))
    assert rows[0] == ["mass_GeV", "yield_per_eot"] and len(rows) == 4
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["stages"]["physics"]["inputs"]["eps"] == 1e-4


def test_scan_refuses_foreign_folder(tmp_path):
    (tmp_path / "someone_elses.txt").write_text("x")
    assert main(["physics", "scan", "--masses", "0.01", "--out", str(tmp_path)]) == 4


def test_spectrum(tmp_path, capsys):
    assert main(["physics", "spectrum", "--mass", "0.02", "--bins", "10", "--out", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 11
    assert (tmp_path / "spectrum_0.02.csv").exists()


@pytest.mark.parametrize("argv, field", [
    (["yield", "--mass", "-1"], "--mass"),
    (["spectrum", "--mass", "0"], "--mass"),
    (["yield", "--mass", "0.01", "--e0", "-5"], "--e0"),
])
def test_non_positive_mass_is_a_one_line_error(argv, field, capsys):
    assert main(["physics", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and field in err and "array(" not in err


def test_scan_refuses_a_negative_mass(tmp_path, capsys):
    assert main(["physics", "scan", "--masses", "-1", "0.1", "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "--masses" in err and "-1" in err and not (tmp_path / "s").exists()
