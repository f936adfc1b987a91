"""The muon g-2 preferred band for a vector coupled to muons (brief_extensions 5).

Why: a vector with a muon coupling g_mu shifts a_mu by (one loop)
Delta a_mu = (g_mu^2 / 4 pi^2) integral_0^1 dx x (1-x)^2 / [(1-x)^2 + x m^2/m_mu^2]
(-> g_mu^2/(8 pi^2) for m << m_mu, -> g_mu^2 m_mu^2/(12 pi^2 m^2) for m >> m_mu), so the measured
discrepancy Delta a_mu +- n sigma picks a band g_low(m) < g_mu < g_high(m) -- the benchmark an
L_mu - L_tau limit is drawn against. The discrepancy is an input (``data/g2_muon.toml`` with its source;
another file can be passed), never a constant in code.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from .. import published
from ..errors import InputError

__all__ = ["G2Input", "delta_a_mu", "delta_a_mu_per_g2", "load_input", "preferred_band"]

_NODES = 256


@dataclass(frozen=True)
class G2Input:
    """Delta a_mu, its 1-sigma uncertainty, the band width in sigma and the source."""

    value: float
    sigma: float
    n_sigma: float
    source: str


def load_input(path: str | Path | None = None) -> G2Input:
    """Read the Delta a_mu input (default: the shipped ``data/g2_muon.toml``); one-line errors."""
    where = "na64ana/data/g2_muon.toml" if path is None else str(path)
    try:
        if path is None:
            raw = tomllib.loads(resources.files("na64ana").joinpath("data/g2_muon.toml").read_text())
        else:
            raw = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", file=where) from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"not valid TOML ({exc})", file=where) from None
    d = raw.get("delta_a_mu")
    if not isinstance(d, dict):
        raise InputError("missing table [delta_a_mu]", file=where, field="delta_a_mu")
    for key in ("value", "sigma", "source"):
        if key not in d:
            raise InputError(f"missing '{key}'", file=where, field=f"delta_a_mu.{key}")
    value, sigma, n_sigma = float(d["value"]), float(d["sigma"]), float(d.get("n_sigma", 2))
    if not (math.isfinite(value) and value > 0):
        raise InputError(f"must be a finite number > 0, got {d['value']!r}", file=where,
                         field="delta_a_mu.value")
    if not (math.isfinite(sigma) and sigma > 0):
        raise InputError(f"must be a finite number > 0, got {d['sigma']!r}", file=where,
                         field="delta_a_mu.sigma")
    if not (math.isfinite(n_sigma) and n_sigma > 0):
        raise InputError(f"must be > 0, got {d.get('n_sigma')!r}", file=where, field="delta_a_mu.n_sigma")
    return G2Input(value=value, sigma=sigma, n_sigma=n_sigma, source=str(d["source"]))


def delta_a_mu_per_g2(mass: float | np.ndarray) -> np.ndarray:
    """Delta a_mu / g_mu^2 = (1/4 pi^2) integral_0^1 x(1-x)^2/[(1-x)^2 + x m^2/m_mu^2] dx (Gauss-Legendre)."""
    m = np.atleast_1d(np.asarray(mass, dtype=float))
    if np.any(~np.isfinite(m)) or np.any(m <= 0):
        raise InputError(f"mediator mass must be finite and > 0 GeV, got {mass!r}", field="mass")
    r = (m / published.get("physics.muon_mass_GeV")) ** 2
    t, w = np.polynomial.legendre.leggauss(_NODES)
    x = 0.5 * (t + 1.0)
    y = 1.0 - x
    integrand = x[None, :] * y[None, :] ** 2 / (y[None, :] ** 2 + x[None, :] * r[:, None])
    out = 0.5 * integrand @ w / (4 * math.pi**2)
    return out if np.ndim(mass) else out[:1]


def delta_a_mu(mass: float | np.ndarray, g_mu: float | np.ndarray) -> np.ndarray:
    """Delta a_mu of a vector of mass ``mass`` (GeV) with muon vector coupling ``g_mu``."""
    return np.asarray(g_mu, dtype=float) ** 2 * delta_a_mu_per_g2(mass)


def preferred_band(mass: float | np.ndarray, *, g2: G2Input | None = None, n_sigma: float | None = None,
                   muon_charge: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(g_low(m), g_high(m)): the couplings with Delta a_mu within +- n_sigma of the input.

    ``muon_charge``: g_mu = muon_charge x g (1 for L_mu - L_tau and, up to the sign, B-L). A lower edge
    Delta a_mu - n sigma <= 0 gives g_low = 0.

    Examples:
        >>> from na64ana.physics import g2
        >>> lo, hi = g2.preferred_band([0.001])
        >>> bool(3e-4 < lo[0] < hi[0] < 6e-4)      # g ~ sqrt(8 pi^2 x 2.5e-9) ~ 4.5e-4 at small m
        True
    """
    inp = g2 or load_input()
    n = inp.n_sigma if n_sigma is None else float(n_sigma)
    if muon_charge == 0:
        raise InputError("a vector without muon coupling does not change a_mu", field="muon_charge")
    per = delta_a_mu_per_g2(np.atleast_1d(np.asarray(mass, dtype=float))) * muon_charge**2
    lo = np.sqrt(max(inp.value - n * inp.sigma, 0.0) / per)
    hi = np.sqrt((inp.value + n * inp.sigma) / per)
    return lo, hi
