"""``na64ana limits``: summary JSON -> limits.json. Dispatches on the summary: the dark photon (eps, y,
alpha_D; bremsstrahlung and/or annihilation; one pyhf workspace per mass), another vector model's coupling,
the ALP closed region or the visible band."""

from __future__ import annotations

import argparse

from .common import add_out, setup_logging


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("limits", help="90%% CL limits (eps, y, alpha_D or a model's coupling) from a yields "
                       "summary",
                       description="Dark photon: one pyhf model per mass (one channel per run) and CLs "
                       "upper limits. 'exact' (default) and 'toys' are small-count-correct; 'asymptotic' is "
                       "pyhf's asymptotic CLs, too strong for 0 observed events. A summary with a 'model' "
                       "block gives coupling limits (vector mediators, the ALP closed region); "
                       "'signature': 'visible' gives the two-sided eps band.")
    p.add_argument("--summary", required=True, help="yields summary JSON (see na64ana.summary)")
    add_out(p)
    p.add_argument("--method", choices=("exact", "toys", "asymptotic"), default="exact")
    p.add_argument("--cl", type=float, default=None, help="confidence level (default: the summary's cl)")
    p.add_argument("--crosscheck-toys", type=int, default=None, metavar="N",
                   help="pyhf toys of the cross-check at the exact limit of two masses (dark photon; seeded; "
                        "default 100, 0 skips it; a failure is a warning recorded in limits.json)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..stats import limits

    if args.cl is not None and not 0 < args.cl < 1:
        raise InputError("must be in (0, 1)", field="--cl")
    extra = {}
    if args.crosscheck_toys is not None:  # else the stage's default (DEFAULT_CROSSCHECK_TOYS)
        if args.crosscheck_toys != 0 and args.crosscheck_toys < 10:
            raise InputError("need 0 (skip) or at least 10 toys", field="--crosscheck-toys")
        extra["crosscheck_toys"] = args.crosscheck_toys
    setup_logging(args.out, "limits")
    rec = limits.run_stage(args.summary, args.out, method=args.method, cl=args.cl, **extra)
    return 0 if rec.n_failed < len(rec.points) else 1
