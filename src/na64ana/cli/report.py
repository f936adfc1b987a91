"""``na64ana report``: every available figure (DIR/plots/, PNG + PDF) and DIR/report.md + report.html.

Stages that did not run appear as "not available" sections; a blinded analysis shows no box content.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from .common import setup_logging

log = logging.getLogger("na64ana.report")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="plots + analysis report (markdown and HTML)", description=__doc__)
    p.add_argument("--results", required=True, metavar="DIR",
                   help="results folder (run output, or a folder holding the stage outputs one level down)")
    p.set_defaults(func=run)


def _claim(results: Path) -> None:
    """Mark the results folder for the report stage. A folder without our marker is accepted only when the
    stage outputs inside it carry theirs (a folder assembled from na64ana outputs); else OutputError."""
    from ..bookkeeping import provenance

    if not (results / provenance.MARKER).exists() and any(results.glob(f"*/{provenance.MARKER}")):
        (results / provenance.MARKER).write_text('{"tool": "na64ana", "stages": []}\n')
    provenance.prepare_outdir(results, stage="report")


def run(args: argparse.Namespace) -> int:
    from ..bookkeeping import provenance
    from ..errors import InputError
    from ..presentation.report import build_report, make_plots

    results = Path(args.results)
    if not results.is_dir():
        raise InputError("results folder not found", file=str(results))
    _claim(results)
    setup_logging(results, "report")
    plots = make_plots(results)
    for name, why in plots.missing.items():
        log.info("figure %s not drawn: %s", name, why)
    md = build_report(results, plots_made=plots)
    provenance.write(results, "report", figures=sorted(plots.made), missing=plots.missing)
    log.info("wrote %s, %s and %d figures in %s", md, md.with_suffix(".html"), len(plots.made), plots.folder)
    return 0
