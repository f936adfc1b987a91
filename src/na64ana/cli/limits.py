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
    p.add_argument("--summary", required=True, help="yields summary JSON (the contract: "
                   "docs/summary_contract.md; fields left out take the defaults listed there, and the run "
                   "prints which)")
    add_out(p)
    p.add_argument("--method", choices=("exact", "toys", "asymptotic"), default="exact",
                   help="CLs computation: exact (enumerated outcomes, default), toys (sampled, seeded by "
                        "--seed) or asymptotic (pyhf; too strong at 0 observed events)")
    p.add_argument("--cl", type=float, default=None, help="confidence level (default: the summary's cl)")
    p.add_argument("--crosscheck-toys", type=int, default=None, metavar="N",
                   help="pyhf toys of the cross-check at the exact limit of two masses (dark photon; seeded; "
                        "default 100, 0 skips it; a failure is a warning recorded in limits.json)")
    p.add_argument("--seed", type=int, default=None, metavar="N",
                   help="seed of the toys (--method toys and the toy cross-check; recorded in provenance; "
                        "default 1)")
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
    if args.seed is not None:
        if args.seed < 0:
            raise InputError("must be a non-negative integer", field="--seed")
        extra["seed"] = args.seed
    setup_logging(args.out, "limits")
    _say_assumed_defaults(args.summary)
    rec = limits.run_stage(args.summary, args.out, method=args.method, cl=args.cl, **extra)
    return 0 if rec.n_failed < len(rec.points) else 1


def _say_assumed_defaults(summary_file: str) -> None:
    """Log the contract defaults a (hand-written) dark-photon summary relies on: the user sees what was
    assumed (the report states them too)."""
    import logging

    from ..datasets import read_json
    from ..errors import InputError
    from ..stats.limits import summary_kind
    from ..summary import validate

    try:
        data = read_json(summary_file)
        if summary_kind(data) != "dark_photon":
            return
        assumed = validate(data, file=summary_file).assumed_defaults()
    except InputError:
        return  # the limits stage reports a bad or missing summary itself (one error, not two)
    if assumed:
        logging.getLogger("na64ana.limits").warning(
            "%s: not given, assumed (docs/summary_contract.md): %s", summary_file,
            ", ".join(f"{k} = {v}" for k, v in assumed.items()))
