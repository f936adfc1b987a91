"""Differential e+- track length T(E) in a thick lead target, primaries and secondaries (brief 9.2).

T(E) dE is the summed path (in X0) of all e+ and e- with energy in [E, E + dE], per incident electron. It
is what folds the per-atom cross section into a thick-target yield (S001 eq. 8).

Model (brief 9.2 option (b)): a 1D electromagnetic cascade with complete-screening Bethe-Heitler
bremsstrahlung, dN/dy = (1/y)(4/3 - 4/3 y + y^2) per X0 for y = E_gamma/E > ``Y_CUT`` (emissions below it are
a continuous loss), and pair production at 7/9 per X0 with dN/dx ~ 1 - 4/3 x (1 - x). No ionisation, no
LPM. Without ionisation the cascade has no energy scale, so T(E; E0) = g(E/E0) / E0 exactly for E above the
tracking threshold: one table g(u) in u = E/E0 serves every beam energy (and the beam-energy spread).

The whole particle stack is advanced one interaction at a time with numpy (events need not be kept apart
since only the average track length is wanted). The default table is computed once per machine and cached
on disk under ``~/.cache/na64ana`` keyed by a hash of all model inputs (``NA64ANA_CACHE_DIR`` overrides).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

import numpy as np
from scipy import integrate, special

from .. import published

Y_CUT = 1e-3  # brems y below which emission is treated as continuous loss (brief 9.2 (b))
MODEL_VERSION = 1  # bump when the MC changes, so that on-disk caches are not reused


@dataclass(frozen=True)
class ShowerConfig:
    """Inputs of the cascade MC; the cache key is a hash of these."""

    n_primaries: int = 200_000
    u_min: float = 0.02  # tracking threshold as a fraction of E0 (2 GeV at 100 GeV)
    depth_x0: float = 40.0  # ECAL depth in X0 (published detector.ecal_depth_X0)
    n_bins: int = 392  # u bins of width (1 - u_min)/n_bins = 0.0025
    seed: int = 20161
    y_cut: float = Y_CUT
    version: int = MODEL_VERSION

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class TrackLengthTable:
    """Scaled track length: ``g[i]`` = summed path (X0) with u = E/E0 in [edges[i], edges[i+1]] / du."""

    edges: np.ndarray
    g: np.ndarray
    config: ShowerConfig

    def cumulative_above(self, u: np.ndarray) -> np.ndarray:
        """Path length (X0) with E/E0 > u, linear inside a bin (exact at the edges)."""
        c = np.concatenate([np.cumsum((self.g * np.diff(self.edges))[::-1])[::-1], [0.0]])
        return np.interp(u, self.edges, c)

    def at(self, energy: np.ndarray, e0: float) -> np.ndarray:
        """T(E) in X0/GeV for beam energy ``e0`` (bin value; 0 outside [u_min E0, E0])."""
        u = np.asarray(energy, dtype=float) / e0
        i = np.searchsorted(self.edges, u, side="right") - 1
        ok = (i >= 0) & (i < len(self.g))
        return np.where(ok, self.g[np.clip(i, 0, len(self.g) - 1)], 0.0) / e0


def _brems_total_rate(y_cut: float) -> float:
    """Hard-emission rate per X0: integral_{y_cut}^1 (1/y)(4/3 - 4/3 y + y^2) dy."""
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


def simulate_track_length(config: ShowerConfig = ShowerConfig()) -> TrackLengthTable:
    """Run the cascade MC for ``config`` (energies in units of E0) and return the scaled table g(u)."""
    rng = np.random.default_rng(config.seed)
    rate_b = _brems_total_rate(config.y_cut)
    soft = _soft_loss_rate(config.y_cut)
    rate_pair = 7.0 / 9.0
    edges = np.linspace(config.u_min, 1.0, config.n_bins + 1)
    path = np.zeros(config.n_bins)
    # charged stack (energy u, depth t) and photon stack
    eu, et = np.ones(config.n_primaries), np.zeros(config.n_primaries)
    gu, gt = np.empty(0), np.empty(0)
    while eu.size or gu.size:
        new_u, new_t = [], []
        if eu.size:
            step = rng.exponential(1.0 / rate_b, eu.size)
            step = np.minimum(step, config.depth_x0 - et)
            u_end = eu * np.exp(-soft * step)
            mid = np.sqrt(eu * u_end)  # the soft loss along one step is ~1e-4: book at the log midpoint
            # the part of a step that ends below threshold is not booked (it is below the table)
            idx = np.clip(np.searchsorted(edges, mid, side="right") - 1, 0, config.n_bins - 1)
            path += np.bincount(idx, weights=step * (mid >= config.u_min), minlength=config.n_bins)
            et = et + step
            alive = et < config.depth_x0
            y = _sample_brems_y(int(alive.sum()), config.y_cut, rng)
            e_gamma = u_end[alive] * y
            eu, et = u_end[alive] * (1 - y), et[alive]
            keep_g = e_gamma >= config.u_min
            gu_new, gt_new = e_gamma[keep_g], et[keep_g]
            keep_e = eu >= config.u_min
            eu, et = eu[keep_e], et[keep_e]
        else:
            gu_new, gt_new = np.empty(0), np.empty(0)
        if gu.size:
            tc = gt + rng.exponential(1.0 / rate_pair, gu.size)
            conv = tc < config.depth_x0
            x = _sample_pair_x(int(conv.sum()), rng)
            for frac in (x, 1 - x):
                e = gu[conv] * frac
                sel = e >= config.u_min
                new_u.append(e[sel])
                new_t.append(tc[conv][sel])
        eu = np.concatenate([eu, *new_u])
        et = np.concatenate([et, *new_t])
        gu, gt = gu_new, gt_new
    g = path / (config.n_primaries * np.diff(edges))
    return TrackLengthTable(edges=edges, g=g, config=config)


def _cache_dir() -> Path:
    base = os.environ.get("NA64ANA_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "na64ana")
    return Path(base)


@cache
def track_length_table(config: ShowerConfig = ShowerConfig()) -> TrackLengthTable:
    """The table for ``config``, from memory, else from the disk cache, else simulated (and cached)."""
    path = _cache_dir() / f"tracklength-{config.key()}.npz"
    try:
        with np.load(path) as f:
            return TrackLengthTable(edges=f["edges"], g=f["g"], config=config)
    except (OSError, KeyError, ValueError):
        pass
    table = simulate_track_length(config)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp.npz")
        np.savez(tmp, edges=table.edges, g=table.g)
        tmp.replace(path)
    except OSError:  # a read-only home only costs the recomputation
        pass
    return table


def track_length(energy: float | np.ndarray, e0: float = 100.0) -> np.ndarray:
    """T(E) in X0/GeV per incident ``e0`` electron, all e+- generations (default cached table)."""
    return track_length_table().at(energy, e0)


def track_length_rossi(energy: float | np.ndarray, e0: float = 100.0) -> np.ndarray:
    """Rossi approximation A: T(E) = 0.437 E0/E^2 X0/GeV (valid for E_c << E << E0)."""
    return published.get("physics.rossi_a_coefficient") * e0 / np.asarray(energy, dtype=float) ** 2


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
        f = lambda t: math.exp((b * t - 1) * math.log(lg) - special.gammaln(b * t)) / e0  # noqa: E731
        return integrate.quad(f, 0.0, depth, limit=200)[0]

    out = np.array([one(v) for v in e])
    return out if np.ndim(energy) else out[0]
