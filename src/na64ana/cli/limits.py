"""``na64ana limits``: summary JSON -> per-mass pyhf workspaces + limits.json (eps, y, alpha_D)."""

from __future__ import annotations

import argparse
import time

from .common import add_out, setup_logging


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("limits", help="90%% CL limits on eps (and y, alpha_D) from a yields summary",
                       description="Build one pyhf model per mass (one channel per run) and compute CLs "
                       "upper limits. 'exact' (default) and 'toys' are small-count-correct; 'asymptotic' is "
                       "pyhf's asymptotic CLs, too strong for 0 observed events.")
    p.add_argument("--summary", required=True, help="yields summary JSON (see na64ana.summary)")
    add_out(p)
    p.add_argument("--method", choices=("exact", "toys", "asymptotic"), default="exact")
    p.add_argument("--cl", type=float, default=None, help="confidence level (default: the summary's cl)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import summary
    from ..bookkeeping import provenance
    from ..errors import InputError
    from ..stats import interpret, limits

    if args.cl is not None and not 0 < args.cl < 1:
        raise InputError("must be in (0, 1)", field="--cl")
    summ = summary.load(args.summary)
    out = provenance.prepare_outdir(args.out, stage="limits")
    log = setup_logging(out, "limits")
    t0 = time.perf_counter()
    result = limits.scan(summ, method=args.method, cl=args.cl, out_dir=out)
    interpret.add_interpretation(result)
    result["summary_file"] = str(args.summary)
    result["walltime_s"] = round(time.perf_counter() - t0, 2)
    provenance.write_json(out / "limits.json", result)
    provenance.write(out, "limits", summary=str(args.summary), method=args.method, cl=result["cl"])
    for p in result["points"]:
        if "error" in p:
            log.info("m = %8.4g GeV  ERROR %s", p["mass_GeV"], p["error"])
        elif p.get("blinded"):
            log.info("m = %8.4g GeV  eps90 exp %.3e  (blinded: no observed limit)", p["mass_GeV"],
                     p["eps_exp"] or float("nan"))
        else:
            log.info("m = %8.4g GeV  eps90 obs %.3e  exp %.3e  (simplified %.3e)", p["mass_GeV"],
                     p["eps_obs"], p["eps_exp"] or float("nan"), p["eps_simple"])
    log.info("wrote %s (%d masses, %d failed, %.1f s)", out / "limits.json", len(result["points"]),
             result["n_failed"], result["walltime_s"])
    return 0 if result["n_failed"] < len(result["points"]) else 1
