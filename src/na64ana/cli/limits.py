"""``na64ana limits``: summary JSON -> per-mass pyhf workspaces + limits.json (eps, y, alpha_D)."""

from __future__ import annotations

import argparse

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
    from ..errors import InputError
    from ..stats import limits

    if args.cl is not None and not 0 < args.cl < 1:
        raise InputError("must be in (0, 1)", field="--cl")
    setup_logging(args.out, "limits")
    rec = limits.run_stage(args.summary, args.out, method=args.method, cl=args.cl)
    return 0 if rec.n_failed < len(rec.points) else 1
