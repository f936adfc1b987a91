"""Mass scans: summary -> pyhf workspace per mass -> 90% CL limits on eps -> ``limits.json``.

Signal in run i at mass m: N_i = EOT_i * eff_i(m) * n_A'(m, eps) with n_A' proportional to eps^2.
Per mass we choose eps_ref so that the nominal total signal is N90(n=0) = 2.30 events: the limit on the POI
mu (eps^2 = mu eps_ref^2) is then O(1) and the fits stay inside their bounds (pyhf #2228).
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from .. import blinding
from ..bookkeeping import provenance
from ..physics.yields import yield_per_eot_grid
from ..records import LimitsRecord
from ..summary import Summary, signal_shares
from ..summary import load as load_summary
from . import cls as _cls
from . import interpret
from .model import counting_model_from_spec, pyhf_model, workspace_spec

log = logging.getLogger("na64ana.stats")
EPS0 = 1e-4  # eps at which the yield per EOT is evaluated (any value works: yield ~ eps^2)
BANDS = {"eps_exp": "median", "eps_exp_m1": "m1", "eps_exp_p1": "p1", "eps_exp_m2": "m2", "eps_exp_p2": "p2"}
METHODS = ("exact", "toys", "asymptotic")
TOYS_SEED = 1  # seed of the toy CLs method (recorded in provenance)


def yields_per_eot(summary: Summary, masses: list[float]) -> np.ndarray:
    """A' per EOT above E_miss threshold at eps = EPS0."""
    return np.asarray(yield_per_eot_grid(np.asarray(masses, dtype=float), EPS0, e0=summary.beam_energy_GeV,
                                         emiss_min=summary.emiss_min_GeV, xsec=summary.cross_section),
                      dtype=float)


def mass_spec(summary: Summary, mass: float, signal_total: float) -> dict[str, Any]:
    """pyhf workspace for one mass with ``signal_total`` nominal signal events summed over runs."""
    shares = signal_shares(summary, mass)
    norm = signal_total / float(sum(s.sum() for s in shares))
    channels = []
    for r, s in zip(summary.runs, shares, strict=True):
        bkg = r.shape.background if r.shape else [r.background]
        # Blinded (observed null): the model needs some observation; 0 is used and the observed limit
        # is dropped by limit_point, so nothing depends on the box content.
        obs = (r.shape.observed if r.shape else [r.observed]) if r.observed is not None else [0] * len(bkg)
        channels.append({
            "name": f"run_{r.name}", "signal": list(s * norm), "background": list(bkg), "observed": list(obs),
            "signal_sys": {f"eff_run_{r.name}": r.efficiency_unc, f"eot_run_{r.name}": r.eot_unc},
            "background_sys": ({f"bkg_run_{r.name}": r.background_unc / r.background} if r.background > 0
                               else {}),
        })
    return workspace_spec(channels, shared=dict(summary.correlated))


def asymptotic_limits(spec: dict[str, Any], cl: float) -> tuple[float, dict[str, float]]:
    """pyhf asymptotic CLs limits (labelled option only: far too strong at n = 0, see lessons.md)."""
    import pyhf  # lazy: pyhf costs ~1 s to import and only this labelled option (and the closure) use it

    pyhf.set_backend("numpy")
    model, data = pyhf_model(spec)
    obs, exp = pyhf.infer.intervals.upper_limits.toms748_scan(
        data, model, 0.05, 20.0, level=1.0 - cl, test_stat="qtilde", calctype="asymptotics")
    names = ("m2", "m1", "median", "p1", "p2")
    return float(obs), {k: float(v) for k, v in zip(names, exp, strict=True)}


def limit_point(summary: Summary, mass: float, yield_eps0: float, *, method: str, cl: float,
                ws_dir: Path | None = None) -> dict[str, Any]:
    """One mass: workspace, limits on mu and eps, the merged-runs N90 cross-check."""
    point: dict[str, Any] = {"mass_GeV": float(mass)}
    if not (np.isfinite(yield_eps0) and yield_eps0 > 0):
        point["error"] = f"signal yield per EOT is {yield_eps0!r} at this mass (kinematically closed?)"
        return point
    n_ref = _cls.poisson_upper_limit(0, 0.0, cl)
    s_eps0 = yield_eps0 * float(sum(s.sum() for s in signal_shares(summary, mass)))
    eps_ref = EPS0 * math.sqrt(n_ref / s_eps0)
    spec = mass_spec(summary, mass, n_ref)
    if ws_dir is not None:
        name = f"workspace_m{mass * 1e3:.4g}MeV.json"
        provenance.write_json(ws_dir / name, spec)
        point["workspace"] = f"workspaces/{name}"
    if method == "asymptotic":
        mu_obs, mu_exp = asymptotic_limits(spec, cl)
        extra: dict[str, Any] = {}
    else:
        res = _cls.limits(counting_model_from_spec(spec), cl, method=method, seed=TOYS_SEED)
        mu_obs, mu_exp = res.mu_obs, res.mu_exp
        extra = {"cls_at_limit": res.cls_obs_at_limit, "n_outcomes": res.n_outcomes}
    to_eps = lambda mu: eps_ref * math.sqrt(mu) if np.isfinite(mu) else None  # noqa: E731
    point["eps_obs"] = to_eps(mu_obs)
    for key, q in BANDS.items():
        point[key] = to_eps(mu_exp[q])
    if summary.blinded:
        point.update({"eps_obs": None, "blinded": True, "eps_ref": eps_ref,
                      "yield_per_eot_at_eps_ref": yield_eps0 * (eps_ref / EPS0) ** 2, **extra})
        return point
    n_tot = sum(r.observed for r in summary.runs)
    b_tot = sum(r.background for r in summary.runs)
    n90 = _cls.poisson_upper_limit(n_tot, b_tot, cl)
    eps_simple = eps_ref * math.sqrt(n90 / n_ref)
    point.update({
        "mu_obs": mu_obs, "signal_events_limit": mu_obs * n_ref, "eps_ref": eps_ref,
        "yield_per_eot_at_eps_ref": yield_eps0 * (eps_ref / EPS0) ** 2,
        "eps_simple": eps_simple, "n90_simple": n90,
        "simple_rel_diff": (point["eps_obs"] / eps_simple - 1.0) if point["eps_obs"] else None,
        **extra,
    })
    if point["eps_obs"] is None:
        point["error"] = "observed limit outside the scanned range"
    return point


def scan(summary: Summary, *, method: str = "exact", cl: float | None = None, out_dir: Path | None = None,
         yields: np.ndarray | None = None) -> dict[str, Any]:
    """Limits for every mass of the summary. ``yields``: A' per EOT at eps = EPS0 per mass (default: physics).

    A mass that fails is reported with an ``error`` field, never as a silent NaN. With ``out_dir`` the
    workspaces are written to ``out_dir/workspaces`` (the stage record is :func:`run_stage`'s job)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}")
    cl = summary.cl if cl is None else cl
    masses = list(summary.masses_GeV)
    y = yields_per_eot(summary, masses) if yields is None else np.asarray(yields, dtype=float)
    ws_dir = None
    if out_dir is not None:
        ws_dir = Path(out_dir) / "workspaces"
        ws_dir.mkdir(parents=True, exist_ok=True)
    points = []
    for m, ym in zip(masses, y, strict=True):
        try:
            points.append(limit_point(summary, m, float(ym), method=method, cl=cl, ws_dir=ws_dir))
        except Exception as exc:  # noqa: BLE001 -- reported per mass, the scan goes on
            log.warning("mass %.4g GeV failed: %s", m, exc)
            points.append({"mass_GeV": float(m), "error": f"{type(exc).__name__}: {exc}"})
    diffs = [abs(p["simple_rel_diff"]) for p in points if p.get("simple_rel_diff") is not None]
    return {
        "cl": cl, "method": _method_label(method), "analysis": summary.analysis, "blinded": summary.blinded,
        "cross_section": summary.cross_section, "beam_energy_GeV": summary.beam_energy_GeV,
        "emiss_min_GeV": summary.emiss_min_GeV,
        "poi": "mu with eps^2 = mu * eps_ref^2 (eps_ref per mass: nominal total signal = N90(n=0))",
        "normsys": "log-normal: hi = 1 + r, lo = 1/(1 + r), pyhf interpcode code1",
        "points": points,
        "simplified_check": {
            "description": "runs merged, N90 (classical CLs, no systematics) for the total observed count "
                           "and background; eps_simple = eps_ref sqrt(N90 / N_ref)",
            "max_abs_rel_diff": max(diffs) if diffs else None,
        },
        "n_failed": sum("error" in p for p in points),
    }


def compute(summary: Summary, *, method: str = "exact", cl: float | None = None, out_dir: Path | None = None,
            yields: np.ndarray | None = None, summary_file: str | Path | None = None) -> LimitsRecord:
    """The limits record: :func:`scan` plus the dark-matter reading (y, alpha_D); workspaces written to
    ``out_dir/workspaces`` when given. ``summary_file``: recorded as where the summary came from (the
    stage records it relative to the limits folder)."""
    res = interpret.add_interpretation(scan(summary, method=method, cl=cl, out_dir=out_dir, yields=yields))
    if summary_file is not None:
        res["summary_file"] = str(summary_file)
    return LimitsRecord.model_validate(res)


def run_stage(summary_file: str | Path, out: str | Path, *, method: str = "exact", cl: float | None = None,
              yields: np.ndarray | None = None) -> LimitsRecord:
    """The limits stage: read (and validate) the summary, write ``out/limits.json``, one pyhf workspace per
    mass and the provenance (the summary read, with its hash, so ``na64ana verify`` notices a changed
    summary; the blinding; the toys seed)."""
    clock = provenance.Clock()
    summ = load_summary(summary_file)
    out = provenance.prepare_outdir(out, stage="limits")
    # relative to the limits folder: a moved or copied results folder still points at its own summary
    rel = Path(os.path.relpath(Path(summary_file).resolve(), out.resolve())).as_posix()
    rec = compute(summ, method=method, cl=cl, out_dir=out, yields=yields, summary_file=rel)
    rec.dump(out / LimitsRecord.file_name)
    provenance.write(out, "limits", inputs=[summary_file], outputs=[LimitsRecord.file_name, "workspaces"],
                     blinding=blinding.state(summ.blinded),
                     seeds={"toys_seed": TOYS_SEED} if method == "toys" else None,
                     metrics=clock.metrics(masses=len(rec.points)), summary=str(summary_file), method=method,
                     cl=rec.cl, n_failed=rec.n_failed)
    for p in rec.points:
        if p.error is not None:
            log.info("m = %8.4g GeV  ERROR %s", p.mass_GeV, p.error)
        elif p.blinded:
            log.info("m = %8.4g GeV  eps90 exp %.3e  (blinded: no observed limit)", p.mass_GeV,
                     p.eps_exp or float("nan"))
        else:
            log.info("m = %8.4g GeV  eps90 obs %.3e  exp %.3e  (simplified %.3e)", p.mass_GeV,
                     p.eps_obs or float("nan"), p.eps_exp or float("nan"), p.eps_simple or float("nan"))
    log.info("wrote %s (%d masses, %d failed)", out / LimitsRecord.file_name, len(rec.points), rec.n_failed)
    return rec


def _method_label(method: str) -> str:
    return {"exact": "exact-hybrid-cls (enumerated Poisson outcomes, qtilde, log-normal priors, quadrature)",
            "toys": "toys-hybrid-cls (vectorised toys, qtilde, log-normal priors)",
            "asymptotic": "pyhf-asymptotic (qtilde; NOT small-count-correct)"}[method]
