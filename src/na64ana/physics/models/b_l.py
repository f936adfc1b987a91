"""The B-L Z': gauge boson of baryon minus lepton number (brief_extensions 5).

Why a class: the leptons carry B-L charge -1, so the Z' couples to electrons at tree level with the gauge
coupling g: production on the electron beam is the dark photon's with eps e -> g (eps_eff = g/e; the
sign of the charge does not enter |eps_eff|^2), by bremsstrahlung and, where it is asked for, resonant
annihilation. Quarks (hadronic decays above ~0.5 GeV) are not included [APPROX, as for the dark photon].

Neutrino convention (a parameter, ``neutrinos``):

* ``"dirac"`` (default, as DMG4): right-handed partners exist and carry B-L, so each flavour decays with
  both helicities: Gamma(nu nu) = 3 x 2 x g^2 m/(24 pi) = g^2 m/(4 pi) for three flavours;
* ``"majorana"`` (left-handed only): Gamma(nu nu) = 3 x g^2 m/(24 pi) = g^2 m/(8 pi).

Gamma(e e) = g^2 m/(12 pi)(1 + 2r) sqrt(1 - 4r) (r = m_e^2/m^2), mu mu and tau tau likewise above
threshold. Below 2 m_mu: BR_inv = 3/4 (Dirac) or 3/5 (left-handed), independent of g.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ...errors import InputError
from .base import DarkMatter, VectorCouplings, VectorMediator, _finite, register

__all__ = ["NEUTRINO_CONVENTIONS", "BMinusL"]

NEUTRINO_CONVENTIONS = ("dirac", "majorana")


@register("b_l")
@dataclass(frozen=True)
class BMinusL(VectorMediator):
    """B-L Z' with gauge coupling ``g``; ``neutrinos`` "dirac" (DMG4, default) or "majorana" (LH only).

    Examples:
        >>> from na64ana.physics import models
        >>> z = models.get("b_l", g=1e-4)
        >>> round(float(z.br_invisible(0.05)), 4), round(float(z.eps_eff(0.05)) * 0.30282212, 6)
        (0.75, 0.0001)
    """

    limited_coupling = "g"
    coupling_label = "g_B-L"
    g: float = 1.0
    neutrinos: Literal["dirac", "majorana"] = "dirac"
    dark: DarkMatter | None = field(default=None)

    def __post_init__(self) -> None:
        _finite(self.g, "g")
        if self.neutrinos not in NEUTRINO_CONVENTIONS:
            raise InputError(f"unknown neutrino convention '{self.neutrinos}' (choose one of "
                             f"{', '.join(NEUTRINO_CONVENTIONS)})", field="neutrinos")

    def lepton_couplings(self) -> VectorCouplings:
        g = -self.g  # B-L charge -1 for every lepton
        return VectorCouplings(e=g, mu=g, tau=g, nu_e=g, nu_mu=g, nu_tau=g)

    def partial_widths(self, mass: float | np.ndarray) -> dict[str, np.ndarray]:
        """As the base class, with both neutrino helicities for Dirac neutrinos."""
        out = super().partial_widths(mass)
        if self.neutrinos == "dirac":
            out["nu_nu"] = 2.0 * out["nu_nu"]
        return out
