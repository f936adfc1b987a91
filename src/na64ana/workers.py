"""Independent CPU-bound tasks on the machine's cores: forked processes, one BLAS thread each.

The limits scan (one exact CLs per mass), its pyhf toy cross-check (one per checked mass) and the cut
optimisation (one expected limit per mass and cut) are lists of independent tasks of 0.1-10 CPU-s. They
run in forked worker processes, in order, with the same results as a serial loop (each task is seeded by
its own arguments, never by the process it lands on). BLAS is held to one thread per process: the models
are a few parameters, and OpenBLAS's threads only spin (the limits stage cost 53 CPU-s with them, 27
without, on 2 cores).

:func:`beside` runs one branch of work in a forked process while this process goes on with another
(the demo simulates and measures the signal MC while it simulates and processes the data). The branch's
log records are held in the child and logged here, in their order, when the ``with`` block ends: a log
reads the same whether the branch ran beside or in line (never two stages' lines interleaved).

Serial, in this process, when: one worker is asked for (``NA64ANA_WORKERS=1`` or ``workers=1``), there is
one task, the platform cannot fork, or this process is itself a pool worker (no nested pools).

Examples:
    >>> from na64ana.workers import map_ordered
    >>> map_ordered(abs, [-3, 1, -2], workers=2)
    [3, 1, 2]
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from threadpoolctl import threadpool_limits

__all__ = ["ENV_WORKERS", "ChildTraceback", "available_cores", "beside", "map_ordered", "worker_count"]

ENV_WORKERS = "NA64ANA_WORKERS"

T = TypeVar("T")
R = TypeVar("R")

# the task of the pool being run: set before the fork, so the children inherit it (a closure need not be
# picklable); one pool at a time per process (pools are never nested, see worker_count)
_TASK: tuple[Callable[[Any], Any], Sequence[Any]] | None = None


def available_cores() -> int:
    """The cores this process may use (its CPU affinity where the platform has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def worker_count(n_tasks: int, workers: int | None = None) -> int:
    """How many processes run ``n_tasks``: ``workers``, else ``$NA64ANA_WORKERS``, else the cores this
    process may use; never more than the tasks; 1 inside a pool worker or without ``fork``."""
    if workers is None:
        env = os.environ.get(ENV_WORKERS, "").strip()
        if env:
            try:
                workers = int(env)
            except ValueError:
                raise ValueError(f"${ENV_WORKERS}: expected a whole number, got {env!r}") from None
        else:
            workers = available_cores()
    if mp.current_process().daemon or "fork" not in mp.get_all_start_methods():
        return 1
    return max(1, min(int(workers), n_tasks))


def _run(index: int) -> Any:
    assert _TASK is not None  # set by map_ordered before the fork
    fn, items = _TASK
    return fn(items[index])


def map_ordered(fn: Callable[[T], R], items: Iterable[T], *, workers: int | None = None) -> list[R]:
    """``[fn(x) for x in items]``, spread over forked processes (see the module docstring). An exception
    in a task is raised here, as in the loop; ``fn``'s results must pickle."""
    global _TASK
    seq = list(items)
    n = worker_count(len(seq), workers)
    with threadpool_limits(limits=1, user_api="blas"):
        if n <= 1:
            return [fn(x) for x in seq]
        previous, _TASK = _TASK, (fn, seq)
        try:
            with mp.get_context("fork").Pool(n) as pool:
                return pool.map(_run, range(len(seq)), chunksize=1)
        finally:
            _TASK = previous


class ChildTraceback(Exception):
    """The cause of an exception raised in a forked branch: its traceback there, as text."""

    def __str__(self) -> str:
        return f"\n\"\"\"\n{self.args[0]}\"\"\""


class _RecordsHeld(logging.Handler):
    """Holds every record that reaches a handler of this process (each once, although a record may reach
    several loggers' handlers), ready to be pickled: the message formatted, the traceback as text."""

    def __init__(self, held: list[logging.LogRecord]) -> None:
        super().__init__(logging.NOTSET)
        self.held = held
        self._seen: set[int] = set()

    def emit(self, record: logging.LogRecord) -> None:
        if id(record) in self._seen:
            return
        self._seen.add(id(record))
        record.msg = record.getMessage()
        record.args = None
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        self.held.append(record)


def _holding_logs(fn: Callable[[], R]) -> tuple[bool, Any, list[logging.LogRecord]]:
    """In the child: ``fn()`` with every logger's handlers replaced by one that holds the records; returns
    (ok, result or (the exception, its traceback as text), records)."""
    held: list[logging.LogRecord] = []
    holder = _RecordsHeld(held)
    loggers = [logging.getLogger()] + [lg for lg in logging.Logger.manager.loggerDict.values()
                                       if isinstance(lg, logging.Logger)]
    for lg in loggers:
        if lg.handlers:
            lg.handlers = [holder]
    try:
        return True, fn(), held
    except Exception as exc:  # raised in the parent, after the records before it are logged
        return False, (exc, "".join(traceback.format_exception(exc))), held


def _log_held(records: list[logging.LogRecord]) -> None:
    for record in records:
        logging.getLogger(record.name).handle(record)


@contextmanager
def beside(fn: Callable[[], R], *, enabled: bool = True) -> Iterator[Callable[[], R]]:
    """Run ``fn()`` in a forked process while the ``with`` block runs here. When the block ends normally,
    the records ``fn`` logged are logged here (see the module docstring); the handle then returns ``fn``'s
    result or raises its exception (the handle is meant to be called after the block). ``fn`` must not
    need this process's later state, and its result must pickle. Serial when ``enabled`` is false or
    :func:`worker_count` allows one process: then ``fn`` runs when the block ends. Leaving the block by an
    exception stops the child (``fn`` never runs in the serial case).

    Examples:
        >>> from na64ana.workers import beside
        >>> with beside(lambda: sum(range(10))) as total:
        ...     here = 2 * 3
        >>> total() + here
        51
    """
    global _TASK
    outcome: list[tuple[bool, Any]] = []  # (ok, result or exception), set when the block ends normally

    def result() -> R:
        if not outcome:
            raise RuntimeError("beside: the branch's result is known when the with block has ended")
        ok, value = outcome[0]
        if not ok:
            raise value
        return value

    if not enabled or worker_count(2) < 2:
        yield result
        try:
            outcome.append((True, fn()))
        except Exception as exc:  # raised by the handle, as in the forked case
            outcome.append((False, exc))
        return
    previous, _TASK = _TASK, (lambda _: _holding_logs(fn), [None])
    try:
        with mp.get_context("fork").Pool(1) as pool:
            pending = pool.apply_async(_run, (0,))
            _TASK = previous  # the child has its copy
            yield result
            ok, value, records = pending.get()  # wait: never kill a child that is still working
            _log_held(records)
            if not ok:  # the exception, its cause the traceback in the child
                error, text = value
                error.__cause__ = ChildTraceback(text)
                value = error
            outcome.append((ok, value))
    finally:
        _TASK = previous
