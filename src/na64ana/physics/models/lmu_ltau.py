"""The L_mu - L_tau Z': gauge boson of muon minus tau lepton number (brief_extensions 5).

Why a class: it has no tree-level electron coupling, so on an electron beam it is produced only through
the mu/tau loop that mixes it with the photon; its production is the dark photon's with
eps -> eps_eff(m), and it decays (below 2 m_mu) only to neutrinos, so BR_inv = 1 there.

Loop [CODE DMG4, DarkCast; brief_extensions 5]:
eps_eff(q^2) = (e g / 2 pi^2) integral_0^1 dx x(1-x) ln[(m_tau^2 - x(1-x) q^2) / (m_mu^2 - x(1-x) q^2)],
-> g/69.3 for q^2 -> 0; above q^2 = 4 m_mu^2 the logarithm is complex (q^2 + i0) and |Pi(q^2)| is used.
The x integral is done in closed form (:func:`loop_integral`, checked against quadrature in the tests):
F(z) = integral_0^1 x(1-x) ln(1 - x(1-x) z) dx = -5/18 - 2/(3z) + (1/6)(1 + 2/z) beta ln((beta+1)/(beta-1)),
beta = sqrt(1 - 4/z) (a power series for |z| < 1, where the closed form cancels).

Widths: Gamma(nu nu) = g^2 m/(12 pi) (one helicity each of nu_mu and nu_tau), Gamma(mu mu) =
g^2 m/(12 pi)(1 + 2r) sqrt(1 - 4r), r = m_mu^2/m^2, Gamma(tau tau) likewise; from the base class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ... import published
from .base import DarkMatter, VectorCouplings, VectorMediator, _finite, register

__all__ = ["LMuLTau", "loop_f", "loop_integral", "loop_mixing_per_g"]

_SERIES_TERMS = 16


def _series_f(z: np.ndarray) -> np.ndarray:
    """F(z) = -sum_n z^n/n B(n+2, n+2) for |z| < 1 (B: Euler beta; terms fall like (z/4)^n)."""
    out = np.zeros_like(z, dtype=complex)
    for n in range(1, _SERIES_TERMS + 1):
        beta_fn = math.factorial(n + 1) ** 2 / math.factorial(2 * n + 3)
        out -= z**n / n * beta_fn
    return out


def loop_f(z: float | np.ndarray) -> np.ndarray:
    """F(z) = integral_0^1 x(1-x) ln(1 - x(1-x)(z + i0)) dx, complex (imaginary part -pi ... above z = 4)."""
    zr = np.atleast_1d(np.asarray(z, dtype=float))
    out = np.empty(zr.shape, dtype=complex)
    small = np.abs(zr) < 1.0
    out[small] = _series_f(zr[small].astype(complex))
    zl = zr[~small].astype(complex) + 1e-300j
    b = np.sqrt(1 - 4 / zl)
    out[~small] = -5 / 18 - 2 / (3 * zl) + (1 + 2 / zl) / 6 * b * np.log((b + 1) / (b - 1))
    return out if np.ndim(z) else out[:1]


def loop_integral(q2: float | np.ndarray, m_light: float, m_heavy: float) -> np.ndarray:
    """integral_0^1 x(1-x) ln[(m_heavy^2 - x(1-x) q^2)/(m_light^2 - x(1-x) q^2)] dx, complex (q^2 + i0)."""
    q = np.atleast_1d(np.asarray(q2, dtype=float))
    return np.log(m_heavy**2 / m_light**2) / 6 + loop_f(q / m_heavy**2) - loop_f(q / m_light**2)


def loop_mixing_per_g(mass: float | np.ndarray) -> np.ndarray:
    """|eps_eff(q^2 = m^2)| / g of L_mu - L_tau: (e / 2 pi^2) |integral ...| (-> 1/69.3 at m -> 0)."""
    g = published.get
    e = math.sqrt(4 * math.pi * g("physics.alpha_em"))
    m = np.atleast_1d(np.asarray(mass, dtype=float))
    val = e / (2 * math.pi**2) * np.abs(loop_integral(m**2, g("physics.muon_mass_GeV"),
                                                      g("physics.models.tau_mass_GeV")))
    return val if np.ndim(mass) else val[:1]


@register("lmu_ltau")
@dataclass(frozen=True)
class LMuLTau(VectorMediator):
    """L_mu - L_tau Z' with gauge coupling ``g`` (charges +1 for mu, nu_mu; -1 for tau, nu_tau).

    ``dark`` (default None): an optional chi channel with its own alpha_D (then BR_inv depends on g).

    Examples:
        >>> from na64ana.physics import models
        >>> z = models.get("lmu_ltau", g=1e-3)
        >>> round(float(1e-3 / z.eps_eff(1e-4)), 1)   # the loop factor at q^2 -> 0
        69.3
        >>> float(z.br_invisible(0.1))                # below 2 m_mu only nu nu
        1.0
    """

    limited_coupling = "g"
    #: the coupling's name in limits records and plots
    coupling_label = "g_mu-tau"
    g: float = 1.0
    dark: DarkMatter | None = field(default=None)

    def __post_init__(self) -> None:
        _finite(self.g, "g")

    def lepton_couplings(self) -> VectorCouplings:
        return VectorCouplings(mu=self.g, tau=-self.g, nu_mu=self.g, nu_tau=-self.g)

    def eps_eff(self, mass: float | np.ndarray) -> np.ndarray:
        """Loop-induced mixing |Pi(m^2)| at q^2 = m^2 (no tree-level electron coupling)."""
        m = np.asarray(mass, dtype=float)
        return np.reshape(abs(self.g) * loop_mixing_per_g(np.atleast_1d(m)), m.shape)
