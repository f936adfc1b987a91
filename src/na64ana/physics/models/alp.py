"""An axion-like particle (ALP) coupled to two photons: g_agg a F Fdual / 4 (brief_extensions 5).

Why its own small class: a pseudoscalar is not a vector mediator (no lepton couplings, no eps_eff); on the
NA64 beam it is made by the Primakoff conversion of shower photons on lead nuclei
(:mod:`na64ana.physics.production.primakoff`) and decays back to two photons, so its signal depends on
where it decays (:mod:`na64ana.physics.alp`). It is registered by name (``"alp_photon"``) in the model
registry so that search definitions refer to it like any other model; its limited coupling is
``g_agg`` in GeV^-1.

Gamma(a -> gamma gamma) = g_agg^2 m_a^3 / (64 pi); c tau = hbar c / Gamma; the lab decay length of an ALP
of energy E is (p/m_a) c tau, p = sqrt(E^2 - m_a^2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import ClassVar

import numpy as np

from ... import published
from .base import _finite, register

__all__ = ["AlpPhoton", "hbar_c_GeV_cm"]


def hbar_c_GeV_cm() -> float:
    """hbar c in GeV cm, from (hbar c)^2 = 0.3894 mb GeV^2 in published.toml."""
    return math.sqrt(published.get("physics.gev2_to_pb") * 1e-36)


@dataclass(frozen=True)
class AlpPhoton:
    """ALP with photon coupling ``g_agg`` (GeV^-1); every quantity is vectorised over the mass (GeV).

    Examples:
        >>> from na64ana.physics import models
        >>> a = models.get("alp_photon", g_agg=1e-4)
        >>> f"{float(a.width(0.01)):.3e}"              # g^2 m^3 / (64 pi)
        '4.974e-17'
        >>> round(float(a.decay_length_cm(50.0, 0.01)) / 1e5, 1)   # km: (E/m) c tau
        19.8
    """

    name: ClassVar[str] = "alp_photon"
    limited_coupling: ClassVar[str] = "g_agg"
    coupling_label: ClassVar[str] = "g_agg"
    g_agg: float = 1.0

    def __post_init__(self) -> None:
        _finite(self.g_agg, "g_agg")

    def width(self, mass: float | np.ndarray) -> np.ndarray:
        """Gamma(a -> gamma gamma) in GeV (the only channel: the total width)."""
        m = np.asarray(mass, dtype=float)
        return self.g_agg**2 * m**3 / (64 * math.pi)

    def total_width(self, mass: float | np.ndarray) -> np.ndarray:
        return self.width(mass)

    def br_invisible(self, mass: float | np.ndarray) -> np.ndarray:
        """0: the ALP always decays to photons (it is invisible only if it escapes the detector)."""
        return np.zeros_like(np.asarray(mass, dtype=float))

    def ctau_cm(self, mass: float | np.ndarray) -> np.ndarray:
        """Proper decay length c tau in cm (inf for g_agg = 0)."""
        w = self.width(mass)
        with np.errstate(divide="ignore"):
            return np.where(w > 0, hbar_c_GeV_cm() / np.where(w > 0, w, 1.0), np.inf)

    def decay_length_cm(self, energy: float | np.ndarray, mass: float | np.ndarray) -> np.ndarray:
        """Mean lab decay length (p/m) c tau in cm for an ALP of ``energy`` (GeV)."""
        e = np.asarray(energy, dtype=float)
        m = np.asarray(mass, dtype=float)
        p = np.sqrt(np.clip(e**2 - m**2, 0.0, None))
        return p / m * self.ctau_cm(m)

    def parameters(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# registered by name like the vector mediators, so that searches and summaries refer to "alp_photon"
register("alp_photon")(AlpPhoton)  # type: ignore[type-var]
