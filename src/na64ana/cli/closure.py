"""'na64ana closure': signal-injection closure (inject A', run the chain unblinded, fit mu; null limit).

Writes 'DIR/closure.json' and 'DIR/closure.md' plus every intermediate stage output (simulated
campaigns, run outputs, background tables, summaries, efficiency) under DIR. See na64ana.studies.closure.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from . import common

if TYPE_CHECKING:  # the CLI imports the stages lazily (fast --help)
    from ..studies.closure import ClosureInputs

log = logging.getLogger("na64ana.closure")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("closure", help="signal-injection closure test (closure.json)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_campaign(p)
    common.add_out(p)
    common.add_seed(p)
    p.add_argument("--mass", type=float, required=True, metavar="GEV", help="injected A' mass")
    p.add_argument("--eps", type=float, required=True, help="injected mixing strength")
    p.add_argument("--eot-scale", type=float, default=1.0,
                   help="multiply every run's EOT (reduced-EOT closure; default: %(default)s)")
    p.add_argument("--n-signal-mc", type=int, default=20_000,
                   help="generated A' per run for the efficiency (default: %(default)s)")
    p.add_argument("--efficiency-dir", default=None,
                   help="reuse an 'na64ana efficiency' output with this mass instead of simulating")
    common.add_executor(p)
    p.set_defaults(func=run)


def simulate_inputs(datasets_file: str, *, mass: float, eps: float, out: Path, seed: int,
                    campaign: str | None, runs: list[str] | None, eot_scale: float, n_signal_mc: int,
                    efficiency_dir: str | None, executor: str, workers: int) -> ClosureInputs:
    """The simulation half of the closure (the CLI may call the simulator; the study may not): the
    injected and the null campaigns (seeds ``seed``, ``seed + 1``) and, unless ``efficiency_dir`` is
    given, the signal MC (``seed + 2``) through the efficiency stage, all under ``out``."""
    from .. import datasets as dsets
    from .. import efficiency
    from ..simulation import simulate_campaign, simulate_signal_samples
    from ..studies import closure

    src = Path(datasets_file)
    cname = campaign or dsets.load(src).default_campaign
    base = src if eot_scale == 1.0 else closure.scaled_datasets(src, out / "datasets_scaled.json", eot_scale)
    injected = simulate_campaign(base, out_dir=out / "injected" / "sim", campaign=cname, runs=runs, seed=seed,
                                 signal_mass=mass, signal_eps=eps)
    null = simulate_campaign(base, out_dir=out / "null" / "sim", campaign=cname, runs=runs, seed=seed + 1)
    seeds = {"injected": seed, "null": seed + 1}
    if efficiency_dir is None:
        signal = simulate_signal_samples(base, out_dir=out / "signal_mc", masses_GeV=[mass],
                                         n_events=n_signal_mc, campaign=cname, runs=runs, seed=seed + 2,
                                         production="brem")
        efficiency.run_stage(signal, out / "efficiency", campaign=cname, runs=runs, production="brem",
                             executor=executor, workers=workers)
        efficiency_dir = str(out / "efficiency")
        seeds["signal_mc"] = seed + 2
    return closure.ClosureInputs(injected_datasets=injected, null_datasets=null,
                                 efficiency_dir=Path(efficiency_dir), campaign=cname, mass_GeV=mass,
                                 eps_injected=eps, source_datasets=src, seeds=seeds, eot_scale=eot_scale,
                                 n_signal_mc=n_signal_mc if "signal_mc" in seeds else None)


def run(args: argparse.Namespace) -> int:
    from ..bookkeeping import provenance
    from ..studies import closure

    common.setup_logging(None, "closure")
    out = provenance.prepare_outdir(args.out, stage="closure")  # claimed before the simulations go inside
    inputs = simulate_inputs(args.datasets, mass=args.mass, eps=args.eps, out=out, seed=args.seed,
                             campaign=args.campaign, runs=args.runs, eot_scale=args.eot_scale,
                             n_signal_mc=args.n_signal_mc, efficiency_dir=args.efficiency_dir,
                             executor=args.executor, workers=args.workers)
    rec = closure.run_closure(inputs, out=out, runs=args.runs, executor=args.executor, workers=args.workers)
    print(closure.markdown(rec), end="")
    return 0
