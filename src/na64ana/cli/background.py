"""``na64ana background``: side-band-C fits of a run output -> DIR2/background.json (per-run table)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from .common import add_out, setup_logging

log = logging.getLogger("na64ana.background")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("background", help="background in the box from the side bands (background.json)",
                       description=__doc__)
    p.add_argument("--run-dir", required=True, help="output folder of 'na64ana run'")
    add_out(p)
    p.add_argument("--datasets", default="datasets.json", help="datasets file for the EOT per run")
    p.add_argument("--thresholds", nargs="*", type=float, default=[0.5, 2.0], metavar="GEV",
                   help="alternative HCAL zero thresholds for the systematic (default: %(default)s)")
    p.set_defaults(func=run)


def _slice_run(h, key):
    return h[{"run": key}]


def run(args: argparse.Namespace) -> int:
    import hist

    from .. import background as bg
    from .. import datasets, outputs, provenance
    from ..errors import InputError

    run_dir = Path(args.run_dir)
    sc = outputs.load_hist(run_dir, "ecal_sideband_c")
    names = outputs.list_hists(run_dir)
    plane = outputs.load_hist(run_dir, "plane_i_iv") if "plane_i_iv" in names else None
    val = outputs.load_hist(run_dir, "ecal_validation") if "ecal_validation" in names else None
    ds = datasets.load(args.datasets)
    out = provenance.prepare_outdir(args.out, stage="background")
    setup_logging(out, "background")
    runs, campaign, blinded = [], None, True
    for key in sc.axes["run"]:
        rec = outputs.load_cutflow(run_dir, key)
        if rec.get("kind") == "mc":
            continue
        campaign, blinded = rec["campaign"], bool(rec.get("blinded", True))
        camp = ds.campaign(campaign, file=args.datasets)
        if rec["run"] not in camp.runs:
            raise InputError(f"run '{rec['run']}' not in campaign '{campaign}'", file=args.datasets)
        frac = camp.runs[rec["run"]].eot / camp.total_eot
        variations = {}
        if plane is not None:
            p = _slice_run(plane, key)
            for t in args.thresholds:
                variations[f"{t:g}GeV"] = p[{"hcal": slice(None, hist.loc(t), sum)}]
        up = bg.estimate_upstream(_slice_run(sc, key), threshold_variations=variations or None)
        validation = (bg.validate_shape(_slice_run(val, key), sideband_fit=up.fit) if val is not None
                      and _slice_run(val, key).values().sum() > 0 else {})
        runs.append(bg.run_table(rec["run"], up, components=bg.published_components(campaign, frac),
                                 validation=validation))
        log.info("run %s: upstream %.4f +- %.4f (stat) +- %.4f (syst); total %.4f +- %.4f", rec["run"],
                 up.value, up.stat, up.syst, runs[-1]["total"]["value"], runs[-1]["total"]["unc"])
    result = {"campaign": campaign, "blinded": blinded, "runs": runs}
    provenance.write_json(out / "background.json", result)
    provenance.write(out, "background", run_dir=str(run_dir), thresholds=args.thresholds)
    log.info("wrote %s", out / "background.json")
    return 0
