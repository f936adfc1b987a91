"""na64ana run: process a campaign (all runs or --runs) through a processor, write the run outputs.

Blinded by default (see na64ana.blinding); --unblind is recorded in provenance.json.
Chunk outputs are cached in OUT/.cache (--cache DIR, --no-cache): re-running an interrupted
command resumes it, and after a change only the affected chunks are processed again.
"""

from __future__ import annotations

import argparse
import sys

from ..processing.execute import PROCESSOR_NAMES
from .common import (
    add_cache,
    add_campaign,
    add_executor,
    add_out,
    add_unblind,
    cache_dir,
    setup_logging,
    show_progress,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the cut flow (coffea processor) over a campaign",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_campaign(p)
    add_out(p)
    add_executor(p)
    add_unblind(p)
    add_cache(p)
    p.add_argument("--processor", choices=PROCESSOR_NAMES, default="invisible",
                   help="processor (default: %(default)s)")
    p.add_argument("--samples", nargs="+", default=["campaign"], metavar="SAMPLE",
                   help="file samples to process (datasets.json FileEntry.sample; default: campaign)")
    p.add_argument("--selection", default=None,
                   help="selection name or .toml path (default: the campaign's / the processor's)")
    p.add_argument("--extra", nargs=2, action="append", default=[], metavar=("DATASETS", "SAMPLE"),
                   help="also process SAMPLE of another datasets file in the same run, e.g. the dimuon MC "
                        "prediction: --extra dimuon_mc/datasets.json dimuon_mc (repeatable)")
    p.add_argument("--retries", type=int, default=2, help="retries of a failed chunk (default: %(default)s)")
    p.add_argument("--on-bad-file", choices=("fail", "skip"), default="fail",
                   help="a bad input file stops the run (fail, default) or is skipped, reported and its EOT "
                        "subtracted from the normalisation (skip)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from ..processing import outputs
    from ..processing.stage import run_stage

    setup_logging(args.out, "run")
    res = run_stage(args.datasets, args.out, processor=args.processor, campaign=args.campaign, runs=args.runs,
                    samples=args.samples, selection=args.selection,
                    extra=[(ds, (sample,)) for ds, sample in args.extra], unblind=args.unblind,
                    executor=args.executor, workers=args.workers, scheduler=args.scheduler,
                    chunksize=args.chunksize, retries=args.retries, on_bad_file=args.on_bad_file,
                    cache_dir=cache_dir(args, args.out), status=show_progress())
    for cf in res.cutflows.values():
        sys.stdout.write(outputs.cutflow_markdown(cf.to_json()) + "\n")
    return 0
