"""Blinding is a security property: no output of a blinded run carries signal-box information."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from na64ana import blinding, selection
from na64ana.cli import main as cli_main

VOLATILE = {"metrics.json", "provenance.json"}  # timings, command lines, paths


def _inputs(tmp: Path, synth, variant: str) -> Path:
    """Same events outside the box; inside the box (E_ECAL < 50, E_HCAL < 1) ``variant`` decides."""
    a, cats = synth.make_arrays(seed=7)
    if variant == "signal":  # inject signal: every box event passes all cuts, spread in E_ECAL
        inbox = np.isin(cats, ["box", "box_fail_track"])
        a["track_p"][inbox] = 100.0
        a["ecal_e"][inbox] = np.linspace(5.0, 45.0, inbox.sum())
    tmp.mkdir()
    p = synth.write_tree(tmp / "data.root", a)
    return synth.write_datasets(tmp / "datasets.json", {"I": (False, [synth.file_entry(p, len(cats))])})


def _run(tmp: Path, dsets: Path, *extra: str) -> tuple[Path, str]:
    out = tmp / "out"
    rc = cli_main(["run", "--datasets", str(dsets), "--out", str(out), "--chunksize", "100", *extra])
    assert rc == 0
    return out


def _snapshot(out: Path, root: Path) -> dict[str, bytes]:
    files = {}
    for p in sorted(out.rglob("*")):
        if p.is_dir() or p.name in VOLATILE:
            continue
        data = p.read_bytes()
        if p.suffix == ".log":
            text = data.decode().replace(str(root), "ROOT")
            text = re.sub(r"^\S+ \S+ ", "", text, flags=re.M)  # timestamps
            text = "\n".join(ln for ln in text.splitlines() if " s wall " not in ln)
            data = text.encode()
        files[str(p.relative_to(out))] = data
    return files


@pytest.fixture
def pair(tmp_path, synth):
    return {v: (tmp_path / v, _inputs(tmp_path / v, synth, v)) for v in ("plain", "signal")}


def _outputs(pair, capsys, *extra):
    snaps, printed = {}, {}
    for v, (d, dsets) in pair.items():
        out = _run(d, dsets, *extra)
        printed[v] = capsys.readouterr().out
        snaps[v] = _snapshot(out, d)
    return snaps, printed


def test_blinded_outputs_identical_when_only_the_box_differs(pair, capsys):
    snaps, printed = _outputs(pair, capsys)
    assert "cutflows/I.json" in snaps["plain"] and "hists/plane_final.pkl" in snaps["plain"]
    assert any(k.startswith("logs/") for k in snaps["plain"])
    assert snaps["plain"].keys() == snaps["signal"].keys()
    for name in snaps["plain"]:
        assert snaps["plain"][name] == snaps["signal"][name], f"{name} leaks signal-box information"
    assert printed["plain"] == printed["signal"]


def test_unblinded_outputs_differ(pair, capsys):
    snaps, _ = _outputs(pair, capsys, "--unblind")
    differ = {n for n in snaps["plain"] if snaps["plain"][n] != snaps["signal"][n]}
    assert {"cutflows/I.json", "regions.json", "hists/plane_final.pkl"} <= differ


def test_blinded_hists_have_empty_box_and_flag(pair, capsys):
    from na64ana import outputs

    d, dsets = pair["signal"]
    out = _run(d, dsets)
    for name in outputs.list_hists(out):
        h = outputs.load_hist(out, name)
        assert h.metadata["blinded"] is True
        assert h.metadata["blinded_region"]["I"] == {"ecal_max": 50.0, "hcal_max": 1.0}
    for name in ("plane_loose", "plane_i_iv", "plane_final"):
        h = outputs.load_hist(out, name)[{"run": "I"}]
        assert h[:50j:sum, :1j:sum].value == 0
        assert h.sum().value > 0


def test_is_blinded_and_hidden_rows():
    assert blinding.is_blinded("data", False) and not blinding.is_blinded("data", True)
    assert not blinding.is_blinded("mc", False)
    sel = selection.resolve("invisible", campaign="prl2019", run="I", hcal0=False)
    assert blinding.hidden_cuts(sel) == {"signal_box"}
    vals = {"ecal_e": np.array([30.0, 30.0, 60.0, np.nan]), "hcal_e": np.array([0.5, 2.0, 0.5, 0.5])}
    assert blinding.region_mask(sel, vals).tolist() == [True, False, False, False]
