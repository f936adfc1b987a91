"""The H4 beam at the NA64 tracker and SRD: intensity, momentum, angle, tracks, straw hits, SR tag.

Inputs are per-event truth arrays; outputs are contract branches. Each function draws from the ``rng`` it
is given and nothing else, so a seed fixes every number.
"""

from __future__ import annotations

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
    theta = tune("beam.theta_core_sigma_mrad") * np.sqrt(-2.0 * np.log1p(-rng.random(n, dtype=F32)))
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
    none = u < tune("beam.track_none_prob")
    p_none = tune("beam.track_none_prob")
    multi = (u >= p_none) & (u < p_none + tune("beam.track_multi_prob"))
    track_n = np.where(none, 0, 1 + multi + extra).astype(np.int16)
    p = p_true * (1.0 + pub("beam.momentum_resolution_rel") * rng.standard_normal(n, dtype=F32))
    th = np.abs(theta_true + tune("beam.theta_resolution_mrad") * rng.standard_normal(n, dtype=F32))
    p = np.where(none, 0.0, p).astype(F32)
    th = np.where(none, 0.0, th).astype(F32)
    return {"track_n": track_n, "track_p": p, "track_theta": th}


def straw_hits(extra_tracks: np.ndarray, extra_hits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Straw multiplicity: 4 planes per track (single track: 4 hits) plus noise and upstream debris."""
    n = extra_tracks.size
    eff = tune("beam.straw_plane_efficiency")
    hits = rng.binomial(4 * (1 + extra_tracks.astype(np.int64)), eff)
    hits += rng.poisson(tune("beam.straw_noise_mean"), n) + extra_hits
    return np.minimum(hits, np.iinfo(np.int16).max).astype(np.int16)


def srd(e_true: np.ndarray, tagged: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """SRD module energies (MeV) and times (ns): SR-like for ``tagged`` particles, noise otherwise.

    SR energy scales as E^2 at fixed field; an untagged particle (hadron, muon) shows noise only and
    random times, so it fails the 1-80 MeV / +-2 ns window unless it is a fake tag (chosen upstream).
    """
    n = e_true.size
    s = tune("beam.srd_log_sigma")
    rel = (e_true / pub("beam.energy_GeV")) ** tune("beam.srd_energy_power")
    log_scale = (np.log(tune("beam.srd_mean_MeV")) - 0.5 * s * s + np.log(np.maximum(rel, 1e-12))).astype(F32)
    out: dict[str, np.ndarray] = {}
    sig_t, sig_rand = tune("beam.srd_time_sigma_ns"), tune("beam.srd_random_time_sigma_ns")
    noise = tune("beam.srd_noise_MeV")
    for i in range(pub("detector.srd_modules")):
        z = rng.standard_normal(n, dtype=F32)  # one draw serves the SR and the noise hypothesis
        out[f"srd_e{i}"] = np.where(tagged, np.exp(log_scale + s * z), noise * np.abs(z)).astype(F32)
        z = rng.standard_normal(n, dtype=F32)
        out[f"srd_t{i}"] = (z * np.where(tagged, F32(sig_t), F32(sig_rand))).astype(F32)
    return out
