"""The run stage (stage 1): plan the jobs, run the processor, write the run output -- one owner.

``na64ana run``, ``na64ana demo`` (its ``run`` and ``dimuon`` stages), the efficiency stage's signal-MC
pass and the closure study all call :func:`run_stage`; :mod:`.outputs` writes the folder and its
provenance (blinding, inputs with sha256, selections, executor, metrics) and :class:`~na64ana.records.
RunOutput` is the typed record handed back.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..bookkeeping import provenance
from ..errors import OutputError
from ..records import RunOutput
from . import execute, outputs

log = logging.getLogger("na64ana.run")


def run_stage(datasets_file: str | Path, out: str | Path, *, processor: str = "invisible",
              campaign: str | None = None, runs: Sequence[str] | None = None,
              samples: Sequence[str] = ("campaign",), selection: str | Path | None = None,
              extra: Sequence[tuple[str | Path, Sequence[str]]] = (), unblind: bool = False,
              executor: str = "iterative", workers: int = 2, scheduler: str | None = None,
              chunksize: int = execute.DEFAULT_CHUNKSIZE, retries: int = 2, on_bad_file: str = "fail",
              cache_dir: str | Path | None = None, status: bool = False) -> RunOutput:
    """Process the samples of ``datasets_file`` (plus ``extra`` (datasets file, samples) pairs, e.g. an MC
    prediction simulated into its own folder) and write the run output into ``out``.

    The jobs are planned (and bad inputs refused) before ``out`` is touched. Blinded unless ``unblind``.
    """
    jobs = execute.plan(datasets_file, campaign=campaign, runs=runs, samples=samples, selection=selection,
                        processor=processor)
    for ds_file, ds_samples in extra:
        jobs += execute.plan(ds_file, campaign=campaign, runs=runs, samples=ds_samples, selection=selection,
                             processor=processor)
    with output_errors(out):
        outdir = provenance.prepare_outdir(out, stage="run")
        with folder_lock(outdir), execute.terminate_as_interrupt():
            try:
                return _run_locked(jobs, outdir, processor=processor, unblind=unblind, executor=executor,
                                   workers=workers, scheduler=scheduler, chunksize=chunksize,
                                   retries=retries, status=status, on_bad_file=on_bad_file,
                                   cache_dir=cache_dir, datasets_file=datasets_file)
            except BaseException:
                # failed, interrupted or terminated: no run.complete, no half-written staging folder
                (outdir / outputs.COMPLETE).unlink(missing_ok=True)
                shutil.rmtree(outdir / outputs.STAGING, ignore_errors=True)
                raise


#: OS errors that are a property of the output folder, reported as one line (OutputError, exit 4)
_FOLDER_ERRNOS = {errno.EACCES: "not writable", errno.EPERM: "not writable",
                  errno.EROFS: "read-only file system", errno.ENOSPC: "no space left on the device",
                  errno.EDQUOT: "disk quota exceeded"}


@contextlib.contextmanager
def output_errors(out: str | Path) -> Iterator[None]:
    """A read-only or full output folder is one line (OutputError naming the file, exit 4), not a
    traceback. Other OS errors pass unchanged."""
    try:
        yield
    except OSError as exc:
        why = _FOLDER_ERRNOS.get(exc.errno or -1)
        if why is None:
            raise
        raise OutputError(f"cannot write: {why} ({exc.strerror}); nothing is marked complete",
                          file=str(exc.filename or out)) from None


@contextlib.contextmanager
def folder_lock(outdir: Path) -> Iterator[None]:
    """One run per output folder: a second one fails at once (OutputError, exit 4) naming the holder's
    pid. An flock: released by the kernel when the holder dies, so a killed run leaves no stale lock."""
    path = Path(outdir) / provenance.LOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise OutputError(f"cannot create the folder lock ({exc.strerror})", file=str(path)) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            raise OutputError(f"another na64ana run (pid {holder}) is writing this folder; wait for it or "
                              "use another --out", file=str(outdir)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def _run_locked(jobs: list, outdir: Path, *, processor: str, unblind: bool, executor: str, workers: int,
                scheduler: str | None, chunksize: int, retries: int, status: bool, on_bad_file: str,
                cache_dir: str | Path | None, datasets_file: str | Path) -> RunOutput:
    outputs.begin(outdir)
    log.info("run: %s processor on %d dataset(s) [%s], executor %s, chunksize %d, %s", processor, len(jobs),
             ", ".join(j.key for j in jobs), "dask" if scheduler else executor, chunksize,
             "UNBLINDED" if unblind else "blinded")
    result = execute.run(jobs, processor, executor="dask" if scheduler else executor, workers=workers,
                         scheduler=scheduler, chunksize=chunksize, unblind=unblind, retries=retries,
                         status=status, on_bad_file=on_bad_file, cache_dir=cache_dir)
    outputs.write_run(outdir, result, processor=processor, unblind=unblind, datasets_file=datasets_file)
    m = result.metrics
    log.info("%d events in %d chunks, %.2f s wall (%.3g events/s); outputs in %s", m["events"], m["chunks"],
             m["wall_time_s"], m["events_per_s"] or 0.0, outdir)
    if "cache" in m:
        c = m["cache"]
        log.info("chunk cache %s: %d reused, %d processed (%d stored)", c["dir"], c["hits"], c["misses"],
                 c["stored"])
    return outputs.load_run(outdir)
