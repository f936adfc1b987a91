"""Resonant annihilation e+ e- -> A' -> invisible of shower positrons on atomic electrons (brief_ext. 2).

Why: a positron of energy E_+ meeting an atomic electron at rest makes an on-shell A' when
s = 2 m_e E_+ + 2 m_e^2 = M^2, i.e. at E_R = (M^2 - 2 m_e^2)/(2 m_e). The A' then carries the whole positron
energy, so the missing energy is a line, E_miss = E_R, not a continuum. With a 100 GeV beam and the box
E_ECAL < 50 GeV only E_R > 50 GeV counts: M in [sqrt(2 m_e E_miss,min), sqrt(2 m_e E0)] = [0.226, 0.320] GeV,
where the yield is ~20x the bremsstrahlung one [DMG4 DarkPhotonsAnnihilation; NA64 2021].

Cross section per atom (Z electrons; Breit-Wigner, brief_extensions 2 [CODE]):
sigma(E_+) = Z 4 pi alpha eps^2 alpha_D (q/sqrt(s)) K / [(s - M^2)^2 + M^2 Gamma^2], q = sqrt(s/4 - m_chi^2),
K = s - 4q^2/3 (Dirac chi) or 2q^2/3 (complex scalar chi). Since
alpha_D (q/sqrt(s)) K = sqrt(s) Gamma_chichi(sqrt(s)), its integral over E_+ is, for Gamma << M
[DERIVED, re-derived here],
integral sigma dE_+ = Z 2 pi^2 alpha eps^2 BR_inv / m_e  (times (hbar c)^2 for an area),
so the thick-target yield is the narrow-width formula of :func:`narrow_width_strength`. Units: GeV, pb.

Options (both off by default, i.e. a free electron at rest and a sharp E_miss cut):
:class:`DopplerModel` smears the resonance over the longitudinal momentum p_z of bound electrons
[APPROX: s = 2 m_e^2 + 2 E_+ (m_e - p_z), binding and the flux-factor change neglected], and
:func:`line_fraction_in_box` gives the fraction of the E_miss line kept by an E_ECAL box edge with the
ECAL resolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from ... import published
from ...errors import InputError

__all__ = ["DopplerModel", "line_fraction_in_box", "mandelstam_s", "mass_at_resonance", "mass_window",
           "narrow_width_strength", "resonance_energy", "sigma_breit_wigner"]

DM_KINDS = ("fermion", "scalar")


def _p(key: str) -> float:
    return float(published.get(key))


def mandelstam_s(energy: float | np.ndarray) -> np.ndarray:
    """s = 2 m_e E_+ + 2 m_e^2 (GeV^2) for a positron of energy E_+ on an electron at rest."""
    me = _p("physics.electron_mass_GeV")
    return 2 * me * np.asarray(energy, dtype=float) + 2 * me**2


def resonance_energy(mass: float | np.ndarray) -> np.ndarray:
    """E_R = (M^2 - 2 m_e^2)/(2 m_e): the positron energy that makes an on-shell mediator of mass M.

    Examples:
        >>> from na64ana.physics.production import annihilation
        >>> round(float(annihilation.resonance_energy(0.237)), 1)   # brief_extensions 2: 55.1 GeV
        55.0
    """
    me = _p("physics.electron_mass_GeV")
    return (np.asarray(mass, dtype=float) ** 2 - 2 * me**2) / (2 * me)


def mass_at_resonance(energy: float | np.ndarray) -> np.ndarray:
    """Inverse of :func:`resonance_energy`: M = sqrt(2 m_e E + 2 m_e^2)."""
    return np.sqrt(mandelstam_s(energy))


def mass_window(e0: float = 100.0, emiss_min: float = 50.0) -> tuple[float, float]:
    """Masses whose line E_miss = E_R lies in [emiss_min, e0]: (sqrt(s(emiss_min)), sqrt(s(e0))).

    Examples:
        >>> from na64ana.physics.production import annihilation
        >>> [round(m, 3) for m in annihilation.mass_window(100.0, 50.0)]
        [0.226, 0.32]
    """
    if not (math.isfinite(e0) and e0 > 0):
        raise InputError(f"beam energy must be > 0 GeV, got {e0!r}", field="e0")
    if not (math.isfinite(emiss_min) and 0 <= emiss_min < e0):
        raise InputError(f"emiss_min must be in [0, {e0:g}) GeV, got {emiss_min!r}", field="emiss_min")
    return float(mass_at_resonance(emiss_min)), float(mass_at_resonance(e0))


def narrow_width_strength(eps: float = 1.0, br_inv: float = 1.0, z: float | None = None) -> float:
    """integral sigma(E_+) dE_+ per atom in the narrow-width limit, pb GeV: Z 2 pi^2 alpha eps^2 BR_inv/m_e.

    Multiplied by T_+(E_R) (X0/GeV) and the atoms per X0 it is the yield per beam particle. Default Z: lead.

    Examples:
        >>> from na64ana.physics.production import annihilation
        >>> per_electron = annihilation.narrow_width_strength(1e-4, z=1) * 1e-36   # cm^2 GeV
        >>> round(per_electron / 1e-33, 3)   # brief_extensions 2: 1.0976e-33 cm^2 GeV
        1.098
    """
    z = _p("physics.pb_Z") if z is None else float(z)
    alpha, me = _p("physics.alpha_em"), _p("physics.electron_mass_GeV")
    return z * 2 * math.pi**2 * alpha * eps**2 * br_inv / me * _p("physics.gev2_to_pb")


def sigma_breit_wigner(energy: float | np.ndarray, mass: float | np.ndarray, eps: float, *, alpha_d: float,
                       m_chi: float | np.ndarray, total_width: float | np.ndarray, dm: str = "fermion",
                       z: float | None = None) -> np.ndarray:
    """sigma(e+ e- -> A' -> chi chi) per atom in pb at positron energy ``energy`` (brief_extensions 2).

    ``total_width``: Gamma_tot(M) in GeV (from the model, :meth:`VectorMediator.total_width`). 0 below the
    chi chi threshold. Default Z: lead.
    """
    if dm not in DM_KINDS:
        raise InputError(f"unknown dark-matter kind '{dm}' (choose one of {', '.join(DM_KINDS)})", field="dm")
    z = _p("physics.pb_Z") if z is None else float(z)
    alpha = _p("physics.alpha_em")
    s = mandelstam_s(energy)
    m2 = np.asarray(mass, dtype=float) ** 2
    q2 = np.clip(s / 4 - np.asarray(m_chi, dtype=float) ** 2, 0.0, None)
    k = s - 4 * q2 / 3 if dm == "fermion" else 2 * q2 / 3
    gam = np.asarray(total_width, dtype=float)
    num = z * 4 * math.pi * alpha * eps**2 * alpha_d * np.sqrt(q2 / s) * k
    return num / ((s - m2) ** 2 + m2 * gam**2) * _p("physics.gev2_to_pb")


def line_fraction_in_box(e_miss: float | np.ndarray, e0: float, ecal_max: float, *,
                         stochastic: float | None = None) -> np.ndarray:
    """Fraction of a line E_ECAL = e0 - e_miss measured below ``ecal_max`` with sigma_E = a sqrt(E_ECAL).

    ``stochastic``: a in GeV^(1/2) (default: the published ECAL 0.1/sqrt(E)). A box edge per run gives one
    fraction per run; 1/2 exactly at the edge.
    """
    a = _p("detector.ecal_resolution_stochastic") if stochastic is None else float(stochastic)
    if not (math.isfinite(a) and a >= 0):
        raise InputError(f"ECAL stochastic term must be >= 0, got {stochastic!r}", field="stochastic")
    e_ecal = e0 - np.asarray(e_miss, dtype=float)
    sigma = a * np.sqrt(np.clip(e_ecal, 0.0, None))
    diff = ecal_max - e_ecal
    sharp = np.where(diff > 0, 1.0, np.where(diff < 0, 0.0, 0.5))
    return np.where(sigma > 0, special.ndtr(diff / np.where(sigma > 0, sigma, 1.0)), sharp)


@dataclass(frozen=True)
class DopplerModel:
    """Longitudinal momenta of the target electrons as discrete nodes: p_z/m_e with probabilities.

    The free electron at rest (the default of the yields) is ``DopplerModel.free()``. A resonance at
    E_R(p_z) = (M^2 - 2 m_e^2)/(2 (m_e - p_z)) with strength scaled by m_e/(m_e - p_z) replaces the single
    line. [APPROX] A realistic lead profile (K-shell p ~ Z alpha m_e ~ 0.6 m_e, outer shells much softer) is
    an input (e.g. a Compton profile tabulated as nodes); :meth:`gaussian` is a one-scale stand-in.
    """

    pz_over_me: tuple[float, ...] = (0.0,)
    weights: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        pz, w = np.asarray(self.pz_over_me, dtype=float), np.asarray(self.weights, dtype=float)
        if pz.shape != w.shape or pz.ndim != 1 or pz.size == 0:
            raise InputError("pz_over_me and weights must be equal-length, non-empty sequences",
                             field="doppler")
        if not (np.all(np.isfinite(pz)) and np.all(np.abs(pz) < 1) and np.all(w >= 0) and w.sum() > 0):
            raise InputError("need |p_z| < m_e and non-negative weights", field="doppler")

    @classmethod
    def free(cls) -> DopplerModel:
        return cls()

    @classmethod
    def gaussian(cls, sigma_pz_over_me: float, nodes: int = 21) -> DopplerModel:
        """p_z/m_e Gaussian with the given width (Gauss-Hermite nodes, truncated at |p_z| < 0.95 m_e)."""
        if not (math.isfinite(sigma_pz_over_me) and 0 <= sigma_pz_over_me < 0.3):
            raise InputError(f"sigma_pz_over_me must be in [0, 0.3), got {sigma_pz_over_me!r}",
                             field="doppler")
        x, w = np.polynomial.hermite_e.hermegauss(nodes)
        pz = sigma_pz_over_me * x
        keep = np.abs(pz) < 0.95
        return cls(tuple(pz[keep].tolist()), tuple((w[keep] / w[keep].sum()).tolist()))

    def nodes(self) -> tuple[np.ndarray, np.ndarray]:
        """(1 - p_z/m_e, normalised weights)."""
        w = np.asarray(self.weights, dtype=float)
        return 1.0 - np.asarray(self.pz_over_me, dtype=float), w / w.sum()
