"""Blinding is a security property: no output of a blinded run carries signal-box information."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from na64ana import blinding, selection
from na64ana.cli import main as cli_main

VOLATILE = {"metrics.json", "provenance.json"}  # timings, command lines, paths
# The chunk cache is not an output: its entries are named by a key over the input files' sha256, which
# differ by construction here (their content is the blinded per-chunk output, compared via the outputs).
NOT_OUTPUTS = {".cache"}


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
        if p.is_dir() or p.name in VOLATILE or NOT_OUTPUTS & set(p.relative_to(out).parts):
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
    assert "cutflows/I.json" in snaps["plain"] and "hists/plane_final.json" in snaps["plain"]
    assert any(k.startswith("logs/") for k in snaps["plain"])
    assert snaps["plain"].keys() == snaps["signal"].keys()
    for name in snaps["plain"]:
        assert snaps["plain"][name] == snaps["signal"][name], f"{name} leaks signal-box information"
    assert printed["plain"] == printed["signal"]


def test_unblinded_outputs_differ(pair, capsys):
    snaps, _ = _outputs(pair, capsys, "--unblind")
    differ = {n for n in snaps["plain"] if snaps["plain"][n] != snaps["signal"][n]}
    assert {"cutflows/I.json", "regions.json", "hists/plane_final.json"} <= differ


def test_blinded_hists_have_empty_box_and_flag(pair, capsys):
    from na64ana.processing import outputs

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


# --- na64ana.bookkeeping.audit.scan_blinding: it finds what it is meant to find ------------------------


@pytest.fixture(scope="module")
def audited_template(synth, tmp_path_factory):
    """A blinded run output whose input has signal-like events in the box, made once (read-only)."""
    d = tmp_path_factory.mktemp("audited") / "signal"
    return _run(d, _inputs(d, synth, "signal"))


@pytest.fixture
def audited(audited_template, tmp_path):
    """A private copy of audited_template (the scan must stay quiet on it); the input is copied along, so
    the recorded relative input path still holds."""
    dst = tmp_path / "signal"
    shutil.copytree(audited_template.parent, dst)
    return dst / audited_template.name


def _pickle_hist(out: Path, name: str, fill: dict) -> None:
    from na64ana.processing import safeio

    path = out / "hists" / f"{name}.json"
    h = safeio.read_hist(path)
    h.fill(run="I", **fill)
    safeio.write_hist(path, h)


def _edit_json(path: Path, edit) -> None:
    import json

    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


def test_audit_blinded_run_is_clean(audited):
    from na64ana.bookkeeping import audit

    res = audit.scan(audited)
    assert res.findings == [] and res.blinded is True
    assert {"cutflows/I.json", "regions.json", "hists/plane_final.json", "logs/run.log"} <= set(res.scanned)


def test_audit_finds_box_content_in_histograms(audited):
    from na64ana.bookkeeping import audit

    _pickle_hist(audited, "plane_final", {"ecal": [30.0], "hcal": [0.4]})  # inside the box
    _pickle_hist(audited, "plane_loose", {"ecal": [60.0], "hcal": [0.4]})  # side band C: allowed
    # N-1 of the SRD cut: its events pass the HCAL and box cuts, so any entry is a box event
    _pickle_hist(audited, "nminus1_srd_srd_e_min", {"srd_e_min": [10.0]})
    found = {(f.file, f.where) for f in audit.scan_blinding(audited)}
    assert found == {("hists/plane_final.json", "run=I"), ("hists/nminus1_srd_srd_e_min.json", "run=I")}


def test_audit_finds_counts_in_cutflows_regions_and_limits(audited):
    from na64ana.bookkeeping import audit

    def unhide(cf):
        cf["rows"][-1].update(events=3, blinded=False)

    _edit_json(audited / "cutflows" / "I.json", unhide)
    _edit_json(audited / "regions.json", lambda r: r["I"].update(signal_box=3))
    md = audited / "cutflows" / "I.md"
    md.write_text(re.sub(r"(\| signal_box \|[^|]*\|) blinded", r"\1 3", md.read_text()))
    (audited / "limits.json").write_text('{"blinded": true, "points": [{"mass_GeV": 0.01, "eps_obs": 1e-5}]}')
    (audited / "ws.json").write_text('{"observations": [{"name": "run_I", "data": [3.0]}]}')
    found = {(f.file, f.where.split("[")[0]) for f in audit.scan_blinding(audited)}
    assert found == {("cutflows/I.json", "rows"), ("cutflows/I.md", "line 5 row 9"),
                     ("regions.json", "I.signal_box"), ("limits.json", "points"), ("ws.json", "observations")}


def test_audit_finds_text_tables_and_figure_metadata(audited):
    from matplotlib.figure import Figure

    from na64ana.bookkeeping import audit
    from na64ana.presentation import plots

    (audited / "report.md").write_text(
        "**I** (data, blinded)\n\n| cut | events |\n|---|---|\n| all | 10 |\n| signal_box | 3 |\n\n"
        "| m | eps observed |\n|---|---|\n| 0.01 | blinded |\n| 0.1 | 2e-4 |\n")
    log = audited / "logs" / "run.log"
    log.write_text(log.read_text() + "2026-01-01 00:00:00,000 INFO x: observed: 3 events\n")
    log_line = f"line {len(log.read_text().splitlines())}"
    fig = Figure()
    fig.subplots().plot([0, 1])
    plots.save(fig, audited / "plots", "clean")
    fig.savefig(audited / "plots" / "tagged.png", metadata={"Title": "observed = 3"})
    fig.savefig(audited / "plots" / "tagged.pdf", metadata={"Subject": "3 events in the box"})
    found = {(f.file, f.where) for f in audit.scan_blinding(audited)}
    assert found == {("report.md", "line 3 row 2"), ("report.md", "line 8 row 2"),
                     ("logs/run.log", log_line), ("plots/tagged.png", "metadata Title"),
                     ("plots/tagged.pdf", "metadata Subject")}


def test_audit_provenance_must_state_blinding(audited):
    from na64ana.bookkeeping import audit

    def forget(doc):
        for key in ("blinding", "unblind", "blinded"):
            doc["stages"]["run"].pop(key, None)

    _edit_json(audited / "provenance.json", forget)
    assert [(f.kind, f.where) for f in audit.scan_blinding(audited)] == [("provenance", "stages.run")]


def test_audit_unblinded_run_is_reported_not_a_leak(pair, capsys):
    from na64ana.bookkeeping import audit

    d, dsets = pair["signal"]
    out = _run(d, dsets, "--unblind")
    findings = audit.scan_blinding(out)
    assert [(f.kind, f.file) for f in findings] == [("unblinded", "provenance.json")]
