"""Input identity (na64ana.processing.identity) and files kept open across chunks (processing.sources).

What must hold: an input is hashed once per file identity (and again after any change, even one that keeps
size and mtime); the store is never trusted for anything else and a broken store is only a miss; an input
that changes while a run processes it fails the run (DataError, exit 3, naming the file) and leaves no
chunk-cache entry; two listed files with the same content are refused even without a sha256 in
datasets.json; a file rewritten between two runs of one process is read afresh (no stale map or TTree).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from na64ana.errors import DataError, InputError
from na64ana.processing import cache, execute, identity, inputs, sources

OLD = 1_500_000_000  # a modification time far from "now" (not racy)


@pytest.fixture
def store_dir(tmp_path, monkeypatch):
    d = tmp_path / "idstore"
    monkeypatch.setenv("NA64ANA_CACHE", str(d))
    monkeypatch.delenv("NA64ANA_IDENTITY_STORE", raising=False)
    return d


@pytest.fixture
def hashes(monkeypatch):
    """Counts the files actually read for hashing."""
    seen: list[str] = []
    real = identity._sha256

    def counting(path):
        seen.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(identity, "_sha256", counting)
    return seen


def _old(path: Path) -> Path:
    os.utime(path, (OLD, OLD))
    return path


def test_hashed_once_per_identity(tmp_path, store_dir, hashes):
    f = tmp_path / "a.bin"
    f.write_bytes(b"x" * 1000)
    _old(f)
    want = hashlib.sha256(b"x" * 1000).hexdigest()
    assert identity.sha256(f) == want
    assert identity.sha256(f) == want  # a new store instance, read back from the JSON file
    assert hashes == ["a.bin"]
    data = json.loads((store_dir / identity.STORE_NAME).read_text())
    (entry,) = data["files"].values()
    assert entry["sha256"] == want and entry["size"] == 1000 and entry["mtime_ns"] == OLD * 10**9


def test_files_that_are_gone_leave_the_store_at_the_next_write(tmp_path, store_dir, hashes):
    """A store that remembered every temporary file ever hashed grew to MBs, rewritten on every run."""
    files = [tmp_path / f"{i}.bin" for i in range(3)]
    for i, f in enumerate(files):
        f.write_bytes(b"%d" % i)
        _old(f)
    for f in files[:2]:
        identity.sha256(f)
    files[0].unlink()
    identity.sha256(files[2])  # a write: the entry of the deleted file goes, the living one stays
    kept = json.loads((store_dir / identity.STORE_NAME).read_text())["files"]
    assert sorted(Path(k).name for k in kept) == ["1.bin", "2.bin"]
    assert identity.sha256(files[1]) and hashes == ["0.bin", "1.bin", "2.bin"]  # 1.bin still from the store


def test_any_change_rehashes_even_same_size_and_mtime(tmp_path, store_dir, hashes):
    f = tmp_path / "a.bin"
    f.write_bytes(b"a" * 100)
    _old(f)
    first = identity.sha256(f)
    f.write_bytes(b"b" * 100)  # same size ...
    _old(f)  # ... and mtime reset: ctime still moved
    second = identity.sha256(f)
    assert first != second == hashlib.sha256(b"b" * 100).hexdigest()
    assert hashes == ["a.bin", "a.bin"]


def test_racy_entry_is_hashed_again_then_trusted(tmp_path, store_dir, hashes):
    f = tmp_path / "new.bin"
    f.write_bytes(b"fresh")  # modified "now": within RACY_NS of the moment it is hashed
    identity.sha256(f)
    identity.sha256(f)
    assert hashes == ["new.bin", "new.bin"]
    store = identity.IdentityStore()
    entry = store._files[os.path.realpath(f)]
    entry["hashed_ns"] = time.time_ns() + identity.RACY_NS  # as if hashed well after the last write
    assert identity._trusted(entry, identity.Identity.of(f)) == hashlib.sha256(b"fresh").hexdigest()


@pytest.mark.parametrize("content", [b"{not json", b'{"format": 999, "files": {}}',
                                     b'{"format": 1, "files": 3}'])
def test_broken_store_is_a_miss_and_is_rewritten(tmp_path, store_dir, hashes, content):
    f = tmp_path / "a.bin"
    f.write_bytes(b"abc")
    _old(f)
    store_dir.mkdir()
    (store_dir / identity.STORE_NAME).write_bytes(content)
    assert identity.sha256(f) == hashlib.sha256(b"abc").hexdigest()
    assert identity.sha256(f) == hashlib.sha256(b"abc").hexdigest()
    assert hashes == ["a.bin"]  # the second call trusted the rewritten store


def test_store_can_be_disabled(tmp_path, store_dir, hashes, monkeypatch):
    monkeypatch.setenv("NA64ANA_IDENTITY_STORE", "off")
    f = tmp_path / "a.bin"
    f.write_bytes(b"1")
    _old(f)
    identity.sha256(f)
    identity.sha256(f)
    assert hashes == ["a.bin", "a.bin"] and not (store_dir / identity.STORE_NAME).exists()


def test_change_while_hashing_is_a_data_error(tmp_path, store_dir, monkeypatch):
    f = tmp_path / "a.bin"
    f.write_bytes(b"1234")
    real = identity._sha256

    def racing(path):
        out = real(path)
        Path(path).write_bytes(b"12345")
        return out

    monkeypatch.setattr(identity, "_sha256", racing)
    with pytest.raises(DataError, match="changed while it was being hashed") as err:
        identity.sha256(f)
    assert err.value.file == str(f)


def test_confirm_names_the_changed_file(tmp_path):
    f = tmp_path / "a.bin"
    f.write_bytes(b"1")
    was = identity.Identity.of(f)
    identity.confirm([(str(f), was)])
    os.utime(f, ns=(was.mtime_ns, was.mtime_ns + 1))
    with pytest.raises(DataError, match=r"changed while the run processed it \(mtime changed\)") as err:
        identity.confirm([(str(f), was)])
    assert err.value.file == str(f) and err.value.exit_code == 3
    f.unlink()
    with pytest.raises(DataError, match="removed"):
        identity.confirm([(str(f), was)])


# ------------------------------------------------------------------------------------------------------
# Runs


def test_second_run_hashes_nothing(synth_campaign, store_dir, hashes):
    for p in synth_campaign.paths.values():
        _old(p)
    jobs = execute.plan(synth_campaign.datasets, samples=["campaign", "signal"])
    first = inputs.check_inputs(jobs)
    assert sorted(hashes) == sorted(p.name for p in synth_campaign.paths.values())
    hashes.clear()
    jobs = execute.plan(synth_campaign.datasets, samples=["campaign", "signal"])
    second = inputs.check_inputs(jobs)
    assert hashes == []
    assert [r.sha256 for r in first] == [r.sha256 for r in second]
    assert all(r.sha256 == hashlib.sha256(Path(r.path).read_bytes()).hexdigest() for r in second)
    assert "identity" not in second[0].as_dict()  # provenance records stay as they were


def test_copy_under_another_name_is_refused_without_sha256(synth_campaign, store_dir):
    sc = synth_campaign
    raw = json.loads(sc.datasets.read_text())
    files = raw["campaigns"]["test"]["runs"]["B"]["files"]
    shutil.copy(sc.paths["a1"], sc.paths["a1"].with_name("copy_of_a1.root"))
    files.append({**files[0], "path": "copy_of_a1.root"})
    assert all("sha256" not in f for f in files)
    sc.datasets.write_text(json.dumps(raw))
    jobs = execute.plan(sc.datasets, samples=["campaign"])
    with pytest.raises(InputError, match=r"same content \(sha256 .*\) as .*a1\.root") as err:
        inputs.check_inputs(jobs)
    assert err.value.file.endswith("copy_of_a1.root") and err.value.exit_code == 2


def test_input_changed_during_run_fails_and_stores_no_chunk(synth_campaign, store_dir, tmp_path, monkeypatch):
    target = synth_campaign.paths["a2"]
    load = cache.ChunkCache.load
    touched: list[int] = []

    def touching_load(self, metadata, processor_instance):
        if metadata["filename"] == str(target) and not touched:
            st = os.stat(target)
            os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # rewritten (same bytes)
            touched.append(1)
        return load(self, metadata, processor_instance)

    monkeypatch.setattr(cache.ChunkCache, "load", touching_load)
    jobs = execute.plan(synth_campaign.datasets, samples=["campaign", "signal"])
    cdir = tmp_path / "cache"
    with pytest.raises(DataError, match="changed while the run processed it") as err:
        execute.run(jobs, "invisible", chunksize=64, cache_dir=cdir)
    assert err.value.file == str(target) and touched
    # every chunk was processed; those of the other files were stored (4 + 4 + 1 of the 13 chunks, see
    # test_cache.py), none of the 4 of the changed file
    assert len(list(cdir.rglob("*.chunk"))) == 9


def test_cli_exit_code_for_an_input_changed_during_the_run(synth_campaign, store_dir, tmp_path, monkeypatch,
                                                          capsys):
    from na64ana.cli import main as cli_main

    target = synth_campaign.paths["b1"]
    real = inputs.check_inputs

    def check_then_touch(*a, **kw):
        out = real(*a, **kw)
        st = os.stat(target)
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        return out

    monkeypatch.setattr(inputs, "check_inputs", check_then_touch)
    rc = cli_main(["run", "--datasets", str(synth_campaign.datasets), "--out", str(tmp_path / "out"),
                   "--chunksize", "100"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 3
    assert any(str(target) in line and "changed while the run processed it" in line for line in err)


# ------------------------------------------------------------------------------------------------------
# Files kept open across chunks


def test_rewritten_file_is_read_afresh_in_the_same_process(synth_campaign, synth, store_dir):
    jobs = execute.plan(synth_campaign.datasets, runs=["A"])
    before = execute.run(jobs, "invisible", chunksize=64)
    sources_kept = sources.kept()
    assert sources_kept == []  # released after the run
    # Rewrite a2 in place with other events (a new file: new inode, other size and TTree)
    arrays, cats = synth.make_arrays({"golden": 7, "fail_veto": 3}, seed=9)
    tmp = synth_campaign.paths["a2"].with_suffix(".new")
    synth.write_tree(tmp, arrays)
    os.replace(tmp, synth_campaign.paths["a2"])
    raw = json.loads(synth_campaign.datasets.read_text())
    raw["campaigns"]["test"]["runs"]["A"]["files"][1]["nevents"] = len(cats)
    synth_campaign.datasets.write_text(json.dumps(raw))
    jobs = execute.plan(synth_campaign.datasets, runs=["A"])
    after = execute.run(jobs, "invisible", chunksize=64)
    n_a1 = len(synth_campaign.arrays["a1"]["ecal_e"])
    assert before.output["nevents"]["A"] == n_a1 + len(synth_campaign.arrays["a2"]["ecal_e"])
    assert after.output["nevents"]["A"] == n_a1 + len(cats)


def test_kept_open_source_shares_one_map_and_its_objects(synth_campaign):
    import uproot

    path = str(synth_campaign.paths["a1"])
    opts = dict(execute.UPROOT_OPTIONS)
    try:
        with uproot.open(path, **opts) as f1:
            t1 = f1["events"]
        with uproot.open(path, **opts) as f2:
            t2 = f2["events"]
        assert t2 is t1  # TTree metadata read once per file and process
        assert sources.kept() == [os.path.realpath(path)]
        assert len(t2["ecal_e"].array(library="np")) == len(synth_campaign.arrays["a1"]["ecal_e"])
        # a copy (same ROOT UUID, another path) gets its own map and its own objects
        copy = synth_campaign.paths["a1"].with_name("copy.root")
        shutil.copy(path, copy)
        with uproot.open(str(copy), **opts) as f3:
            assert f3["events"] is not t1
    finally:
        assert sources.release() >= 1
    assert sources.kept() == []
