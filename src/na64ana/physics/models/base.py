"""Vector-mediator models: a mediator is its couplings; production and decays follow from them.

Why: the missing-energy data constrain any new vector boson that couples to electrons and decays
invisibly. Production (bremsstrahlung, annihilation) only needs the effective electron coupling in units
of e, eps_eff(m), and the invisible branching ratio; everything else (which coupling is limited, the
dark-matter reinterpretation) is the model's business. A new mediator is a subclass of
:class:`VectorMediator` that states its couplings (and overrides :meth:`VectorMediator.eps_eff` when the
electron coupling is loop induced, as for L_mu - L_tau), registered by name with :func:`register`.

Conventions: couplings g_f are the vector couplings to SM fermions (not in units of e); neutrinos couple
through their left-handed component (``neutrino_helicities`` = 1; a model with Dirac neutrinos sets 2);
the dark matter chi is a Dirac fermion or a complex scalar with coupling alpha_D = g_D^2/(4 pi) and mass
m_chi, either fixed or m_A'/ratio (ratio 3 by convention, S001 Sec. X). Hadronic decays (above ~0.5 GeV
for a dark photon, through the R ratio) are not included [APPROX]: they only matter for BR_inv when
alpha_D is small.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import ClassVar, Literal, TypeVar

import numpy as np

from ... import published
from ...errors import InputError
from . import widths

__all__ = ["DM_KINDS", "INVISIBLE_CHANNELS", "DarkMatter", "VectorCouplings", "VectorMediator", "available",
           "get", "register"]

DM_KINDS = ("fermion", "scalar")
INVISIBLE_CHANNELS = frozenset({"chi_chi", "nu_nu"})
DMKind = Literal["fermion", "scalar"]


def _finite(value: float, name: str, *, positive: bool = False) -> float:
    v = float(value)
    if not math.isfinite(v) or (v <= 0 if positive else v < 0):
        bound = "> 0" if positive else ">= 0"
        raise InputError(f"must be a finite number {bound}, got {value!r}", field=name)
    return v


@dataclass(frozen=True)
class DarkMatter:
    """The invisible final state chi: coupling alpha_D, spin (Dirac "fermion" or complex "scalar") and mass.

    Give ``m_chi`` (GeV, fixed) or ``ratio`` = m_A'/m_chi (default: the published convention, 3).
    """

    alpha_d: float = field(default_factory=lambda: float(published.get("darkmatter.alpha_d_benchmarks")[0]))
    kind: DMKind = "fermion"
    m_chi: float | None = None
    ratio: float | None = None

    def __post_init__(self) -> None:
        _finite(self.alpha_d, "alpha_d")
        if self.kind not in DM_KINDS:
            raise InputError(f"unknown dark-matter kind '{self.kind}' (choose one of {', '.join(DM_KINDS)})",
                             field="dm")
        if self.m_chi is not None and self.ratio is not None:
            raise InputError("give either m_chi or ratio, not both", field="m_chi")
        if self.m_chi is None and self.ratio is None:
            object.__setattr__(self, "ratio", float(published.get("darkmatter.mass_ratio_aprime_chi")))
        if self.m_chi is not None:
            _finite(self.m_chi, "m_chi", positive=True)
        if self.ratio is not None:
            _finite(self.ratio, "ratio", positive=True)

    def mass(self, mediator_mass: float | np.ndarray) -> np.ndarray:
        """m_chi (GeV) for a mediator of mass ``mediator_mass``."""
        m = np.asarray(mediator_mass, dtype=float)
        if self.m_chi is not None:
            return np.full_like(m, self.m_chi)
        ratio = self.ratio if self.ratio is not None else published.get("darkmatter.mass_ratio_aprime_chi")
        return m / float(ratio)

    def width(self, mediator_mass: float | np.ndarray) -> np.ndarray:
        """Gamma(V -> chi chi) in GeV."""
        m = np.asarray(mediator_mass, dtype=float)
        f = widths.vector_to_fermions if self.kind == "fermion" else widths.vector_to_scalars
        return f(m, self.alpha_d, self.mass(m))


@dataclass(frozen=True)
class VectorCouplings:
    """Vector couplings g_f of the mediator to Standard-Model leptons (dimensionless, not in units of e)."""

    e: float = 0.0
    mu: float = 0.0
    tau: float = 0.0
    nu_e: float = 0.0
    nu_mu: float = 0.0
    nu_tau: float = 0.0


class VectorMediator(ABC):
    """A massive vector boson coupled to SM leptons and (optionally) to dark matter.

    Subclasses (frozen dataclasses) give :meth:`lepton_couplings` and :attr:`dark`; the base derives the
    partial widths, BR_inv and the
    tree-level effective electron coupling eps_eff = |g_e|/e. Everything is vectorised over the mass.
    """

    name: ClassVar[str] = "vector"
    #: which coupling a limit is quoted on (the model parameter that scales eps_eff)
    limited_coupling: ClassVar[str] = "g"
    neutrino_helicities: ClassVar[int] = 1

    #: the dark-matter final state, or None (no chi channel); subclasses make it a dataclass field
    dark: DarkMatter | None = None

    @abstractmethod
    def lepton_couplings(self) -> VectorCouplings:
        """The lepton couplings g_f."""

    def eps_eff(self, mass: float | np.ndarray) -> np.ndarray:
        """Effective electron coupling in units of e at q^2 = m^2 (what production scales with, squared)."""
        e = math.sqrt(4 * math.pi * published.get("physics.alpha_em"))
        return np.full_like(np.asarray(mass, dtype=float), abs(self.lepton_couplings().e) / e)

    def partial_widths(self, mass: float | np.ndarray) -> dict[str, np.ndarray]:
        """Gamma per channel in GeV: "ee", "mumu", "tautau", "nu_nu" (all flavours), "chi_chi"."""
        m = np.asarray(mass, dtype=float)
        c = self.lepton_couplings()
        g = published.get
        a = lambda coupling: coupling**2 / (4 * math.pi)  # noqa: E731
        out = {
            "ee": widths.vector_to_fermions(m, a(c.e), g("physics.electron_mass_GeV")),
            "mumu": widths.vector_to_fermions(m, a(c.mu), g("physics.muon_mass_GeV")),
            "tautau": widths.vector_to_fermions(m, a(c.tau), g("physics.models.tau_mass_GeV")),
            "nu_nu": (widths.vector_to_neutrinos(m, a(c.nu_e), self.neutrino_helicities)
                      + widths.vector_to_neutrinos(m, a(c.nu_mu), self.neutrino_helicities)
                      + widths.vector_to_neutrinos(m, a(c.nu_tau), self.neutrino_helicities)),
        }
        out["chi_chi"] = self.dark.width(m) if self.dark is not None else np.zeros_like(m)
        return out

    def total_width(self, mass: float | np.ndarray) -> np.ndarray:
        """Gamma_tot in GeV."""
        return sum(self.partial_widths(mass).values())  # type: ignore[return-value]

    def width_invisible(self, mass: float | np.ndarray) -> np.ndarray:
        """Gamma(V -> invisible) = chi chi + nu nu, GeV."""
        w = self.partial_widths(mass)
        return sum(w[k] for k in INVISIBLE_CHANNELS)  # type: ignore[return-value]

    def br_invisible(self, mass: float | np.ndarray) -> np.ndarray:
        """BR(V -> invisible); 0 where the mediator has no open channel at all."""
        tot = self.total_width(mass)
        return np.where(tot > 0, self.width_invisible(mass) / np.where(tot > 0, tot, 1.0), 0.0)

    def parameters(self) -> dict[str, float | str | None]:
        """The model's own parameters (for records and hashes)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# Registry: models.get("dark_photon", eps=1e-4, alpha_d=0.1, dm="scalar")

_REGISTRY: dict[str, type[VectorMediator]] = {}
_DM_PARAMS = {"alpha_d": "alpha_d", "dm": "kind", "m_chi": "m_chi", "ratio": "ratio"}
M = TypeVar("M", bound=type[VectorMediator])


def register(name: str) -> Callable[[M], M]:
    """Class decorator: make a model available as ``models.get(name, ...)``."""

    def deco(cls: M) -> M:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"model name '{name}' is already registered")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def available() -> tuple[str, ...]:
    """Names of the registered models."""
    return tuple(sorted(_REGISTRY))


def get(name: str, **params: float | str | None) -> VectorMediator:
    """A model by name with flat parameters; the dark-matter ones (alpha_d, dm, m_chi, ratio) form ``dark``.

    Examples:
        >>> from na64ana.physics import models
        >>> ap = models.get("dark_photon", eps=1e-4, alpha_d=0.1)
        >>> round(float(ap.br_invisible(0.03)), 6)
        1.0
    """
    if name not in _REGISTRY:
        raise InputError(f"unknown model '{name}' (choose one of {', '.join(available())})", field="model")
    cls = _REGISTRY[name]
    kwargs: dict[str, object] = {k: v for k, v in params.items() if k not in _DM_PARAMS}
    dm = {_DM_PARAMS[k]: v for k, v in params.items() if k in _DM_PARAMS}
    own = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(kwargs) - own)
    if unknown:
        known = ", ".join(sorted(own))
        raise InputError(f"model '{name}' has no parameter '{unknown[0]}' (parameters: {known})",
                         field=unknown[0])
    if dm:
        if "dark" not in own:
            raise InputError(f"model '{name}' has no dark-matter parameters", field=next(iter(dm)))
        kwargs["dark"] = DarkMatter(**dm)  # type: ignore[arg-type]
    return cls(**kwargs)
