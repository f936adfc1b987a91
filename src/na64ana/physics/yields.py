"""Thick-target A' yield per electron on target, its E_A' spectrum and a sampler (brief 9.2, S001 eq. 8).

N(E_A' > c)/EOT = (N_A X0/A)_Pb f_Pb integral dE T(E) sigma(E) integral_{x > c/E} dx S(x)/integral S
with T(E) the e+- differential track length (:mod:`.tracklength`), sigma = sigma_WW or sigma_WW/k
(:mod:`.crosssection`) and S the DMG4 x-shape. Everything is computed at eps = 1 and multiplied by eps^2,
so yields are exactly proportional to eps^2 (BR(A' -> invisible) = 1).

One core, :func:`_yield_above`, gives N(E_A' > c) on a grid of masses and thresholds c; the yield, the
spectrum (differences over bin edges) and the sampler (its inverse CDF) all come from it, so they agree.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from .. import published
from ..errors import InputError
from . import crosssection as xs
from .tracklength import track_length_table

TARGETS = ("ecal", "pb")
_PB_TO_CM2 = 1e-36
_GH_NODES = 9  # Gauss-Hermite nodes for the Gaussian beam-energy spread


def atoms_per_x0_cm2() -> float:
    """(N_A X0 / A) for lead: target atoms per cm^2 in one radiation length (1.851e22, brief 9.2)."""
    g = published.get
    return g("physics.avogadro") * g("physics.pb_X0_g_cm2") / g("physics.pb_A")


def target_fraction(target: str) -> float:
    """Fraction of the shower depth (X0) in lead: f_Pb for the Pb/Sc ECAL, 1 for pure lead (brief 9.2)."""
    if target == "pb":
        return 1.0
    if target == "ecal":
        return float(published.get("physics.ecal_pb_fraction_X0"))
    raise InputError(f"unknown target '{target}' (choose one of {', '.join(TARGETS)})", field="target")


def _check_common(e0: float, xsec: str, target: str, beam_spread: float) -> None:
    xs.check_xsec(xsec)
    target_fraction(target)
    if not (math.isfinite(e0) and e0 > 0):
        raise InputError(f"beam energy must be > 0 GeV, got {e0!r}", field="e0")
    if not (math.isfinite(beam_spread) and 0.0 <= beam_spread < 0.1):
        raise InputError(f"relative beam-energy spread must be in [0, 0.1), got {beam_spread!r}",
                         field="beam_spread")


def _check_threshold(value: float, e0: float, name: str) -> None:
    lo = track_length_table().config.u_min * e0
    if not (math.isfinite(value) and lo <= value < e0):
        raise InputError(f"{name} = {value!r} GeV must be in [{lo:g}, {e0:g}) GeV (the track-length table "
                         f"starts at {lo:g} GeV for E0 = {e0:g} GeV)", field=name)


def _emitters(e0: float, e_lo: float) -> tuple[np.ndarray, np.ndarray]:
    """Emitter energies (GeV) and the e+- path (X0) they stand for: table bins above ``e_lo``."""
    tab = track_length_table()
    u_lo = e_lo / e0
    edges = tab.edges[tab.edges > u_lo]
    u = np.concatenate([[u_lo], edges])
    path = tab.cumulative_above(u[:-1]) - tab.cumulative_above(u[1:])
    return e0 * 0.5 * (u[:-1] + u[1:]), path


def _yield_above_e0(masses: np.ndarray, cuts: np.ndarray, e0: float, xsec: str) -> np.ndarray:
    """N(E_A' > cut) per EOT at eps = 1 for one beam energy, pure lead, shape (len(masses), len(cuts))."""
    reachable = cuts < e0
    cuts = np.minimum(cuts, e0 * (1 - 1e-9))  # a cut above the beam energy is masked at the end
    energies, path = _emitters(e0, max(float(cuts.min()), track_length_table().config.u_min * e0))
    m = masses[:, None]
    sigma = xs.sigma_total(m, energies[None, :], 1.0, xsec)  # (M, E) pb
    total = xs.shape_integral(m, energies[None, :])
    e3 = energies[None, :, None]
    above = xs.shape_integral(m[:, :, None], e3, cuts[None, None, :] / e3)
    open_ = energies[None, :] > m / xs.x_range(m, energies[None, :])[1]  # x_max > x_min
    frac = np.where(open_[:, :, None], above / np.where(open_, total, 1.0)[:, :, None], 0.0)
    weight = np.where(open_, sigma, 0.0) * path[None, :]
    return atoms_per_x0_cm2() * _PB_TO_CM2 * np.einsum("me,mec->mc", weight, frac) * reachable


def _yield_above(masses: np.ndarray, cuts: np.ndarray, e0: float, xsec: str, target: str,
                 beam_spread: float) -> np.ndarray:
    """:func:`_yield_above_e0` averaged over a Gaussian beam energy and scaled by the lead fraction."""
    if beam_spread == 0.0:
        out = _yield_above_e0(masses, cuts, e0, xsec)
    else:
        z, w = np.polynomial.hermite_e.hermegauss(_GH_NODES)
        w = w / w.sum()
        out = sum(wi * _yield_above_e0(masses, cuts, e0 * (1 + beam_spread * zi), xsec)
                  for zi, wi in zip(z, w, strict=True))
    return target_fraction(target) * out


def yield_per_eot_grid(masses_GeV: np.ndarray | list[float], eps: float, *, e0: float = 100.0,
                       emiss_min: float = 50.0, xsec: str = "etl", target: str = "ecal",
                       beam_spread: float = 0.0) -> np.ndarray:
    """A' per EOT with E_A' > ``emiss_min`` for each mass (vectorised; see :func:`signal_yield_per_eot`)."""
    eps = xs.check_eps(eps)
    _check_common(e0, xsec, target, beam_spread)
    _check_threshold(emiss_min, e0, "emiss_min")
    m = xs.check_mass(np.atleast_1d(np.asarray(masses_GeV, dtype=float)), e0, xsec)
    if np.any(m >= emiss_min):
        raise InputError(f"A' mass {float(m.max())} GeV must be below emiss_min = {emiss_min} GeV",
                         field="mass")
    return eps**2 * _yield_above(m, np.array([float(emiss_min)]), e0, xsec, target, beam_spread)[:, 0]


def signal_yield_per_eot(mass_GeV: float, eps: float, *, e0: float = 100.0, emiss_min: float = 50.0,
                         xsec: str = "etl", target: str = "ecal", beam_spread: float = 0.0) -> float:
    """A' produced per EOT with E_A' > ``emiss_min`` (brief 9.2), proportional to eps^2.

    ``target``: "ecal" (Pb/Sc sandwich, lead fraction f_Pb) or "pb" (pure lead). ``beam_spread``: relative
    Gaussian sigma of the beam energy. No detector efficiency is applied.
    """
    return float(yield_per_eot_grid([mass_GeV], eps, e0=e0, emiss_min=emiss_min, xsec=xsec, target=target,
                                    beam_spread=beam_spread)[0])


def aprime_energy_spectrum(mass_GeV: float, *, e0: float = 100.0, xsec: str = "etl",
                           bins: int | np.ndarray = 80, eps: float = 1e-4, target: str = "ecal",
                           beam_spread: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(edges, dN/dE_A') per EOT per GeV at ``eps``; int ``bins`` = equal bins from 0.2 E0 to E0.

    The default range starts at 20 GeV for E0 = 100 GeV, where the DMG4 k-factor grid starts; lower edges
    are allowed down to the track-length threshold (k is then clamped, with a warning).
    """
    eps = xs.check_eps(eps)
    _check_common(e0, xsec, target, beam_spread)
    top = e0 * (1 + 4 * beam_spread)
    if isinstance(bins, (int, np.integer)):
        if bins < 1:
            raise InputError(f"need at least one bin, got {bins}", field="bins")
        edges = np.linspace(0.2 * e0, top, int(bins) + 1)
    else:
        edges = np.asarray(bins, dtype=float)
        if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0) or not np.all(np.isfinite(edges)):
            raise InputError("bin edges must be a finite, strictly increasing 1D sequence", field="bins")
    _check_threshold(float(edges[0]), e0, "bins")
    m = xs.check_mass(np.array([float(mass_GeV)]), e0, xsec)
    if m[0] >= edges[-1]:
        raise InputError(f"A' mass {m[0]} GeV is above the spectrum range", field="mass")
    n_above = _yield_above(m, edges, e0, xsec, target, beam_spread)[0]
    return edges, eps**2 * -np.diff(n_above) / np.diff(edges)


@lru_cache(maxsize=64)
def _sampling_cdf(mass: float, e0: float, ea_min: float, xsec: str, beam_spread: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    top = e0 * (1 + 4 * beam_spread)
    edges = np.linspace(ea_min, top, 201)
    n_above = _yield_above(np.array([mass]), edges, e0, xsec, "pb", beam_spread)[0]
    cdf = (n_above[0] - n_above) / n_above[0]
    return edges, cdf


def sample_aprime_energy(mass_GeV: float, n: int, rng: np.random.Generator, *, e0: float = 100.0,
                         ea_min: float = 50.0, xsec: str = "etl", beam_spread: float = 0.0) -> np.ndarray:
    """Draw ``n`` E_A' values (GeV) > ``ea_min`` from integral dE T(E) d sigma/dx (brief 9.3).

    Inverse CDF on 200 bins between ``ea_min`` and E0 (0.25 GeV at the defaults, the track-length table
    resolution; linear inside a bin); the CDF is cached per inputs.
    """
    _check_common(e0, xsec, "pb", beam_spread)
    _check_threshold(ea_min, e0, "ea_min")
    m = float(xs.check_mass(float(mass_GeV), e0, xsec))
    if m >= ea_min:
        raise InputError(f"A' mass {m} GeV must be below ea_min = {ea_min} GeV", field="mass")
    if int(n) != n or n < 0:
        raise InputError(f"number of samples must be a non-negative integer, got {n!r}", field="n")
    edges, cdf = _sampling_cdf(m, float(e0), float(ea_min), xsec, float(beam_spread))
    return np.interp(rng.random(int(n)), cdf, edges)
