"""A user-defined vector mediator: couplings to e, mu, tau, neutrinos and chi as parameters.

Why: any new vector boson is constrained by the same missing-energy data once its couplings are known.
The couplings are an overall strength ``g`` (the limited parameter) times charges ``c_f``:
g_f = c_f g for f = e, mu, tau, nu_e, nu_mu, nu_tau and the dark-matter coupling g_chi = c_chi g.

* Production on an electron beam needs the effective electron coupling (in units of e):
  eps_eff = | c_e g/e + (e g / 2 pi^2) sum_{l = mu, tau} c_l I_l(m^2) |,
  I_l(q^2) = integral_0^1 x(1-x) ln[(Lambda^2)/(m_l^2 - x(1-x) q^2)] dx (complex above 2 m_l, modulus
  taken at the end) -- the mu/tau loop that mixes the vector with the photon. For c_mu = -c_tau (L_mu -
  L_tau) the scale Lambda drops out; otherwise the loop is UV sensitive and its value is fixed by the
  condition "no mixing at Lambda = ``loop_scale_GeV``" [APPROX, default m_tau]. The electron loop is
  neglected next to the tree coupling, and the induced electron coupling is taken with the sign of the
  loop lepton's charge (Q_l Q_e = +1) [APPROX].
* Decays from the base class (``neutrino_helicities`` 1 or 2 per flavour). The chi channel: a Dirac
  fermion or complex scalar with alpha_chi = (c_chi g)^2/(4 pi) + alpha_D, where alpha_D is a fixed
  coupling independent of g (``dark.alpha_d``; the chi mass and kind always come from ``dark``). With
  only c_chi the model is a pure coupling-ratio model (BR_inv independent of g); with alpha_D > 0 and
  visible channels, BR_inv depends on g.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ... import published
from ...errors import InputError
from . import widths
from .base import DarkMatter, VectorCouplings, VectorMediator, _finite, register
from .lmu_ltau import loop_f

__all__ = ["UserVector"]


@register("vector")
@dataclass(frozen=True)
class UserVector(VectorMediator):
    """Vector with couplings c_f g to SM leptons and c_chi g (+ fixed alpha_D) to chi.

    Examples:
        >>> from na64ana.physics import models
        >>> v = models.get("vector", g=1e-4, c_e=1.0, c_nu_e=1.0)
        >>> round(float(v.br_invisible(0.01)), 3)     # nu_e nubar_e (LH) vs e+e-: 1/(1 + 2)
        0.333
        >>> lmt = models.get("vector", g=1e-3, c_mu=1.0, c_tau=-1.0, c_nu_mu=1.0, c_nu_tau=-1.0)
        >>> round(float(1e-3 / lmt.eps_eff(1e-4)), 1)  # = L_mu - L_tau
        69.3
    """

    limited_coupling = "g"
    coupling_label = "g_Z'"
    g: float = 1.0
    c_e: float = 0.0
    c_mu: float = 0.0
    c_tau: float = 0.0
    c_nu_e: float = 0.0
    c_nu_mu: float = 0.0
    c_nu_tau: float = 0.0
    c_chi: float = 0.0
    neutrino_helicities: int = 1  # type: ignore[misc]
    loop_scale_GeV: float = field(default_factory=lambda: float(published.get("physics.models.tau_mass_GeV")))
    dark: DarkMatter | None = field(default=None)

    def __post_init__(self) -> None:
        _finite(self.g, "g")
        for name in ("c_e", "c_mu", "c_tau", "c_nu_e", "c_nu_mu", "c_nu_tau", "c_chi"):
            v = float(getattr(self, name))
            if not math.isfinite(v):
                raise InputError(f"must be a finite number, got {v!r}", field=name)
        _finite(self.loop_scale_GeV, "loop_scale_GeV", positive=True)
        if self.neutrino_helicities not in (1, 2):
            raise InputError(f"must be 1 (left-handed) or 2 (Dirac), got {self.neutrino_helicities!r}",
                             field="neutrino_helicities")
        if self.c_chi != 0 and self.dark is None:
            object.__setattr__(self, "dark", DarkMatter(alpha_d=0.0))

    def lepton_couplings(self) -> VectorCouplings:
        g = self.g
        return VectorCouplings(e=self.c_e * g, mu=self.c_mu * g, tau=self.c_tau * g, nu_e=self.c_nu_e * g,
                               nu_mu=self.c_nu_mu * g, nu_tau=self.c_nu_tau * g)

    def loop_part(self, mass: float | np.ndarray) -> np.ndarray:
        """The mu/tau loop contribution to the electron coupling in units of e, per unit g (complex)."""
        pub = published.get
        e = math.sqrt(4 * math.pi * pub("physics.alpha_em"))
        q2 = np.atleast_1d(np.asarray(mass, dtype=float)) ** 2
        lam2 = self.loop_scale_GeV**2
        total = np.zeros(q2.shape, dtype=complex)
        leptons = ((self.c_mu, pub("physics.muon_mass_GeV")),
                   (self.c_tau, pub("physics.models.tau_mass_GeV")))
        for c, ml in leptons:
            if c != 0:
                total += c * (np.log(lam2 / ml**2) / 6 - loop_f(q2 / ml**2))
        return e / (2 * math.pi**2) * total

    def eps_eff(self, mass: float | np.ndarray) -> np.ndarray:
        """|c_e g/e + loop| (see the module docstring)."""
        m = np.asarray(mass, dtype=float)
        e = math.sqrt(4 * math.pi * published.get("physics.alpha_em"))
        val = np.abs(self.g * (self.c_e / e + self.loop_part(np.atleast_1d(m))))
        return np.reshape(val, m.shape)

    def partial_widths(self, mass: float | np.ndarray) -> dict[str, np.ndarray]:
        out = super().partial_widths(mass)
        if self.dark is not None:
            m = np.asarray(mass, dtype=float)
            alpha = self.dark.alpha_d + (self.c_chi * self.g) ** 2 / (4 * math.pi)
            f = widths.vector_to_fermions if self.dark.kind == "fermion" else widths.vector_to_scalars
            out["chi_chi"] = f(m, alpha, self.dark.mass(m))
        return out
