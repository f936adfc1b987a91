"""Two-sided (band) limits in eps for the visible mode, A' -> e+ e- (X17).

Why a band: the signal count N(eps) = sum_runs EOT_r eff_r n_r(eps) rises like eps^4 at small eps (eps^2
production x eps^2 decay probability in the decay volume) and falls exponentially at large eps (the A'
decays inside the WCAL). A mass is excluded for every eps with N(eps) >= s_up, where s_up is the CLs upper
limit on the total signal count -- a set {eps_lo <= eps <= eps_hi}, possibly empty.

s_up comes from the package's exact small-count hybrid CLs (:mod:`na64ana.stats.cls`): a multi-run counting
model, one channel per run with its background, efficiency/EOT and shared A'-yield log-normal
uncertainties, exactly as :mod:`na64ana.stats.limits` builds it for the invisible mode. In the visible mode
the runs' signal *shares* depend on eps (the setups differ in geometry and beam energy), so s_up is
computed with the shares at the edge being solved for, and the edge is solved again with that s_up (two
passes; the shares are rounded to 0.05 so that CLs results are reused -- at zero observed events s_up
moves by < 0.1% over all shares). Edges: N - s_up is evaluated on a log-eps grid, every sign change is
refined with brentq in ln eps; the lower edge is the first crossing, the upper the last.

The visible yields summary (``"signature": "visible"``) lists runs with a ``setup`` each (a configuration
of ``data/visible_setup.toml``), EOT, efficiency, background and observed count; :func:`load_summary`
validates it strictly and :func:`band_limits` turns it into a limits record.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, cast

import numpy as np
from pydantic import (
    Field,
    ValidationError,
)
from scipy import optimize

from ..errors import InputError, from_validation
from ..physics import visible as vis
from . import cls as _cls
from .summaries import CountingChannel, CountingSummaryChecks

__all__ = [
    "BAND_KEYS",
    "CountingRun",
    "CountingSummary",
    "SupCache",
    "closed_region_edges",
    "EdgeSolver",
    "VisibleRun",
    "VisibleSummary",
    "band_limits",
    "band_point",
    "load_summary",
    "plot_band",
    "s_up",
    "validate_summary",
]

log = logging.getLogger("na64ana.stats")

# output key (lower edge) -> CLs quantile of s_up; the upper edge is the same key + "_upper"
BAND_KEYS = {"eps_obs": "obs", "eps_exp": "median", "eps_exp_m1": "m1", "eps_exp_p1": "p1",
             "eps_exp_m2": "m2", "eps_exp_p2": "p2"}
EPS_RANGE = (1e-7, 1.0)
GRID_PER_DECADE = 24
SHARE_ROUND = 0.05
X17_MASS_GeV = 0.0167


# --------------------------------------------------------------------------------------------------
# The visible yields summary


class VisibleRun(CountingChannel):
    """One run of a visible-mode summary; ``setup`` names its configuration in the setup file."""

    setup: str = Field(min_length=1, description="configuration name in visible_setup.toml")
    efficiency: float = Field(gt=0, le=1)
    notes: dict[str, str] | str | None = None


class VisibleSummary(CountingSummaryChecks):
    """The visible-mode yields summary (``signature: "visible"``)."""

    analysis: str
    signature: Literal["visible"]
    cross_section: Literal["etl", "ww"] = "etl"
    cl: float = Field(0.9, gt=0, lt=1)
    correlated: dict[str, float] = Field(default_factory=dict)
    setup_file: str | None = None
    runs: list[VisibleRun] = Field(min_length=1)
    masses_GeV: list[float] = Field(default_factory=list)
    notes: dict[str, str] | str | None = None


def validate_summary(data: Any, *, file: str | None = None,
                     setups: vis.VisibleSetups | None = None) -> VisibleSummary:
    """A :class:`VisibleSummary` from parsed JSON; every run's setup must exist in the setup file."""
    if not isinstance(data, Mapping):
        raise InputError("a visible summary must be a JSON object", file=file)
    try:
        summary = VisibleSummary.model_validate(data)
    except ValidationError as err:
        raise from_validation(err, file=file) from None
    setups = setups or _setups_for(summary, file)
    for i, r in enumerate(summary.runs):
        if r.setup not in setups.setups:
            raise InputError(f"unknown setup '{r.setup}' (known: {', '.join(sorted(setups.setups))})",
                             file=file, field=f"runs.{i}.setup")
    return summary


def _setups_for(summary: VisibleSummary, file: str | None) -> vis.VisibleSetups:
    if summary.setup_file is None:
        return vis.load_setups()
    p = Path(summary.setup_file)
    if not p.is_absolute() and file is not None:
        p = Path(file).parent / p
    return vis.load_setups(p)


def load_summary(path: str | Path) -> VisibleSummary:
    """Read and validate a visible summary JSON file (one-line InputError naming file and field)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", file=str(p)) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc.msg} (line {exc.lineno})", file=str(p)) from None
    return validate_summary(data, file=str(p))


# --------------------------------------------------------------------------------------------------
# s_up: the CLs upper limit on the total signal count


class CountingRun(Protocol):
    """What the counting model needs of a run (a channel): background, observed and uncertainties."""

    @property
    def background(self) -> float: ...
    @property
    def background_unc(self) -> float: ...
    @property
    def observed(self) -> int | None: ...
    @property
    def efficiency_unc(self) -> float: ...
    @property
    def eot_unc(self) -> float: ...


class CountingSummary(Protocol):
    """What :func:`s_up` needs of a summary: the runs (channels), the shared signal terms and the CL
    (the visible summary, the ALP summary of :mod:`na64ana.stats.coupling`)."""

    @property
    def runs(self) -> Sequence[CountingRun]: ...
    @property
    def correlated(self) -> dict[str, float]: ...
    @property
    def cl(self) -> float: ...


class _SupCache:
    """CLs limits on the total signal count per (rounded) share vector; one result serves all quantiles."""

    def __init__(self, summary: CountingSummary, method: str, share_round: float = SHARE_ROUND):
        self.summary = summary
        self.method = method
        self.share_round = share_round
        self._cache: dict[tuple[int, ...], _cls.LimitResult] = {}

    def result(self, shares: np.ndarray) -> _cls.LimitResult:
        key = tuple(int(round(x / self.share_round)) for x in shares / shares.sum())
        if key not in self._cache:
            q = np.maximum(np.asarray(key, dtype=float), 0.0)
            q = q / q.sum() if q.sum() > 0 else np.full(q.size, 1.0 / q.size)
            q = np.maximum(q, 1e-3)  # every channel keeps a sliver of signal (the model needs s > 0)
            self._cache[key] = s_up(self.summary, q / q.sum(), method=self.method)
        return self._cache[key]

    def value(self, shares: np.ndarray, quantile: str) -> float:
        res = self.result(shares)
        return res.mu_obs if quantile == "obs" else res.mu_exp[quantile]

    def __len__(self) -> int:
        return len(self._cache)


SupCache = _SupCache


def s_up(summary: CountingSummary, shares: Sequence[float] | np.ndarray, *, method: str = "exact"
         ) -> _cls.LimitResult:
    """CLs limits on mu for a total signal of 1 event split over the runs as ``shares``: mu = s_up.

    The model is the one of the invisible mode: per run a channel with its background (log-normal,
    background_unc/background), efficiency and EOT (per run), and the ``correlated`` signal terms shared by
    every run. Blinded runs use 0 observed events (the observed limit is then not reported)."""
    s = np.asarray(shares, dtype=float)
    s = s / s.sum()
    runs = list(summary.runs)
    model = _cls.CountingModel.build(
        s, [r.background for r in runs], [0 if r.observed is None else r.observed for r in runs],
        shared_rel=list(summary.correlated.values()),
        signal_rel=[[r.efficiency_unc, r.eot_unc] for r in runs],
        **_bkg_terms(runs))
    return _cls.limits(model, summary.cl, method=method)


def _bkg_terms(runs: Sequence[Any]) -> dict[str, Any]:
    """``background_rel`` (symmetric: the model's fast path) or ``background_kappa`` (any asymmetric)."""
    kappas = [_kappa(r) for r in runs]
    if all(isinstance(k, float) for k in kappas):
        return {"background_rel": [float(cast(float, k)) - 1.0 for k in kappas]}
    return {"background_kappa": kappas}


def _kappa(run: Any) -> float | tuple[float, float]:
    """The run's background log-normal kappa (1 + r, any r), or (hi, lo) for an asymmetric uncertainty."""
    if run.background <= 0:
        return 1.0
    k = run.background_kappa() if hasattr(run, "background_kappa") else run.background_unc / run.background
    if k is None:
        return 1.0
    if isinstance(k, dict):
        return (float(k["hi"]), float(k["lo"]))
    return 1.0 + float(k)


# --------------------------------------------------------------------------------------------------
# The band at one mass


@dataclass
class EdgeSolver:
    """N_r(eps) per run for one mass (vectorised over eps) and the crossings of N(eps) = s."""

    mass_GeV: float
    summary: VisibleSummary
    setups: vis.VisibleSetups

    def __post_init__(self) -> None:
        runs = self.summary.runs
        self._folds = [vis.decay_fold(self.mass_GeV, self.setups.setups[r.setup], setups=self.setups,
                                      xsec=self.summary.cross_section) for r in runs]
        self._scale = np.array([r.eot * r.efficiency for r in runs])
        self._crossings: dict[float, list[float]] = {}

    def per_run(self, eps: np.ndarray | float) -> np.ndarray:
        """Signal events per run, shape (runs, len(eps))."""
        e = np.atleast_1d(np.asarray(eps, dtype=float))
        return self._scale[:, None] * np.array([f(e) for f in self._folds])

    def total(self, eps: np.ndarray | float) -> np.ndarray:
        return self.per_run(eps).sum(axis=0)

    def crossings(self, s: float, grid: np.ndarray, n_grid: np.ndarray) -> list[float]:
        """All eps with N(eps) = s, bracketed on ``grid`` (N on it: ``n_grid``) and refined in ln eps."""
        if s in self._crossings:
            return self._crossings[s]
        f_grid = np.log(np.maximum(n_grid, 1e-300)) - math.log(s)
        idx = np.flatnonzero(np.sign(f_grid[:-1]) * np.sign(f_grid[1:]) < 0)

        def f(t: float) -> float:
            return math.log(max(float(self.total(math.exp(t))[0]), 1e-300)) - math.log(s)

        out = []
        for i in idx:
            lo, hi = math.log(grid[i]), math.log(grid[i + 1])
            out.append(math.exp(optimize.brentq(f, lo, hi, xtol=1e-10, rtol=1e-10)))
        self._crossings[s] = out
        return out


def _grid() -> np.ndarray:
    lo, hi = EPS_RANGE
    n = int(round(GRID_PER_DECADE * math.log10(hi / lo))) + 1
    return np.logspace(math.log10(lo), math.log10(hi), n)


def band_point(summary: VisibleSummary, mass: float, *, setups: vis.VisibleSetups | None = None,
               cache: _SupCache | None = None, method: str = "exact") -> dict[str, Any]:
    """Lower and upper eps edges at ``mass`` for the observed and expected (median, +-1, +-2 sigma) s_up.

    A quantile with no exclusion (N(eps) < s_up everywhere) gives None edges; the record says why."""
    setups = setups or vis.load_setups()
    cache = cache if cache is not None else _SupCache(summary, method)
    solver = EdgeSolver(float(mass), summary, setups)
    grid = _grid()
    per_run = solver.per_run(grid)
    n_grid = per_run.sum(axis=0)
    k_peak = int(np.argmax(n_grid))
    point: dict[str, Any] = {"mass_GeV": float(mass), "coupling": "eps",
                             "n_signal_max": float(n_grid[k_peak]), "eps_at_max": float(grid[k_peak])}
    s_used: dict[str, list[float | None]] = {}
    opened: set[str] = set()
    for key, q in BAND_KEYS.items():
        if q == "obs" and summary.blinded:
            point[key] = point[key + "_upper"] = None
            continue
        edges: list[float | None] = [None, None]
        s_pair: list[float | None] = [None, None]
        if n_grid[k_peak] > 0:
            s0 = cache.value(per_run[:, k_peak], q)
            for side in (0, 1):
                s = s0
                eps_edge: float | None = None
                for _ in range(2):  # shares at the edge -> s_up -> edge again
                    if not (math.isfinite(s) and n_grid[k_peak] > s):
                        eps_edge = None
                        break
                    cross = solver.crossings(s, grid, n_grid)
                    # N >= s_up at the end of the scanned range: that edge lies outside it (open)
                    open_end = n_grid[0] >= s if side == 0 else n_grid[-1] >= s
                    if open_end:
                        opened.add("lower" if side == 0 else "upper")
                    if not cross or open_end:
                        eps_edge = None
                        break
                    eps_edge = cross[0] if side == 0 else cross[-1]
                    s_new = cache.value(solver.per_run(eps_edge)[:, 0], q)
                    if math.isclose(s_new, s, rel_tol=1e-9):
                        break
                    s = s_new
                edges[side] = eps_edge
                s_pair[side] = s if eps_edge is not None else None
        point[key], point[key + "_upper"] = edges
        s_used[key] = s_pair
    point["s_up"] = s_used
    if opened:
        point["open_edges"] = sorted(opened)
        point["note"] = (f"the excluded band reaches the end of the scanned eps range {EPS_RANGE}: its "
                         f"{' and '.join(sorted(opened))} edge(s) are reported as None")
    if summary.blinded:
        point["blinded"] = True
    if point.get("eps_exp") is None and not opened:
        point["note"] = (f"no exclusion: the largest signal count {n_grid[k_peak]:.3g} (at eps = "
                         f"{grid[k_peak]:.3g}) is below s_up")
    for key in list(BAND_KEYS):
        for suffix in ("", "_upper"):
            point["coupling" + key.removeprefix("eps") + suffix] = point[key + suffix]
    return point


def band_limits(summary: VisibleSummary, masses: Sequence[float] | np.ndarray | None = None, *,
                setups: vis.VisibleSetups | None = None, method: str = "exact") -> dict[str, Any]:
    """The limits record of a visible summary: one band point per mass (default: the summary's masses)."""
    setups = setups or _setups_for(summary, None)
    masses = list(summary.masses_GeV if masses is None else masses)
    if not masses:
        raise InputError("no masses to scan (give masses or fill masses_GeV)", field="masses_GeV")
    cache = _SupCache(summary, method)
    t0 = time.perf_counter()
    points = []
    for m in masses:
        try:
            points.append(band_point(summary, float(m), setups=setups, cache=cache, method=method))
        except InputError as exc:  # e.g. a mass outside the k-factor table: reported per mass
            log.warning("mass %.4g GeV failed: %s", m, exc)
            points.append({"mass_GeV": float(m), "coupling": "eps", "error": str(exc)})
    return {
        "analysis": summary.analysis, "signature": "visible", "cl": summary.cl, "blinded": summary.blinded,
        "cross_section": summary.cross_section, "coupling": "eps",
        "method": ("exact-hybrid-cls s_up on the total signal count; band edges N(eps) = s_up "
                   "(brentq in ln eps)"),
        "runs": [{"name": r.name, "setup": r.setup, "eot": r.eot, "efficiency": r.efficiency,
                  "background": r.background, "observed": r.observed} for r in summary.runs],
        "points": points,
        "n_failed": sum("error" in p for p in points),
        "n_cls_evaluations": len(cache),
        "seconds": time.perf_counter() - t0,
    }


# --------------------------------------------------------------------------------------------------
# The same edges for any closed region (the ALP g_agg region of na64ana.stats.coupling)


def closed_region_edges(per_run: Callable[[np.ndarray], np.ndarray], grid: np.ndarray, cache: _SupCache, *,
                        blinded: bool, prefix: str = "coupling") -> dict[str, Any]:
    """Lower and upper edges of {x : N(x) >= s_up} on a log grid, as :func:`band_point` does for eps.

    ``per_run(x)`` gives the signal per channel, shape (channels, len(x)), for a coupling array ``x``;
    ``grid`` is the scanned couplings (increasing, log spaced); ``cache`` gives s_up per share vector.
    Keys: ``<prefix>_obs``, ``<prefix>_exp``, ``<prefix>_exp_m1`` ... each with an ``_upper`` twin;
    None where a quantile excludes nothing or the edge lies outside the grid (``open_edges``)."""
    n_grid_runs = per_run(grid)
    n_grid = n_grid_runs.sum(axis=0)
    k_peak = int(np.argmax(n_grid))
    memo: dict[float, list[float]] = {}

    def total(x: float) -> float:
        return float(per_run(np.array([x])).sum())

    def crossings(s: float) -> list[float]:
        if s not in memo:
            f_grid = np.log(np.maximum(n_grid, 1e-300)) - math.log(s)
            idx = np.flatnonzero(np.sign(f_grid[:-1]) * np.sign(f_grid[1:]) < 0)
            f = lambda t: math.log(max(total(math.exp(t)), 1e-300)) - math.log(s)  # noqa: E731
            memo[s] = [math.exp(optimize.brentq(f, math.log(grid[i]), math.log(grid[i + 1]), xtol=1e-10,
                                                rtol=1e-10)) for i in idx]
        return memo[s]

    point: dict[str, Any] = {"n_signal_max": float(n_grid[k_peak]), f"{prefix}_at_max": float(grid[k_peak])}
    s_used: dict[str, list[float | None]] = {}
    opened: set[str] = set()
    for key, q in BAND_KEYS.items():
        out_key = prefix + key.removeprefix("eps")
        if q == "obs" and blinded:
            point[out_key] = point[out_key + "_upper"] = None
            continue
        edges: list[float | None] = [None, None]
        s_pair: list[float | None] = [None, None]
        if n_grid[k_peak] > 0:
            s0 = cache.value(n_grid_runs[:, k_peak], q)
            for side in (0, 1):
                s, edge = s0, None
                for _ in range(2):  # shares at the edge -> s_up -> edge again
                    if not (math.isfinite(s) and n_grid[k_peak] > s):
                        edge = None
                        break
                    cross = crossings(s)
                    open_end = n_grid[0] >= s if side == 0 else n_grid[-1] >= s
                    if open_end:
                        opened.add("lower" if side == 0 else "upper")
                    if not cross or open_end:
                        edge = None
                        break
                    edge = cross[0] if side == 0 else cross[-1]
                    s_new = cache.value(per_run(np.array([edge]))[:, 0], q)
                    if math.isclose(s_new, s, rel_tol=1e-9):
                        break
                    s = s_new
                edges[side] = edge
                s_pair[side] = s if edge is not None else None
        point[out_key], point[out_key + "_upper"] = edges
        s_used[out_key] = s_pair
    point["s_up"] = s_used
    if opened:
        point["open_edges"] = sorted(opened)
        point["note"] = (f"the excluded region reaches the end of the scanned range [{grid[0]:.3g}, "
                         f"{grid[-1]:.3g}]: its {' and '.join(sorted(opened))} edge(s) are reported as None")
    elif point.get(f"{prefix}_exp") is None:
        point["note"] = (f"no exclusion: the largest signal count {n_grid[k_peak]:.3g} (at "
                         f"{grid[k_peak]:.3g}) is below s_up")
    if blinded:
        point["blinded"] = True
    return point


# --------------------------------------------------------------------------------------------------
# The figure


def plot_band(record: Mapping[str, Any], *, llabel: str = "Simulation", rlabel: str | None = None) -> Any:
    """The excluded band figure: :func:`na64ana.presentation.search_plots.plot_band` (moved there)."""
    from ..presentation.search_plots import plot_band as _plot

    return _plot(record, llabel=llabel, rlabel=rlabel)
