"""The run stage (stage 1): plan the jobs, run the processor, write the run output -- one owner.

``na64ana run``, ``na64ana demo`` (its ``run`` and ``dimuon`` stages), the efficiency stage's signal-MC
pass and the closure study all call :func:`run_stage`; :mod:`.outputs` writes the folder and its
provenance (blinding, inputs with sha256, selections, executor, metrics) and :class:`~na64ana.records.
RunOutput` is the typed record handed back.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from ..bookkeeping import provenance
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
    outdir = provenance.prepare_outdir(out, stage="run")
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
