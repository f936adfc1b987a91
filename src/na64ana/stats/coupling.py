"""Limits on any model's coupling from the missing-energy data: vector mediators and ALPs.

Why: one data set constrains many mediators (brief_extensions 5). The statistics are those of the dark-
photon search -- a CLs upper limit s_up on the total signal count -- and only the signal per unit
coupling changes, so this module turns s_up (or a published eps limit) into a limit on the model's
coupling. Two kinds of result:

**Vector mediators** (L_mu - L_tau, B-L, any :class:`~na64ana.physics.models.VectorMediator`). Production
is the dark photon's with eps -> eps_eff(m) and the signal needs an invisible decay, so at mass m

    N_sig(model, g) = eps_eff(g, m)^2 BR_inv(model; g, m) Y_A'(m) sum_runs EOT_r eff_r(m),

with Y_A'(m) the dark-photon yield per EOT at eps = 1 (bremsstrahlung, optionally annihilation). The
dark-photon limit solves eps_lim^2 BR_inv(A') Y_A' sum = s_up (BR_inv(A') = 1 for the A' with the usual
alpha_D >> alpha eps^2), so the model's limit g_lim(m) solves

    eps_eff(g_lim, m)^2 BR_inv(model; g_lim, m) = eps_lim(m)^2 BR_inv(A').

eps_eff is linear in g (eps_eff = kappa(m) g: kappa = 1/e for a tree electron coupling g, the loop
factor ~1/69.3 for L_mu - L_tau at small m). When BR_inv does not depend on g (models whose couplings are
all proportional to g: L_mu - L_tau, B-L, a user vector with c_chi but no fixed alpha_D)
g_lim = eps_lim sqrt(BR_inv(A')/BR_inv(model)) / kappa; otherwise (a fixed alpha_D next to visible
channels) g^2 BR_inv(g) is increasing in g and is solved with brentq in ln g. BR_inv = 0 (no neutrino or
chi coupling) means no invisible signal at all: an error naming the field. [APPROX] visible decays count
as lost signal whatever the lifetime (they fail the veto/HCAL cuts); decays of a long-lived vector to
visible particles behind the HCAL are neglected.

**ALPs** (g_agg, Primakoff). The signal depends on g_agg through the yield (~g^2) and the decay position,
N(g) = sum_runs EOT_r eff_r(m) N_region(r)(g) (:class:`na64ana.physics.alp.AlpYield`), so the excluded set
is closed: its lower edge comes from the yield, the upper from decays before the region. Edges are solved
on a log grid with :func:`na64ana.stats.band.closed_region_edges` (the visible-band algorithm); s_up is
the same exact hybrid CLs with one channel per run and region.

The ``model`` block of a summary (``{"name": "lmu_ltau" | "b_l" | "vector" | "alp_photon" | ...,
<parameters>, "production": [...]}``) is validated by :func:`from_spec` with one-line errors.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)
from scipy import optimize

from ..datasets import read_json
from ..errors import InputError, from_validation
from ..physics import alp as alp_physics
from ..physics import models, yields
from ..physics.models import AlpPhoton, VectorMediator
from ..summary import MassCurve, Summary
from ..summary import validate as validate_summary
from . import band
from .summaries import CountingChannel, CountingSummaryChecks

__all__ = [
    "ALP_GRID",
    "ALP_MODELS",
    "KEYS",
    "AlpRun",
    "AlpSummary",
    "ModelBlock",
    "alp_limits",
    "coupling_from_eps",
    "from_spec",
    "limits_from_summary",
    "split_summary",
    "vector_limits",
]

log = logging.getLogger("na64ana.stats")

ALP_MODELS = ("alp_photon",)
#: output key -> CLs quantile ("obs" or an expected quantile of na64ana.stats.cls.QUANTILES)
KEYS = {
    "coupling_obs": "obs",
    "coupling_exp": "median",
    "coupling_exp_m1": "m1",
    "coupling_exp_p1": "p1",
    "coupling_exp_m2": "m2",
    "coupling_exp_p2": "p2",
}
#: g_agg grid of the closed-region scan (GeV^-1): range and points per decade
ALP_GRID = (1e-7, 1e2, 24)
VECTOR_SHARE_ROUND = 0.01
_RESERVED = ("name", "production")
_DEFAULT_MASSES = np.geomspace(1e-3, 1.0, 31)


# --------------------------------------------------------------------------------------------------
# The model block


class ModelBlock(BaseModel):
    """``{"name": ..., "production": [...], <model parameters>}``; parameters checked by :func:`from_spec`."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1, description="registered model: na64ana.physics.models.available()")
    production: list[Literal["brem", "annihilation", "primakoff"]] | None = Field(
        None, description="production mechanisms (default: brem for vectors, primakoff for ALPs)"
    )

    @property
    def parameters(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


def _limited_field(model_cls: type) -> str:
    return str(model_cls.limited_coupling)  # type: ignore[attr-defined]


def from_spec(
    spec: Mapping[str, Any],
    *,
    masses: Sequence[float] | np.ndarray | None = None,
    e0: float = 100.0,
    file: str | None = None,
    where: str = "model",
) -> VectorMediator | AlpPhoton:
    """The model of a summary's ``model`` block at unit limited coupling; one-line InputErrors naming the
    field: unknown model or parameter, the limited coupling given as a parameter, couplings that make
    BR_inv zero, a vector with neither electron nor muon coupling (no production on an electron beam),
    an ALP mass no shower photon can produce (E_gamma > 2 m_a needs m_a < E0/2).

    Examples:
        >>> from na64ana.stats import coupling
        >>> coupling.from_spec({"name": "b_l", "neutrinos": "majorana"}).neutrinos
        'majorana'
        >>> coupling.from_spec({"name": "lmu_ltau", "g": 1e-3})
        Traceback (most recent call last):
        ...
        na64ana.errors.InputError: model.g: 'g' is the limited coupling of 'lmu_ltau', not a parameter
    """
    if not isinstance(spec, Mapping):
        raise InputError("the model block must be an object with a 'name'", file=file, field=where)
    try:
        block = ModelBlock.model_validate(spec)
    except ValidationError as err:
        e = from_validation(err)
        raise InputError(e.message, file=file, field=f"{where}.{e.field}" if e.field else where) from None
    if block.name not in models.available():
        raise InputError(
            f"unknown model '{block.name}' (choose one of {', '.join(models.available())})",
            file=file,
            field=f"{where}.name",
        )
    params = block.parameters
    cls = type(models.get(block.name))
    limited = _limited_field(cls)
    if limited in params:
        raise InputError(
            f"'{limited}' is the limited coupling of '{block.name}', not a parameter",
            file=file,
            field=f"{where}.{limited}",
        )
    is_alp = block.name in ALP_MODELS
    if block.production is not None:
        bad = [p for p in block.production if (p == "primakoff") != is_alp]
        if bad:
            raise InputError(
                f"production '{bad[0]}' does not make a{'n ALP' if is_alp else ' vector'}",
                file=file,
                field=f"{where}.production",
            )
    if block.name == "vector" and params.get("c_chi", 0) and "alpha_d" not in params:
        params["alpha_d"] = 0.0  # chi coupled through c_chi g only: a pure coupling-ratio model
    try:
        model = models.get(block.name, **params)
    except InputError as err:
        raise InputError(
            err.message, file=file, field=f"{where}.{err.field}" if err.field else where
        ) from None
    except (TypeError, ValueError) as exc:
        raise InputError(f"bad parameter ({exc})", file=file, field=where) from None
    m = np.atleast_1d(np.asarray(_DEFAULT_MASSES if masses is None else masses, dtype=float))
    if isinstance(model, AlpPhoton):
        too_heavy = np.flatnonzero(2 * m >= e0)
        if too_heavy.size:
            i = int(too_heavy[0])
            raise InputError(
                f"m_a = {m[i]:g} GeV: no photon of the {e0:g} GeV shower can produce it (Primakoff "
                f"needs E_gamma > 2 m_a)",
                file=file,
                field=f"masses_GeV.{i}",
            )
        return model
    if block.name == "vector" and params.get("c_e", 0) == 0 and params.get("c_mu", 0) == 0:
        raise InputError(
            "a vector with neither electron nor muon coupling is not produced on an electron beam "
            "(set c_e or c_mu)",
            file=file,
            field=f"{where}.c_e",
        )
    if not np.any(model.width_invisible(m) > 0):
        field = (
            "alpha_d"
            if block.name == "dark_photon"
            else next(
                (k for k in ("c_chi", "alpha_d", "c_nu_e", "c_nu_mu", "c_nu_tau") if k in params), "c_nu_e"
            )
        )
        raise InputError(
            f"BR(invisible) = 0 for '{block.name}' with these couplings: no neutrino or dark-matter "
            f"coupling, no missing-energy signal",
            file=file,
            field=f"{where}.{field}",
        )
    if not np.any(model.eps_eff(m) > 0):
        raise InputError(
            f"'{block.name}' has no effective electron coupling: not produced on an electron beam",
            file=file,
            field=where,
        )
    return model


def split_summary(
    data: Mapping[str, Any], *, file: str | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model block, the rest) of a model summary; the model block is required."""
    if not isinstance(data, Mapping):
        raise InputError("a summary must be a JSON object", file=file)
    if "model" not in data:
        raise InputError(
            "missing the 'model' block (name and parameters of the model to limit)", file=file, field="model"
        )
    rest = {k: v for k, v in data.items() if k != "model"}
    return dict(data["model"]) if isinstance(data["model"], Mapping) else data["model"], rest


# --------------------------------------------------------------------------------------------------
# Vector mediators


def _with_coupling(model: VectorMediator, value: float) -> VectorMediator:
    return dataclasses.replace(model, **{_limited_field(type(model)): float(value)})  # type: ignore[type-var]


def _br_depends_on_coupling(model: VectorMediator, masses: np.ndarray) -> bool:
    a = _with_coupling(model, 1e-6).br_invisible(masses)
    b = _with_coupling(model, 1e-1).br_invisible(masses)
    return not np.allclose(a, b, rtol=1e-9, atol=1e-15)


def _solve_coupling(model: VectorMediator, mass: float, target: float) -> float | None:
    """g with eps_eff(g)^2 BR_inv(g) = ``target`` (eps_eff linear in g; g^2 BR_inv(g) increasing)."""

    def f(t: float) -> float:
        mod = _with_coupling(model, math.exp(t))
        v = float(mod.eps_eff(np.array([mass]))[0] ** 2 * mod.br_invisible(np.array([mass]))[0])
        return math.log(max(v, 1e-300)) - math.log(target)

    lo, hi = math.log(1e-12), math.log(1e3)
    if f(lo) > 0 or f(hi) < 0:
        return None
    return math.exp(optimize.brentq(f, lo, hi, xtol=1e-12, rtol=1e-12))


def coupling_from_eps(
    model: VectorMediator,
    masses: Sequence[float] | np.ndarray,
    eps_limits: Mapping[str, Sequence[float | None]],
    *,
    br_inv_aprime: float = 1.0,
) -> list[dict[str, Any]]:
    """Per-mass dark-photon eps limits -> the model's coupling limits: eps_eff(g)^2 BR_inv(g) =
    eps^2 BR_inv(A'). ``eps_limits``: {"eps_obs": [...], "eps_exp": [...], ...} (None passes through).

    Examples:
        >>> from na64ana.physics import models
        >>> from na64ana.stats import coupling
        >>> p = coupling.coupling_from_eps(models.get("lmu_ltau"), [1e-3], {"eps_obs": [1e-5]})
        >>> round(p[0]["coupling_obs"] / 1e-5, 1)   # the loop factor (BR_inv = 1 below 2 m_mu)
        69.3
    """
    m = np.atleast_1d(np.asarray(masses, dtype=float))
    unit = _with_coupling(model, 1.0)
    kappa = unit.eps_eff(m)
    depends = _br_depends_on_coupling(model, m)
    br1 = unit.br_invisible(m)
    label = getattr(type(model), "coupling_label", _limited_field(type(model)))
    out = []
    for i, mass in enumerate(m):
        point: dict[str, Any] = {
            "mass_GeV": float(mass),
            "coupling": label,
            "eps_eff_per_coupling": float(kappa[i]),
        }
        for key, vals in eps_limits.items():
            eps = vals[i]
            name = "coupling" + key.removeprefix("eps")
            if eps is None or not (kappa[i] > 0):
                point[name] = None
            elif depends:
                point[name] = _solve_coupling(model, float(mass), float(eps) ** 2 * br_inv_aprime)
            else:
                point[name] = (
                    float(eps) * math.sqrt(br_inv_aprime / br1[i]) / float(kappa[i]) if br1[i] > 0 else None
                )
        out.append(point)
    return out


def _vector_summary(rest: Mapping[str, Any], file: str | None) -> Summary:
    summ = validate_summary(rest, file=file)
    for i, r in enumerate(summ.runs):
        if r.shape is not None:
            raise InputError(
                "binned runs (shape) are not supported for model limits; give one count per run",
                file=file,
                field=f"runs.{i}.shape",
            )
    return summ


def vector_limits(
    data: Mapping[str, Any],
    *,
    masses: Sequence[float] | np.ndarray | None = None,
    method: str = "exact",
    file: str | None = None,
    share_round: float = VECTOR_SHARE_ROUND,
) -> dict[str, Any]:
    """Limits on a vector model's coupling from a model summary (the invisible summary + ``model``).

    Per mass: s_up (exact CLs on the total signal count, runs as channels; cached per run-share vector
    rounded to ``share_round``), the signal per unit coupling and the coupling where N_sig = s_up. The
    dark-photon eps limit of the same data is reported alongside (``eps_*``)."""
    t0 = time.perf_counter()
    spec, rest = split_summary(data, file=file)
    summ = _vector_summary(rest, file)
    m = np.atleast_1d(np.asarray(summ.masses_GeV if masses is None else masses, dtype=float))
    model = from_spec(spec, masses=m, e0=summ.beam_energy_GeV, file=file)
    if not isinstance(model, VectorMediator):
        raise InputError(f"'{spec.get('name')}' is not a vector mediator", file=file, field="model.name")
    production = spec.get("production") or ["brem"]
    y_ap = yields.signal_yield(
        m,
        1.0,
        mechanisms=production,
        e0=summ.beam_energy_GeV,
        emiss_min=summ.emiss_min_GeV,
        xsec=summ.cross_section,
    ).total
    cache = band.SupCache(_RunsView(summ), method, share_round=share_round)
    eps_lim: dict[str, list[float | None]] = {k.replace("coupling", "eps"): [] for k in KEYS}
    extra = []
    for i, mass in enumerate(m):
        shares = np.array([r.eot * float(r.efficiency_at(mass)) for r in summ.runs])
        n_eps1 = float(y_ap[i] * shares.sum())  # dark-photon signal at eps = 1, BR_inv = 1
        res = cache.result(shares) if n_eps1 > 0 else None
        info: dict[str, Any] = {"aprime_signal_at_eps1": n_eps1}
        for key, q in KEYS.items():
            ek = key.replace("coupling", "eps")
            if res is None or (q == "obs" and summ.blinded):
                eps_lim[ek].append(None)
                continue
            s = res.mu_obs if q == "obs" else res.mu_exp[q]
            eps_lim[ek].append(math.sqrt(s / n_eps1) if math.isfinite(s) else None)
            info.setdefault("s_up", {})[q] = s
        if res is None:
            info["error"] = "no dark-photon signal at this mass (kinematically closed or outside the k table)"
        extra.append(info)
    points = coupling_from_eps(model, m, eps_lim)
    unit = _with_coupling(model, 1.0)
    br = unit.br_invisible(m)
    for i, p in enumerate(points):
        p.update(extra[i])
        p["br_invisible_at_unit_coupling"] = float(br[i])
        for ek, vals in eps_lim.items():
            p[ek] = vals[i]
        if summ.blinded:
            p["blinded"] = True
        if br[i] == 0 and "error" not in p:
            p["error"] = "BR(invisible) = 0 at this mass"
        elif "error" not in p and p.get("coupling_exp") is None:
            p["note"] = ("no exclusion: even at large coupling eps_eff^2 BR_inv stays below the dark-photon "
                         "limit (a fixed alpha_D bounds the invisible width)")
    label = getattr(type(model), "coupling_label", _limited_field(type(model)))
    return {
        "analysis": summ.analysis,
        "model": {"name": spec.get("name"), **model.parameters()},
        "coupling": label,
        "limited_parameter": _limited_field(type(model)),
        "cl": summ.cl,
        "blinded": summ.blinded,
        "production": list(production),
        "cross_section": summ.cross_section,
        "method": (
            "exact-hybrid-cls s_up on the total signal count (runs as channels); coupling from "
            "eps_eff(g)^2 BR_inv(g) = eps_lim^2 (BR_inv(A') = 1)"
        ),
        "br_inv_depends_on_coupling": _br_depends_on_coupling(model, m),
        "points": points,
        "n_failed": sum("error" in p for p in points),
        "n_cls_evaluations": len(cache),
        "seconds": time.perf_counter() - t0,
    }


class _RunsView:
    """An invisible :class:`~na64ana.summary.Summary` as a :class:`~na64ana.stats.band.CountingSummary`."""

    def __init__(self, summ: Summary):
        self._s = summ

    @property
    def runs(self) -> Sequence[Any]:
        return self._s.runs

    @property
    def correlated(self) -> dict[str, float]:
        return self._s.correlated

    @property
    def cl(self) -> float:
        return self._s.cl


# --------------------------------------------------------------------------------------------------
# ALPs: the closed region


class AlpRun(CountingChannel):
    """One channel of the ALP search: a run (or run period) in one signal region."""

    region: Literal["hcal", "beyond"] = Field(
        description="'hcal' (decay in HCAL2-4) or 'beyond' (the A' box)"
    )
    efficiency: float | MassCurve
    notes: str | dict[str, str] | None = None

    @field_validator("efficiency")
    @classmethod
    def _eff(cls, v: float | MassCurve) -> float | MassCurve:
        vals = [v] if isinstance(v, float | int) else v.value
        if any(not (0 < x <= 1) for x in vals):
            raise ValueError("efficiency must be in (0, 1]")
        return v

    def efficiency_at(self, mass: float) -> float:
        return (
            float(self.efficiency.at(mass))
            if isinstance(self.efficiency, MassCurve)
            else float(self.efficiency)
        )


class AlpSummary(CountingSummaryChecks):
    """The ALP yields summary: channels = runs x signal regions, a ``model`` block (``alp_photon``)."""

    analysis: str = Field(min_length=1)
    beam_energy_GeV: float = Field(100.0, gt=0)
    cl: float = Field(0.9, gt=0, lt=1)
    correlated: dict[str, float] = Field(default_factory=dict)
    geometry_file: str | None = None
    runs: list[AlpRun] = Field(min_length=1)
    masses_GeV: list[float] = Field(default_factory=list)
    notes: str | dict[str, Any] | None = None


def _alp_summary(rest: Mapping[str, Any], file: str | None) -> AlpSummary:
    try:
        return AlpSummary.model_validate(rest)
    except ValidationError as err:
        raise from_validation(err, file=file) from None


def _alp_grid() -> np.ndarray:
    lo, hi, per_decade = ALP_GRID
    n = int(round(per_decade * math.log10(hi / lo))) + 1
    return np.logspace(math.log10(lo), math.log10(hi), n)


def alp_limits(
    data: Mapping[str, Any],
    *,
    masses: Sequence[float] | np.ndarray | None = None,
    method: str = "exact",
    file: str | None = None,
) -> dict[str, Any]:
    """The closed excluded region in (m_a, g_agg) of an ALP summary: per mass the lower edge
    ``coupling_obs`` (yield) and the upper edge ``coupling_obs_upper`` (decays too early), and the
    expected edges (median, +-1, +-2 sigma), combined over runs and regions."""
    t0 = time.perf_counter()
    spec, rest = split_summary(data, file=file)
    summ = _alp_summary(rest, file)
    m = np.atleast_1d(np.asarray(summ.masses_GeV if masses is None else masses, dtype=float))
    if m.size == 0:
        raise InputError("no masses to scan (give masses or fill masses_GeV)", file=file, field="masses_GeV")
    model = from_spec(spec, masses=m, e0=summ.beam_energy_GeV, file=file)
    if not isinstance(model, AlpPhoton):
        raise InputError(f"'{spec.get('name')}' is not an ALP model", file=file, field="model.name")
    geo = alp_physics.load_geometry(_geometry_path(summ, file))
    cache = band.SupCache(summ, method)
    grid = _alp_grid()
    points = []
    for mass in m:
        try:
            ay = alp_physics.AlpYield(float(mass), e0=summ.beam_energy_GeV, geometry=geo)
            scale = np.array([r.eot * r.efficiency_at(float(mass)) for r in summ.runs])
            regions = [r.region for r in summ.runs]

            def per_run(
                g: np.ndarray,
                ay: alp_physics.AlpYield = ay,
                scale: np.ndarray = scale,
                regions: Sequence[str] = regions,
            ) -> np.ndarray:
                per = ay.per_region(g)
                return scale[:, None] * np.array([per[r] for r in regions])

            pt = band.closed_region_edges(per_run, grid, cache, blinded=summ.blinded)
            point = {"mass_GeV": float(mass), "coupling": "g_agg", "coupling_unit": "GeV^-1", **pt}
        except InputError as exc:
            point = {"mass_GeV": float(mass), "coupling": "g_agg", "error": str(exc)}
        points.append(point)
    return {
        "analysis": summ.analysis,
        "model": {"name": spec.get("name")},
        "coupling": "g_agg",
        "coupling_unit": "GeV^-1",
        "limited_parameter": "g_agg",
        "cl": summ.cl,
        "blinded": summ.blinded,
        "region": "closed: lower edge from the yield, upper edge from decays before the signal regions",
        "method": (
            "exact-hybrid-cls s_up on the total signal count (runs x regions as channels); edges "
            "N(g) = s_up (brentq in ln g)"
        ),
        "grid_GeV^-1": [float(grid[0]), float(grid[-1])],
        "runs": [
            {
                "name": r.name,
                "region": r.region,
                "eot": r.eot,
                "background": r.background,
                "observed": r.observed,
            }
            for r in summ.runs
        ],
        "points": points,
        "n_failed": sum("error" in p for p in points),
        "n_cls_evaluations": len(cache),
        "seconds": time.perf_counter() - t0,
    }


def _geometry_path(summ: AlpSummary, file: str | None) -> Path | None:
    if summ.geometry_file is None:
        return None
    p = Path(summ.geometry_file)
    if not p.is_absolute() and file is not None:
        p = Path(file).parent / p
    return p


# --------------------------------------------------------------------------------------------------
# Dispatch


def limits_from_summary(
    source: str | Path | Mapping[str, Any], *, masses: Sequence[float] | None = None, method: str = "exact"
) -> dict[str, Any]:
    """A model summary (path or parsed JSON) -> its limits record: the closed region for an ALP,
    coupling limits for a vector mediator.

    Examples:
        >>> from na64ana.stats import coupling
        >>> rec = coupling.limits_from_summary("examples/summaries/lmu_ltau_2016_2018_published.json",
        ...                                    masses=[0.001])            # doctest: +SKIP
    """
    file = None
    if isinstance(source, str | Path):
        file = str(source)
        data = read_json(source)
    else:
        data = source
    spec, _ = split_summary(data, file=file)
    name = spec.get("name") if isinstance(spec, Mapping) else None
    if name not in models.available():  # the model block decides the summary's format: check it first
        from_spec(spec, file=file)
    if name in ALP_MODELS:
        return alp_limits(data, masses=masses, method=method, file=file)
    return vector_limits(data, masses=masses, method=method, file=file)
