"""The electromagnetic shower per particle: differential track lengths T_-(E), T_+(E), T_gamma(E) in lead.

Why: every production mechanism is "a shower particle meets a target atom" (brief_extensions 1), so the
shower is computed once and each mechanism folds its own cross section with the track length of the
particle that produces it: A' bremsstrahlung with T_- + T_+ (on nuclei), resonant annihilation with T_+
(on atomic electrons), Primakoff ALP production with T_gamma (on nuclei). T_k(E) dE is the summed path
(in X0) of particles k with energy in [E, E + dE], per beam particle.

Model (brief 9.2 option (b), [APPROX]): a 1D cascade with complete-screening Bethe-Heitler
bremsstrahlung, dN/dy = (1/y)(4/3 - 4/3 y + y^2) per X0 for y = E_gamma/E > ``Y_CUT`` (softer emission is
a continuous loss), and pair production at 7/9 per X0 with electron fraction x ~ 1 - 4/3 x (1 - x).
No ionisation, no LPM, no positron annihilation in flight, no Compton scattering. Consequences:

* the cascade has no energy scale, so T_k(E; E0) = g_k(E/E0) / E0 exactly above the tracking threshold:
  one table in u = E/E0 serves every beam energy (and the beam-energy spread). E0 is therefore an argument
  of the evaluation, not an input of the simulation (putting it in the cache key would only recompute
  identical tables);
* the model is charge symmetric: an e+ beam gives T_+^{e+}(E) = T_-^{e-}(E) and T_-^{e+} = T_+^{e-}
  (the simulation of an e+ beam is run anyway and the symmetry is a test);
* the beam particle's path before its first hard emission (the "un-radiated primary spike", mean
  1/rate_hard ~ 0.12 X0) sits in the top bin [1 - du, 1] of the beam particle's table, as in the
  reference tables of the brief.

The whole particle stack is advanced one interaction at a time with numpy (only averages are wanted, so
events need not be kept apart). A table is cached on disk under ``~/.cache/na64ana`` keyed by a hash of
every simulation input, the model version included (``NA64ANA_CACHE_DIR`` overrides the folder).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import numpy as np
from scipy import integrate, special

from .. import published
from ..errors import InputError

__all__ = ["BEAMS", "MODEL_VERSION", "PARTICLES", "Y_CUT", "ShowerConfig", "ShowerTable",
           "differential_track_length",
           "hard_emission_rate", "shower_table", "simulate_shower", "track_length", "track_length_rossi",
           "track_length_rossi_photons", "track_length_table", "track_length_tsai_primary"]

Y_CUT = 1e-3  # brems y below which emission is treated as continuous loss (brief 9.2 (b))
MODEL_VERSION = 2  # 2: separate e-, e+ and photon tallies and the e+ beam. Bump when the MC changes.
BEAMS = ("e-", "e+")
PARTICLES = ("charged", "e-", "e+", "gamma")
Beam = Literal["e-", "e+"]
Particle = Literal["charged", "e-", "e+", "gamma"]
_PAIR_RATE = 7.0 / 9.0  # pair conversions per X0 (complete screening)


@dataclass(frozen=True)
class ShowerConfig:
    """Inputs of the cascade MC (energies as fractions of E0: the model is scale free); the cache key."""

    n_primaries: int = 200_000
    u_min: float = 0.02  # tracking threshold as a fraction of E0 (2 GeV at 100 GeV)
    depth_x0: float = 40.0  # ECAL depth in X0 (published detector.ecal_depth_X0)
    n_bins: int = 392  # u bins of width (1 - u_min)/n_bins = 0.0025
    seed: int = 20161
    y_cut: float = Y_CUT
    beam: Beam = "e-"
    version: int = MODEL_VERSION

    def __post_init__(self) -> None:
        if self.beam not in BEAMS:
            raise InputError(f"unknown beam particle '{self.beam}' (choose one of {', '.join(BEAMS)})",
                             field="beam")
        if not (0.0 < self.u_min < 1.0 and 0.0 < self.y_cut < 1.0 and self.depth_x0 > 0
                and self.n_bins >= 1 and self.n_primaries >= 1):
            raise InputError("shower config needs 0 < u_min, y_cut < 1, depth_x0 > 0, n_bins >= 1, "
                             "n_primaries >= 1", field="shower")

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ShowerTable:
    """Scaled track lengths in u = E/E0 bins: ``g[i]`` = summed path (X0) in bin i / du, per beam particle.

    ``g`` is e- + e+ (what bremsstrahlung uses), ``g_plus`` the positrons, ``g_gamma`` the photons
    (path from creation to conversion or to the end of the target); ``spike`` is the mean path (X0) of the
    beam particle before its first hard emission (contained in the top bin of its charge).
    """

    edges: np.ndarray
    g: np.ndarray
    g_plus: np.ndarray
    g_gamma: np.ndarray
    spike: float
    config: ShowerConfig

    @property
    def g_minus(self) -> np.ndarray:
        return self.g - self.g_plus

    def scaled(self, particle: Particle = "charged") -> np.ndarray:
        """g_k(u) for ``particle`` in {"charged", "e-", "e+", "gamma"}."""
        if particle == "charged":
            return self.g
        if particle == "e+":
            return self.g_plus
        if particle == "e-":
            return self.g_minus
        if particle == "gamma":
            return self.g_gamma
        raise InputError(f"unknown shower particle '{particle}' (choose one of {', '.join(PARTICLES)})",
                         field="particle")

    def cumulative_above(self, u: np.ndarray | float, particle: Particle = "charged") -> np.ndarray:
        """Path length (X0) of ``particle`` with E/E0 > u, linear inside a bin (exact at the edges)."""
        g = self.scaled(particle)
        c = np.concatenate([np.cumsum((g * np.diff(self.edges))[::-1])[::-1], [0.0]])
        return np.interp(u, self.edges, c)

    def at(self, energy: np.ndarray | float, e0: float, particle: Particle = "charged") -> np.ndarray:
        """T_k(E) in X0/GeV for beam energy ``e0`` (bin value; 0 outside [u_min E0, E0])."""
        g = self.scaled(particle)
        u = np.asarray(energy, dtype=float) / e0
        i = np.searchsorted(self.edges, u, side="right") - 1
        ok = (i >= 0) & (i < len(g))
        return np.where(ok, g[np.clip(i, 0, len(g) - 1)], 0.0) / e0

    def has_spike(self, particle: Particle) -> bool:
        """Whether ``particle``'s table holds the beam particle's un-radiated spike (in its top bin)."""
        return particle == "charged" or particle == self.config.beam

    def continuous_above(self, u: np.ndarray | float, particle: Particle = "charged") -> np.ndarray:
        """:meth:`cumulative_above` without the beam particle's spike (a delta at u = 1: :attr:`spike`)."""
        c = self.cumulative_above(u, particle)
        if not self.has_spike(particle):
            return c
        du = self.edges[-1] - self.edges[-2]
        return c - self.spike * np.clip((1.0 - np.asarray(u, dtype=float)) / du, 0.0, 1.0)

    def smoothed(self, energy: np.ndarray | float, e0: float, particle: Particle = "charged", *,
                 half_width: float = 0.01) -> np.ndarray:
        """T_k(E) in X0/GeV averaged over E +- ``half_width`` E0, without the beam spike.

        A line (annihilation) reads T_+ at one energy, where a single 0.0025 E0 bin has 4-8% MC noise; the
        moving average is smooth, and its bias for T ~ exp(-lambda E) is (lambda h)^2/6 (< 0.3% at the
        default h = 1 GeV for 100 GeV). The window shrinks symmetrically at the table ends; 0 outside.
        """
        u = np.asarray(energy, dtype=float) / e0
        lo_u = float(self.edges[0])
        h = np.minimum(half_width, np.minimum(1.0 - u, u - lo_u))
        h = np.maximum(h, 1e-9)
        t = (self.continuous_above(u - h, particle) - self.continuous_above(u + h, particle)) / (2 * h * e0)
        return np.where((u > lo_u) & (u < 1.0), t, 0.0)


def hard_emission_rate(y_cut: float = Y_CUT) -> float:
    """Hard-emission rate per X0: integral_{y_cut}^1 (1/y)(4/3 - 4/3 y + y^2) dy (8.38 at y_cut = 1e-3)."""
    return 4 / 3 * math.log(1 / y_cut) - 4 / 3 * (1 - y_cut) + (1 - y_cut**2) / 2


def _soft_loss_rate(y_cut: float) -> float:
    """Continuous fractional energy loss per X0 from y < y_cut: integral_0^{y_cut} (4/3 - 4/3 y + y^2) dy."""
    return 4 / 3 * y_cut - 2 / 3 * y_cut**2 + y_cut**3 / 3


def _sample_brems_y(n: int, y_cut: float, rng: np.random.Generator) -> np.ndarray:
    """y from (1/y)(4/3 - 4/3 y + y^2) on [y_cut, 1]: propose dy/y, accept with (4/3 - 4/3 y + y^2)/(4/3)."""
    out = np.empty(n)
    todo = np.arange(n)
    while todo.size:
        y = y_cut ** rng.random(todo.size)
        ok = rng.random(todo.size) * (4 / 3) < 4 / 3 - 4 / 3 * y + y**2
        out[todo[ok]] = y[ok]
        todo = todo[~ok]
    return out


def _sample_pair_x(n: int, rng: np.random.Generator) -> np.ndarray:
    """Electron energy fraction from 1 - 4/3 x (1 - x) on [0, 1] (accept-reject, efficiency 7/9)."""
    out = np.empty(n)
    todo = np.arange(n)
    while todo.size:
        x = rng.random(todo.size)
        ok = rng.random(todo.size) < 1 - 4 / 3 * x * (1 - x)
        out[todo[ok]] = x[ok]
        todo = todo[~ok]
    return out


def simulate_shower(config: ShowerConfig = ShowerConfig()) -> ShowerTable:
    """Run the cascade MC for ``config`` (energies in units of E0) and return the scaled tables.

    The random stream does not depend on the tallies or on the beam charge, so the e+ and e- beams of one
    seed are the same showers with the charges swapped, and the charged tally is the one of model 1.
    """
    rng = np.random.default_rng(config.seed)
    rate_b = hard_emission_rate(config.y_cut)
    soft = _soft_loss_rate(config.y_cut)
    edges = np.linspace(config.u_min, 1.0, config.n_bins + 1)
    nb = config.n_bins
    path = np.zeros(nb)
    path_plus = np.zeros(nb)
    path_gamma = np.zeros(nb)
    spike = 0.0

    def bins(u: np.ndarray) -> np.ndarray:
        return np.clip(np.searchsorted(edges, u, side="right") - 1, 0, nb - 1)

    # charged stack: energy u, depth t, charge q (+1 e+, -1 e-); photon stack: energy, depth
    eu, et = np.ones(config.n_primaries), np.zeros(config.n_primaries)
    eq = np.full(config.n_primaries, 1 if config.beam == "e+" else -1, dtype=np.int8)
    gu, gt = np.empty(0), np.empty(0)
    first = True
    while eu.size or gu.size:
        new_u, new_t, new_q = [], [], []
        if eu.size:
            step = rng.exponential(1.0 / rate_b, eu.size)
            step = np.minimum(step, config.depth_x0 - et)
            if first:
                spike = float(step.sum()) / config.n_primaries
                first = False
            u_end = eu * np.exp(-soft * step)
            mid = np.sqrt(eu * u_end)  # the soft loss along one step is ~1e-4: book at the log midpoint
            # the part of a step that ends below threshold is not booked (it is below the table)
            idx = bins(mid)
            w = step * (mid >= config.u_min)
            path += np.bincount(idx, weights=w, minlength=nb)
            path_plus += np.bincount(idx, weights=w * (eq > 0), minlength=nb)
            et = et + step
            alive = et < config.depth_x0
            y = _sample_brems_y(int(alive.sum()), config.y_cut, rng)
            e_gamma = u_end[alive] * y
            eu, et, eq = u_end[alive] * (1 - y), et[alive], eq[alive]
            keep_g = e_gamma >= config.u_min
            gu_new, gt_new = e_gamma[keep_g], et[keep_g]
            keep_e = eu >= config.u_min
            eu, et, eq = eu[keep_e], et[keep_e], eq[keep_e]
        else:
            gu_new, gt_new = np.empty(0), np.empty(0)
        if gu.size:
            tc = gt + rng.exponential(1.0 / _PAIR_RATE, gu.size)
            path_gamma += np.bincount(bins(gu), weights=np.minimum(tc, config.depth_x0) - gt, minlength=nb)
            conv = tc < config.depth_x0
            x = _sample_pair_x(int(conv.sum()), rng)
            for frac, charge in ((x, -1), (1 - x, 1)):
                e = gu[conv] * frac
                sel = e >= config.u_min
                new_u.append(e[sel])
                new_t.append(tc[conv][sel])
                new_q.append(np.full(int(sel.sum()), charge, dtype=np.int8))
        eu = np.concatenate([eu, *new_u])
        et = np.concatenate([et, *new_t])
        eq = np.concatenate([eq, *new_q])
        gu, gt = gu_new, gt_new
    norm = config.n_primaries * np.diff(edges)
    return ShowerTable(edges=edges, g=path / norm, g_plus=path_plus / norm, g_gamma=path_gamma / norm,
                       spike=spike, config=config)


def _cache_dir() -> Path:
    base = os.environ.get("NA64ANA_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "na64ana")
    return Path(base)


@cache
def shower_table(config: ShowerConfig = ShowerConfig()) -> ShowerTable:
    """The table for ``config``: from memory, else from the disk cache, else simulated (and cached).

    Examples:
        >>> from na64ana.physics import shower
        >>> tab = shower.shower_table()
        >>> bool(tab.cumulative_above(0.5, "e-") > tab.cumulative_above(0.5, "e+") > 0)
        True
    """
    path = _cache_dir() / f"shower-{config.key()}.npz"
    try:
        with np.load(path) as f:
            return ShowerTable(edges=f["edges"], g=f["g"], g_plus=f["g_plus"], g_gamma=f["g_gamma"],
                               spike=float(f["spike"]), config=config)
    except (OSError, KeyError, ValueError):
        pass
    table = simulate_shower(config)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp.npz")
        np.savez(tmp, edges=table.edges, g=table.g, g_plus=table.g_plus, g_gamma=table.g_gamma,
                 spike=table.spike)
        tmp.replace(path)
    except OSError:  # a read-only home only costs the recomputation
        pass
    return table


def track_length_table(beam: Beam = "e-") -> ShowerTable:
    """The default (cached) table for a ``beam`` of "e-" or "e+"."""
    return shower_table(ShowerConfig(beam=beam))


def differential_track_length(energy: float | np.ndarray, e0: float = 100.0, *, particle: Particle = "e+",
                              beam: Beam = "e-") -> np.ndarray:
    """T_k(E) in X0/GeV per beam particle of energy ``e0`` for ``particle`` k (default table).

    Examples:
        >>> from na64ana.physics import shower
        >>> t_plus = float(shower.differential_track_length(55.0, particle="e+"))
        >>> 1e-3 < t_plus < 4e-3   # brief_extensions 1: 2.2e-3 X0/GeV at 55 GeV
        True
    """
    return track_length_table(beam).at(energy, e0, particle)


def track_length(energy: float | np.ndarray, e0: float = 100.0) -> np.ndarray:
    """T(E) = T_-(E) + T_+(E) in X0/GeV per incident ``e0`` electron, all generations (default table)."""
    return track_length_table().at(energy, e0)


def track_length_rossi(energy: float | np.ndarray, e0: float = 100.0) -> np.ndarray:
    """Rossi approximation A for e+ + e-: T(E) = 0.437 E0/E^2 X0/GeV (valid for E_c << E << E0)."""
    return published.get("physics.rossi_a_coefficient") * e0 / np.asarray(energy, dtype=float) ** 2


def track_length_rossi_photons(energy: float | np.ndarray, e0: float = 100.0) -> np.ndarray:
    """Rossi approximation A for photons: T_gamma(k) = 0.572 E0/k^2 X0/GeV (E_c << k << E0)."""
    coefficient = published.get("physics.shower.rossi_a_photon_coefficient")
    return coefficient * e0 / np.asarray(energy, dtype=float) ** 2


def track_length_tsai_primary(energy: float | np.ndarray, e0: float = 100.0, *, depth: float | None = None,
                              b: float | None = None) -> np.ndarray:
    """Primary-only track length (Tsai, brief 9.2a): integral_0^T (1/E0) ln(E0/E)^(bt-1)/Gamma(bt) dt.

    Ignores the e+- from photon conversions, hence underestimates T(E) well below E0.
    """
    depth = published.get("detector.ecal_depth_X0") if depth is None else depth
    b = published.get("physics.tsai_b_pb") if b is None else b
    e = np.atleast_1d(np.asarray(energy, dtype=float))

    def one(en: float) -> float:
        lg = math.log(e0 / en)

        def f(t: float) -> float:
            return math.exp((b * t - 1) * math.log(lg) - special.gammaln(b * t)) / e0

        return integrate.quad(f, 0.0, depth, limit=200)[0]

    out = np.array([one(v) for v in e])
    return out if np.ndim(energy) else out[0]
