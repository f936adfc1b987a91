"""``na64ana run``: process a campaign (all runs or --runs) through a processor, write the run outputs.

Blinded by default (see na64ana.blinding); ``--unblind`` is recorded in provenance.json.
Chunk outputs are cached in OUT/.cache (``--cache DIR``, ``--no-cache``): re-running an interrupted
command resumes it, and after a change only the affected chunks are processed again.
"""

from __future__ import annotations

import argparse
import logging
import sys

from ..bookkeeping import provenance
from ..processing import execute, outputs
from .common import (
    add_cache,
    add_campaign,
    add_executor,
    add_out,
    add_unblind,
    cache_dir,
    reliable_interrupt,
    setup_logging,
    show_progress,
)

log = logging.getLogger("na64ana.run")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the cut flow (coffea processor) over a campaign",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_campaign(p)
    add_out(p)
    add_executor(p)
    add_unblind(p)
    add_cache(p)
    p.add_argument("--processor", choices=execute.PROCESSOR_NAMES, default="invisible",
                   help="processor (default: %(default)s)")
    p.add_argument("--samples", nargs="+", default=["campaign"], metavar="SAMPLE",
                   help="file samples to process (datasets.json FileEntry.sample; default: campaign)")
    p.add_argument("--selection", default=None,
                   help="selection name or .toml path (default: the campaign's / the processor's)")
    p.add_argument("--retries", type=int, default=2, help="retries of a failed chunk (default: %(default)s)")
    p.add_argument("--on-bad-file", choices=("fail", "skip"), default="fail",
                   help="a bad input file stops the run (fail, default) or is skipped, reported and its EOT "
                        "subtracted from the normalisation (skip)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    jobs = execute.plan(args.datasets, campaign=args.campaign, runs=args.runs, samples=args.samples,
                        selection=args.selection, processor=args.processor)
    outdir = provenance.prepare_outdir(args.out, stage="run")
    outputs.begin(outdir)
    setup_logging(outdir, "run")
    executor = "dask" if args.scheduler else args.executor
    log.info("na64ana run: %s processor on %d dataset(s) [%s], executor %s, chunksize %d, %s",
             args.processor, len(jobs), ", ".join(j.key for j in jobs), executor, args.chunksize,
             "UNBLINDED" if args.unblind else "blinded")
    with reliable_interrupt():
        result = execute.run(jobs, args.processor, executor=executor, workers=args.workers,
                             scheduler=args.scheduler, chunksize=args.chunksize, unblind=args.unblind,
                             retries=args.retries, status=show_progress(), on_bad_file=args.on_bad_file,
                             cache_dir=cache_dir(args, outdir))
    records = outputs.write_run(outdir, result, processor=args.processor, unblind=args.unblind,
                                datasets_file=args.datasets)
    for rec in records.values():
        sys.stdout.write(outputs.cutflow_markdown(rec) + "\n")
    m = result.metrics
    log.info("%d events in %d chunks, %.2f s wall (%.3g events/s); outputs in %s", m["events"], m["chunks"],
             m["wall_time_s"], m["events_per_s"] or 0.0, outdir)
    if "cache" in m:
        c = m["cache"]
        log.info("chunk cache %s: %d reused, %d processed (%d stored)", c["dir"], c["hits"], c["misses"],
                 c["stored"])
    return 0
