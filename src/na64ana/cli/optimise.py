"""``na64ana optimise``: expected 90% CL eps limit vs the E_ECAL box edge (blinded) -> optimisation.json.

Inputs: a blinded campaign run output (side band C only) and an efficiency output (signal MC
``signal_ecal`` per run and mass, efficiency.json). See na64ana.optimise for the method.
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
    from .. import optimise, provenance, published

    out = provenance.prepare_outdir(args.out, stage="optimise")
    common.setup_logging(out, "optimise")
    inp = optimise.load_inputs(args.run_dir, args.efficiency_dir, masses=args.masses, eot_unc=args.eot_unc)
    xsec = float(published.get("systematics.xsec_rel")) if args.xsec_unc is None else args.xsec_unc
    cuts = cut_grid(*args.cuts)
    res = optimise.scan_cuts(inp["runs"], inp["signal_hists"], inp["masses"], cuts,
                             sample_eps=inp["sample_eps"], e0=inp["e0"], emiss_min=inp["emiss_min"],
                             box=inp["box"], coverage=inp["coverage"], shared_rel=xsec, cl=args.cl)
    record = {"campaign": inp["campaign"], "blinded": True, "cl": args.cl, "box_ecal_max_GeV": inp["box"],
              "signal_mc_coverage_GeV": inp["coverage"], "runs": [r.name for r in inp["runs"]],
              "systematics": {"xsec_rel": xsec, "eot_rel": inp["eot_unc"],
                              "signal_rel_per_run": {r.name: r.signal_rel for r in inp["runs"]}},
              "method": optimise.__doc__.split("\n\n")[1], **res}
    provenance.write_json(out / "optimisation.json", record)
    (out / "optimisation.md").write_text(markdown(record))
    provenance.write(out, "optimise", run_dir=str(args.run_dir), efficiency_dir=str(args.efficiency_dir),
                     cuts=cuts, masses=inp["masses"], data_blinded=inp["blinded"])
    print(markdown(record), end="")
    return 0


def markdown(record: dict) -> str:
    """One table per mass: cut, S, B, expected eps (median, +-1 sigma), method; the optimum."""
    lines = [f"### Box-edge optimisation, campaign {record['campaign']} (blinded: side band + MC only)", ""]
    for mkey, d in record["optimisation"].items():
        at_box = d["eps_exp_at_box"] or float("nan")
        lines += [f"m_A' = {float(mkey) * 1e3:g} MeV: optimum E_ECAL < {d['optimum_GeV']} GeV "
                  f"(eps_exp {d['eps_exp_at_optimum']:.4g}; at the box {at_box:.4g})",
                  "", "| cut [GeV] | S (eps_sample) | B | eps_exp | -1 sigma | +1 sigma | method | signal |",
                  "|---|---|---|---|---|---|---|---|"]
        for i, c in enumerate(d["cut_GeV"]):
            f = lambda x: "-" if x is None else f"{x:.4g}"  # noqa: E731
            lines.append(f"| {c:g} | {d['signal_events'][i]:.4g} | {d['background'][i]:.3g} | "
                         f"{f(d['eps_exp'][i])} | {f(d['eps_exp_m1'][i])} | {f(d['eps_exp_p1'][i])} | "
                         f"{d['method'][i]} | {d['signal_source'][i]} |")
        lines.append("")
    return "\n".join(lines)
