"""Issue #13, items 1-3 for EVERY processor (invisible, ALP, visible): one blinding rule, and blinding as a
property of all outputs together when the NUMBER of events inside the blinded region changes.

For each processor, data sets A, B and C agree on every event outside the processor's blinded region (the
invisible box; the ALP box and its two signal regions; the visible E_WCAL + E_ECAL window) and hold 0, k
and k' events inside it, at every cut level (some fail the very first cut). Every output of a blinded
``na64ana run`` is then identical, except the input inventory: row 0 of the cut flows ("all events read",
which equals the entries recorded for the inputs), the efficiencies relative to row 0, the markdown tables
that print them, metrics.json, the inputs of provenance.json and the manifest hashes of those files.
Compared: every cut-flow row from row 1 on (counts, weights, relative efficiencies, flags), regions.json,
every histogram file byte for byte (flow bins included), every other provenance field. The loose plane is
the beam after the preselection, so row 0 minus its integral is not the box count (item 2). The blinding
audit of ``verify`` finds nothing in any of the folders. Moving the ALP regions or the visible window in a
user selection is refused (exit 2, naming the field)."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from na64ana.bookkeeping import audit
from na64ana.cli import main as cli_main
from na64ana.processing import outputs

# make test-fast leaves this module to make test:
# three processors, each run twice with different box contents (~4.5 s CPU)
pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
SELECTIONS = HERE.parents[1] / "selections"
INVENTORY_FILES = {"metrics.json", "run.complete", "provenance.json"}
# provenance fields that describe the invocation or the inputs (inventory), not the outputs
INVENTORY_FIELDS = {"time_utc", "command", "invocation", "inputs", "metrics", "datasets_file",
                    "datasets_sha256", "outputs", "platform", "git_commit"}


def _module(rel: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_trust_{Path(rel).stem}", HERE.parent / rel)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


ALP = _module("processing/test_alp_selection.py")
VIS = _module("processing/test_visible_selection.py")


def _cat(parts: list[dict[str, np.ndarray]], seed: int) -> dict[str, np.ndarray]:
    """Concatenate, put the box events at seeded random places, renumber (event numbers are not outputs)."""
    a = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    n = len(next(iter(a.values())))
    perm = np.random.default_rng(seed).permutation(n)
    a = {k: v[perm] for k, v in a.items()}
    a["event"][:] = np.arange(n)
    return a


# -- the three data sets per processor: outside part fixed, inside part of varying size and cut level ----

def _invisible(synth, n_in: int, seed: int) -> dict[str, np.ndarray]:
    out, _ = synth.make_arrays(seed=5, shuffle=False)
    if not n_in:
        return _cat([out], seed)
    k = max(1, n_in // 4)
    box, _ = synth.make_arrays({"box": n_in, "box_fail_track": k, "fail_srd": k, "fail_track": k}, seed=seed,
                               shuffle=False)
    box["ecal_e"][:] = np.linspace(5.0, 45.0, len(box["ecal_e"]))  # all inside E_ECAL < 50
    for m in ("hcal_e0", "hcal_e1", "hcal_e2", "hcal_e3"):
        box[m][:] = 0.05  # E_HCAL = 0.2 GeV < 1 GeV
    return _cat([out, box], seed)


def _alp(n_in: int, seed: int) -> dict[str, np.ndarray]:
    out, _ = ALP.make_arrays({"hcal1_active": 5, "between": 6, "ecal_high": 7, "hcal234_low": 3})
    if not n_in:
        return _cat([out], seed)
    k = max(1, n_in // 3)
    box, cats = ALP.make_arrays({"hcal_decay": n_in, "hcal_decay_hi_ecal": k, "beyond": k, "veto_fired": k})
    box["track_p"][: k] = 90.0  # inside a signal region and failing the first cut
    box["srd_e1"][k: 2 * k] = 0.1  # and the second
    return _cat([out, box], seed)


def _visible(n_in: int, seed: int) -> dict[str, np.ndarray]:
    out, _ = VIS.make_arrays({"low_side": 12, "high_side": 14, "fail_track": 5, "fail_no_v2": 4,
                              "fail_hcal_zero": 3}, seed=1)
    out["wcal_e"][:] = np.where(np.isclose(out["wcal_e"] + out["ecal_e"], 100.0), 10.0, out["wcal_e"])
    if not n_in:
        return _cat([out], seed)
    k = max(1, n_in // 3)
    box, _ = VIS.make_arrays({"golden": n_in, "fail_track": k, "fail_srd": k, "fail_s4_two_mip": k,
                              "fail_hcal_zero": k}, seed=seed)
    return _cat([out, box], seed)


def _datasets_alp(d: Path, a: dict[str, np.ndarray]) -> Path:
    d.mkdir(parents=True)
    return ALP._campaign(d, a)


def _datasets_visible(d: Path, a: dict[str, np.ndarray]) -> Path:
    d.mkdir(parents=True)
    return VIS._campaign(d, a)


def _datasets_invisible(synth, d: Path, a: dict[str, np.ndarray]) -> Path:
    d.mkdir(parents=True)
    f = synth.write_tree(d / "data.root", a)
    return synth.write_datasets(d / "datasets.json", {"I": (False, [synth.file_entry(f, len(a["ecal_e"]))])})


SIZES = (0, 4, 13)  # events inside the blinded region: none, a few, more (each at several cut levels)


@pytest.fixture(scope="module", params=["invisible", "alp", "visible"])
def runs_made(request, synth, tmp_path_factory):
    """The three blinded runs of one processor, made once per module (read-only: see ``runs``)."""
    proc = request.param
    tmp_path = tmp_path_factory.mktemp(f"runs_{proc}")
    folders = []
    for i, n_in in enumerate(SIZES):
        d = tmp_path / f"s{i}"
        if proc == "invisible":
            dsets = _datasets_invisible(synth, d, _invisible(synth, n_in, 10 + i))
        elif proc == "alp":
            dsets = _datasets_alp(d, _alp(n_in, 10 + i))
        else:
            dsets = _datasets_visible(d, _visible(n_in, 10 + i))
        o = d / "out"
        assert cli_main(["run", "--datasets", str(dsets), "--out", str(o), "--processor", proc,
                         "--chunksize", "7", "--no-cache"]) == 0
        folders.append(o)
    return proc, folders


@pytest.fixture
def runs(runs_made, tmp_path):
    """A private copy of runs_made (inputs copied along, same layout): a test may plant values in it."""
    proc, folders = runs_made
    copies = []
    for o in folders:
        shutil.copytree(o.parent, tmp_path / o.parent.name)
        copies.append(tmp_path / o.parent.name / o.name)
    return proc, copies


def _run_record(o: Path) -> dict:
    return json.loads((o / "provenance.json").read_text())["stages"]["run"]


def test_box_count_changes_no_output(runs):
    proc, folders = runs
    ref = folders[0]
    entries = []
    for o in folders:
        rec = _run_record(o)
        assert rec["blinding"] == "blinded" and rec["blinding_rule"] == ("invisible" if proc == "invisible"
                                                                         else proc)
        entries.append(sum(i["nevents"] for i in rec["inputs"] if i.get("role") == "events"))
    assert entries[0] < entries[1] < entries[2]  # the number of box events really differs
    for o, n_read in zip(folders, entries, strict=True):
        for key_file in sorted((o / "cutflows").glob("*.json")):
            cf = json.loads(key_file.read_text())
            cref = json.loads((ref / "cutflows" / key_file.name).read_text())
            assert cf["rows"][0]["events"] == n_read  # row 0 is the inventory, nothing else
            for i, (r, rr) in enumerate(zip(cf["rows"][1:], cref["rows"][1:], strict=True), 1):
                fields = ("cut", "events", "weighted", "blinded", *(("eff_rel",) if i > 1 else ()))
                assert {f: r[f] for f in fields} == {f: rr[f] for f in fields}, (proc, r["cut"])
                if r["events"] is not None:  # eff_abs is row i / row 0: inventory-derived, nothing more
                    assert r["eff_abs"] == pytest.approx(r["events"] / n_read)
            cf["rows"] = cref["rows"] = []
            assert cf == cref
        assert (o / "regions.json").read_bytes() == (ref / "regions.json").read_bytes()
        names = outputs.list_hists(o)
        assert names == outputs.list_hists(ref) and len(names) >= 10
        for n in names:  # byte for byte: every bin, flow bins, metadata
            assert (o / "hists" / f"{n}.json").read_bytes() == (ref / "hists" / f"{n}.json").read_bytes(), n
        rec, rref = _run_record(o), _run_record(ref)
        assert {k: v for k, v in rec.items() if k not in INVENTORY_FIELDS} == \
               {k: v for k, v in rref.items() if k not in INVENTORY_FIELDS}
        man = json.loads((o / "provenance.json").read_text())["manifest"]["files"]
        mref = json.loads((ref / "provenance.json").read_text())["manifest"]["files"]
        assert man.keys() == mref.keys()
        for rel in man:
            if rel in INVENTORY_FILES or rel.startswith("cutflows/"):
                continue
            assert man[rel] == mref[rel], rel
        # the audit of verify finds nothing to complain about
        found = [f for f in audit.scan(o).findings if f.kind != "unblinded"]
        assert not found, found


def test_row0_minus_loose_plane_is_not_the_box_count(runs):
    proc, folders = runs
    looses = []
    for o in folders:
        for cf_file in (o / "cutflows").glob("*.json"):
            rows = json.loads(cf_file.read_text())["rows"]
            loose = outputs.load_hist(o, "plane_loose").sum(flow=True).value
            srd = next(r for r in rows if r["cut"] == "srd")
            assert loose == srd["events"]  # the SRD-tagged beam, as NA64 shows it
            looses.append(loose)
    assert len(set(looses)) == 1  # identical whatever the number of box events


def test_blinded_region_rows_and_counts_are_null(runs):
    proc, folders = runs
    o = folders[-1]
    regions = json.loads((o / "regions.json").read_text())
    (rec,) = regions.values()
    hidden = {"invisible": {"signal_box"}, "alp": {"hcal_decay", "beyond"}, "visible": {"signal_box"}}[proc]
    assert {k for k, v in rec.items() if v is None} == hidden
    (cf,) = [json.loads(p.read_text()) for p in (o / "cutflows").glob("*.json")]
    nulls = {r["cut"] for r in cf["rows"] if r["events"] is None}
    assert nulls == {"invisible": {"signal_box"}, "alp": set(), "visible": {"energy_sum"}}[proc]


# -- the blinded regions of ALP and visible belong to the search, not to the user's selection ----------------

def _variant(tmp_path: Path, name: str, old: str, new: str) -> Path:
    text = (SELECTIONS / f"{name}.toml").read_text()
    assert text.count(old) == 1, old
    p = tmp_path / f"evil_{name}.toml"
    p.write_text(text.replace(old, new))
    return p


ALP_ECAL = '  { variable = "ecal_e", max = 85.0, source = "PRL 125 081801; brief_extensions 5" },'
ATTACKS = {
    "alp-region-emptied": ("alp", '{ variable = "hcal234_e", min = 15.0,',
                           '{ variable = "hcal234_e", min = 1e6,', "regions.hcal_decay"),
    "alp-region-narrowed": ("alp", ALP_ECAL, '  { variable = "ecal_e", max = 10.0, source = "x" },',
                            "regions.hcal_decay"),
    "alp-box-moved": ("alp", 'ecal_max = "@selection.signal_box_ecal_max_GeV"', "ecal_max = 0.0",
                      "box.ecal_max"),
    "visible-window-moved": ("visible", '{ variable = "e_sum", min = 90.0, max = 110.0 }',
                             '{ variable = "e_sum", min = 0.0, max = 1.0 }', "cuts.energy_sum.e_sum"),
    "visible-window-nan": ("visible", '{ variable = "e_sum", min = 90.0, max = 110.0 }',
                           '{ variable = "e_sum", min = nan, max = 110.0 }', "cuts.energy_sum"),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_moved_signal_region_refused(attack, tmp_path, capsys):
    proc, old, new, field = ATTACKS[attack]
    sel = _variant(tmp_path, proc, old, new)
    if proc == "alp":
        dsets = _datasets_alp(tmp_path / "d", _alp(4, 1))
    else:
        dsets = _datasets_visible(tmp_path / "d", _visible(4, 1))
    out = tmp_path / "out"
    argv = ["run", "--datasets", str(dsets), "--out", str(out), "--processor", proc, "--selection", str(sel),
            "--no-cache"]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and field in errors[0], err
    assert not (out / "cutflows").exists()
    if "nan" not in attack:
        assert cli_main([*argv, "--unblind"]) == 0  # an opened region hides nothing: allowed, and recorded


def _plant(o: Path, name: str, **axes: float) -> None:
    from na64ana.processing import safeio

    p = o / "hists" / f"{name}.json"
    h = safeio.read_hist(p)
    (key,) = list(h.axes["run"])
    h.fill(run=key, **{a: np.array([v]) for a, v in axes.items()})
    safeio.write_hist(p, h)


def test_audit_catches_box_content_planted_in_each_processor(runs):
    """The audit applies each run's rule: a number in a hidden region or row, or an entry in a box bin,
    is a leak for that processor (a planted value stands for a processor bug)."""
    proc, folders = runs
    o = folders[1]
    hidden = {"invisible": "signal_box", "alp": "hcal_decay", "visible": "signal_box"}[proc]
    regions = json.loads((o / "regions.json").read_text())
    (key,) = regions
    regions[key][hidden] = 3
    (o / "regions.json").write_text(json.dumps(regions))
    found = [f for f in audit.scan(o).findings if f.kind == "leak"]
    assert [(f.file, f.where) for f in found] == [("regions.json", f"{key}.{hidden}")]
    if proc == "visible":  # box bins of the E_WCAL + E_ECAL axis and of the (E_WCAL, E_ECAL) plane
        _plant(o, "esum_final", esum=100.5)
        _plant(o, "plane_final", wcal=40.2, ecal=60.2)
        _plant(o, "plane_final", wcal=20.2, ecal=60.2)  # 80 GeV: outside the box, not a leak
        _plant(o, "plane_final", wcal=80.2, ecal=15.2)  # 95.4 GeV but E_ECAL < 30 GeV: a beam electron
        leaks = {f.file for f in audit.scan(o).findings if f.kind == "leak"}
        assert leaks == {"regions.json", "hists/esum_final.json", "hists/plane_final.json"}
        cf_file = next((o / "cutflows").glob("*.json"))
        cf = json.loads(cf_file.read_text())
        row = next(r for r in cf["rows"] if r["cut"] == "energy_sum")
        row.update(events=0, blinded=False)
        cf_file.write_text(json.dumps(cf))
        assert any(f.file == cf_file.relative_to(o).as_posix() and "energy_sum" in f.what
                   for f in audit.scan(o).findings if f.kind == "leak")


@pytest.mark.parametrize("proc,selection,field", [("alp", "invisible", "regions.hcal_decay"),
                                                   ("visible", "invisible", "cuts.energy_sum"),
                                                   ("visible", "alp", "cuts.energy_sum")])
def test_another_searchs_selection_cannot_switch_the_rule_off(proc, selection, field, tmp_path, capsys):
    """The rule is the processor's: running it with a selection that lacks its signal regions / box window
    (so nothing would be blinded) is refused, not run unblinded."""
    arrays = _alp(4, 1) if proc == "alp" else _visible(4, 1)
    dsets = (_datasets_alp if proc == "alp" else _datasets_visible)(tmp_path / "d", arrays)
    out = tmp_path / "out"
    assert cli_main(["run", "--datasets", str(dsets), "--out", str(out), "--processor", proc, "--selection",
                     selection, "--no-cache"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and field in errors[0]
    assert not (out / "cutflows").exists()


def test_dimuon_processor_keeps_the_campaign_box(synth_campaign, tmp_path, capsys):
    sel = tmp_path / "dimuon_moved.toml"
    override = '\n[[override]]\ncampaign = "test"\ntarget = "box.ecal_max"\nvalue = 0.0\nsource = "x"\n'
    sel.write_text((SELECTIONS / "dimuon.toml").read_text() + override)
    argv = ["run", "--datasets", str(synth_campaign.datasets), "--out", str(tmp_path / "o"), "--processor",
            "dimuon", "--selection", str(sel), "--no-cache"]
    assert cli_main(argv) == 2
    assert "box.ecal_max" in capsys.readouterr().err
