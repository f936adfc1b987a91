"""The forked task pool (na64ana.workers) and the stages that use it: same results as the serial loop."""

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest

from na64ana import summary, workers
from na64ana.stats import limits

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "summaries"


def _pid_and_square(x: int) -> tuple[int, int]:
    return os.getpid(), x * x


def _fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError(f"task {x} failed")
    return x


def _inner_count(_: int) -> int:
    return workers.worker_count(10)


def test_results_in_order_from_child_processes():
    out = workers.map_ordered(_pid_and_square, range(7), workers=2)
    assert [sq for _, sq in out] == [x * x for x in range(7)]
    assert os.getpid() not in {pid for pid, _ in out}  # the tasks ran in forked children


def test_a_closure_runs_in_the_pool():
    offset = 10
    assert workers.map_ordered(lambda x: x + offset, [1, 2, 3], workers=2) == [11, 12, 13]


def test_an_exception_in_a_task_is_raised_to_the_caller():
    with pytest.raises(ValueError, match="task 3 failed"):
        workers.map_ordered(_fail_on_three, range(6), workers=2)


def test_one_worker_and_one_task_run_here():
    assert {pid for pid, _ in workers.map_ordered(_pid_and_square, range(3), workers=1)} == {os.getpid()}
    assert workers.worker_count(1, 8) == 1 and workers.worker_count(5, 8) == 5


def test_pools_are_not_nested():
    assert workers.map_ordered(_inner_count, range(2), workers=2) == [1, 1]


def test_the_environment_chooses_and_a_bad_value_is_one_line(monkeypatch):
    monkeypatch.setenv(workers.ENV_WORKERS, "1")
    assert workers.worker_count(10) == 1
    monkeypatch.setenv(workers.ENV_WORKERS, "two")
    with pytest.raises(ValueError, match=r"\$NA64ANA_WORKERS: expected a whole number, got 'two'"):
        workers.worker_count(10)


def _branch(log: logging.Logger, fail: bool = False) -> int:
    log.info("branch %s", "first")
    try:
        raise KeyError("inner")
    except KeyError:
        log.exception("branch caught")
    if fail:
        raise RuntimeError("branch failed")
    return os.getpid()


@pytest.mark.parametrize("enabled", [True, False])
def test_a_branch_beside_logs_after_the_block_never_interleaved(caplog, enabled):
    """The branch's records (message formatted, traceback kept) come after the block's, whether the branch
    ran in a child or in line: a log reads the same either way."""
    log = logging.getLogger("na64ana.test_beside")
    with caplog.at_level(logging.INFO, logger="na64ana"):
        with workers.beside(lambda: _branch(log), enabled=enabled) as branch:
            log.info("block")
        pid = branch()
        assert branch() == pid  # asked twice: ran and logged once
    assert (pid != os.getpid()) is enabled
    assert [r.getMessage() for r in caplog.records] == ["block", "branch first", "branch caught"]
    assert "KeyError: 'inner'" in caplog.text


def test_a_failing_branch_logs_its_records_then_raises(caplog):
    log = logging.getLogger("na64ana.test_beside")
    with caplog.at_level(logging.INFO, logger="na64ana"):
        with pytest.raises(RuntimeError, match="branch failed") as raised:
            with workers.beside(lambda: _branch(log, fail=True)) as branch:
                log.info("block")
            branch()
    cause = raised.value.__cause__
    assert isinstance(cause, workers.ChildTraceback) and 'in _branch\n    raise RuntimeError' in str(cause)
    assert [r.getMessage() for r in caplog.records] == ["block", "branch first", "branch caught"]


def test_the_result_is_asked_for_after_the_block():
    with workers.beside(lambda: 1, enabled=False) as branch:
        with pytest.raises(RuntimeError, match="known when the with block has ended"):
            branch()
    assert branch() == 1


def test_a_branch_never_asked_for_still_logs(caplog):
    log = logging.getLogger("na64ana.test_beside")
    with caplog.at_level(logging.INFO, logger="na64ana"):
        with workers.beside(lambda: _branch(log)):
            log.info("block")
    assert [r.getMessage() for r in caplog.records] == ["block", "branch first", "branch caught"]


def test_limits_scan_on_two_processes_equals_the_serial_scan(tmp_path):
    """Three runs (one exact CLs per mass, no two masses alike), a failing mass in the middle, workspaces
    written by the children."""
    s = summary.load(EXAMPLES / "prl2019_published.json")
    masses = [0.002, 0.05, 0.3]
    s = s.model_copy(update={"masses_GeV": masses})
    rng = np.random.default_rng(7)
    yields = rng.uniform(0.5, 2.0, size=(len(s.runs), len(masses))) * 1e-9
    yields[:, 1] = 0.0  # fails: no signal
    serial = limits.scan(s, yields=yields, out_dir=tmp_path / "serial", n_workers=1)
    forked = limits.scan(s, yields=yields, out_dir=tmp_path / "forked", n_workers=2)
    assert json.dumps(serial, sort_keys=True) == json.dumps(forked, sort_keys=True)
    assert serial["n_failed"] == 1 and "error" in serial["points"][1]
    written = sorted(p.name for p in (tmp_path / "forked" / "workspaces").iterdir())
    assert written == sorted(p.name for p in (tmp_path / "serial" / "workspaces").iterdir())
    assert len(written) == len(masses) - 1
