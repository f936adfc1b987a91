"""``na64ana run --scheduler tcp://...`` against a real, separately started dask cluster (issue 7).

A ``dask scheduler`` and a ``dask worker`` (2 worker processes, 1 thread each) are started as independent
processes on localhost, exactly as on a batch site, and stopped in the fixture finaliser. The campaign is
processed through the CLI once with the iterative executor and once on that cluster, with small chunks so
that many tasks are spread over both workers; the cut-flow JSON, regions and every histogram must agree.
Re-running the dask command then takes every chunk from the chunk cache the workers wrote (issue 8).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_same_hists, load_run_outputs

from na64ana.cli import main as cli_main

distributed = pytest.importorskip("distributed")

pytestmark = [pytest.mark.dask]

DASK = Path(sys.executable).with_name("dask")
NWORKERS = 2


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _wait_for(path: Path, proc: subprocess.Popen, log: Path, timeout: float = 30.0) -> None:
    t0 = time.monotonic()
    while not path.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"dask scheduler exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"no scheduler file after {timeout} s:\n{log.read_text()[-2000:]}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    """Address of a scheduler with NWORKERS workers, all separate processes; stopped afterwards."""
    if not DASK.exists():
        pytest.skip(f"no dask command next to {sys.executable}")
    d = tmp_path_factory.mktemp("dask")
    sfile = d / "scheduler.json"
    procs: list[subprocess.Popen] = []
    logs = []
    try:
        slog = d / "scheduler.log"
        logs.append(slog)
        procs.append(subprocess.Popen(
            [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--scheduler-file", str(sfile)],
            cwd=d, stdout=subprocess.DEVNULL, stderr=slog.open("w")))
        _wait_for(sfile, procs[0], slog)
        wlog = d / "worker.log"
        logs.append(wlog)
        procs.append(subprocess.Popen(
            [str(DASK), "worker", "--scheduler-file", str(sfile), "--nworkers", str(NWORKERS),
             "--nthreads", "1", "--no-dashboard", "--local-directory", str(d / "space"),
             "--memory-limit", "2GB"],
            cwd=d, stdout=subprocess.DEVNULL, stderr=wlog.open("w")))
        with distributed.Client(scheduler_file=str(sfile), timeout=30) as client:
            client.wait_for_workers(NWORKERS, timeout=60)
            address = client.scheduler.address
        yield address, sfile
    finally:
        for p in reversed(procs):  # workers first, then the scheduler
            _stop(p)


def _transitions(sfile: Path) -> int:
    with distributed.Client(scheduler_file=str(sfile), timeout=30) as client:
        return client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.transition_counter)


def test_run_on_external_scheduler_matches_iterative(synth_campaign, dask_cluster, tmp_path):
    address, sfile = dask_cluster
    assert address.startswith("tcp://127.0.0.1:")
    common = ["run", "--datasets", str(synth_campaign.datasets), "--samples", "campaign", "signal"]
    ref_dir, dask_dir = tmp_path / "iterative", tmp_path / "dask"

    assert cli_main([*common, "--out", str(ref_dir), "--executor", "iterative"]) == 0
    before = _transitions(sfile)
    assert cli_main([*common, "--out", str(dask_dir), "--scheduler", address, "--chunksize", "60"]) == 0
    assert _transitions(sfile) > before  # the tasks really went through the external scheduler

    metrics = json.loads((dask_dir / "metrics.json").read_text())
    assert metrics["executor"] == "dask" and metrics["scheduler"] == address
    assert metrics["chunks"] > 2 * NWORKERS  # many tasks, so both workers took part
    prov = json.loads((dask_dir / "provenance.json").read_text())
    assert prov["stages"]["run"]["executor"] == "dask"

    # The chunk cache (default DIR/.cache) is written by the workers and counted on the client side.
    assert metrics["cache"]["misses"] == metrics["cache"]["stored"] == metrics["chunks"]
    assert metrics["cache"]["hits"] == 0
    c0, r0, h0 = load_run_outputs(ref_dir)
    c1, r1, h1 = load_run_outputs(dask_dir)
    assert set(c0) == set(c1) == {"A", "B", "B-signal"}
    for key in c0:
        # identical records, except for what describes the execution itself (none expected in cut flows)
        assert c0[key] == c1[key], key
    assert r0 == r1
    assert_same_hists(h0, h1, variance_rtol=1e-12)

    # The same command again: every chunk comes from the cache, also through dask, with the same outputs.
    assert cli_main([*common, "--out", str(dask_dir), "--scheduler", address, "--chunksize", "60"]) == 0
    again = json.loads((dask_dir / "metrics.json").read_text())
    assert again["cache"]["hits"] == again["chunks"] == metrics["chunks"] and again["cache"]["misses"] == 0
    assert again["events"] == metrics["events"]
    c2, r2, h2 = load_run_outputs(dask_dir)
    assert c2 == c1 and r2 == r1
    for name in h1:
        for run in h1[name].axes["run"]:
            np.testing.assert_array_equal(h1[name][{"run": run}].values(flow=True),
                                          h2[name][{"run": run}].values(flow=True), err_msg=f"{name} {run}")
