"""Signal (A' -> invisible) MC samples for efficiency studies, through the same detector as the backgrounds.

The physics (yield per EOT, E_A' spectrum) comes from :mod:`na64ana.physics.yields`; here only the
sampling range and the event weights are decided: E_A' is drawn above ``migration_fraction * emiss_min``
so that events migrating across the box edge are present, and each generated event carries
``weight = (A' per EOT with E_A' above that threshold, at eps) / n_generated``. Untriggered events are not
written, so the sum of weights of the events passing a selection divided by the A' yield per EOT above
``emiss_min`` is the selection efficiency (trigger included).

``production="annihilation"``: resonant e+ e- -> A' of a shower positron (:mod:`.annihilation`): the A'
takes the line E_R, the ECAL sees E0 - E_R; weight = resonant A' per EOT with E_R above the same
threshold / n_generated. ``beam="e+"``: a positron beam (truth PDG codes conjugated; for annihilation the
beam positron itself annihilates too).
"""

from __future__ import annotations

import numpy as np

from ..datasets import Run
from ..errors import InputError
from . import annihilation
from .config import pub
from .generate import _simulate, _take, assemble, run_number, signal_count_rate, signal_truth


def ps_threshold_loss(ecal_e: np.ndarray, ecal_ps_e: np.ndarray, *, box_ecal_max: float
                      ) -> dict[str, float | int | None]:
    """The preshower-trigger loss of a signal sample (issue 14 item 5), from ALL generated events before the
    untriggered ones are dropped: among events with measured E_ECAL below the box edge (and below the
    trigger's E_ECAL edge), ``ps_threshold_loss`` = the fraction failing E_PS > trigger.ps_min_GeV, and
    ``ecal_below_ps_threshold`` = the fraction whose whole ECAL energy is below that threshold (the A' took
    > 99.7% of E0: the x -> 1 tail of the A' spectrum, which no preshower model can trigger on).

    Published: a PS-threshold correction <~ (5 +- 3)% (S001 Sec. VI.A); the simulation gives 13-16% for
    m_A' >= 100 MeV, almost all from that tail (docs/simulator_tuning.md, "PS-threshold loss"). The loss
    goes into the sample's datasets.json entry (``signal_ps_threshold_loss``, campaign.py), where the
    efficiency stage reads it and corrects the efficiency to the published loss (na64ana.efficiency)."""
    thr = float(pub("trigger.ps_min_GeV"))
    with np.errstate(invalid="ignore"):
        box = (ecal_e < box_ecal_max) & (ecal_e < pub("trigger.ecal_max_GeV"))
        n_box = int(box.sum())
        if n_box == 0:
            return {"ps_threshold_loss": None, "ecal_below_ps_threshold": None, "ps_box_events": 0}
        return {"ps_threshold_loss": float(np.mean(ecal_ps_e[box] <= thr)),
                "ecal_below_ps_threshold": float(np.mean(ecal_e[box] <= thr)), "ps_box_events": n_box}


MIGRATION_FRACTION = 0.8  # E_A' sampled above 0.8 * emiss_min (brief: "~0.8*emiss_min")
PRODUCTIONS = ("brem", "annihilation")


def simulate_signal_sample(run: Run, *, mass_GeV: float, n_events: int, rng: np.random.Generator,
                           eps: float = 1e-4, run_name: str = "", beam_energy: float = 100.0,
                           emiss_min: float = 50.0, info: dict | None = None, production: str = "brem",
                           beam: str = "e-") -> dict[str, np.ndarray]:
    """Contract arrays for ``n_events`` generated A' events (only the triggered ones are returned).

    The primary e- sees the run's intensity (pile-up), SRD, ECAL (E0 - E_A' smeared), chi2, VETO/HCAL
    noise, like every background event. ``info`` receives ``generated``, ``triggered``, ``yield_per_eot``
    and the preshower-trigger loss in the box (:func:`ps_threshold_loss`).
    """
    if int(n_events) != n_events or n_events <= 0:
        raise InputError(f"n_events must be a positive integer, got {n_events!r}", field="n_events")
    if not np.isfinite(eps) or eps <= 0:
        raise InputError(f"eps must be positive, got {eps!r}", field="eps")
    if production not in PRODUCTIONS:
        raise InputError(f"unknown production '{production}' (choose {', '.join(PRODUCTIONS)})",
                         field="production")
    if beam not in ("e-", "e+"):
        raise InputError(f"unknown beam particle '{beam}' (choose e-, e+)", field="beam_particle")
    n_events = int(n_events)
    ea_min = MIGRATION_FRACTION * emiss_min
    if production == "annihilation":
        annihilation.check_line(mass_GeV, e_nominal=beam_energy, ea_min=ea_min, beam=beam)
        per_eot = annihilation.count_rate(mass_GeV, eps, e_nominal=beam_energy, ea_min=ea_min, beam=beam)
        truth = annihilation.truth(mass_GeV, n_events, rng, e_nominal=beam_energy, beam=beam)
    else:
        per_eot = signal_count_rate(mass_GeV, eps, e_nominal=beam_energy, ea_min=ea_min)
        truth = signal_truth(mass_GeV, eps, n_events, rng, e_nominal=beam_energy, ea_min=ea_min)
    if beam == "e+":
        truth["pdg"] = -truth["pdg"]
    truth, det, trig = _simulate(truth, run, rng)
    ps_loss = ps_threshold_loss(det["ecal_e"], det["ecal_ps_e"], box_ecal_max=beam_energy - emiss_min)
    truth, det = _take(truth, trig), _take(det, trig)
    if info is not None:
        info.update(generated=n_events, triggered=int(trig.sum()), yield_per_eot=per_eot, ea_min=ea_min,
                    production=production, **ps_loss)
    return assemble(truth, det, run_no=run_number(run_name), eot=run.eot,
                    intensity_nominal=run.intensity_nominal, rng=rng, weight=per_eot / n_events)
