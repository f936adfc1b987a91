"""Process rates per EOT for a run, calibrated to the publications.

Two kinds of normalisation:
- *plane* processes (dimuons, hadron electroproduction, region-III pile-up, fake SR tags) have a rate per
  EOT set by published numbers or APPROX tuning (simulation.toml);
- *box* components (upstream interactions, lost muons/hadrons, decays in flight, punch-through) are
  normalised so that the expected count in the signal box AFTER the selection reproduces the published
  background of the run: generated = n_b / (eff_sel * f_box), with eff_sel the modelled selection
  efficiency of a clean electron at the run's intensities.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np

from .. import published
from ..contract import Process
from ..datasets import Campaign, Run
from . import processes as P
from .config import pub, tune
from .detector import mean_survival, pileup_probabilities

Generator = Callable[[int, np.random.Generator], dict[str, np.ndarray]]

# published background component -> simulated sub-process (prd2018's hadron loss joins target interactions)
_COMPONENTS = {"upstream": ("upstream",), "dimuon": ("dimuon",), "decay_in_flight": ("decay_in_flight",),
               "target_interactions": ("target_interactions", "hadron_loss"),
               "punch_through": ("punch_through",)}
_REFERENCE_CAMPAIGN = "prl2019"


@dataclass(frozen=True)
class BeamSpec:
    """A campaign's beam: its particle and contaminants per beam particle (default: published.toml [beam]).

    A positron beam is simulated as the charge conjugate of the electron one (same detector response; every
    truth PDG code flips sign), with its own hadron and muon fractions.
    """

    particle: str = "e-"
    pion_fraction: float | None = None
    kaon_fraction: float | None = None
    muon_fraction: float | None = None

    @classmethod
    def of(cls, campaign: Campaign) -> BeamSpec:
        comp = campaign.beam_composition
        if comp is None:
            return cls(campaign.beam)
        return cls(campaign.beam, comp.pion_fraction, comp.kaon_fraction, comp.muon_fraction)

    @property
    def hadron_fraction(self) -> float:
        pi = pub("beam.pion_fraction") if self.pion_fraction is None else self.pion_fraction
        k = pub("beam.kaon_fraction") if self.kaon_fraction is None else self.kaon_fraction
        return float(pi + k)

    @property
    def muons(self) -> float:
        return float(pub("beam.muon_fraction") if self.muon_fraction is None else self.muon_fraction)

    @property
    def charge_sign(self) -> int:
        """+1 for an e- beam, -1 for e+ (multiplies every truth PDG code)."""
        return -1 if self.particle == "e+" else 1


E_BEAM = BeamSpec()


@dataclass(frozen=True)
class Source:
    """One simulated sub-process: its rate per EOT and a generator ``gen(n, rng) -> truth``."""

    name: str
    process: Process
    rate_per_eot: float
    gen: Generator
    thinned_by_pileup: bool = False  # rate given at the maximum intensity, kept with P(I)/P(I_max)
    # optional two-stage form of ``gen`` for the trigger level: ``gen_trigger`` fills what the trigger needs
    # (plus private '_' keys), ``finish`` completes any subset of its events; gen == finish(gen_trigger)
    gen_trigger: Generator | None = None
    finish: Callable[[dict[str, np.ndarray], np.random.Generator], dict[str, np.ndarray]] | None = None


def selection_efficiency(campaign: str, run: Run) -> float:
    """Modelled efficiency of the published selection for a clean single-electron event in ``run``."""
    table = tune("selection_model.eff0")
    return table.get(campaign, table["default"]) * mean_survival(run.intensity_e_per_spill)


def _pub_value(entry: dict) -> float:
    """A published component in events: an upper limit (``limit = true``) at ``limit_fraction`` x the limit
    (1.0: at the limit, as the published totals and :func:`na64ana.background.run_table` count it)."""
    v = float(entry["value"])
    return v * tune("selection_model.limit_fraction") if entry.get("limit") else v


def published_backgrounds(campaign: str, run: Run) -> dict[str, float]:
    """Published expected box background of ``run`` by component (events after all cuts).

    Campaign tables are split proportionally to EOT (no per-run split is published, brief 6.2); a per-run
    published upstream value (datasets.json ``background``) takes precedence. Campaigns without a table use
    the per-EOT rates of the reference campaign. A run's ``background_components`` (datasets.json, each
    with its source) replace all of this.
    """
    if run.background_components is not None:
        given: dict[str, float] = {str(k): v for k, v in run.background_components.items()}
        return {comp: float(given.get(comp, 0.0)) for comp in _COMPONENTS}
    table = published.table().get("background", {})
    name = campaign if campaign in table and f"{campaign}_eot" in published.table().get("exposure", {}) \
        else _REFERENCE_CAMPAIGN
    comps = table[name]
    exposure = pub(f"exposure.{name}_eot")
    out = {}
    for comp, keys in _COMPONENTS.items():
        total = sum(_pub_value(comps[k]) for k in keys if k in comps)
        out[comp] = total * run.eot / exposure
    if name == campaign and run.background is not None:
        out["upstream"] = run.background
    return out


def upstream_slope(campaign: str, run_name: str, run: Run) -> float:
    """Side-band-C slope (1/GeV): published per run where known, else the APPROX tuning value."""
    if run.sideband_slope_per_GeV is not None:
        return float(run.sideband_slope_per_GeV)
    table = tune("upstream.slope_per_GeV")
    return float(table.get(campaign, {}).get(run_name, tune("upstream.default_slope_per_GeV")))


@cache
def _box_fraction(kind: str, e_nominal: float, box: float | None = None) -> float:
    """Fraction of a box component's generated events with true E_ECAL below the box edge (fixed-seed MC).

    ``box``: the run's edge (default: the published 50 GeV)."""
    rng = np.random.default_rng(12345)
    n = 200_000
    gen = {"dimuon": lambda: P.dimuon(n, e_nominal, rng, lost=True),
           "hadron": lambda: P.hadron_electroproduction(n, e_nominal, rng, lost=True),
           "decay": lambda: P.decay_in_flight(n, e_nominal, rng),
           "punch": lambda: P.punch_through(n, e_nominal, rng)}[kind]
    return float(np.mean(gen()["ecal"] < (pub("selection.signal_box_ecal_max_GeV") if box is None else box)))


def skim_sources(campaign: str, run_name: str, run: Run, *, e_nominal: float, beam: BeamSpec = E_BEAM,
                 box_ecal_max: float | None = None) -> list[Source]:
    """Sub-processes that can land in the skim (SR-tagged ~E0 beam particle that fired the trigger).

    ``beam``: particle and contaminants (default: the published e- beam). ``box_ecal_max``: the run's box
    edge (default: the published 50 GeV); the box components reproduce the run's background below it.
    """
    eff = selection_efficiency(campaign, run)
    bkg = published_backgrounds(campaign, run)
    box = pub("selection.signal_box_ecal_max_GeV") if box_ecal_max is None else float(box_ecal_max)
    box_key = None if box_ecal_max is None else box
    mip2 = 2.0 * tune("ecal.muon_mip_GeV")
    x60 = 1.0 - (pub("selection.dimuon_ecal_max_GeV") - mip2) / e_nominal
    dimuon_rate = tune("dimuon.truth_rate_e60_per_eot") / P.photon_x_fraction_above("dimuon", x60, e_nominal)

    slope = upstream_slope(campaign, run_name, run)
    f_box_up = P.upstream_ecal_fraction(slope, tune("upstream.ecal_min_GeV"), P.upstream_ecal_max(), box)
    up_rate = bkg["upstream"] / (eff * P.upstream_clean_fraction(run.hcal0) * f_box_up) / run.eot

    def per_eot(comp: str, kind: str) -> float:
        return bkg[comp] / (eff * _box_fraction(kind, e_nominal, box_key)) / run.eot

    fake = pub("detector.srd_hadron_fake_rate")
    hadron_frac = beam.hadron_fraction
    p_max = float(pileup_probabilities(np.array([run.intensity_e_per_spill[1]]))["ecal"][0])
    e = e_nominal
    return [
        Source("dimuon", Process.DIMUON, dimuon_rate, lambda n, r: P.dimuon(n, e, r)),
        Source("dimuon_lost", Process.DIMUON, per_eot("dimuon", "dimuon"),
               lambda n, r: P.dimuon(n, e, r, lost=True)),
        Source("hadron", Process.HADRON_ELECTROPRODUCTION, tune("hadron.truth_rate_per_eot"),
               lambda n, r: P.hadron_electroproduction(n, e, r)),
        Source("hadron_lost", Process.HADRON_ELECTROPRODUCTION, per_eot("target_interactions", "hadron"),
               lambda n, r: P.hadron_electroproduction(n, e, r, lost=True)),
        Source("upstream", Process.UPSTREAM_INTERACTION, up_rate, lambda n, r: P.upstream(n, e, slope, r)),
        Source("decay_in_flight", Process.DECAY_IN_FLIGHT, per_eot("decay_in_flight", "decay"),
               lambda n, r: P.decay_in_flight(n, e, r)),
        Source("punch_through", Process.PUNCH_THROUGH, per_eot("punch_through", "punch"),
               lambda n, r: P.punch_through(n, e, r)),
        Source("pileup", Process.PILEUP, tune("pileup.region3_rate_per_pileup") * p_max,
               lambda n, r: P.pileup_region3(n, e, r), thinned_by_pileup=True),
        Source("beam_hadron_fake_tag", Process.BEAM_HADRON, hadron_frac * fake,
               lambda n, r: P.beam_hadron(n, e, r, tagged=True),
               gen_trigger=lambda n, r: P.beam_hadron_trigger(n, e, r, tagged=True),
               finish=P.beam_hadron_finish),
        Source("beam_muon_fake_tag", Process.BEAM_MUON, beam.muons * fake,
               lambda n, r: P.beam_muon(n, e, r, tagged=True),
               gen_trigger=lambda n, r: P.beam_muon_trigger(n, e, r, tagged=True),
               finish=P.beam_muon_finish),
    ]


def trigger_sources(campaign: str, run_name: str, run: Run, *, e_nominal: float, beam: BeamSpec = E_BEAM,
                    box_ecal_max: float | None = None) -> list[Source]:
    """Everything that can fire the trigger: the skim sources plus the untagged beam contaminants."""
    e = e_nominal
    hadron_frac = beam.hadron_fraction
    skim = skim_sources(campaign, run_name, run, e_nominal=e_nominal, beam=beam, box_ecal_max=box_ecal_max)
    return skim + [
        Source("low_energy_electron", Process.LOW_ENERGY_ELECTRON,
               pub("beam.low_energy_electron_fraction") * tune("beam.low_energy_ecal_acceptance"),
               lambda n, r: P.low_energy_electron(n, e, r)),
        Source("beam_hadron", Process.BEAM_HADRON, hadron_frac,
               lambda n, r: P.beam_hadron(n, e, r, tagged=False),
               gen_trigger=lambda n, r: P.beam_hadron_trigger(n, e, r, tagged=False),
               finish=P.beam_hadron_finish),
        Source("beam_muon", Process.BEAM_MUON, beam.muons,
               lambda n, r: P.beam_muon(n, e, r, tagged=False),
               gen_trigger=lambda n, r: P.beam_muon_trigger(n, e, r, tagged=False),
               finish=P.beam_muon_finish),
    ]
