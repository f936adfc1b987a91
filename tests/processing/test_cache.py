"""The chunk cache (na64ana.processing.cache) reuses exactly the chunks whose output cannot have changed.

Every case runs the synthetic campaign of conftest.py twice through ``execute.run`` with the iterative
executor and records, per chunk, whether coffea's checkpointer found it (a wrapper around
``ChunkCache.load``): the set of re-processed chunks is compared with the set the change should affect,
and the outputs with a run without cache.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest

from na64ana import selection
from na64ana.cli import main as cli_main
from na64ana.processing import cache, execute, outputs

# make test-fast leaves this module to make test:
# every test runs the processor two or three times (~9 s CPU for the module)
pytestmark = pytest.mark.slow

CHUNK = 64  # 272 events per data file -> 4 chunks each; the 45-event signal file -> 1 chunk


@pytest.fixture
def probe(monkeypatch):
    """Records ``(file name, entrystart, entrystop, hit)`` for every chunk coffea asks the cache for."""
    calls: list[tuple[str, int, int, bool]] = []
    load = cache.ChunkCache.load

    def recording_load(self, metadata, processor_instance):
        out = load(self, metadata, processor_instance)
        calls.append((Path(metadata["filename"]).name, metadata["entrystart"], metadata["entrystop"],
                      out is not None))
        return out

    monkeypatch.setattr(cache.ChunkCache, "load", recording_load)
    return calls


def _run(datasets: Path, cache_dir: Path | None, *, selection_file: Path | None = None, **kw):
    jobs = execute.plan(datasets, samples=["campaign", "signal"], selection=selection_file)
    return execute.run(jobs, "invisible", chunksize=kw.pop("chunksize", CHUNK), cache_dir=cache_dir, **kw)


def _missed(calls) -> set[tuple[str, int, int]]:
    return {c[:3] for c in calls if not c[3]}


def _hit(calls) -> set[tuple[str, int, int]]:
    return {c[:3] for c in calls if c[3]}


def assert_same_output(a: execute.RunResult, b: execute.RunResult) -> None:
    """Cut flows, regions, blinding, event counts and every histogram identical (same merge order)."""
    oa, ob = a.output, b.output
    assert oa["nevents"] == ob["nevents"] and oa["chunks"] == ob["chunks"] and oa["blinded"] == ob["blinded"]
    assert oa["cutflow"].keys() == ob["cutflow"].keys()
    for k in oa["cutflow"]:
        np.testing.assert_array_equal(oa["cutflow"][k]["events"], ob["cutflow"][k]["events"])
        np.testing.assert_array_equal(oa["cutflow"][k]["weighted"], ob["cutflow"][k]["weighted"])
        assert oa["regions"][k].keys() == ob["regions"][k].keys()
        for r in oa["regions"][k]:
            np.testing.assert_array_equal(oa["regions"][k][r], ob["regions"][k][r])
    assert oa["hists"].keys() == ob["hists"].keys() and len(oa["hists"]) > 10
    for name, ha in oa["hists"].items():
        hb = ob["hists"][name]
        assert list(ha.axes["run"]) == list(hb.axes["run"]), name
        np.testing.assert_array_equal(ha.values(flow=True), hb.values(flow=True), err_msg=name)
        np.testing.assert_array_equal(ha.variances(flow=True), hb.variances(flow=True), err_msg=name)


def test_second_run_all_hits_identical(synth_campaign, tmp_path, probe):
    cdir = tmp_path / "cache"
    first = _run(synth_campaign.datasets, cdir)
    c = first.metrics["cache"]
    assert c["hits"] == 0 and c["misses"] == c["stored"] == first.metrics["chunks"] == 13 == len(probe)
    assert c["dir"] == str(cdir) and c["code_version"] == cache.code_version()
    assert len(cache.ChunkCache(cdir, {}, c["code_version"]).entries()) == 13

    probe.clear()
    second = _run(synth_campaign.datasets, cdir)
    assert second.metrics["cache"] | {"dir": None} == {"dir": None, "hits": 13, "misses": 0, "stored": 0,
                                                       "code_version": c["code_version"]}
    assert len(_hit(probe)) == 13 and not _missed(probe)
    assert second.metrics["events"] == first.metrics["events"] == sum(f.nevents for f in first.inputs)
    assert_same_output(first, second)
    assert_same_output(_run(synth_campaign.datasets, None), second)  # and equal to an uncached run


def test_moved_inputs_still_hit(synth_campaign, tmp_path, probe):
    # The key is the content (sha256), not the path: the same files elsewhere reuse every chunk.
    cdir = tmp_path / "cache"
    first = _run(synth_campaign.datasets, cdir)
    moved = tmp_path / "moved"
    moved.mkdir()
    for p in [synth_campaign.datasets, *synth_campaign.paths.values()]:
        os.link(p, moved / p.name)
    probe.clear()
    again = _run(moved / synth_campaign.datasets.name, cdir)
    assert again.metrics["cache"]["hits"] == 13 and not _missed(probe)
    assert_same_output(first, again)


def test_changed_file_reprocesses_only_its_chunks(synth_campaign, synth, tmp_path, probe):
    cdir = tmp_path / "cache"
    _run(synth_campaign.datasets, cdir)
    before = {c[:3] for c in probe}
    a2, _ = synth.make_arrays(seed=99)  # same size, other content (another shuffle of the categories)
    synth.write_tree(synth_campaign.paths["a2"], a2)

    probe.clear()
    res = _run(synth_campaign.datasets, cdir)
    a2_chunks = {c for c in before if c[0] == "a2.root"}
    assert len(a2_chunks) == 4
    assert _missed(probe) == a2_chunks
    assert _hit(probe) == before - a2_chunks
    assert res.metrics["cache"]["hits"] == 9 and res.metrics["cache"]["misses"] == 4
    assert_same_output(_run(synth_campaign.datasets, None), res)


def test_cut_change_for_one_run_reprocesses_only_that_run(synth_campaign, tmp_path, probe):
    cdir = tmp_path / "cache"
    base = _run(synth_campaign.datasets, cdir)
    before = {c[:3] for c in probe}
    sel = tmp_path / "invisible_B.toml"
    sel.write_text(selection.selection_path("invisible").read_text() + "\n".join([
        "", "[[override]]", 'campaign = "test"', 'runs = ["B"]', 'target = "cuts.track.track_p"',
        "min = 96.0", "max = 104.0", 'source = "test: a looser momentum window for run B only"', ""]))

    probe.clear()
    res = _run(synth_campaign.datasets, cdir, selection_file=sel)
    hashes = {j.key: j.selection.hash for j in res.jobs}
    old = {j.key: j.selection.hash for j in base.jobs}
    assert hashes["A"] == old["A"] and hashes["B"] != old["B"] and hashes["B-signal"] != old["B-signal"]
    run_b = {c for c in before if c[0] in ("b1.root", "sig.root")}
    assert len(run_b) == 5
    assert _missed(probe) == run_b and _hit(probe) == before - run_b
    assert res.metrics["cache"]["misses"] == 5
    assert_same_output(_run(synth_campaign.datasets, None, selection_file=sel), res)


def test_code_version_change_reprocesses_everything(synth_campaign, tmp_path, probe, monkeypatch):
    cdir = tmp_path / "cache"
    _run(synth_campaign.datasets, cdir)
    monkeypatch.setattr(cache, "code_version", lambda: "f" * 64)
    probe.clear()
    res = _run(synth_campaign.datasets, cdir)
    assert res.metrics["cache"]["hits"] == 0 and res.metrics["cache"]["misses"] == 13 == len(_missed(probe))
    assert res.metrics["cache"]["code_version"] == "f" * 64


def test_code_version_covers_processor_and_cuts_not_reports():
    names = {f"{p.parent.name}/{p.name}" for p in cache.code_files()}
    assert {"processors/base.py", "processors/invisible.py", "processors/dimuon.py", "na64ana/selection.py",
            "na64ana/blinding.py", "na64ana/contract.py"} <= names
    assert not names & {"na64ana/outputs.py", "na64ana/report.py", "na64ana/plots.py", "na64ana/execute.py"}
    assert re.fullmatch(r"[0-9a-f]{64}", cache.code_version())


def test_key_covers_the_metadata_processors_read():
    # If a processor starts reading another chunk-metadata field, it must become part of the key.
    read = set()
    for p in cache.code_files():
        if p.parent.name == "processors":
            read |= set(re.findall(r"""md(?:\[|\.get\()["'](\w+)["']""", p.read_text()))
    # the file itself enters the key as its content (file_sha256), not as its path
    covered = set(cache.KEY_METADATA) | {"filename"}
    assert read and read <= covered, read - covered


def test_unblind_and_chunk_boundaries_are_part_of_the_key(synth_campaign, tmp_path, probe):
    cdir = tmp_path / "cache"
    _run(synth_campaign.datasets, cdir)
    before = {c[:3] for c in probe}

    probe.clear()
    res = _run(synth_campaign.datasets, cdir, unblind=True)
    assert res.metrics["cache"]["hits"] == 0 and len(_missed(probe)) == 13

    probe.clear()
    res = _run(synth_campaign.datasets, cdir, chunksize=100)  # data files: 3 chunks of 91, not 4 of 68
    now = {c[:3] for c in probe}
    # Only a chunk with the very same entry range may be reused: here the 45-event signal file, which is
    # one chunk [0, 45) at both chunk sizes. That reuse is correct (same entries, same output).
    assert _hit(probe) == now & before == {("sig.root", 0, 45)}
    assert res.metrics["cache"]["hits"] == 1 and res.metrics["cache"]["misses"] == 9


# "flip" (one bit, caught by the payload's sha256) stays fast; the other damages take the same decode-failure
# path and run in make test (each case processes the campaign twice)
@pytest.mark.parametrize("damage", [pytest.param("truncate", marks=pytest.mark.slow), "flip",
                                    pytest.param("garbage", marks=pytest.mark.slow),
                                    pytest.param("empty", marks=pytest.mark.slow)])
def test_corrupt_entry_is_a_logged_miss(synth_campaign, tmp_path, probe, caplog, damage):
    cdir = tmp_path / "cache"
    first = _run(synth_campaign.datasets, cdir)
    entries = cache.ChunkCache(cdir, {}, first.metrics["cache"]["code_version"]).entries()
    victim = entries[len(entries) // 2]
    blob = victim.read_bytes()
    match damage:
        case "truncate":
            victim.write_bytes(blob[: len(blob) // 2])
        case "flip":  # one bit in the compressed payload: caught by its sha256, before decoding
            i = len(blob) - 100
            victim.write_bytes(blob[:i] + bytes([blob[i] ^ 0x10]) + blob[i + 1:])
        case "garbage":
            victim.write_bytes(b"not a cache entry")
        case "empty":
            victim.write_bytes(b"")

    probe.clear()
    with caplog.at_level(logging.WARNING, logger="na64ana.processing.cache"):
        res = _run(synth_campaign.datasets, cdir)
    assert res.metrics["cache"]["hits"] == 12 and res.metrics["cache"]["misses"] == 1
    assert res.metrics["cache"]["stored"] == 1  # the entry is rewritten, valid and with the same output
    was, now = (cache.ChunkCache._decode(b, victim.stem)["out"] for b in (blob, victim.read_bytes()))
    assert was["nevents"] == now["nevents"] and was["hists"] == now["hists"]
    np.testing.assert_array_equal(*(next(iter(x["cutflow"].values()))["events"] for x in (was, now)))
    assert any("corrupt" in r.getMessage() and victim.name in r.getMessage() for r in caplog.records)
    assert_same_output(first, res)


def test_unwritable_cache_is_a_warning_not_a_failure(synth_campaign, tmp_path, caplog):
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    with caplog.at_level(logging.WARNING, logger="na64ana.processing.cache"):
        res = _run(synth_campaign.datasets, blocker)
    assert res.metrics["cache"] | {"dir": None, "code_version": None} == {
        "dir": None, "code_version": None, "hits": 0, "misses": 13, "stored": 0}
    assert any("could not write cache entry" in r.getMessage() for r in caplog.records)


def test_stale_tmp_files_are_removed(tmp_path):
    cc = cache.ChunkCache(tmp_path, {}, "0" * 64)
    d = cc.root / "ab"
    d.mkdir(parents=True)
    old, new = d / ".ab1.chunk.1.x.tmp", d / ".ab2.chunk.2.y.tmp"
    old.write_bytes(b"half")
    new.write_bytes(b"half")
    t = time.time() - 2 * 3600
    os.utime(old, (t, t))
    assert cc.remove_stale_tmp(max_age_s=3600) == 1
    assert not old.exists() and new.exists()  # a recent one may belong to a run that is writing it


def test_cli_cache_default_and_no_cache(synth_campaign, tmp_path):
    out = tmp_path / "out"
    args = ["run", "--datasets", str(synth_campaign.datasets), "--out", str(out), "--chunksize", str(CHUNK)]
    assert cli_main(args) == 0
    assert json.loads((out / "metrics.json").read_text())["cache"]["misses"] == 4 + 4 + 4
    assert cli_main(args) == 0 and outputs.is_complete(out)
    m = json.loads((out / "metrics.json").read_text())["cache"]
    assert m["dir"] == str(out / ".cache") and m["hits"] == 12 and m["misses"] == 0

    other = tmp_path / "elsewhere"
    assert cli_main([*args, "--cache", str(other)]) == 0
    assert json.loads((out / "metrics.json").read_text())["cache"]["dir"] == str(other)
    assert cli_main([*args, "--no-cache"]) == 0 and outputs.is_complete(out)
    assert "cache" not in json.loads((out / "metrics.json").read_text())
