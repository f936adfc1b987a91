"""Issue #13, faults: the dataset kind of every input in the provenance; ``run.complete`` only after the
provenance; failures leave no run.complete and say so in one line (read-only folder, full disk, an
unreachable dask scheduler, missing branches of ALL files at once); SIGTERM or Ctrl-C during a futures run
leaves no half-written outputs and no orphan worker."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from na64ana.bookkeeping import provenance
from na64ana.cli import main as cli_main
from na64ana.errors import DataError
from na64ana.processing import execute, inputs, outputs, stage

REPO = Path(__file__).resolve().parents[2]


def _run(ds: Path, out: Path, *extra: str) -> int:
    return cli_main(["run", "--datasets", str(ds), "--out", str(out), "--no-cache", *extra])


def _one_error(err: str) -> str:
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _nothing_complete(out: Path) -> None:
    assert not (out / outputs.COMPLETE).exists()
    assert not (out / outputs.STAGING).exists()
    assert not list(out.rglob("*.tmp"))


# -- provenance: kind of every input, run.complete last --------------------------------------------------

def test_every_input_records_its_declared_kind_and_its_content(synth_campaign, tmp_path):
    out = tmp_path / "o"
    assert _run(synth_campaign.datasets, out, "--samples", "campaign", "signal") == 0
    rec = json.loads((out / "provenance.json").read_text())["stages"]["run"]
    events = [i for i in rec["inputs"] if i.get("role") == "events"]
    assert len(events) == 4
    by_name = {Path(i["path"]).name: i for i in events}
    for name in ("a1.root", "a2.root", "b1.root"):
        assert (by_name[name]["kind"], by_name[name]["content"]) == ("data", "data")
    assert (by_name["sig.root"]["kind"], by_name["sig.root"]["content"]) == ("mc", "mc")


def test_run_complete_is_written_after_the_provenance_and_verifies(synth_campaign, tmp_path, monkeypatch,
                                                                   capsys):
    out = tmp_path / "o"
    seen = []
    real = provenance.write

    def spy(outdir, stage_name, **kw):
        seen.append((stage_name, (Path(outdir) / outputs.COMPLETE).exists()))
        return real(outdir, stage_name, **kw)

    monkeypatch.setattr(provenance, "write", spy)
    assert _run(synth_campaign.datasets, out) == 0
    assert seen == [("run", False)]  # the provenance was written while the folder was not yet complete
    assert (out / outputs.COMPLETE).exists()
    man = json.loads((out / "provenance.json").read_text())["manifest"]["files"]
    assert man[outputs.COMPLETE]["sha256"] == provenance.file_sha256(out / outputs.COMPLETE, cached=False)
    monkeypatch.undo()
    assert cli_main(["verify", str(out), "-q"]) == 0


# -- one-line errors -----------------------------------------------------------------------------------

def _raise_at(monkeypatch, target: str, code: int) -> None:
    """Make the atomic writes fail with ``code`` once they reach ``target`` (a file name)."""
    real = provenance.write_bytes

    def failing(path, content):
        if Path(path).name == target:
            raise OSError(code, os.strerror(code), str(Path(path).with_name(target + ".tmp")))
        return real(path, content)

    monkeypatch.setattr(provenance, "write_bytes", failing)


@pytest.mark.parametrize("target", ["provenance.json", outputs.COMPLETE, "regions.json"])
def test_full_disk_is_one_line_and_nothing_complete(target, synth_campaign, tmp_path, monkeypatch, capsys):
    out = tmp_path / "o"
    _raise_at(monkeypatch, target, errno.ENOSPC)
    assert _run(synth_campaign.datasets, out) == 4
    line = _one_error(capsys.readouterr().err)
    assert "no space left" in line and target in line
    _nothing_complete(out)


def test_full_disk_on_a_real_tiny_tmpfs(synth_campaign, tmp_path, capsys):
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (no privilege)")
    try:
        out = mnt / "o"
        assert _run(synth_campaign.datasets, out) == 4
        line = _one_error(capsys.readouterr().err)
        assert "no space left" in line
        _nothing_complete(out)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_read_only_folder_is_one_line(synth_campaign, tmp_path, monkeypatch, capsys):
    out = tmp_path / "o"
    assert _run(synth_campaign.datasets, out) == 0
    capsys.readouterr()
    if os.geteuid() != 0:  # a real read-only folder (root writes anyway: simulated below)
        out.chmod(0o555)
        try:
            assert _run(synth_campaign.datasets, out) == 4
            assert "not writable" in _one_error(capsys.readouterr().err)
        finally:
            out.chmod(0o755)
    real = Path.write_text

    def read_only(self, *a, **k):
        if self.is_relative_to(out):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "write_text", read_only)
    assert _run(synth_campaign.datasets, out) == 4
    assert "read-only" in _one_error(capsys.readouterr().err)


@pytest.mark.dask  # imports dask.distributed and tries the scheduler (~2 s); make test runs it
def test_unreachable_dask_scheduler_is_one_line(synth_campaign, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(execute, "SCHEDULER_TIMEOUT_S", 2)
    out = tmp_path / "o"
    assert _run(synth_campaign.datasets, out, "--executor", "dask", "--scheduler", "tcp://127.0.0.1:1") == 2
    line = _one_error(capsys.readouterr().err)
    assert "--scheduler" in line and "tcp://127.0.0.1:1" in line
    _nothing_complete(out)


def test_missing_branches_of_all_files_in_one_error(synth, tmp_path, capsys):
    a, _ = synth.make_arrays(seed=1)
    f1 = synth.write_tree(tmp_path / "f1.root", a, drop=("ecal_chi2", "veto_e0"))
    f2 = synth.write_tree(tmp_path / "f2.root", a, drop=("straw_nhits",))
    f3 = synth.write_tree(tmp_path / "f3.root", {k: v[::-1].copy() for k, v in a.items()})  # fine
    n = len(a["ecal_e"])
    ds = synth.write_datasets(tmp_path / "datasets.json", {
        "A": (False, [synth.file_entry(f1, n), synth.file_entry(f3, n)]),
        "B": (False, [synth.file_entry(f2, n)])})
    jobs = execute.plan(ds)
    with pytest.raises(DataError) as e:
        inputs.check_inputs(jobs)
    msg = str(e.value)
    assert f"{f1} -> ecal_chi2, veto_e0" in msg and f"{f2} -> straw_nhits" in msg and "f3.root" not in msg
    assert e.value.file == str(f1) and e.value.field == "ecal_chi2"
    assert _run(ds, tmp_path / "o") == 3
    line = _one_error(capsys.readouterr().err)
    assert "f1.root -> ecal_chi2, veto_e0" in line and "f2.root -> straw_nhits" in line


# -- SIGTERM / Ctrl-C during a futures run -------------------------------------------------------------

@pytest.fixture
def slow_campaign(synth, tmp_path):
    """Enough chunks of 64 events that a futures run lasts several seconds."""
    a, _ = synth.make_arrays(seed=3)
    reps = max(1, 30_000 // len(a["ecal_e"]))
    big = {k: np.tile(v, reps) for k, v in a.items()}
    big["event"][:] = np.arange(len(big["event"]))
    f = synth.write_tree(tmp_path / "big.root", big, basket=5000)
    return synth.write_datasets(tmp_path / "datasets.json",
                                {"A": (False, [synth.file_entry(f, len(big["ecal_e"]))])})


@pytest.mark.slow  # a subprocess running a 2-worker futures pool on ~30k events, then a signal
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_during_futures_run_leaves_nothing(sig, slow_campaign, tmp_path):
    out = tmp_path / "o"
    cmd = [sys.executable, "-c", "import sys; from na64ana.cli import main; sys.exit(main())", "run",
           "--datasets", str(slow_campaign), "--out", str(out),
           "--executor", "futures", "--workers", "2", "--chunksize", "64", "--no-cache"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    parent = psutil.Process(proc.pid)
    workers: list[psutil.Process] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        workers = [c for c in parent.children(recursive=True) if "python" in c.name().lower()]
        if len(workers) >= 2:
            break
        time.sleep(0.2)
    assert proc.poll() is None and len(workers) >= 2, "the run ended before its workers could be seen"
    time.sleep(1.0)  # the workers are processing chunks
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err, err
    _nothing_complete(out)
    assert not (out / "cutflows").exists() and not (out / "provenance.json").exists()
    gone, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive, f"orphan workers: {[p.pid for p in alive]}"


def test_stage_helpers_map_only_folder_errors(tmp_path):
    with pytest.raises(OSError) as e, stage.output_errors(tmp_path):
        raise OSError(errno.ENOENT, "No such file or directory", "x")
    assert e.value.errno == errno.ENOENT  # not a folder property: unchanged


# -- verify: --results DIR, and the fast (identity-based) mode next to the full re-hash ----------------

def test_verify_fast_mode_trusts_only_unchanged_identities(synth_campaign, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NA64ANA_CACHE", str(tmp_path / "store"))
    out = tmp_path / "o"
    assert _run(synth_campaign.datasets, out) == 0
    old = time.time() - 60  # written a minute ago: not "racy" for the identity store
    for p in [*out.rglob("*"), *synth_campaign.paths.values(), synth_campaign.datasets]:
        if p.is_file():
            os.utime(p, (old, old))
    full = provenance.check(out)
    assert not full.errors and full.hashed > 10 and full.trusted == 0
    first = provenance.check(out, fast=True)
    assert not first.errors
    second = provenance.check(out, fast=True)  # nothing read again
    assert not second.errors and second.hashed == 0 and second.trusted == first.hashed + first.trusted
    # a same-size edit with the old mtime put back: ctime changed, so the fast mode re-hashes and catches it
    target = out / "regions.json"
    data = bytearray(target.read_bytes())
    data[data.index(b"1")] = ord("2")
    target.write_bytes(bytes(data))
    os.utime(target, (old, old))
    third = provenance.check(out, fast=True)
    assert [e.file for e in third.errors] == ["regions.json"] and third.hashed == 1
    capsys.readouterr()
    assert cli_main(["verify", "--results", str(out), "--fast"]) == 3
    assert "regions.json" in _one_error(capsys.readouterr().err)
    assert cli_main(["verify", str(out), "--results", str(tmp_path)]) == 2  # two different folders
