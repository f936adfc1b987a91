"""'na64ana optimise': expected 90% CL eps limit vs the E_ECAL box edge (blinded) -> optimisation.json.

Inputs: a blinded campaign run output (side band C only) and an efficiency output (signal MC
'signal_ecal' per run and mass, efficiency.json). See na64ana.studies.optimise for the method.
"""

from __future__ import annotations

import argparse
import logging

from . import common

log = logging.getLogger("na64ana.optimise")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("optimise", help="expected limit vs the E_ECAL box edge (optimisation.json)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-dir", required=True, help="output folder of 'na64ana run' (campaign, blinded)")
    p.add_argument("--efficiency-dir", required=True, help="output folder of 'na64ana efficiency'")
    common.add_out(p)
    p.add_argument("--masses", nargs="+", type=float, default=None, metavar="GEV",
                   help="A' masses (default: every mass of efficiency.json)")
    p.add_argument("--cuts", nargs=3, type=float, default=[30.0, 70.0, 2.5], metavar=("LO", "HI", "STEP"),
                   help="box edges scanned, GeV (default: %(default)s)")
    p.add_argument("--xsec-unc", type=float, default=None,
                   help="relative cross-section uncertainty shared by the runs (default: published)")
    p.add_argument("--eot-unc", type=float, default=None,
                   help="relative EOT uncertainty (default: published)")
    p.add_argument("--cl", type=float, default=0.9, help="confidence level (default: %(default)s)")
    p.set_defaults(func=run)


def cut_grid(lo: float, hi: float, step: float) -> list[float]:
    """lo, lo + step, ..., hi (inclusive, rounded to avoid float drift)."""
    from ..errors import InputError

    if step <= 0 or hi < lo or lo <= 0:
        raise InputError(f"need 0 < LO <= HI and STEP > 0, got {lo} {hi} {step}", field="--cuts")
    n = int(round((hi - lo) / step))
    return [round(lo + i * step, 6) for i in range(n + 1) if lo + i * step <= hi + 1e-9]


def run(args: argparse.Namespace) -> int:
    from ..studies import optimise

    cuts = cut_grid(*args.cuts)
    common.setup_logging(args.out, "optimise")
    record = optimise.run_stage(args.run_dir, args.efficiency_dir, args.out, masses=args.masses, cuts=cuts,
                                xsec_unc=args.xsec_unc, eot_unc=args.eot_unc, cl=args.cl)
    print(optimise.markdown(record), end="")
    return 0
