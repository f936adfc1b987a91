"""ALP signal MC (gamma Z -> a Z in the ECAL, a -> gamma gamma downstream) through the NA64-like detector.

Why: the ALP selection (selections/alp.toml, processors/alp.py) needs signal events with the same
conventions as every other sample (seeds, writer, contract branches, weights) to measure its efficiency
per signal region. The physics comes from :mod:`na64ana.physics.alp` (Primakoff on the shower photons,
T_gamma; decay length (E/m) c tau; geometry of ``data/alp_geometry.toml``); here only sampling:

* E_a from the Primakoff spectrum integral T_gamma sigma above ``ea_min`` (default: the lowest signal-
  region energy, E0 - 85 GeV = 15 GeV, times the migration fraction 0.8 of the A' samples), uniform inside
  a 0.25 GeV track-length bin;
* the primary e- showers E0 - E_a in the ECAL (:func:`na64ana.simulation.processes.signal` without a mass:
  the emission at the ECAL front [APPROX, as the old A' model]);
* the decay point: production depth + Exp((p/m) c tau) along the beam. It decides where the two photons
  deposit E_a [APPROX, full containment, all of it in one place]: inside the ECAL -> added to the ECAL;
  between the ECAL and the end of HCAL1 -> HCAL1; in module k of HCAL2-4 or the gap in front of it ->
  module k; behind the last module -> nothing (the missing-energy signature);
* ``weight`` = ALPs per EOT with E_a > ea_min at ``g_agg`` / n_generated; untriggered events are not
  written, so sum(weights passing a region) / (ALP yield per EOT) is the region's efficiency.

``info`` receives the generated and triggered counts, the yield per EOT and the fraction of generated
decays per place (``decays``: ecal, hcal1, hcal2_4, beyond), for the tests and the provenance.
"""

from __future__ import annotations

import numpy as np

from ..datasets import Run
from ..errors import InputError
from ..physics import alp as alp_physics
from ..physics.models.alp import AlpPhoton
from .generate import _simulate, _take, assemble, run_number
from .processes import F32, signal

__all__ = ["MIGRATION_FRACTION", "decay_places", "simulate_alp_sample"]

MIGRATION_FRACTION = 0.8


def decay_places(z_decay_m: np.ndarray, geometry: alp_physics.AlpGeometry) -> np.ndarray:
    """Index of where a decay at ``z_decay_m`` (m from the ECAL front) deposits: -1 ECAL, k = 0..3 HCAL
    module k (HCAL1 also takes decays between the ECAL and its front; module k the gap in front of it),
    4 nothing (behind the HCAL)."""
    z = np.asarray(z_decay_m, dtype=float)
    out = np.full(z.shape, geometry.hcal_modules, dtype=np.int64)
    for k in range(geometry.hcal_modules - 1, -1, -1):
        out[z < geometry.hcal_end_m(k + 1)] = k
    out[z < geometry.ecal_length_m] = -1
    return out


def simulate_alp_sample(run: Run, *, mass_GeV: float, n_events: int, rng: np.random.Generator,
                        g_agg: float = 1e-4, run_name: str = "", beam_energy: float = 100.0,
                        ea_min: float | None = None, info: dict | None = None,
                        geometry: alp_physics.AlpGeometry | None = None) -> dict[str, np.ndarray]:
    """Contract arrays for ``n_events`` generated ALP events (only the triggered ones are returned)."""
    if int(n_events) != n_events or n_events <= 0:
        raise InputError(f"n_events must be a positive integer, got {n_events!r}", field="n_events")
    if not (np.isfinite(g_agg) and g_agg > 0):
        raise InputError(f"g_agg must be positive, got {g_agg!r}", field="g_agg")
    n = int(n_events)
    geo = geometry or alp_physics.load_geometry()
    lo = (MIGRATION_FRACTION * alp_physics.region_energy_min("hcal", beam_energy, geo) if ea_min is None
          else ea_min)
    ay = alp_physics.AlpYield(float(mass_GeV), e0=beam_energy, geometry=geo)
    energies, weights = ay.spectrum_above(lo)
    if not weights.sum() > 0:
        raise InputError(f"no ALP with E_a > {lo:g} GeV at m_a = {mass_GeV:g} GeV", field="mass")
    per_eot = float(g_agg**2 * weights.sum())
    half = 0.5 * float(np.min(np.diff(energies))) if energies.size > 1 else 0.0
    idx = rng.choice(energies.size, n, p=weights / weights.sum())
    ea = energies[idx] + half * (2.0 * rng.random(n) - 1.0)
    t = signal(n, beam_energy, ea.astype(F32), rng)  # the e- keeps E0 - E_a (scaled with the beam energy)
    e_a = t["eaprime"].astype(np.float64)
    decay_cm = AlpPhoton(g_agg=g_agg).decay_length_cm(np.maximum(e_a, 1.0001 * mass_GeV), mass_GeV)
    z = geo.production_depth_m + 0.01 * rng.exponential(1.0, n) * decay_cm
    place = decay_places(z, geo)
    inside = place == -1
    t["ecal"][inside] += t["eaprime"][inside]
    for k in range(geo.hcal_modules):
        sel = place == k
        t["hcal"][sel, k] += t["eaprime"][sel]
    truth, det, trig = _simulate(t, run, rng)
    truth, det = _take(truth, trig), _take(det, trig)
    if info is not None:
        info.update(generated=n, triggered=int(trig.sum()), yield_per_eot=per_eot, ea_min=lo,
                    production="primakoff", g_agg=g_agg,
                    decays={"ecal": float(np.mean(inside)), "hcal1": float(np.mean(place == 0)),
                            "hcal2_4": float(np.mean((place >= 1) & (place < geo.hcal_modules))),
                            "beyond": float(np.mean(place == geo.hcal_modules))})
    return assemble(truth, det, run_no=run_number(run_name), eot=run.eot,
                    intensity_nominal=run.intensity_nominal, rng=rng, weight=per_eot / n)
