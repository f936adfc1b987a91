"""provenance.json of every stage and ``na64ana verify``.

A small results folder is built once: the synthetic campaign of conftest.py through ``na64ana run``
(blinded), a simulated prd2018 trigger sample, signal MC through the efficiency stage, a limit scan, the
plots/report (with one cheap figure) and the HEPData export. Each recorded field is compared with the
truth (sha256 of the file, entries in the tree, EOT in datasets.json, the selection's hash, ...). The
tampering tests work on a copy of the whole tree (inputs included): the copy must verify against its own
inputs (relative paths first), so a change to the copy's input is caught although the original is intact.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import uproot
from conftest import file_entry, make_arrays, write_datasets, write_tree

from na64ana import datasets, efficiency
from na64ana.bookkeeping import provenance
from na64ana.cli import main as cli_main
from na64ana.errors import DataError
from na64ana.presentation import hepdata, report
from na64ana.processing import execute, outputs
from na64ana.simulation import simulate_campaign, simulate_signal_samples
from na64ana.stats import limits

REPO = Path(__file__).resolve().parents[2]
DATASETS = REPO / "datasets.json"
SUMMARY = REPO / "examples" / "summaries" / "prd2018_published.json"
CHUNK = 100


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def stage(folder: Path, name: str) -> dict:
    return json.loads((folder / "provenance.json").read_text())["stages"][name]


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """``inputs/`` (synthetic ROOT files + datasets.json) and ``res/`` (every stage's folder)."""
    top = tmp_path_factory.mktemp("prov")
    inp = top / "inputs"
    inp.mkdir()
    arrays = {name: make_arrays(seed=s)[0] for name, s in (("a1", 1), ("a2", 2), ("b1", 3))}
    for name, a in arrays.items():
        write_tree(inp / f"{name}.root", a)
    n = {k: len(a["ecal_e"]) for k, a in arrays.items()}
    write_datasets(inp / "datasets.json", {
        "A": (False, [file_entry(inp / "a1.root", n["a1"], eot=4e8),
                      file_entry(inp / "a2.root", n["a2"], eot=6e8)]),
        "B": (True, [file_entry(inp / "b1.root", n["b1"], eot=1e9)])})
    res = top / "res"
    assert cli_main(["run", "--datasets", str(inp / "datasets.json"), "--out", str(res / "run"),
                     "--chunksize", str(CHUNK)]) == 0
    simulate_campaign(DATASETS, out_dir=res / "sim", campaign="prd2018", runs=["II"], level="trigger",
                      n_events=2000, seed=4)
    sig = simulate_signal_samples(DATASETS, out_dir=res / "signal_mc", masses_GeV=[0.01], n_events=1500,
                                  campaign="prd2018", runs=["II"], seed=4)
    efficiency.measure(sig, out=res / "efficiency", campaign="prd2018", chunksize=CHUNK)
    # the published summary with the box closed: a blinded limits stage beside the blinded run
    blind = json.loads(SUMMARY.read_text())
    for r in blind["runs"]:
        r["observed"] = None
    (inp / "summary.json").write_text(json.dumps(blind))
    # no pyhf toy cross-check (~10 s CPU; tests/stats/test_crosscheck.py tests it): provenance is tested here
    limits.run_stage(inp / "summary.json", res / "limits", yields=np.full(16, 1e-10), crosscheck_toys=0)
    hepdata.export_hepdata(res, res / "hepdata")
    return top


@pytest.fixture
def copy(tree, tmp_path) -> Path:
    """A fresh copy of the whole tree for a test that tampers with it."""
    dst = tmp_path / "copy"
    shutil.copytree(tree, dst)
    return dst


# ------------------------------------------------------------------------------------------------------
# Recorded fields


def test_run_stage_records_code_inputs_selection_executor_blinding_and_timing(tree):
    inp, run = tree / "inputs", tree / "res" / "run"
    rec = stage(run, "run")
    assert rec["package"] == "na64ana" and rec["package_version"] == metadata.version("na64ana")
    assert isinstance(rec["git_commit"], str) and rec["git_commit"]
    assert rec["versions"]["numpy"] == np.__version__
    assert rec["versions"]["coffea"] == metadata.version("coffea")
    # inputs: the datasets file, then one record per event file with sha256, entries and EOT
    dsrec, *files = rec["inputs"]
    assert dsrec["role"] == "datasets" and dsrec["sha256"] == sha(inp / "datasets.json")
    runs = datasets.load(inp / "datasets.json").campaigns["test"].runs
    listed = {Path(e.path).name: e for r in runs.values() for e in r.files}
    assert sorted(Path(f["path"]).name for f in files) == ["a1.root", "a2.root", "b1.root"]
    for f in files:
        p = Path(f["path"])
        assert f["sha256"] == sha(p) and f["rel"] == f"../../inputs/{p.name}" and f["status"] == "ok"
        with uproot.open(p) as fh:
            assert f["nevents"] == fh["events"].num_entries
        assert f["eot"] == listed[p.name].eot and f["key"] == ("B" if p.name == "b1.root" else "A")
    # selection hash: the one of the resolved selection, also in the cut flow
    for job in execute.plan(inp / "datasets.json"):
        assert rec["selection_hashes"][job.key] == job.selection.hash
        assert outputs.load_cutflow(run, job.key)["selection_hash"] == job.selection.hash
    assert (rec["executor"], rec["workers"], rec["chunksize"]) == ("iterative", 1, CHUNK)
    assert rec["blinding"] == "blinded" and rec["blinded_keys"] == ["A", "B"]
    assert "unblind" not in rec and "blinded" not in rec  # one blinding field
    assert rec["seeds"] is None  # nothing random in a run
    m = rec["metrics"]
    assert m["events"] == sum(f["nevents"] for f in files) and m["wall_time_s"] > 0
    assert m["events_per_s"] == pytest.approx(m["events"] / m["wall_time_s"]) and m["peak_rss_MB"] > 0


def test_manifest_hashes_every_file_of_the_folder_and_nothing_else(tree):
    run = tree / "res" / "run"
    man = json.loads((run / "provenance.json").read_text())["manifest"]["files"]
    on_disk = {p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file()}
    not_outputs = ("provenance.json", ".na64ana", ".na64ana.lock")  # the record, the marker, the folder lock
    expected = {p for p in on_disk if p not in not_outputs and not p.startswith(("logs/", ".cache/"))}
    assert set(man) == expected and "run.complete" in man and "cutflows/A.json" in man
    assert "logs/run.log" in on_disk  # present, but a log is no output (nor the chunk cache, if any)
    for rel, m in man.items():
        assert m["sha256"] == sha(run / rel) and m["size"] == (run / rel).stat().st_size
    assert set(stage(run, "run")["outputs"]) == expected


def test_simulation_records_each_file_with_sha_events_eot_and_seed(tree):
    sim = tree / "res" / "sim"
    rec = stage(sim, "simulate")
    assert rec["inputs"][0]["path"] == str(DATASETS) and rec["inputs"][0]["sha256"] == sha(DATASETS)
    (entry,) = datasets.load(sim / "datasets.json").campaigns["prd2018"].runs["II"].files
    (f,) = rec["files"]
    assert f["path"] == entry.path and f["sha256"] == sha(sim / entry.path) == entry.sha256
    assert f["events"] == entry.nevents == 2000 and f["eot"] == entry.eot > 0 and f["seed"] == entry.seed
    assert rec["seeds"] == {"seed": 4, "files": {entry.path: entry.seed}}
    assert rec["metrics"]["events"] == 2000 and rec["blinding"] is None
    assert set(rec["outputs"]) == {entry.path, "datasets.json"}


def test_efficiency_records_the_signal_datasets_and_the_executor(tree):
    eff = tree / "res" / "efficiency"
    rec = stage(eff, "efficiency")
    assert rec["inputs"][0]["sha256"] == sha(tree / "res" / "signal_mc" / "datasets.json")
    assert rec["executor"] == "iterative" and rec["chunksize"] == CHUNK and rec["metrics"]["events"] > 0
    assert rec["outputs"] == ["efficiency.json", "efficiency.md"]
    assert stage(eff, "run")["blinding"] == "no-data"  # signal MC only: blinding does not apply
    assert rec["blinding"] == "no-data"
    seeds = stage(tree / "res" / "signal_mc", "simulate_signal")["seeds"]
    assert seeds["seed"] == 4 and len(seeds["files"]) == 1


def test_limits_and_hepdata_record_the_files_they_read(tree):
    res = tree / "res"
    lim = stage(res / "limits", "limits")
    assert lim["inputs"][0]["sha256"] == sha(tree / "inputs" / "summary.json")
    assert lim["blinding"] == "blinded"
    assert "limits.json" in lim["outputs"]
    assert all(o.startswith("workspaces/") for o in lim["outputs"] if o != "limits.json")
    exp = stage(res / "hepdata", "export")
    read = {Path(i["path"]).relative_to(res).as_posix(): i["sha256"] for i in exp["inputs"]}
    assert read["run/cutflows/A.json"] == sha(res / "run" / "cutflows" / "A.json")
    assert "efficiency/efficiency.json" in read and exp["blinding"] == "blinded"
    assert "submission.tar.gz" in exp["outputs"]


def test_plots_and_report_record_inputs_and_blinding(tree, copy, monkeypatch):
    """The wiring of the plots/report records (one cheap figure instead of ~20 s of plotting)."""
    import matplotlib.pyplot as plt

    res = copy / "res"
    shutil.rmtree(res / "hepdata")
    monkeypatch.setattr(report, "_plot_jobs",
                        lambda r, *_: [("cutflow", "run", lambda: (r.cutflows, plt.figure())[1])])
    report.build_report(res)
    plots = stage(res / "plots", "plots")
    assert plots["figures"] == ["cutflow"] and plots["outputs"] == ["cutflow.pdf", "cutflow.png"]
    assert plots["blinding"] == "blinded"
    assert any(i["rel"] == "../run/cutflows/A.json" for i in plots["inputs"])
    rec = stage(res, "report")
    assert rec["outputs"] == ["report.html", "report.md"] and rec["blinding"] == "blinded"
    assert all(Path(i["path"]).name != "provenance.json" for i in rec["inputs"])
    assert provenance.verify(res) == [p for p in provenance.verify(res) if p.level == "info"]


# ------------------------------------------------------------------------------------------------------
# verify


def test_verify_passes_on_an_untouched_folder(tree, capsys):
    assert [p for p in provenance.verify(tree / "res") if p.level != "info"] == []
    assert cli_main(["verify", str(tree / "res")]) == 0
    out = capsys.readouterr().out
    assert "6 provenance.json" in out and "OK: every input and output matches" in out
    # every stage of the fixture is blinded (or reads no data): no blinding warning either
    assert "WARNING" not in out
    assert cli_main(["verify", "--quiet", "--no-blinding-scan", str(tree / "res")]) == 0
    assert capsys.readouterr().out == ""


def _fail(folder: Path, capsys, *args: str) -> tuple[str, str]:
    assert cli_main(["verify", *args, str(folder)]) == DataError.exit_code
    cap = capsys.readouterr()
    return cap.out, cap.err


def test_modified_input_is_named_with_recorded_and_actual_hash(copy, capsys):
    a1 = copy / "inputs" / "a1.root"
    before = sha(a1)
    data = bytearray(a1.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different content
    a1.write_bytes(bytes(data))
    (p,) = [p for p in provenance.verify(copy / "res") if p.level == "error"]
    assert (p.folder, p.file, p.message) == ("run", "../../inputs/a1.root", "input of stage 'run' changed")
    assert (p.recorded, p.actual) == (before, sha(a1))
    out, err = _fail(copy / "res", capsys)
    assert "a1.root" in err and "changed" in err and before[:12] in out and sha(a1)[:12] in out


def test_deleted_input_is_reported_missing(synth_campaign, capsys):
    """Its own run: in a copied tree the recorded absolute path would still find the original file (an
    input is looked up relative to the folder first, then at its absolute path)."""
    out = synth_campaign.datasets.parent / "out"
    assert cli_main(["run", "--datasets", str(synth_campaign.datasets), "--out", str(out)]) == 0
    assert cli_main(["verify", str(out)]) == 0
    synth_campaign.paths["b1"].unlink()
    printed, err = _fail(out, capsys)
    assert "../b1.root" in printed and "input of stage 'run' missing" in err


def test_modified_output_is_reported_in_its_folder_and_downstream(copy, capsys):
    cf = copy / "res" / "run" / "cutflows" / "A.json"
    cf.write_text(cf.read_text().replace('"events": ', '"events":  '))
    errors = {(p.folder, p.file, p.message) for p in provenance.verify(copy / "res") if p.level == "error"}
    assert ("run", "cutflows/A.json", "output modified") in errors
    assert ("hepdata", "../run/cutflows/A.json", "input of stage 'export' changed") in errors
    out, err = _fail(copy / "res", capsys)
    assert "cutflows/A.json" in err and "output modified" in out


def test_deleted_output_is_reported_missing(copy, capsys):
    (copy / "res" / "run" / "regions.json").unlink()
    out, _ = _fail(copy / "res", capsys)
    assert "regions.json" in out and "output missing" in out


def test_stray_file_is_an_error_unless_allowed(copy, capsys):
    """A stray file is an error: readers glob cut flows, histograms and workspaces, so it could enter the
    plots, the report and HEPData. ``--allow-extra`` reports it as a warning and passes."""
    stray = copy / "res" / "run" / "cutflows" / "C.json"
    stray.write_text("{}")
    out, err = _fail(copy / "res", capsys)
    assert "cutflows/C.json" in err and "unexpected file (in no manifest)" in out
    assert cli_main(["verify", "--allow-extra", "--no-blinding-scan", str(copy / "res")]) == 0
    out = capsys.readouterr().out
    assert "WARNING" in out and "cutflows/C.json" in out and "1 warning(s)" in out
    # logs and the chunk cache are no outputs
    (copy / "res" / "run" / "logs" / "extra.log").write_text("x")
    (copy / "res" / "run" / ".cache").mkdir(exist_ok=True)
    (copy / "res" / "run" / ".cache" / "chunk").write_text("x")
    stray.unlink()
    assert cli_main(["verify", str(copy / "res")]) == 0


def test_a_different_code_version_is_information_only(tree, monkeypatch, capsys):
    monkeypatch.setattr(provenance, "git_commit", lambda: "0123456789ab")
    monkeypatch.setattr(provenance, "package_version", lambda: "9.9.9")
    assert cli_main(["verify", str(tree / "res")]) == 0
    out = capsys.readouterr().out
    assert "INFO" in out and "now na64ana 9.9.9 (git 0123456789ab)" in out


def test_verify_refuses_a_folder_without_provenance(tmp_path, capsys):
    (tmp_path / "x.json").write_text("{}")
    _, err = _fail(tmp_path, capsys)
    assert "no provenance.json" in err


# ------------------------------------------------------------------------------------------------------
# write(): merging, outputs, legacy records


def test_one_process_merges_a_stage_a_new_one_replaces_it(tmp_path, monkeypatch):
    (tmp_path / "in.txt").write_text("a")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x.json").write_text("{}")
    provenance.write(tmp_path / "out", "s", inputs=[tmp_path / "in.txt"], blinding="blinded", seed=3)
    (tmp_path / "out" / "y.json").write_text("{}")
    provenance.write(tmp_path / "out", "s", note="added by the CLI")
    rec = stage(tmp_path / "out", "s")
    assert rec["inputs"][0]["sha256"] == sha(tmp_path / "in.txt") and rec["note"] == "added by the CLI"
    assert rec["blinding"] == "blinded" and rec["seeds"] == {"seed": 3}
    assert rec["outputs"] == ["x.json", "y.json"]
    monkeypatch.setattr(provenance, "INVOCATION", "another-process")
    provenance.write(tmp_path / "out", "s")
    rec = stage(tmp_path / "out", "s")
    assert rec["inputs"] == [] and "note" not in rec and rec["outputs"] == []  # nothing changed since


def test_folder_without_manifest_is_a_warning(tmp_path, capsys):
    (tmp_path / "provenance.json").write_text(json.dumps({"stages": {"old": {"stage": "old"}}}))
    assert cli_main(["verify", str(tmp_path)]) == 0
    assert "no outputs manifest" in capsys.readouterr().out


def test_verify_audits_blinding_and_names_a_planted_leak(copy, capsys):
    """verify also runs the blinding audit: a box count written into a blinded regions.json fails it as a
    leak (besides the modified output); --no-blinding-scan leaves only the provenance error."""
    regions = copy / "res" / "run" / "regions.json"
    doc = json.loads(regions.read_text())
    assert all(v["signal_box"] is None for v in doc.values())  # blinded by default
    doc["A"]["signal_box"] = 7
    regions.write_text(json.dumps(doc))
    out, err = _fail(copy / "res", capsys)
    leaks = [line for line in out.splitlines() if "blinding" in line and "leak" in line]
    assert leaks and "regions.json" in leaks[0], out
    out, _ = _fail(copy / "res", capsys, "--no-blinding-scan")
    assert "leak" not in out and "output modified" in out
