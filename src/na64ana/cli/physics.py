"""``na64ana physics``: A' cross sections, yields per EOT and E_A' spectra from the command line."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

from ..errors import InputError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("physics", help="A' cross sections, thick-target yield per EOT, E_A' spectra",
                              description="Signal physics (brief Secs. 8-9): WW/ETL cross sections on lead, "
                              "the yield of A' per electron on target with E_A' > E_miss cut, and spectra.")
    sub = p.add_subparsers(dest="physics_command", metavar="<subcommand>")

    y = sub.add_parser("yield", help="cross sections and yield per EOT at one mass")
    y.add_argument("--mass", type=float, required=True, help="A' mass in GeV")
    _add_common(y)
    y.add_argument("--json", action="store_true", help="print JSON instead of text")
    y.set_defaults(func=_cmd_yield)

    s = sub.add_parser("scan", help="yield per EOT vs mass, written to DIR/yields.{json,csv}")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--masses", type=float, nargs="+", metavar="GEV", help="A' masses in GeV")
    g.add_argument("--mass-range", type=float, nargs=3, metavar=("LO", "HI", "N"),
                   help="N log-spaced masses from LO to HI GeV (default: 0.001 1 40)")
    _add_common(s)
    s.add_argument("--out", required=True, help="output folder")
    s.set_defaults(func=_cmd_scan)

    sp = sub.add_parser("spectrum", help="dN/dE_A' per EOT (and E_ECAL = E0 - E_A') at one mass")
    sp.add_argument("--mass", type=float, required=True, help="A' mass in GeV")
    sp.add_argument("--eps", type=float, default=1e-4, help="mixing strength (default: %(default)s)")
    sp.add_argument("--e0", type=float, default=100.0, help="beam energy in GeV (default: %(default)s)")
    sp.add_argument("--xsec", default="etl", help="ww or etl (default: %(default)s)")
    sp.add_argument("--target", default="ecal", help="ecal (Pb/Sc) or pb (default: %(default)s)")
    sp.add_argument("--bins", type=int, default=40, help="bins from 0.2 E0 to E0 (default: %(default)s)")
    sp.add_argument("--out", default=None, help="also write DIR/spectrum_<mass>.csv")
    sp.set_defaults(func=_cmd_spectrum)
    p.set_defaults(func=lambda args: _help(p))


def _help(p: argparse.ArgumentParser) -> int:
    p.print_help()
    return 2


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--eps", type=float, default=1e-4, help="mixing strength (default: %(default)s)")
    p.add_argument("--e0", type=float, default=100.0, help="beam energy in GeV (default: %(default)s)")
    p.add_argument("--emiss-min", type=float, default=50.0,
                   help="count A' with E_A' above this, GeV (default: %(default)s)")
    p.add_argument("--xsec", default="etl", help="ww or etl = WW/k (default: %(default)s)")
    p.add_argument("--target", default="ecal", help="ecal (Pb/Sc, f_Pb) or pb (default: %(default)s)")
    p.add_argument("--beam-spread", type=float, default=0.0,
                   help="relative Gaussian beam-energy spread (default: %(default)s)")


def _check_positive(values: float | list[float] | None, field: str, unit: str = "GeV") -> None:
    """A one-line error naming the option for a non-positive or non-finite number (``--mass -1``)."""
    bad = [v for v in ([] if values is None else values if isinstance(values, list) else [values])
           if not (np.isfinite(v) and v > 0)]
    if bad:
        shown = ", ".join(f"{v:g}" for v in bad)
        raise InputError(f"must be finite and > 0{' ' + unit if unit else ''}, got {shown}", field=field)


def _check_common(args: argparse.Namespace) -> None:
    _check_positive(getattr(args, "mass", None), "--mass")
    _check_positive(getattr(args, "masses", None), "--masses")
    _check_positive(args.eps, "--eps", unit="")
    _check_positive(args.e0, "--e0")
    if getattr(args, "emiss_min", None) is not None:
        _check_positive(args.emiss_min, "--emiss-min")


def _opts(args: argparse.Namespace) -> dict:
    return {"e0": args.e0, "emiss_min": args.emiss_min, "xsec": args.xsec, "target": args.target,
            "beam_spread": args.beam_spread}


def _point(mass: float, args: argparse.Namespace) -> dict:
    from ..physics.production import brem as xs
    from ..physics.yields import signal_yield_per_eot

    n = signal_yield_per_eot(mass, args.eps, **_opts(args))
    ww = float(xs.sigma_ww(mass, args.e0, args.eps))
    k = float(xs.k_factor(mass, args.e0)) if args.xsec == "etl" else None
    return {"mass_GeV": mass, "eps": args.eps, "sigma_ww_pb": ww, "k": k,
            "sigma_etl_pb": ww / k if k else None, "yield_per_eot": n, **_opts(args)}


def _cmd_yield(args: argparse.Namespace) -> int:
    from ..physics.production import brem as xs

    _check_common(args)
    xs.check_xsec(args.xsec)
    if args.xsec == "ww":
        xs.check_mass(args.mass, args.e0, "ww")
    row = _point(args.mass, args)
    if args.json:
        print(json.dumps(row, indent=1))
        return 0
    print(f"m_A' = {args.mass:g} GeV, E0 = {args.e0:g} GeV, eps = {args.eps:g}, target = {args.target}")
    print(f"  sigma_WW  = {row['sigma_ww_pb']:.6g} pb")
    if row["k"] is not None:
        print(f"  k         = {row['k']:.6g}  (DMG4 v1.2)")
        print(f"  sigma_ETL = {row['sigma_etl_pb']:.6g} pb")
    print(f"  A'/EOT with E_A' > {args.emiss_min:g} GeV ({args.xsec.upper()}) = {row['yield_per_eot']:.6g}")
    return 0


def _cmd_scan(args: argparse.Namespace) -> int:
    from ..bookkeeping.provenance import prepare_outdir, write, write_json
    from ..physics.yields import yield_per_eot_grid

    _check_common(args)
    if args.masses:
        masses = np.asarray(args.masses, dtype=float)
    else:
        lo, hi, n = args.mass_range or (0.001, 1.0, 40)
        if n != int(n) or n < 1 or not 0 < lo <= hi:
            raise InputError("--mass-range needs 0 < LO <= HI and an integer N >= 1", field="mass-range")
        masses = np.geomspace(lo, hi, int(n))
    n_eot = yield_per_eot_grid(masses, args.eps, **_opts(args))
    out = prepare_outdir(args.out, stage="physics")
    note = "A' per EOT with E_A' > emiss_min, no detector efficiency; scales as eps^2"
    table = {"eps": args.eps, **_opts(args), "note": note, "mass_GeV": masses.tolist(),
             "yield_per_eot": n_eot.tolist()}
    write_json(out / "yields.json", table)
    with (out / "yields.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["mass_GeV", "yield_per_eot"])
        w.writerows(zip(masses.tolist(), n_eot.tolist(), strict=True))
    write(out, "physics", inputs={"eps": args.eps, **_opts(args), "masses_GeV": masses.tolist()},
          outputs=["yields.json", "yields.csv"])
    print(f"wrote {len(masses)} masses to {Path(out) / 'yields.json'}", file=sys.stderr)
    return 0


def _cmd_spectrum(args: argparse.Namespace) -> int:
    from ..bookkeeping.provenance import prepare_outdir, write
    from ..physics.yields import aprime_energy_spectrum

    _check_common(args)
    edges, dnde = aprime_energy_spectrum(args.mass, e0=args.e0, xsec=args.xsec, bins=args.bins, eps=args.eps,
                                         target=args.target)
    rows = [(lo, hi, args.e0 - hi, args.e0 - lo, d) for lo, hi, d in zip(edges[:-1], edges[1:], dnde,
                                                                         strict=True)]
    header = ["EA_lo_GeV", "EA_hi_GeV", "EECAL_lo_GeV", "EECAL_hi_GeV", "dN_dEA_per_EOT_per_GeV"]
    if args.out:
        out = prepare_outdir(args.out, stage="physics")
        name = f"spectrum_{args.mass:g}.csv"
        with (out / name).open("w", newline="") as f:
            csv.writer(f).writerows([header, *rows])
        inputs = {"mass_GeV": args.mass, "eps": args.eps, "e0": args.e0, "xsec": args.xsec,
                  "target": args.target, "bins": args.bins}
        write(out, "physics", inputs=inputs, outputs=[name])
    print(" ".join(header))
    for r in rows:
        print(f"{r[0]:8.3f} {r[1]:8.3f} {r[2]:8.3f} {r[3]:8.3f} {r[4]:.6g}")
    return 0
