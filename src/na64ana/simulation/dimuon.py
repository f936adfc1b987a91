"""Dimuon MC for the data/MC benchmark (S001 Sec. V, Table I): the MC *prediction* per run.

The simulated "data" dimuons (skim source ``dimuon``) already carry every intensity-dependent loss of the
detector model. The published data/MC ratios are the reduction factors f (0.92/0.85/0.81 at 1.8/3.2/4.6e6
e-/spill, S001 Table I), so the MC prediction is data / f: the same generator and detector response, with
``weight = dimuon rate per EOT * EOT / f(I) / n_generated`` and f interpolated in the run's mean intensity
(clamped outside the published range).
"""

from __future__ import annotations

import numpy as np

from ..datasets import Run
from ..errors import InputError
from . import processes as P
from .config import pub
from .generate import _simulate_triggered, _take, assemble, run_number
from .rates import skim_sources


def reduction_factor(run: Run) -> float:
    """Published data/MC dimuon ratio f at the run's EOT-weighted mean intensity (S001 Table I)."""
    lo, hi = run.intensity_e_per_spill
    mean_i = (2.0 / 3.0) * (hi**3 - lo**3) / (hi**2 - lo**2) if hi > lo else lo
    return float(np.interp(mean_i, pub("dimuon.intensity_e_per_spill"), pub("dimuon.reduction_factor")))


def simulate_dimuon_sample(run: Run, *, n_events: int, rng: np.random.Generator, campaign: str,
                           run_name: str = "", beam_energy: float = 100.0, info: dict | None = None
                           ) -> dict[str, np.ndarray]:
    """Contract arrays of the triggered events among ``n_events`` generated dimuons (MC prediction weights).

    Sum of weights over all generated events = rate * EOT / f, so after any selection
    data / MC ~ f. ``info`` receives ``generated``, ``triggered``, ``rate_per_eot``, ``reduction_factor``.
    """
    if int(n_events) != n_events or n_events <= 0:
        raise InputError(f"n_events must be a positive integer, got {n_events!r}", field="n_events")
    if run.eot is None or not run.eot > 0:
        raise InputError("the dimuon MC needs the run's EOT", field=f"runs.{run_name}.eot")
    n_events = int(n_events)
    src = next(s for s in skim_sources(campaign, run_name, run, e_nominal=beam_energy) if s.name == "dimuon")
    f = reduction_factor(run)
    truth = P.dimuon(n_events, beam_energy, rng)
    truth, det, _ = _simulate_triggered(truth, run, rng)
    keep = np.flatnonzero(np.isfinite(det["ecal_e"]))
    truth, det = _take(truth, keep), _take(det, keep)
    if info is not None:
        info.update(generated=n_events, triggered=int(keep.size), rate_per_eot=src.rate_per_eot,
                    reduction_factor=f)
    return assemble(truth, det, run_no=run_number(run_name), eot=float(run.eot),
                    intensity_nominal=run.intensity_nominal, rng=rng,
                    weight=src.rate_per_eot * float(run.eot) / f / n_events)
