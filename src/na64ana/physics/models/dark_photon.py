"""The dark photon A': a massive vector mixing kinetically with the photon, eps e Q_f couplings.

Why a class: it is the reference model of the invisible search; its limit is on eps itself
(eps_eff = eps at every mass) and its dark-matter reinterpretation uses alpha_D and m_chi.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ... import published
from .base import DarkMatter, VectorCouplings, VectorMediator, _finite, register

__all__ = ["DarkPhoton"]


@register("dark_photon")
@dataclass(frozen=True)
class DarkPhoton(VectorMediator):
    """Dark photon with mixing ``eps`` (couplings -eps e to e, mu, tau; none to neutrinos) and DM ``dark``.

    Examples:
        >>> from na64ana.physics.models import DarkPhoton, DarkMatter
        >>> ap = DarkPhoton(eps=1e-4, dark=DarkMatter(alpha_d=0.5, kind="fermion", ratio=3.0))
        >>> float(ap.eps_eff(0.1))
        0.0001
    """

    limited_coupling = "eps"
    eps: float = 1.0
    dark: DarkMatter | None = field(default_factory=DarkMatter)

    def __post_init__(self) -> None:
        _finite(self.eps, "eps")

    def lepton_couplings(self) -> VectorCouplings:
        g = -self.eps * math.sqrt(4 * math.pi * published.get("physics.alpha_em"))
        return VectorCouplings(e=g, mu=g, tau=g)
