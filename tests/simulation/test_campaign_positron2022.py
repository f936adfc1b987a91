"""Campaign positron2022 (100 GeV e+ beam, ~1e10 e+ OT): beam composition, background composition, the
charge-conjugated simulation, the summary and the search definition."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from na64ana import datasets as dsets
from na64ana import searches
from na64ana.contract import Process
from na64ana.simulation import rates
from na64ana.simulation.config import pub
from na64ana.simulation.generate import generate_events

REPO = Path(__file__).resolve().parents[2]
DS = dsets.load(REPO / "datasets.json")
CAMP = DS.campaign("positron2022")
RUN = CAMP.runs["2022"]
BEAM = rates.BeamSpec.of(CAMP)


def test_campaign_values():
    assert CAMP.beam == "e+" and CAMP.beam_energy_GeV == 100.0
    assert RUN.eot == 1e10 and CAMP.box_ecal_max(RUN) == 50.0 and CAMP.emiss_min(RUN) == 50.0
    comp = CAMP.beam_composition
    assert comp is not None and all("APPROX" in comp.sources[k] for k in ("pion_fraction", "kaon_fraction"))
    assert BEAM.particle == "e+" and BEAM.charge_sign == -1
    assert BEAM.hadron_fraction == pytest.approx(0.05)
    assert rates.BeamSpec.of(DS.campaign("prl2019")) == rates.E_BEAM


def test_background_composition_is_dominated_by_decays_in_flight():
    bkg = rates.published_backgrounds("positron2022", RUN)
    assert max(bkg, key=bkg.__getitem__) == "decay_in_flight"  # S004: misidentified K/pi decaying in flight
    assert sum(bkg.values()) == pytest.approx(RUN.background)
    # decays in flight per EOT scale with the hadron fraction: 5% vs 0.6% of the e- beam (S003 Table I rate)
    e_beam = 0.02 / 2.84e11 * RUN.eot * BEAM.hadron_fraction / rates.E_BEAM.hadron_fraction
    assert bkg["decay_in_flight"] == pytest.approx(e_beam, rel=0.01)


def test_beam_contaminant_rates_follow_the_composition():
    def rate(beam):
        return {s.name: s.rate_per_eot
                for s in rates.trigger_sources("positron2022", "2022", RUN, e_nominal=100.0, beam=beam)}

    pos, ele = rate(BEAM), rate(rates.E_BEAM)
    ratio = BEAM.hadron_fraction / (pub("beam.pion_fraction") + pub("beam.kaon_fraction"))
    assert pos["beam_hadron"] / ele["beam_hadron"] == pytest.approx(ratio)
    assert pos["beam_hadron_fake_tag"] / ele["beam_hadron_fake_tag"] == pytest.approx(ratio)
    assert pos["upstream"] == ele["upstream"] and pos["beam_muon"] == ele["beam_muon"]


def test_skim_is_charge_conjugated():
    info: dict = {}
    a = generate_events(RUN, campaign="positron2022", run_name="2022", level="skim", eot=3e9,
                        rng=np.random.default_rng(3), beam=BEAM, info=info)
    pdg = a["truth_pdg"]
    proc = a["truth_process"]
    assert pdg.size > 1000
    assert 11 not in set(np.unique(pdg)) and -11 in set(np.unique(pdg))
    hadrons = np.isin(proc, [int(Process.DECAY_IN_FLIGHT), int(Process.BEAM_HADRON)])
    assert np.all(np.isin(pdg[hadrons], [211, 321]))  # pi+ and K+ of a positive beam
    # the same seed and composition with an e- beam gives the same events with the opposite charges
    minus = rates.BeamSpec("e-", BEAM.pion_fraction, BEAM.kaon_fraction, BEAM.muon_fraction)
    b = generate_events(RUN, campaign="positron2022", run_name="2022", level="skim", eot=3e9,
                        rng=np.random.default_rng(3), beam=minus)
    assert np.array_equal(b["truth_pdg"], -pdg)
    assert all(np.array_equal(a[k], b[k]) for k in a if k != "truth_pdg")


def test_trigger_level_hadron_share_grows():
    def hadron_share(beam):
        a = generate_events(RUN, campaign="positron2022", run_name="2022", level="trigger", n_events=20_000,
                            rng=np.random.default_rng(9), beam=beam)
        return float(np.mean(a["truth_process"] == int(Process.BEAM_HADRON)))

    assert hadron_share(BEAM) > 3 * hadron_share(rates.E_BEAM)


def test_published_summary():
    s = json.loads((REPO / "examples" / "summaries" / "positron2022_published.json").read_text())
    assert s["beam_particle"] == "e+" and s["production"] == ["brem", "annihilation"]
    (r,) = s["runs"]
    assert r["eot"] == 1e10 and r["observed"] == 0 and r["emiss_min_GeV"] == 50.0
    assert r["background"] == pytest.approx(RUN.background, rel=1e-4)
    assert 0 < r["background_unc"] < r["background"]
    assert "NOT PUBLISHED" in s["notes"]["background"] and "NOT PUBLISHED" in s["notes"]["efficiency"]
    assert any(0.315 <= m <= 0.32 for m in s["masses_GeV"])  # the beam-positron peak at sqrt(2 m_e E0)


def test_search_definition():
    s = searches.load("positron2022")
    assert s.signal.beam == "e+" and s.signal.production == ["brem", "annihilation"]
    assert s.campaigns == ["positron2022"]
