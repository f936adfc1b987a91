"""Faults during processing: an interrupted ``na64ana run`` resumes from its chunk cache, and a dask worker
killed mid-run is replaced without changing the result (issue 8).

The input is the controlled synthetic sample of conftest.py, repeated (3 files, ~33k events), processed in
small chunks so that a run has many of them and takes a few seconds: long enough to be interrupted
while it works. Every interrupted or faulty run is compared with a clean run: cut flows, regions and every
histogram identical, and events read == entries in the files (nothing lost, nothing counted twice).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import (
    CATEGORIES,
    assert_same_hists,
    file_entry,
    load_run_outputs,
    make_arrays,
    write_datasets,
    write_tree,
)

from na64ana.cli import main as cli_main
from na64ana.cli.common import reliable_interrupt
from na64ana.processing import execute, outputs

NA64ANA = Path(sys.executable).with_name("na64ana")  # the installed console script
SCALE = 40  # x the conftest categories: 10,880 events per file
RESUME_CHUNK = 400  # 27 chunks per file, 81 in all


@pytest.fixture(scope="module")
def big_campaign(tmp_path_factory):
    """Runs A (two files, no HCAL0) and B (one file, HCAL0), data only."""
    d = tmp_path_factory.mktemp("faults")
    counts = {k: v * SCALE for k, v in CATEGORIES.items()}
    entries, total = {}, 0
    for name, seed in (("a1", 11), ("a2", 12), ("b1", 13)):
        arrays, cats = make_arrays(counts, seed=seed)
        write_tree(d / f"{name}.root", arrays, basket=2000)
        entries[name] = file_entry(d / f"{name}.root", len(cats))
        total += len(cats)
    dsets = write_datasets(d / "datasets.json", {"A": (False, [entries["a1"], entries["a2"]]),
                                                 "B": (True, [entries["b1"]])})
    return SimpleNamespace(datasets=dsets, total=total)


def load_outputs(out: Path) -> tuple[dict, dict, dict, dict]:
    return (*load_run_outputs(out), json.loads((out / "metrics.json").read_text()))


@pytest.fixture(scope="module")
def clean_run(big_campaign, tmp_path_factory):
    """The reference: one uninterrupted run without cache."""
    out = tmp_path_factory.mktemp("clean") / "run"
    assert cli_main(["run", "--datasets", str(big_campaign.datasets), "--out", str(out),
                     "--chunksize", str(RESUME_CHUNK), "--no-cache"]) == 0
    return load_outputs(out)


def cache_entries(cache_dir: Path) -> list[Path]:
    return sorted(cache_dir.glob("*/*/*/*.chunk"))


def _default_sigint() -> None:
    # A shell without job control starts background commands with SIGINT ignored, and Python then keeps
    # ignoring it: restore the default so that the child turns SIGINT into KeyboardInterrupt.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class _InterruptedFinalizer:
    def __del__(self):
        signal.raise_signal(signal.SIGINT)  # the KeyboardInterrupt is raised, and swallowed, in __del__


@pytest.mark.skipif(signal.getsignal(signal.SIGINT) is not signal.default_int_handler,
                    reason="SIGINT is not Python's default handler here")
def test_interrupt_swallowed_by_a_finalizer_still_stops_the_call():
    # Seen for real: uproot's ReadOnlyFile.__del__ swallowed Ctrl-C and the run went on to completion.
    hook = sys.unraisablehook
    with pytest.raises(KeyboardInterrupt), reliable_interrupt():
        _InterruptedFinalizer()
        for _ in range(500):  # re-delivered while the call is still working
            time.sleep(0.01)
    with pytest.raises(KeyboardInterrupt), reliable_interrupt():
        _InterruptedFinalizer()  # the call returns at once: the interrupt is raised on the way out
    assert sys.unraisablehook is hook  # restored


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_interrupted_run_resumes_from_cache(big_campaign, clean_run, tmp_path, sig):
    out = tmp_path / "run"
    cmd = [str(NA64ANA), "run", "--datasets", str(big_campaign.datasets), "--out", str(out),
           "--chunksize", str(RESUME_CHUNK)]
    env = {**os.environ, "NA64ANA_NO_PROGRESS": "1"}
    cache_dir = out / ".cache"
    nchunks = clean_run[3]["chunks"]
    assert nchunks == 81

    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=_default_sigint)
    try:
        t0 = time.monotonic()
        while len(cache_entries(cache_dir)) < 10:  # some chunks are done: interrupt the run now
            if proc.poll() is not None:
                pytest.fail(f"run ended before it could be interrupted:\n{proc.stderr.read().decode()}")
            if time.monotonic() - t0 > 120:
                pytest.fail("no cache entries appeared")
            time.sleep(0.01)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if sig == signal.SIGINT:
        assert proc.returncode == 130, err.decode()
        assert "interrupted" in err.decode()
    else:
        assert proc.returncode == -signal.SIGKILL
    assert not outputs.is_complete(out) and not (out / outputs.COMPLETE).exists()
    done = len(cache_entries(cache_dir))
    assert 10 <= done < nchunks  # interrupted mid-run: chunks were left

    # The same command again: completes, reusing exactly the chunks that were finished.
    res = subprocess.run(cmd, env=env, capture_output=True, timeout=300)
    assert res.returncode == 0, res.stderr.decode()
    cutflows, regions, hists, metrics = load_outputs(out)
    assert metrics["cache"]["hits"] == done and metrics["cache"]["misses"] == nchunks - done
    assert metrics["chunks"] == nchunks and len(cache_entries(cache_dir)) == nchunks
    assert metrics["events"] == sum(metrics["events_per_key"].values()) == big_campaign.total
    c0, r0, h0, _ = clean_run
    assert cutflows == c0 and regions == r0
    assert_same_hists(h0, hists)


# ------------------------------------------------------------------------------------------------------
# A dask worker killed while the run is processing


@pytest.mark.dask
def test_worker_killed_mid_run(big_campaign, clean_run, tmp_path):
    distributed = pytest.importorskip("distributed")
    chunk = 600  # 18 chunks per file: 54 chunk tasks over 2 workers
    jobs = execute.plan(big_campaign.datasets)
    state: dict = {}
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        client.wait_for_workers(2, timeout=60)
        before = set(client.run(os.getpid).values())
        assert os.getpid() not in before  # never kill ourselves

        def kill_one_worker_after_some_chunks() -> None:
            # Tasks run so far, per worker: 3 metadata tasks (+1 merge), then chunks. Kill at >= 10 in all,
            # the worker that ran most: with one thread and a queue of chunks it is busy with one now.
            try:
                while True:
                    executed = client.run(lambda dask_worker: (dask_worker.state.executed_count, os.getpid()))
                    ndone = sum(n for n, _ in executed.values())
                    if ndone >= 10:
                        pid = max(executed.values())[1]
                        os.kill(pid, signal.SIGKILL)
                        state.update(pid=pid, executed_at_kill=ndone)
                        return
                    time.sleep(0.02)
            except Exception as exc:  # reported by the assertions below
                state["error"] = repr(exc)

        watcher = threading.Thread(target=kill_one_worker_after_some_chunks, daemon=True)
        watcher.start()
        res = execute.run(jobs, "invisible", scheduler=cluster.scheduler_address, chunksize=chunk, retries=2)
        watcher.join(timeout=30)
        assert "error" not in state, state
        assert "pid" in state, "the watcher never killed a worker"
        client.wait_for_workers(2, timeout=60)  # the nanny replaced the killed worker
        after = set(client.run(os.getpid).values())

    # The kill happened mid-run: most chunk tasks were still to run, and the killed process is gone.
    assert res.metrics["chunks"] == 54 and state["executed_at_kill"] < 54 // 2
    assert state["pid"] in before and state["pid"] not in after and len(after) == 2
    with pytest.raises(ProcessLookupError):
        os.kill(state["pid"], 0)
    # Every event read exactly once, and the same outputs as the clean iterative run (other chunking).
    assert res.metrics["events"] == sum(res.output["nevents"].values()) == big_campaign.total
    out = tmp_path / "dask"
    outputs.write_run(out, res, processor="invisible", unblind=False)
    cutflows, regions, hists, _ = load_outputs(out)
    c0, r0, h0, _ = clean_run
    assert cutflows == c0 and regions == r0
    assert_same_hists(h0, hists)
