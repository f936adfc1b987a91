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


def pileup_probabilities_ecal(intensity: np.ndarray) -> np.ndarray:
    """P(extra beam particle in the ECAL window), float32 (the hot path needs only this one)."""
    rate = rate_per_s(np.asarray(intensity, dtype=F32)) * F32(pileup_windows_ns()["ecal"] * 1e-9)
    return -np.expm1(-rate)


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
    base = rng.standard_gamma(0.5 * k, em.size, dtype=F32)
    bad = rng.random(em.size, dtype=F32) < tune("ecal.chi2_bad_fraction")
    scale = np.where(em, np.where(bad, F32(tune("ecal.chi2_scale_bad")), F32(tune("ecal.chi2_scale_em"))),
                     F32(tune("ecal.chi2_scale_hadronic"))) * F32(2.0 / k)
    return base * scale


def veto_response(mips: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Three VETO counters (MeV): each crossing charged particle lands in one counter, gamma-shaped MIP.

    Sums of m gamma(shape) MIPs are gamma(m * shape): one draw per counter, no per-particle arrays.
    """
    n = mips.size
    shape, mean = tune("veto.mip_shape"), tune("veto.mip_mean_MeV")
    out = np.abs(tune("veto.noise_MeV") * rng.standard_normal((3, n), dtype=F32))
    has = np.flatnonzero(mips > 0)
    if has.size:
        k = mips[has].astype(np.int64)
        m0 = rng.binomial(k, 1.0 / 3.0)
        m1 = rng.binomial(k - m0, 0.5)
        m = np.stack([m0, m1, k - m0 - m1]).astype(F32) * F32(shape)
        out[:, has] += rng.standard_gamma(np.maximum(m, 1e-30)).astype(F32) * F32(mean / shape) * (m > 0)
    return {f"veto_e{c}": out[c] for c in range(3)}


def hcal_response(dep: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """HCAL module energies: 0.6/sqrt(E) per module (0.6/sqrt(E) for the sum), noise clipped at 0."""
    a = pub("detector.hcal_resolution_stochastic")
    noise = tune("hcal.noise_GeV")
    sigma = np.sqrt(F32(a * a) * dep + F32(noise * noise))
    return np.maximum(dep + sigma * rng.standard_normal(dep.shape, dtype=F32), F32(0.0))


def respond_trigger(truth: dict[str, np.ndarray], intensity: np.ndarray, rng: np.random.Generator
                    ) -> dict[str, np.ndarray]:
    """Stage 1 of :func:`respond`: ECAL pile-up, ECAL and PS energies -- all the trigger needs.

    Returns ``ecal_e``, ``ecal_ps_e`` and the private ``_pu`` / ``_dt`` / ``_res`` (pile-up flag, time,
    residual) used by :func:`respond_rest`; callers may drop untriggered events in between (speed).
    """
    n = truth["e0"].size
    p_ecal = pileup_probabilities_ecal(intensity)
    forced = truth["pileup_forced"]
    pu = (rng.random(n, dtype=F32) < p_ecal) | forced
    idx = np.flatnonzero(pu)
    window = pileup_windows_ns()["ecal"]
    dt = np.zeros(n, dtype=F32)
    res = np.zeros(n, dtype=F32)
    if idx.size:
        u = rng.random((2, idx.size), dtype=F32)
        dt[idx] = (u[0] - F32(0.5)) * F32(window)
        res[idx] = np.abs(F32(tune("pileup.residual_GeV")) * rng.standard_normal(idx.size, dtype=F32))
    merged = pu & (np.abs(dt) < tune("pileup.resolve_ns")) & ~forced
    a2, noise2 = F32(pub("detector.ecal_resolution_stochastic") ** 2), F32(tune("ecal.noise_GeV") ** 2)
    z = rng.standard_normal((2, n), dtype=F32)
    e, ps = truth["ecal"], truth["ps"]
    ecal = e + np.sqrt(a2 * np.maximum(e, F32(0.0)) + noise2) * z[0] + res
    ecal[merged] = np.nan
    ps_e = np.maximum(ps + np.sqrt(a2 * np.maximum(ps, F32(0.0)) + noise2) * z[1], F32(0.0))
    return {"ecal_e": ecal.astype(F32, copy=False), "ecal_ps_e": ps_e.astype(F32, copy=False),
            "_pu": pu, "_dt": dt, "_res": res}


def respond_rest(truth: dict[str, np.ndarray], intensity: np.ndarray, stage: dict[str, np.ndarray], *,
                 hcal0_installed: bool, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Stage 2 of :func:`respond`: every other branch (tracks, straws, SRD, shape, VETO, HCAL, HCAL0)."""
    n = truth["e0"].size
    w = pileup_windows_ns()
    rate = rate_per_s(np.asarray(intensity, dtype=F32)) * F32(1e-9)
    u = rng.random((4, n), dtype=F32)  # tracker pile-up, halo, halo->VETO, halo->HCAL
    pu_trk = u[0] < -np.expm1(-rate * F32(w["tracker"]))
    halo = u[1] < -np.expm1(-rate * F32(w["halo"]))
    pu, dt, res = stage["_pu"], stage["_dt"], stage["_res"]

    out: dict[str, np.ndarray] = {"ecal_e": stage["ecal_e"], "ecal_ps_e": stage["ecal_ps_e"]}
    extra_tracks = truth["extra_tracks"] + pu_trk
    out.update(beam.tracks(truth["p_true"], truth["theta_true"], extra_tracks, rng))
    out["straw_nhits"] = beam.straw_hits(extra_tracks, truth["extra_straw"], rng)
    out.update(beam.srd(truth["e0"], truth["srd_tag"], rng))
    chi2 = shower_chi2(truth["em"], rng)
    out["ecal_chi2"] = chi2 + res
    spot, reso = tune("beam.spot_sigma_mm"), tune("ecal.position_resolution_mm")
    z = rng.standard_normal((3, n), dtype=F32)
    z[:2] *= F32(np.hypot(spot, reso))
    out["ecal_x"], out["ecal_y"] = z[0], z[1]
    t = z[2] * F32(tune("ecal.time_sigma_ns"))
    late = pu & (res > pub("detector.ecal_pileup_cell_threshold_GeV"))
    t[late] = dt[late]
    out["ecal_t"] = t
    out["ecal_pileup"] = pu.astype(np.uint8)

    out.update(veto_response(truth["veto_mips"] + (halo & (u[2] < 0.5)), rng))
    hcal_dep = truth["hcal"]
    halo_hcal = np.flatnonzero(halo & (u[3] < 0.5))
    if halo_hcal.size:
        hcal_dep = hcal_dep.copy()
        shape = tune("hcal.muon_module_shape")
        mu = 0.5 * pub("detector.muon_mip_per_hcal_module_GeV") / shape
        dep = rng.standard_gamma(shape, (halo_hcal.size, hcal_dep.shape[1]), dtype=F32)
        hcal_dep[halo_hcal] += dep * F32(mu)
    hcal = hcal_response(hcal_dep, rng)
    for i in range(hcal.shape[1]):
        out[f"hcal_e{i}"] = hcal[:, i]
    if hcal0_installed:
        out["hcal0_e"] = truth["hcal0"] + np.abs(F32(tune("hcal.hcal0_noise_GeV"))
                                                 * rng.standard_normal(n, dtype=F32))
    else:
        out["hcal0_e"] = np.zeros(n, dtype=F32)
    return out


def respond(truth: dict[str, np.ndarray], intensity: np.ndarray, *, hcal0_installed: bool,
            rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Contract branches (all but run/spill/event/trigger/weight) for truth events at given intensities.

    Pile-up: an extra beam e- in the ECAL window either merges with the trigger peak (the event fails the
    trigger: it is marked with NaN ECAL energy) or is resolved (ecal_pileup = 1, residual energy left);
    an extra particle in the tracker window adds a track and 4 straw hits; a halo muon in the halo window
    adds a MIP in a VETO counter and a muon deposit in the HCAL.
    """
    stage = respond_trigger(truth, intensity, rng)
    return respond_rest(truth, intensity, stage, hcal0_installed=hcal0_installed, rng=rng)


def trigger(ecal_e: np.ndarray, ecal_ps_e: np.ndarray) -> np.ndarray:
    """Tr(A') = [E_ECAL < 80 GeV] * [E_PS > 0.3 GeV] (S001 eq. 14); NaN (merged pile-up) fails."""
    with np.errstate(invalid="ignore"):
        return (ecal_e < pub("trigger.ecal_max_GeV")) & (ecal_ps_e > pub("trigger.ps_min_GeV"))
