"""Background in the signal box from the side bands (brief Secs. 4.4, 6).

The dominant NA64 background (e- interactions upstream of the ECAL) has no MC that can be trusted, so it is
measured: the E_ECAL spectrum of side band C (E_HCAL < 1 GeV, E_ECAL above the box) is fitted with
f(E) = exp(p1 + p2 E) by a binned Poisson likelihood and integrated over the box [E_lo, E_box).
Uncertainty: statistical from the fit covariance (sampled), systematic from alternative shapes (exp of a
quadratic, power law), a shifted fit range and, when given, the HCAL zero-threshold variation (largest
deviation of each, added in quadrature). The exponential shape is validated where statistics are large
(E_HCAL > 10 GeV, 1 < E_ECAL < 80 GeV). Other components (dimuons, decays in flight, punch-through, ...)
come from an MC estimate when given, else from the published table scaled by the run's EOT fraction
(marked as such in ``source``).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import hist
import numpy as np
from iminuit import Minuit
from scipy import stats

from . import datasets, published
from .bookkeeping import provenance
from .errors import DataError, InputError
from .processing import outputs
from .records import (
    BackgroundNuisances,
    BackgroundRun,
    BackgroundTable,
    Component,
    SidebandFit,
    Upstream,
    Validation,
    ValueUnc,
)

log = logging.getLogger("na64ana.background")

_GL_X, _GL_W = np.polynomial.legendre.leggauss(6)
E_REF = 50.0  # GeV, reference energy of the parametrisations (decorrelates p1 and p2 in the fit)


def _f_exp(e, p):
    return np.exp(p[0] + p[1] * e)


def _f_exp2(e, p):
    return np.exp(p[0] + p[1] * e + p[2] * (e - E_REF) ** 2)


def _f_power(e, p):
    return np.exp(p[0]) * (np.maximum(e, 1e-9) / E_REF) ** p[1]


def _with_floor(f: Callable) -> Callable:
    def g(e, p):
        return f(e, p[:-1]) + p[-1]
    return g


MODELS: dict[str, tuple[Callable, int]] = {"exp": (_f_exp, 2), "exp2": (_f_exp2, 3), "power": (_f_power, 2)}
# "<model>_floor": the model plus a flat floor p[-1] >= 0 (events per GeV): the validation-region models,
# where hadron electroproduction in the target and pile-up add a soft spectrum under the steep exponential
MODELS.update({f"{k}_floor": (_with_floor(f), n + 1) for k, (f, n) in list(MODELS.items())})


@dataclass
class FitResult:
    """A side-band fit: everything needed to draw the curve and its band and to extrapolate.

    ``params`` follow :data:`MODELS` (for "exp": p1, p2 with dN/dE = exp(p1 + p2 E), events per GeV)."""

    model: str
    params: np.ndarray
    cov: np.ndarray
    fit_range: tuple[float, float]
    edges: np.ndarray
    counts: np.ndarray
    nll: float
    chi2: float
    ndf: int
    converged: bool
    pulls: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def density(self, e: np.ndarray | float, params: np.ndarray | None = None) -> np.ndarray:
        """dN/dE (events per GeV)."""
        return MODELS[self.model][0](np.asarray(e, dtype=float), self.params if params is None else params)

    def integral(self, lo: float, hi: float, params: np.ndarray | None = None) -> float:
        grid = np.linspace(lo, hi, max(2, int(math.ceil((hi - lo) / 1.0)) + 1))  # 1 GeV pieces: exact
        p = self.params if params is None else params
        return float(np.sum(_integrate(MODELS[self.model][0], grid, p)))

    def sample_params(self, n: int = 2000, seed: int = 7) -> np.ndarray:
        return np.random.default_rng(seed).multivariate_normal(self.params, self.cov, size=n)

    def band(self, e: np.ndarray, n: int = 2000, seed: int = 7, q: tuple[float, float] = (0.1587, 0.8413)):
        """(low, high) of dN/dE at ``e`` from the fit covariance (68% by default)."""
        f = MODELS[self.model][0]
        vals = np.array([f(np.asarray(e, float), p) for p in self.sample_params(n, seed)])
        return np.quantile(vals, q[0], axis=0), np.quantile(vals, q[1], axis=0)

    def extrapolate(self, lo: float, hi: float, n: int = 4000, seed: int = 7) -> tuple[float, float]:
        """Events in [lo, hi) and their statistical uncertainty (std over covariance samples)."""
        central = self.integral(lo, hi)
        samples = np.array([self.integral(lo, hi, p) for p in self.sample_params(n, seed)])
        return central, float(np.std(samples))

    def as_dict(self) -> dict[str, Any]:
        d = {"model": self.model, "params": self.params.tolist(), "cov": self.cov.tolist(),
             "fit_range": list(self.fit_range), "edges": self.edges.tolist(), "counts": self.counts.tolist(),
             "nll": self.nll, "chi2": self.chi2, "ndf": self.ndf, "converged": self.converged,
             "pulls": self.pulls.tolist(), "reference_energy_GeV": E_REF}
        if self.model in ("exp", "exp_floor"):
            d.update({"p1": float(self.params[0]), "p2": float(self.params[1]),
                      "p2_unc": float(math.sqrt(self.cov[1, 1]))})
        return d


def _integrate(f: Callable, edges: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Integral of f over each bin by 6-point Gauss-Legendre (exact enough for smooth shapes)."""
    lo, hi = edges[:-1], edges[1:]
    half, mid = 0.5 * (hi - lo), 0.5 * (hi + lo)
    e = mid[:, None] + half[:, None] * _GL_X[None]
    return np.sum(f(e, p) * _GL_W[None], axis=1) * half


def _as_counts(counts: Any, edges: Any | None) -> tuple[np.ndarray, np.ndarray]:
    if edges is None:  # a 1D hist.Hist
        return np.asarray(counts.values(), dtype=float), np.asarray(counts.axes[0].edges, dtype=float)
    c, e = np.asarray(counts, dtype=float), np.asarray(edges, dtype=float)
    if e.size != c.size + 1:
        raise ValueError("edges must have len(counts) + 1 entries")
    return c, e


def fit_sideband(counts: Any, edges: Any | None = None, *, model: str = "exp",
                 fit_range: tuple[float, float] | None = None) -> FitResult:
    """Binned Poisson likelihood fit of dN/dE_ECAL in ``fit_range`` (default: side band C, 50-80 GeV).

    ``counts`` is a 1D ``hist.Hist`` (then ``edges`` is None) or bin contents with ``edges``."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r} (choose {', '.join(MODELS)})")
    c, e = _as_counts(counts, edges)
    lo, hi = fit_range or (published.get("selection.signal_box_ecal_max_GeV"),
                           published.get("selection.sideband_c_fit_max_GeV"))
    sel = (e[:-1] >= lo - 1e-9) & (e[1:] <= hi + 1e-9)
    if not sel.any():
        raise ValueError(f"no bins inside the fit range {lo}-{hi} GeV")
    cb, eb = c[sel], np.append(e[:-1][sel], e[1:][sel][-1])
    if cb.sum() <= 0:
        raise ValueError(f"no events in the fit range {lo}-{hi} GeV")
    f, npar = MODELS[model]
    width = eb[-1] - eb[0]
    start = np.zeros(npar)
    start[0] = math.log(max(cb.sum(), 0.5) / width)
    floor = model.endswith("_floor")
    if model.removesuffix("_floor") != "power":
        start[1] = 0.3
        start[0] -= start[1] * E_REF  # exp(p1 + p2 E) around E_REF ~ mean density
    else:
        start[1] = 10.0

    def nll(*p):
        with np.errstate(over="ignore", invalid="ignore"):  # a trial step far off: 1e300 below
            mu = _integrate(f, eb, np.asarray(p))
        if not np.all(np.isfinite(mu)) or np.any(mu <= 0):
            return 1e300
        return float(np.sum(mu - cb * np.log(mu)))

    if floor:
        start[-1] = 1e-3 * cb.sum() / width
    m = Minuit(nll, *start)
    if floor:
        m.limits[npar - 1] = (0.0, None)
    m.errordef = Minuit.LIKELIHOOD
    m.strategy = 1
    m.tol = 1e-6  # the extrapolation over ~50 GeV amplifies small slope errors
    m.migrad()
    m.hesse()
    p = np.asarray(m.values)
    mu = _integrate(f, eb, p)
    with np.errstate(divide="ignore", invalid="ignore"):
        dev = 2 * (mu - cb + np.where(cb > 0, cb * np.log(cb / mu), 0.0))
    pulls = (cb - mu) / np.sqrt(np.maximum(mu, 1e-12))
    return FitResult(model, p, np.asarray(m.covariance), (float(lo), float(hi)), eb, cb, float(m.fval),
                     float(np.sum(dev)), int(cb.size - npar), bool(m.valid), pulls)


@dataclass
class UpstreamEstimate:
    """The upstream background in the box: ``value``, its statistical error ``stat`` (fit covariance,
    counted once) and the shape uncertainty as an asymmetric log-normal ``kappa_up``/``kappa_down`` built in
    log space from the alternatives (:func:`shape_kappa`), one nuisance common to all runs. ``syst_up`` /
    ``syst_down`` are its absolute widths, ``syst`` the larger (the symmetric summary number)."""

    value: float
    stat: float
    syst: float
    syst_parts: dict[str, float]
    fit: FitResult
    alternatives: dict[str, dict[str, Any]]
    kappa_up: float = 1.0
    kappa_down: float = 1.0

    @property
    def unc(self) -> float:
        return math.hypot(self.stat, self.syst)

    @property
    def syst_up(self) -> float:
        return self.value * (self.kappa_up - 1.0)

    @property
    def syst_down(self) -> float:
        return self.value * (1.0 - self.kappa_down)

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "stat": self.stat, "syst": self.syst, "unc": self.unc,
                "syst_parts": self.syst_parts, "alternatives": self.alternatives,
                "shape_kappa_up": self.kappa_up, "shape_kappa_down": self.kappa_down,
                "syst_up": self.syst_up, "syst_down": self.syst_down}


def shape_kappa(value: float, alternatives: Sequence[float]) -> tuple[float, float]:
    """(kappa_up, kappa_down) of the shape nuisance from alternative extrapolations (issue 14 item 2).

    In log space d_i = ln(alt_i / value); up = sqrt(sum max(d_i, 0)^2), down = sqrt(sum min(d_i, 0)^2);
    kappa_up = exp(up), kappa_down = exp(-down). Always defined (alternatives > 0) and never capped: an
    alternative 10x below the nominal gives kappa_down = 0.1, not a symmetric width that would reach below
    zero. Non-positive or non-finite alternatives are skipped (a fit that failed is recorded, not used)."""
    if not (value > 0 and math.isfinite(value)):
        return 1.0, 1.0
    d = [math.log(a / value) for a in alternatives if a is not None and math.isfinite(a) and a > 0]
    up = math.sqrt(sum(x * x for x in d if x > 0))
    down = math.sqrt(sum(x * x for x in d if x < 0))
    return math.exp(up), math.exp(-down)


def estimate_upstream(counts: Any, edges: Any | None = None, *, box: tuple[float, float] | None = None,
                      fit_range: tuple[float, float] | None = None,
                      alt_models: tuple[str, ...] = ("exp2", "power"), range_shift: float = 5.0,
                      threshold_variations: Mapping[str, Any] | None = None,
                      validation: Any | None = None) -> UpstreamEstimate:
    """Upstream-interaction background in the box from side band C, with stat and shape uncertainties.

    Statistical: the spread of the extrapolation over the fit covariance (once). Shape: the alternative
    functions (``alt_models``) and, when given, the HCAL zero-threshold variations
    (``threshold_variations``: {label: side-band histogram (hist or (counts, edges))}), combined in log space
    into an asymmetric log-normal (:func:`shape_kappa`). ``validation``: the validation-region histogram
    (hist or (counts, edges)); an alternative function it rejects (goodness-of-fit p < 0.01 of the function
    plus the contamination floor in :func:`validation_fit_range`) is recorded with ``admitted: false`` and
    left out of the shape nuisance. The shifted fit ranges are recorded but not added: the same side-band
    events refitted re-measure the statistical error (it would be counted twice)."""
    box = box or (0.0, published.get("selection.signal_box_ecal_max_GeV"))
    nominal = fit_sideband(counts, edges, model="exp", fit_range=fit_range)
    value, stat = nominal.extrapolate(*box)
    alts: dict[str, dict[str, Any]] = {}
    parts: dict[str, float] = {}

    def _try(label: str, fn: Callable[[], FitResult]) -> float | None:
        try:
            r = fn()
            v = r.integral(*box)
            alts[label] = {"value": v, "model": r.model, "fit_range": list(r.fit_range),
                           "chi2": r.chi2, "ndf": r.ndf}
            return v
        except (ValueError, RuntimeError) as exc:
            alts[label] = {"error": str(exc)}
            return None

    shape: list[float | None] = []
    for m in alt_models:
        label = f"shape_{m}"
        v = _try(label, partial(fit_sideband, counts, edges, model=m, fit_range=fit_range))
        if v is not None and validation is not None:
            vc, ve = (validation, None) if not isinstance(validation, tuple) else validation
            try:
                vf = fit_sideband(vc, ve, model=f"{m}_floor", fit_range=validation_fit_range(nominal))
                dev, ndf, _ = merged_gof(vf)
                p = _chi2_sf(dev, ndf)
            except (ValueError, RuntimeError):
                p = None
            admitted = p is None or p >= VALIDATION_FAIL_P
            alts[label].update(validation_p_value=p, admitted=admitted)
            if not admitted:
                v = None
        shape.append(v)
    parts["shape"] = max((abs(v - value) for v in shape if v is not None), default=0.0)
    lo, hi = nominal.fit_range
    ranges = [_try(f"range_{lo + range_shift:g}-{hi:g}",
                   lambda: fit_sideband(counts, edges, model="exp", fit_range=(lo + range_shift, hi))),
              _try(f"range_{lo:g}-{hi - range_shift:g}",
                   lambda: fit_sideband(counts, edges, model="exp", fit_range=(lo, hi - range_shift)))]
    parts["fit_range"] = max((abs(v - value) for v in ranges if v is not None), default=0.0)
    for label in (f"range_{lo + range_shift:g}-{hi:g}", f"range_{lo:g}-{hi - range_shift:g}"):
        if "value" in alts[label]:
            alts[label]["admitted"] = False  # information: re-measures the statistical error
    thresholds: list[float | None] = []
    if threshold_variations:
        for label, h in threshold_variations.items():
            hc, he = (h, None) if not isinstance(h, tuple) else h
            thresholds.append(_try(f"hcal_threshold_{label}",
                                   partial(fit_sideband, hc, he, model="exp", fit_range=fit_range)))
        parts["hcal_threshold"] = max((abs(v - value) for v in thresholds if v is not None), default=0.0)
    k_up, k_down = shape_kappa(value, [v for v in shape + thresholds if v is not None])
    syst = max(value * (k_up - 1.0), value * (1.0 - k_down))
    return UpstreamEstimate(value, stat, syst, parts, nominal, alts, k_up, k_down)


VALIDATION_FAIL_P, VALIDATION_WARN_P = 0.01, 0.05  # goodness of fit of the exponential (p-value)
VALIDATION_FAIL_SIGMA, VALIDATION_WARN_SIGMA = 3.0, 2.0  # |slope(validation) - slope(side band C)| / sigma
VALIDATION_MODEL = "exp_floor"  # the exponential (slope compared with side band C) plus a flat contamination
GOF_MIN_EXPECTED = 5.0  # bins merged (from the low-energy end) until each expects >= 5 events


class ValidationFailed(DataError):
    """The validation region contradicts the side-band-C shape (raised only with ``strict=True``)."""


def validation_fit_range(sideband_fit: FitResult | None) -> tuple[float, float]:
    """E_ECAL range of the validation fit: the published validation region (1-80 GeV, E_HCAL > 10 GeV)
    from the side-band-C fit's lower edge (the box edge) up.

    Why not from 1 GeV: the region holds two processes, the upstream interactions whose hadrons reach the
    HCAL (the mechanism of side band C, with its slope: what is validated) and hadron electroproduction in
    the target (a soft, nearly flat E_ECAL spectrum). Below the box edge the steep upstream exponential is
    ~e^-9 of its value at 80 GeV and the contamination dominates, so a single exponential from 1 GeV tests
    the contamination, not the extrapolated shape. The validation is then: the same mechanism in an
    independent sample (E_HCAL > 10 GeV instead of < 1 GeV) has the side-band slope and an exponential
    shape. It cannot test the shape below the box edge (nothing can, the box is blind)."""
    lo, hi = (float(x) for x in published.get("selection.validation_ecal_range_GeV"))
    if sideband_fit is not None:
        lo = max(lo, float(sideband_fit.fit_range[0]))
    return lo, hi


def merged_gof(fit: FitResult, min_expected: float = GOF_MIN_EXPECTED) -> tuple[float, int, int]:
    """(deviance, ndf, bins) of ``fit`` on bins merged until each expects >= ``min_expected`` events:
    the Poisson deviance of sparse bins is not chi2-distributed (the p-value of the raw 0.5 GeV bins is
    wrong in both directions). Merging goes from the low-energy end (the falling exponential's sparse
    tail); a remainder below the minimum joins the last group."""
    mu = _integrate(MODELS[fit.model][0], fit.edges, fit.params)
    groups: list[tuple[float, float]] = []
    acc_mu = acc_n = 0.0
    for m, n in zip(mu, fit.counts, strict=True):
        acc_mu, acc_n = acc_mu + float(m), acc_n + float(n)
        if acc_mu >= min_expected:
            groups.append((acc_mu, acc_n))
            acc_mu = acc_n = 0.0
    if acc_mu > 0 or acc_n > 0:
        if groups:
            g_mu, g_n = groups.pop()
            groups.append((g_mu + acc_mu, g_n + acc_n))
        else:
            groups.append((acc_mu, acc_n))
    m_arr, n_arr = np.array([g[0] for g in groups]), np.array([g[1] for g in groups])
    with np.errstate(divide="ignore", invalid="ignore"):
        dev = 2 * (m_arr - n_arr + np.where(n_arr > 0, n_arr * np.log(n_arr / m_arr), 0.0))
    return float(np.sum(dev)), int(len(groups) - len(fit.params)), len(groups)


def verdict(p_value: float | None, slope_diff_sigma: float | None) -> str:
    """"fail" if p < 0.01 or |slope difference| > 3 sigma, "warn" if p < 0.05 or > 2 sigma, else "ok"
    (a missing number does not count against the fit)."""
    sd = abs(slope_diff_sigma) if slope_diff_sigma is not None else 0.0
    p = p_value if p_value is not None else 1.0
    if p < VALIDATION_FAIL_P or sd > VALIDATION_FAIL_SIGMA:
        return "fail"
    if p < VALIDATION_WARN_P or sd > VALIDATION_WARN_SIGMA:
        return "warn"
    return "ok"


def validate_shape(counts: Any, edges: Any | None = None, *, sideband_fit: FitResult | None = None,
                   fit_range: tuple[float, float] | None = None, run: str = "") -> dict[str, Any]:
    """Exponential fit in the validation region (E_HCAL > 10 GeV, E_ECAL in :func:`validation_fit_range`)
    and a verdict that can fail. The model is the exponential plus a flat floor (``VALIDATION_MODEL``):
    electroproduction in the target and pile-up add a soft spectrum that, under a single exponential, would
    pull the slope (``contamination_events`` records its size); the slope compared with side band C is the
    exponential's.

    Reports the fit, chi2/ndf and p-value of the Poisson deviance on merged bins (:func:`merged_gof`), the
    largest pull, and given the side-band-C fit the slope difference in sigma; ``flag`` = "ok" | "warn" |
    "fail" (:func:`verdict`), the thresholds, both slopes and a one-line ``message``."""
    rng = fit_range or validation_fit_range(sideband_fit)
    thresholds = {"fail_p_value": VALIDATION_FAIL_P, "warn_p_value": VALIDATION_WARN_P,
                  "fail_slope_sigma": VALIDATION_FAIL_SIGMA, "warn_slope_sigma": VALIDATION_WARN_SIGMA}
    try:
        r = fit_sideband(counts, edges, model=VALIDATION_MODEL, fit_range=rng)
    except ValueError as exc:  # e.g. no events in the fit range: the check cannot be made, and says so
        return {"flag": "warn", "thresholds": thresholds, "fit_range": [float(x) for x in rng],
                "message": f"validation region{' run ' + run if run else ''}: not checked ({exc}): WARNING"}
    dev, ndf, nbins = merged_gof(r)
    p_value = _chi2_sf(dev, ndf)
    out: dict[str, Any] = {"fit": r.as_dict(), "chi2_ndf": dev / ndf if ndf > 0 else None,
                           "max_abs_pull": float(np.max(np.abs(r.pulls))) if r.pulls.size else None,
                           "p_value": p_value, "gof_bins": nbins, "fit_range": [float(x) for x in rng],
                           "slope": float(r.params[1]), "slope_unc": float(math.sqrt(r.cov[1, 1]))}
    sd = None
    if sideband_fit is not None and sideband_fit.model == "exp":
        d = r.params[1] - sideband_fit.params[1]
        s = math.sqrt(r.cov[1, 1] + sideband_fit.cov[1, 1])
        sd = float(d / s) if s > 0 else None
        out.update(slope_diff_sigma=sd, sideband_slope=float(sideband_fit.params[1]),
                   sideband_slope_unc=float(math.sqrt(sideband_fit.cov[1, 1])))
    flag = verdict(p_value, sd)
    out["flag"] = flag
    out["thresholds"] = thresholds
    slope_txt = f"slope {r.params[1]:.3f} +- {math.sqrt(r.cov[1, 1]):.3f}/GeV"
    if sd is not None:
        slope_txt += (f" vs side band C {sideband_fit.params[1]:.3f} +- "  # type: ignore[union-attr]
                      f"{math.sqrt(sideband_fit.cov[1, 1]):.3f} ({sd:+.1f} sigma)")  # type: ignore[union-attr]
    out["contamination_events"] = (float(r.params[-1]) * (rng[1] - rng[0]) if r.model.endswith("_floor")
                                   else 0.0)
    gof_txt = (f"chi2/ndf {dev:.1f}/{ndf} (p = {p_value:.2g})" if p_value is not None
               else "goodness of fit not defined (too few events)")
    hcal_min = published.get("selection.validation_hcal_min_GeV")
    out["message"] = (f"validation region{' run ' + run if run else ''} (E_HCAL > {hcal_min:g} GeV, "
                      f"E_ECAL {rng[0]:g}-{rng[1]:g} GeV): {slope_txt}, {gof_txt}: {VERDICT_WORDS[flag]}")
    return out


VERDICT_WORDS = {"ok": "OK", "warn": "WARNING", "fail": "FAILED"}


def _chi2_sf(x: float, ndf: int) -> float | None:
    return float(stats.chi2.sf(x, ndf)) if ndf > 0 else None


_OTHER = ("dimuon", "decay_in_flight", "target_interactions", "hadron_loss", "punch_through",
          "accidental_sr_tag")


def published_components(campaign: str, eot_fraction: float) -> dict[str, Component]:
    """Non-upstream components from the published table of ``campaign`` scaled by the run's EOT fraction."""
    section = published.table().get("background", {}).get(campaign, {})
    out = {}
    for name in _OTHER:
        if name not in section:
            continue
        ent = section[name]
        limit = bool(ent.get("limit", False))
        value = ent["value"] * eot_fraction
        out[name] = Component(value=value, unc=value if limit else ent.get("unc", 0.0) * eot_fraction,
                              limit=limit,
                              source=f"published {ent['source']} x EOT fraction {eot_fraction:.3f} "
                                     "(no MC estimate)" + (LIMIT_NOTE if limit else ""))
    return out


LIMIT_NOTE = "; an upper limit, counted as value = limit with 100% uncertainty"


def counted(component: Component) -> tuple[float, float]:
    """(value, uncertainty) a component adds to the total: an upper limit (``limit``) counts as value =
    limit with a 100% uncertainty, as the published totals do (S003 Table I: 0.024 + 0.02 + 0.43 + 0.044
    + 0.01 = 0.53 +- 0.17 with the two limits at 100%; issue 14 item 4). Leaving limits out made the total
    low by construction."""
    if component.limit:
        return component.value, component.value
    return component.value, float(component.unc or 0.0)


def run_table(run: str, upstream: UpstreamEstimate, *, components: Mapping[str, Component],
              validation: Mapping[str, Any] | None = None) -> BackgroundRun:
    """One run of background.json: upstream + other components, total (an upper limit counts as value =
    limit +- 100%, see :func:`counted`) and its ``nuisances``: the uncorrelated part (upstream statistics and
    the other components in quadrature) and the upstream shape (asymmetric, common to all runs).
    ``total.unc`` is the symmetric summary: uncorrelated (+) the larger shape side."""
    comps = {"upstream": Component(value=upstream.value, unc=upstream.unc, limit=False,
                                   source="side-band-C exponential fit extrapolated into the box"),
             **components}
    others = [counted(c) for c in components.values()]
    total = upstream.value + sum(v for v, _ in others)
    uncorrelated = math.sqrt(upstream.stat ** 2 + sum(u * u for _, u in others))
    nuis = BackgroundNuisances(uncorrelated=uncorrelated, shape_up=upstream.syst_up,
                               shape_down=upstream.syst_down, shape_kappa_up=upstream.kappa_up,
                               shape_kappa_down=upstream.kappa_down)
    unc = math.hypot(uncorrelated, upstream.syst)  # symmetric summary number: the larger shape side
    return BackgroundRun(run=run, fit=SidebandFit.model_validate(upstream.fit.as_dict()),
                         upstream=Upstream.model_validate(upstream.as_dict()), components=comps,
                         total=ValueUnc(value=total, unc=unc), nuisances=nuis,
                         validation=Validation.model_validate(validation or {}))


def _slice_run(h: Any, key: str) -> Any:
    return h[{"run": key}]


def box_edge(run_dir: str | Path, key: str) -> float:
    """E_ECAL box edge the run stage used for ``key`` (per-run overrides), else the published one.

    Why: the fit range starts and the extrapolation ends at this edge; a campaign that moves the box must
    not be extrapolated into the published 50 GeV box."""
    try:
        stages = json.loads((Path(run_dir) / "provenance.json").read_text())["stages"]
        return float(stages["run"]["selections"][key]["box"]["ecal_max"])
    except (OSError, KeyError, TypeError, ValueError):
        return float(published.get("selection.signal_box_ecal_max_GeV"))


def reference_eot(campaign: str, fallback: float) -> float:
    """EOT the published background table refers to (``exposure.<campaign>_eot``), else ``fallback``.

    Why: a reduced-EOT simulation keeps the per-EOT rates, so the published components must scale with
    run EOT / published exposure, not with the run's share of a (reduced) campaign."""
    try:
        return float(published.get(f"exposure.{campaign}_eot"))
    except KeyError:
        return fallback


def skipped_inputs(run_dir: str | Path) -> tuple[dict[str, float], dict[str, list[str]]]:
    """EOT and paths of the input files a run skipped, per dataset key (from its metrics.json).

    Why: the normalisation of every later stage must be the EOT actually processed. A run output without
    these fields (older, or nothing skipped) skipped nothing."""
    path = Path(run_dir) / "metrics.json"
    try:
        metrics = json.loads(path.read_text())
    except FileNotFoundError:
        return {}, {}
    eot = {str(k): float(v) for k, v in (metrics.get("eot_skipped") or {}).items()}
    files: dict[str, list[str]] = {}
    for f in metrics.get("skipped_files") or []:
        files.setdefault(str(f["key"]), []).append(str(f["path"]))
    return eot, files


DEFAULT_THRESHOLDS = (0.5, 2.0)  # GeV: alternative HCAL zero thresholds of the systematic


def compute(run_dir: str | Path, datasets_file: str | Path, *,
            thresholds: Sequence[float] = DEFAULT_THRESHOLDS, strict_validation: bool = False
            ) -> BackgroundTable:
    """The background table for every data run of a ``na64ana run`` output folder (reads, never writes).

    Upstream from the side-band-C fit starting at the run's own box edge (:func:`box_edge`), HCAL-threshold
    variations from ``plane_final`` (the same cuts as side band C, only the threshold differs), shape
    validation in the validation region, and the published non-upstream components scaled by the run's
    EOT over the exposure of the published table (:func:`reference_eot`).

    The run's EOT is the one processed: datasets.json minus the EOT of input files the run stage skipped
    (``--on-bad-file skip``; ``eot_skipped`` in its metrics.json). Each run entry records ``eot``,
    ``eot_skipped`` and ``skipped_files``, and :func:`na64ana.summary.compute` takes the EOT from there.

    A validation region that fails (:func:`validate_shape`: ``validation.flag``) is a warning in the log
    and a recorded flag; ``strict_validation`` makes it an error (:class:`ValidationFailed`).
    """
    run_dir = Path(run_dir)
    sc = outputs.load_hist(run_dir, "ecal_sideband_c")
    skipped_eot, skipped_files = skipped_inputs(run_dir)
    names = outputs.list_hists(run_dir)
    plane = outputs.load_hist(run_dir, "plane_final") if "plane_final" in names else None
    val = outputs.load_hist(run_dir, "ecal_validation") if "ecal_validation" in names else None
    run_out = outputs.load_run(run_dir)
    ds = datasets.load(datasets_file)
    runs: list[BackgroundRun] = []
    campaign, blinded = None, True
    for key in sc.axes["run"]:
        rec = run_out.cutflows[key]
        if rec.kind == "mc":
            continue
        campaign, blinded = rec.campaign, rec.blinded
        camp = ds.campaign(campaign, file=str(datasets_file))
        if rec.run not in camp.runs:
            raise InputError(f"run '{rec.run}' not in campaign '{campaign}'", file=str(datasets_file))
        skipped = float(skipped_eot.get(key, 0.0))
        eot = camp.runs[rec.run].eot - skipped
        if eot <= 0:
            raise DataError(f"run '{rec.run}': the skipped input files hold {skipped:.4g} EOT, not less "
                            f"than the run's {camp.runs[rec.run].eot:.4g} in datasets.json",
                            file=str(run_dir / "metrics.json"), field=f"eot_skipped.{key}")
        frac = eot / reference_eot(campaign, camp.total_eot)
        edge = box_edge(run_dir, key)
        variations = {}
        if plane is not None:
            p = _slice_run(plane, key)
            for t in thresholds:
                variations[f"{t:g}GeV"] = p[{"hcal": slice(None, hist.loc(t), sum)}]
        val_run = _slice_run(val, key) if val is not None else None
        up = estimate_upstream(_slice_run(sc, key), box=(0.0, edge),
                               fit_range=(edge, float(published.get("selection.sideband_c_fit_max_GeV"))),
                               threshold_variations=variations or None,
                               validation=val_run if val_run is not None and val_run.values().sum() > 0
                               else None)
        validation = (validate_shape(_slice_run(val, key), sideband_fit=up.fit, run=rec.run)
                      if val is not None and _slice_run(val, key).values().sum() > 0 else {})
        if validation.get("flag") in ("warn", "fail"):
            log.warning("%s", validation["message"])
            if strict_validation and validation["flag"] == "fail":
                raise ValidationFailed(validation["message"], file=str(run_dir),
                                       field=f"validation.{rec.run}")
        elif validation:
            log.info("%s", validation["message"])
        entry = run_table(rec.run, up, components=published_components(campaign, frac), validation=validation)
        runs.append(entry.model_copy(update={"box_ecal_max_GeV": edge, "eot": eot, "eot_skipped": skipped,
                                             "skipped_files": skipped_files.get(key, [])}))
        log.info("run %s: upstream %.4f +- %.4f (stat) +- %.4f (syst); total %.4f +- %.4f", rec.run,
                 up.value, up.stat, up.syst, runs[-1].total.value, runs[-1].total.unc)
    return BackgroundTable(campaign=campaign, blinded=blinded, runs=runs)


def run_stage(run_dir: str | Path, datasets_file: str | Path, out: str | Path, *,
              thresholds: Sequence[float] = DEFAULT_THRESHOLDS, strict_validation: bool = False
              ) -> BackgroundTable:
    """The background stage: :func:`compute`, then ``out/background.json`` and its provenance (the run
    output and datasets file read, with their hashes; the blinding of the data it was made from)."""
    clock = provenance.Clock()
    out = provenance.prepare_outdir(out, stage="background")
    table = compute(run_dir, datasets_file, thresholds=thresholds, strict_validation=strict_validation)
    table.dump(out / BackgroundTable.file_name)
    provenance.write(out, "background", inputs=[run_dir, datasets_file], outputs=[BackgroundTable.file_name],
                     blinding=table.blinding, metrics=clock.metrics(), run_dir=str(run_dir),
                     thresholds=[float(t) for t in thresholds])
    log.info("wrote %s", out / BackgroundTable.file_name)
    return table


def table_from_run(run_dir: str | Path, datasets_file: str | Path, *,
                   thresholds: Sequence[float] = DEFAULT_THRESHOLDS) -> dict[str, Any]:
    """background.json content as a plain dict (``compute(...).to_json()``; kept for notebooks)."""
    return compute(run_dir, datasets_file, thresholds=thresholds).to_json()
