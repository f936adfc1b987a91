"""Detector response shared by every process (signal included): ECAL, PS, shower chi2, VETO, HCAL, HCAL0,
intensity-dependent pile-up, and the hardware trigger.

Signal efficiencies must *emerge* from the same response as the backgrounds, so there is exactly one path
from truth to contract branches: :func:`respond`.
"""

from __future__ import annotations

import numpy as np

from . import beam
from .config import pileup_windows_ns, pub, rate_per_s, tune

F32 = np.float32


def pileup_probabilities(intensity: np.ndarray) -> dict[str, np.ndarray]:
    """P(at least one extra beam particle) in the ECAL, tracker and halo windows at each event's intensity."""
    rate = rate_per_s(np.asarray(intensity, dtype=np.float64))
    return {k: -np.expm1(-rate * w * 1e-9) for k, w in pileup_windows_ns().items()}


def mean_survival(intensity_range: tuple[float, float]) -> float:
    """<exp(-mu_sum)> over an EOT-weighted uniform spill intensity: the pile-up losses of a clean electron."""
    lo, hi = intensity_range
    k = sum(pileup_windows_ns().values()) * 1e-9 / pub("beam.spill_length_s")
    grid = np.linspace(lo, hi, 257)
    w = grid  # busier spills carry proportionally more EOT
    return float(np.sum(w * np.exp(-k * grid)) / np.sum(w))


def ecal_response(e_true: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """ECAL energy with dE/E = 0.1/sqrt(E) plus a small noise term."""
    a = pub("detector.ecal_resolution_stochastic")
    sigma = np.sqrt(a * a * np.maximum(e_true, 0.0) + tune("ecal.noise_GeV") ** 2)
    return (e_true + sigma * rng.standard_normal(e_true.size, dtype=F32)).astype(F32)


def shower_chi2(em: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shower-shape chi2/ndf: e-m showers ~ scaled chi2_k/k (with a distorted tail), hadronic ones large."""
    k = tune("ecal.chi2_ndf")
    base = rng.standard_gamma(0.5 * k, em.size, dtype=F32) * (2.0 / k)
    bad = rng.random(em.size, dtype=F32) < tune("ecal.chi2_bad_fraction")
    scale = np.where(em, np.where(bad, tune("ecal.chi2_scale_bad"), tune("ecal.chi2_scale_em")),
                     tune("ecal.chi2_scale_hadronic"))
    return (base * scale).astype(F32)


def veto_response(mips: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Three VETO counters (MeV): each crossing charged particle lands in one counter, gamma-shaped MIP."""
    n = mips.size
    shape, mean = tune("veto.mip_shape"), tune("veto.mip_mean_MeV")
    out = [np.abs(tune("veto.noise_MeV") * rng.standard_normal(n, dtype=F32)) for _ in range(3)]
    has = np.flatnonzero(mips > 0)
    if has.size:
        reps = mips[has].astype(np.int64)
        ev = np.repeat(has, reps)
        counter = rng.integers(0, 3, ev.size)
        dep = rng.standard_gamma(shape, ev.size, dtype=F32) * (mean / shape)
        for c in range(3):
            sel = counter == c
            out[c] += np.bincount(ev[sel], weights=dep[sel], minlength=n).astype(F32)
    return {f"veto_e{c}": out[c].astype(F32) for c in range(3)}


def hcal_response(dep: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """HCAL module energies: 0.6/sqrt(E) per module (0.6/sqrt(E) for the sum), noise clipped at 0."""
    a = pub("detector.hcal_resolution_stochastic")
    noise = tune("hcal.noise_GeV")
    sigma = np.sqrt(a * a * dep + noise * noise)
    return np.maximum(dep + sigma * rng.standard_normal(dep.shape, dtype=F32), 0.0).astype(F32)


def respond(truth: dict[str, np.ndarray], intensity: np.ndarray, *, hcal0_installed: bool,
            rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Contract branches (all but run/spill/event/trigger/weight) for truth events at given intensities.

    Pile-up: an extra beam e- in the ECAL window either merges with the trigger peak (the event fails the
    trigger: it is marked with NaN ECAL energy) or is resolved (ecal_pileup = 1, residual energy left);
    an extra particle in the tracker window adds a track and 4 straw hits; a halo muon in the halo window
    adds a MIP in a VETO counter and a muon deposit in the HCAL.
    """
    n = truth["e0"].size
    prob = pileup_probabilities(intensity)
    pu_ecal = (rng.random(n) < prob["ecal"]) | truth["pileup_forced"]
    dt = rng.uniform(-0.5, 0.5, n) * pileup_windows_ns()["ecal"]
    merged = pu_ecal & (np.abs(dt) < tune("pileup.resolve_ns")) & ~truth["pileup_forced"]
    pu_trk = rng.random(n) < prob["tracker"]
    halo = rng.random(n) < prob["halo"]

    out: dict[str, np.ndarray] = {}
    extra_tracks = truth["extra_tracks"] + pu_trk
    out.update(beam.tracks(truth["p_true"], truth["theta_true"], extra_tracks, rng))
    out["straw_nhits"] = beam.straw_hits(extra_tracks, truth["extra_straw"], rng)
    out.update(beam.srd(truth["e0"], truth["srd_tag"], rng))

    residual = np.where(pu_ecal, np.abs(tune("pileup.residual_GeV") * rng.standard_normal(n)), 0.0)
    ecal = ecal_response(truth["ecal"], rng) + residual.astype(F32)
    out["ecal_e"] = np.where(merged, np.nan, ecal).astype(F32)
    ps_sigma = np.sqrt(pub("detector.ecal_resolution_stochastic") ** 2 * np.maximum(truth["ps"], 0.0)
                       + tune("ecal.noise_GeV") ** 2)
    out["ecal_ps_e"] = np.maximum(truth["ps"] + ps_sigma * rng.standard_normal(n, dtype=F32), 0.0).astype(F32)
    chi2 = shower_chi2(truth["em"], rng)
    out["ecal_chi2"] = np.where(pu_ecal, chi2 + np.abs(residual), chi2).astype(F32)
    spot, res = tune("beam.spot_sigma_mm"), tune("ecal.position_resolution_mm")
    for c in ("ecal_x", "ecal_y"):
        out[c] = (rng.standard_normal(n, dtype=F32) * np.hypot(spot, res)).astype(F32)
    t = rng.standard_normal(n, dtype=F32) * tune("ecal.time_sigma_ns")
    out["ecal_t"] = np.where(pu_ecal & (residual > pub("detector.ecal_pileup_cell_threshold_GeV")),
                             dt, t).astype(F32)
    out["ecal_pileup"] = pu_ecal.astype(np.uint8)

    out.update(veto_response(truth["veto_mips"] + halo * (rng.random(n) < 0.5), rng))
    hcal_dep = truth["hcal"].copy()
    halo_hcal = halo & (rng.random(n) < 0.5)
    if halo_hcal.any():
        k = int(halo_hcal.sum())
        shape = tune("hcal.muon_module_shape")
        mu = 0.5 * pub("detector.muon_mip_per_hcal_module_GeV") / shape
        hcal_dep[halo_hcal] += rng.standard_gamma(shape, (k, hcal_dep.shape[1]), dtype=F32) * mu
    hcal = hcal_response(hcal_dep, rng)
    for i in range(hcal.shape[1]):
        out[f"hcal_e{i}"] = hcal[:, i]
    if hcal0_installed:
        h0 = truth["hcal0"] + np.abs(tune("hcal.hcal0_noise_GeV") * rng.standard_normal(n, dtype=F32))
        out["hcal0_e"] = h0.astype(F32)
    else:
        out["hcal0_e"] = np.zeros(n, dtype=F32)
    return out


def trigger(ecal_e: np.ndarray, ecal_ps_e: np.ndarray) -> np.ndarray:
    """Tr(A') = [E_ECAL < 80 GeV] * [E_PS > 0.3 GeV] (S001 eq. 14); NaN (merged pile-up) fails."""
    with np.errstate(invalid="ignore"):
        return (ecal_e < pub("trigger.ecal_max_GeV")) & (ecal_ps_e > pub("trigger.ps_min_GeV"))
