"""Mass scans: summary -> pyhf workspace per mass -> 90% CL limits on eps -> ``limits.json``.

Signal in run i at mass m: N_i = EOT_i * eff_i(m) * n_A'(m, eps) with n_A' proportional to eps^2.
Per mass we choose eps_ref so that the nominal total signal is N90(n=0) = 2.30 events: the limit on the POI
mu (eps^2 = mu eps_ref^2) is then O(1) and the fits stay inside their bounds (pyhf #2228).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import warnings
from pathlib import Path
from typing import Any, cast

import numpy as np

from .. import blinding, workers
from ..background import VERDICT_WORDS
from ..bookkeeping import provenance
from ..physics.yields import signal_yield, yield_per_eot_grid
from ..records import LimitPoint, LimitsRecord
from ..summary import Run, Summary, signal_shares
from ..summary import load as load_summary
from . import cls as _cls
from . import interpret
from .model import counting_model_from_spec, pyhf_model, workspace_spec

log = logging.getLogger("na64ana.stats")
EPS0 = 1e-4  # eps at which the yield per EOT is evaluated (any value works: yield ~ eps^2)
BANDS = {"eps_exp": "median", "eps_exp_m1": "m1", "eps_exp_p1": "p1", "eps_exp_m2": "m2", "eps_exp_p2": "p2"}
METHODS = ("exact", "toys", "asymptotic")
TOYS_SEED = 1  # seed of the toy CLs method (recorded in provenance)
SHARE_ROUND = 0.05  # run-share rounding of the CLs model above SHARE_ROUND_MIN_RUNS runs (limit_point)
SHARE_ROUND_MIN_RUNS = 3
_EXACT_LIMIT = "_exact_limit"  # private key of a scan point: (mu limit, CLs there) for the cross-check


def yields_per_eot(summary: Summary, masses: list[float]) -> np.ndarray:
    """A' per EOT above E_miss threshold at eps = EPS0 (bremsstrahlung, the summary's E_miss threshold)."""
    return np.asarray(yield_per_eot_grid(np.asarray(masses, dtype=float), EPS0, e0=summary.beam_energy_GeV,
                                         emiss_min=summary.emiss_min_GeV, xsec=summary.cross_section),
                      dtype=float)


def run_yields(summary: Summary, masses: list[float] | np.ndarray) -> dict[str, np.ndarray]:
    """Signal per EOT at eps = EPS0 per production mechanism of the summary, shape (runs, masses): each run
    through its own E_miss window (``runs[i].emiss_min_GeV`` or the summary's) with the summary's beam
    particle (:func:`na64ana.physics.yields.signal_yield`; BR_inv = 1). Runs sharing a threshold share
    the computation."""
    m = np.asarray(masses, dtype=float)
    mech = summary.mechanisms
    by_cut: dict[float, Any] = {}
    out = {k: np.zeros((len(summary.runs), m.size)) for k in mech}
    for i, r in enumerate(summary.runs):
        cut = summary.run_emiss_min(r)
        if cut not in by_cut:
            by_cut[cut] = signal_yield(m, EPS0, mechanisms=mech, beam=summary.beam_particle,
                                       e0=summary.beam_energy_GeV, emiss_min=cut, xsec=summary.cross_section)
        for k in mech:
            out[k][i] = by_cut[cut][k]
    return out


def mass_spec(summary: Summary, mass: float, signal_total: float,
              run_weights: np.ndarray | None = None) -> dict[str, Any]:
    """pyhf workspace for one mass with ``signal_total`` nominal signal events summed over runs.
    ``run_weights``: relative signal per EOT of each run (its own E_miss window and mechanisms)."""
    shares = signal_shares(summary, mass)
    if run_weights is not None:
        shares = [s * float(w) for s, w in zip(shares, run_weights, strict=True)]
    norm = signal_total / float(sum(s.sum() for s in shares))
    channels = []
    shape_runs = [r.name for r in summary.runs if r.background_shape_kappa() is not None]
    for r, s in zip(summary.runs, shares, strict=True):
        bkg = r.shape.background if r.shape else [r.background]
        # Blinded (observed null): the model needs some observation; 0 is used and the observed limit
        # is dropped by limit_point, so nothing depends on the box content.
        obs = (r.shape.observed if r.shape else [r.observed]) if r.observed is not None else [0] * len(bkg)
        channels.append({
            "name": f"run_{r.name}", "signal": list(s * norm), "background": list(bkg), "observed": list(obs),
            "signal_sys": {f"eff_run_{r.name}": r.efficiency_unc, f"eot_run_{r.name}": r.eot_unc},
            "background_sys": background_sys(r, shared_shape=len(shape_runs) > 1),
        })
    return workspace_spec(channels, shared=dict(summary.correlated))


SHAPE_NUISANCE = "bkg_shape"  # the background uncertainty common to all runs: one parameter (issue 14)


def background_sys(run: Run, *, shared_shape: bool) -> dict[str, Any]:
    """The background normsys terms of one run's channel: ``bkg_run_<name>`` (the run's own part,
    symmetric relative width or {"hi", "lo"}) and, when the summary gives ``background_shape_unc_up/down``,
    the common part as ``bkg_shape`` = {"hi", "lo"}: the same name in every channel, i.e. ONE nuisance
    correlated across the runs (per-run hi/lo), as pyhf reads it. With a single run carrying a shape term
    there is nothing to correlate, and the two are merged in log space into one asymmetric ``bkg_run``
    term (ln hi = sqrt(ln^2 hi_run + ln^2 hi_shape), ln lo likewise): the exact CLs takes one asymmetric
    term per channel."""
    if run.background <= 0:
        return {}
    own = run.background_kappa()
    shape = run.background_shape_kappa()
    name = f"bkg_run_{run.name}"
    if shape is None:
        return {name: own}
    if shared_shape:
        return {name: own, SHAPE_NUISANCE: shape}
    hi_own, lo_own = ((own["hi"], own["lo"]) if isinstance(own, dict)
                      else (1.0 + float(own or 0.0), 1.0 / (1.0 + float(own or 0.0))))
    return {name: {"hi": math.exp(math.hypot(math.log(hi_own), math.log(shape["hi"]))),
                   "lo": math.exp(-math.hypot(math.log(lo_own), math.log(shape["lo"])))}}


def asymptotic_limits(spec: dict[str, Any], cl: float) -> tuple[float, dict[str, float]]:
    """pyhf asymptotic CLs limits (labelled option only: far too strong at n = 0, see lessons.md)."""
    import pyhf  # lazy: pyhf costs ~1 s to import and only this labelled option (and the closure) use it

    pyhf.set_backend("numpy")
    model, data = pyhf_model(spec)
    obs, exp = pyhf.infer.intervals.upper_limits.toms748_scan(
        data, model, 0.05, 20.0, level=1.0 - cl, test_stat="qtilde", calctype="asymptotics")
    names = ("m2", "m1", "median", "p1", "p2")
    return float(obs), {k: float(v) for k, v in zip(names, exp, strict=True)}


def limit_point(summary: Summary, mass: float, yield_eps0: float | np.ndarray, *, method: str, cl: float,
                ws_dir: Path | None = None, cache: dict[tuple[Any, ...], Any] | None = None,
                mechanisms: dict[str, np.ndarray] | None = None, share_round: float | None = None,
                seed: int = TOYS_SEED) -> dict[str, Any]:
    """One mass: workspace, limits on mu and eps (and the merged-runs N90 numbers, informative).

    ``yield_eps0``: A' per EOT at EPS0, one number or one per run (own E_miss window). ``mechanisms``:
    per-run yields per mechanism at this mass (the expected signal per mechanism at the limit is recorded).
    ``cache``: CLs results keyed by the exact model (same run shares, backgrounds, uncertainties) -- masses
    with identical models (e.g. constant efficiencies) reuse one computation. ``share_round``: with more
    than SHARE_ROUND_MIN_RUNS runs the CLs is computed for the run shares rounded to this step (the
    workspace written keeps the exact shares; at n = 0 s_up moves by < 0.1% over all shares, see
    :mod:`na64ana.stats.band`): the exact enumeration of 5 runs costs ~1 min per distinct model."""
    point: dict[str, Any] = {"mass_GeV": float(mass)}
    y_runs = np.broadcast_to(np.asarray(yield_eps0, dtype=float), (len(summary.runs),))
    y_tot = float(y_runs.sum())
    if not (np.all(np.isfinite(y_runs)) and y_tot > 0):
        point["error"] = f"signal yield per EOT is {y_tot!r} at this mass (kinematically closed?)"
        return point
    n_ref = _cls.poisson_upper_limit(0, 0.0, cl)
    s_eps0 = float(sum(float(s.sum()) * y for s, y in zip(signal_shares(summary, mass), y_runs, strict=True)))
    eps_ref = EPS0 * math.sqrt(n_ref / s_eps0)
    y_mean = s_eps0 / float(sum(float(s.sum()) for s in signal_shares(summary, mass)))  # EOT x eff weighted
    spec = mass_spec(summary, mass, n_ref, run_weights=y_runs)
    if mechanisms:
        shares = np.array([float(s.sum()) for s in signal_shares(summary, mass)])
        point["signal_per_mechanism_at_eps_ref"] = {
            k: float(np.sum(shares * v) * (eps_ref / EPS0) ** 2) for k, v in mechanisms.items()}
    if ws_dir is not None:
        name = f"workspace_m{mass * 1e3:.4g}MeV.json"
        provenance.write_json(ws_dir / name, spec)
        point["workspace"] = f"workspaces/{name}"
    if method == "asymptotic":
        mu_obs, mu_exp = asymptotic_limits(spec, cl)
        extra: dict[str, Any] = {}
    else:
        cls_spec = spec
        key: tuple[Any, ...] = (json.dumps(spec.get("channels"), sort_keys=True, default=float), cl, method)
        if share_round and len(summary.runs) > SHARE_ROUND_MIN_RUNS and all(r.shape is None
                                                                            for r in summary.runs):
            w = np.array([float(s.sum()) * y
                          for s, y in zip(signal_shares(summary, mass), y_runs, strict=True)])
            q = np.maximum(np.round(w / w.sum() / share_round), 0.0)
            key = ("rounded", tuple(int(x) for x in q), cl, method)
            q = np.maximum(q / q.sum() if q.sum() > 0 else np.full(q.size, 1.0 / q.size), 1e-3)
            q = q / q.sum()
            cls_spec = copy.deepcopy(spec)
            for ch, qi in zip(cls_spec["channels"], q, strict=True):
                ch["samples"][0]["data"] = [float(n_ref * qi)]
            point["cls_share_round"] = share_round
        if cache is not None and key in cache:
            res = cache[key]
        else:
            res = _cls.limits(counting_model_from_spec(cls_spec), cl, method=method, seed=seed)
            if cache is not None:
                cache[key] = res
        mu_obs, mu_exp = res.mu_obs, res.mu_exp
        extra = {"cls_at_limit": res.cls_obs_at_limit, "n_outcomes": res.n_outcomes}
        if res.info.get("large_counts"):  # the exact method fell back to toys: said per mass
            extra["details"] = {"cls_method": res.method}
        if method == "exact":  # handed to the toy cross-check by scan (popped there, never written)
            point[_EXACT_LIMIT] = (float(mu_obs), float(res.cls_obs_at_limit))
    to_eps = lambda mu: eps_ref * math.sqrt(mu) if np.isfinite(mu) else None  # noqa: E731
    point["eps_obs"] = to_eps(mu_obs)
    for band_key, q in BANDS.items():
        point[band_key] = to_eps(mu_exp[q])
    per_mech = point.get("signal_per_mechanism_at_eps_ref")
    if per_mech and len(per_mech) > 1 and per_mech.get("brem", 0) > 0 and point["eps_exp"] is not None:
        # the bremsstrahlung-only expectation (same s_up: the run shares of the two are the same when the
        # runs share the E_miss window; otherwise an approximation, labelled as such in the record)
        point["eps_exp_brem_only"] = point["eps_exp"] * math.sqrt(sum(per_mech.values()) / per_mech["brem"])
    if summary.blinded:
        point.update({"eps_obs": None, "blinded": True, "eps_ref": eps_ref,
                      "yield_per_eot_at_eps_ref": y_mean * (eps_ref / EPS0) ** 2, **extra})
        return point
    n_tot = sum(cast(int, r.observed) for r in summary.runs)  # unblinded: every run has its count
    b_tot = sum(r.background for r in summary.runs)
    n90 = _cls.poisson_upper_limit(n_tot, b_tot, cl)
    eps_simple = eps_ref * math.sqrt(n90 / n_ref)
    point.update({
        "mu_obs": mu_obs, "signal_events_limit": mu_obs * n_ref, "eps_ref": eps_ref,
        "yield_per_eot_at_eps_ref": y_mean * (eps_ref / EPS0) ** 2,
        "eps_simple": eps_simple, "n90_simple": n90,
        "simple_rel_diff": (point["eps_obs"] / eps_simple - 1.0) if point["eps_obs"] else None,
        **extra,
    })
    if point["eps_obs"] is None:
        point["error"] = "observed limit outside the scanned range"
    return point


def scan(summary: Summary, *, method: str = "exact", cl: float | None = None, out_dir: Path | None = None,
         yields: np.ndarray | None = None, crosscheck_toys: int = 0, crosscheck_masses: int = 2,
         seed: int = TOYS_SEED, n_workers: int | None = None) -> dict[str, Any]:
    """Limits for every mass of the summary. ``yields``: A' per EOT at eps = EPS0 per mass, all runs
    (default: physics, per run through its own E_miss window and per production mechanism).

    A mass that fails is reported with an ``error`` field, never as a silent NaN. With ``out_dir`` the
    workspaces are written to ``out_dir/workspaces`` (the stage record is :func:`run_stage`'s job).
    ``crosscheck_toys`` > 0: the pyhf toy CLs at the exact limit of ``crosscheck_masses`` masses
    (:mod:`na64ana.stats.crosscheck`, seeded); a failure is a warning recorded in the result.
    ``n_workers``: processes for the masses and the cross-check (:func:`na64ana.workers.map_ordered`:
    default the cores; the results do not depend on it)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}")
    cl = summary.cl if cl is None else cl
    masses = list(summary.masses_GeV)
    mech: dict[str, np.ndarray] | None = None
    if yields is None:
        mech = run_yields(summary, masses)
        per_run = np.sum(list(mech.values()), axis=0)  # (runs, masses)
    else:
        per_run = np.broadcast_to(np.asarray(yields, dtype=float), (len(summary.runs), len(masses)))
    ws_dir = None
    if out_dir is not None:
        ws_dir = Path(out_dir) / "workspaces"
        ws_dir.mkdir(parents=True, exist_ok=True)
    cache: dict[tuple[Any, ...], Any] = {}  # per process: masses with one model reuse one calculation

    def one_mass(k: int) -> dict[str, Any]:
        m = masses[k]
        try:
            return limit_point(summary, m, per_run[:, k], method=method, cl=cl, ws_dir=ws_dir, cache=cache,
                               share_round=SHARE_ROUND, seed=seed,
                               mechanisms=None if mech is None else {n: v[:, k] for n, v in mech.items()})
        except Exception as exc:  # noqa: BLE001 -- reported per mass, the scan goes on
            log.warning("mass %.4g GeV failed: %s", m, exc)
            return {"mass_GeV": float(m), "error": f"{type(exc).__name__}: {exc}"}

    points = workers.map_ordered(one_mass, range(len(masses)), workers=n_workers)
    exact_limits = {k: p.pop(_EXACT_LIMIT) for k, p in enumerate(points) if _EXACT_LIMIT in p}
    diffs = [abs(p["simple_rel_diff"]) for p in points if p.get("simple_rel_diff") is not None]
    out: dict[str, Any] = {
        "cl": cl, "method": _method_label(method), "analysis": summary.analysis, "blinded": summary.blinded,
        "cross_section": summary.cross_section, "beam_energy_GeV": summary.beam_energy_GeV,
        "emiss_min_GeV": summary.emiss_min_GeV, "search": "dark_photon", "signature": "invisible",
        "beam_particle": summary.beam_particle, "production": summary.mechanisms, "coupling": "eps",
        "poi": "mu with eps^2 = mu * eps_ref^2 (eps_ref per mass: nominal total signal = N90(n=0))",
        "normsys": "log-normal: hi = 1 + r, lo = 1/(1 + r), pyhf interpcode code1 (asymmetric: {hi, lo})",
        "points": points,
        "simplified_check": {
            "description": "informative, not a check (equal to the combined limit by construction at n = 0): "
                           "runs merged, N90 (classical CLs, no systematics) for the total observed count "
                           "and background; eps_simple = eps_ref sqrt(N90 / N_ref). The check is "
                           "'crosscheck'",
            "max_abs_rel_diff": max(diffs) if diffs else None,
        },
        "n_failed": sum("error" in p for p in points),
    }
    if len(summary.mechanisms) > 1 and len({summary.run_emiss_min(r) for r in summary.runs}) > 1:
        out["notes"] = ("eps_exp_brem_only: eps_exp x sqrt(N_total / N_brem) at the same s_up (the runs' "
                        "shares differ slightly between mechanisms with per-run E_miss windows)")
    if crosscheck_toys > 0 and method != "asymptotic":
        out["crosscheck"] = run_crosscheck(summary, points, per_run, cl=cl, ntoys=crosscheck_toys,
                                           n_masses=crosscheck_masses, seed=seed,
                                           exact_limits=exact_limits or None, n_workers=n_workers)
        if not out["crosscheck"].get("passed", False):
            out.setdefault("warnings", []).append("toy cross-check: " + out["crosscheck"].get(
                "line", out["crosscheck"].get("error", "failed")))
    return out


def run_crosscheck(summary: Summary, points: list[dict[str, Any]], per_run: np.ndarray, *, cl: float,
                   ntoys: int, n_masses: int = 2, seed: int = TOYS_SEED,
                   exact_limits: dict[int, tuple[float, float]] | None = None,
                   n_workers: int | None = None) -> dict[str, Any]:
    """pyhf toy CLs at the exact observed-data limit of a few masses (spread in log m); never raises.

    ``exact_limits``: mass index -> (mu limit, exact CLs there) of the scan: the toys test the limit the
    scan wrote (for > SHARE_ROUND_MIN_RUNS runs the one of the rounded run shares, within 0.1% of the
    saved workspace's, far inside the toys' precision) instead of an exact calculation repeated here."""
    from . import crosscheck as cc

    good = [k for k, p in enumerate(points) if "error" not in p]
    if not good:
        return {"passed": False, "error": "no mass with a limit to cross-check"}
    try:
        pick = [good[i] for i in cc.pick_masses([points[k]["mass_GeV"] for k in good], n_masses)]
        n_ref = _cls.poisson_upper_limit(0, 0.0, cl)
        specs = [mass_spec(summary, points[k]["mass_GeV"], n_ref, run_weights=per_run[:, k]) for k in pick]
        given = ([exact_limits[k] for k in pick]
                 if exact_limits is not None and all(k in exact_limits for k in pick) else None)
        res = cc.toys_crosscheck(specs, masses=[points[k]["mass_GeV"] for k in pick], cl=cl, ntoys=ntoys,
                                 seed=seed, exact_limits=given, n_workers=n_workers)
        out = {**res.model_dump(mode="json"), "line": res.line()}
        fallback = [points[k]["mass_GeV"] for k in pick if (points[k].get("details") or {}).get("cls_method")]
        if given is not None and fallback:
            out["note"] = (f"the limits checked at {fallback} GeV are the toy-hybrid ones of the large-count "
                           "fallback (points' details.cls_method), not an enumeration")
        return out
    except Exception as exc:  # noqa: BLE001 -- the cross-check warns, it never stops the limits
        return {"passed": False, "error": f"{type(exc).__name__}: {exc}"}


def compute(summary: Summary, *, method: str = "exact", cl: float | None = None, out_dir: Path | None = None,
            yields: np.ndarray | None = None, summary_file: str | Path | None = None,
            crosscheck_toys: int = 0, seed: int = TOYS_SEED) -> LimitsRecord:
    """The limits record: :func:`scan` plus the dark-matter reading (y, alpha_D); workspaces written to
    ``out_dir/workspaces`` when given. ``summary_file``: recorded as where the summary came from (the
    stage records it relative to the limits folder)."""
    res = interpret.add_interpretation(
        scan(summary, method=method, cl=cl, out_dir=out_dir, yields=yields, crosscheck_toys=crosscheck_toys,
             seed=seed),
        ratio=summary.ratio, alpha_d=summary.alpha_D)
    if summary_file is not None:
        res["summary_file"] = str(summary_file)
    flags = validation_flags(summary)
    res["details"] = {**(res.get("details") or {}), "background_validated": background_validated(flags),
                      "background_validation": flags, "assumed_defaults": summary.assumed_defaults()}
    return LimitsRecord.model_validate(res)


_FLAG_OF_WORD = {word: flag for flag, word in VERDICT_WORDS.items()}


def validation_flags(summary: Summary) -> dict[str, str | None]:
    """Per run, the background stage's validation-region verdict ("ok" | "warn" | "fail") read from the
    run's ``notes.background_validation`` (the message ends with the verdict word); None: not given (a
    hand-written summary) or not recognised."""
    out: dict[str, str | None] = {}
    for r in summary.runs:
        msg = r.notes.get("background_validation") if isinstance(r.notes, dict) else None
        word = str(msg).rstrip().rsplit(":", 1)[-1].strip() if msg else ""
        out[r.name] = _FLAG_OF_WORD.get(word)
    return out


def background_validated(flags: dict[str, str | None]) -> bool | None:
    """False if any run's validation region failed, True if every run has a verdict and none failed
    (a warning counts as validated, docs/inference.md 5.1), None if a run has none (not known)."""
    if any(f == "fail" for f in flags.values()):
        return False
    return True if flags and all(f is not None for f in flags.values()) else None


DEFAULT_CROSSCHECK_TOYS = 100  # small: ~5 CPU-s per mass for 3 runs; raise with --crosscheck-toys


def summary_kind(data: Any) -> str:
    """'visible', 'alp', 'vector' or 'dark_photon': which limit a summary asks for."""
    if not isinstance(data, dict):
        return "dark_photon"
    if data.get("signature") == "visible":
        return "visible"
    name = (data.get("model") or {}).get("name") if isinstance(data.get("model"), dict) else None
    if name in ("alp_photon",):
        return "alp"
    if name not in (None, "dark_photon"):
        return "vector"
    return "dark_photon"


def _other_record(kind: str, data: dict[str, Any], file: str, method: str, cl: float | None) -> LimitsRecord:
    """Coupling (vector, ALP) and band (visible) limits as a LimitsRecord."""
    from . import band, coupling

    if cl is not None:
        data = {**data, "cl": cl}
    if kind == "visible":
        vs = band.validate_summary(data, file=file)
        raw = band.band_limits(vs, method=method, setups=band._setups_for(vs, file))
    elif kind == "alp":
        raw = coupling.alp_limits(data, method=method, file=file)
    else:
        raw = coupling.vector_limits(data, method=method, file=file)
    known = set(LimitPoint.model_fields)
    points = []
    for p in raw["points"]:
        pt = {k: v for k, v in p.items() if k in known}
        rest = {k: v for k, v in p.items() if k not in known}
        if rest:
            pt["details"] = rest
        points.append(pt)
    rec_known = set(LimitsRecord.model_fields)
    top = {k: v for k, v in raw.items() if k in rec_known and k != "points"}
    details = {k: v for k, v in raw.items() if k not in rec_known and k != "points"}
    top.update({"search": {"visible": "visible", "alp": "alp"}.get(kind, "vector"),
                "signature": "visible" if kind == "visible" else "invisible",
                "cross_section": raw.get("cross_section", data.get("cross_section", "etl")),
                "beam_energy_GeV": data.get("beam_energy_GeV"), "points": points,
                "n_failed": raw.get("n_failed", 0),
                "simplified_check": {"description": "not applicable (coupling/band limits: s_up of the "
                                     "exact CLs on the total signal count)", "max_abs_rel_diff": None}})
    if kind != "visible":
        top["model"] = raw.get("model")
    if details:
        top["details"] = details
    return LimitsRecord.model_validate(top)


def run_stage(summary_file: str | Path, out: str | Path, *, method: str = "exact", cl: float | None = None,
              yields: np.ndarray | None = None, crosscheck_toys: int = DEFAULT_CROSSCHECK_TOYS,
              seed: int = TOYS_SEED) -> LimitsRecord:
    """The limits stage: read (and validate) the summary, write ``out/limits.json``, one pyhf workspace per
    mass (dark photon) and the provenance (the summary read, with its hash, so ``na64ana verify`` notices a
    changed summary; the blinding; the toys seed). Dispatches on the summary: the dark photon (brem and/or
    annihilation), a vector model's coupling, the ALP closed region or the visible band."""
    from ..datasets import read_json

    clock = provenance.Clock()
    data = read_json(summary_file)
    kind = summary_kind(data)
    out = provenance.prepare_outdir(out, stage="limits")
    # relative to the limits folder: a moved or copied results folder still points at its own summary
    rel = Path(os.path.relpath(Path(summary_file).resolve(), out.resolve())).as_posix()
    if kind == "dark_photon":
        summ = load_summary(summary_file)
        rec = compute(summ, method=method, cl=cl, out_dir=out, yields=yields, summary_file=rel,
                      crosscheck_toys=crosscheck_toys, seed=seed)
        outputs = [LimitsRecord.file_name, "workspaces"]
    else:
        if method == "asymptotic":
            from ..errors import InputError

            raise InputError(f"the asymptotic method is not available for {kind} limits", field="--method")
        rec = _other_record(kind, data, str(summary_file), method, cl)
        rec = rec.model_copy(update={"summary_file": rel})
        outputs = [LimitsRecord.file_name]
    rec.dump(out / LimitsRecord.file_name)
    for w in rec.warnings or []:
        log.warning("%s", w)
        warnings.warn(w, stacklevel=2)
    cc = rec.crosscheck or {}
    provenance.write(out, "limits", inputs=[summary_file], outputs=outputs,
                     blinding=blinding.state(rec.blinded),
                     seeds={"toys_seed": seed} if (method == "toys" or cc) else None,
                     metrics=clock.metrics(masses=len(rec.points)), summary=str(summary_file), method=method,
                     cl=rec.cl, n_failed=rec.n_failed, search=rec.search,
                     crosscheck=({"passed": cc.get("passed"), "ntoys": cc.get("ntoys"),
                                  "line": cc.get("line", cc.get("error"))} if cc else None),
                     warnings=rec.warnings or [])
    for p in rec.points:
        if p.error is not None:
            log.info("m = %8.4g GeV  ERROR %s", p.mass_GeV, p.error)
        elif kind != "dark_photon":
            log.info("m = %8.4g GeV  %s exp %s  obs %s", p.mass_GeV, rec.coupling or "coupling",
                     _f(p.coupling_exp), _f(p.coupling_obs))
        elif p.blinded:
            log.info("m = %8.4g GeV  eps90 exp %.3e  (blinded: no observed limit)", p.mass_GeV,
                     p.eps_exp or float("nan"))
        else:
            log.info("m = %8.4g GeV  eps90 obs %.3e  exp %.3e", p.mass_GeV,
                     p.eps_obs or float("nan"), p.eps_exp or float("nan"))
    log.info("wrote %s (%d masses, %d failed)", out / LimitsRecord.file_name, len(rec.points), rec.n_failed)
    return rec


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.3e}"


def _method_label(method: str) -> str:
    return {"exact": "exact-hybrid-cls (enumerated Poisson outcomes, qtilde, log-normal priors, quadrature)",
            "toys": "toys-hybrid-cls (vectorised toys, qtilde, log-normal priors)",
            "asymptotic": "pyhf-asymptotic (qtilde; NOT small-count-correct)"}[method]
