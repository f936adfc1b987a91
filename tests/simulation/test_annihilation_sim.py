"""Resonant-annihilation signal events (na64ana.simulation.annihilation) through the signal-sample code."""

from __future__ import annotations

import json

import numpy as np
import pytest

from na64ana import datasets as dsets
from na64ana.errors import InputError
from na64ana.physics import yields
from na64ana.physics.production import annihilation as ann
from na64ana.simulation import annihilation as A
from na64ana.simulation import simulate_signal_samples
from na64ana.simulation.signal import MIGRATION_FRACTION, simulate_signal_sample

DS = dsets.load("datasets.json")
RUN = DS.campaign("prl2023").runs["2018"]


def _sample(mass: float, seed: int = 7, n: int = 4000, beam: str = "e-", info: dict | None = None):
    return simulate_signal_sample(RUN, mass_GeV=mass, n_events=n, rng=np.random.default_rng(seed), eps=1e-4,
                                  run_name="2018", production="annihilation", beam=beam, info=info)


@pytest.mark.parametrize("mass", [0.237, 0.30])
def test_ecal_line_is_e0_minus_er_smeared(mass):
    info: dict = {}
    a = _sample(mass, info=info)
    e_r = float(ann.resonance_energy(mass))
    line = 100.0 - e_r
    # the A' carries the whole positron energy: the truth is the line itself
    assert np.allclose(a["truth_eaprime"], e_r, rtol=1e-6)
    lo, med, hi = np.percentile(a["ecal_e"], [16, 50, 84])
    assert abs(med - line) < 0.25
    # width: ECAL 0.1/sqrt(E) and the 1% beam spread (E0 moves, E_R does not)
    expected = np.hypot(0.1 * np.sqrt(line), 0.01 * 100.0)
    assert 0.8 * expected < 0.5 * (hi - lo) < 1.3 * expected
    # nearly every event fires the trigger (E_PS > 0.3 GeV: the rest of the shower starts early)
    assert info["triggered"] > 0.9 * info["generated"]


def test_weight_is_the_physics_yield():
    info: dict = {}
    a = _sample(0.237, info=info)
    per_eot = yields.annihilation_yield_per_eot_grid([0.237], 1e-4, emiss_min=MIGRATION_FRACTION * 50.0)[0]
    assert info["yield_per_eot"] == pytest.approx(per_eot, rel=1e-12)
    assert a["weight"].sum() == pytest.approx(per_eot * info["triggered"] / info["generated"], rel=1e-5)
    assert info["production"] == "annihilation"


def test_reproducible_for_a_seed():
    a, b, c = _sample(0.25, seed=11, n=1500), _sample(0.25, seed=11, n=1500), _sample(0.25, seed=12, n=1500)
    assert a.keys() == b.keys()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["ecal_e"][:100], c["ecal_e"][:100])


def test_mass_outside_the_window_is_a_one_line_error():
    with pytest.raises(InputError, match="mass") as exc:
        _sample(0.1)  # E_R = 9.8 GeV: below 0.8 * emiss_min
    assert "\n" not in str(exc.value)
    with pytest.raises(InputError, match="production"):
        simulate_signal_sample(RUN, mass_GeV=0.25, n_events=10, rng=np.random.default_rng(1),
                               production="primakoff")


def test_depth_depends_on_the_positron_origin():
    # e- beam: only secondary positrons; e+ beam near the top of the window: mostly the beam positron
    assert A.origin_fractions(0.25, e_nominal=100.0, beam="e-") == {"secondary": 1.0, "primary": 0.0,
                                                                     "spike": 0.0}
    f = A.origin_fractions(0.30, e_nominal=100.0, beam="e+")
    assert f["primary"] > 0.9 and sum(f.values()) == pytest.approx(1.0)
    top = A.origin_fractions(0.3195, e_nominal=100.0, beam="e+")
    assert top["spike"] > 0.3  # the un-radiated beam positron (within the 1% spread)


def test_positron_beam_signal_is_conjugated():
    info: dict = {}
    a = _sample(0.30, beam="e+", info=info, n=2000)
    assert set(np.unique(a["truth_pdg"])) == {-11}
    per_eot = yields.annihilation_yield_per_eot_grid([0.30], 1e-4, emiss_min=40.0, beam="e+",
                                                     beam_spread=0.01)[0]
    assert info["yield_per_eot"] == pytest.approx(per_eot, rel=1e-12)
    # the beam positron makes the e+ beam ~100x more productive at 0.3 GeV than the shower of an e- beam
    assert per_eot > 50 * yields.annihilation_yield_per_eot_grid([0.30], 1e-4, emiss_min=40.0)[0]


def test_signal_samples_write_annihilation_files(tmp_path):
    out = tmp_path / "sim"
    report: list[dict] = []
    path = simulate_signal_samples("datasets.json", out_dir=out, masses_GeV=[0.237], n_events=400,
                                   campaign="prl2023", runs=["2022"], production="annihilation",
                                   report=report)
    ds = dsets.load(path)
    (entry,) = ds.campaign("prl2023").runs["2022"].files
    assert entry.path == "prl2023/signal_annihilation_m237MeV_run_2022.root"
    assert entry.signal_production == "annihilation" and entry.kind == "mc"
    assert entry.sample == "signal_annihilation"  # its own dataset key next to a brem sample of the same mass
    # the run's own box edge (47 GeV -> emiss_min 53 GeV) sets the sampled threshold
    expected = yields.annihilation_yield_per_eot_grid([0.237], 1e-4, emiss_min=0.8 * 53.0)[0]
    assert report[0]["yield_per_eot"] == pytest.approx(expected, rel=1e-12)
    prov = json.loads((out / "provenance.json").read_text())
    assert "annihilation" in json.dumps(prov)
    (stage,) = [v for k, v in prov["stages"].items() if k.startswith("simulate_signal")]
    assert stage["signal_ea_min_fraction"] == MIGRATION_FRACTION  # the coverage the efficiency stage reads


def test_brem_and_annihilation_in_one_datasets_file(tmp_path):
    """--production brem,annihilation: one datasets.json, distinct samples (and keys) at the same mass; a
    mass whose line misses the window is left out of the annihilation samples only (and recorded)."""
    out = tmp_path / "sim"
    path = simulate_signal_samples("datasets.json", out_dir=out, masses_GeV=[0.05, 0.237], n_events=200,
                                   campaign="prl2023", runs=["2022"], production=["brem", "annihilation"])
    files = dsets.load(path).campaign("prl2023").runs["2022"].files
    got = sorted((f.sample, f.signal_mass_GeV, f.signal_production) for f in files)
    assert got == [("signal", 0.05, None), ("signal", 0.237, None),
                   ("signal_annihilation", 0.237, "annihilation")]
    prov = json.loads((out / "provenance.json").read_text())
    (stage,) = [v for k, v in prov["stages"].items() if k.startswith("simulate_signal")]
    assert stage["skipped_masses"] == {"annihilation": [0.05]}


def test_signal_samples_reject_a_mass_without_a_line(tmp_path):
    with pytest.raises(InputError, match="mass"):
        simulate_signal_samples("datasets.json", out_dir=tmp_path / "x", masses_GeV=[0.05], n_events=10,
                                campaign="prl2023", runs=["2022"], production="annihilation")
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").rglob("*.root"))
