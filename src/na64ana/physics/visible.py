"""Visible-mode physics: A' (X17) produced in a tungsten calorimeter that decays to e+ e- downstream of it.

Why a separate module: in the visible mode the signal is not "an A' escapes" but "an A' survives the WCAL
(and its veto) and decays before the ECAL", so the yield is no longer proportional to eps^2 -- it is
eps^2 x P_decay(eps), and the excluded region is a band in eps. This module supplies

* the setups as data (``data/visible_setup.toml``), loaded into pydantic models with one-line
  :class:`~na64ana.errors.InputError` s naming file and field;
* the widths Gamma(A' -> e+e-, mu+mu-), the decay length l = (p/m) c tau and the decay probability
  P = exp(-L_sh/l) - exp(-(L_sh + L_dec)/l) (brief_extensions 6);
* the A' production spectrum per EOT in tungsten, computed at eps = 1 and then folded with P(E_A', eps)
  inside the integral over E_A' -- exact in eps^2 x P(eps), vectorised over eps.

Production model (APPROX, also recorded in the setup file): the bremsstrahlung total is the package's WW
formula with the *tungsten* elastic form factor (Phi with Z = 74, A = 183.84) divided by the DMG4 k-factor,
whose table is for Pb (k depends on Z, A at the 0.5% level, brief 8.4); the x-shape is DMG4's; the e+- track
length is the package's Pb cascade table in X0/GeV, which in units of u = E/E0 is nearly
material-independent (Rossi approximation A has no Z); target density is (N_A X0/A) of tungsten. The A' is
taken to be produced at the WCAL front face (the shower maximum at E_A' > E0/4 is within the first few X0),
so the whole WCAL + veto length shields it -- a conservative choice for the lower (large-eps) edge.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .. import published
from ..errors import InputError, from_validation
from .production import brem as xs
from .shower import track_length_table

__all__ = [
    "AprimeSpectrum",
    "Quantity",
    "Setup",
    "VisibleSetups",
    "aprime_spectrum",
    "atoms_per_x0_cm2",
    "DecayFold",
    "ctau_cm",
    "decay_fold",
    "decay_length_cm",
    "decay_probability",
    "hbar_c_GeV_cm",
    "load_setups",
    "setup_for_campaign",
    "width_ee",
    "width_mumu",
    "width_total",
    "yield_per_eot",
]

SETUP_FILE = "data/visible_setup.toml"
_PB_TO_CM2 = 1e-36
_MM_TO_CM = 0.1
_GL_X, _GL_W = np.polynomial.legendre.leggauss(8)


# --------------------------------------------------------------------------------------------------
# Setup as data


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Quantity(_Strict):
    """A number with its provenance: a ``source`` (published) or an ``approx`` note (a modelling choice)."""

    value: float | str | list[float]
    unc: float | None = Field(None, ge=0)
    source: str | None = None
    approx: str | None = None
    note: str | None = None

    @model_validator(mode="after")
    def _cited(self) -> Quantity:
        if not (self.source or self.approx):
            raise ValueError("needs a 'source' or an 'approx' note")
        return self

    @property
    def f(self) -> float:
        """The value as a float (a list or string value is an error here)."""
        if isinstance(self.value, (list, str)):
            raise TypeError(f"not a scalar: {self.value!r}")
        return float(self.value)


class Material(_Strict):
    name: str
    Z: Quantity
    A: Quantity
    X0_g_cm2: Quantity
    X0_cm: Quantity


class Setup(_Strict):
    """One visible-mode configuration (a run): geometry, beam, efficiencies, background, EOT."""

    name: str = ""
    campaign: str
    run: str
    year: int
    beam_particle: Literal["e-", "e+"]
    beam_energy_GeV: Quantity
    wcal_X0: Quantity
    wcal_length_mm: Quantity
    veto_name: str
    veto_length_mm: Quantity
    ecal_z_mm: Quantity
    s4_z_mm: Quantity
    v3_z_mm: Quantity
    hcal_z_mm: Quantity
    eot: Quantity
    pileup_loss: Quantity
    background: Quantity

    @model_validator(mode="after")
    def _geometry(self) -> Setup:
        for key in ("beam_energy_GeV", "wcal_X0", "wcal_length_mm", "eot"):
            if not getattr(self, key).f > 0:
                raise ValueError(f"{key} must be > 0")
        if not 0 <= self.pileup_loss.f < 1:
            raise ValueError("pileup_loss must be in [0, 1)")
        if self.background.f < 0:
            raise ValueError("background must be >= 0")
        return self

    @property
    def e0(self) -> float:
        return self.beam_energy_GeV.f

    @property
    def shield_cm(self) -> float:
        """L_sh: WCAL + veto length (cm), the path an A' must survive."""
        return (self.wcal_length_mm.f + self.veto_length_mm.f) * _MM_TO_CM

    @property
    def decay_cm(self) -> float:
        """L_dec: from the back of the veto to the ECAL front face (cm)."""
        return self.ecal_z_mm.f * _MM_TO_CM - self.shield_cm


class VisibleSetups(_Strict):
    """The parsed ``visible_setup.toml``."""

    sources: dict[str, str]
    material: Material
    analysis: dict[str, Quantity]
    counters: dict[str, Quantity]
    setups: dict[str, Setup]
    simulation: dict[str, Quantity]

    @field_validator("analysis")
    @classmethod
    def _analysis_keys(cls, v: dict[str, Quantity]) -> dict[str, Quantity]:
        need = {"threshold_fraction", "ecal_min_fraction", "box_fraction", "trigger_efficiency",
                "srd_efficiency", "aprime_yield_unc", "eot_unc"}
        missing = sorted(need - set(v))
        if missing:
            raise ValueError(f"missing entries {missing}")
        return v

    def a(self, key: str) -> float:
        """A scalar analysis constant."""
        return self.analysis[key].f

    def threshold_GeV(self, setup: Setup) -> float:
        """E_A' threshold: 25 GeV at 100 GeV (published), scaled with E0 (APPROX for 150 GeV)."""
        return self.a("threshold_fraction") * setup.e0

    def efficiency(self, setup: Setup) -> float:
        """Signal efficiency of a run: (1 - pile-up loss) x trigger x SRD."""
        return (1.0 - setup.pileup_loss.f) * self.a("trigger_efficiency") * self.a("srd_efficiency")

    def efficiency_unc(self) -> float:
        """Relative efficiency uncertainty: trigger and SRD terms in quadrature."""
        t, s = self.analysis["trigger_efficiency"], self.analysis["srd_efficiency"]
        return math.hypot((t.unc or 0.0) / t.f, (s.unc or 0.0) / s.f)

    def box_GeV(self, setup: Setup) -> tuple[float, float]:
        v = self.analysis["box_fraction"].value
        if not (isinstance(v, list) and len(v) == 2):
            raise InputError("box_fraction must be [lo, hi]", field="analysis.box_fraction")
        return v[0] * setup.e0, v[1] * setup.e0


def _validate(data: Mapping[str, Any], file: str) -> VisibleSetups:
    try:
        out = VisibleSetups.model_validate(data)
    except ValidationError as err:
        raise from_validation(err, file=file) from None
    energies: dict[str, tuple[str, float]] = {}
    for name, s in out.setups.items():
        s.name = name
        if s.decay_cm <= 0:
            raise InputError(
                f"WCAL ({s.wcal_length_mm.f:g} mm) + {s.veto_name} ({s.veto_length_mm.f:g} mm) reach the "
                f"ECAL at z = {s.ecal_z_mm.f:g} mm: no decay volume is left", file=file,
                field=f"setups.{name}.wcal_length_mm")
        if not s.shield_cm * 10 < s.s4_z_mm.f < s.ecal_z_mm.f < s.v3_z_mm.f < s.hcal_z_mm.f:
            raise InputError("counters out of order: need WCAL+veto < S4 < ECAL < V3 < HCAL", file=file,
                             field=f"setups.{name}.s4_z_mm")
        seen = energies.setdefault(s.campaign, (name, s.e0))
        if not math.isclose(seen[1], s.e0):
            raise InputError(f"beam energy {s.e0:g} GeV differs from {seen[1]:g} GeV of setup '{seen[0]}' in "
                             f"the same campaign '{s.campaign}'", file=file,
                             field=f"setups.{name}.beam_energy_GeV")
    return out


def load_setups(path: str | Path | None = None) -> VisibleSetups:
    """Parse and validate a visible-setup TOML (default: the packaged ``data/visible_setup.toml``)."""
    if path is None:
        return _default_setups()
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", file=str(p)) from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"not valid TOML: {exc}", file=str(p)) from None
    return _validate(data, str(p))


@cache
def _default_setups() -> VisibleSetups:
    with resources.files("na64ana").joinpath(SETUP_FILE).open("rb") as f:
        return _validate(tomllib.load(f), SETUP_FILE)


def setup_for_campaign(setups: VisibleSetups, name: str, *, campaign: str | None = None,
                       beam_energy_GeV: float | None = None, file: str | None = None) -> Setup:
    """The setup ``name``, checked against the campaign that uses it (its name and beam energy)."""
    if name not in setups.setups:
        raise InputError(f"unknown visible setup '{name}' (known: {', '.join(sorted(setups.setups))})",
                         file=file, field="setup")
    s = setups.setups[name]
    if campaign is not None and s.campaign != campaign:
        raise InputError(f"setup '{name}' belongs to campaign '{s.campaign}', not '{campaign}'", file=file,
                         field="setup")
    if beam_energy_GeV is not None and not math.isclose(s.e0, beam_energy_GeV, rel_tol=1e-6):
        raise InputError(f"beam energy {beam_energy_GeV:g} GeV does not match setup '{name}' "
                         f"({s.e0:g} GeV)", file=file, field="beam_energy_GeV")
    return s


# --------------------------------------------------------------------------------------------------
# Widths, lifetimes, decay probability


def hbar_c_GeV_cm() -> float:
    """hbar c in GeV cm, from the package's (hbar c)^2 = 0.3894 mb GeV^2 (one source for both)."""
    return math.sqrt(float(published.get("physics.gev2_to_pb")) * _PB_TO_CM2)


def _two_body(mass: np.ndarray, m_l: float) -> np.ndarray:
    """(1 + 2 r) sqrt(1 - 4 r), r = m_l^2/m^2; 0 below threshold."""
    r = m_l**2 / mass**2
    return np.where(r < 0.25, (1.0 + 2.0 * r) * np.sqrt(np.clip(1.0 - 4.0 * r, 0.0, None)), 0.0)


def width_ee(mass: float | np.ndarray, eps: float | np.ndarray) -> np.ndarray:
    """Gamma(A' -> e+ e-) = (alpha eps^2 m / 3)(1 + 2 m_e^2/m^2) sqrt(1 - 4 m_e^2/m^2), GeV."""
    m = np.asarray(mass, dtype=float)
    alpha = float(published.get("physics.alpha_em"))
    me = float(published.get("physics.electron_mass_GeV"))
    return alpha * np.asarray(eps, dtype=float) ** 2 * m / 3.0 * _two_body(m, me)


def width_mumu(mass: float | np.ndarray, eps: float | np.ndarray) -> np.ndarray:
    """Gamma(A' -> mu+ mu-), same formula with m_mu (0 below 2 m_mu), GeV."""
    m = np.asarray(mass, dtype=float)
    alpha = float(published.get("physics.alpha_em"))
    mmu = float(published.get("physics.muon_mass_GeV"))
    return alpha * np.asarray(eps, dtype=float) ** 2 * m / 3.0 * _two_body(m, mmu)


def width_total(mass: float | np.ndarray, eps: float | np.ndarray) -> np.ndarray:
    """Visible width e+e- + mu+mu- (hadrons, above ~0.5 GeV, are outside the visible-mode mass range)."""
    return width_ee(mass, eps) + width_mumu(mass, eps)


def ctau_cm(mass: float | np.ndarray, eps: float | np.ndarray) -> np.ndarray:
    """c tau = hbar c / Gamma_tot in cm (inf below the e+e- threshold)."""
    g = width_total(mass, eps)
    with np.errstate(divide="ignore"):
        return np.where(g > 0, hbar_c_GeV_cm() / np.where(g > 0, g, 1.0), np.inf)


def decay_length_cm(energy: float | np.ndarray, mass: float | np.ndarray, eps: float | np.ndarray
                    ) -> np.ndarray:
    """Lab decay length l = (p/m) c tau, p = sqrt(E^2 - m^2) (= (E/m) c tau to m^2/E^2 ~ 1e-7), cm."""
    e = np.asarray(energy, dtype=float)
    m = np.asarray(mass, dtype=float)
    p = np.sqrt(np.clip(e**2 - m**2, 0.0, None))
    return p / m * ctau_cm(m, eps)


def decay_probability(energy: float | np.ndarray, mass: float | np.ndarray, eps: float | np.ndarray,
                      shield_cm: float, decay_cm: float) -> np.ndarray:
    """P(decay in [L_sh, L_sh + L_dec]) = exp(-L_sh/l) - exp(-(L_sh + L_dec)/l), computed stably.

    Written as exp(-L_sh/l) (1 - exp(-L_dec/l)) with expm1, so the long-lifetime limit L_dec/l is exact
    (no cancellation) and the short-lifetime limit underflows cleanly to 0."""
    inv_l = 1.0 / decay_length_cm(energy, mass, eps)
    return np.exp(-shield_cm * inv_l) * -np.expm1(-decay_cm * inv_l)


# --------------------------------------------------------------------------------------------------
# Production in tungsten and the yield


def atoms_per_x0_cm2(setups: VisibleSetups | None = None) -> float:
    """(N_A X0 / A) of tungsten: nuclei per cm^2 in one radiation length (2.214e22)."""
    mat = (setups or _default_setups()).material
    return float(published.get("physics.avogadro")) * mat.X0_g_cm2.f / mat.A.f


@dataclass(frozen=True)
class AprimeSpectrum:
    """A' produced per EOT in tungsten at eps = 1, binned in E_A' (``counts[j]`` in bin j, per EOT)."""

    mass_GeV: float
    e0: float
    edges: np.ndarray
    counts: np.ndarray

    @property
    def centres(self) -> np.ndarray:
        return 0.5 * (self.edges[:-1] + self.edges[1:])

    def total(self) -> float:
        return float(self.counts.sum())


def _tungsten_sigma(mass: float, energies: np.ndarray, xsec: str, z: float, a_mass: float) -> np.ndarray:
    """Brem total on W (pb, eps = 1): the Pb total x Phi_W / Phi_Pb (only Phi depends on the target)."""
    sigma_pb = xs.sigma_total(mass, energies, 1.0, xsec)
    return sigma_pb * xs.phi_elastic(mass, energies, z=z, a_mass=a_mass) / xs.phi_elastic(mass, energies)


@lru_cache(maxsize=512)
def _spectrum(mass: float, e0: float, e_min: float, n_bins: int, xsec: str) -> AprimeSpectrum:
    setups = _default_setups()
    tab = track_length_table()
    u_lo = e_min / e0
    u = np.concatenate([[u_lo], tab.edges[tab.edges > u_lo]])
    path = tab.cumulative_above(u[:-1]) - tab.cumulative_above(u[1:])  # X0 of e+- path per emitter bin
    energies = e0 * 0.5 * (u[:-1] + u[1:])
    mat = setups.material
    sigma = _tungsten_sigma(mass, energies, xsec, mat.Z.f, mat.A.f)
    xmin, xmax = xs.x_range(mass, energies)
    open_ = xmax > xmin
    total = xs.shape_integral(mass, energies)
    edges = np.linspace(e_min, e0, n_bins + 1)
    # x-integral of S over each E_A' bin for each emitter: Gauss-Legendre in w = ln(1 - x) per (emitter, bin)
    # (S ~ 1/(1 - x) near x_max, so S (1 - x) is smooth in w); ~20x cheaper than cumulative integrals per edge
    x_lo = np.clip(edges[None, :-1] / energies[:, None], xmin[:, None], xmax[:, None])
    x_hi = np.clip(edges[None, 1:] / energies[:, None], xmin[:, None], xmax[:, None])
    live = np.nonzero(x_hi > x_lo)  # (emitter, bin) pairs with phase space: E_A' bin below the emitter
    wa, wb = np.log1p(-x_lo[live]), np.log1p(-x_hi[live])  # wa > wb
    half = 0.5 * (wa - wb)
    w = wb[:, None] + half[:, None] * (_GL_X + 1.0)
    x = -np.expm1(w)
    vals = xs.shape_s(x, mass, energies[live[0]][:, None]) * (1.0 - x)
    in_bin = np.zeros(x_lo.shape)
    in_bin[live] = (vals @ _GL_W) * half  # (E, bins)
    frac = np.where(open_[:, None], in_bin / np.where(open_, total, 1.0)[:, None], 0.0)
    weight = np.where(open_, sigma, 0.0) * path
    counts = atoms_per_x0_cm2(setups) * _PB_TO_CM2 * (weight @ frac)
    counts.setflags(write=False)
    edges.setflags(write=False)
    return AprimeSpectrum(mass_GeV=mass, e0=e0, edges=edges, counts=counts)


def aprime_spectrum(mass_GeV: float, e0: float, e_min: float, *, n_bins: int = 150, xsec: str = "etl"
                    ) -> AprimeSpectrum:
    """A' per EOT at eps = 1 produced in tungsten with E_A' in [e_min, E0], in ``n_bins`` equal bins.

    Cached per arguments. The masses must lie inside the DMG4 k-factor table for ``xsec='etl'``."""
    m = float(xs.check_mass(float(mass_GeV), e0, xsec))
    lo = track_length_table().config.u_min * e0
    if not (math.isfinite(e_min) and lo <= e_min < e0 and e_min > m):
        raise InputError(f"E_A' threshold {e_min!r} GeV must be in [{lo:g}, {e0:g}) GeV and above the mass",
                         field="threshold")
    if int(n_bins) < 1:
        raise InputError(f"need at least one bin, got {n_bins!r}", field="n_bins")
    return _spectrum(m, float(e0), float(e_min), int(n_bins), xsec)


@dataclass(frozen=True)
class DecayFold:
    """n(eps) = eps^2 sum_j N_j exp(-a_j eps^2) (1 - exp(-b_j eps^2)) for one mass and one setup.

    With c tau = c tau_1 / eps^2 (the width is proportional to eps^2), L/l_j = (L m / (p_j c tau_1)) eps^2,
    so the production spectrum N_j (eps = 1) and two coefficient vectors give the yield at any eps with no
    further physics calls: this is what makes thousands of evaluations per mass (root finding) cheap."""

    counts: np.ndarray
    a: np.ndarray
    b: np.ndarray

    def __call__(self, eps: float | np.ndarray) -> np.ndarray:
        e2 = np.asarray(eps, dtype=float)[..., None] ** 2
        return e2[..., 0] * ((np.exp(-self.a * e2) * -np.expm1(-self.b * e2)) @ self.counts)


def decay_fold(mass_GeV: float, setup: Setup, *, setups: VisibleSetups | None = None, xsec: str = "etl",
               n_bins: int = 150) -> DecayFold:
    """The :class:`DecayFold` of ``setup`` at ``mass_GeV`` (production spectrum above the setup threshold)."""
    setups = setups or _default_setups()
    spec = aprime_spectrum(mass_GeV, setup.e0, setups.threshold_GeV(setup), n_bins=n_bins, xsec=xsec)
    m = spec.mass_GeV
    ctau1 = float(ctau_cm(m, 1.0))
    p = np.sqrt(np.clip(spec.centres**2 - m**2, 0.0, None))
    inv_l1 = m / (p * ctau1) if math.isfinite(ctau1) else np.zeros_like(p)  # 1/l at eps = 1, per cm
    return DecayFold(counts=spec.counts, a=setup.shield_cm * inv_l1, b=setup.decay_cm * inv_l1)


def yield_per_eot(mass_GeV: float, eps: float | np.ndarray, setup: Setup, *,
                  setups: VisibleSetups | None = None, xsec: str = "etl", n_bins: int = 150) -> np.ndarray:
    """A' per EOT with E_A' above threshold that decay between the veto and the ECAL, for each ``eps``.

    n(eps) = eps^2 sum_j N_j P(E_j, eps): the production spectrum at eps = 1 times the decay probability,
    inside the E_A' integral (bin centres of ``n_bins`` equal E_A' bins). No detector efficiency (that is
    per run, in the summary). Below the e+e- threshold the A' never decays: 0."""
    eps_arr = np.asarray(eps, dtype=float)
    if not np.all(np.isfinite(eps_arr)) or np.any(eps_arr < 0):
        raise InputError(f"eps must be finite and >= 0, got {eps!r}", field="eps")
    return decay_fold(mass_GeV, setup, setups=setups, xsec=xsec, n_bins=n_bins)(eps_arr)
