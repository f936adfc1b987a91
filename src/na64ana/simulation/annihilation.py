"""Resonant annihilation signal events, e+ e- -> A' -> invisible (brief_extensions 2 and 4).

A positron of the shower meets an atomic electron and makes an on-shell A' when its energy is
E_R = (m^2 - 2 m_e^2)/(2 m_e): the A' carries E_R away (a line, E_miss = E_R) and the ECAL sees the rest
of the shower, E0 - E_R, before the detector response. What this module decides is where the positron
comes from, and so how deep the annihilation happens and how much of E0 - E_R reaches the pre-shower
(the trigger needs E_PS > 0.3 GeV):

- *secondary* positron (both beams): the beam particle, at energy E_e after radiating E0 - E_e over
  t = signal.depth_per_efold_X0 * ln(E0/E_e), radiates a hard photon k > E_R (Bethe-Heitler, the depth
  weighted by the rate of such photons); the photon converts after ~9/7 X0 and its positron annihilates
  there. E0 - E_e showers from ~t/2, the beam particle's remaining E_e - k from t, the pair electron
  k - E_R from the conversion point [APPROX: the positron's own radiation before it reaches E_R is
  neglected];
- *primary* positron (e+ beam): the beam positron radiated E0 - E_R before annihilating, at depth
  t = signal.depth_per_efold_X0 * ln(E0/E_R) (as the primary e- of the bremsstrahlung signal); its photons
  showered from ~t/2;
- the beam positron's *un-radiated spike* (e+ beam, E_R within the beam spread of E0): it annihilates
  before its first hard emission, the ECAL sees ~nothing and the event does not fire the trigger.

The three shares are the track lengths of the physics layer at E_R: T_+ of the e- shower (secondaries;
the same for an e+ beam in the charge-symmetric cascade), the rest of T_+ of the e+ shower (primary) and
the spike density of :func:`na64ana.physics.yields.annihilation_yield_per_eot_grid` with the beam spread.
"""

from __future__ import annotations

import math

import numpy as np

from ..contract import Process
from ..errors import InputError
from .config import pub, tune
from .processes import F32, PDG_E, _electron_primary, blank, em_ps_from

ORIGINS = ("secondary", "primary", "spike")


def resonance_energy(mass_GeV: float) -> float:
    """E_R (GeV) of a mediator of mass ``mass_GeV`` on an electron at rest."""
    from ..physics.production import annihilation as ann

    return float(ann.resonance_energy(mass_GeV))


def _beam_spread(beam: str) -> float:
    """Relative beam-energy spread used for the yield: only the e+ beam's own positron feels it."""
    return float(pub("beam.energy_spread_rel")) if beam == "e+" else 0.0


def origin_fractions(mass_GeV: float, *, e_nominal: float, beam: str = "e-") -> dict[str, float]:
    """Share of the resonant yield at ``mass_GeV`` by positron origin (secondary, primary, spike)."""
    from ..physics.shower import track_length_table

    e_r = resonance_energy(mass_GeV)
    secondary = float(track_length_table("e-").smoothed(e_r, e_nominal, "e+"))
    if beam != "e+":
        return {"secondary": 1.0, "primary": 0.0, "spike": 0.0}
    tab = track_length_table("e+")
    cont = float(tab.smoothed(e_r, e_nominal, "e+"))
    sig = _beam_spread(beam) * e_nominal
    spike = tab.spike * math.exp(-0.5 * ((e_r - e_nominal) / sig) ** 2) / (sig * math.sqrt(2 * math.pi))
    secondary = min(secondary, cont)
    total = cont + spike
    if total <= 0:
        return {"secondary": 1.0, "primary": 0.0, "spike": 0.0}
    return {"secondary": secondary / total, "primary": (cont - secondary) / total, "spike": spike / total}


def count_rate(mass_GeV: float, eps: float, *, e_nominal: float, ea_min: float, beam: str = "e-") -> float:
    """Resonant A' per beam particle with E_R > ``ea_min`` (narrow width, BR_inv = 1)."""
    from ..physics.yields import annihilation_yield_per_eot_grid

    return float(annihilation_yield_per_eot_grid([mass_GeV], eps, e0=e_nominal, emiss_min=ea_min, beam=beam,
                                                 beam_spread=_beam_spread(beam))[0])


def check_line(mass_GeV: float, *, e_nominal: float, ea_min: float, beam: str = "e-") -> float:
    """E_R of ``mass_GeV``; an InputError naming the mass when the line misses (ea_min, E0 (+ spread))."""
    e_r = resonance_energy(mass_GeV)
    top = e_nominal * (1.0 + 3.0 * _beam_spread(beam))
    if not (ea_min < e_r < top):
        from ..physics.production import annihilation as ann

        lo, hi = ann.mass_at_resonance(ea_min), ann.mass_at_resonance(top)
        raise InputError(f"no resonant annihilation at m = {mass_GeV:g} GeV: E_R = {e_r:.1f} GeV is outside "
                         f"({ea_min:g}, {top:g}) GeV, i.e. m outside ({float(lo):.4f}, {float(hi):.4f}) GeV",
                         field="mass")
    return e_r


def _inverse_cdf_sample(x: np.ndarray, w: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw per row from the density ``w`` tabulated on the rows of ``x`` (trapezoid CDF, linear)."""
    n, m = x.shape
    steps = np.cumsum(0.5 * (w[:, 1:] + w[:, :-1]) * np.diff(x, axis=1), axis=1)
    cdf = np.concatenate([np.zeros((n, 1)), steps], axis=1)
    cdf /= cdf[:, -1:]
    u = np.asarray(rng.random(n), dtype=float)
    idx = np.clip((cdf < u[:, None]).sum(axis=1), 1, m - 1)
    rows = np.arange(n)
    c0, c1 = cdf[rows, idx - 1], cdf[rows, idx]
    frac = np.where(c1 > c0, (u - c0) / np.where(c1 > c0, c1 - c0, 1.0), 0.0)
    return x[rows, idx - 1] + frac * (x[rows, idx] - x[rows, idx - 1])


def _photons_above(y0: np.ndarray) -> np.ndarray:
    """Bethe-Heitler photons with y = k/E > y0 per X0: 4/3 ln(1/y0) - 4/3 (1 - y0) + (1 - y0^2)/2."""
    y0 = np.clip(np.asarray(y0, dtype=float), 1e-9, 1.0)
    return 4.0 / 3.0 * np.log(1.0 / y0) - 4.0 / 3.0 * (1.0 - y0) + 0.5 * (1.0 - y0**2)


def _hard_photon(e0: np.ndarray, e_r: float, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(E_e, k, u) for the beam particle's photon k > E_R that makes the secondary positron.

    The beam particle's path is flat in u = ln(E0/E_e) (Bethe-Heitler, as the bremsstrahlung signal);
    along it photons above E_R are emitted at the rate :func:`_photons_above` (E_R/E_e), which fixes the
    density of u on [0, ln(E0/E_R)]; y = k/E_e then follows (1/y)(4/3 - 4/3 y + y^2) above E_R/E_e.
    """
    m = int(tune("annihilation.brems_y_points"))
    s = np.linspace(0.0, 1.0, m)[None, :]
    u_max = np.log(np.maximum(e0 / e_r, 1.0 + 1e-9))[:, None]
    u = u_max * s
    uu = _inverse_cdf_sample(u, _photons_above(e_r * np.exp(u) / e0[:, None]), rng)
    e_e = np.maximum(e0 * np.exp(-uu), e_r)
    y0 = (e_r / e_e)[:, None]
    y = y0 + (1.0 - y0) * s
    yk = _inverse_cdf_sample(y, (4.0 / 3.0 * (1.0 - y) + y * y) / y, rng)
    return e_e, np.clip(yk * e_e, e_r, e_e), uu


def truth(mass_GeV: float, n: int, rng: np.random.Generator, *, e_nominal: float, beam: str = "e-",
          chunk: int = 1 << 13) -> dict[str, np.ndarray]:
    """``n`` resonant-annihilation truth events: the A' takes E_R, the ECAL keeps E0 - E_R.

    Truth ``eaprime`` = E_R (the line); ``ecal`` = E0 - E_R (0 for the spike: nothing showers); the PS
    share from the depth of the annihilating positron (module docstring). ``pdg`` is the beam electron's
    (the caller conjugates for an e+ beam).
    """
    e_r = resonance_energy(mass_GeV)
    t = blank(n, Process.SIGNAL, PDG_E)
    _electron_primary(t, e_nominal, rng)
    shares = origin_fractions(mass_GeV, e_nominal=e_nominal, beam=beam)
    origin = rng.choice(len(ORIGINS), n, p=[shares[o] for o in ORIGINS])
    e0 = t["e0"].astype(np.float64)
    # the beam particle must carry more than E_R: redraw the beam energy of the others (truncated spread)
    for _ in range(100):
        low = np.flatnonzero((origin != 2) & (e0 <= e_r))
        if low.size == 0:
            break
        e0[low] = e_nominal * (1.0 + pub("beam.energy_spread_rel") * rng.standard_normal(low.size))
    else:
        raise InputError(f"E_R = {e_r:.1f} GeV is above the beam energy for m = {mass_GeV:g} GeV",
                         field="mass")
    spike = origin == 2
    e0[spike] = e_r  # the un-radiated beam positron has exactly E_R
    t["e0"][:] = e0
    t["p_true"][:] = e0
    t["eaprime"][:] = e_r
    t["ecal"][:] = np.maximum(e0 - e_r, 0.0)
    ps = np.zeros(n, dtype=F32)
    sec = np.flatnonzero(origin == 0)
    for lo in range(0, sec.size, chunk):
        i = sec[lo:lo + chunk]
        e_e, k, u = _hard_photon(e0[i], e_r, rng)
        t_e = tune("signal.depth_per_efold_X0") * u  # where the photon is emitted
        t_conv = t_e + rng.exponential(tune("annihilation.pair_conversion_length_X0"), i.size)
        ps[i] = (em_ps_from(e0[i] - e_e, 0.5 * t_e, rng) + em_ps_from(e_e - k, t_e, rng)
                 + em_ps_from(k - e_r, t_conv, rng))
    prim = np.flatnonzero(origin == 1)
    if prim.size:
        depth = tune("signal.depth_per_efold_X0") * np.log(e0[prim] / e_r)
        ps[prim] = em_ps_from(e0[prim] - e_r, 0.5 * depth, rng)
    t["ps"][:] = np.minimum(ps, t["ecal"])
    return t
