"""From datasets.json to processor outputs: fileset, input checks, coffea Runner with a chosen executor.

Executors (identical outputs, tested): ``iterative`` (tests, notebooks), ``futures`` (local processes)
and ``dask`` (a ``dask.distributed.LocalCluster`` of N worker processes, or an existing scheduler with
``scheduler="tcp://host:port"``). The processor and the selection modules are installed packages
(na64ana.processors, na64ana.selection), so dask workers import them like any other module.

Every input file is checked before processing (:mod:`na64ana.processing.inputs`) so that a bad file is a
:class:`DataError` naming it instead of a failure deep inside a worker after minutes of processing.
With ``cache_dir`` every chunk's output is kept under a content key (:mod:`na64ana.processing.cache`, coffea's
checkpointer): an interrupted run resumes, and a change re-processes only the chunks it affects.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import logging
import re
import resource
import signal
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import blinding, contract
from .. import datasets as ds
from .. import selection as selmod
from ..errors import DataError, InputError
from ..workers import available_cores
from . import inputs, sources

log = logging.getLogger(__name__)

EXECUTORS = ("iterative", "futures", "dask")
PROCESSOR_NAMES = ("invisible", "dimuon", "visible", "alp")  # = na64ana.processors.PROCESSORS (lazy: coffea)
# processors whose blinded region is defined by their packaged selection (selections/<name>.toml)
REFERENCE_SELECTIONS = ("alp", "visible")
# 2M events per chunk: coffea reopens the file for every chunk (~0.06 CPU-s), which dominates on fast lz4
# reads; 2M events cost ~0.8 GB per worker. benchmarks/RESULTS.md: (b)/(a) 0.38 (500k), 0.47 (1M), 0.67 (2M).
DEFAULT_CHUNKSIZE = 2_000_000
# Inputs are local files (check_file requires it): read them through mmap. uproot's default fsspec source
# sends every column request through an asyncio loop thread, and coffea requests one column at a time:
# with 20 columns per chunk that doubled the CPU time per event (benchmarks/RESULTS.md). coffea reopens
# the file for every chunk: KeptOpenSource maps each unchanged file once per process (sources.py).
# No array cache: a kept TTree would otherwise hold up to 100 MB of old chunks' arrays per file.
UPROOT_OPTIONS = {"handler": sources.KeptOpenSource, "array_cache": None}
#: threads decompressing the baskets of a chunk for the iterative executor (never more than this process's
#: cores; the pool and dask executors decompress in their workers' own thread: sources.py)
READ_THREADS = 2
# dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which also freezes glibc's mmap threshold at
# 128 kB: every column array of every chunk is then mmap'ed, page-faulted and unmapped again, which cost ~2x
# CPU per event in a worker compared with the same code in one process. Our chunks are fixed-size, so let
# the heap keep up to 256 MB and serve arrays below 32 MB from it (see docs/distributed.md for own clusters).
WORKER_ENV = {"MALLOC_TRIM_THRESHOLD_": str(2**28), "MALLOC_MMAP_THRESHOLD_": str(2**25)}
# dask's workers sample their threads' stacks every 10 ms for the dashboard's profile page. Each sample takes
# the GIL from the task thread: with the profiler off a 1-worker LocalCluster ran 6e7 events in 3.02 s
# instead of 3.25 s (benchmarks/RESULTS.md). Clusters we start go without it; see docs/distributed.md.
WORKER_CONFIG = {"distributed.worker.profile.enabled": False}
_MALLOC_TUNED = False


def local_cluster_config() -> dict[str, Any]:
    """The dask config under which a ``LocalCluster`` of ours is created (its nannies hand it to the workers):
    :data:`WORKER_ENV` in the workers' environment and :data:`WORKER_CONFIG`.

    >>> local_cluster_config()["distributed.worker.profile.enabled"]
    False
    """
    return {**{f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in WORKER_ENV.items()}, **WORKER_CONFIG}


def tune_malloc() -> bool:
    """Give this process the heap settings of :data:`WORKER_ENV` (glibc ``mallopt``; once per process).

    For the iterative executor, whose chunks run in this process: with glibc's dynamic defaults the
    chunk-sized arrays were returned to the kernel and faulted in again chunk after chunk (system time
    1.0-1.2 s -> 0.5-0.6 s for 3e7 events in ``na64ana run``, same peak RSS). The process then keeps up to
    256 MB of freed heap for reuse. No-op (False) where glibc's mallopt is not available."""
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return True
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # glibc malloc.h
        ok = bool(libc.mallopt(m_trim_threshold, 2**28)) and bool(libc.mallopt(m_mmap_threshold, 2**25))
    except (OSError, AttributeError):
        return False
    _MALLOC_TUNED = ok
    return ok


@dataclass
class Job:
    """One coffea dataset: the files of one sample of one run, with the selection resolved for it."""

    key: str
    campaign: str
    run: str
    kind: str
    sample: str
    eot: float
    hcal0: bool
    tree: str
    files: list[Path]
    selection: selmod.Resolved
    branch_map: dict[str, str] = field(default_factory=dict)
    nevents: int = 0
    file_eot: list[float] = field(default_factory=list)  # EOT of each file, as datasets.json gives it
    signal_mass_GeV: float | None = None
    #: the campaign's signal box of this run (datasets.json): what a blinded run must hide
    box: Any = None
    #: the packaged selection of the processor resolved for this run (ALP, visible): its signal regions /
    #: visible box are what a blinded run must hide, whatever selection the user gives
    reference: selmod.Resolved | None = None

    @property
    def metadata(self) -> dict[str, Any]:
        return {"key": self.key, "campaign": self.campaign, "run": self.run, "kind": self.kind,
                "sample": self.sample, "eot": self.eot, "hcal0": self.hcal0,
                "selection_hash": self.selection.hash, "branch_map": self.branch_map}


def dataset_key(run: str, entry: ds.FileEntry) -> str:
    """Output key of a file: the run name for the campaign sample, else ``<run>-<sample>[-m<mass>]``."""
    if entry.sample == "campaign":
        return run
    key = f"{run}-{entry.sample}"
    return f"{key}-m{entry.signal_mass_GeV:g}" if entry.signal_mass_GeV is not None else key


def plan(datasets_file: str | Path, *, campaign: str | None = None, runs: Sequence[str] | None = None,
         samples: Iterable[str] = ("campaign",), selection: str | Path | None = None,
         processor: str = "invisible") -> list[Job]:
    """The jobs for a campaign: one per (run, sample[, mass]) with files, metadata and resolved selection.

    ``selection`` defaults to the processor's selection (the campaign's for ``invisible``).
    """
    datasets_file = Path(datasets_file)
    dsets = ds.load(datasets_file)
    cname = campaign or dsets.default_campaign
    camp = dsets.campaign(cname, file=str(datasets_file))
    chosen = dsets.runs(cname, list(runs) if runs else None, file=str(datasets_file))
    sel_name = selection or (camp.selection if processor == "invisible" else processor)
    sel_file = selmod.load(sel_name)
    try:
        bmap = contract.load_branch_map(camp.branch_map, base=datasets_file.resolve().parent)
    except (FileNotFoundError, ValueError) as exc:
        raise InputError(str(exc), file=str(datasets_file), field=f"campaigns.{cname}.branch_map") from None
    samples = set(samples)
    jobs: dict[str, Job] = {}
    packaged = selmod.load(processor) if processor in REFERENCE_SELECTIONS else None
    for rname, run in chosen.items():
        resolved = selmod.resolve(sel_file, campaign=cname, run=rname, hcal0=run.hcal0,
                                  file=str(selmod.selection_path(sel_name)))
        reference = None if packaged is None else selmod.resolve(
            packaged, campaign=cname, run=rname, hcal0=run.hcal0, file=str(selmod.selection_path(processor)))
        for i, entry in enumerate(run.files):
            if entry.sample not in samples:
                continue
            key = dataset_key(rname, entry)
            job = jobs.get(key)
            if job is None:
                job = jobs[key] = Job(key, cname, rname, entry.kind, entry.sample, 0.0, run.hcal0,
                                      entry.tree or camp.tree, [], resolved, bmap,
                                      signal_mass_GeV=entry.signal_mass_GeV,
                                      box=blinding.SignalBox(camp.box_ecal_max(run)), reference=reference)
            if entry.kind != job.kind or (entry.tree or camp.tree) != job.tree:
                raise InputError(f"files of '{key}' mix kinds or trees", file=str(datasets_file),
                                 field=f"campaigns.{cname}.runs.{rname}.files.{i}")
            job.files.append(ds.resolve_path(entry, datasets_file))
            job.file_eot.append(entry.eot)
            job.eot += entry.eot
            job.nevents += entry.nevents
    if not jobs:
        raise InputError(f"no files of sample(s) {sorted(samples)} in the chosen runs {list(chosen)}",
                         file=str(datasets_file), field=f"campaigns.{cname}.runs")
    return list(jobs.values())


def fileset(jobs: Iterable[Job]) -> dict[str, dict[str, Any]]:
    """coffea fileset ``{"<campaign>/<key>": {"files": {path: tree}, "metadata": {...}}}``."""
    return {f"{j.campaign}/{j.key}": {"files": {str(p): j.tree for p in j.files}, "metadata": j.metadata}
            for j in jobs}


# ------------------------------------------------------------------------------------------------------
# Executors


def make_executor(name: str, *, workers: int = 2, scheduler: str | None = None, retries: int = 2,
                  status: bool = False) -> tuple[Any, Any]:
    """``(coffea executor, closer)``; call ``closer()`` when done (shuts a LocalCluster down)."""
    from coffea import processor  # local: +0.25 s CPU on every CLI command (cli.run imports this module)

    if scheduler is not None:
        name = "dask"
    if name == "iterative":
        return processor.IterativeExecutor(status=status, retries=retries), lambda: None
    if name == "futures":
        return processor.FuturesExecutor(status=status, workers=workers, retries=retries,
                                         pool=killing_pool), lambda: None
    if name == "dask":
        from distributed import Client, LocalCluster  # local: dask/distributed only for --executor dask

        if scheduler is not None:
            client = connect_scheduler(Client, scheduler)
            cluster = None
        else:
            import dask  # local: dask/distributed only for --executor dask

            with dask.config.set(local_cluster_config()):
                cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                       dashboard_address=":0")  # a free port: never clash on 8787
            client = Client(cluster)

        def close() -> None:
            client.close()
            if cluster is not None:
                cluster.close()

        return processor.DaskExecutor(client=client, status=status, retries=retries), close
    raise InputError(f"unknown executor '{name}' (choose from {', '.join(EXECUTORS)})", field="--executor")


#: how long to try to reach a dask scheduler before the one-line error (dask's default is 30 s)
SCHEDULER_TIMEOUT_S = 10


def connect_scheduler(client_cls: Any, scheduler: str) -> Any:
    """A dask Client of ``scheduler``; an unreachable or invalid address is one line (InputError naming
    ``--scheduler``, exit 2) after at most :data:`SCHEDULER_TIMEOUT_S`, not a traceback."""
    try:
        return client_cls(scheduler, timeout=f"{SCHEDULER_TIMEOUT_S}s")
    except (OSError, TimeoutError, ValueError) as exc:
        why = " ".join(str(exc).split()) or type(exc).__name__
        why = why if len(why) <= 200 else why[:197] + "..."
        raise InputError(f"cannot reach the dask scheduler {scheduler} within {SCHEDULER_TIMEOUT_S} s "
                         f"({why})", field="--scheduler") from None


def killing_pool(max_workers: int) -> Any:
    """coffea's futures pool (loky), but a run that ends by an exception -- KeyboardInterrupt, the
    SIGTERM of :func:`terminate_as_interrupt`, a failed chunk -- kills its workers instead of waiting for
    their chunks: no orphan worker keeps reading after the run has stopped."""
    import loky  # local: loky/psutil/multiprocessing would load on every CLI command (--help included)

    class KillingPool(loky.ProcessPoolExecutor):
        def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
            if exc_type is None:
                return bool(super().__exit__(exc_type, exc, tb))
            self.shutdown(wait=True, kill_workers=True)
            return False

    return KillingPool(max_workers=max_workers)


class Terminated(KeyboardInterrupt):
    """SIGTERM during a run: handled like Ctrl-C (workers stopped, nothing presented as complete)."""


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` in the main thread (Python's default would end
    the process at once, without the executor's cleanup). Elsewhere than the main thread: no change."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise Terminated(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


_WORK_ITEM = re.compile(r"WorkItem\(.*?filename='(?P<file>[^']+)'.*?entrystart=(?P<start>\d+), "
                        r"entrystop=(?P<stop>\d+).*?The error was: (?P<why>.*)", re.S)


def processing_error(exc: BaseException) -> DataError:
    """One-line DataError for a chunk that failed inside coffea (e.g. a corrupted basket that passed the
    up-front checks): coffea's message buries the file in a WorkItem repr, so name the file and the entry
    range instead. The message survives pickling, so this also works for errors raised on dask workers."""
    m = _WORK_ITEM.search(str(exc))
    if m is None:
        return DataError(f"processing failed: {type(exc).__name__}: {exc}")
    why = " ".join(m["why"].split())
    why = why if len(why) <= 240 else why[:237] + "..."
    return DataError(f"processing failed: {why}", file=m["file"], field=f"entries {m['start']}-{m['stop']}")


@dataclass
class RunResult:
    output: dict[str, Any]
    metrics: dict[str, Any]
    jobs: list[Job]
    inputs: list[inputs.InputFile] = field(default_factory=list)  # every listed file, processed or skipped


def peak_rss_mb() -> float:
    """Peak resident memory of this process and of its (finished) children, in MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024.0


def run(jobs: list[Job], processor_name: str = "invisible", *, executor: str = "iterative", workers: int = 2,
        scheduler: str | None = None, chunksize: int = DEFAULT_CHUNKSIZE, unblind: bool = False,
        retries: int = 2, status: bool = False, align_clusters: bool = False,
        on_bad_file: str = "fail", cache_dir: str | Path | None = None) -> RunResult:
    """Check the inputs, then run the processor over all jobs with the chosen executor.

    ``on_bad_file="skip"`` drops unusable files instead of failing (see :func:`inputs.check_inputs`).
    ``cache_dir``: reuse/store chunk outputs there (:class:`~.cache.ChunkCache`); None = no cache.
    Dask workers must see it at the same path to share it."""
    # local: coffea.processor (+0.25 s CPU) would load on every CLI command and with outputs/background
    from coffea import processor
    from coffea.nanoevents import BaseSchema

    from na64ana.processors import PROCESSORS

    if processor_name not in PROCESSORS:
        raise InputError(f"unknown processor '{processor_name}' (choose from {', '.join(PROCESSORS)})",
                         field="--processor")
    if chunksize <= 0:
        raise InputError("must be positive", field="--chunksize")
    if (executor != "iterative" or scheduler) and not scheduler and workers < 1:  # dask/futures hang on 0
        raise InputError(f"must be at least 1 (got {workers})", field="--workers")
    proc_cls = PROCESSORS[processor_name]
    if not unblind:  # the blinded region belongs to the campaign and the search (#13 item 2), every processor
        for j in jobs:
            if j.kind == "data":
                blinding.check_campaign_region(proc_cls.blinding_rule, j.selection, j.box, j.reference,
                                               file=j.selection.name, key=j.key,
                                               search_cuts=processor_name != "dimuon")
    checked = inputs.check_inputs(jobs, proc_cls.extra_variables, on_bad=on_bad_file)
    n_checked = sum(f.nevents for f in checked if f.status == "ok")
    proc = proc_cls({j.key: j.selection for j in jobs}, unblind=unblind)
    checkpointer = None
    if cache_dir is not None:
        from . import cache  # local: it imports coffea.processor (see above)

        checkpointer = cache.ChunkCache(cache_dir, cache.file_hashes(checked), cache.code_version(),
                                        identities=cache.file_identities(checked), unblind=unblind)
        checkpointer.remove_stale_tmp()
        if not unblind:  # a blinded run leaves no opened-box chunk output behind (issue #13 item 5)
            checkpointer.purge_unblinded()
    threads = 1
    if executor == "iterative" and scheduler is None:
        tune_malloc()
        threads = min(READ_THREADS, available_cores())
    ex, close = make_executor(executor, workers=workers, scheduler=scheduler, retries=retries, status=status)
    runner = processor.Runner(ex, schema=BaseSchema, chunksize=chunksize, savemetrics=True,
                              metadata_cache={}, align_clusters=align_clusters, checkpointer=checkpointer)
    t0 = time.perf_counter()
    try:
        # coffea's rich progress bars ignore status=False (cosmetic bug): swallow them explicitly.
        quiet = contextlib.nullcontext() if status else contextlib.redirect_stdout(io.StringIO())
        with quiet, sources.decompression_threads(threads):
            output, cmetrics = runner(fileset(jobs), processor_instance=proc, uproot_options=UPROOT_OPTIONS)
    except Exception as exc:
        inputs.confirm_unchanged(checked)  # a file changed under the run: that is the error to report
        raise processing_error(exc) from exc
    finally:
        close()
        from na64ana.processors.base import thaw_chunk_garbage  # local: the processors load coffea (above)

        thaw_chunk_garbage()  # a failed run never reaches postprocess: don't leave the caller's GC frozen
        sources.release()  # the files this process kept mapped (iterative executor, preprocessing)
    wall = time.perf_counter() - t0
    inputs.confirm_unchanged(checked)  # inputs cannot change under a run (identity.py)
    nread = int(sum(output["nevents"].values()))
    if nread != n_checked:
        raise DataError(f"read {nread} events but the input files hold {n_checked}: events were lost")
    nchunks = int(sum(output["chunks"].values()))
    metrics: dict[str, Any] = {
        "events": nread,
        "chunks": nchunks,
        "wall_time_s": wall,
        "events_per_s": nread / wall if wall > 0 else None,
        "process_time_s": float(cmetrics.get("processtime", 0.0)) if isinstance(cmetrics, dict) else None,
        "executor": "dask" if scheduler else executor,
        "workers": 1 if executor == "iterative" and not scheduler else workers,
        "scheduler": scheduler,
        "chunksize": chunksize,
        "peak_rss_MB": peak_rss_mb(),
    }
    metrics.update(inputs.skip_report(checked))  # skipped_files + eot_skipped per key (empty: none skipped)
    if checkpointer is not None:
        hits = int(cmetrics.get("cache_hits", 0))  # summed over chunks by coffea, see ChunkCache
        metrics["cache"] = {"dir": str(checkpointer.directory), "hits": hits, "misses": nchunks - hits,
                            "stored": int(cmetrics.get("cache_stored", 0)),
                            "code_version": checkpointer.code_version}
    # Only content-independent numbers: bytesread depends on compressed contents (and is unreliable, #717).
    log.debug("coffea: %s entries in %s chunks", cmetrics.get("entries"), cmetrics.get("chunks"))
    return RunResult(output, metrics, jobs, checked)
