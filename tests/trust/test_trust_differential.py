"""Issue #13 item 3: blinding as a property of all outputs together, with a different NUMBER of box events.

Two data sets agree on every event outside the box; B has extra events inside it (some passing every cut,
some failing the very first cuts, so the box count differs before any cut). Every blinded output is
identical except the input inventory: file entries (so the "all events read" row 0 and the efficiencies
relative to it), provenance.json, metrics.json and the logs. In particular every histogram (flow bins
included) and the loose plane: the old code filled it with every event outside the box, so
row 0 - integral(plane_loose) was the number of box events before any cut."""

from __future__ import annotations

import json

import numpy as np
import pytest

from na64ana.cli import main as cli_main
from na64ana.processing import outputs

INVENTORY = {"provenance.json", "metrics.json", "run.complete"}


@pytest.fixture(scope="module")
def pair(synth, tmp_path_factory):
    """The two blinded runs, made once for the module (both tests only read them)."""
    tmp_path = tmp_path_factory.mktemp("differential")
    base, _ = synth.make_arrays(seed=5)
    extra, _ = synth.make_arrays({"box": 9, "box_fail_track": 6, "fail_srd": 7, "fail_track": 5}, seed=6)
    extra["ecal_e"][:] = np.linspace(5.0, 45.0, len(extra["ecal_e"]))  # all inside the box
    for m in ("hcal_e0", "hcal_e1", "hcal_e2", "hcal_e3"):
        extra[m][:] = 0.05  # E_HCAL = 0.2 GeV < 1 GeV
    out = {}
    for name, arrays in (("A", base), ("B", {k: np.concatenate([base[k], extra[k]]) for k in base})):
        d = tmp_path / name
        d.mkdir()
        arrays = dict(arrays)
        arrays["event"] = np.arange(len(arrays["ecal_e"]), dtype=arrays["event"].dtype)
        f = synth.write_tree(d / "data.root", arrays)
        dsets = synth.write_datasets(d / "datasets.json",
                                     {"I": (False, [synth.file_entry(f, len(arrays["ecal_e"]))])})
        o = d / "out"
        assert cli_main(["run", "--datasets", str(dsets), "--out", str(o), "--chunksize", "100"]) == 0
        out[name] = o
    return out


def test_box_count_changes_no_output(pair):
    a, b = pair["A"], pair["B"]
    ca, cb = outputs.load_cutflow(a, "I"), outputs.load_cutflow(b, "I")
    assert cb["rows"][0]["events"] > ca["rows"][0]["events"]  # B really has more events (inventory)
    for i, (ra, rb) in enumerate(zip(ca["rows"][1:], cb["rows"][1:], strict=True)):
        rel = (lambda r: r["eff_rel"]) if i else (lambda r: None)  # row 1 relative to row 0: inventory
        assert (ra["events"], ra["weighted"], rel(ra), ra["blinded"]) == \
               (rb["events"], rb["weighted"], rel(rb), rb["blinded"]), ra["cut"]
    assert outputs.load_regions(a) == outputs.load_regions(b)
    names = outputs.list_hists(a)
    assert names == outputs.list_hists(b) and len(names) > 10
    for n in names:
        assert (a / "hists" / f"{n}.json").read_bytes() == (b / "hists" / f"{n}.json").read_bytes(), n
        ha = outputs.load_hist(a, n)
        np.testing.assert_array_equal(ha.values(flow=True), outputs.load_hist(b, n).values(flow=True))
    files = {p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file() and ".cache" not in p.parts}
    for rel in sorted(files):
        if rel in INVENTORY or rel.startswith("logs/") or rel.startswith("cutflows/"):
            continue
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_row0_minus_loose_plane_is_not_the_box_count(pair):
    for o in pair.values():
        rows = outputs.load_cutflow(o, "I")["rows"]
        loose = outputs.load_hist(o, "plane_loose").sum(flow=True).value
        srd = next(r for r in rows if r["cut"] == "srd")
        assert loose == srd["events"]  # the loose plane is the SRD-tagged beam, as NA64 shows it
    a, b = (outputs.load_cutflow(pair[k], "I")["rows"][0]["events"] for k in "AB")
    la, lb = (outputs.load_hist(pair[k], "plane_loose").sum(flow=True).value for k in "AB")
    assert la == lb and json.dumps(a) != json.dumps(b)
