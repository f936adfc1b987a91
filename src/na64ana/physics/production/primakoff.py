"""Primakoff production of axion-like particles: gamma Z -> a Z on a nucleus (brief_extensions 5).

Why: hard bremsstrahlung photons of the ECAL shower convert into ALPs in the Coulomb field of the lead
nuclei; the ALP takes (practically) the whole photon energy, so the yield folds this cross section with
the photon track length T_gamma(E) of :mod:`na64ana.physics.shower` and E_a = E_gamma.

Cross section [CODE DMG4 ALP.cc; brief_extensions 5]:
sigma(E) = (1/8) g_agg^2 alpha Z^2 [ ln((t_d + t_min)/(t_a + t_min)) - 2 ],
t_min = m_a^4 / (4 E^2), t_a = (m_e / (111 Z^-1/3))^2 (atomic screening), t_d = 0.164 A^-2/3 GeV^2
(nuclear size), zero below E = 2 m_a (DMG4's threshold) and wherever the bracket is negative.
With g_agg in GeV^-1 sigma is in GeV^-2, returned in pb. Check (brief_extensions 5, [DERIVED]): ~341 pb for
lead at g_agg = 1e-4 GeV^-1 and small m_a.
"""

from __future__ import annotations

import numpy as np

from ... import published
from ...errors import InputError

__all__ = ["sigma", "t_atomic", "t_nuclear"]


def _p(key: str) -> float:
    return float(published.get(key))


def t_atomic(z: float | None = None) -> float:
    """t_a = (m_e / (111 Z^-1/3))^2 in GeV^2 (screening scale; lead by default)."""
    z = _p("physics.pb_Z") if z is None else float(z)
    return (_p("physics.electron_mass_GeV") / (_p("physics.form_factor_a_coeff") * z ** (-1 / 3))) ** 2


def t_nuclear(a_mass: float | None = None) -> float:
    """t_d = 0.164 A^-2/3 GeV^2 (nuclear form-factor scale; lead by default)."""
    a_mass = _p("physics.pb_A") if a_mass is None else float(a_mass)
    return _p("physics.form_factor_d_GeV2") * a_mass ** (-2 / 3)


def sigma(energy: float | np.ndarray, mass: float | np.ndarray, g_agg: float = 1.0, *, z: float | None = None,
          a_mass: float | None = None) -> np.ndarray:
    """sigma(gamma Z -> a Z) in pb for photon ``energy`` and ALP ``mass`` (GeV), coupling ``g_agg`` (GeV^-1).

    Examples:
        >>> from na64ana.physics.production import primakoff
        >>> round(float(primakoff.sigma(50.0, 1e-3, 1e-4)))   # brief_extensions 5: ~341 pb
        341
        >>> float(primakoff.sigma(0.019, 0.01, 1e-4))          # below E = 2 m_a
        0.0
    """
    e = np.asarray(energy, dtype=float)
    m = np.asarray(mass, dtype=float)
    if np.any(~np.isfinite(m)) or np.any(m < 0):
        raise InputError(f"ALP mass must be finite and >= 0 GeV, got {mass!r}", field="mass")
    if not np.isfinite(g_agg):
        raise InputError(f"g_agg must be finite, got {g_agg!r}", field="g_agg")
    z_ = _p("physics.pb_Z") if z is None else float(z)
    ta, td = t_atomic(z_), t_nuclear(a_mass)
    with np.errstate(divide="ignore", invalid="ignore"):
        tmin = m**4 / (4 * np.where(e > 0, e, 1.0) ** 2)
        bracket = np.log((td + tmin) / (ta + tmin)) - 2.0
    s = 0.125 * g_agg**2 * _p("physics.alpha_em") * z_**2 * np.clip(bracket, 0.0, None)
    return np.where(e > 2 * m, s, 0.0) * _p("physics.gev2_to_pb")
