"""The H4 beam at the NA64 tracker and SRD: intensity, momentum, angle, tracks, straw hits, SR tag.

Inputs are per-event truth arrays; outputs are contract branches. Each function draws from the ``rng`` it
is given and nothing else, so a seed fixes every number.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np

from .config import pub, tune

F32 = np.float32


def spill_intensities(eot: float, intensity_range: tuple[float, float], rng: np.random.Generator
                      ) -> np.ndarray:
    """Per-spill intensities (e-/spill) for a run of ``eot`` electrons, uniform in the published range."""
    lo, hi = intensity_range
    n_spills = max(1, int(round(eot / (0.5 * (lo + hi)))))
    return rng.uniform(lo, hi, n_spills)


def place_in_spills(n: int, spills: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Spill index and intensity for ``n`` events spread uniformly in EOT (busier spills get more events)."""
    cum = np.cumsum(spills)
    pos = np.sort(rng.uniform(0.0, cum[-1], n))
    idx = np.minimum(np.searchsorted(cum, pos), len(spills) - 1)
    return idx.astype(np.int32), spills[idx]


def electron_beam(n: int, e_nominal: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """True energy and angle (mrad) of beam electrons: 1% spread, ~0.5 mrad core, 1-20 mrad low-P tail."""
    e0 = e_nominal * (1.0 + pub("beam.energy_spread_rel") * rng.standard_normal(n, dtype=F32))
    rayleigh = np.sqrt(F32(2.0) * rng.standard_exponential(n, dtype=F32))
    theta = F32(tune("beam.theta_core_sigma_mrad")) * rayleigh
    tail = rng.random(n, dtype=F32) < tune("beam.tail_fraction")
    k = int(tail.sum())
    if k:
        lo, hi = pub("beam.theta_tail_range_mrad")
        theta[tail] = np.exp(rng.uniform(np.log(lo), np.log(hi), k))
        loss_lo, loss_hi = tune("beam.tail_energy_loss")
        e0[tail] *= 1.0 - rng.uniform(loss_lo, loss_hi, k)
    return e0.astype(F32), theta.astype(F32)


def hadron_beam(n: int, e_nominal: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Beam hadrons/muons share the electrons' momentum band and angular core (same beam-line optics)."""
    return electron_beam(n, e_nominal, rng)


def tracks(p_true: np.ndarray, theta_true: np.ndarray, extra: np.ndarray, rng: np.random.Generator
           ) -> dict[str, np.ndarray]:
    """Reconstructed track count, momentum (1% resolution) and angle; ``extra`` = additional true tracks.

    Events without a track carry ``track_p = track_theta = 0``.
    """
    n = p_true.size
    u = rng.random(n, dtype=F32)
    p_none = tune("beam.track_none_prob")
    none = u < p_none
    multi = (u >= p_none) & (u < p_none + tune("beam.track_multi_prob"))
    track_n = (1 + multi + extra).astype(np.int16)
    track_n[none] = 0
    z = rng.standard_normal((2, n), dtype=F32)
    p = p_true * (F32(1.0) + F32(pub("beam.momentum_resolution_rel")) * z[0])
    th = np.abs(theta_true + F32(tune("beam.theta_resolution_mrad")) * z[1])
    p[none] = 0.0
    th[none] = 0.0
    return {"track_n": track_n, "track_p": p, "track_theta": th}


@cache
def _straw_single_cdf() -> np.ndarray:
    """CDF of the straw multiplicity of a lone track: Binomial(4, eff) + Poisson(noise), values 0..15."""
    eff, mu = tune("beam.straw_plane_efficiency"), tune("beam.straw_noise_mean")
    k = np.arange(16)
    hits = np.array([math.comb(4, i) * eff**i * (1 - eff) ** (4 - i) for i in range(5)])
    noise = np.exp(-mu) * mu**k / np.array([math.factorial(int(i)) for i in k])
    return np.cumsum(np.convolve(hits, noise)[:16]).astype(F32)


def straw_hits(extra_tracks: np.ndarray, extra_hits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Straw multiplicity: 4 planes per track (single track: 4 hits) plus noise and upstream debris.

    Lone tracks (the bulk) take one uniform through a tabulated CDF instead of a binomial + Poisson draw.
    """
    n = extra_tracks.size
    hits = np.searchsorted(_straw_single_cdf(), rng.random(n, dtype=F32), side="right").astype(np.int32)
    multi = np.flatnonzero(extra_tracks > 0)
    if multi.size:
        eff = tune("beam.straw_plane_efficiency")
        hits[multi] = (rng.binomial(4 * (1 + extra_tracks[multi].astype(np.int64)), eff)
                       + rng.poisson(tune("beam.straw_noise_mean"), multi.size))
    hits += extra_hits
    return np.minimum(hits, np.iinfo(np.int16).max).astype(np.int16)


def srd(e_true: np.ndarray, tagged: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """SRD module energies (MeV) and times (ns): SR-like for ``tagged`` particles, noise otherwise.

    SR energy scales as E^2 at fixed field; an untagged particle (hadron, muon) shows noise only and
    random times, so it fails the 1-80 MeV / +-2 ns window unless it is a fake tag (chosen upstream).
    """
    n = e_true.size
    m = pub("detector.srd_modules")
    s = tune("beam.srd_log_sigma")
    rel = (np.maximum(e_true, F32(1e-6)) / F32(pub("beam.energy_GeV"))) ** F32(tune("beam.srd_energy_power"))
    scale = rel * F32(np.exp(np.log(tune("beam.srd_mean_MeV")) - 0.5 * s * s))
    z = rng.standard_normal((2 * m, n), dtype=F32)  # one draw serves the SR and the noise hypothesis
    e = np.exp(F32(s) * z[:m]) * scale
    t = z[m:] * F32(tune("beam.srd_time_sigma_ns"))
    untagged = np.flatnonzero(~tagged)
    if untagged.size:
        e[:, untagged] = F32(tune("beam.srd_noise_MeV")) * np.abs(z[:m, untagged])
        t[:, untagged] *= F32(tune("beam.srd_random_time_sigma_ns") / tune("beam.srd_time_sigma_ns"))
    out: dict[str, np.ndarray] = {}
    for i in range(m):
        out[f"srd_e{i}"], out[f"srd_t{i}"] = e[i], t[i]
    return out
