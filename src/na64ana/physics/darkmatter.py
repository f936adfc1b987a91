"""Light thermal dark matter: from the mixing eps to y and alpha_D, and the relic targets (brief Sec. 10).

y = eps^2 alpha_D (m_chi/m_A')^4 (S001 eq. 6), with m_A' = ratio * m_chi (ratio = 3 by convention). Limits
on eps at m_A' = ratio * m_chi translate into limits on y while BR(A' -> chi chi) ~= 1.
"""

from __future__ import annotations

import csv
from importlib import resources

import numpy as np

from .. import published
from ..errors import InputError

RELIC_KINDS = ("scalar", "pseudodirac", "majorana")


def _positive(value: float | np.ndarray, field: str) -> np.ndarray:
    v = np.asarray(value, dtype=float)
    if not np.all(np.isfinite(v)) or np.any(v <= 0):
        raise InputError(f"must be finite and > 0, got {value!r}", field=field)
    return v


def default_ratio() -> float:
    """m_A'/m_chi convention (3, S001 Sec. X)."""
    return float(published.get("darkmatter.mass_ratio_aprime_chi"))


def y_from_eps(eps: float | np.ndarray, m_chi: float | np.ndarray, alpha_d: float, ratio: float = 3.0
               ) -> np.ndarray:
    """y = eps^2 alpha_D (m_chi/m_A')^4 with m_A' = ratio * m_chi (so m_chi only fixes m_A')."""
    _positive(m_chi, "m_chi")
    _positive(alpha_d, "alpha_d")
    _positive(ratio, "ratio")
    e = np.asarray(eps, dtype=float)
    if not np.all(np.isfinite(e)) or np.any(e < 0):
        raise InputError(f"must be finite and >= 0, got {eps!r}", field="eps")
    return e**2 * alpha_d / ratio**4


def eps_from_y(y: float | np.ndarray, m_chi: float | np.ndarray, alpha_d: float, ratio: float = 3.0
               ) -> np.ndarray:
    """Inverse of :func:`y_from_eps`: eps = sqrt(y ratio^4 / alpha_D)."""
    _positive(m_chi, "m_chi")
    _positive(alpha_d, "alpha_d")
    _positive(ratio, "ratio")
    yy = np.asarray(y, dtype=float)
    if not np.all(np.isfinite(yy)) or np.any(yy < 0):
        raise InputError(f"must be finite and >= 0, got {y!r}", field="y")
    return np.sqrt(yy * ratio**4 / alpha_d)


def relic_f(kind: str) -> float:
    """The f of the relic relation: 0.25 pseudo-Dirac, 3 Majorana (S001 Sec. X; S003)."""
    keys = {"pseudodirac": "darkmatter.relic_f_pseudodirac", "majorana": "darkmatter.relic_f_majorana"}
    if kind not in keys:
        raise InputError(f"no published f for '{kind}' (choose one of {', '.join(keys)})", field="f")
    return float(published.get(keys[kind]))


def alpha_d_lower_limit(eps90: float | np.ndarray, m_chi: float | np.ndarray, f: float | str,
                        ratio: float = 3.0) -> np.ndarray:
    """alpha_D excluded below 0.02 f (1e-3/eps90)^2 (m_A'/100 MeV)^4 (10 MeV/m_chi)^2 (S001 eq. 5, Sec. X).

    The relic abundance fixes alpha_D for given eps; eps < eps90 therefore means alpha_D above this value.
    ``f`` is a number or "pseudodirac"/"majorana".
    """
    fv = relic_f(f) if isinstance(f, str) else float(_positive(f, "f"))
    e = _positive(eps90, "eps90")
    m = _positive(m_chi, "m_chi")
    _positive(ratio, "ratio")
    g = published.get
    return (g("darkmatter.relic_alpha_d_prefactor") * fv * (g("darkmatter.relic.eps_ref") / e) ** 2
            * (ratio * m / g("darkmatter.relic.m_aprime_ref_GeV")) ** 4
            * (g("darkmatter.relic.m_chi_ref_GeV") / m) ** 2)


def relic_target(kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Thermal relic target (m_chi [GeV], y) for "scalar", "pseudodirac" or "majorana" [ESPP curves]."""
    if kind not in RELIC_KINDS:
        raise InputError(f"unknown relic target '{kind}' (choose one of {', '.join(RELIC_KINDS)})",
                         field="kind")
    with resources.files("na64ana").joinpath(f"data/relic_target_{kind}.csv").open() as fh:
        rows = list(csv.reader(line for line in fh if line.strip() and not line.startswith("#")))
    body = [(float(a), float(b)) for a, b in rows[1:]]
    m, y = np.array(body).T
    order = np.argsort(m, kind="stable")
    return m[order], y[order]


def relic_y_at(kind: str, m_chi: float | np.ndarray) -> np.ndarray:
    """Relic-target y interpolated log-log at ``m_chi`` (InputError outside the tabulated range)."""
    m, y = relic_target(kind)
    mc = _positive(m_chi, "m_chi")
    if np.any(mc < m[0]) or np.any(mc > m[-1]):
        raise InputError(f"m_chi outside the tabulated relic curve [{m[0]:.4g}, {m[-1]:.4g}] GeV",
                         field="m_chi")
    return np.exp(np.interp(np.log(mc), np.log(m), np.log(y)))


__all__ = ["RELIC_KINDS", "alpha_d_lower_limit", "default_ratio", "eps_from_y", "relic_f", "relic_target",
           "relic_y_at", "y_from_eps"]
