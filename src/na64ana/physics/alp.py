"""ALP signal along the NA64 geometry: Primakoff yield x decay probability per signal region.

Why: an ALP made in the ECAL (gamma Z -> a Z, :mod:`.production.primakoff`) is seen either when it decays
to two photons inside HCAL2-4 behind the HCAL1 shield (region ``"hcal"``: E_ECAL < 85 GeV,
E_HCAL2-4 > 15 GeV, HCAL1 empty) or when it leaves the whole HCAL (region ``"beyond"``: the missing-energy
box E_ECAL < 50 GeV, E_HCAL ~ 0) [brief_extensions 5, PRL 125 081801]. Both depend on where it decays, so
the excluded region in g_agg is closed: few ALPs at small g_agg, too early decays at large g_agg.

Per region r, per EOT (ALP energy = photon energy E, E_ECAL = E0 - E):
N_r(g) = (N_A X0/A)_Pb f_Pb integral_{E > E_min,r} dE T_gamma(E) sigma(E; g) P_r(E, g),
P_hcal = exp(-L_1/l) - exp(-L_2/l), P_beyond = exp(-L_3/l), l = (p/m) c tau(g) ~ 1/g^2,
with L_1 = end of HCAL1, L_2 = L_3 = end of HCAL4, measured from the production point; E_min,hcal =
max(E0 - 85, 15) GeV, E_min,beyond = E0 - 50 GeV. Geometry and cuts: ``data/alp_geometry.toml`` (sources,
APPROX marks). [APPROX] the ALP keeps the photon direction and energy; production at one depth; full
containment of the decay photons in HCAL2-4; no beam-energy spread; the detector efficiency is applied
later (per run in the summary).

Limits of P (tested): l -> infinity: P_hcal -> (L_2 - L_1)/l, P_beyond -> 1; l -> 0: both -> 0
(P_beyond = exp(-L_3/l)).
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import InputError
from .models.alp import AlpPhoton
from .production import primakoff
from .shower import track_length_table
from .yields import atoms_per_x0_cm2, target_fraction

__all__ = ["REGIONS", "AlpGeometry", "AlpYield", "decay_probability", "load_geometry", "region_energy_min",
           "yield_per_eot"]

REGIONS = ("hcal", "beyond")
Region = Literal["hcal", "beyond"]
_PB_TO_CM2 = 1e-36


@dataclass(frozen=True)
class AlpGeometry:
    """Distances (m, from the ECAL front) and region cuts (GeV) of ``data/alp_geometry.toml``."""

    ecal_length_m: float
    production_depth_m: float
    ecal_to_hcal1_m: float
    hcal_module_length_m: float
    hcal_gap_m: float
    hcal_modules: int
    hcal1_shield_modules: int
    hcal_ecal_max_GeV: float
    hcal234_min_GeV: float
    hcal1_max_GeV: float
    beyond_ecal_max_GeV: float
    beyond_hcal_max_GeV: float
    sources: Mapping[str, str]

    def hcal_start_m(self, module: int) -> float:
        """Front of HCAL module ``module`` (1-based), metres from the ECAL front."""
        return (self.ecal_length_m + self.ecal_to_hcal1_m
                + (module - 1) * (self.hcal_module_length_m + self.hcal_gap_m))

    def hcal_end_m(self, module: int) -> float:
        return self.hcal_start_m(module) + self.hcal_module_length_m

    def decay_window_cm(self, region: str) -> tuple[float, float]:
        """(L_a, L_b) in cm from the production point: the decay must happen in between."""
        check_region(region)
        z0 = self.production_depth_m
        last = self.hcal_end_m(self.hcal_modules)
        if region == "hcal":
            lo = self.hcal_end_m(self.hcal1_shield_modules)
            return 100 * (lo - z0), 100 * (last - z0)
        return 100 * (last - z0), math.inf


def check_region(region: str) -> Region:
    if region not in REGIONS:
        raise InputError(f"unknown ALP signal region '{region}' (choose one of {', '.join(REGIONS)})",
                         field="region")
    return region  # type: ignore[return-value]


def _value(table: Mapping[str, Any], key: str, where: str, file: str) -> float:
    entry = table.get(key)
    if not isinstance(entry, Mapping) or "value" not in entry or "source" not in entry:
        raise InputError("needs {value = ..., source = \"...\"}", file=file, field=f"{where}.{key}")
    v = entry["value"]
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
        raise InputError(f"must be a finite number >= 0, got {v!r}", file=file, field=f"{where}.{key}")
    return float(v)


def load_geometry(path: str | Path | None = None) -> AlpGeometry:
    """Read the ALP geometry (default: the shipped ``data/alp_geometry.toml``); one-line errors."""
    if path is None:
        return _default_geometry()
    return _parse(Path(path).read_text() if Path(path).exists() else _missing(path), str(path))


def _missing(path: str | Path) -> str:
    raise InputError("cannot read: no such file", file=str(path))


@cache
def _default_geometry() -> AlpGeometry:
    text = resources.files("na64ana").joinpath("data/alp_geometry.toml").read_text()
    return _parse(text, "na64ana/data/alp_geometry.toml")


def _parse(text: str, file: str) -> AlpGeometry:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"not valid TOML ({exc})", file=file) from None
    geo = raw.get("geometry", {})
    reg = raw.get("regions", {})
    if not isinstance(geo, Mapping) or not isinstance(reg, Mapping):
        raise InputError("needs [geometry] and [regions.*] tables", file=file)
    for r in REGIONS:
        if not isinstance(reg.get(r), Mapping):
            raise InputError(f"missing table [regions.{r}]", file=file, field=f"regions.{r}")
    g = {k: _value(geo, k, "geometry", file) for k in
         ("ecal_length_m", "production_depth_m", "ecal_to_hcal1_m", "hcal_module_length_m", "hcal_gap_m",
          "hcal_modules", "hcal1_shield_modules")}
    out = AlpGeometry(
        ecal_length_m=g["ecal_length_m"], production_depth_m=g["production_depth_m"],
        ecal_to_hcal1_m=g["ecal_to_hcal1_m"], hcal_module_length_m=g["hcal_module_length_m"],
        hcal_gap_m=g["hcal_gap_m"], hcal_modules=int(g["hcal_modules"]),
        hcal1_shield_modules=int(g["hcal1_shield_modules"]),
        hcal_ecal_max_GeV=_value(reg["hcal"], "ecal_max_GeV", "regions.hcal", file),
        hcal234_min_GeV=_value(reg["hcal"], "hcal234_min_GeV", "regions.hcal", file),
        hcal1_max_GeV=_value(reg["hcal"], "hcal1_max_GeV", "regions.hcal", file),
        beyond_ecal_max_GeV=_value(reg["beyond"], "ecal_max_GeV", "regions.beyond", file),
        beyond_hcal_max_GeV=_value(reg["beyond"], "hcal_max_GeV", "regions.beyond", file),
        sources=dict(raw.get("sources", {})),
    )
    if out.production_depth_m >= out.ecal_length_m:
        raise InputError("the production depth must lie inside the ECAL", file=file,
                         field="geometry.production_depth_m")
    if not 1 <= out.hcal1_shield_modules < out.hcal_modules:
        raise InputError("needs 1 <= shield modules < HCAL modules", file=file,
                         field="geometry.hcal1_shield_modules")
    return out


def region_energy_min(region: str, e0: float = 100.0, geometry: AlpGeometry | None = None) -> float:
    """Smallest ALP energy (GeV) in a region: E0 - E_ECAL,max (and E_HCAL2-4 > 15 GeV for "hcal")."""
    geo = geometry or load_geometry()
    if check_region(region) == "hcal":
        return max(e0 - geo.hcal_ecal_max_GeV, geo.hcal234_min_GeV)
    return e0 - geo.beyond_ecal_max_GeV


def decay_probability(energy: float | np.ndarray, mass: float, g_agg: float | np.ndarray, region: str,
                      geometry: AlpGeometry | None = None) -> np.ndarray:
    """P(decay inside the region's window) for ALPs of ``energy`` (GeV); broadcasts energy x g_agg."""
    geo = geometry or load_geometry()
    la, lb = geo.decay_window_cm(region)
    lam = AlpPhoton(g_agg=1.0).decay_length_cm(energy, mass) / np.asarray(g_agg, dtype=float) ** 2
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        x = 1.0 / lam
        # exp(-L_a x) (1 - exp(-(L_b - L_a) x)): no cancellation for long lifetimes
        p = np.exp(-la * x) * (-np.expm1(-(lb - la) * x) if math.isfinite(lb) else 1.0)
    return np.nan_to_num(p, nan=0.0)


@dataclass
class AlpYield:
    """N_r(g_agg) per EOT for one ALP mass, every region, vectorised over g_agg.

    Precomputes, per region, the photon energies (table bins above the region's threshold), the
    Primakoff weight (N_A X0/A) f_Pb T_gamma dE sigma(E; g = 1) and the decay length at g = 1.
    """

    mass_GeV: float
    e0: float = 100.0
    target: str = "ecal"
    geometry: AlpGeometry | None = None

    def __post_init__(self) -> None:
        geo = self.geometry = self.geometry or load_geometry()
        m = float(self.mass_GeV)
        if not (math.isfinite(m) and m > 0):
            raise InputError(f"ALP mass must be finite and > 0 GeV, got {self.mass_GeV!r}", field="mass")
        if 2 * m >= self.e0:
            raise InputError(f"ALP mass {m} GeV: no photon of the {self.e0:g} GeV shower can produce it "
                             f"(Primakoff needs E_gamma > 2 m_a)", field="mass")
        tab = track_length_table("e-")
        norm = atoms_per_x0_cm2() * target_fraction(self.target) * _PB_TO_CM2
        self._bins: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, float]]] = {}
        for r in REGIONS:
            u_lo = region_energy_min(r, self.e0, geo) / self.e0
            edges = np.concatenate([[u_lo], tab.edges[tab.edges > u_lo]])
            path = tab.cumulative_above(edges[:-1], "gamma") - tab.cumulative_above(edges[1:], "gamma")
            energy = self.e0 * 0.5 * (edges[:-1] + edges[1:])
            weight = norm * path * primakoff.sigma(energy, m, 1.0)
            lam1 = AlpPhoton(g_agg=1.0).decay_length_cm(energy, m)
            self._bins[r] = (energy, weight, lam1, geo.decay_window_cm(r))

    def produced(self, region: str) -> float:
        """ALPs per EOT at g = 1 GeV^-1 with the region's energy (no decay requirement)."""
        return float(self._bins[check_region(region)][1].sum())

    def per_region(self, g_agg: float | np.ndarray) -> dict[str, np.ndarray]:
        """{region: N_r(g) per EOT}, arrays shaped like ``g_agg`` (at least 1D)."""
        g = np.atleast_1d(np.asarray(g_agg, dtype=float))
        out = {}
        for r, (_, w, lam1, (la, lb)) in self._bins.items():
            x = g[:, None] ** 2 / lam1[None, :]  # 1 / decay length
            p = np.exp(-la * x) * (-np.expm1(-(lb - la) * x) if math.isfinite(lb) else 1.0)
            out[r] = g**2 * (p @ w)
        return out

    def spectrum_above(self, e_min: float) -> tuple[np.ndarray, np.ndarray]:
        """(photon energies, Primakoff ALPs per EOT at g = 1 per bin) for E > ``e_min`` (GeV), table bins."""
        tab = track_length_table("e-")
        u_lo = max(float(e_min) / self.e0, float(tab.edges[0]))
        if u_lo >= 1.0:
            raise InputError(f"e_min = {e_min!r} GeV is above the beam energy", field="ea_min")
        edges = np.concatenate([[u_lo], tab.edges[tab.edges > u_lo]])
        path = tab.cumulative_above(edges[:-1], "gamma") - tab.cumulative_above(edges[1:], "gamma")
        energy = self.e0 * 0.5 * (edges[:-1] + edges[1:])
        norm = atoms_per_x0_cm2() * target_fraction(self.target) * _PB_TO_CM2
        return energy, norm * path * primakoff.sigma(energy, float(self.mass_GeV), 1.0)

    def energies(self, region: str) -> tuple[np.ndarray, np.ndarray]:
        """(photon energies, Primakoff weight per EOT at g = 1) of the region's bins (for sampling)."""
        e, w, _, _ = self._bins[check_region(region)]
        return e, w


def yield_per_eot(mass_GeV: float, g_agg: float | np.ndarray, region: str, *, e0: float = 100.0,
                  target: str = "ecal", geometry: AlpGeometry | None = None) -> np.ndarray:
    """ALP signal per EOT in ``region`` (no detector efficiency).

    Examples:
        >>> from na64ana.physics import alp
        >>> n = alp.yield_per_eot(0.01, [1e-5, 1e-3, 1e-1], "beyond")
        >>> bool(n[1] > n[0] > 0 and n[2] < 1e-30)          # closed: too few, then too early
        True
    """
    return AlpYield(mass_GeV, e0=e0, target=target, geometry=geometry).per_region(g_agg)[check_region(region)]
