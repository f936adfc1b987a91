"""Two-body decay widths of a vector mediator V, as functions of the coupling (GeV units).

Why separate functions: every vector model (dark photon, L_mu - L_tau, B-L, a user-defined vector) decays
through the same few channels and differs only in its couplings, so the model classes combine these.
A coupling enters as alpha_g = g^2/(4 pi) (for the dark photon g = eps e, i.e. alpha_g = eps^2 alpha).
All widths are 0 below threshold (closed, never NaN).
"""

from __future__ import annotations

import numpy as np

from ... import published

__all__ = ["two_body_beta", "vector_to_fermions", "vector_to_neutrinos", "vector_to_scalars",
           "width_chichi_dirac",
           "width_chichi_scalar", "width_ll"]


def two_body_beta(mass: float | np.ndarray, m_daughter: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(r, beta) with r = m_d^2/M^2 and beta = sqrt(1 - 4 r) (0 below threshold)."""
    r = np.asarray(m_daughter, dtype=float) ** 2 / np.asarray(mass, dtype=float) ** 2
    return r, np.sqrt(np.clip(1.0 - 4.0 * r, 0.0, None))


def vector_to_fermions(mass: float | np.ndarray, alpha_g: float | np.ndarray, m_f: float | np.ndarray
                       ) -> np.ndarray:
    """Gamma(V -> f fbar), vector coupling, Dirac f: (alpha_g/3) M (1 + 2r) sqrt(1 - 4r) (S001 eqs. 3-4)."""
    m = np.asarray(mass, dtype=float)
    r, b = two_body_beta(m, m_f)
    return np.asarray(alpha_g, dtype=float) / 3.0 * m * (1 + 2 * r) * b


def vector_to_scalars(mass: float | np.ndarray, alpha_g: float | np.ndarray, m_s: float | np.ndarray
                      ) -> np.ndarray:
    """Gamma(V -> phi phi*), complex scalar: (alpha_g/12) M (1 - 4r)^(3/2) (brief 8.1 [UNVERIFIED])."""
    m = np.asarray(mass, dtype=float)
    _, b = two_body_beta(m, m_s)
    return np.asarray(alpha_g, dtype=float) / 12.0 * m * b**3


def vector_to_neutrinos(mass: float | np.ndarray, alpha_g: float | np.ndarray, helicities: int = 1
                        ) -> np.ndarray:
    """Gamma(V -> nu nubar) for one flavour: g^2 M/(24 pi) = (alpha_g/6) M per helicity state.

    ``helicities`` = 1 for Standard-Model (left-handed) neutrinos, 2 for Dirac neutrinos with a
    right-handed partner (DMG4's B-L convention, brief_extensions 5).
    """
    return helicities * np.asarray(alpha_g, dtype=float) / 6.0 * np.asarray(mass, dtype=float)


def width_ll(mass: float | np.ndarray, eps: float, m_lepton: float | None = None) -> np.ndarray:
    """Gamma(A' -> l+ l-) of the dark photon in GeV (S001 eq. 3); default lepton e, as DMG4 Width()."""
    ml = published.get("physics.electron_mass_GeV") if m_lepton is None else m_lepton
    return vector_to_fermions(mass, published.get("physics.alpha_em") * eps**2, ml)


def width_chichi_dirac(mass: float | np.ndarray, alpha_d: float, m_chi: float | np.ndarray) -> np.ndarray:
    """Gamma(A' -> chi chibar), Dirac fermion chi (S001 eq. 4), GeV."""
    return vector_to_fermions(mass, alpha_d, m_chi)


def width_chichi_scalar(mass: float | np.ndarray, alpha_d: float, m_chi: float | np.ndarray) -> np.ndarray:
    """Gamma(A' -> chi chi*), complex scalar chi: (alpha_D/12) m (1 - 4 m_chi^2/m^2)^(3/2) (brief 8.1)."""
    return vector_to_scalars(mass, alpha_d, m_chi)
