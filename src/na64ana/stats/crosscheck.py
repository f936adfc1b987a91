"""Cross-checks that can fail: pyhf toys on the saved workspaces, and what the simulator is tuned to.

Why this replaces the "merged runs, N90" check: with n = 0 observed, CLs = E[exp(-s)] for every model, so a
merged-runs N90 = 2.30 agrees with any correct *or wrong* per-run treatment of backgrounds and efficiencies to
the size of the signal systematics -- it cannot fail (a tautology at n = 0). The check here is independent:

* the workspace the limits stage saved (the JSON a reader would download) is read back with pyhf
  (``interpcode code1``, as :mod:`na64ana.stats.model` writes it);
* pyhf's own toy calculator (``calctype="toybased"``, qtilde, its own fits, its own code1 interpolation,
  auxiliary data randomised) computes CLs at the exact limit mu_90 of :mod:`na64ana.stats.cls`;
* at mu_90 CLs must be 1 - CL = 0.10: the check passes if
  -(n_sigma sigma_toys + below_tol) <= CLs_toys - 0.10 <= n_sigma sigma_toys + abs_tol
  (sigma_toys: the binomial spread of the toy CLs if it were 1 - CL). It fails if the exact limit is wrong
  (pyhf's asymptotic 1.46 events instead of 2.30 gives CLs_toys ~ 0.23), if the workspace does not mean
  what the exact calculation assumed (interpolation, correlations, a lost channel), or if a fit in either
  code goes astray.

The test is on CLs only: pyhf randomises the auxiliary data and generates toys at the profiled nuisances
(LHC-style), ours is hybrid (nuisances from their priors), so the two tails differ and only their ratio is
comparable (tests/test_cls.py). Even the ratio differs slightly at n = 0 once there are nuisances: with 2000
toys pyhf gives 0.098 +- 0.008 without systematics, 0.089 +- 0.010 with a 15% signal uncertainty,
0.077 +- 0.010 with 15% signal and 40% background, 0.079 +- 0.012 on the prl2019 3-run workspace -- the
frequentist (LHC-style) CLs is lower, its limit ~5% stronger in eps, the hybrid the more conservative. Hence
the asymmetric tolerance: ``below_tol`` = 0.03 absorbs that known method difference on the conservative side,
``abs_tol`` = 0.01 keeps the side that catches too-strong limits tight. With observed events and very wide
background priors (kappa >~ 3) the methods part the other way (pyhf up to ~0.06 higher, docs/inference.md):
widen ``abs_tol`` there and say so. pyhf's toy *expected* band is not a
check of ours either: it comes from toys at the profiled nuisances (the nominal-Poisson count distribution),
ours from the prior-averaged one (docs/inference.md); pyhf's calculator with toys from the priors
(:mod:`na64ana.stats.prior_toys`) is, and agrees.

:func:`simulator_tuning_rows` lists every published number the event simulator uses as an input or tunes to
(docs/simulator_tuning.md): a result that reproduces one of them from simulated events is closure, not
validation.
"""

from __future__ import annotations

import json
import math
import re
import time
import tomllib
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .. import workers
from .cls import ExactCLs
from .model import counting_model_from_spec, pyhf_model

__all__ = ["CrosscheckPoint", "CrosscheckResult", "TuningRow", "crosscheck_limits_dir", "pick_masses",
           "simulator_tuning_rows", "toys_crosscheck", "toys_crosscheck_point"]

# sigma_toys ~ 0.018 at CLb ~ 0.6: pyhf's asymptotic limit (CLs ~ 0.23 there) fails by > 5 sigma
DEFAULT_NTOYS = 500
DEFAULT_N_SIGMA = 3.0
DEFAULT_ABS_TOL = 0.01  # above 1 - CL: a too-strong limit
DEFAULT_BELOW_TOL = 0.03  # below 1 - CL: the hybrid-vs-LHC-style difference at n = 0 (module docstring)
# pyhf's fits by MINUIT (iminuit, a dependency) instead of scipy's SLSQP with finite-difference gradients:
# ~3x less CPU for the 5-run workspace (8 s vs 26 s for 100 toys), same toy tails on it (0.03 / 0.26)
MINUIT_OPTIONS = {"strategy": 0, "tolerance": 0.1}
OPTIMIZER = ("pyhf numpy backend, minuit_optimizer(strategy=0, tolerance=0.1); scipy_optimizer() rerun (same "
             "seed) where MINUIT fails, said per point (optimizer, minuit_error)")


class CrosscheckPoint(BaseModel):
    """One workspace: pyhf toy CLs at the exact limit."""

    model_config = ConfigDict(extra="forbid")

    mass_GeV: float | None = None
    workspace: str | None = None
    mu_limit: float = Field(description="exact hybrid CLs limit on mu for the workspace's observation")
    cls_exact: float = Field(description="exact hybrid CLs at mu_limit (1 - CL by construction)")
    cls_toys: float
    cls_toys_err: float = Field(description="binomial standard error of the toy CLs")
    clsb_toys: float
    clb_toys: float
    ntoys: int
    seed: int
    deviation: float = Field(description="cls_toys - (1 - CL)")
    allowed: float = Field(description="largest deviation above: n_sigma sigma_toys(CLs = 1 - CL) + abs_tol")
    allowed_below: float = Field(description="largest deviation below: n_sigma * sigma_toys + below_tol")
    passed: bool
    optimizer: str = Field("minuit", description="pyhf optimizer of the toys: 'minuit', or 'scipy' when "
                           "MINUIT failed (e.g. 'invalid minimum' at the code1 kink of an asymmetric "
                           "nuisance) and the toys were rerun with scipy, same seed")
    minuit_error: str | None = Field(None, description="MINUIT's failure that made the scipy retry")
    # wall time: kept in memory, never written (outputs must not depend on the machine's load; the blinded
    # differential test compares limits.json byte for byte)
    seconds: float = Field(0.0, exclude=True)


class CrosscheckResult(BaseModel):
    """Typed result of :func:`toys_crosscheck`; ``passed`` only if every point passed."""

    model_config = ConfigDict(extra="forbid")

    description: str = ("pyhf toybased CLs (qtilde, code1) on the saved workspace at the exact hybrid CLs "
                        "limit; must equal 1 - CL")
    cl: float
    level: float
    tolerance: str
    n_sigma: float
    abs_tol: float
    below_tol: float
    ntoys: int
    points: list[CrosscheckPoint]
    passed: bool
    optimizer: str = OPTIMIZER
    seconds: float = Field(0.0, exclude=True)  # wall time, not written (see CrosscheckPoint.seconds)

    def rows(self) -> list[dict[str, Any]]:
        """Rows for a report table: mass (MeV), mu_90, CLs_toys, its error, allowed range, verdict."""
        return [{"mass_MeV": None if p.mass_GeV is None else p.mass_GeV * 1e3, "mu_90": p.mu_limit,
                 "cls_toys": p.cls_toys, "cls_toys_err": p.cls_toys_err,
                 "allowed": (max(0.0, self.level - p.allowed_below), self.level + p.allowed),
                 "verdict": "PASS" if p.passed else "FAIL"} for p in self.points]

    def line(self) -> str:
        """One report line, e.g. ``toy cross-check PASSED: CLs at the limit 0.097 +- 0.018, 0.104 ...``."""
        vals = ", ".join(f"{p.cls_toys:.3f} +- {p.cls_toys_err:.3f}"
                         + (f" (m = {p.mass_GeV * 1e3:.4g} MeV)" if p.mass_GeV is not None else "")
                         for p in self.points)
        return (f"toy cross-check {'PASSED' if self.passed else 'FAILED'}: pyhf toy CLs at the exact "
                f"{self.cl:.0%} CL limit = {vals}; expected {self.level:.3f} ({self.tolerance})")


def _load_spec(ws: dict[str, Any] | str | Path) -> tuple[dict[str, Any], str | None]:
    if isinstance(ws, dict):
        return ws, None
    path = Path(ws)
    with path.open() as f:
        return json.load(f), str(path)


def toys_crosscheck_point(spec: dict[str, Any], *, cl: float = 0.9, ntoys: int = DEFAULT_NTOYS, seed: int = 1,
                          n_sigma: float = DEFAULT_N_SIGMA, abs_tol: float = DEFAULT_ABS_TOL,
                          below_tol: float = DEFAULT_BELOW_TOL, mu: float | None = None,
                          cls_exact: float | None = None, mass_GeV: float | None = None,
                          workspace: str | None = None) -> CrosscheckPoint:
    """pyhf toy CLs at the exact limit of ``spec`` (or at ``mu`` if given: lets a test feed a wrong limit,
    and lets the limits stage pass the limit it already computed, with its exact CLs ``cls_exact``: then
    the exact calculation is not repeated).

    pyhf's numpy backend samples from numpy's global random state: it is seeded with ``seed`` and restored
    afterwards."""
    import pyhf  # lazy: ~1 s to import

    if not 0 < cl < 1:
        raise ValueError(f"cl: must be in (0, 1), got {cl!r}")
    if ntoys < 10:
        raise ValueError(f"ntoys: need at least 10 toys, got {ntoys!r}")
    t0 = time.perf_counter()
    level = 1.0 - cl
    if mu is not None and cls_exact is not None:  # the caller's exact limit and its CLs
        mu_lim = float(mu)
    else:
        exact = ExactCLs(counting_model_from_spec(spec))
        mu_lim = exact.limits(cl, expected=False).mu_obs if mu is None else float(mu)
    if not (math.isfinite(mu_lim) and mu_lim > 0):
        raise ValueError(f"the exact limit is {mu_lim!r}: nothing to cross-check")
    if cls_exact is None:
        cls_exact = float(exact.cls(mu_lim)[0])
    optimizer, minuit_error = "minuit", None
    try:
        minuit = pyhf.optimize.minuit_optimizer(**MINUIT_OPTIONS)
        cls_t, clsb, clb = _toy_hypotest(spec, mu_lim, ntoys, seed, minuit)
    except pyhf.exceptions.FailedMinimization as exc:  # MINUIT only: scipy's failure propagates
        optimizer, minuit_error = "scipy", _minuit_failure(exc)
        cls_t, clsb, clb = _toy_hypotest(spec, mu_lim, ntoys, seed, pyhf.optimize.scipy_optimizer())
    # binomial errors of both tails (at least one toy in each, so a zero count does not claim precision)
    psb, pb = max(clsb, 1.0 / ntoys), max(clb, 1.0 / ntoys)
    err = max(cls_t, 1.0 / ntoys) * math.sqrt((1 - psb) / (ntoys * psb) + (1 - pb) / (ntoys * pb))
    # the test is of H0 "CLs = level at mu_limit": its spread is the binomial one with CLsb = level * CLb
    p0 = level * pb
    err0 = level * math.sqrt((1 - p0) / (ntoys * p0) + (1 - pb) / (ntoys * pb))
    dev = cls_t - level
    above, below = n_sigma * err0 + abs_tol, n_sigma * err0 + below_tol
    return CrosscheckPoint(mass_GeV=mass_GeV, workspace=workspace, mu_limit=mu_lim, cls_exact=cls_exact,
                           cls_toys=cls_t, cls_toys_err=err, clsb_toys=clsb, clb_toys=clb, ntoys=ntoys,
                           seed=seed, deviation=dev, allowed=above, allowed_below=below,
                           passed=bool(-below <= dev <= above), optimizer=optimizer,
                           minuit_error=minuit_error, seconds=time.perf_counter() - t0)


def _minuit_failure(exc: Exception) -> str:
    """One line for a MINUIT FailedMinimization: pyhf's message can read "terminated successfully" for an
    invalid minimum, so the validity and EDM of MINUIT's FMin are added when the result carries them."""
    fmin = getattr(getattr(getattr(exc, "result", None), "minuit", None), "fmin", None)
    extra = ""
    if fmin is not None:
        extra = (f"; MINUIT minimum valid = {getattr(fmin, 'is_valid', '?')}, "
                 f"EDM = {float(getattr(fmin, 'edm', float('nan'))):.3g}")
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}{extra}"


def _toy_hypotest(spec: dict[str, Any], mu: float, ntoys: int, seed: int, optimizer: Any
                  ) -> tuple[float, float, float]:
    """pyhf toybased (CLs, CLsb, CLb) at ``mu`` with ``optimizer``, numpy's global state seeded with
    ``seed`` and restored afterwards (as is pyhf's backend)."""
    import pyhf  # lazy: ~1 s to import

    previous = pyhf.get_backend()
    pyhf.set_backend("numpy", optimizer)
    state = np.random.get_state()  # noqa: NPY002 -- pyhf's numpy backend uses the global state
    try:
        model, data = pyhf_model(spec)
        bounds = model.config.suggested_bounds()
        bounds[model.config.poi_index] = (0.0, max(2.0 * mu, 10.0))
        np.random.seed(seed)  # noqa: NPY002
        cls_t, (clsb, clb) = pyhf.infer.hypotest(mu, data, model, test_stat="qtilde", calctype="toybased",
                                                 ntoys=ntoys, return_tail_probs=True, track_progress=False,
                                                 par_bounds=bounds)
    finally:
        np.random.set_state(state)  # noqa: NPY002
        pyhf.set_backend(*previous)
    return float(cls_t), float(clsb), float(clb)


def toys_crosscheck(workspaces: Sequence[dict[str, Any] | str | Path], *,
                    masses: Sequence[float] | None = None, cl: float = 0.9, ntoys: int = DEFAULT_NTOYS,
                    seed: int = 1, n_sigma: float = DEFAULT_N_SIGMA, abs_tol: float = DEFAULT_ABS_TOL,
                    below_tol: float = DEFAULT_BELOW_TOL,
                    exact_limits: Sequence[tuple[float, float]] | None = None,
                    n_workers: int | None = None) -> CrosscheckResult:
    """The toy cross-check on several workspaces (specs or JSON files), one toy seed per workspace, the
    workspaces on ``n_workers`` processes (:func:`na64ana.workers.map_ordered`; same results).
    ``exact_limits``: per workspace (mu_limit, exact CLs there) already computed by the caller (the limits
    stage), checked as they are instead of being recomputed."""
    if not workspaces:
        raise ValueError("workspaces: need at least one workspace")
    if masses is not None and len(masses) != len(workspaces):
        raise ValueError(f"masses: {len(masses)} given for {len(workspaces)} workspaces")
    if exact_limits is not None and len(exact_limits) != len(workspaces):
        raise ValueError(f"exact_limits: {len(exact_limits)} given for {len(workspaces)} workspaces")
    t0 = time.perf_counter()

    def one(i: int) -> CrosscheckPoint:
        spec, name = _load_spec(workspaces[i])
        mu_cls = (None, None) if exact_limits is None else exact_limits[i]
        return toys_crosscheck_point(spec, cl=cl, ntoys=ntoys, seed=seed + i, n_sigma=n_sigma,
                                     abs_tol=abs_tol, below_tol=below_tol, mu=mu_cls[0], cls_exact=mu_cls[1],
                                     mass_GeV=None if masses is None else masses[i], workspace=name)

    points = workers.map_ordered(one, range(len(workspaces)), workers=n_workers)
    lvl = 1.0 - cl
    return CrosscheckResult(cl=cl, level=lvl, n_sigma=n_sigma, abs_tol=abs_tol, below_tol=below_tol,
                            ntoys=ntoys,
                            tolerance=(f"-({n_sigma:g} sigma_toys + {below_tol:g}) <= CLs_toys - {lvl:.2f} "
                                       f"<= {n_sigma:g} sigma_toys + {abs_tol:g}"),
                            points=points, passed=all(p.passed for p in points),
                            seconds=time.perf_counter() - t0)


def pick_masses(masses: Sequence[float], n: int = 3) -> list[int]:
    """Indices of ``n`` masses spread over the scan: lowest, highest and evenly in log(m) between."""
    if not masses:
        return []
    logm = np.log(np.asarray(masses, dtype=float))
    targets = np.linspace(logm.min(), logm.max(), min(n, len(masses)))
    out: list[int] = []
    for t in targets:
        order = np.argsort(np.abs(logm - t))
        out.append(int(next(i for i in order if int(i) not in out)))
    return sorted(out)


def crosscheck_limits_dir(limits_dir: str | Path, *, n_masses: int = 3, ntoys: int = DEFAULT_NTOYS,
                          seed: int = 1, n_sigma: float = DEFAULT_N_SIGMA, abs_tol: float = DEFAULT_ABS_TOL,
                          below_tol: float = DEFAULT_BELOW_TOL) -> CrosscheckResult:
    """The cross-check on a limits folder (``limits.json`` + ``workspaces/``) at ``n_masses`` masses.

    Points with an error or without a workspace are skipped; the workspace's own observation is used (for a
    blinded summary the limits stage saved zeros: the check then tests the calculation, not the box)."""
    limits_dir = Path(limits_dir)
    rec = json.loads((limits_dir / "limits.json").read_text())
    pts = [p for p in rec.get("points", []) if p.get("workspace") and not p.get("error")]
    if not pts:
        raise ValueError(f"{limits_dir / 'limits.json'}: no mass point with a workspace")
    pick = pick_masses([p["mass_GeV"] for p in pts], n_masses)
    return toys_crosscheck([limits_dir / pts[i]["workspace"] for i in pick],
                           masses=[pts[i]["mass_GeV"] for i in pick], cl=float(rec.get("cl", 0.9)),
                           ntoys=ntoys, seed=seed, n_sigma=n_sigma, abs_tol=abs_tol, below_tol=below_tol)


# ---------------------------------------------------------------------------------------------------------
# what the simulator is tuned to


class TuningRow(BaseModel):
    """A published number the event simulator uses (docs/simulator_tuning.md)."""

    model_config = ConfigDict(extra="forbid")

    quantity: str
    value: str
    source: str
    key: str = Field(description="where it lives: published.toml key, datasets.json path")
    role: Literal["input", "target", "normalisation", "comparison"]
    used_as: str
    closure: str = Field(description="what agreement with this number therefore does NOT validate")


# (published.toml key, role, how the simulator uses it, what agreement with it cannot validate)
_PUBLISHED_USE: tuple[tuple[str, str, str, str], ...] = (
    ("beam.pion_fraction", "input", "beam hadron contamination (pi-)", "hadron-induced backgrounds' rate"),
    ("beam.kaon_fraction", "input", "beam K- contamination", "decay-in-flight shape"),
    ("beam.muon_fraction", "input", "beam mu- contamination", "muon-induced plane populations"),
    ("beam.low_energy_electron_fraction", "input", "50-70 GeV electron tail", "trigger rate"),
    ("beam.energy_spread_rel", "input", "beam energy spread", "-"),
    ("beam.momentum_resolution_rel", "input", "track momentum smearing", "track-cut efficiency"),
    ("beam.theta_tail_range_mrad", "input", "angular tail of the beam", "angle-cut efficiency"),
    ("beam.spill_length_s", "input", "particles per second -> pile-up occupancy", "-"),
    ("detector.srd_modules", "input", "SRD geometry", "-"),
    ("detector.srd_hadron_fake_rate", "input", "fake SR tags of hadrons", "hadron background after SRD"),
    ("detector.srd_electron_efficiency", "target", "srd_mean_MeV, srd_log_sigma tuned to it",
     "the SRD efficiency measured on simulated electrons"),
    ("detector.ecal_resolution_stochastic", "input", "ECAL smearing", "-"),
    ("detector.hcal_resolution_stochastic", "input", "HCAL smearing", "-"),
    ("detector.hcal_modules", "input", "HCAL segmentation", "-"),
    ("detector.veto_muon_inefficiency", "target", "veto.mip_mean_MeV, mip_shape tuned to it",
     "the VETO inefficiency on simulated muons"),
    ("detector.ecal_shower_chi2_max", "target", "ecal.chi2_scale_em set so ~95% of e-m showers pass",
     "the shower-shape efficiency"),
    ("trigger.ps_threshold_loss", "comparison", "not used: the simulated PS-threshold loss of heavy A' "
     "(13-16%) is recorded against it; efficiency ps_correction=True (off by default) corrects to it",
     "- (with the correction off, a genuine comparison)"),
    ("efficiency.prd2018_run3_ecal", "target", "ecal.chi2_scale_em (0.93 incl. re-weighting)",
     "the ECAL selection efficiency"),
    ("efficiency.prl2019_track", "target", "beam.track_none_prob, track_multi_prob",
     "the tracking efficiency (~0.83) measured on simulation"),
    ("efficiency.prl2019_pileup_loss_high_intensity", "target", "ECAL pile-up window (simulation/config.py)",
     "the pile-up loss (~8%) and the intensity dependence of the efficiency at the reference intensity"),
    ("trigger.suppression_factor", "target", "beam.low_energy_ecal_acceptance",
     "the trigger rate (~1e-2/EOT)"),
    ("dimuon.rate_per_eot", "target", "dimuon.truth_rate_e60_per_eot tuned to it",
     "the dimuon yield per EOT (the yield normalisation cross-check of the signal)"),
    ("dimuon.intensity_e_per_spill", "input", "dimuon data/MC reduction vs intensity", "-"),
    ("dimuon.reduction_factor", "input", "intensity-dependent dimuon data/MC factor",
     "the data/MC dimuon ratio"),
    ("dimuon.sigma_tot_pb_ub", "input", "gamma -> mu mu cross section", "-"),
    ("selection.loose_plane_events_per_eot", "target", "hadron.truth_rate_per_eot",
     "the population of the (E_ECAL, E_HCAL) plane"),
    ("selection.events_passing_i_to_iv_prl2019", "target",
     "hadron.neutral_fraction = {hadron.neutral_fraction}, upstream.hcal_fraction = {upstream.hcal_fraction}"
     " (both APPROX), upstream slopes", "the number of events passing cuts (i)-(iv)"),
    ("background.prd2018.sideband_slope_per_GeV", "target", "upstream slope of 2016 runs (datasets.json)",
     "the side-band C exponential slope"),
    ("background.prl2019.sideband_slope_range_per_GeV", "target",
     "upstream slopes of 2017-2018 chosen inside", "the side-band C exponential slope"),
    ("background.prl2019.total", "normalisation", "every box component generated as n_b / efficiency",
     "the background estimate in the box (side-band extrapolation reproduces it by construction)"),
    ("background.prl2019.upstream", "normalisation", "upstream component in the box",
     "the side-band C extrapolation"),
    ("background.prl2019.dimuon", "normalisation", "lost-muon component in the box", "-"),
    ("background.prl2019.decay_in_flight", "normalisation", "decay-in-flight component in the box", "-"),
    ("background.prl2019.target_interactions", "normalisation",
     "upper limit simulated at selection_model.limit_fraction = {selection_model.limit_fraction} x the limit",
     "-"),
    ("background.prl2019.punch_through", "normalisation",
     "upper limit simulated at selection_model.limit_fraction = {selection_model.limit_fraction} x the limit",
     "-"),
    ("background.prd2018.total", "normalisation", "every 2016 box component generated as n_b / efficiency",
     "the 2016 background estimate"),
    ("background.prd2018.upstream_per_run", "normalisation", "per-run upstream box counts (2016)",
     "the per-run side-band C extrapolation"),
    ("exposure.prl2019_eot", "normalisation", "published background per EOT for other campaigns",
     "backgrounds of campaigns without a table (scaled, not predicted)"),
    ("exposure.prd2018_eot", "normalisation", "published background per EOT (2016)", "-"),
    ("selection.signal_box_ecal_max_GeV", "input", "box edge of the normalisation", "-"),
    ("selection.dimuon_ecal_max_GeV", "input", "E_ECAL < 60 GeV of the dimuon rate", "-"),
)

_DATASET_FIELDS = {
    "eot": ("input", "EOT of the run (events generated per EOT)", "EOT counting"),
    "eot_unc": ("input", "EOT uncertainty carried to the summary", "-"),
    "intensity_e_per_spill": ("input", "pile-up occupancy", "intensity dependence of the efficiency"),
    "hcal0": ("input", "zero-degree calorimeter present", "-"),
    "efficiency": ("input", "signal efficiency quoted in the summary",
                   "the efficiency 'measured' on simulation"),
    "efficiency_heavy": ("input", "efficiency of heavy A'", "-"),
    "efficiency_unc": ("input", "efficiency uncertainty (may already contain the 10% yield systematic)",
                       "-"),
    "background": ("normalisation", "box upstream count of the run", "that run's background estimate"),
    "background_unc": ("input", "background uncertainty of the run", "-"),
    "sideband_slope_per_GeV": ("target", "upstream E_ECAL slope of the run", "the side-band C slope"),
    "background_components": ("normalisation", "box count per component of the run",
                              "that run's background estimate"),
}


def simulator_tuning_rows(datasets_file: str | Path | None = None) -> list[TuningRow]:
    """Every published number the simulator uses, with its source (published.toml keys that the simulation
    reads or is tuned to, then the per-run conditions of ``datasets_file`` that carry a source)."""
    from .. import published

    rows: list[TuningRow] = []
    sim = _simulation_values()
    for key, role, used_text, closure in _PUBLISHED_USE:
        used = _SIM_KEY.sub(lambda m: sim.get(m.group(1), "?"), used_text)
        try:
            entry = published.entry(key)
        except (KeyError, ValueError):
            continue  # a key renamed by its owner: the doc table keeps the name, the function stays honest
        rows.append(TuningRow(quantity=key.split(".")[-1], value=_fmt(entry.get("value"), entry.get("unc")),
                              source=str(entry.get("source", "?")), key=f"published.toml:{key}",
                              role=role, used_as=used, closure=closure))  # type: ignore[arg-type]
    path = Path("datasets.json") if datasets_file is None else Path(datasets_file)
    if path.is_file():
        raw = json.loads(path.read_text())
        for cname, camp in raw.get("campaigns", {}).items():
            for rname, run in camp.get("runs", {}).items():
                srcs = run.get("sources", {})
                for fld, (role, used, closure) in _DATASET_FIELDS.items():
                    if fld not in run or run[fld] is None:
                        continue
                    rows.append(TuningRow(quantity=f"{cname} run {rname} {fld}", value=_fmt(run[fld], None),
                                          source=str(srcs.get(fld, camp.get("source", "?"))),
                                          key=f"{path.name}:campaigns.{cname}.runs.{rname}.{fld}",
                                          role=role, used_as=used, closure=closure))  # type: ignore[arg-type]
    return rows


_SIM_KEY = re.compile(r"\{([a-z_]+\.[a-z_]+)\}")  # {section.key} of data/simulation.toml in a used_as text


def _simulation_values() -> dict[str, str]:
    """``section.key`` -> value (as text) of the simulator's parameters (package data simulation.toml, read
    as data: the analysis does not import the simulation), so the rows quote the values in use."""
    raw = tomllib.loads(resources.files("na64ana").joinpath("data/simulation.toml").read_text())
    out = {}
    for sec, entries in raw.items():
        for key, val in entries.items() if isinstance(entries, dict) else ():
            v = val.get("value") if isinstance(val, dict) else val
            out[f"{sec}.{key}"] = _fmt(v, None)
    return out


def _fmt(value: Any, unc: Any) -> str:
    def one(v: Any) -> str:
        return f"{v:g}" if isinstance(v, float) else json.dumps(v) if isinstance(v, dict | list) else f"{v}"

    text = "[" + ", ".join(one(v) for v in value) + "]" if isinstance(value, list) else one(value)
    return text if unc is None else f"{text} +- {json.dumps(unc) if isinstance(unc, list) else unc}"
