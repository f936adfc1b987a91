"""All executors and chunk sizes give the same cut flows and histograms; bad inputs fail clearly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from na64ana.cli import main as cli_main
from na64ana.errors import DataError, InputError
from na64ana.processing import execute, inputs, outputs


def _summary(res: execute.RunResult) -> tuple[dict, dict, dict]:
    out = res.output
    counts = {k: v["events"].tolist() for k, v in out["cutflow"].items()}
    weighted = {k: v["weighted"] for k, v in out["cutflow"].items()}
    hists = {n: h for n, h in out["hists"].items()}
    return counts, weighted, hists


def _assert_same(ref, other):
    c0, w0, h0 = ref
    c1, w1, h1 = other
    assert c0 == c1  # exact counts
    for k in w0:
        np.testing.assert_allclose(w0[k], w1[k], rtol=1e-12)
    assert h0.keys() == h1.keys()
    for n in h0:
        for run in h0[n].axes["run"]:
            a, b = h0[n][{"run": run}], h1[n][{"run": run}]
            np.testing.assert_allclose(a.values(flow=True), b.values(flow=True), rtol=1e-12)
            np.testing.assert_allclose(a.variances(flow=True), b.variances(flow=True), rtol=1e-12)


@pytest.fixture
def jobs(synth_campaign):
    return execute.plan(synth_campaign.datasets, samples=["campaign", "signal"])


@pytest.mark.slow  # starts a 2-process futures pool (each imports coffea) and runs the campaign 5 times
def test_chunk_sizes_and_futures_agree(jobs, tmp_path):
    ref = _summary(execute.run(jobs, "invisible", chunksize=10_000))
    for cs in (37, 256):
        _assert_same(ref, _summary(execute.run(jobs, "invisible", chunksize=cs)))
    cdir = tmp_path / "cache"
    fut = execute.run(jobs, "invisible", executor="futures", workers=2, chunksize=64, cache_dir=cdir)
    assert fut.metrics["executor"] == "futures" and fut.metrics["chunks"] > 4
    _assert_same(ref, _summary(fut))
    # The worker processes wrote the chunk cache (counted from the metrics they returned) ...
    n = fut.metrics["chunks"]
    assert fut.metrics["cache"]["misses"] == fut.metrics["cache"]["stored"] == n
    # ... and the same chunks read back in this process are all hits, with the same result.
    again = execute.run(jobs, "invisible", chunksize=64, cache_dir=cdir)
    assert again.metrics["cache"]["hits"] == n and again.metrics["cache"]["misses"] == 0
    _assert_same(ref, _summary(again))


@pytest.mark.dask
@pytest.mark.slow
def test_dask_local_cluster_processes_agree(jobs):
    # Worker processes must import na64ana.processors/selection by themselves (installed modules).
    ref = _summary(execute.run(jobs, "invisible", chunksize=10_000))
    res = execute.run(jobs, "invisible", executor="dask", workers=2, chunksize=100)
    assert res.metrics["executor"] == "dask"
    _assert_same(ref, _summary(res))


def test_fileset_metadata(jobs):
    fs = execute.fileset(jobs)
    assert set(fs) == {"test/A", "test/B", "test/B-signal"}
    md = fs["test/B-signal"]["metadata"]
    assert md["kind"] == "mc" and md["hcal0"] is True and md["run"] == "B" and md["sample"] == "signal"
    assert md["selection_hash"] == jobs[2].selection.hash
    assert len(fs["test/A"]["files"]) == 2


# -- bad inputs ---------------------------------------------------------------------------------------


def test_missing_branch_named(tmp_path, synth):
    a, _ = synth.make_arrays()
    p = synth.write_tree(tmp_path / "f.root", a, drop=("ecal_chi2",))
    with pytest.raises(DataError) as e:
        inputs.check_file(p, "events", ["ecal_e", "ecal_chi2"])
    assert e.value.file == str(p) and e.value.field == "ecal_chi2" and "missing branch" in str(e.value)


def test_branch_map_names_file_branch(tmp_path, synth):
    a, _ = synth.make_arrays()
    p = synth.write_tree(tmp_path / "f.root", a)
    with pytest.raises(DataError) as e:
        inputs.check_file(p, "events", ["ecal_e"], {"ecal_e": "ECAL_E"})
    assert e.value.field == "ECAL_E" and "canonical 'ecal_e'" in str(e.value)


def test_not_root_truncated_empty_notree(tmp_path, synth):
    txt = tmp_path / "x.root"
    txt.write_text("this is not a ROOT file\n" * 100)
    a, _ = synth.make_arrays()
    good = synth.write_tree(tmp_path / "good.root", a)
    trunc = tmp_path / "trunc.root"
    trunc.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    empty = synth.write_tree(tmp_path / "empty.root", {k: v[:0] for k, v in a.items()})
    cases = {txt: "not a readable ROOT file", trunc: "", empty: "empty tree",
             tmp_path / "missing.root": "file not found"}
    for path, msg in cases.items():
        with pytest.raises(DataError) as e:
            inputs.check_file(path, "events", ["ecal_e"])
        assert e.value.file == str(path) and msg in str(e.value)
    with pytest.raises(DataError, match="no tree 'other'"):
        inputs.check_file(good, "other", ["ecal_e"])
    assert inputs.check_file(good, "events", ["ecal_e"]) == len(a["ecal_e"])


def test_cli_bad_data_exit_code_and_no_complete_output(synth_campaign, capsys):
    out = synth_campaign.datasets.parent / "out"
    assert cli_main(["run", "--datasets", str(synth_campaign.datasets), "--out", str(out)]) == 0
    assert outputs.is_complete(out)
    synth_campaign.paths["a2"].write_bytes(b"garbage")
    rc = cli_main(["run", "--datasets", str(synth_campaign.datasets), "--out", str(out)])
    assert rc == DataError.exit_code
    assert "a2.root" in capsys.readouterr().err
    assert not outputs.is_complete(out)
    with pytest.raises(Exception, match="not a complete run output"):
        outputs.load_cutflow(out, "A")


def test_cli_bad_selection_and_options(synth_campaign, tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    from na64ana import selection

    bad.write_text(selection.selection_path("invisible").read_text().replace('"ecal_chi2"', '"chi2x"'))
    args = ["run", "--datasets", str(synth_campaign.datasets), "--out", str(tmp_path / "o")]
    assert cli_main([*args, "--selection", str(bad)]) == InputError.exit_code
    err = capsys.readouterr().err
    assert "bad.toml" in err and "cuts.2.requires.0" in err and "chi2x" in err
    assert cli_main([*args, "--runs", "Z"]) == InputError.exit_code
    assert cli_main([*args, "--chunksize", "0"]) == InputError.exit_code
    assert not (tmp_path / "o" / outputs.COMPLETE).exists()


def test_cli_run_prints_table_and_writes_layout(synth_campaign, capsys):
    out = synth_campaign.datasets.parent / "o2"
    rc = cli_main(["run", "--datasets", str(synth_campaign.datasets), "--out", str(out), "--runs", "B",
                   "--samples", "campaign", "signal", "--unblind"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "| 0 | all | all events read |" in printed and "B-signal" in printed
    names = {p.name for p in (out / "cutflows").iterdir()}
    assert names == {"B.json", "B.md", "B-signal.json", "B-signal.md"}
    prov = json.loads((out / "provenance.json").read_text())["stages"]["run"]
    assert prov["blinding"] == "unblinded" and prov["blinded_keys"] == []
    assert prov["datasets_sha256"]
    assert set(json.loads((out / "regions.json").read_text())) == {"B", "B-signal"}


def test_processor_registry_matches_cli():
    from na64ana.processors import PROCESSORS

    assert tuple(PROCESSORS) == execute.PROCESSOR_NAMES


def test_decompression_threads_change_nothing(jobs, monkeypatch):
    """The iterative executor decompresses each chunk on a small thread pool (sources.py): the same cut
    flows and histograms as decompressing in the processing thread, and the pool is really used."""
    from na64ana.processing import sources

    used: list[object] = []
    real = sources.decompression_executor
    monkeypatch.setattr(sources, "decompression_executor", lambda: used.append(real()) or used[-1])
    monkeypatch.setattr(execute, "READ_THREADS", 2)
    monkeypatch.setattr(execute, "available_cores", lambda: 2)
    threaded = _summary(execute.run(jobs, "invisible", chunksize=300))
    assert used and all(u is not None for u in used)
    used.clear()
    monkeypatch.setattr(execute, "READ_THREADS", 1)
    _assert_same(_summary(execute.run(jobs, "invisible", chunksize=300)), threaded)
    assert used and all(u is None for u in used)
    assert sources.decompression_executor() is None  # the pool is gone after the run
